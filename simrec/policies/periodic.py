"""Periodic full-checkpoint policies: ``periodic``, and its presets ``daily``, ``hourly``,
``minute`` (which differ only in their YAML: interval, phase and pipeline speeds)."""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

from simrec.config import ConfigError, PolicySettings
from simrec.pipeline.checkpoint import UpdateRun, checkpoint_update, new_run
from simrec.pipeline.updates import UpdateRow
from simrec.policies.base import POLICIES, UpdateContext, no_params


@POLICIES.register("periodic")
@POLICIES.register("daily")
@POLICIES.register("hourly")
@POLICIES.register("minute")
class Periodic:
    """A full checkpoint every ``interval_s`` through save, validate, broadcast and load.

    Triggers fall at the simulated times t with (t - phase_s) a multiple of ``interval_s``
    (time 0 is midnight of day 0, so ``daily`` with phase 4 h triggers at 04:00 every day),
    the first one strictly after the start of the measured period. A trigger that finds an
    update in flight follows ``pipeline.overlap``: ``skip`` drops it (logged as skipped);
    ``queue`` keeps at most one pending trigger and runs it when the one in flight ends,
    keeping its trigger time (a trigger that finds one pending is skipped, so the queue is
    bounded by one); ``supersede`` aborts the one in flight if it is still being saved or
    validated and starts anew, and otherwise (its payload is already on the links, where
    aborting would waste the bandwidth spent) queues like ``queue``.
    """

    def __init__(self, settings: PolicySettings) -> None:
        no_params(settings)
        if settings.interval_s is None:
            raise ConfigError(
                f"policy.interval_s=None is not allowed for policy {settings.name!r}: must be > 0"
            )
        self.settings = settings
        self.in_flight: UpdateRun | None = None
        self.pending: float | None = None  # trigger time of the queued update, if any

    def start(self, ctx: UpdateContext) -> None:
        ctx.env.process(self._clock(ctx))

    def _first_trigger(self, start_s: float) -> float:
        return next_phase(start_s, self.settings.interval_s, self.settings.phase_s)

    def _clock(self, ctx: UpdateContext) -> Generator[Any, Any, None]:
        env = ctx.env
        yield env.timeout(self._first_trigger(env.now) - env.now)
        while True:
            self._trigger(ctx)
            yield env.timeout(self.settings.interval_s)

    def _busy(self) -> bool:
        return self.in_flight is not None and self.in_flight.process.is_alive

    def _trigger(self, ctx: UpdateContext) -> None:
        rule = self.settings.pipeline.overlap
        if self._busy():
            if rule == "supersede" and not self.in_flight.broadcasting:
                self.in_flight.process.interrupt()
            elif rule in ("queue", "supersede") and self.pending is None:
                self.pending = ctx.env.now
                return
            else:
                uid = ctx.updates.new_id()
                for name in ctx.replicas:
                    ctx.updates.add(
                        UpdateRow(uid, -1, name, "full", 0.0, ctx.env.now, status="skipped")
                    )
                return
        self._launch(ctx, ctx.env.now)

    def _launch(self, ctx: UpdateContext, trigger_s: float) -> None:
        run = new_run(ctx, "full", trigger_s)
        run.process = ctx.env.process(self._update(ctx, run))
        self.in_flight = run

    def _update(self, ctx: UpdateContext, run: UpdateRun) -> Generator[Any, Any, None]:
        yield from checkpoint_update(ctx, self.settings.pipeline, run)
        if self.pending is not None and self.in_flight is run:
            trigger_s, self.pending = self.pending, None
            self._launch(ctx, trigger_s)


def next_phase(after_s: float, interval_s: float, phase_s: float) -> float:
    """The first time strictly after ``after_s`` that equals ``phase_s`` modulo ``interval_s``
    (all in seconds of simulated time)."""
    k = math.floor((after_s - phase_s) / interval_s) + 1
    t = phase_s + k * interval_s
    return t if t > after_s else t + interval_s
