"""The engine: builds a run from its config and drives it with SimPy.

Data flow: config -> world -> learner -> update policy and pipeline -> links -> serving
replicas -> metrics -> results. One SimPy process, the clock, ticks every ``sim.step_s``:
it advances the world, serves the step's requests in vectorised batches per datacenter with
the version live at the tick, logs impressions, and lets the trainer consume the examples
whose join delay has passed. Policies run their own processes (snapshots, transfers, loads)
between ticks; a version that lands between two ticks serves from the next one.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import simpy
from numba import njit

from simrec.config import DAY_S, Config, ConfigError, validate
from simrec.metrics.recorder import Recorder
from simrec.model.learner import Learner
from simrec.model.log import ClickLog, Examples
from simrec.model.training import TrainingSide, holdout_mask
from simrec.network.topology import TOPOLOGIES, build_topology
from simrec.pipeline.updates import UpdateLog
from simrec.policies import POLICIES, UpdateContext
from simrec.rng import Streams
from simrec.serving.replica import Replica, Server
from simrec.world.world import World

EVICT_EVERY_S = 3_600.0


@dataclass
class RunState:
    """What a finished simulation hands to the result builder."""

    cfg: Config
    world: World
    learner: Learner
    recorder: Recorder
    updates: UpdateLog
    topology: object
    bytes_at_start: float
    bytes_at_end: float
    measure_start_s: float
    end_s: float
    wall_time_s: float


def check(cfg: Config) -> None:
    """All refusals that need no simulation: ranges, plug-in names, combinations."""
    validate(cfg)
    if cfg.policy.name not in POLICIES:
        raise ConfigError(
            f"policy={cfg.policy.name!r} is not allowed: known policies are "
            f"{', '.join(POLICIES.names())}"
        )
    if cfg.infra.topology not in TOPOLOGIES:
        raise ConfigError(
            f"infra.topology={cfg.infra.topology!r} is not allowed: must be one "
            f"of {', '.join(sorted(TOPOLOGIES))}"
        )
    if cfg.policy.name == "online" and cfg.learner.kind != "learned":
        raise ConfigError(
            f"learner.kind={cfg.learner.kind!r} is not allowed with policy=online:"
            " must be learned (deltas are rows of learned tables)"
        )
    POLICIES[cfg.policy.name](cfg.policy)  # a plug-in refuses its own bad settings here


class Simulation:
    """One run, built from a validated config. Call :meth:`run` once."""

    def __init__(self, cfg: Config) -> None:
        check(cfg)
        self.cfg = cfg
        streams = Streams(cfg.seed)
        self.streams = streams
        self.env = simpy.Environment()
        self.world = World(cfg, streams)
        w = self.world
        self.learner = Learner(
            cfg.learner,
            cfg.interests.dim,
            cfg.topics.count,
            cfg.serving.slate_size,
            w.items.t,
            streams["learner"],
        )
        self.learner.register_items(w.items.active, 0.0)
        self.training = TrainingSide(cfg.learner, self.learner, w)
        self.log = ClickLog(cfg.learner.join_delay_s, cfg.policy.pipeline.validation.window_s)
        self.server = Server(
            w,
            cfg.serving,
            cfg.clicks.position_decay,
            streams["serving"],
            streams["oracle"],
            cfg.sim.batch_size,
        )
        self.dc_names = [d.name for d in cfg.infra.datacenters]
        first, _ = self.training.snapshot()
        self.training.shipped = first
        self.replicas = {n: Replica(n, first, 0.0) for n in self.dc_names}
        inf = cfg.infra
        self.topology = build_topology(
            inf.topology,
            self.env,
            inf.training_dc,
            self.dc_names,
            inf.uplink_bytes_per_s,
            {d.name: d.latency_s for d in inf.datacenters},
            fanout=inf.fanout,
            chunks=inf.chunks,
        )
        self.measure_start_s = cfg.sim.warmup_days * DAY_S
        self.end_s = self.measure_start_s + cfg.sim.days * DAY_S
        self.recorder = Recorder(
            w, self.dc_names, self.measure_start_s, cfg.sim.days * DAY_S, cfg.sim.bucket_s
        )
        self.updates = UpdateLog(origin_s=self.measure_start_s)
        self.policy = POLICIES[cfg.policy.name](cfg.policy)
        self.ctx = UpdateContext(
            self.env,
            w,
            self.training,
            self.log,
            self.topology,
            self.replicas,
            self.updates,
            self.measure_start_s,
            self.end_s,
        )
        self._rng_traffic = streams["traffic"]
        self._rng_holdout = streams["learner"]
        self._rng_corrupt = streams["corruption"]
        self._spam: np.ndarray | None = None
        self._progress = None
        self._trainer: ThreadPoolExecutor | None = None
        self._learning: deque[Future] = deque()  # the learner's queued work, in order
        self.training.barrier = self._drain

    # --- processes ----------------------------------------------------------------------
    def _warmup(self):
        """Instant full syncs during warm-up, then one at its end, then the policy."""
        env = self.env
        every = self.cfg.sim.warmup_sync_interval_s
        while env.now + every < self.measure_start_s:
            yield env.timeout(every)
            self._sync_all()
        yield env.timeout(self.measure_start_s - env.now)
        self._sync_all()
        self.bytes_at_start = self._bytes_moved()
        self.policy.start(self.ctx)

    def _sync_all(self) -> None:
        version, _ = self.training.snapshot()
        self.training.shipped = version
        for r in self.replicas.values():
            r.swap(version, self.env.now)

    def _clock(self):
        env, cfg = self.env, self.cfg
        step = cfg.sim.step_s
        next_evict = EVICT_EVERY_S
        limit_per_step = cfg.learner.throughput_per_s * step
        while env.now < self.end_s:
            t = env.now
            if t >= next_evict and math.isfinite(cfg.learner.row_ttl_s):
                self._drain()
                self.learner.evict(t)
                next_evict += EVICT_EVERY_S
            if self._trainer is not None:
                # with a join delay the step's own impressions are not yet readable, and
                # training touches only the learner's tables, which serving never reads
                # (replicas hold copies): the two run side by side with the same results.
                # Training starts first: it reads only catalogue rows that the world's
                # advance does not write, and the step's new items join the learner's
                # tables after it (no example can show them yet). The learner's work is
                # queued in order and may run on into the next step: whatever reads the
                # learner (snapshots, deltas, eviction) waits for the queue first.
                # The worker's share of the ranking shrinks while the learner's work of
                # the step before last is unfinished (two jobs a step), else it grows
                behind = sum(not f.done() for f in self._learning) > 2
                self.server.rebalance(worker_behind=behind)
                ready = self.log.ready(t, limit_per_step)
                self._learn(self.learner.train, ready, t)
                _, new_items = self.world.advance(t)
                self._serve_step(t, min(step, self.end_s - t))
                self._learn(self.learner.register_items, new_items, t)
            else:
                _, new_items = self.world.advance(t)
                self.learner.register_items(new_items, t)
                self._serve_step(t, min(step, self.end_s - t))
                self.learner.train(self.log.ready(t, limit_per_step), t)
            if self._progress is not None:
                self._progress.update(min(step, self.end_s - t) / 3600)
            yield env.timeout(step)

    def _learn(self, fn, *args) -> None:
        """Queue ``fn(*args)``, work on the learner, in the training thread."""
        q = self._learning
        while q and q[0].done():
            q.popleft().result()  # raises what the training thread raised
        q.append(self._trainer.submit(fn, *args))

    def _drain(self) -> None:
        """Wait until the learner's queued work is done."""
        q = self._learning
        while q:
            q.popleft().result()

    def _serve_step(self, t: float, step: float) -> None:
        w = self.world
        users = w.users.sample_requests(t, t + step, self._rng_traffic)
        if len(users) == 0:
            return
        home = w.users.t.home[users]
        # the oracle's counterfactual only feeds the metrics: not scored where they are not
        # recorded (warm-up)
        measured = self.recorder.bucket(t) is not None
        for dc, name in enumerate(self.dc_names):
            replica = self.replicas[name]
            version = replica.version
            mine = users[home == dc]
            eligible = self.server.eligible(version)
            n_live = len(w.items.active)
            self.recorder.record_coverage(dc, t, n_live, n_live - len(eligible))
            if len(mine) == 0:
                continue
            fresh = getattr(version, "always_fresh", False)
            staleness = 0.0 if fresh else t - version.data_time_s
            since = 0.0 if fresh else t - replica.landed_s
            served = self.server.serve(version, mine, t, eligible, score_oracle=measured)
            self.recorder.record(dc, t, served, staleness, since)
            self._log(served, t)

    def _log(self, s, t: float) -> None:
        it = self.world.items.t
        _stamp_first(s.items, s.model_slot, t, it.first_impression_s, it.first_model_impression_s)
        held = holdout_mask(len(s.users), self.cfg.learner.holdout_share, self._rng_holdout)
        train, holdout = Examples.from_slates(t, s.users, s.items, s.clicks, held)
        self._corrupt(train, t)
        self.log.add(train, holdout)

    def _corrupt(self, train: Examples, t: float) -> None:
        """Click spam on some items during the burst (training examples only, in place;
        held-out data stay clean)."""
        co = self.cfg.corruption
        if not co.enabled:
            return
        start = self.measure_start_s + co.start_s
        if not (start <= t < start + co.duration_s):
            return
        if self._spam is None:
            active = self.world.items.active
            self._spam = self._rng_corrupt.choice(active, min(co.items, len(active)), replace=False)
        hit = np.isin(train.item, self._spam)
        train.click[hit] = self._rng_corrupt.random(int(hit.sum())) < co.click_rate

    def _bytes_moved(self) -> float:
        return float(sum(link.bytes_delivered for link in self.topology.links.values()))

    # --- run ----------------------------------------------------------------------------
    def run(self) -> RunState:
        t_wall = time.perf_counter()
        if self.cfg.sim.progress:
            from tqdm import tqdm

            self._progress = tqdm(
                total=self.end_s / 3600,
                desc=f"{self.cfg.policy.name} (seed {self.cfg.seed})",
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} sim h "
                "[{elapsed}<{remaining}]",
                mininterval=1.0,
                leave=False,
            )
        self.bytes_at_start = 0.0
        self.env.process(self._warmup())
        self.env.process(self._clock())
        if self.cfg.sim.threads > 1 and self.cfg.learner.join_delay_s > 0:
            with (
                ThreadPoolExecutor(1, "simrec-train", initializer=_yield_to_serving) as trainer,
                ThreadPoolExecutor(1, "simrec-oracle") as helper,
            ):
                self._trainer, self.server.executor = trainer, helper
                try:
                    self.env.run(until=self.end_s)
                    self._drain()
                finally:
                    self._trainer = self.server.executor = None
        else:
            self.env.run(until=self.end_s)
        if self._progress is not None:
            self._progress.close()
        return RunState(
            self.cfg,
            self.world,
            self.learner,
            self.recorder,
            self.updates,
            self.topology,
            self.bytes_at_start,
            self._bytes_moved(),
            self.measure_start_s,
            self.end_s,
            time.perf_counter() - t_wall,
        )


def _yield_to_serving() -> None:
    """Lower the training thread's priority: the step waits for the oracle's scoring before
    it can record (and for training only at its end), so when the two worker threads share
    a core the oracle should get it first. Where this is not allowed it is only slower."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


@njit(cache=True, nogil=True)
def _stamp_first(items, model_slot, t, first, first_model):
    """Stamp ``t`` as the first impression (and first impression in a model slot) of shown
    items that have none yet."""
    B, k = items.shape
    for r in range(B):
        for j in range(k):
            i = items[r, j]
            if i >= 0:
                if math.isnan(first[i]):
                    first[i] = t
                if model_slot[j] and math.isnan(first_model[i]):
                    first_model[i] = t
