"""Tests of simrec.results.collect and the simrec-report CLI on synthetic runs.

The helpers ``write_run`` and ``write_sweep`` build run directories in the
format the simulator writes (summary.json + four Parquet tables) with small,
plausible numbers; tests/test_figures.py reuses them.
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from simrec import report  # noqa: E402
from simrec.results.collect import (  # noqa: E402
    IDENTITY_COLUMNS,
    RunWarning,
    atomic_output,
    collect,
    find_runs,
)

DAY = 86400.0
INTERVALS = {
    "oracle": math.nan,
    "online": 60.0,  # continuous deltas, flushed every minute
    "minute": 60.0,
    "hourly": 3600.0,
    "daily": DAY,
    "frozen": math.nan,
}
DATACENTERS = ("us-east", "eu-west")
COHORTS = ("all", "new_users", "anonymous", "fresh_items")


# --- synthetic run directories -----------------------------------------------------


def _time_since_update(policy: str, t: np.ndarray, dc_lag: float) -> np.ndarray:
    """Seconds since the serving model landed, for bucket centres ``t``."""
    if policy == "oracle":
        return np.zeros_like(t)
    if policy == "frozen":
        return t + 2 * DAY  # trained before a two-day warm-up
    if policy == "online":
        return np.full_like(t, 20.0 + dc_lag / 10)
    interval = INTERVALS.get(policy, 7200.0)
    pipeline = min(0.5 * interval, 600.0) + dc_lag
    return np.mod(t - pipeline, interval) + pipeline


def _quality(tsu: np.ndarray) -> np.ndarray:
    """Expected CTR relative to the oracle after ``tsu`` seconds without update."""
    return 1.0 - 0.2 * np.log1p(tsu / 300.0) / np.log1p(4 * DAY / 300.0)


def make_run_tables(
    policy: str,
    seed: int,
    *,
    days: float = 2.0,
    bucket_s: float = 3600.0,
    scenario: str = "diurnal",
    infra: str = "two_dc",
    n_items: int = 150,
    run_id: str | None = None,
) -> tuple[dict, dict[str, pd.DataFrame]]:
    """Summary dict and the four tables of one synthetic run.

    Args:
        policy: Policy name (keys of ``INTERVALS`` or any other name).
        seed: Random seed; also the run's ``seed``.
        days: Length of the measured period, days.
        bucket_s: Time-series bucket, seconds.
        scenario: Scenario name.
        infra: Infra name.
        n_items: New items per run.
        run_id: Run id; default ``f"{scenario}-{infra}-{policy}-{seed}"``.

    Returns:
        ``(summary, tables)`` with tables ``timeseries``, ``updates``,
        ``staleness`` and ``items``.
    """
    rng = np.random.default_rng([seed, sum(map(ord, policy))])
    interval = INTERVALS.get(policy, 7200.0)
    ident = {
        "run_id": run_id or f"{scenario}-{infra}-{policy}-{seed}",
        "policy": policy,
        "policy_interval_s": interval,
        "scenario": scenario,
        "infra": infra,
        "seed": seed,
    }
    starts = np.arange(0.0, days * DAY, bucket_s)
    centre = starts + bucket_s / 2
    base_ctr = 0.05 * (1 + 0.15 * np.sin(2 * np.pi * centre / DAY)) * (1 + 0.02 * rng.normal())

    ts_rows = []
    for k, dc in enumerate(DATACENTERS):
        lag = 120.0 * (k + 1)
        tsu = _time_since_update(policy, centre, lag)
        q = _quality(tsu) * (1 + 0.005 * rng.normal(size=centre.size))
        for cohort in COHORTS:
            share = {"all": 1.0, "new_users": 0.1, "anonymous": 0.2, "fresh_items": 0.05}[cohort]
            requests = rng.poisson(2000 * share * (1 + 0.3 * np.sin(2 * np.pi * centre / DAY)))
            impressions = requests * 10
            ctr = base_ctr * q * (0.8 if cohort == "new_users" else 1.0)
            expected = impressions * ctr
            oracle = impressions * base_ctr if cohort != "fresh_items" else np.nan * expected
            clicks = rng.binomial(impressions, np.clip(ctr, 0, 1))
            fallback = rng.binomial(requests, 0.01)
            with np.errstate(invalid="ignore", divide="ignore"):
                ts_rows.append(
                    pd.DataFrame(
                        {
                            "time_s": starts,
                            "bucket_s": bucket_s,
                            "datacenter": dc,
                            "cohort": cohort,
                            "requests": requests.astype("int64"),
                            "impressions": impressions.astype("int64"),
                            "clicks": clicks.astype("int64"),
                            "expected_clicks": expected,
                            "oracle_expected_clicks": oracle,
                            "fallback_requests": fallback.astype("int64"),
                            "ctr": clicks / impressions,
                            "expected_ctr": expected / impressions,
                            "oracle_expected_ctr": oracle / impressions,
                            "regret": (oracle - expected) / impressions,
                            "staleness_mean_s": tsu + 1800.0,
                            "time_since_update_s": np.nan if policy == "oracle" else tsu,
                            "live_items": 5000,
                            "live_items_missing": rng.integers(0, 50, size=starts.size),
                        }
                    )
                )
    timeseries = pd.concat(ts_rows, ignore_index=True)

    # updates: one attempt per interval from warm-up on, every datacenter
    up_rows = []
    if np.isfinite(interval):
        triggers = np.arange(-min(DAY, 20 * interval), days * DAY, interval)
        for uid, trig in enumerate(triggers):
            kind = "full" if uid % 4 == 0 else "delta"
            nbytes = 4e9 if kind == "full" else 4e9 * min(1.0, interval / DAY) * 0.3
            save = (trig + 30, trig + 30 + 0.02 * nbytes / 4e6)
            val = (save[1], save[1] + 60)
            passed = bool(rng.random() > 0.1)
            for k, dc in enumerate(DATACENTERS):
                tr = (val[1], val[1] + nbytes / (1e8 / (k + 1))) if passed else (np.nan, np.nan)
                load = (tr[1], tr[1] + 45) if passed else (np.nan, np.nan)
                up_rows.append(
                    {
                        "update_id": uid,
                        "version": uid + 1,
                        "datacenter": dc,
                        "kind": kind,
                        "bytes": nbytes,
                        "trigger_s": trig,
                        "save_start_s": save[0],
                        "save_end_s": save[1],
                        "validate_start_s": val[0],
                        "validate_end_s": val[1],
                        "validation_passed": passed,
                        "transfer_start_s": tr[0],
                        "transfer_end_s": tr[1],
                        "load_start_s": load[0],
                        "load_end_s": load[1],
                        "landed_s": load[1],
                        "status": "landed" if passed else "rejected",
                        "data_time_s": trig,
                    }
                )
    updates = pd.DataFrame(up_rows, columns=UPDATE_COLUMNS)
    updates["validation_passed"] = updates["validation_passed"].astype("boolean")

    st_rows = []
    for k, dc in enumerate(DATACENTERS):
        tsu = _time_since_update(policy, rng.uniform(0, days * DAY, 60), 120.0 * (k + 1))
        st_rows.append(
            pd.DataFrame(
                {"datacenter": dc, "staleness_s": tsu + 1800.0, "requests": rng.poisson(500, 60)}
            )
        )
    staleness = pd.concat(st_rows, ignore_index=True)

    birth = np.sort(rng.uniform(0, days * DAY, n_items))
    median_delay = {
        "oracle": 120.0,
        "online": 300.0,
        "minute": 600.0,
        "hourly": 3600.0,
        "daily": 0.5 * DAY,
        "frozen": 2 * DAY,
    }.get(policy, 7200.0)
    delay = median_delay * rng.lognormal(0.0, 1.0, n_items)
    never = (birth + delay > days * DAY) | (rng.random(n_items) < 0.05)
    delay[never] = np.nan
    explore = np.where(never, np.nan, birth + delay * 0.5)
    items = pd.DataFrame(
        {
            "item_id": np.arange(n_items, dtype="int64") + 1000 * seed,
            "birth_s": birth,
            "first_impression_s": explore,
            "first_model_impression_s": birth + delay,
            "time_to_first_impression_s": delay,
        }
    )

    tables = {"timeseries": timeseries, "updates": updates, "staleness": staleness, "items": items}
    for name, df in tables.items():
        for col, value in reversed(ident.items()):
            df.insert(0, col, value)
        df["seed"] = df["seed"].astype("int64")
        tables[name] = df

    all_rows = timeseries[timeseries["cohort"] == "all"]
    imp = all_rows["impressions"].sum()
    w = staleness["requests"].to_numpy()
    s = staleness["staleness_s"].to_numpy()
    order = np.argsort(s)
    cw = np.cumsum(w[order]) / w.sum()
    landed = updates[updates["status"] == "landed"]
    measured = landed[landed["trigger_s"] >= 0]
    median_fi = float(np.nanmedian(delay)) if np.isfinite(delay).any() else None
    summary = {
        **ident,
        "policy_interval_s": None if math.isnan(interval) else interval,
        "expected_ctr": float(all_rows["expected_clicks"].sum() / imp),
        "ctr": float(all_rows["clicks"].sum() / imp),
        "oracle_expected_ctr": float(all_rows["oracle_expected_clicks"].sum() / imp),
        "regret": float(
            (all_rows["oracle_expected_clicks"].sum() - all_rows["expected_clicks"].sum()) / imp
        ),
        "staleness_mean_s": float(np.average(s, weights=w)),
        "staleness_p50_s": float(s[order][np.searchsorted(cw, 0.5)]),
        "staleness_p99_s": float(s[order][np.searchsorted(cw, 0.99)]),
        "bytes_moved": float(measured["bytes"].sum()),
        "bytes_moved_per_day": float(measured["bytes"].sum() / days),
        "updates_landed": int(measured["update_id"].nunique()),
        "updates_rejected": int((updates["status"] == "rejected").sum() // len(DATACENTERS)),
        "new_item_first_impression_median_s": median_fi,
        "fallback_request_share": float(
            all_rows["fallback_requests"].sum() / all_rows["requests"].sum()
        ),
        "measured_days": days,
        "config": {
            "policy": {"name": policy, "interval_s": interval},
            "seed": seed,
            "world": {"n_items": n_items},
        },
        "simrec_version": "0.1.0",
    }
    if policy == "frozen":
        summary["new_item_first_impression_median_s"] = None
    return summary, tables


UPDATE_COLUMNS = [
    "update_id", "version", "datacenter", "kind", "bytes", "trigger_s", "save_start_s",
    "save_end_s", "validate_start_s", "validate_end_s", "validation_passed",
    "transfer_start_s", "transfer_end_s", "load_start_s", "load_end_s", "landed_s",
    "status", "data_time_s",
]  # fmt: skip


def write_run(run_dir: Path, policy: str, seed: int, *, finished: bool = True, **kw) -> Path:
    """Write one synthetic run directory; ``finished=False`` omits summary.json."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / ".hydra").mkdir(exist_ok=True)
    summary, tables = make_run_tables(policy, seed, **kw)
    for name, df in tables.items():
        df.to_parquet(run_dir / f"{name}.parquet", index=False)
    if finished:
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return run_dir


