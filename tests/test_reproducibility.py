"""Reproducibility: the same config and seed give identical result files in separate
processes and under the parallel launcher; random streams are split by component, so a
setting that only one component consumes never shifts another component's draws; each run
records the package version and the full resolved config.

(tests/test_policies.py already checks that two runs in one process are identical.)
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import override, simrec_cmd, tiny

import simrec
from simrec.config import Config, from_dict, to_dict
from simrec.engine import Simulation
from simrec.results.io import TABLES
from simrec.serving.replica import SHARE_START

SMALL = ["users.initial=1500", "items.initial=600", "sim.days=0.1", "sim.warmup_days=0.05"]
VOLATILE = {"wall_time_s"}  # the only summary entry allowed to differ between processes


def run_cmd(*args: str, cwd: Path, hashseed: str) -> subprocess.CompletedProcess:
    """Run the ``simrec`` command in a fresh interpreter; it must succeed."""
    p = simrec_cmd(*args, cwd=cwd, hashseed=hashseed)
    assert p.returncode == 0, p.stderr
    return p


def summary(run_dir: Path) -> dict:
    s = json.loads((run_dir / "summary.json").read_text())
    return {k: v for k, v in s.items() if k not in VOLATILE}


def assert_same_run(a: Path, b: Path) -> None:
    """Same summary (but wall time), the same data in every table and the same bytes."""
    assert summary(a) == summary(b)
    for name in TABLES:
        fa, fb = pd.read_parquet(a / f"{name}.parquet"), pd.read_parquet(b / f"{name}.parquet")
        assert len(fa) > 0 or name == "items", name
        pd.testing.assert_frame_equal(fa, fb, check_exact=True, obj=name)
        assert (a / f"{name}.parquet").read_bytes() == (b / f"{name}.parquet").read_bytes()


def test_same_config_and_seed_give_identical_files_in_separate_processes(tmp_path):
    """Two interpreters with different hash seeds (set and dict orders differ)."""
    args = ["policy=online", "infra=geo3", "infra.topology=p2p", "seed=3", *SMALL]
    for run, hashseed in (("a", "1"), ("b", "2")):
        run_cmd(*args, f"hydra.run.dir={tmp_path / run}", cwd=tmp_path, hashseed=hashseed)
    assert_same_run(tmp_path / "a", tmp_path / "b")
    ts = pd.read_parquet(tmp_path / "a" / "timeseries.parquet")
    assert ts.impressions.sum() > 0
    # the run can be repeated from its summary alone, in this process
    recorded = json.loads((tmp_path / "a" / "summary.json").read_text())
    again = simrec.run(from_dict(recorded["config"]))
    pd.testing.assert_frame_equal(again.timeseries, ts, check_exact=True)


def in_worker(fn, delay_s: float = 0.0, calls: list | None = None):
    """``fn``, which when a worker thread calls it first sleeps ``delay_s`` and appends its
    arguments to ``calls``."""
    import threading
    import time

    def wrapped(*args):
        if threading.current_thread() is not threading.main_thread():
            time.sleep(delay_s)
            if calls is not None:
                calls.append(args)
        return fn(*args)

    return wrapped


def worker_ranking(monkeypatch, delay_s: float = 0.0) -> list[tuple]:
    """Let the worker thread rank a share of even these small steps (of a few dozen
    requests), optionally after a delay; returns the list that collects the arguments of
    each of its calls (the last two are its first and end row)."""
    from simrec.serving import replica

    calls: list[tuple] = []
    monkeypatch.setattr(replica, "SHARE_MIN_REQUESTS", 1)
    monkeypatch.setattr(replica, "model_slates", in_worker(replica.model_slates, delay_s, calls))
    return calls


def ranked(calls: list[tuple]) -> list[int]:
    """Requests ranked by each of the worker's calls of ``model_slates``."""
    return [args[-1] - args[-2] for args in calls]


