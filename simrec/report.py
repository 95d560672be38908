"""``simrec-report``: tables and paper figures from finished runs.

Usage::

    simrec-report DIR [DIR ...] [-o OUT] [--quiet]

Reads every finished run under the given run or sweep directories and writes
to ``OUT`` (default ``DIR/report/`` of the first ``DIR``):

- ``runs.csv`` and ``runs.parquet``: one row per run (flat ``summary.json``);
- ``timeseries.parquet``: the merged time series of all runs;
- ``NAME.pdf`` and ``NAME.png`` for each figure of
  :data:`simrec.viz.figures.FIGURES` that has data.

Every file is written to a temporary file in ``OUT`` and renamed into place,
so an interrupted report never leaves a half-written file. Unless ``--quiet``,
prints one line per policy comparing the policies. Exit status: 0 on success,
2 when no finished run is found (or a directory does not exist).

The simulator itself is never imported: this reads files only.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from simrec.results.collect import Collected, atomic_output, collect

__all__ = ["comparison_table", "main", "write_report"]

PROG = "simrec-report"

#: Summary columns in the comparison table: column → (header, kind).
COMPARISON_COLUMNS: dict[str, tuple[str, str]] = {
    "expected_ctr": ("exp. CTR", "ctr"),
    "regret": ("regret", "ctr"),
    "staleness_mean_s": ("staleness mean", "duration"),
    "bytes_moved_per_day": ("bytes/day", "bytes"),
    "new_item_first_impression_median_s": ("first impr. median", "duration"),
}


def comparison_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per-policy means over seeds of the headline metrics.

    One row per policy (per policy and interval, scenario or infra when the
    runs hold several), in legend order. A ``null`` first-impression median
    (items never shown) counts as infinitely late: the median over seeds is
    then ``inf`` if at least half the seeds never showed new items.

    Args:
        runs: The ``runs`` table of :func:`simrec.results.collect.collect`.

    Returns:
        Columns: the grouping columns, ``n_seeds``, ``expected_ctr``, ``regret``
        (CTR units), ``staleness_mean_s`` (s), ``bytes_moved_per_day`` (bytes)
        and ``new_item_first_impression_median_s`` (s). Missing metrics are NaN.
    """
    from simrec.viz.style import policy_order

    keys = ["policy"]
    if "policy_interval_s" in runs and (
        runs.groupby("policy")["policy_interval_s"].nunique(dropna=False).max() > 1
    ):
        keys.append("policy_interval_s")
    keys += [c for c in ("scenario", "infra") if c in runs and runs[c].nunique() > 1]
    df = runs.copy()
    for col in COMPARISON_COLUMNS:
        if col not in df:
            df[col] = np.nan
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    fi = "new_item_first_impression_median_s"
    df[fi] = df[fi].fillna(np.inf)
    g = df.groupby(keys, dropna=False, sort=False)
    out = g[[c for c in COMPARISON_COLUMNS if c != fi]].mean()
    out[fi] = g[fi].median()
    out.insert(0, "n_seeds", g.size())
    out = out.reset_index()
    order = {p: i for i, p in enumerate(policy_order(out["policy"]))}
    out = out.sort_values(
        ["policy", *keys[1:]], key=lambda s: s.map(order) if s.name == "policy" else s
    )
    return out.reset_index(drop=True)


def _format_table(table: pd.DataFrame) -> str:
    from simrec.viz.style import format_bytes, format_duration

    policy = table["policy"].astype(str)
    shown = pd.DataFrame({"policy": policy.str.ljust(policy.str.len().max())})
    if "policy_interval_s" in table:
        shown["interval"] = table["policy_interval_s"].map(
            lambda v: format_duration(v) if np.isfinite(v) else "-"
        )
    for col in ("scenario", "infra"):
        if col in table:
            shown[col] = table[col].astype(str)
    shown["seeds"] = table["n_seeds"].astype(str)
    for col, (header, kind) in COMPARISON_COLUMNS.items():
        v = table[col]
        if kind == "ctr":
            shown[header] = v.map(lambda x: "n/a" if pd.isna(x) else f"{x:.4f}")
        elif kind == "bytes":
            shown[header] = v.map(format_bytes)
        else:
            shown[header] = v.map(lambda x: "n/a" if pd.isna(x) else format_duration(x))
    return shown.to_string(index=False)


def write_report(collected: Collected, out: Path) -> list[Path]:
    """Write tables and figures of ``collected`` to ``out``, each atomically.

    Args:
        collected: Runs to report on.
        out: Output folder (created).

    Returns:
        Every path written.
    """
    from simrec.viz.figures import draw_all

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with atomic_output(out / "runs.csv") as tmp:
        collected.runs.to_csv(tmp, index=False)
    written.append(out / "runs.csv")
    with atomic_output(out / "runs.parquet") as tmp:
        collected.runs.to_parquet(tmp, index=False)
    written.append(out / "runs.parquet")
    with atomic_output(out / "timeseries.parquet") as tmp:
        collected.timeseries.to_parquet(tmp, index=False)
    written.append(out / "timeseries.parquet")
    written += draw_all(collected, out)
    return written


def _one_line_warnings(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001
    print(f"{PROG}: warning: {message}", file=sys.stderr if file is None else file)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``simrec-report``.

    Args:
        argv: Command-line arguments without the program name; default
            ``sys.argv[1:]``.

    Returns:
        Exit status: 0 on success, 2 if no finished run was found, a
        directory does not exist or the report cannot be written.
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Tables and paper figures from finished simrec runs.",
    )
    parser.add_argument(
        "dirs",
        nargs="+",
        type=Path,
        metavar="DIR",
        help="run or sweep directory (searched recursively)",
    )
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        default=None,
        help="output folder (default: DIR/report of the first DIR)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="do not print the comparison table"
    )
    args = parser.parse_args(argv)

    with warnings.catch_warnings():  # restores showwarning on exit
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = _one_line_warnings
        try:
            collected = collect(args.dirs)
        except FileNotFoundError as exc:
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            return 2
        if collected.empty:
            dirs = " ".join(str(d) for d in args.dirs)
            print(f"{PROG}: error: no finished run (summary.json) found in {dirs}", file=sys.stderr)
            return 2
        out = args.out if args.out is not None else args.dirs[0] / "report"
        try:
            written = write_report(collected, out)
        except OSError as exc:
            print(f"{PROG}: error: cannot write the report to {out}: {exc}", file=sys.stderr)
            return 2

    if not args.quiet:
        table = comparison_table(collected.runs)
        print(f"{len(collected)} runs, {len(written)} files written to {out}")
        print(_format_table(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
