"""A serving replica: one live model version per inference datacenter, and the request path.

Per batch of requests (users of one datacenter in one time step):

1. retrieval draws K candidates, shared by the batch, uniformly among the live items that the
   live version knows (items missing from its table cannot be retrieved: cold start);
2. ranking scores them with the live version (``user . item + bias``; users missing from the
   version get its fallback vector, i.e. popularity ranking, and are counted) and shows the
   top k, best first;
3. optionally the last ``rule_slots`` slots go to a hand-written rule that injects items drawn
   among the ``rule_pool`` newest live items, known or not;
4. the true click probability of every shown item is evaluated and clicks are drawn. The
   oracle's counterfactual slate (top k by true probability among K candidates drawn from all
   live items) gives the oracle expected clicks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simrec.config import ServingSettings
from simrec.model.version import ModelVersion
from simrec.world.clicks import position_bias, sigmoid
from simrec.world.world import World


@dataclass
class Served:
    """Outcome of serving a batch of B requests with slates of k items."""

    users: np.ndarray  # (B,)
    fallback: np.ndarray  # (B,) bool, user unknown to the live version
    items: np.ndarray  # (B, k)
    model_slot: np.ndarray  # (k,) bool, slot filled by the model (not the rule)
    p: np.ndarray  # (B, k) true click probability (with position bias)
    clicks: np.ndarray  # (B, k) bool
    oracle_expected: np.ndarray  # (B,) expected clicks of the oracle's slate


class Replica:
    """The serving replica of one datacenter.

    Args:
        name: datacenter name.
        version: initial live version.
        landed_s: time the initial version landed (s).
    """

    def __init__(self, name: str, version: ModelVersion, landed_s: float) -> None:
        self.name = name
        self.version = version
        self.landed_s = landed_s
        self.loads = 0
        self.private = False  # whether `version` is this replica's own mutable copy

    def swap(self, version: ModelVersion, t: float) -> bool:
        """Atomically make ``version`` live at ``t``. Versions never go backwards: an older one
        than the live one is refused (returns False)."""
        if version.version < self.version.version:
            return False
        self.version = version
        self.private = False
        self.landed_s = t
        self.loads += 1
        return True

    def touch(self, t: float) -> None:
        """Record that an in-place update (delta, dense part) landed at ``t``."""
        self.landed_s = t
        self.loads += 1


class Server:
    """The request path shared by all replicas (stateless apart from its random stream).

    Args:
        world: ground truth.
        cfg: serving settings.
        position_decay: exponent of the position bias.
        rng: the serving stream (retrieval, rule slots, clicks).
    """

    def __init__(
        self, world: World, cfg: ServingSettings, position_decay: float, rng: np.random.Generator
    ) -> None:
        self.world = world
        self.cfg = cfg
        self.rng = rng
        self.pos = position_bias(cfg.slate_size, position_decay)
        n_model = cfg.slate_size - cfg.rule_slots
        self.model_slot = np.arange(cfg.slate_size) < n_model

    def eligible(self, version: ModelVersion) -> np.ndarray:
        """Live items the version knows (the retrieval corpus)."""
        active = self.world.items.active
        return active[version.known_items(active)]

    def serve(
        self, version: ModelVersion, users: np.ndarray, t: float, eligible: np.ndarray
    ) -> Served:
        """Serve one batch of requests of ``users`` at time ``t`` (s).

        Requests are cut into groups of ``pool_share`` that share one candidate pool, so that
        scoring is a batched matrix product."""
        cfg, rng, world = self.cfg, self.rng, self.world
        k = cfg.slate_size
        n_model = k - cfg.rule_slots
        B = len(users)
        g = min(cfg.pool_share, B)
        G = -(-B // g)
        pad = np.resize(np.arange(B), G * g)  # padded rows repeat real ones; dropped below
        active = world.items.active
        true_u = world.users.interests(users, t)
        true_g = true_u[pad].reshape(G, g, -1)
        items = np.full((B, k), -1, dtype=np.int64)  # slots nobody can fill stay empty
        p = np.zeros((B, k), dtype=np.float32)
        uvec, known = version.user_side(users, t)
        m = min(n_model, len(eligible))
        if m:
            pool, dup = self._pools(eligible, G)
            ivec, ibias = version.item_side(pool.ravel(), t)
            scores = uvec[pad].reshape(G, g, -1) @ ivec.reshape(G, pool.shape[1], -1).transpose(
                0, 2, 1
            ) + ibias.reshape(G, 1, -1)
            scores[np.broadcast_to(dup[:, None, :], scores.shape)] = -np.inf
            top = _top_k(scores.reshape(G * g, -1), m)[:B]
            grp = (np.arange(G * g) // g)[:B]
            items[:, :m] = pool[grp[:, None], top]
            z = self._true_logits(true_g, pool, t).reshape(G * g, -1)[:B]
            p[:, :m] = sigmoid(np.take_along_axis(z, top, axis=1)) * self.pos[:m]
        if cfg.rule_slots:
            newest = active[-cfg.rule_pool :]
            r = cfg.rule_slots
            pick = newest[_sample(rng, len(newest), r)] if len(newest) >= r else newest
            rule = np.broadcast_to(np.resize(pick, r), (B, r))
            items[:, n_model:] = rule
            zr = world.logits(true_u, rule[0], t)
            p[:, n_model:] = sigmoid(zr) * self.pos[n_model:]
        # oracle counterfactual: top k by true probability among K candidates of all live items
        opool, odup = self._pools(active, G)
        zo = self._true_logits(true_g, opool, t)
        zo[np.broadcast_to(odup[:, None, :], zo.shape)] = -np.inf
        zo = zo.reshape(G * g, -1)[:B]
        kk = min(k, zo.shape[1])
        best = -np.partition(-zo, kk - 1, axis=1)[:, :kk]
        best.sort(axis=1)
        oracle = (sigmoid(best[:, ::-1]) * self.pos[:kk]).sum(axis=1)
        shown = items >= 0
        clicks = (rng.random((B, k), dtype=np.float32) < p) & shown
        return Served(users, ~known, items, self.model_slot, p, clicks, oracle)

    def _pools(self, corpus: np.ndarray, G: int) -> tuple[np.ndarray, np.ndarray]:
        """G candidate pools (G, K) drawn uniformly from ``corpus``, and a mask of repeats
        within a pool (to be ignored). A corpus no larger than K is the pool itself."""
        K = self.cfg.candidates
        if len(corpus) <= K:
            pool = np.broadcast_to(corpus, (G, len(corpus)))
            return pool, np.zeros(pool.shape, dtype=bool)
        pool = corpus[self.rng.integers(0, len(corpus), (G, K))]
        order = np.argsort(pool, axis=1, kind="stable")
        srt = np.take_along_axis(pool, order, axis=1)
        rep = np.zeros(pool.shape, dtype=bool)
        rep[:, 1:] = srt[:, 1:] == srt[:, :-1]
        dup = np.zeros(pool.shape, dtype=bool)
        np.put_along_axis(dup, order, rep, axis=1)
        return pool, dup

    def _true_logits(self, true_g: np.ndarray, pool: np.ndarray, t: float) -> np.ndarray:
        """True logits (G, g, K) of grouped users (G, g, d) for their group's pool (G, K)."""
        w = self.world
        c = w.cfg.clicks
        vec = w.items.t.vec[pool]
        terms = w.item_terms(pool.ravel(), t).reshape(pool.shape)
        return (
            c.base_logit + c.affinity_scale * (true_g @ vec.transpose(0, 2, 1)) + terms[:, None, :]
        )


def _sample(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """``min(n, k)`` distinct indices below ``n``, uniformly."""
    if k >= n:
        return np.arange(n)
    if n > 8 * k:  # sparse draw: oversample and de-duplicate, keeping draw order
        while True:
            draw = rng.integers(0, n, int(k * 1.3) + 8)
            _, first = np.unique(draw, return_index=True)
            if len(first) >= k:
                return draw[np.sort(first)[:k]]
    return rng.choice(n, k, replace=False)


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k best scores of each row, best first."""
    if k >= scores.shape[1]:
        part = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    else:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)