@pytest.mark.parametrize("policy", ["online", "hourly"])
def test_training_beside_serving_in_a_second_thread_changes_nothing(monkeypatch, policy):
    """``sim.threads=2`` (training, the oracle's scoring and a share of the ranking in
    worker threads beside the main one) and ``sim.threads=1`` give exactly the same tables
    and the same run id."""
    from simrec.serving.replica import Server

    base = simrec.compose([f"policy={policy}", "infra=geo3", "seed=2", *SMALL])
    calls = worker_ranking(monkeypatch)
    # the share stays at its start whatever the threads' timing, so the worker ranks part
    # of every step (the share's own rule is tested below)
    monkeypatch.setattr(Server, "rebalance", lambda self, worker_behind: None)
    runs = [simrec.run(override(copy.deepcopy(base), sim__threads=n)) for n in (1, 2)]
    # with the share fixed, the traffic alone sets these: 232 calls ranking 283 requests
    # (the 30 % of each datacenter's step, rounded down, where that is at least one)
    assert len(calls) > 150 and sum(ranked(calls)) > 200
    for name in TABLES:
        pd.testing.assert_frame_equal(
            getattr(runs[0], name), getattr(runs[1], name), check_exact=True, obj=name
        )
    one, two = ({k: v for k, v in r.summary.items() if k not in VOLATILE} for r in runs)
    assert one.pop("config")["sim"]["threads"] == 1
    assert two.pop("config")["sim"]["threads"] == 2
    assert one == two


@pytest.mark.parametrize("policy", ["online", "hourly"])
def test_slow_worker_threads_change_nothing(monkeypatch, policy):
    """The worker threads' jobs may finish late: training runs on into later steps, the
    oracle's scoring after the world has moved on, and the metrics wait for it. Delaying
    every job's start (and the worker's share of the ranking) by a millisecond, so that
    the main thread runs ahead (advances the world, snapshots or sends deltas of the
    learner, records), gives exactly the tables of ``sim.threads=1``."""
    from simrec.model.learner import Learner
    from simrec.serving.replica import Server

    base = simrec.compose([f"policy={policy}", "infra=geo3", "seed=5", *SMALL])
    one = simrec.run(override(copy.deepcopy(base), sim__threads=1))
    for owner, name in ((Learner, "train"), (Learner, "register_items"), (Server, "_oracle")):
        monkeypatch.setattr(owner, name, in_worker(getattr(owner, name), 0.001))
    calls = worker_ranking(monkeypatch, delay_s=0.001)
    shares = []
    rebalance = Server.rebalance

    def watched(self, worker_behind):
        rebalance(self, worker_behind)
        shares.append(self.share)

    monkeypatch.setattr(Server, "rebalance", watched)
    two = simrec.run(override(copy.deepcopy(base), sim__threads=2))
    for name in TABLES:
        pd.testing.assert_frame_equal(
            getattr(one, name), getattr(two, name), check_exact=True, obj=name
        )
    assert two.timeseries["oracle_expected_clicks"].sum() > 0
    # the slowed worker ranked some requests, was found behind, and its share fell to 0:
    # every share it ranks starts 1 ms late, while the main thread's part of these steps of
    # a few dozen requests takes tens of µs, so the main thread waits and the share falls two
    # notches a step (to 0 in 15 steps of more than 100) unless the main thread is itself
    # held up for over a millisecond in most steps
    assert sum(ranked(calls)) > 0
    assert len(shares) > 100 and min(shares) == 0.0


def test_the_workers_share_of_the_ranking_follows_its_load():
    """Up a notch per step while the worker keeps up, to a ceiling; down two when it is
    behind with training or the main thread had to wait for its share, to zero."""
    from simrec.serving.replica import SHARE_MAX, SHARE_NOTCH

    server = Simulation(tiny()).server
    assert server.share == SHARE_START
    server.rebalance(worker_behind=False)
    assert server.share == pytest.approx(SHARE_START + SHARE_NOTCH)
    server.rebalance(worker_behind=True)
    assert server.share == pytest.approx(SHARE_START - SHARE_NOTCH)
    server._waited = True  # as after a step whose share was not done when the main one was
    server.rebalance(worker_behind=False)
    assert server.share == pytest.approx(SHARE_START - 3 * SHARE_NOTCH)
    for _ in range(100):
        server.rebalance(worker_behind=False)
    assert server.share == SHARE_MAX
    for _ in range(100):
        server.rebalance(worker_behind=True)
    assert server.share == 0.0


