"""Find and load finished simulation runs from run and sweep directories.

A *run directory* holds ``summary.json`` plus four Parquet tables
(``timeseries``, ``updates``, ``staleness``, ``items``). A *sweep directory*
holds run directories at any depth (Hydra multirun: ``DIR/0/``, ``DIR/1/``...).
:func:`collect` merges every run found under any number of directories into one
:class:`Collected` bundle of DataFrames; nothing is shared between directories
except what is read here.

This module reads files only: it never imports the simulator.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "IDENTITY_COLUMNS",
    "TABLES",
    "Collected",
    "RunWarning",
    "atomic_output",
    "collect",
    "find_runs",
    "read_summary",
]

#: Columns present in every table that identify the run a row belongs to.
IDENTITY_COLUMNS: tuple[str, ...] = (
    "run_id",
    "policy",
    "policy_interval_s",
    "scenario",
    "infra",
    "seed",
)

#: Parquet tables of a run directory (file name without ``.parquet``).
TABLES: tuple[str, ...] = ("timeseries", "updates", "staleness", "items")

SUMMARY_FILE = "summary.json"

# Files that a report directory holds and a run directory never does; such a
# folder (e.g. the default ``DIR/report/``) is not mistaken for an unfinished run.
_REPORT_MARKERS = ("runs.parquet", "runs.csv")

_STR_IDENTITY = ("run_id", "policy", "scenario", "infra")

PathLike = str | os.PathLike[str]


class RunWarning(UserWarning):
    """A run directory was skipped or only partly read."""


@dataclass
class Collected:
    """Every table of every run found, merged across directories.

    Attributes:
        runs: One row per run: the flat keys of ``summary.json`` (nested values
            such as ``config`` dropped) plus ``run_dir`` (str, the directory it
            was read from). Times in seconds, bytes in bytes.
        timeseries: Rows of all runs' ``timeseries.parquet``.
        updates: Rows of all runs' ``updates.parquet``.
        staleness: Rows of all runs' ``staleness.parquet``.
        items: Rows of all runs' ``items.parquet``.
    """

    runs: pd.DataFrame = field(default_factory=lambda: _empty_frame())
    timeseries: pd.DataFrame = field(default_factory=lambda: _empty_frame())
    updates: pd.DataFrame = field(default_factory=lambda: _empty_frame())
    staleness: pd.DataFrame = field(default_factory=lambda: _empty_frame())
    items: pd.DataFrame = field(default_factory=lambda: _empty_frame())

    def __len__(self) -> int:
        """Number of runs."""
        return len(self.runs)

    @property
    def empty(self) -> bool:
        """True when no finished run was found."""
        return self.runs.empty

    def select(self, **identity: object) -> Collected:
        """Restrict every table to runs whose identity columns match.

        Args:
            **identity: Identity column name → wanted value (e.g.
                ``scenario="news", infra="geo3"``).

        Returns:
            A new :class:`Collected` with the matching runs only.
        """
        mask = pd.Series(True, index=self.runs.index)
        for key, value in identity.items():
            mask &= self.runs[key] == value
        keep = set(self.runs.loc[mask, "run_id"])
        out = {}
        for f in fields(self):
            df = getattr(self, f.name)
            out[f.name] = df[df["run_id"].isin(keep)].reset_index(drop=True)
        return Collected(**out)


def _empty_frame() -> pd.DataFrame:
    return _normalize_identity(pd.DataFrame({c: [] for c in IDENTITY_COLUMNS}))


def _natural_key(path: Path) -> list[object]:
    """Sort key so that ``2`` comes before ``10`` (Hydra job numbers)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def _walk(root: Path) -> Iterator[tuple[Path, bool]]:
    """Yield ``(run_dir, finished)`` below ``root`` in natural order.

    A folder with ``summary.json`` is a finished run; one with some of the run
    tables but no summary an unfinished one; neither is searched further. A
    report folder (``runs.parquet``/``runs.csv``) is skipped. A Hydra job
    folder (``.hydra/``) without any run file is searched, and reported as an
    unfinished run only if no run is found below it.
    """
    try:
        entries = list(os.scandir(root))
    except OSError as exc:
        warnings.warn(f"cannot read {root}: {exc}", RunWarning, stacklevel=3)
        return
    names = {e.name for e in entries}
    if SUMMARY_FILE in names:
        yield root, True
        return  # a run directory holds no further runs
    if any(m in names for m in _REPORT_MARKERS):
        return
    if any(f"{t}.parquet" in names for t in TABLES):
        yield root, False
        return
    subdirs = [Path(e.path) for e in entries if e.is_dir() and not e.name.startswith((".", "__"))]
    found = False
    for sub in sorted(subdirs, key=_natural_key):
        for item in _walk(sub):
            found = True
            yield item
    if not found and ".hydra" in names:
        yield root, False


