"""Sweeps: parallel launchers, report on a sweep, resume after interruption, failed runs."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from conftest import simrec_cmd

SMALL = ["sim.days=0.05", "sim.warmup_days=0.05", "users.initial=1000", "items.initial=500"]


def report(*args: str) -> int:
    from simrec.report import main

    return main(list(args))


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_two_by_two_sweep_and_report(tmp_path, launcher):
    sweep = tmp_path / "sweep"
    extra = ["hydra.launcher.n_jobs=2"] if launcher == "joblib" else []
    p = simrec_cmd(
        "-m",
        f"hydra/launcher={launcher}",
        *extra,
        "policy=hourly,frozen",
        "seed=0,1",
        *SMALL,
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    jobs = sorted(d.name for d in sweep.iterdir() if d.is_dir() and not d.name.startswith("."))
    assert jobs == ["0", "1", "2", "3"]
    assert report(str(sweep), "-o", str(tmp_path / "rep"), "--quiet") == 0
    runs = pd.read_csv(tmp_path / "rep" / "runs.csv")
    assert sorted(zip(runs.policy, runs.seed, strict=True)) == [
        ("frozen", 0),
        ("frozen", 1),
        ("hourly", 0),
        ("hourly", 1),
    ]
    for col in ("expected_ctr", "oracle_expected_ctr", "regret", "staleness_mean_s"):
        assert runs[col].map(math.isfinite).all(), col
    assert (runs.expected_ctr < runs.oracle_expected_ctr).all()
    ts = pd.read_parquet(tmp_path / "rep" / "timeseries.parquet")
    assert ts.groupby(["policy", "seed"]).ngroups == 4
    assert (tmp_path / "rep" / "ctr_over_time.pdf").exists()


def test_interrupted_sweep_resumes_and_redoes_only_unfinished_runs(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "policy=hourly,frozen", *SMALL, f"hydra.sweep.dir={sweep}"]
    assert simrec_cmd(*args, cwd=tmp_path).returncode == 0
    done = sweep / "0" / "summary.json"
    lost = sweep / "1" / "summary.json"
    stamp = done.stat().st_mtime_ns
    before = lost.read_text()
    lost.unlink()  # as if the run had been interrupted before finishing
    p = simrec_cmd(*args, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert done.stat().st_mtime_ns == stamp  # finished run skipped
    assert lost.exists()  # redone, identically but for its wall time
    strip = [line for line in before.splitlines() if "wall_time_s" not in line]
    assert [line for line in lost.read_text().splitlines() if "wall_time_s" not in line] == strip


def test_a_failing_run_is_reported_and_the_others_finish(tmp_path):
    sweep = tmp_path / "sweep"
    p = simrec_cmd(
        "-m",
        "policy=hourly",
        "policy.interval_s=3600,-5,1800",
        *SMALL,
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert p.returncode == 0
    assert "policy.interval_s=-5.0 is not allowed" in p.stderr
    assert (sweep / "0" / "summary.json").exists() and (sweep / "2" / "summary.json").exists()
    assert (sweep / "1" / "FAILED").exists() and not (sweep / "1" / "summary.json").exists()


def test_a_run_of_another_config_is_run_again_not_reused(tmp_path):
    """A directory is reused only for the config that wrote it (same ``run_id``)."""
    import json

    out = tmp_path / "run"
    args = ["policy=hourly", *SMALL, f"hydra.run.dir={out}"]
    assert simrec_cmd(*args, "seed=0", cwd=tmp_path).returncode == 0
    first = json.loads((out / "summary.json").read_text())
    p = simrec_cmd(*args, "seed=1", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "holds a run of another config; running again" in p.stderr
    second = json.loads((out / "summary.json").read_text())
    assert second["seed"] == 1 and second["run_id"] != first["run_id"]
    ts = pd.read_parquet(out / "timeseries.parquet")
    assert set(ts["seed"]) == {1}  # every table replaced, not only the summary
    stamp = (out / "summary.json").stat().st_mtime_ns
    p = simrec_cmd(*args, "seed=1", cwd=tmp_path)  # the same config again: reused
    assert p.returncode == 0 and "running again" not in p.stderr
    assert (out / "summary.json").stat().st_mtime_ns == stamp
