"""Counters of the measured period, per time bucket, datacenter and cohort.

Cohorts: ``all`` requests; ``new_users``, registered users younger than
``users.new_user_window_s``; ``anonymous`` sessions; ``fresh_items``, impressions of items
younger than ``items.fresh_window_s`` (its ``requests`` counts requests with at least one such
impression; oracle and fallback are undefined there and left NaN). The oracle's expected
CTR is per oracle impression (its slate is always full), the others per shown impression.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simrec.serving.replica import Served
from simrec.world.world import World

COHORTS = ("all", "new_users", "anonymous", "fresh_items")
_COUNTS = (
    "requests",
    "impressions",
    "clicks",
    "expected_clicks",
    "oracle_impressions",
    "oracle_expected_clicks",
    "fallback_requests",
)


class Recorder:
    """Accumulates the metrics of the measured period.

    Args:
        world: ground truth (user and item metadata for cohorts).
        dc_names: inference datacenters, in index order.
        measure_start_s: start of the measured period (s); earlier events are not recorded.
        measure_s: length of the measured period (s).
        bucket_s: bucket width (s).
    """

    def __init__(
        self,
        world: World,
        dc_names: list[str],
        measure_start_s: float,
        measure_s: float,
        bucket_s: float,
    ) -> None:
        self.world = world
        self.dc_names = dc_names
        self.t0 = measure_start_s
        self.bucket_s = bucket_s
        self.n_buckets = int(np.ceil(measure_s / bucket_s - 1e-9))
        shape = (self.n_buckets, len(dc_names), len(COHORTS))
        self.c = {name: np.zeros(shape) for name in _COUNTS}
        self.stale = np.zeros(shape[:2])
        self.since = np.zeros(shape[:2])
        self.live = np.zeros(shape[:2])
        self.missing = np.zeros(shape[:2])
        self.stale_samples: list[tuple[int, float, int]] = []

    def bucket(self, t: float) -> int | None:
        if t < self.t0:
            return None
        b = int((t - self.t0) // self.bucket_s)
        return b if b < self.n_buckets else None

    def record(
        self, dc: int, t: float, s: Served, staleness_s: float, since_update_s: float
    ) -> None:
        """Record one served batch at time ``t``."""
        b = self.bucket(t)
        if b is None:
            return
        w = self.world
        ut, it = w.users.t, w.items.t
        anon = ut.anonymous[s.users]
        new = ~anon & (t - ut.birth_s[s.users] < w.cfg.users.new_user_window_s)
        shown = s.items >= 0
        n_imp = shown.sum(axis=1)
        clicks = s.clicks.sum(axis=1)
        exp = s.p.sum(axis=1)
        c = self.c
        for k, sel in ((0, slice(None)), (1, new), (2, anon)):
            c["requests"][b, dc, k] += len(s.users) if k == 0 else int(np.sum(sel))
            c["impressions"][b, dc, k] += n_imp[sel].sum()
            c["clicks"][b, dc, k] += clicks[sel].sum()
            c["expected_clicks"][b, dc, k] += exp[sel].sum()
            c["oracle_expected_clicks"][b, dc, k] += s.oracle_expected[sel].sum()
            c["oracle_impressions"][b, dc, k] += s.oracle_slots * (
                len(s.users) if k == 0 else int(np.sum(sel))
            )
            c["fallback_requests"][b, dc, k] += s.fallback[sel].sum()
        safe = np.where(shown, s.items, 0)
        fresh = shown & (t - it.birth_s[safe] < w.cfg.items.fresh_window_s)
        c["requests"][b, dc, 3] += fresh.any(axis=1).sum()
        c["impressions"][b, dc, 3] += fresh.sum()
        c["clicks"][b, dc, 3] += (s.clicks & fresh).sum()
        c["expected_clicks"][b, dc, 3] += s.p[fresh].sum()
        n = len(s.users)
        self.stale[b, dc] += staleness_s * n
        self.since[b, dc] += since_update_s * n
        self.stale_samples.append((dc, staleness_s, n))

    def record_coverage(self, dc: int, t: float, live: int, missing: int) -> None:
        """Live items, and live items absent from the serving version, at ``t``."""
        b = self.bucket(t)
        if b is not None:
            self.live[b, dc] = live
            self.missing[b, dc] = missing

    # --- tables -------------------------------------------------------------------------
    def timeseries(self) -> pd.DataFrame:
        """Tidy table: one row per (bucket, datacenter, cohort)."""
        nb, nd, nc = self.c["requests"].shape
        b, d, k = np.meshgrid(np.arange(nb), np.arange(nd), np.arange(nc), indexing="ij")
        df = pd.DataFrame(
            {
                "time_s": (b.ravel() * self.bucket_s).astype(float),
                "bucket_s": float(self.bucket_s),
                "datacenter": np.array(self.dc_names, dtype=object)[d.ravel()],
                "cohort": np.array(COHORTS, dtype=object)[k.ravel()],
            }
        )
        for name in _COUNTS:
            df[name] = self.c[name].ravel()
        for name in ("requests", "impressions", "clicks"):
            df[name] = df[name].astype("int64")
        fresh = df["cohort"] == "fresh_items"
        df.loc[fresh, ["oracle_impressions", "oracle_expected_clicks", "fallback_requests"]] = (
            np.nan
        )
        imp = df["impressions"].where(df["impressions"] > 0)
        df["ctr"] = df["clicks"] / imp
        df["expected_ctr"] = df["expected_clicks"] / imp
        # the oracle fills its whole slate: its CTR is per oracle impression, so a policy
        # that shows fewer items does not inflate the oracle's CTR
        oimp = df["oracle_impressions"].where(df["oracle_impressions"] > 0)
        df["oracle_expected_ctr"] = df["oracle_expected_clicks"] / oimp
        df["regret"] = df["oracle_expected_ctr"] - df["expected_ctr"]
        req = self.c["requests"][:, :, 0].ravel()
        per_bd = np.repeat(np.where(req > 0, self.stale.ravel() / np.maximum(req, 1), np.nan), nc)
        since = np.repeat(np.where(req > 0, self.since.ravel() / np.maximum(req, 1), np.nan), nc)
        df["staleness_mean_s"] = per_bd
        df["time_since_update_s"] = since
        df["live_items"] = np.repeat(self.live.ravel(), nc).astype("int64")
        df["live_items_missing"] = np.repeat(self.missing.ravel(), nc).astype("int64")
        return df

    def staleness(self) -> pd.DataFrame:
        """Weighted staleness sample: ``requests`` requests were served at ``staleness_s``."""
        if not self.stale_samples:
            return pd.DataFrame({"datacenter": [], "staleness_s": [], "requests": []})
        dc, s, n = map(np.asarray, zip(*self.stale_samples, strict=True))
        df = pd.DataFrame(
            {
                "datacenter": np.array(self.dc_names, dtype=object)[dc],
                "staleness_s": s.astype(float),
                "requests": n.astype("int64"),
            }
        )
        return df.groupby(["datacenter", "staleness_s"], as_index=False)["requests"].sum()


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """Quantile ``q`` of a weighted sample (inverse of the weighted ECDF)."""
    if len(values) == 0 or weights.sum() == 0:
        return float("nan")
    order = np.argsort(values)
    v, w = np.asarray(values)[order], np.asarray(weights)[order]
    cum = np.cumsum(w)
    return float(v[np.searchsorted(cum, q * cum[-1], side="left")])
