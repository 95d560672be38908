"""experiments/: the Hydra experiment configs compose, and the figure scripts run at SMALL=1.

Every script runs at SMALL=1: about 7 s each, 11 s for the interval sweep, 45 s in all on two
idle cores.
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_module

from simrec.cli import to_config
from simrec.engine import check
from simrec.policies import POLICIES

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
CONF = EXPERIMENTS / "conf"
EXPERIMENT_NAMES = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
# figure script -> (experiment configs it runs, main figure it is for)
SCRIPTS = {
    "fig_ctr_over_time.sh": (["ctr_over_time"], "ctr_over_time"),
    "fig_ctr_decay.sh": (["ctr_decay"], "ctr_decay"),
    "fig_interval_sweep.sh": (["interval_sweep", "interval_sweep_bounds"], "ctr_vs_interval"),
    "fig_staleness_cdf.sh": (["staleness_cdf"], "staleness_cdf"),
    "fig_first_impression.sh": (["first_impression"], "first_impression"),
    "fig_pipeline_timeline.sh": (["pipeline_timeline"], "pipeline_timeline_zoom"),
}
INTERVALS = [300.0, 900.0, 3600.0, 10800.0, 21600.0, 86400.0]


def compose_experiment(name: str, *overrides: str, hydra: bool = False):
    """The experiment's config (with the ``hydra`` node, unresolvable outside a run, if asked)."""
    with initialize_config_module(config_module="simrec.conf", version_base="1.3"):
        return compose(
            config_name="config",
            overrides=[f"+experiment={name}", f"hydra.searchpath=[file://{CONF}]", *overrides],
            return_hydra_config=hydra,
        )


def sweep_points(name: str) -> list[list[str]]:
    """The overrides of every job of an experiment's sweep (the basic sweeper's grid)."""
    params = compose_experiment(name, hydra=True).hydra.sweeper.params or {}
    axes = [[f"{k}={v.strip()}" for v in str(vals).split(",")] for k, vals in params.items()]
    return [list(p) for p in itertools.product(*axes)]


def run_script(script: str, results: Path) -> subprocess.CompletedProcess:
    bindir = Path(sys.executable).parent  # the venv's simrec, simrec-report and python
    if not (bindir / "simrec").exists() and shutil.which("simrec") is None:
        pytest.skip("the simrec command is not installed")
    env = {
        **os.environ,
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        "SMALL": "1",
        "RESULTS": str(results),
        "N_JOBS": "2",
        "MPLBACKEND": "Agg",
    }
    return subprocess.run(
        ["bash", str(EXPERIMENTS / script)],
        env=env,
        cwd=results,
        capture_output=True,
        text=True,
        timeout=600,
    )


# --- configs -------------------------------------------------------------------------


def test_every_experiment_config_has_a_script():
    used = {name for names, _ in SCRIPTS.values() for name in names}
    assert used == set(EXPERIMENT_NAMES)
    run_all = (EXPERIMENTS / "run_all.sh").read_text()
    readme = (EXPERIMENTS / "README.md").read_text()
    for script, (_, figure) in SCRIPTS.items():
        assert (EXPERIMENTS / script).is_file()
        assert os.access(EXPERIMENTS / script, os.X_OK), f"{script} is not executable"
        assert script[len("fig_") : -len(".sh")] in run_all
        assert f"`experiments/{script}`" in readme and f"/report/{figure}.png`" in readme


@pytest.mark.parametrize("name", EXPERIMENT_NAMES)
def test_every_job_of_every_experiment_is_a_valid_run(name):
    cfg = compose_experiment(name, hydra=True)
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")
    assert cfg.hydra.sweep.dir.startswith("results/")
    for point in sweep_points(name):
        job = compose_experiment(name, *point)
        assert job.policy.name in POLICIES, point
        check(to_config(job))


def test_interval_sweep_is_the_planned_grid():
    assert compose_experiment("interval_sweep").policy.name == "periodic"
    jobs = {tuple(p) for p in sweep_points("interval_sweep")}  # (policy.interval_s=, seed=)
    assert len(jobs) == len(INTERVALS) * 3
    assert {float(i.split("=")[1]) for i, _ in jobs} == set(INTERVALS)
    assert {s for _, s in jobs} == {"seed=0", "seed=1", "seed=2"}
    bounds = {tuple(p) for p in sweep_points("interval_sweep_bounds")}
    assert {p for p, _ in bounds} == {"policy=online", "policy=frozen", "policy=oracle"}
    assert {s for _, s in bounds} == {"seed=0", "seed=1", "seed=2"}


