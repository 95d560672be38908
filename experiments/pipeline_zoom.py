"""Zoomed pipeline timeline of figure (f): the stages of a few updates, one row per datacenter.

``simrec-report`` draws ``pipeline_timeline`` over three updates, where an hourly update's
stages (minutes long) are thin slivers. This draws the same figure over a narrow window:
by default from the trigger of the first update of the measured period to the end of its
last stage, so save, validate, the per-datacenter transfers and loads are readable.

Usage::

    python experiments/pipeline_zoom.py SWEEP_DIR [-o OUT] [--updates N | --window-s S]

Writes ``OUT/pipeline_timeline_zoom.pdf`` and ``.png`` (``OUT`` default
``SWEEP_DIR/report``). Reads files only, through the public API.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from simrec.results.collect import collect
from simrec.viz.figures import NoDataError, fig_pipeline_timeline
from simrec.viz.style import save


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pipeline_zoom.py", description=__doc__.split("\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="run or sweep directory")
    parser.add_argument("-o", "--out", type=Path, default=None, help="default SWEEP_DIR/report")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--updates", type=int, default=1, help="updates in the window (default 1)")
    group.add_argument(
        "--window-s", type=float, default=None, help="window length in seconds instead"
    )
    args = parser.parse_args(argv)

    collected = collect(args.sweep_dir, tables=["updates"])
    if collected.empty:
        print(f"pipeline_zoom.py: error: no finished run in {args.sweep_dir}", file=sys.stderr)
        return 2
    try:
        fig = fig_pipeline_timeline(
            collected.updates, window_s=args.window_s, n_updates=max(1, args.updates)
        )
    except NoDataError as exc:
        print(f"pipeline_zoom.py: error: {exc}", file=sys.stderr)
        return 2
    out = args.out if args.out is not None else args.sweep_dir / "report"
    for path in save(fig, out / "pipeline_timeline_zoom"):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