def write_sweep(
    root: Path,
    policies=("hourly", "daily"),
    seeds=(0, 1),
    start: int = 0,
    **kw,
) -> list[Path]:
    """Write a Hydra-style multirun: ``root/0``, ``root/1``, ... one per run."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "multirun.yaml").write_text("hydra: {}\n")
    dirs = []
    i = start
    for policy in policies:
        for seed in seeds:
            dirs.append(write_run(root / str(i), policy, seed, **kw))
            i += 1
    return dirs


# --- collect ----------------------------------------------------------------------


def test_collect_one_row_per_run(tmp_path):
    write_sweep(tmp_path / "sweep")
    c = collect(tmp_path / "sweep")
    assert len(c.runs) == 4
    assert c.runs["run_id"].is_unique
    assert list(c.runs.columns[:6]) == list(IDENTITY_COLUMNS)
    assert "config" not in c.runs and "simrec_version" in c.runs
    assert c.runs["seed"].dtype == np.int64
    assert c.runs["policy_interval_s"].dtype == float
    assert set(c.runs["policy"]) == {"hourly", "daily"}
    for name in ("timeseries", "updates", "staleness", "items"):
        df = getattr(c, name)
        assert set(df["run_id"]) == set(c.runs["run_id"]), name
        assert list(df.columns[:6]) == list(IDENTITY_COLUMNS), name
    # 48 hourly buckets x 2 datacenters x 4 cohorts per run
    assert len(c.timeseries) == 4 * 48 * 2 * 4


def test_find_runs_natural_order_and_nesting(tmp_path):
    root = tmp_path / "multi"
    for i in (0, 2, 10):
        write_run(root / "2024-01-01" / "12-00-00" / str(i), "hourly", i)
    runs = find_runs([root])
    assert [p.name for p in runs] == ["0", "2", "10"]


def test_collect_merges_sweeps_and_drops_duplicates(tmp_path):
    write_sweep(tmp_path / "a", policies=("hourly",))
    write_sweep(tmp_path / "b", policies=("daily",))
    c = collect([tmp_path / "a", tmp_path / "b"])
    assert sorted(c.runs["policy"]) == ["daily", "daily", "hourly", "hourly"]
    # same directory given twice, and a copy of a run elsewhere
    shutil.copytree(tmp_path / "a" / "0", tmp_path / "copy" / "0")
    with pytest.warns(RunWarning, match="duplicate run_id"):
        c2 = collect([tmp_path / "a", tmp_path / "b", tmp_path / "a", tmp_path / "copy"])
    assert len(c2.runs) == 4
    assert len(c2.timeseries) == len(c.timeseries)
    assert len(c2.items) == len(c.items)


def test_collect_skips_unfinished_run(tmp_path):
    write_sweep(tmp_path / "s")
    write_run(tmp_path / "s" / "4", "hourly", 7, finished=False)
    (tmp_path / "s" / "5" / ".hydra").mkdir(parents=True)  # crashed before writing
    with pytest.warns(RunWarning, match="unfinished") as rec:
        c = collect(tmp_path / "s")
    assert len(rec) == 2
    assert len(c.runs) == 4
    assert 7 not in set(c.runs["seed"])
    assert 7 not in set(c.timeseries["seed"])


def test_collect_ignores_report_folder(tmp_path):
    write_sweep(tmp_path / "s")
    assert report.main([str(tmp_path / "s"), "--quiet"]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", RunWarning)
        assert len(collect(tmp_path / "s").runs) == 4


def test_collect_empty_and_missing(tmp_path):
    c = collect(tmp_path)
    assert c.empty and len(c) == 0
    assert list(c.timeseries.columns) == list(IDENTITY_COLUMNS)
    with pytest.raises(FileNotFoundError):
        collect(tmp_path / "nope")


def test_select(tmp_path):
    write_sweep(tmp_path / "s")
    c = collect(tmp_path / "s").select(policy="daily", seed=1)
    assert len(c.runs) == 1
    assert set(c.updates["policy"]) == {"daily"}


def test_atomic_output_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "x.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.csv"]


# --- report -----------------------------------------------------------------------

FIGURE_NAMES = (
    "ctr_over_time",
    "ctr_decay",
    "ctr_vs_interval",
    "staleness_cdf",
    "first_impression",
    "pipeline_timeline",
)


def test_report_writes_files(tmp_path, capsys):
    write_sweep(tmp_path / "s")
    out = tmp_path / "out"
    assert report.main([str(tmp_path / "s"), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "hourly" in printed and "daily" in printed and "exp. CTR" in printed

    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 4
    needed = [
        *IDENTITY_COLUMNS,
        "expected_ctr",
        "ctr",
        "oracle_expected_ctr",
        "regret",
        "staleness_mean_s",
        "bytes_moved_per_day",
        "updates_landed",
        "run_dir",
    ]
    assert set(needed) <= set(runs.columns)
    for col in (
        "expected_ctr",
        "regret",
        "staleness_mean_s",
        "bytes_moved_per_day",
        "policy_interval_s",
        "new_item_first_impression_median_s",
    ):
        assert np.isfinite(runs[col]).all(), col
    assert ((runs["expected_ctr"] > 0) & (runs["expected_ctr"] < 1)).all()
    assert (runs["expected_ctr"] <= runs["oracle_expected_ctr"]).all()
    # each row holds its own run's summary (a swapped column or row would not)
    for row in runs.to_dict("records"):
        summary = json.loads((Path(row["run_dir"]) / "summary.json").read_text())
        assert (row["policy"], row["seed"]) == (summary["policy"], summary["seed"])
        for col in ("expected_ctr", "regret", "staleness_mean_s", "bytes_moved_per_day"):
            assert row[col] == pytest.approx(summary[col], rel=1e-12), col

    pq = pd.read_parquet(out / "runs.parquet")
    assert list(pq.columns) == list(runs.columns) and len(pq) == 4
    ts = pd.read_parquet(out / "timeseries.parquet")
    assert len(ts) == 4 * 48 * 2 * 4
    assert {"time_s", "expected_clicks", "cohort", *IDENTITY_COLUMNS} <= set(ts.columns)
    assert np.isfinite(ts["expected_clicks"]).all()

    for name in FIGURE_NAMES:
        for ext in ("pdf", "png"):
            f = out / f"{name}.{ext}"
            assert f.stat().st_size > 1000, f
    assert (out / "ctr_over_time.pdf").read_bytes().startswith(b"%PDF")
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temp files left"


def test_report_default_out_and_quiet(tmp_path, capsys):
    write_sweep(tmp_path / "a", policies=("hourly",))
    write_sweep(tmp_path / "b", policies=("daily",))
    assert report.main([str(tmp_path / "a"), str(tmp_path / "b"), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    runs = pd.read_parquet(tmp_path / "a" / "report" / "runs.parquet")
    assert sorted(runs["policy"]) == ["daily", "daily", "hourly", "hourly"]
    # a second run over the same folder ignores its own report folder
    assert report.main([str(tmp_path / "a"), str(tmp_path / "b"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_report_warns_on_unfinished(tmp_path, capsys):
    write_sweep(tmp_path / "s", policies=("hourly",), seeds=(0,))
    write_run(tmp_path / "s" / "1", "daily", 0, finished=False)
    assert report.main([str(tmp_path / "s"), "-q"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simrec-report: warning: skipping unfinished")


def test_report_empty_dir_exits_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert report.main([str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no finished run" in err and "Traceback" not in err
    assert not (tmp_path / "empty" / "report").exists()
    assert report.main([str(tmp_path / "missing")]) == 2


def test_report_only_unfinished_exits_2(tmp_path, capsys):
    write_run(tmp_path / "s" / "0", "hourly", 0, finished=False)
    assert report.main([str(tmp_path / "s")]) == 2
    assert "no finished run" in capsys.readouterr().err


def test_comparison_table(tmp_path):
    write_sweep(tmp_path / "s", policies=("frozen", "hourly", "oracle", "daily"))
    runs = collect(tmp_path / "s").runs
    table = report.comparison_table(runs)
    assert list(table["policy"]) == ["oracle", "hourly", "daily", "frozen"]
    assert (table["n_seeds"] == 2).all()
    # means over the two seeds of each policy
    by = runs.groupby("policy")
    got = table.set_index("policy")
    for col in ("expected_ctr", "regret", "staleness_mean_s", "bytes_moved_per_day"):
        want = by[col].mean().reindex(got.index)
        np.testing.assert_allclose(got[col], want, rtol=1e-12, err_msg=col)
    fi = "new_item_first_impression_median_s"
    np.testing.assert_allclose(got.loc["hourly", fi], by[fi].median()["hourly"], rtol=1e-12)
    frozen = table.set_index("policy").loc["frozen"]
    assert frozen["new_item_first_impression_median_s"] == np.inf  # never
    assert "never" in report._format_table(table)


def test_hydra_job_with_nested_run_is_found(tmp_path):
    job = tmp_path / "sweep" / "0"
    (job / ".hydra").mkdir(parents=True)
    write_run(job / "output", "hourly", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RunWarning)
        assert find_runs(tmp_path / "sweep") == [(job / "output").resolve()]


def test_a_damaged_table_skips_its_run_with_a_warning(tmp_path, capsys):
    dirs = write_sweep(tmp_path / "s")
    damaged = dirs[1] / "timeseries.parquet"
    damaged.write_bytes(damaged.read_bytes()[:100])  # as a disk fault would leave it
    assert report.main([str(tmp_path / "s"), "-o", str(tmp_path / "out"), "-q"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "skipping run" in err[0] and "timeseries.parquet" in err[0]
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert sorted(zip(runs["policy"], runs["seed"], strict=True)) == [
        ("daily", 0),
        ("daily", 1),
        ("hourly", 0),  # hourly seed 1, the damaged run, is left out
    ]


def test_an_unwritable_report_folder_exits_2(tmp_path, capsys):
    write_sweep(tmp_path / "s", policies=("hourly",), seeds=(0,))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert report.main([str(tmp_path / "s"), "-o", str(blocker / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write the report" in err and "Traceback" not in err