def test_an_error_in_a_worker_thread_stops_the_run(monkeypatch):
    """Nothing waits for an unscored oracle in warm-up, nor for training until the learner
    is read; what they raise still ends the run."""
    from simrec.model.learner import Learner
    from simrec.serving.replica import Server

    cfg = simrec.compose(["policy=hourly", *SMALL])
    assert cfg.sim.threads == 2
    oracle = Server._oracle

    def broken_in_warm_up(self, true_u, corpus, n_batches, t, score, world):
        if not score:
            raise RuntimeError("broken worker")
        return oracle(self, true_u, corpus, n_batches, t, score, world)

    def broken(*args):
        raise RuntimeError("broken worker")

    for owner, name, fn in ((Server, "_oracle", broken_in_warm_up), (Learner, "train", broken)):
        with monkeypatch.context() as m:
            m.setattr(owner, name, fn)
            with pytest.raises(RuntimeError, match="broken worker"):
                simrec.run(copy.deepcopy(cfg))


def test_leaving_the_oracle_unscored_in_warm_up_changes_nothing(monkeypatch):
    """The oracle's counterfactual is not scored in warm-up, where nothing is recorded; its
    pools are still drawn, so every table equals that of a run that scores it throughout."""
    from simrec.serving.replica import Server

    cfg = simrec.compose(["policy=hourly", "seed=4", *SMALL])
    oracle = Server._oracle
    calls: list[tuple[float, bool]] = []

    def logged(self, true_u, corpus, n_batches, t, score, world):
        calls.append((t, score))
        return oracle(self, true_u, corpus, n_batches, t, score, world)

    monkeypatch.setattr(Server, "_oracle", logged)
    skipping = simrec.run(copy.deepcopy(cfg))
    start = cfg.sim.warmup_days * 86_400
    assert {score for t, score in calls if t < start} == {False}
    assert {score for t, score in calls if t >= start} == {True}
    n_warm = sum(t < start for t, _ in calls)
    assert n_warm >= 0.9 * start / cfg.sim.step_s  # almost every warm-up step has requests

    def scored(self, true_u, corpus, n_batches, t, score, world):
        return oracle(self, true_u, corpus, n_batches, t, True, world)

    monkeypatch.setattr(Server, "_oracle", scored)
    scoring = simrec.run(copy.deepcopy(cfg))
    for name in TABLES:
        pd.testing.assert_frame_equal(
            getattr(skipping, name), getattr(scoring, name), check_exact=True, obj=name
        )
    assert skipping.timeseries["oracle_expected_clicks"].sum() > 0


def test_parallel_launcher_gives_the_same_runs_as_sequential(tmp_path):
    common = ["-m", "policy=hourly", "seed=0,1", *SMALL]
    run_cmd(
        *common,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={tmp_path / 'par'}",
        cwd=tmp_path,
        hashseed="3",
    )
    run_cmd(*common, f"hydra.sweep.dir={tmp_path / 'seq'}", cwd=tmp_path, hashseed="4")

    def by_seed(root: Path) -> dict[int, Path]:
        runs = {json.loads(p.read_text())["seed"]: p.parent for p in root.rglob("summary.json")}
        assert sorted(runs) == [0, 1]
        return runs

    par, seq = by_seed(tmp_path / "par"), by_seed(tmp_path / "seq")
    for seed in (0, 1):
        assert_same_run(par[seed], seq[seed])
    assert summary(par[0])["expected_ctr"] != summary(par[1])["expected_ctr"]


# --- independent random streams ------------------------------------------------------------
def world_draws(cfg: Config) -> dict[str, np.ndarray]:
    """Run ``cfg`` and return everything the world drew: users (taste, drift state, births,
    deaths, activity, home, anonymity), items (vector, topic, quality, birth, death), topic
    popularity, and the user ids of every step's requests."""
    sim = Simulation(cfg)
    users = sim.world.users
    requested: list[np.ndarray] = []
    sample = users.sample_requests

    def spy(t0, t1, rng):
        ids = sample(t0, t1, rng)
        requested.append(ids.copy())
        return ids

    users.sample_requests = spy
    sim.run()
    ut, it = users.t, sim.world.items.t
    out = {
        f"users.{c}": ut.view(c).copy()
        for c in ("taste", "birth_s", "death_s", "rate_per_s", "home", "anonymous")
    }
    out["users.drift"] = ut.view("drift").copy()
    out.update(
        {f"items.{c}": it.view(c).copy() for c in ("vec", "topic", "quality", "birth_s", "death_s")}
    )
    out["topics.popularity"] = sim.world.topics.popularity.copy()
    out["requests"] = np.concatenate(requested)
    out["requests_per_step"] = np.array([len(r) for r in requested])
    return out