def test_small_overrides_shrink_every_experiment():
    small = ["users.initial=2000", "items.initial=800", "sim.days=0.2", "sim.warmup_days=0.2"]
    text = (EXPERIMENTS / "common.sh").read_text()
    for item in [*small, "seed=0"]:
        assert item in text
    for name in EXPERIMENT_NAMES:
        cfg = to_config(compose_experiment(name, *small, "seed=0"))
        assert cfg.users.initial == 2000 and cfg.sim.days == 0.2 and cfg.seed == 0


# --- scripts -------------------------------------------------------------------------


def _assert_figure(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000, path
    with open(path, "rb") as fh:
        head = fh.read(8)
    assert head.startswith(b"\x89PNG") if path.suffix == ".png" else head.startswith(b"%PDF")


def test_interval_sweep_script_small(tmp_path):
    p = run_script("fig_interval_sweep.sh", tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    out = tmp_path / "interval_sweep-small"
    assert len(list((out / "periodic").glob("*/summary.json"))) == len(INTERVALS)
    assert len(list((out / "bounds").glob("*/summary.json"))) == 3

    runs = pd.read_csv(out / "report" / "runs.csv")
    assert len(runs) == len(INTERVALS) + 3  # one row per policy/interval and seed (one seed)
    assert set(runs["seed"]) == {0}
    assert runs["run_id"].is_unique
    periodic = runs[runs["policy"] == "periodic"].set_index("policy_interval_s")
    assert sorted(periodic.index) == INTERVALS
    assert set(runs.loc[runs["policy"] != "periodic", "policy"]) == {"online", "frozen", "oracle"}
    assert runs.loc[runs["policy"] == "online", "policy_interval_s"].item() == 60.0
    assert runs.loc[runs["policy"].isin(["frozen", "oracle"]), "policy_interval_s"].isna().all()
    ctr = runs["expected_ctr"].to_numpy(dtype=float)
    assert all(math.isfinite(v) and 0.0 < v < 1.0 for v in ctr)
    by_policy = runs.groupby("policy")["expected_ctr"].mean()
    assert by_policy["oracle"] > by_policy["online"] and by_policy["oracle"] > by_policy["frozen"]
    moved = periodic["bytes_moved_per_day"]
    assert moved[300.0] > moved[3600.0] >= moved[86400.0] >= 0.0
    assert runs.loc[runs["policy"].isin(["frozen", "oracle"]), "bytes_moved_per_day"].eq(0).all()

    for name in ("ctr_vs_interval", "ctr_over_time", "staleness_cdf"):
        for ext in ("png", "pdf"):
            _assert_figure(out / "report" / f"{name}.{ext}")
    # the comparison printed by simrec-report lists every configuration
    assert "periodic" in p.stdout and "oracle" in p.stdout


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s != "fig_interval_sweep.sh"])
def test_figure_script_small(script, tmp_path):
    p = run_script(script, tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    names, figure = SCRIPTS[script]
    out = tmp_path / f"{script[4:-3]}-small"
    runs = pd.read_csv(out / "report" / "runs.csv")
    n_jobs = sum(
        len({tuple(x for x in pt if not x.startswith("seed=")) for pt in sweep_points(n)})
        for n in names
    )
    assert len(runs) == n_jobs  # one seed at SMALL=1
    assert runs["expected_ctr"].map(math.isfinite).all()
    # the oracle counterfactual bounds every learned policy (the oracle policy draws its
    # own candidates, so its regret is only near 0: -0.0004 in ctr_over_time), and a run
    # of the oracle policy beats every other run of the script
    learned = runs[runs["policy"] != "oracle"]
    assert len(learned) and (learned["regret"] > 0.01).all(), learned[["policy", "regret"]]
    if "oracle" in set(runs["policy"]):
        best = runs.loc[runs["expected_ctr"].idxmax(), "policy"]
        assert best == "oracle", runs[["policy", "expected_ctr"]]
    for ext in ("png", "pdf"):
        _assert_figure(out / "report" / f"{figure}.{ext}")
