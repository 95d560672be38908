"""A serving replica: one live model version per inference datacenter, and the request path.

Per batch of requests (users of one datacenter in one time step):

1. retrieval draws K candidates per request uniformly among the live items that the live
   version knows (items missing from its table cannot be retrieved: cold start). For speed a
   batch shares one retrieval pool of ``pool_size`` distinct items drawn uniformly, in random
   order, and each request takes a window of K consecutive pool entries at a random offset:
   every request still sees a uniform random K-subset of the corpus (each item with
   probability K/n), and the batch is scored by one matrix product;
2. ranking scores them with the live version (``user . item + bias``; users missing from the
   version get its fallback vector, i.e. popularity ranking, and are counted) and shows the
   top k, best first;
3. optionally the last ``rule_slots`` slots go to a hand-written rule that injects items drawn
   among the ``rule_pool`` newest live items, known or not;
4. the true click probability of every shown item is evaluated and clicks are drawn. The
   oracle's counterfactual slate (top k by true probability among K candidates drawn the same
   way from all live items) gives the oracle expected clicks.
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
    oracle_slots: int  # items in the oracle's slate (k, fewer only if fewer items live)


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
        self.private = False  # whether `version` is this replica's own mutable copy

    def swap(self, version: ModelVersion, t: float) -> bool:
        """Atomically make ``version`` live at ``t``. Versions never go backwards: an older one
        than the live one is refused (returns False)."""
        if version.version < self.version.version:
            return False
        self.version = version
        self.private = False
        self.landed_s = t
        return True

    def touch(self, t: float) -> None:
        """Record that an in-place update (delta, dense part) landed at ``t``."""
        self.landed_s = t


class Server:
    """The request path shared by all replicas (stateless apart from its random stream).

    Args:
        world: ground truth.
        cfg: serving settings.
        position_decay: exponent of the position bias.
        rng: the serving stream (retrieval, rule slots, clicks).
        rng_oracle: stream of the oracle's counterfactual retrieval, separate so that
            ``oracle_expected_ctr`` is the same for every policy of one seed.
    """

    def __init__(
        self,
        world: World,
        cfg: ServingSettings,
        position_decay: float,
        rng: np.random.Generator,
        rng_oracle: np.random.Generator,
    ) -> None:
        self.world = world
        self.cfg = cfg
        self.rng = rng
        self.rng_oracle = rng_oracle
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
        """Serve one batch of requests of ``users`` at time ``t`` (s)."""
        cfg, rng, world = self.cfg, self.rng, self.world
        k = cfg.slate_size
        n_model = k - cfg.rule_slots
        B = len(users)
        rows = np.arange(B)[:, None]
        active = world.items.active
        true_u = world.users.interests(users, t)
        items = np.full((B, k), -1, dtype=np.int64)  # slots nobody can fill stay empty
        p = np.zeros((B, k), dtype=np.float32)
        uvec, known = version.user_side(users, t)
        m = min(n_model, len(eligible))
        if m:
            pool, start = self._retrieve(eligible, B, rng)
            ivec, ibias = version.item_side(pool, t)
            scores = _windows(uvec @ ivec.T + ibias, start, self.cfg.candidates)
            top = _window_cols(_top_k(scores, m), start, len(pool))
            items[:, :m] = pool[top]
            z = self._true_logits(true_u, pool)[rows, top] + self._terms(pool, t)[top]
            p[:, :m] = sigmoid(z) * self.pos[:m]
        if cfg.rule_slots:
            newest = active[-cfg.rule_pool :]
            r = cfg.rule_slots
            pick = newest[_sample(rng, len(newest), r)] if len(newest) >= r else newest
            rule = np.broadcast_to(np.resize(pick, r), (B, r))
            items[:, n_model:] = rule
            zr = world.logits(true_u, rule[0], t)
            p[:, n_model:] = sigmoid(zr) * self.pos[n_model:]
        # oracle counterfactual: top k by true probability among K candidates of all live items
        opool, ostart = self._retrieve(active, B, self.rng_oracle)
        zo = _windows(
            self._true_logits(true_u, opool) + self._terms(opool, t), ostart, self.cfg.candidates
        )
        kk = min(k, zo.shape[1])
        best = -np.partition(-zo, kk - 1, axis=1)[:, :kk]
        best.sort(axis=1)
        oracle = (sigmoid(best[:, ::-1]) * self.pos[:kk]).sum(axis=1)
        shown = items >= 0
        clicks = (rng.random((B, k), dtype=np.float32) < p) & shown
        return Served(users, ~known, items, self.model_slot, p, clicks, oracle, kk)

    def _retrieve(
        self, corpus: np.ndarray, B: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """A shared pool of distinct items from ``corpus`` in random order, and each request's
        window offset (B,): its candidates are K consecutive pool entries (wrapping) from
        there. ``None`` when the pool holds no more than K items (all are candidates)."""
        M = min(len(corpus), self.cfg.pool_size)
        pool = corpus[_sample(rng, len(corpus), M, shuffle=True)]
        if self.cfg.candidates >= M:
            return pool, None
        return pool, rng.integers(0, M, B)

    def _true_logits(self, true_u: np.ndarray, pool: np.ndarray) -> np.ndarray:
        """Affinity part of the true logits (B, M): base + scale <u, v>."""
        c = self.world.cfg.clicks
        return c.base_logit + c.affinity_scale * (true_u @ self.world.items.t.vec[pool].T)

    def _terms(self, pool: np.ndarray, t: float) -> np.ndarray:
        return self.world.item_terms(pool, t)


def _sample(rng: np.random.Generator, n: int, k: int, shuffle: bool = False) -> np.ndarray:
    """``min(n, k)`` distinct indices below ``n``, uniformly (in random order if
    ``shuffle``)."""
    if k >= n:
        return rng.permutation(n) if shuffle else np.arange(n)
    if n > 8 * k:  # sparse draw: oversample and de-duplicate, keeping draw order
        while True:
            draw = rng.integers(0, n, int(k * 1.3) + 8)
            _, first = np.unique(draw, return_index=True)
            if len(first) >= k:
                return draw[np.sort(first)[:k]]
    return rng.choice(n, k, replace=False)


def _windows(full: np.ndarray, start: np.ndarray | None, K: int) -> np.ndarray:
    """Each row's window of K consecutive columns of ``full`` (B, M) from ``start`` (B,),
    wrapping round; ``full`` itself when ``start`` is None."""
    if start is None:
        return full
    ext = np.concatenate([full, full[:, : K - 1]], axis=1)
    view = np.lib.stride_tricks.sliding_window_view(ext, K, axis=1)  # (B, M, K), no copy
    return view[np.arange(len(full)), start]


def _window_cols(local: np.ndarray, start: np.ndarray | None, M: int) -> np.ndarray:
    """Pool columns of positions ``local`` (B, m) within each row's window."""
    return local if start is None else (start[:, None] + local) % M


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k best scores of each row, best first."""
    if k >= scores.shape[1]:
        part = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    else:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)
