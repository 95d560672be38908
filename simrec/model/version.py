"""Model versions: what a serving replica scores with.

A version answers three questions, all vectorised:

* which items it knows (only those can be retrieved);
* the user side of the score: a vector per user, or the fallback for unknown users;
* the item side: a vector and a bias per item at time ``t``.

The ranking score is ``user_vec . item_vec + item_bias``. Three kinds exist:
:class:`LearnedVersion` (a snapshot of the trained tables), :class:`OracleVersion` (the true
world frozen at snapshot time) and :class:`LiveOracle` (the true world now: the ``oracle``
policy's upper bound).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numba import njit

from simrec.columns import Columns, grown
from simrec.world.clicks import sigmoid

if TYPE_CHECKING:
    from simrec.world.world import World

#: Time constants (s) of the item-age features exp(-age / tau) of the learned model.
AGE_TAUS_S = np.array([3_600.0, 21_600.0, 86_400.0])


#: exp(-age / tau) = exp(-age / max tau) ** (max tau / tau) where that ratio is a whole
#: number (0 where it is not): compiled code then needs one exp per item, not three.
AGE_POWERS = np.array(
    [
        r if (r := round(AGE_TAUS_S.max() / tau)) * tau == AGE_TAUS_S.max() else 0
        for tau in AGE_TAUS_S
    ]
)


def age_features(age_s: np.ndarray) -> np.ndarray:
    """Item-age features (n, len(AGE_TAUS_S)) of ages in seconds."""
    return np.exp(-np.maximum(age_s, 0.0)[:, None] / AGE_TAUS_S[None, :]).astype(np.float32)


@njit(cache=True, nogil=True, inline="always")
def age_phi(age_s, taus, powers, out):
    """:func:`age_features` of one age into ``out`` (compiled code); ``taus`` and ``powers``
    are :data:`AGE_TAUS_S` and :data:`AGE_POWERS` (the largest time constant last)."""
    age = max(age_s, 0.0)
    e = math.exp(-age / taus[-1])
    for a in range(len(taus)):
        n = powers[a]
        if n > 0:
            x = 1.0
            b = e
            while n:  # e ** n by squaring
                if n & 1:
                    x *= b
                b *= b
                n >>= 1
            out[a] = x
        else:
            out[a] = math.exp(-age / taus[a])


@njit(cache=True, nogil=True, inline="always")
def _has(mask, i):
    """mask[i], with ids beyond the table counted as absent (the tables grow with ids).

    Written as a conditional expression: numba compiles ``i < len(mask) and mask[i]`` here
    into code 8x slower (0.2 ms instead of 28 us for 40 000 ids)."""
    return mask[i] if i < len(mask) else False


@njit(cache=True, nogil=True)
def _learned_items(ids, t, topic, birth_s, T, V, b, known, tb, w_age, taus, powers):
    """:meth:`LearnedVersion.item_side` of items ``ids`` at times ``t`` (one per item, s):
    vectors T[topic] + V and biases b + tb[topic] + age features . w_age (V and b count as 0
    for items the version lacks)."""
    n = len(ids)
    d = T.shape[1]
    vecs = np.empty((n, d), np.float32)
    bias = np.empty(n, np.float32)
    phi = np.empty(len(taus), np.float32)
    age = np.empty(n)
    tps = np.empty(n, np.int64)
    # the rows' gathers first, in a loop that does nothing else, so that many of their
    # cache misses are in flight at once (the tables are far larger than the core's cache)
    for j in range(n):
        i = ids[j]
        age[j] = t[j] - birth_s[i]
        tps[j] = topic[i]
        kn = _has(known, i)
        bias[j] = b[i] if kn else np.float32(0.0)
        for a in range(d):
            vecs[j, a] = V[i, a] if kn else np.float32(0.0)
    for j in range(n):
        tp = tps[j]
        age_phi(age[j], taus, powers, phi)
        z = tb[tp]
        for a in range(len(taus)):
            z += phi[a] * w_age[a]
        bias[j] = z + bias[j]
        for a in range(d):
            vecs[j, a] = T[tp, a] + vecs[j, a]
    return vecs, bias


@njit(cache=True, nogil=True)
def _learned_users(ids, U, known, fallback):
    """:meth:`LearnedVersion.user_side`: rows of ``U``, or ``fallback`` for users the version
    lacks; and which users it knows."""
    vecs = np.empty((len(ids), U.shape[1]), np.float32)
    kn = np.empty(len(ids), np.bool_)
    for r in range(len(ids)):
        u = ids[r]
        kn[r] = _has(known, u)
        row = U[u] if kn[r] else fallback
        for a in range(U.shape[1]):
            vecs[r, a] = row[a]
    return vecs, kn


@njit(cache=True, nogil=True)
def _lookup(mask, ids):
    """:func:`_has` of each of ``ids``."""
    out = np.empty(len(ids), np.bool_)
    for j in range(len(ids)):
        out[j] = _has(mask, ids[j])
    return out


class ModelVersion(Protocol):
    """What a serving replica needs from a model version."""

    version: int
    data_time_s: float

    def known_items(self, ids: np.ndarray) -> np.ndarray: ...

    def user_side(self, ids: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]: ...

    def item_side(self, ids: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]: ...

    def predict_proba(
        self, users: np.ndarray, items: np.ndarray, slots: np.ndarray, t: np.ndarray
    ) -> np.ndarray: ...


@dataclass
class LearnedVersion:
    """A copy of the learned parameters.

    Arrays are indexed by world id. ``catalogue`` gives item metadata known at publication
    (topic, publication time; shared, read-only).
    """

    version: int
    data_time_s: float
    U: np.ndarray
    u_known: np.ndarray
    u_fallback: np.ndarray
    V: np.ndarray
    b: np.ndarray
    i_known: np.ndarray
    T: np.ndarray
    tb: np.ndarray
    w0: float
    w_pos: np.ndarray
    w_age: np.ndarray
    catalogue: Columns = field(repr=False)
    owned: bool = False

    def known_items(self, ids: np.ndarray) -> np.ndarray:
        return _lookup(self.i_known, ids)

    def user_side(self, ids: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        return _learned_users(ids, self.U, self.u_known, self.u_fallback)

    def item_side(self, ids: np.ndarray, t: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cat = self.catalogue
        return _learned_items(
            ids,
            np.full(len(ids), t) if np.isscalar(t) else np.asarray(t, dtype=np.float64),
            cat.topic,
            cat.birth_s,
            self.T,
            self.V,
            self.b,
            self.i_known,
            self.tb,
            self.w_age,
            AGE_TAUS_S,
            AGE_POWERS,
        )

    def predict_proba(
        self, users: np.ndarray, items: np.ndarray, slots: np.ndarray, t: np.ndarray
    ) -> np.ndarray:
        uv, _ = self.user_side(users, 0.0)
        iv, bias = self.item_side(items, t)
        z = self.w0 + self.w_pos[slots] + bias + np.einsum("nd,nd->n", uv, iv)
        return sigmoid(z)

    def own(self) -> None:
        """Copy shared arrays before applying a delta in place (copy on write)."""
        if not self.owned:
            for name in ("U", "u_known", "V", "b", "i_known", "T", "tb", "w_pos", "w_age"):
                setattr(self, name, getattr(self, name).copy())
            self.owned = True

    def grow(self, n_users: int, n_items: int) -> None:
        """Make room for ids below ``n_users`` / ``n_items``."""
        if n_users > len(self.u_known):
            self.U = grown(self.U, n_users)
            self.u_known = grown(self.u_known, n_users)
        if n_items > len(self.i_known):
            self.V = grown(self.V, n_items)
            self.b = grown(self.b, n_items)
            self.i_known = grown(self.i_known, n_items)


class OracleVersion:
    """The true world state frozen at snapshot time ``t_snap``.

    Knows the users born by ``t_snap`` (those who left keep their last interest) and the
    items alive at ``t_snap``; scores with their true interests
    at ``t_snap`` and topic popularity at ``t_snap``; item freshness follows the item's age (a
    function of publication time, known to any model). Isolates staleness from estimation.
    """

    def __init__(self, world: World, t_snap: float, version: int) -> None:
        self.world = world
        self.version = version
        self.data_time_s = t_snap
        users = world.users
        # every user born by t_snap, so that validation on recent held-out requests scores
        # sessions that ended since with their (frozen) interest, as a trained table would
        n = users.t.size
        born = np.flatnonzero(users.t.birth_s[:n] <= t_snap)
        alive = users.alive_ids(t_snap)
        self.u_known = np.zeros(n, dtype=bool)
        self.u_known[born] = True
        self.U = np.zeros((n, users.d), dtype=np.float32)
        scale = world.cfg.clicks.affinity_scale
        self.U[born] = (users.t.taste[born] + users.t.drift[born]) * scale
        self.U[alive] = users.interests(alive, t_snap) * scale
        self.u_fallback = np.zeros(users.d, dtype=np.float32)
        items = world.items
        self.i_known = np.zeros(items.t.size, dtype=bool)
        self.i_known[items.active[items.t.birth_s[items.active] <= t_snap]] = True
        self.popularity = world.topics.popularity.copy()

    def known_items(self, ids: np.ndarray) -> np.ndarray:
        return _lookup(self.i_known, ids)

    def user_side(self, ids: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        known = _lookup(self.u_known, ids)
        vecs = np.where(known[:, None], self.U[np.minimum(ids, len(self.U) - 1)], self.u_fallback)
        return vecs.astype(np.float32, copy=False), known

    def item_side(self, ids: np.ndarray, t: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = self.world
        bias = w.cfg.clicks.base_logit + w.item_terms(ids, t, self.popularity)
        return w.items.t.vec[ids], bias

    def predict_proba(
        self, users: np.ndarray, items: np.ndarray, slots: np.ndarray, t: np.ndarray
    ) -> np.ndarray:
        uv, _ = self.user_side(users, 0.0)
        iv, bias = self.item_side(items, t)
        c = self.world.cfg.clicks
        pos = 1.0 / (1.0 + slots) ** c.position_decay
        return sigmoid(bias + np.einsum("nd,nd->n", uv, iv)) * pos


class LiveOracle:
    """The true world at request time: a perfectly fresh model (the ``oracle`` policy)."""

    version = 0
    always_fresh = True

    def __init__(self, world: World) -> None:
        self.world = world

    @property
    def data_time_s(self) -> float:
        return self.world.now

    def known_items(self, ids: np.ndarray) -> np.ndarray:
        return np.ones(len(ids), dtype=bool)

    def user_side(self, ids: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        scale = self.world.cfg.clicks.affinity_scale
        return self.world.users.interests(ids, t) * scale, np.ones(len(ids), dtype=bool)

    def item_side(self, ids: np.ndarray, t: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = self.world
        return w.items.t.vec[ids], w.cfg.clicks.base_logit + w.item_terms(ids, t)

    def predict_proba(
        self, users: np.ndarray, items: np.ndarray, slots: np.ndarray, t: np.ndarray
    ) -> np.ndarray:
        raise NotImplementedError("the live oracle is never validated")