def _as_paths(paths: PathLike | Iterable[PathLike]) -> list[Path]:
    if isinstance(paths, str | os.PathLike):
        return [Path(paths)]
    return [Path(p) for p in paths]


def find_runs(paths: PathLike | Iterable[PathLike]) -> list[Path]:
    """Find finished run directories under one or more directories.

    A directory is a run directory if it holds ``summary.json``. One that holds
    some of the run's Parquet files, or a Hydra job folder (``.hydra/``) with no
    run at or below it, but no ``summary.json`` is an unfinished run and is
    skipped with a :class:`RunWarning` (printed on stderr by default). Hidden
    folders and report folders (holding ``runs.parquet``) are not searched.

    Args:
        paths: Run directories, sweep directories, or a mix.

    Returns:
        Resolved run directories, each once, in the order given and in natural
        (``0, 1, 2, ..., 10``) order within a sweep.

    Raises:
        FileNotFoundError: If a given path does not exist or is not a directory.
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for root in _as_paths(paths):
        if not root.is_dir():
            raise FileNotFoundError(f"not a directory: {root}")
        for run_dir, finished in _walk(root.resolve()):
            if not finished:
                warnings.warn(
                    f"skipping unfinished run (no {SUMMARY_FILE}): {run_dir}",
                    RunWarning,
                    stacklevel=2,
                )
                continue
            if run_dir not in seen:
                seen.add(run_dir)
                found.append(run_dir)
    return found


def read_summary(run_dir: PathLike) -> dict[str, object]:
    """Read a run's ``summary.json`` and keep its flat (scalar) values.

    Args:
        run_dir: A run directory.

    Returns:
        The summary's keys with scalar values (nested dicts and lists such as
        ``config`` dropped; ``null`` becomes NaN) plus ``run_dir`` (str).
    """
    run_dir = Path(run_dir)
    with open(run_dir / SUMMARY_FILE, encoding="utf-8") as fh:
        raw = json.load(fh)
    if not isinstance(raw, dict):
        raise ValueError(f"{run_dir / SUMMARY_FILE}: expected a JSON object")
    flat: dict[str, object] = {
        k: (np.nan if v is None else v) for k, v in raw.items() if not isinstance(v, dict | list)
    }
    flat["run_dir"] = str(run_dir)
    return flat


def _normalize_identity(df: pd.DataFrame) -> pd.DataFrame:
    """Give identity columns their documented dtypes and put them first."""
    df = df.copy()
    for col in _STR_IDENTITY:
        if col in df:
            df[col] = df[col].astype("str")
    if "policy_interval_s" in df:
        df["policy_interval_s"] = pd.to_numeric(df["policy_interval_s"]).astype(float)
    if "seed" in df:
        seed = pd.to_numeric(df["seed"])
        df["seed"] = seed.astype("int64") if seed.notna().all() else seed.astype("Int64")
    front = [c for c in IDENTITY_COLUMNS if c in df]
    return df[front + [c for c in df.columns if c not in front]]


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if f is not None and len(f.columns)]
    if not frames:
        return _empty_frame()
    # Categorical (dictionary-encoded) identity columns with different
    # categories would otherwise fall back to object: decode them first.
    frames = [
        f.astype(
            {
                c: f[c].cat.categories.dtype
                for c in f.columns
                if isinstance(f[c].dtype, pd.CategoricalDtype)
            }
        )
        for f in frames
    ]
    with warnings.catch_warnings():
        # pandas warns about all-NA columns in concat; the result is what we want.
        warnings.simplefilter("ignore", FutureWarning)
        out = pd.concat(frames, ignore_index=True, sort=False)
    return _normalize_identity(out)


def _fill_identity(df: pd.DataFrame, summary: dict[str, object]) -> pd.DataFrame:
    """Add identity columns a table lacks, taken from the run's summary."""
    missing = [c for c in IDENTITY_COLUMNS if c not in df and c in summary]
    if missing:
        df = df.assign(**{c: summary[c] for c in missing})
    return df


