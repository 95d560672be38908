"""Counters of the measured period, per time bucket, datacenter and cohort.

Cohorts: ``all`` requests; ``new_users``, registered users younger than
``users.new_user_window_s``; ``anonymous`` sessions; ``fresh_items``, impressions of items
younger than ``items.fresh_window_s`` (its ``requests`` counts requests with at least one such
impression; oracle and fallback are undefined there and left NaN). The oracle's expected
CTR is per oracle impression (its slate is always full), the others per shown impression.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pandas as pd
from numba import njit

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

    A served batch whose oracle is still being scored (in a worker thread) waits in a queue;
    batches are always added in the order they were served, so every sum is the same
    whenever the worker finishes, and the tables wait for the queue to empty. (What a batch
    reads of the world, the users' and items' birth times and anonymity, is written once
    when a row is created, so adding it a step later gives the same sums.)

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
        self.measure_s = measure_s
        self.n_buckets = int(np.ceil(measure_s / bucket_s - 1e-9))
        shape = (self.n_buckets, len(dc_names), len(COHORTS))
        self.c = {name: np.zeros(shape) for name in _COUNTS}
        self.stale = np.zeros(shape[:2])
        self.since = np.zeros(shape[:2])
        self.live = np.zeros(shape[:2])
        self.missing = np.zeros(shape[:2])
        self.stale_samples: list[tuple[int, float, int]] = []
        self._queue: deque[tuple[int, int, float, Served, float, float]] = deque()

    def bucket(self, t: float) -> int | None:
        if t < self.t0:
            return None
        b = int((t - self.t0) // self.bucket_s)
        return b if b < self.n_buckets else None

    def record(
        self, dc: int, t: float, s: Served, staleness_s: float, since_update_s: float
    ) -> None:
        """Record one served batch at time ``t`` (s): ``staleness_s`` is the age of the
        serving version's data, ``since_update_s`` the time since it last changed."""
        b = self.bucket(t)
        if b is None:
            return
        self._queue.append((dc, b, t, s, staleness_s, since_update_s))
        self.catch_up(wait=False)

    def catch_up(self, wait: bool = True) -> None:
        """Add the queued batches, in order: all of them (``wait``, waiting for their
        oracles), or those before the first whose oracle is not yet scored."""
        q = self._queue
        while q and (wait or q[0][3].oracle.done()):
            self._add(*q.popleft())

    def _add(
        self, dc: int, b: int, t: float, s: Served, staleness_s: float, since_update_s: float
    ) -> None:
        w = self.world
        sums = _tally(
            s.users,
            s.items,
            s.clicks,
            s.p,
            s.oracle_expected,
            s.fallback,
            w.users.t.anonymous,
            w.users.t.birth_s,
            w.items.t.birth_s,
            t - w.cfg.users.new_user_window_s,
            t - w.cfg.items.fresh_window_s,
        )
        sums[_COUNTS.index("oracle_impressions")] *= s.oracle_slots
        for name, row in zip(_COUNTS, sums, strict=True):
            self.c[name][b, dc] += row
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
        self.catch_up()
        nb, nd, nc = self.c["requests"].shape
        b, d, k = np.meshgrid(np.arange(nb), np.arange(nd), np.arange(nc), indexing="ij")
        start = (b.ravel() * self.bucket_s).astype(float)
        df = pd.DataFrame(
            {
                "time_s": start,
                # the last bucket ends with the run when sim.bucket_s does not divide it
                "bucket_s": np.minimum(float(self.bucket_s), self.measure_s - start),
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
        self.catch_up()
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


@njit(cache=True, nogil=True)
def _tally(
    users,
    items,
    clicks,
    p,
    oracle,
    fallback,
    anonymous,
    user_birth,
    item_birth,
    new_after,
    fresh_after,
):
    """Sums of one served batch per counter (rows in ``_COUNTS`` order) and cohort (columns
    in ``COHORTS`` order). Users born after ``new_after`` are new, items born after
    ``fresh_after`` fresh; ``oracle_impressions`` counts requests (times slots outside)."""
    out = np.zeros((len(_COUNTS), len(COHORTS)))
    B, k = items.shape
    for r in range(B):
        u = users[r]
        anon = anonymous[u]
        new = not anon and user_birth[u] > new_after
        n_imp = 0
        n_clk = 0
        e = 0.0
        f_imp = 0
        f_clk = 0
        f_e = 0.0
        for j in range(k):
            i = items[r, j]
            if i < 0:
                continue
            n_imp += 1
            n_clk += clicks[r, j]
            e += p[r, j]
            if item_birth[i] > fresh_after:
                f_imp += 1
                f_clk += clicks[r, j]
                f_e += p[r, j]
        for c in range(3):
            if c == 1 and not new or c == 2 and not anon:
                continue
            out[0, c] += 1
            out[1, c] += n_imp
            out[2, c] += n_clk
            out[3, c] += e
            out[4, c] += 1
            out[5, c] += oracle[r]
            out[6, c] += fallback[r]
        out[0, 3] += f_imp > 0
        out[1, 3] += f_imp
        out[2, 3] += f_clk
        out[3, 3] += f_e
    return out


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """Quantile ``q`` of a weighted sample (inverse of the weighted ECDF)."""
    if len(values) == 0 or weights.sum() == 0:
        return float("nan")
    order = np.argsort(values)
    v, w = np.asarray(values)[order], np.asarray(weights)[order]
    cum = np.cumsum(w)
    return float(v[np.searchsorted(cum, q * cum[-1], side="left")])
