"""Results of one run: tidy tables and a summary, written atomically and read back.

Files of a run directory (the schema is documented in docs/results.md):
``timeseries.parquet``, ``updates.parquet``, ``staleness.parquet``, ``items.parquet`` and
``summary.json``. ``summary.json`` is written last, so a directory with it is complete;
every file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simrec.config import to_dict
from simrec.metrics.recorder import weighted_quantile

TABLES = ("timeseries", "updates", "staleness", "items")


@dataclass
class Result:
    """What a run produced.

    Attributes:
        summary: flat headline numbers plus ``config`` (the resolved config) and
            ``simrec_version``.
        timeseries: one row per (bucket, datacenter, cohort).
        updates: one row per update attempt and datacenter.
        staleness: weighted sample of per-request staleness.
        items: items born in the measured period and their first impressions.
    """

    summary: dict[str, Any]
    timeseries: pd.DataFrame
    updates: pd.DataFrame
    staleness: pd.DataFrame
    items: pd.DataFrame

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the run into ``directory`` (created); ``summary.json`` last."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for name in TABLES:
            atomic_write_parquet(getattr(self, name), d / f"{name}.parquet")
        atomic_write_text(
            json.dumps(_jsonable(self.summary), indent=2, sort_keys=True), d / "summary.json"
        )
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Result:
        """Read a run written by :meth:`save`."""
        d = Path(directory)
        summary = json.loads((d / "summary.json").read_text())
        tables = {name: pd.read_parquet(d / f"{name}.parquet") for name in TABLES}
        return cls(summary=summary, **tables)


def atomic_write_text(text: str, path: Path) -> None:
    """Write ``text`` to ``path`` via a temporary file and an atomic rename."""
    _atomic(path, lambda tmp: Path(tmp).write_text(text))


def atomic_write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Write ``df`` to ``path`` as Parquet via a temporary file and an atomic rename."""
    _atomic(path, lambda tmp: df.to_parquet(tmp, index=False))


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are for sharing
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def run_id(cfg_dict: dict[str, Any]) -> str:
    """Stable id of a run: a hash of its resolved config (settings that cannot change the
    results, display and threads, excluded)."""
    sim = {k: v for k, v in cfg_dict["sim"].items() if k not in ("progress", "threads")}
    cfg_dict = {**cfg_dict, "sim": sim}
    blob = json.dumps(_jsonable(cfg_dict), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def build_result(state) -> Result:
    """Turn a finished :class:`simrec.engine.RunState` into a :class:`Result`."""
    from simrec import __version__

    cfg = state.cfg
    cfg_dict = to_dict(cfg)
    ident = {
        "run_id": run_id(cfg_dict),
        "policy": cfg.policy.name,
        "policy_interval_s": (
            float(cfg.policy.interval_s)
            if cfg.policy.interval_s is not None and cfg.policy.name not in ("frozen", "oracle")
            else math.nan
        ),
        "scenario": cfg.scenario,
        "infra": cfg.infra.name,
        "seed": cfg.seed,
    }
    ts = state.recorder.timeseries()
    upd = state.updates.frame()
    st = state.recorder.staleness()
    items = _items_table(state)
    allc = ts[ts["cohort"] == "all"]
    imp = allc["impressions"].sum()
    req = allc["requests"].sum()
    stale_q = (st["staleness_s"].to_numpy(), st["requests"].to_numpy())
    days = cfg.sim.days
    moved = state.bytes_at_end - state.bytes_at_start
    ttf = items["time_to_first_impression_s"].to_numpy()
    ttf = np.where(np.isnan(ttf), np.inf, ttf)
    median_ttf = float(np.median(ttf)) if len(ttf) else math.nan
    fulls = upd[upd["kind"] != "dense"] if len(upd) else upd
    summary = {
        **ident,
        "expected_ctr": float(allc["expected_clicks"].sum() / imp) if imp else math.nan,
        "ctr": float(allc["clicks"].sum() / imp) if imp else math.nan,
        "oracle_expected_ctr": float(
            allc["oracle_expected_clicks"].sum() / allc["oracle_impressions"].sum()
        )
        if imp
        else math.nan,
        "staleness_mean_s": float(np.average(stale_q[0], weights=stale_q[1]))
        if len(st)
        else math.nan,
        "staleness_p50_s": weighted_quantile(*stale_q, 0.5),
        "staleness_p99_s": weighted_quantile(*stale_q, 0.99),
        "time_since_update_mean_s": float(
            (allc["time_since_update_s"] * allc["requests"]).sum() / req
        )
        if req
        else math.nan,
        "bytes_moved": float(moved),
        "bytes_moved_per_day": float(moved / days),
        "updates_landed": int(fulls.loc[fulls["status"] == "landed", "update_id"].nunique())
        if len(fulls)
        else 0,
        "updates_rejected": int(fulls.loc[fulls["status"] == "rejected", "update_id"].nunique())
        if len(fulls)
        else 0,
        "updates_skipped": int(fulls.loc[fulls["status"] == "skipped", "update_id"].nunique())
        if len(fulls)
        else 0,
        "update_latency_mean_s": float((fulls["landed_s"] - fulls["trigger_s"]).mean())
        if len(fulls) and (fulls["status"] == "landed").any()
        else math.nan,
        "new_items": int(len(items)),
        "new_item_first_impression_median_s": median_ttf if math.isfinite(median_ttf) else None,
        "new_items_never_shown_share": float(np.mean(np.isinf(ttf))) if len(ttf) else math.nan,
        "fallback_request_share": float(allc["fallback_requests"].sum() / req) if req else math.nan,
        "requests": int(req),
        "impressions": int(imp),
        "measured_days": float(days),
        "wall_time_s": float(state.wall_time_s),
        "simrec_version": __version__,
        "config": cfg_dict,
    }
    summary["regret"] = summary["oracle_expected_ctr"] - summary["expected_ctr"]

    def tag(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        for k, v in reversed(ident.items()):
            df.insert(0, k, v)
        df["policy_interval_s"] = df["policy_interval_s"].astype(float)
        df["seed"] = df["seed"].astype("int64")
        return df

    return Result(summary, tag(ts), tag(upd), tag(st), tag(items))


def _items_table(state) -> pd.DataFrame:
    it = state.world.items.t
    birth = it.view("birth_s")
    ids = np.flatnonzero((birth >= state.measure_start_s) & (birth < state.end_s))
    first = it.first_impression_s[ids]
    origin = state.measure_start_s
    return pd.DataFrame(
        {
            "item_id": ids.astype("int64"),
            "birth_s": birth[ids] - origin,
            "first_impression_s": first - origin,
            "first_model_impression_s": it.first_model_impression_s[ids] - origin,
            "time_to_first_impression_s": first - birth[ids],
        }
    )
