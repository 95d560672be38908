"""A serving replica: one live model version per inference datacenter, and the request path.

For the requests of one datacenter in one time step, in batches of ``sim.batch_size``:

1. retrieval draws K candidates per request uniformly among the live items that the live
   version knows (items missing from its table cannot be retrieved: cold start). For speed a
   batch shares one retrieval pool of ``pool_size`` distinct items drawn uniformly, in random
   order, and each request takes a window of K consecutive pool entries at a random offset:
   every request still sees a uniform random K-subset of the corpus (each item with
   probability K/n). Each request's K scores are computed by a compiled kernel
   (:mod:`simrec.serving.ranking`);
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

import math
from concurrent.futures import Executor, Future
from dataclasses import dataclass

import numpy as np

from simrec.config import ServingSettings
from simrec.model.version import ModelVersion
from simrec.serving.ranking import (
    extended,
    first_distinct,
    first_distinct_rows,
    model_slates,
    oracle_expected,
    true_pools,
)
from simrec.world.clicks import position_bias, sigmoid
from simrec.world.world import World

SHARE_START, SHARE_MAX, SHARE_NOTCH = 0.3, 0.5, 0.01
"""The share of a step's requests that the model ranks in the worker thread, when there is
one: where it starts, its ceiling, and how far :meth:`Server.rebalance` moves it per step.
The main thread carries the rest of the step; the worker core also trains and scores the
oracle, but those two have no deadline within the step (see :mod:`simrec.engine`)."""
SHARE_MIN_REQUESTS = 256
"""Fewer requests than this are not worth handing over (the hand-off costs tens of µs)."""


@dataclass
class Served:
    """Outcome of serving a batch of B requests with slates of k items."""

    users: np.ndarray  # (B,)
    fallback: np.ndarray  # (B,) bool, user unknown to the live version
    items: np.ndarray  # (B, k)
    model_slot: np.ndarray  # (k,) bool, slot filled by the model (not the rule)
    p: np.ndarray  # (B, k) true click probability (with position bias)
    clicks: np.ndarray  # (B, k) bool
    oracle: Future  # of (B,) expected clicks of the oracle's slate (may still be running)
    oracle_slots: int  # items in the oracle's slate (k, fewer only if fewer items live)

    @property
    def oracle_expected(self) -> np.ndarray:
        """(B,) expected clicks of the oracle's slate (NaN where it was not scored); waits
        for the worker thread if it is still computing them."""
        return self.oracle.result()


def done(value) -> Future:
    """A future that already holds ``value``."""
    f: Future = Future()
    f.set_result(value)
    return f


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
        batch_size: requests that share one retrieval pool.
    """

    def __init__(
        self,
        world: World,
        cfg: ServingSettings,
        position_decay: float,
        rng: np.random.Generator,
        rng_oracle: np.random.Generator,
        batch_size: int,
    ) -> None:
        self.world = world
        self.cfg = cfg
        self.rng = rng
        self.rng_oracle = rng_oracle
        self.batch_size = batch_size
        # set by the engine: runs the oracle and a share of the ranking beside the step
        self.executor: Executor | None = None
        self._last_oracle: Future | None = None
        self.share = SHARE_START  # of the ranking done in the worker thread (see `rebalance`)
        self._waited = False  # whether the main thread last waited for the worker's share
        self._seen = {False: np.zeros(0, bool), True: np.zeros(0, bool)}  # see `_scratch`
        self.pos = position_bias(cfg.slate_size, position_decay)
        n_model = cfg.slate_size - cfg.rule_slots
        self.model_slot = np.arange(cfg.slate_size) < n_model

    def eligible(self, version: ModelVersion) -> np.ndarray:
        """Live items the version knows (the retrieval corpus)."""
        active = self.world.items.active
        return active[version.known_items(active)]

    def serve(
        self,
        version: ModelVersion,
        users: np.ndarray,
        t: float,
        eligible: np.ndarray,
        score_oracle: bool = True,
    ) -> Served:
        """Serve the requests of ``users`` at time ``t`` (s), in batches of ``batch_size``
        that each share one retrieval pool. Without ``score_oracle`` (nobody records the
        step: warm-up) the oracle's counterfactual is drawn but not scored, and
        ``oracle_expected`` is NaN. With a worker thread the oracle may still be running
        when this returns (see :attr:`Served.oracle`)."""
        cfg, rng, world = self.cfg, self.rng, self.world
        k = cfg.slate_size
        n_model = k - cfg.rule_slots
        B = len(users)
        bs = self.batch_size
        n_batches = -(-B // bs)
        true_u = world.users.interests(users, t)
        # the oracle's counterfactual (top k by true probability among K candidates of all
        # live items), computed in the worker thread when there is one (it alone draws from
        # the oracle's stream, so the order of draws does not change); only the metrics
        # read it, so it is queued behind the model's share of the ranking
        now = self._world_now()  # the oracle may read them after the world has moved on
        oracle_args = (true_u, world.items.active, n_batches, t, score_oracle, now)
        oracle = None
        oracle_slots = min(k, self._window(len(world.items.active)))
        items = np.full((B, k), -1, dtype=np.int64)  # slots nobody can fill stay empty
        p = np.zeros((B, k), dtype=np.float32)
        uvec, known = version.user_side(users, t)
        c = world.cfg.clicks
        d = world.items.d
        m = min(n_model, len(eligible))
        if m:
            pools, start, K = self._retrieve(eligible, B, n_batches, rng)
            flat = pools.ravel()
            nb, M = pools.shape
            ivec, ibias = version.item_side(flat, t)
            ivt, ib = extended(ivec.reshape(nb, M, d), ibias.reshape(nb, M), K)
            tvec, tbias = self._truth(pools, K, t, rows=True, world=now)
            uvec = np.ascontiguousarray(uvec, dtype=np.float32)
            args = (uvec, ivt, ib, start, K, bs, true_u, tvec, tbias, c.affinity_scale, pools)
            args += (self.pos[:m], items, p)
            # the last requests are ranked in the worker thread meanwhile (a slate depends
            # only on its own request's rows, so the split changes nothing)
            theirs_n = int(B * self.share) if self.executor is not None else 0
            split = B - theirs_n if theirs_n >= SHARE_MIN_REQUESTS else B
            theirs = self._submit(model_slates, *args, split, B) if split < B else None
            oracle = self._submit(self._oracle, *oracle_args)
            model_slates(*args, 0, split)
            if theirs is not None:
                self._waited = not theirs.done()
                theirs.result()
        if cfg.rule_slots:
            self._rule_slots(items, p, true_u, t, n_model, n_batches)
        shown = items >= 0
        clicks = (rng.random((B, k), dtype=np.float32) < p) & shown
        if oracle is None:
            oracle = self._submit(self._oracle, *oracle_args)
        # nobody waits for an oracle that is not recorded (warm-up): what it raised surfaces
        # here, a step later, instead of being lost
        last, self._last_oracle = self._last_oracle, oracle
        if last is not None and last.done():
            last.result()
        return Served(users, ~known, items, self.model_slot, p, clicks, oracle, oracle_slots)

    def rebalance(self, worker_behind: bool) -> None:
        """Move the worker thread's share of the ranking by a notch: down, by two, when the
        main thread last had to wait for it or the worker is ``worker_behind`` with its
        other work (training), else up, so that the two cores stay about equally loaded.
        The share changes no result, only the speed."""
        if worker_behind or self._waited:
            self.share = max(0.0, self.share - 2 * SHARE_NOTCH)
        else:
            self.share = min(SHARE_MAX, self.share + SHARE_NOTCH)
        self._waited = False

    def _oracle(
        self,
        true_u: np.ndarray,
        corpus: np.ndarray,
        n_batches: int,
        t: float,
        score: bool,
        world: tuple[np.ndarray, ...],
    ) -> np.ndarray:
        """Expected clicks (B,) of the oracle's slates at ``t``, from pools of ``corpus``
        drawn on the oracle's stream, with the world's arrays ``world`` as they were at
        ``t`` (see :meth:`_world_now`): it touches nothing the request path writes, so it
        can run beside it, and on while the world moves on. Without ``score`` only the
        pools are drawn, so that the stream, and with it every later step's oracle, is the
        same as if they had been scored."""
        if len(corpus) == 0:  # nothing live: an empty slate, and nothing to draw
            return np.full(len(true_u), 0.0 if score else np.nan)
        pools, start, K = self._retrieve(corpus, len(true_u), n_batches, self.rng_oracle)
        if not score:
            return np.full(len(true_u), np.nan)
        tvt, tbias = self._truth(pools, K, t, world=world)
        pos = self.pos[: min(self.cfg.slate_size, K)]
        scale = self.world.cfg.clicks.affinity_scale
        return oracle_expected(true_u, tvt, tbias, start, K, pos, self.batch_size, scale)

    def _submit(self, fn, *args) -> Future:
        """``fn(*args)`` in the worker thread if there is one, else now."""
        if self.executor is not None:
            return self.executor.submit(fn, *args)
        return done(fn(*args))

    def _rule_slots(
        self,
        items: np.ndarray,
        p: np.ndarray,
        true_u: np.ndarray,
        t: float,
        n_model: int,
        n_batches: int,
    ) -> None:
        """Fill the last ``rule_slots`` slots of each batch with newest live items (in
        place)."""
        cfg, rng, world = self.cfg, self.rng, self.world
        newest = world.items.active[-cfg.rule_pool :]
        if len(newest) == 0:  # nothing live: the slots stay empty
            return
        r = cfg.rule_slots
        bs = self.batch_size
        for q in range(n_batches):
            rows = slice(q * bs, (q + 1) * bs)
            pick = newest[self._sample(rng, len(newest), r)] if len(newest) >= r else newest
            rule = np.resize(pick, r)
            items[rows, n_model:] = rule
            zr = world.logits(true_u[rows], rule, t)
            p[rows, n_model:] = sigmoid(zr) * self.pos[n_model:]

    def _retrieve(
        self, corpus: np.ndarray, B: int, n_batches: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """One pool of distinct items from ``corpus`` per batch, in random order
        (n_batches, M), each request's window offset (B,) and the window length K: a
        request's candidates are K consecutive entries (wrapping) of its batch's pool."""
        n = len(corpus)
        M = min(n, self.cfg.pool_size)
        if n > M:  # oversample, keep the first M distinct of each row in draw order
            draws = rng.integers(0, n, n_batches * _draws(n, M)).reshape(n_batches, -1)
            picks, complete = first_distinct_rows(draws, M, self._scratch(n, rng))
            for q in np.flatnonzero(~complete):  # rare: redraw that pool on its own
                picks[q] = self._sample(rng, n, M)
        else:  # the pool is the whole corpus, shuffled
            picks = np.stack([rng.permutation(n) for _ in range(n_batches)])
        pools = corpus[picks]
        K = self._window(n)
        if K == M:  # every request's window is the whole pool
            return pools, np.zeros(B, dtype=np.int64), K
        return pools, rng.integers(0, M, B), K

    def _window(self, n: int) -> int:
        """Candidates per request (K) drawn from a corpus of ``n`` items."""
        return min(self.cfg.candidates, self.cfg.pool_size, n)

    def _sample(self, rng: np.random.Generator, n: int, k: int) -> np.ndarray:
        """``min(n, k)`` distinct indices below ``n``, uniformly, in random order."""
        if k >= n:
            return rng.permutation(n)
        while True:  # the first k distinct of uniform draws, in draw order
            out = first_distinct(rng.integers(0, n, _draws(n, k)), k, self._scratch(n, rng))
            if len(out) == k:
                return out

    def _scratch(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Scratch of :func:`first_distinct`, one per stream (the oracle's draws may run in
        the worker thread at the same time as the request path's)."""
        key = rng is self.rng_oracle
        if len(self._seen[key]) < n:
            self._seen[key] = np.zeros(2 * n, dtype=bool)
        return self._seen[key]

    def _world_now(self) -> tuple[np.ndarray, ...]:
        """The world's arrays that the truth of pools reads, as they are now: the items'
        vectors, qualities, birth times and topics (a row is written once, when the item is
        published, and a grown table is a new array) and the topics' popularity (a new
        array whenever it moves)."""
        it = self.world.items.t
        return it.vec, it.quality, it.birth_s, it.topic, self.world.topics.popularity

    def _truth(
        self,
        pools: np.ndarray,
        K: int,
        t: float,
        rows: bool = False,
        world: tuple[np.ndarray, ...] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        w = self.world
        vec, quality, birth_s, topic, popularity = world or self._world_now()
        return true_pools(
            pools,
            K,
            t,
            vec,
            quality,
            birth_s,
            topic,
            popularity,
            w.items.cfg.freshness_boost,
            w.items.cfg.freshness_decay_s,
            w.cfg.clicks.base_logit,
            rows,
        )


def _draws(n: int, k: int) -> int:
    """Uniform draws below ``n`` that hold ``k < n`` distinct values with high probability:
    the expected number, n ln(n / (n - k)), plus a margin (a short row is redrawn)."""
    expected = n * (math.log(n) - math.log(n - k))
    return int(1.1 * expected + 4 * math.sqrt(expected) + 8)
