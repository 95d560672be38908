"""Results: the Python API's tables, save/load round trip, atomic writes."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import tiny

import simrec
from simrec.results.io import TABLES, atomic_write_parquet


@pytest.fixture(scope="module")
def result() -> simrec.Result:
    return simrec.run(tiny(policy__name="hourly", policy__interval_s=3600.0))


def test_tables_are_tidy_and_consistent_with_the_summary(result):
    ts, s = result.timeseries, result.summary
    all_ = ts[ts.cohort == "all"]
    assert s["requests"] == all_.requests.sum() > 1000
    assert s["impressions"] == all_.impressions.sum() == 10 * s["requests"]
    assert s["expected_ctr"] == pytest.approx(all_.expected_clicks.sum() / s["impressions"])
    # sampled clicks agree with expected clicks within 4 binomial standard errors
    sd = math.sqrt(s["expected_ctr"] * (1 - s["expected_ctr"]) / s["impressions"])
    assert s["ctr"] == pytest.approx(s["expected_ctr"], abs=4 * sd)
    # cohorts are subsets of all
    for cohort in ("new_users", "anonymous", "fresh_items"):
        sub = ts[ts.cohort == cohort].set_index(["time_s", "datacenter"])
        tot = all_.set_index(["time_s", "datacenter"])
        assert (sub.impressions <= tot.impressions).all()
    anon = ts[ts.cohort == "anonymous"]
    assert anon.requests.sum() / s["requests"] == pytest.approx(0.05, abs=0.02)
    assert s["staleness_p50_s"] <= s["staleness_p99_s"]
    assert result.items.birth_s.min() >= 0
    assert set(result.updates.status) <= {"landed", "rejected", "skipped", "unfinished"}


def test_save_and_load_round_trip(result, tmp_path):
    d = result.save(tmp_path / "run")
    back = simrec.Result.load(d)
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(back, name), getattr(result, name))
    summary = json.loads((d / "summary.json").read_text())
    assert summary["expected_ctr"] == result.summary["expected_ctr"]
    assert summary["simrec_version"] == simrec.__version__
    assert summary["config"]["users"]["initial"] == 3000
    assert not list(d.glob("*.tmp")) and not list(d.glob(".*"))


def test_interrupted_write_leaves_no_file_that_looks_complete(tmp_path):
    class Boom(pd.DataFrame):
        def to_parquet(self, path, **kw):
            with open(path, "wb") as f:
                f.write(b"PAR1 half")
            raise KeyboardInterrupt

    target = tmp_path / "timeseries.parquet"
    with pytest.raises(KeyboardInterrupt):
        atomic_write_parquet(Boom({"a": [1]}), target)
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_run_accepts_a_nested_dict_and_refuses_bad_values():
    data = {
        "seed": 3,
        "users": {"initial": 500},
        "items": {"initial": 300},
        "sim": {"days": 0.02, "warmup_days": 0.0},
        "policy": {"name": "frozen", "interval_s": None},
    }
    r = simrec.run(data)
    assert r.summary["seed"] == 3 and np.isnan(r.summary["policy_interval_s"])
    with pytest.raises(simrec.ConfigError, match="users.initial"):
        simrec.run({**data, "users": {"initial": 0}})
    with pytest.raises(simrec.ConfigError, match="known policies"):
        simrec.run({**data, "policy": {"name": "weekly"}})


def test_the_last_bucket_ends_with_the_run():
    """4 320 measured seconds in buckets of 900 s: four full buckets and one of 720 s, whose
    width says so (it holds a fifth fewer steps)."""
    cfg = simrec.compose(
        ["policy=frozen", "sim.days=0.05", "sim.warmup_days=0.01", "sim.progress=false"]
        + ["users.initial=1000", "items.initial=300"]
    )
    ts = simrec.run(cfg).timeseries
    widths = ts.groupby("time_s")["bucket_s"].unique()
    assert list(widths.index) == [0.0, 900.0, 1800.0, 2700.0, 3600.0]
    assert [list(w) for w in widths] == [[900.0]] * 4 + [[720.0]]
    # requests per second of bucket are alike in the short bucket and the full ones
    a = ts[ts.cohort == "all"].groupby("time_s")[["requests", "bucket_s"]].sum()
    rate = a.requests / a.bucket_s
    assert rate.iloc[-1] == pytest.approx(rate.iloc[:-1].mean(), rel=0.5)
