"""Online (streaming) updates, as in Monolith: sparse touched rows every ``interval_s``
(seconds to a minute), the dense part every ``dense_interval_s`` (daily), no offline
validation. Each payload is broadcast over the topology and applied in place at each replica.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from simrec.config import ConfigError, PolicySettings
from simrec.model.learner import apply_delta, apply_dense
from simrec.model.version import LearnedVersion
from simrec.pipeline.checkpoint import UpdateRun, deliver, new_run
from simrec.pipeline.updates import UpdateRow
from simrec.policies.base import POLICIES, UpdateContext, no_params
from simrec.policies.periodic import next_phase


@POLICIES.register("online")
class Online:
    """Sparse deltas every ``interval_s``, dense part every ``dense_interval_s``.

    A delta carries every row written since the previous delta's cut. A trigger that finds
    the previous delta still in flight is skipped (logged) and the next delta covers both
    intervals, so nothing is lost and nothing queues.
    """

    def __init__(self, settings: PolicySettings) -> None:
        no_params(settings)
        if settings.interval_s is None:
            raise ConfigError(
                "policy.interval_s=None is not allowed for policy 'online': must be > 0"
            )
        self.settings = settings
        self.in_flight: UpdateRun | None = None
        self.cut = 0  # learner write sequence covered by the deltas sent so far

    def start(self, ctx: UpdateContext) -> None:
        if ctx.training.cfg.kind != "learned":
            raise ConfigError(
                "policy=online needs learner.kind=learned (got "
                f"{ctx.training.cfg.kind!r}): deltas are rows of learned tables"
            )
        self.cut = ctx.training.write_seq
        ctx.env.process(self._sparse(ctx))
        ctx.env.process(self._dense(ctx))

    def _sparse(self, ctx: UpdateContext) -> Generator[Any, Any, None]:
        env = ctx.env
        while True:
            yield env.timeout(self.settings.interval_s)
            if self.in_flight is not None and self.in_flight.process.is_alive:
                uid = ctx.updates.new_id()
                for name in ctx.replicas:
                    ctx.updates.add(
                        UpdateRow(uid, -1, name, "delta", 0.0, env.now, status="skipped")
                    )
                continue
            run = new_run(ctx, "delta", env.now)
            run.process = env.process(self._ship_delta(ctx, run))
            self.in_flight = run

    def _ship_delta(self, ctx: UpdateContext, run: UpdateRun) -> Generator[Any, Any, None]:
        delta = ctx.training.delta(self.cut)
        self.cut = delta.cut
        version = ctx.training.next_version
        for r in run.rows.values():
            r.version, r.bytes, r.data_time_s = version, delta.size_bytes, delta.data_time_s

        def apply(name: str) -> None:
            replica = ctx.replicas[name]
            v = _private(replica)
            apply_delta(v, delta)
            v.version = version
            replica.touch(ctx.env.now)

        yield from deliver(
            ctx, run, delta.size_bytes, self.settings.pipeline.load_bytes_per_s, apply
        )

    def _dense(self, ctx: UpdateContext) -> Generator[Any, Any, None]:
        env = ctx.env
        interval = self.settings.dense_interval_s
        yield env.timeout(next_phase(env.now, interval, self.settings.phase_s) - env.now)
        while True:
            run = new_run(ctx, "dense", env.now)
            source, _ = ctx.training.snapshot()
            size = ctx.training.dense_bytes()
            for r in run.rows.values():
                r.version, r.bytes, r.data_time_s = source.version, size, source.data_time_s

            def apply(name: str, source: LearnedVersion = source) -> None:
                replica = ctx.replicas[name]
                apply_dense(_private(replica), source)
                replica.touch(ctx.env.now)

            run.process = env.process(
                deliver(ctx, run, size, self.settings.pipeline.load_bytes_per_s, apply)
            )
            yield env.timeout(interval)


def _private(replica) -> LearnedVersion:
    """The replica's own mutable copy of its version (copy on first write)."""
    v = replica.version
    if not replica.private:
        v = LearnedVersion(**{**v.__dict__, "owned": False})
        v.own()
        replica.version = v
        replica.private = True
    return v
