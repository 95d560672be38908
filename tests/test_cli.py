"""The ``simrec`` command and the config groups, through Hydra's compose and as a process."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import simrec_cmd

import simrec
from simrec.cli import policy_preset, to_config
from simrec.config import Config, ConfigError, to_dict
from simrec.policies import POLICIES

CONF = Path(simrec.__file__).parent / "conf"
SMALL = ["users.initial=2000", "items.initial=800", "sim.days=0.1", "sim.warmup_days=0.1"]


def test_base_yaml_holds_every_dataclass_default():
    base = yaml.safe_load((CONF / "config.yaml").read_text())
    defaults = to_dict(Config())
    defaults["sim"]["progress"] = True  # the command shows progress; the library is quiet
    for key in (
        "sim",
        "users",
        "interests",
        "topics",
        "items",
        "clicks",
        "serving",
        "learner",
        "corruption",
    ):
        assert base[key] == pytest.approx(defaults[key]) or base[key] == defaults[key], key


@pytest.mark.parametrize(
    "name", sorted(p.stem for p in (CONF / "policy").glob("*.yaml") if p.stem != "compare")
)
def test_every_policy_option_composes_and_is_registered(name):
    cfg = simrec.compose([f"policy={name}"])
    assert cfg.policy.name == name and name in POLICIES
    assert to_config(to_dict(cfg)) == cfg


@pytest.mark.parametrize("scenario", sorted(p.stem for p in (CONF / "scenario").glob("*.yaml")))
@pytest.mark.parametrize("infra", sorted(p.stem for p in (CONF / "infra").glob("*.yaml")))
def test_every_scenario_and_infra_composes(scenario, infra):
    cfg = simrec.compose(["policy=hourly", f"scenario={scenario}", f"infra={infra}"])
    assert cfg.scenario == scenario and cfg.infra.name == infra


def test_scenarios_set_what_their_docs_say():
    news = simrec.compose(["policy=hourly", "scenario=news"])
    assert news.items.mean_lifetime_s <= 6 * 3600 and news.topics.hot_topic_boost > 0
    video = simrec.compose(["policy=hourly", "scenario=short_video"])
    assert video.items.initial / video.items.mean_lifetime_s > 10 * (
        Config().items.initial / Config().items.mean_lifetime_s
    )
    shop = simrec.compose(["policy=hourly", "scenario=ecommerce"])
    assert shop.interests.drift_kappa_per_s < Config().interests.drift_kappa_per_s / 5
    anon = simrec.compose(["policy=hourly", "scenario=anonymous"])
    assert anon.users.anonymous_share >= 0.5


def test_compose_refuses_the_comparison_pseudo_policy():
    with pytest.raises(ConfigError, match="policy=compare"):
        simrec.compose([])


def test_policy_preset_lists_known_policies_for_an_unknown_name():
    with pytest.raises(ConfigError, match="known policies are .*hourly"):
        policy_preset("weekly")


def test_single_run_writes_its_files(tmp_path):
    out = tmp_path / "run"
    p = simrec_cmd("policy=hourly", *SMALL, f"hydra.run.dir={out}", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    s = json.loads((out / "summary.json").read_text())
    for key in (
        "policy",
        "policy_interval_s",
        "scenario",
        "seed",
        "expected_ctr",
        "ctr",
        "oracle_expected_ctr",
        "regret",
        "staleness_mean_s",
        "staleness_p99_s",
        "bytes_moved",
        "updates_landed",
        "updates_rejected",
        "new_item_first_impression_median_s",
        "fallback_request_share",
    ):
        assert key in s, key
    assert s["policy"] == "hourly" and s["policy_interval_s"] == 3600.0
    assert 0 < s["expected_ctr"] < s["oracle_expected_ctr"] < 1
    assert s["regret"] == pytest.approx(s["oracle_expected_ctr"] - s["expected_ctr"])
    assert s["config"]["policy"]["name"] == "hourly"
    ts = pd.read_parquet(out / "timeseries.parquet")
    assert set(ts.cohort) == {"all", "new_users", "anonymous", "fresh_items"}
    assert (ts.expected_clicks >= 0).all()
    up = pd.read_parquet(out / "updates.parquet")
    assert (up.status == "landed").sum() == s["updates_landed"]


def test_main_job_compares_every_policy(tmp_path):
    out = tmp_path / "main"
    p = simrec_cmd(*SMALL, "compare=[oracle,hourly,frozen]", f"hydra.run.dir={out}", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    table = pd.read_csv(out / "comparison.csv")
    assert list(table.policy) == ["oracle", "hourly", "frozen"]
    assert table.expected_ctr.is_monotonic_decreasing
    for col in ("expected_ctr", "regret", "staleness_mean_s", "bytes_moved_per_day"):
        assert table[col].map(math.isfinite).all(), col
    assert (out / "report" / "ctr_over_time.png").stat().st_size > 10_000
    assert "hourly" in p.stdout and "exp. CTR" in p.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["sim.days=-1"], "sim.days"),
        (["seed=banana"], "seed"),
        (["policy=no_such_policy"], "known policies are compare, daily, frozen, hourly"),
        (["policy=hourly", "sim.dayz=3"], "sim.dayz: unknown setting"),
        (["policy=hourly", "policy.interval_s=0"], "policy.interval_s"),
        (["policy=hourly", "users.anonymous_share=1.5"], "users.anonymous_share"),
        (["policy=hourly", "infra.uplink_bytes_per_s=-5"], "infra.uplink_bytes_per_s"),
        (["policy=hourly", "sim.threads=3"], "sim.threads=3 is not allowed: must be 1 or 2"),
        (["compare=[]"], "compare=[] is not allowed: must be a non-empty list of policies"),
        (["compare=[hourly,hourly]"], "is not allowed: must name each policy once"),
        (["workers=0"], "workers=0 is not allowed: must be an integer >= 1"),
    ],
)
def test_bad_settings_are_refused_before_running(tmp_path, args, needle):
    out = tmp_path / "bad"
    p = simrec_cmd(*args, f"hydra.run.dir={out}", cwd=tmp_path)
    assert p.returncode != 0
    assert needle in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not out.exists() or not list(out.rglob("summary.json"))


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("seed", -1, "seed=-1 is not allowed: must be >= 0"),
        ("sim.days", 1e300, "sim.days=1e+300 is not allowed: must be <= 3650"),
        ("sim.step_s", 0.001, "sim.step_s=0.001 is not allowed: must be >= 1"),
        ("sim.bucket_s", 90.0, "sim.bucket_s=90.0 is not allowed: must be a whole number of steps"),
        ("sim.batch_size", 10**12, "sim.batch_size=1000000000000 is not allowed: must be in [1,"),
        ("users.initial", 10**9, "users.initial=1000000000 is not allowed: must be in [1,"),
        ("users.initial", 2.5, "users.initial: expected an integer, got 2.5"),
        ("users.activity_sigma", 1e300, "users.activity_sigma=1e+300 is not allowed"),
        ("users.session_requests_mean", math.inf, "users.session_requests_mean=inf is not"),
        ("interests.dim", 10**6, "interests.dim=1000000 is not allowed: must be in [1, 1024]"),
        ("policy.interval_s", 1e-6, "policy.interval_s=1e-06 is not allowed: must be >= 1"),
        ("policy.params", {"foo": 1}, "policy.params={'foo': 1} is not allowed for policy"),
        ("infra.chunks", 10**9, "infra.chunks=1000000000 is not allowed: must be in [1, 10 000]"),
        ("sim.days", "1", "sim.days: expected a number, got '1'"),
    ],
)
def test_out_of_range_settings_are_refused_with_their_range(setting, value, message):
    """Values far outside any useful run (a typo, a wrong unit) are refused before anything
    is built, naming the setting and what it must be, also for a config edited in place."""
    from simrec.engine import check

    cfg = simrec.compose(["policy=hourly"])
    *path, last = setting.split(".")
    node = cfg
    for part in path:
        node = getattr(node, part)
    setattr(node, last, value)
    with pytest.raises(ConfigError) as e:
        check(cfg)
    assert message in str(e.value)


def test_a_corruption_burst_after_the_run_is_refused():
    from simrec.engine import check

    cfg = simrec.compose(["policy=hourly", "corruption.enabled=true", "sim.days=1"])
    cfg.corruption.start_s = 2 * 86_400.0
    with pytest.raises(ConfigError, match="corruption.start_s=172800.0 is not allowed"):
        check(cfg)
    cfg.corruption.enabled = False  # the same start with the burst off is a control run
    check(cfg)


def test_the_api_refuses_bad_overrides_and_non_configs_with_config_errors():
    for overrides, needle in [
        (["sim.days"], "sim.days"),
        (["sim.dayz=1"], "sim.dayz: unknown setting"),
        (["policy=hourly", "policy.params.x=1"], "+policy.params.x=1"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(needle)):
            simrec.compose(overrides)
    for bad in (None, "policy=hourly"):
        with pytest.raises(ConfigError, match="expected a simrec Config"):
            simrec.run(bad)
