"""The catalogue (ground truth): items with Poisson arrivals and finite lifetimes."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from simrec.columns import Columns
from simrec.config import DAY_S, ItemSettings
from simrec.rng import categorical
from simrec.world.diurnal import Diurnal
from simrec.world.topics import Topics


class Items:
    """All items ever published, one id each, with their latent vectors and metadata.

    Item vector = topic centre + N(0, spread_var/d I); quality ~ N(0, quality_std^2);
    lifetime ~ Exp(mean_lifetime_s). Initial items have the stationary age distribution
    (ages ~ Exp(mean_lifetime_s)), so the catalogue starts in equilibrium.

    Args:
        cfg: item settings.
        topics: the topics (centres, arrival weights).
        diurnal: traffic cycle (used when ``diurnal_arrivals``).
        rng: the items stream.
    """

    def __init__(
        self, cfg: ItemSettings, topics: Topics, diurnal: Diurnal, rng: np.random.Generator
    ) -> None:
        self.cfg = cfg
        self.topics = topics
        self.diurnal = diurnal
        self.rng = rng
        self.d = topics.centres.shape[1]
        self.t = Columns(
            {
                "vec": (np.float32, (self.d,), 0.0),
                "topic": (np.int32, (), 0),
                "quality": (np.float32, (), 0.0),
                "birth_s": (np.float64, (), 0.0),
                "death_s": (np.float64, (), 0.0),
                "first_impression_s": (np.float64, (), np.nan),
                "first_model_impression_s": (np.float64, (), np.nan),
            },
            capacity=cfg.initial * 4,
        )
        self.arrival_rate_per_s = (
            cfg.arrival_rate_per_day / DAY_S
            if cfg.arrival_rate_per_day is not None
            else cfg.initial / cfg.mean_lifetime_s
        )
        ages = rng.exponential(cfg.mean_lifetime_s, cfg.initial)
        self.active = self._add(-np.sort(ages)[::-1], t=0.0)  # all alive: deaths are after 0

    def _add(self, birth: np.ndarray, t: float) -> np.ndarray:
        """Rows for items born at ``birth`` (sorted); returns their ids (not yet in
        ``active``)."""
        n = len(birth)
        ids = self.t.append(n)
        if n == 0:
            return ids
        tb = self.t
        new = tb.last(n)
        topic = categorical(self.rng, self.topics.arrival_weights(), n)
        tb.topic[new] = topic
        tb.vec[new] = self.topics.centres[topic] + self.rng.normal(
            0, math.sqrt(self.cfg.spread_var / self.d), (n, self.d)
        )
        tb.quality[new] = self.rng.normal(0, self.cfg.quality_std, n)
        tb.birth_s[new] = birth
        tb.death_s[new] = np.maximum(birth, t) + self.rng.exponential(self.cfg.mean_lifetime_s, n)
        return ids

    def advance(self, t0: float, t1: float) -> np.ndarray:
        """Publish the items born in (t0, t1] and retire those dead by t1; returns new ids.

        ``active`` stays sorted by birth time (ids are assigned in birth order)."""
        span = self.diurnal.integral(t0, t1) if self.cfg.diurnal_arrivals else t1 - t0
        n = self.rng.poisson(self.arrival_rate_per_s * span)
        born = self._add(np.sort(self.rng.uniform(t0, t1, n)), t0)
        self.active = _alive(self.active, born, self.t.death_s, t1)
        return born

    def freshness(self, ids: np.ndarray, t: float) -> np.ndarray:
        """Freshness boost (logit units) of ``ids`` at ``t``: boost * exp(-age / decay)."""
        age = np.maximum(t - self.t.birth_s[ids], 0.0)
        return (self.cfg.freshness_boost * np.exp(-age / self.cfg.freshness_decay_s)).astype(
            np.float32
        )


@njit(cache=True, nogil=True)
def _alive(ids, born, death_s, t):
    """The ids of ``ids`` then of ``born`` whose death time is after ``t``, in order (one
    pass, no masks)."""
    out = np.empty(len(ids) + len(born), np.int64)
    m = 0
    for src in (ids, born):
        for j in range(len(src)):
            i = src[j]
            out[m] = i
            m += death_s[i] > t
    return out[:m]
