"""Users (ground truth): registered users with churn, and anonymous sessions.

A user's latent interest is ``taste + x(t)`` with ``x`` an Ornstein-Uhlenbeck process. The OU
state is advanced lazily and exactly (see :func:`simrec.world.interests.ou_step`) whenever a
user's interest is read, so the cost is per request, not per user per step.
"""

from __future__ import annotations

import math

import numpy as np

from simrec.columns import Columns
from simrec.config import DAY_S, InterestSettings, UserSettings
from simrec.world.diurnal import Diurnal
from simrec.world.interests import ou_step


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
        self.active = np.empty(0, dtype=np.int64)
        self._add(cfg.initial, birth=np.full(cfg.initial, -np.inf), t=0.0, anonymous=False)
        self._weights_dirty = True

    # --- population -------------------------------------------------------------------
    def _add(self, n: int, birth: np.ndarray, t: float, anonymous: bool) -> np.ndarray:
        ids = self.t.append(n)
        if n == 0:
            return ids
        tb = self.t
        tb.taste[ids] = self.rng_t.normal(0, math.sqrt(self.taste_var), (n, self.d))
        tb.drift[ids] = self.rng_t.normal(0, math.sqrt(self.drift_var), (n, self.d))
        tb.drift_t[ids] = t
        tb.birth_s[ids] = birth
        tb.anonymous[ids] = anonymous
        if anonymous:
            r = self.rng_anon
            life = r.exponential(self.cfg.session_length_s, n)
            tb.rate_per_s[ids] = self.cfg.session_requests_mean / self.cfg.session_length_s
            tb.home[ids] = r.choice(len(self.dc_p), size=n, p=self.dc_p)
        else:
            r = self.rng
            life = (
                r.exponential(self.lifetime_s, n)
                if math.isfinite(self.lifetime_s)
                else (np.full(n, np.inf))
            )
            tb.rate_per_s[ids] = (
                self.cfg.activity_median_per_day
                / DAY_S
                * np.exp(r.normal(0, self.cfg.activity_sigma, n))
            )
            tb.home[ids] = r.choice(len(self.dc_p), size=n, p=self.dc_p)
        tb.death_s[ids] = np.maximum(birth, t) + life
        self.active = np.concatenate([self.active, ids])
        self._weights_dirty = True
        return ids

    def advance(self, t0: float, t1: float) -> np.ndarray:
        """Births in (t0, t1] and deaths up to t1. Returns the ids born."""
        n_reg = self.rng.poisson(self.arrival_rate_per_s * (t1 - t0))
        born_reg = self.rng.uniform(t0, t1, n_reg)
        reg = self._add(n_reg, born_reg, t0, anonymous=False)
        n_anon = self.rng_anon.poisson(self.session_rate_per_s * self.diurnal.integral(t0, t1))
        born_anon = self.rng_anon.uniform(t0, t1, n_anon)
        anon = self._add(n_anon, born_anon, t0, anonymous=True)
        alive = self.t.death_s[self.active] > t1
        if not alive.all():
            self.active = self.active[alive]
            self._weights_dirty = True
        return np.concatenate([reg, anon])

    # --- traffic ------------------------------------------------------------------------
    def sample_requests(self, t0: float, t1: float, rng: np.random.Generator) -> np.ndarray:
        """User ids of the requests in [t0, t1): a Poisson process per user with rate
        ``rate_per_s * diurnal(t)`` for registered users (constant for sessions).

        Drawn as one Poisson total split multinomially in proportion to the rates, which is
        the same law as independent per-user Poisson counts.
        """
        if self._weights_dirty:
            tb = self.t
            ids = self.active
            self._anon_mask = tb.anonymous[ids]
            self._w_reg = np.where(self._anon_mask, 0.0, tb.rate_per_s[ids])
            self._w_anon = np.where(self._anon_mask, tb.rate_per_s[ids], 0.0)
            self._weights_dirty = False
        scale_reg = self.diurnal.integral(t0, t1)
        w = self._w_reg * scale_reg + self._w_anon * (t1 - t0)
        cum = np.cumsum(w)
        total = cum[-1] if len(cum) else 0.0
        n = rng.poisson(total)
        if n == 0:
            return np.empty(0, dtype=np.int64)
        pos = np.searchsorted(cum, rng.uniform(0, total, n), side="right")
        return self.active[np.minimum(pos, len(cum) - 1)]

    # --- interests ----------------------------------------------------------------------
    def interests(self, ids: np.ndarray, t: float) -> np.ndarray:
        """True interest vectors (len(ids), d) at time ``t``; advances the drift of ``ids``."""
        uniq = np.unique(ids)
        tb = self.t
        dt = t - tb.drift_t[uniq]
        move = dt > 0
        if move.any():
            u = uniq[move]
            tb.drift[u] = ou_step(tb.drift[u], dt[move], self.kappa, self.drift_var, self.rng_i)
            tb.drift_t[u] = t
        return tb.taste[ids] + tb.drift[ids]

    def alive_ids(self, t: float) -> np.ndarray:
        """Ids alive at ``t`` (born by then, not dead)."""
        ids = self.active
        tb = self.t
        return ids[(tb.death_s[ids] > t) & (tb.birth_s[ids] <= t)]