def collect(
    paths: PathLike | Iterable[PathLike],
    tables: Iterable[str] | None = None,
) -> Collected:
    """Load every finished run under ``paths`` into merged DataFrames.

    Runs from several directories are concatenated. A run found twice (same
    ``run_id``, e.g. a directory given twice or a copy of a run) is kept once:
    the first one found wins and a :class:`RunWarning` names the duplicate.

    Args:
        paths: Run directories, sweep directories, or a mix.
        tables: Which Parquet tables to read (subset of :data:`TABLES`);
            default all. Tables not read are empty in the result.

    Returns:
        A :class:`Collected`. Its ``runs`` table has one row per run; the other
        tables have the columns documented for the run directory format, with
        identity columns first (``run_id``, ``policy``, ``scenario``,
        ``infra``: str; ``policy_interval_s``: float seconds, NaN when the
        policy has no interval; ``seed``: int).

    Raises:
        FileNotFoundError: If a given path does not exist.
        ValueError: If ``tables`` names an unknown table.
    """
    wanted = TABLES if tables is None else tuple(tables)
    unknown = set(wanted) - set(TABLES)
    if unknown:
        raise ValueError(f"unknown tables {sorted(unknown)}; choose from {TABLES}")

    summaries: list[dict[str, object]] = []
    parts: dict[str, list[pd.DataFrame]] = {t: [] for t in TABLES}
    seen_ids: dict[str, Path] = {}
    for run_dir in find_runs(paths):
        try:
            summary = read_summary(run_dir)
        except (OSError, ValueError) as exc:
            warnings.warn(f"skipping run with unreadable summary: {exc}", RunWarning, stacklevel=2)
            continue
        run_id = str(summary.get("run_id", run_dir.name))
        summary["run_id"] = run_id
        if run_id in seen_ids:
            warnings.warn(
                f"duplicate run_id {run_id!r}: keeping {seen_ids[run_id]}, dropping {run_dir}",
                RunWarning,
                stacklevel=2,
            )
            continue
        read: dict[str, pd.DataFrame] = {}
        try:
            for table in wanted:
                path = run_dir / f"{table}.parquet"
                if not path.exists():
                    warnings.warn(f"run {run_id!r} has no {path.name}", RunWarning, stacklevel=2)
                    continue
                read[table] = pd.read_parquet(path)
        except (OSError, ValueError) as exc:  # a damaged file (ours are written atomically)
            warnings.warn(
                f"skipping run {run_id!r} in {run_dir}: cannot read {path.name}: {exc}",
                RunWarning,
                stacklevel=2,
            )
            continue
        seen_ids[run_id] = run_dir
        summaries.append(summary)
        for table, df in read.items():
            parts[table].append(_fill_identity(df, summary))

    runs = _concat([pd.DataFrame(summaries)]) if summaries else _empty_frame()
    return Collected(runs=runs, **{t: _concat(parts[t]) for t in TABLES})


@contextlib.contextmanager
def atomic_output(path: PathLike) -> Iterator[Path]:
    """Write a file atomically: yield a temp path, then rename it over ``path``.

    The temporary file lives in the same folder as ``path`` (so the final
    ``os.replace`` is atomic on POSIX); if the block raises, it is removed and
    ``path`` is left untouched. Parent folders are created.

    Args:
        path: Final file path.

    Yields:
        The temporary path to write to (same suffix as ``path``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
