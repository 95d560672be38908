"""Users (ground truth): registered users with churn, and anonymous sessions.

A user's latent interest is ``taste + x(t)`` with ``x`` an Ornstein-Uhlenbeck process. The OU
state is advanced lazily and exactly (see :func:`simrec.world.interests.ou_step`) whenever a
user's interest is read, so the cost is per request, not per user per step.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from simrec.columns import Columns, grown
from simrec.config import DAY_S, InterestSettings, UserSettings
from simrec.rng import categorical
from simrec.world.diurnal import Diurnal


class Users:
    """All users and sessions, one id each (ids are never reused).

    Args:
        cfg: user population settings.
        interests: latent interest settings.
        dc_shares: traffic share of each inference datacenter (normalised here).
        diurnal: the daily traffic cycle.
        rng_users: stream for births, lifetimes and activity.
        rng_anon: stream for anonymous sessions.
        rng_interests: stream of the drift's increments.
        rng_tastes: stream of new users' tastes and initial drift states (separate, so that how
            often interests are read never changes who the users are).
    """

    def __init__(
        self,
        cfg: UserSettings,
        interests: InterestSettings,
        dc_shares: np.ndarray,
        diurnal: Diurnal,
        rng_users: np.random.Generator,
        rng_anon: np.random.Generator,
        rng_interests: np.random.Generator,
        rng_tastes: np.random.Generator,
    ) -> None:
        self.cfg = cfg
        self.icfg = interests
        self.d = interests.dim
        self.dc_p = np.asarray(dc_shares, dtype=np.float64) / np.sum(dc_shares)
        self.diurnal = diurnal
        self.rng = rng_users
        self.rng_anon = rng_anon
        self.rng_i = rng_interests
        self.rng_t = rng_tastes
        self.taste_var = interests.taste_var / self.d
        self.drift_var = interests.drift_var / self.d
        self.kappa = interests.drift_kappa_per_s
        self.t = Columns(
            {
                "taste": (np.float32, (self.d,), 0.0),
                "drift": (np.float32, (self.d,), 0.0),
                "drift_t": (np.float64, (), 0.0),
                "rate_per_s": (np.float64, (), 0.0),
                "birth_s": (np.float64, (), 0.0),
                "death_s": (np.float64, (), 0.0),
                "home": (np.int16, (), 0),
                "anonymous": (np.bool_, (), False),
            },
            capacity=cfg.initial * 2,
        )
        self.lifetime_s = cfg.mean_lifetime_days * DAY_S
        self.arrival_rate_per_s = (
            cfg.arrival_rate_per_day / DAY_S
            if cfg.arrival_rate_per_day is not None
            else (cfg.initial / self.lifetime_s if math.isfinite(self.lifetime_s) else 0.0)
        )
        mean_rate = cfg.activity_median_per_day / DAY_S * math.exp(cfg.activity_sigma**2 / 2)
        # Anonymous sessions make up `anonymous_share` of all requests on average.
        a = cfg.anonymous_share
        self.session_rate_per_s = a / (1 - a) * cfg.initial * mean_rate / cfg.session_requests_mean
        self._active = np.empty(0, dtype=np.int64)
        self._born: list[np.ndarray] = []  # ids added since `active` was last materialised
        self._pools = {False: _RatePool(), True: _RatePool()}
        self._next_compaction = 3_600.0
        self._mark = np.zeros(0, dtype=np.bool_)  # scratch of `_distinct_behind`
        self._add(cfg.initial, birth=np.full(cfg.initial, -np.inf), t=0.0, anonymous=False)

    # --- population -------------------------------------------------------------------
    def _add(self, n: int, birth: np.ndarray, t: float, anonymous: bool) -> np.ndarray:
        ids = self.t.append(n)
        if n == 0:
            return ids
        tb = self.t
        new = tb.last(n)
        tb.taste[new] = self.rng_t.normal(0, math.sqrt(self.taste_var), (n, self.d))
        tb.drift[new] = self.rng_t.normal(0, math.sqrt(self.drift_var), (n, self.d))
        tb.drift_t[new] = t
        tb.birth_s[new] = birth
        tb.anonymous[new] = anonymous
        if anonymous:
            r = self.rng_anon
            life = r.exponential(self.cfg.session_length_s, n)
            rates = np.full(n, self.cfg.session_requests_mean / self.cfg.session_length_s)
        else:
            r = self.rng
            life = (
                r.exponential(self.lifetime_s, n)
                if math.isfinite(self.lifetime_s)
                else (np.full(n, np.inf))
            )
            rates = (
                self.cfg.activity_median_per_day
                / DAY_S
                * np.exp(r.normal(0, self.cfg.activity_sigma, n))
            )
        tb.rate_per_s[new] = rates
        tb.home[new] = categorical(r, self.dc_p, n)
        tb.death_s[new] = np.maximum(birth, t) + life
        self._born.append(ids)
        self._pools[anonymous].add(ids, rates)
        return ids

    def advance(self, t0: float, t1: float) -> np.ndarray:
        """Births in (t0, t1] and deaths up to t1. Returns the ids born."""
        n_reg = self.rng.poisson(self.arrival_rate_per_s * (t1 - t0))
        born_reg = self.rng.uniform(t0, t1, n_reg)
        reg = self._add(n_reg, born_reg, t0, anonymous=False)
        n_anon = self.rng_anon.poisson(self.session_rate_per_s * self.diurnal.integral(t0, t1))
        born_anon = self.rng_anon.uniform(t0, t1, n_anon)
        anon = self._add(n_anon, born_anon, t0, anonymous=True)
        if t1 >= self._next_compaction:  # dead users are dropped lazily, once a sim hour
            active = self.active
            self._active = active[self.t.death_s[active] > t1]
            for pool in self._pools.values():
                pool.compact(self.t.death_s, t1)
            self._next_compaction = t1 + 3_600.0
        return np.concatenate([reg, anon])

    @property
    def active(self) -> np.ndarray:
        """Ids born so far and not yet dropped (dead ones are dropped once a sim hour)."""
        if self._born:
            self._active = np.concatenate([self._active, *self._born])
            self._born = []
        return self._active

    # --- traffic ------------------------------------------------------------------------
    def sample_requests(self, t0: float, t1: float, rng: np.random.Generator) -> np.ndarray:
        """User ids of the requests in [t0, t1): a Poisson process per user with rate
        ``rate_per_s * diurnal(t)`` for registered users (constant for sessions).

        Drawn per pool as one Poisson total split in proportion to the rates (the same law as
        independent per-user Poisson counts); draws of users dead by ``t0`` are discarded,
        which thins their processes to zero (dead users leave the pools lazily).
        """
        death = self.t.death_s
        out = []
        for anonymous, span in ((False, self.diurnal.integral(t0, t1)), (True, t1 - t0)):
            ids = self._pools[anonymous].draw(span, rng)
            out.append(ids[death[ids] > t0])
        return np.concatenate(out)

    # --- interests ----------------------------------------------------------------------
    def interests(self, ids: np.ndarray, t: float) -> np.ndarray:
        """True interest vectors (len(ids), d) at time ``t``; advances the drift of ``ids``
        (each distinct id once, in increasing id order, by :func:`ou_step`'s transition)."""
        tb = self.t
        if len(self._mark) < tb.size:
            self._mark = np.zeros(2 * tb.size, dtype=np.bool_)
        u = _distinct_behind(ids, tb.drift_t, t, self._mark)
        u.sort()
        xi = self.rng_i.standard_normal((len(u), self.d), dtype=np.float32)
        return _drift_and_read(
            ids, u, xi, t, self.kappa, self.drift_var, tb.taste, tb.drift, tb.drift_t
        )

    def alive_ids(self, t: float) -> np.ndarray:
        """Ids alive at ``t`` (born by then, not dead; ``active`` may still hold some dead)."""
        ids = self.active
        tb = self.t
        return ids[(tb.death_s[ids] > t) & (tb.birth_s[ids] <= t)]


@njit(cache=True, nogil=True)
def _distinct_behind(ids, drift_t, t, mark):
    """Distinct ``ids`` whose drift was last advanced before ``t``. ``mark`` is scratch over
    ids, all False on entry and on exit."""
    out = np.empty(len(ids), np.int64)
    n = 0
    for u in ids:
        if not mark[u] and drift_t[u] < t:
            mark[u] = True
            out[n] = u
            n += 1
    for j in range(n):
        mark[out[j]] = False
    return out[:n]


@njit(cache=True, nogil=True)
def _drift_and_read(ids, moving, xi, t, kappa, var, taste, drift, drift_t):
    """Advance the drift of ``moving`` to ``t`` with standard normals ``xi`` (exactly as
    :func:`simrec.world.interests.ou_step`), then return taste + drift of ``ids``."""
    for j in range(len(moving)):
        u = moving[j]
        decay = math.exp(-kappa * (t - drift_t[u]))
        sd = math.sqrt(var * (1.0 - decay * decay))
        for a in range(drift.shape[1]):
            drift[u, a] = np.float32(drift[u, a] * decay + sd * xi[j, a])
        drift_t[u] = t
    out = np.empty((len(ids), taste.shape[1]), np.float32)
    for r in range(len(ids)):
        u = ids[r]
        for a in range(taste.shape[1]):
            out[r, a] = taste[u, a] + drift[u, a]
    return out


class _RatePool:
    """Ids with their request rates as a cumulative sum, for drawing requests in proportion to
    the rates; births append in amortised O(births), dead ids stay until :meth:`compact`.

    A draw is the first index whose cumulative rate exceeds a uniform value, as
    ``searchsorted(cum, x, side="right")``, found from a guide table (the answer for each
    multiple of a fixed width ``_w``) in about one step instead of a binary search whose
    ~17 dependent loads miss the cache.
    """

    def __init__(self) -> None:
        self.n = 0
        self._ids = np.empty(1024, dtype=np.int64)
        self._rates = np.empty(1024, dtype=np.float64)
        self._cum = np.empty(1024, dtype=np.float64)
        self._guide = np.empty(1024, dtype=np.int64)
        self._nb = 0  # guide entries filled: those of the multiples of `_w` below the total
        self._w = 0.0

    def add(self, ids: np.ndarray, rates: np.ndarray) -> None:
        k = len(ids)
        if self.n + k > len(self._ids):
            self._ids = grown(self._ids, self.n + k)
            self._rates = grown(self._rates, self.n + k)
            self._cum = grown(self._cum, self.n + k)
        base = self._cum[self.n - 1] if self.n else 0.0
        self._ids[self.n : self.n + k] = ids
        self._rates[self.n : self.n + k] = rates
        self._cum[self.n : self.n + k] = base + rates.cumsum()
        self.n += k
        self._extend_guide()

    def compact(self, death_s: np.ndarray, t: float) -> None:
        ids = self._ids[: self.n]
        keep = death_s[ids] > t
        if not keep.all():
            m = int(keep.sum())
            self._ids[:m] = ids[keep]
            self._rates[:m] = self._rates[: self.n][keep]
            self._cum[:m] = np.cumsum(self._rates[:m])
            self.n = m
            self._nb = 0
            self._extend_guide()

    def _extend_guide(self) -> None:
        """Guide entries for the multiples of ``_w`` that the total now passes (a new width,
        about one id per entry, when the guide is empty)."""
        total = self._cum[self.n - 1] if self.n else 0.0
        if total <= 0.0:  # nothing to draw (no ids, or all rates zero): no guide yet
            self._nb = 0
            return
        if self._nb == 0:
            self._w = total / self.n
        need = int(total / self._w) + 2
        if need > len(self._guide):
            self._guide = grown(self._guide, need)
        self._nb = _fill_guide(self._cum[: self.n], self._w, self._guide, self._nb)

    def draw(self, span: float, rng: np.random.Generator) -> np.ndarray:
        """Ids of the requests over a span with rate integral ``span`` per unit rate."""
        if self.n == 0:
            return self._ids[:0]
        cum = self._cum[: self.n]
        total = cum[-1]
        n = rng.poisson(total * span)
        x = rng.uniform(0, total, n)
        return _guided_ids(cum, self._ids, x, self._guide[: self._nb], self._w)


@njit(cache=True, nogil=True)
def _fill_guide(cum, w, guide, nb):
    """guide[b] = searchsorted(cum, b * w, side="right") for b from ``nb`` while b * w is
    below the total; returns the new count. Entries below ``nb`` stay valid as ``cum``
    grows by appending (appended values exceed every old one)."""
    total = cum[-1]
    i = guide[nb - 1] if nb > 0 else 0
    b = nb
    while b * w < total:
        x = b * w
        while cum[i] <= x:
            i += 1
        guide[b] = i
        b += 1
    return b


@njit(cache=True, nogil=True)
def _guided_ids(cum, ids, x, guide, w):
    """ids[min(searchsorted(cum, x, side="right"), len(cum) - 1)], by the guide table."""
    n = len(cum)
    nb = len(guide)
    out = np.empty(len(x), np.int64)
    for r in range(len(x)):
        v = x[r]
        b = min(int(v / w), nb - 1)
        while b > 0 and b * w > v:  # guard against rounding in v / w
            b -= 1
        i = guide[b]
        while i < n and cum[i] <= v:
            i += 1
        out[r] = ids[min(i, n - 1)]
    return out