def differing(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> set[str]:
    return {k for k in a if a[k].shape != b[k].shape or not np.array_equal(a[k], b[k])}


def base_config() -> Config:
    return tiny(
        policy__name="hourly",
        sim__days=0.1,
        sim__warmup_days=0.1,
        users__initial=1500,
        items__initial=600,
        seed=11,
    )


def variant(**over) -> Config:
    cfg = copy.deepcopy(base_config())
    return override(cfg, **over)


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    return world_draws(base_config())


@pytest.mark.parametrize(
    "over",
    [
        {"learner__learning_rate": 0.05},  # the model differs, so do the slates shown
        {"learner__holdout_share": 0.3},  # draws from the learner stream only
        {"corruption__enabled": True, "corruption__start_s": 0.0},  # corruption stream
        {"policy__name": "online", "policy__interval_s": 60.0},  # another policy
        {"policy__name": "oracle", "policy__interval_s": None},  # true interests at serving
    ],
    ids=["learning_rate", "holdout_share", "corruption", "policy_online", "policy_oracle"],
)
def test_learner_and_policy_settings_do_not_shift_the_worlds_draws(reference, over):
    """Everything the world drew is identical, bit for bit, including the interest drift of
    every user (advanced lazily when the user is read: only requests read it)."""
    assert differing(reference, world_draws(variant(**over))) == set()


def test_the_oracle_learner_changes_only_the_interest_drift_path(reference):
    """Oracle snapshots read every live user's interest, which draws OU steps at other times:
    the drift path (same law) may differ, nothing else should (tastes differ: bug)."""
    assert differing(reference, world_draws(variant(learner__kind="oracle"))) == {"users.drift"}


def test_with_the_oracle_learner_every_policy_sees_the_same_users():
    """Under the oracle learner, hourly and minute checkpoints snapshot at different times;
    the users born during the run (new users, every anonymous session) should still have the
    same tastes for both policies, so that policies are compared on the same population."""
    hourly = world_draws(variant(learner__kind="oracle"))
    minute = world_draws(
        variant(learner__kind="oracle", policy__name="minute", policy__interval_s=300.0)
    )
    assert "users.taste" not in differing(hourly, minute)


def test_world_components_have_their_own_streams(reference):
    """A setting read by one world component changes only what that component draws."""
    items = world_draws(variant(items__quality_std=1.0))
    assert differing(reference, items) == {"items.quality"}
    np.testing.assert_allclose(items["items.quality"], 2 * reference["items.quality"], rtol=1e-6)
    users = world_draws(variant(users__activity_sigma=0.5))
    assert differing(reference, users) >= {"users.rate_per_s", "requests"}
    assert not any(k.startswith(("items.", "topics.")) for k in differing(reference, users))
    n = base_config().users.initial  # the initial population is drawn before anything else
    np.testing.assert_array_equal(users["users.taste"][:n], reference["users.taste"][:n])


# --- what a run records ---------------------------------------------------------------------
def test_summary_records_the_package_version_and_the_full_resolved_config(tmp_path):
    cfg = simrec.compose(
        ["policy=minute", "infra=geo3", "seed=5", *SMALL, "learner.throughput_per_s=inf"]
    )
    result = simrec.run(cfg)
    assert result.summary["simrec_version"] == simrec.__version__
    assert simrec.__version__ == importlib.metadata.version("simrec")
    result.save(tmp_path)
    recorded = json.loads((tmp_path / "summary.json").read_text())
    assert recorded["simrec_version"] == simrec.__version__
    assert recorded["config"]["learner"]["throughput_per_s"] == "inf"  # JSON has no inf
    restored = from_dict(recorded["config"])
    assert restored == cfg
    assert set(recorded["config"]) == set(to_dict(Config()))  # every top-level group
    assert math.isinf(restored.learner.throughput_per_s)
