"""The offline checkpoint pipeline: save, validate, broadcast, load and swap.

Each stage is a SimPy timeout or transfer with its own duration:

* save: ``bytes / storage_write_bytes_per_s``;
* validate: ``fixed_s + held_out_examples / examples_per_s``, a real evaluation of the
  candidate against the last shipped version (see :mod:`simrec.pipeline.validation`); a
  failed checkpoint is not shipped, training goes on;
* broadcast over the topology (processor-shared links);
* load at each datacenter: ``bytes / load_bytes_per_s``, then an atomic swap.

Landing time at a datacenter is therefore save + validate + (queueing +) latency +
transfer + load.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import simpy

from simrec.config import PipelineSettings
from simrec.pipeline.context import UpdateContext
from simrec.pipeline.updates import UpdateRow
from simrec.pipeline.validation import validate


class UpdateRun:
    """One update attempt in flight: its rows (one per datacenter) and an abort flag."""

    def __init__(self, rows: dict[str, UpdateRow]) -> None:
        self.rows = rows
        self.aborted = False
        self.broadcasting = False  # past save and validation: its payload is on the links
        self.process: simpy.Process | None = None

    def abort(self, status: str = "superseded") -> None:
        """Stop the attempt: datacenters it has not reached yet never load it."""
        self.aborted = True
        for row in self.rows.values():
            if row.status == "unfinished":
                row.status = status


def deliver(
    ctx: UpdateContext,
    run: UpdateRun,
    size_bytes: float,
    load_bytes_per_s: float,
    apply: Callable[[str], None],
) -> Generator[Any, Any, None]:
    """Broadcast ``size_bytes`` to every datacenter, then load and ``apply`` at each.

    Shared by checkpoint and online updates."""
    env = ctx.env
    names = list(ctx.replicas)
    run.broadcasting = True
    for name in names:
        run.rows[name].transfer_start_s = env.now
    arrivals = ctx.topology.broadcast(size_bytes, names)

    def at(name: str) -> Generator[Any, Any, None]:
        yield arrivals[name]
        row = run.rows[name]
        row.transfer_end_s = row.load_start_s = env.now
        yield env.timeout(size_bytes / load_bytes_per_s)
        row.load_end_s = env.now
        if run.aborted:
            return
        apply(name)
        row.landed_s = env.now
        row.status = "landed"

    yield env.all_of([env.process(at(n)) for n in names])


def checkpoint_update(
    ctx: UpdateContext, settings: PipelineSettings, run: UpdateRun
) -> Generator[Any, Any, None]:
    """SimPy process of one full-checkpoint update (rows of ``run`` are filled in)."""
    env = ctx.env
    rows = run.rows.values()
    version, size = ctx.training.snapshot()
    for r in rows:
        r.version, r.bytes, r.data_time_s = version.version, size, version.data_time_s
        r.save_start_s = env.now
    try:
        yield env.timeout(size / settings.storage_write_bytes_per_s)
        for r in rows:
            r.save_end_s = env.now
        v = settings.validation
        if v.enabled and ctx.training.shipped is not None:
            verdict = validate(version, ctx.training.shipped, ctx.log.holdout(env.now), v)
            for r in rows:
                r.validate_start_s = env.now
            yield env.timeout(verdict.duration_s)
            for r in rows:
                r.validate_end_s = env.now
                r.validation_passed = verdict.passed
                r.candidate_score = verdict.candidate_score
                r.live_score = verdict.live_score
            if not verdict.passed:
                run.abort("rejected")
                return
        ctx.training.shipped = version

        def swap(name: str) -> None:
            ctx.replicas[name].swap(version, env.now)

        yield from deliver(ctx, run, size, settings.load_bytes_per_s, swap)
    except simpy.Interrupt:
        run.abort("superseded")


def new_run(ctx: UpdateContext, kind: str, trigger_s: float) -> UpdateRun:
    """Rows for a new attempt, one per datacenter."""
    uid = ctx.updates.new_id()
    rows = {
        name: ctx.updates.add(UpdateRow(uid, -1, name, kind, 0.0, trigger_s))
        for name in ctx.replicas
    }
    return UpdateRun(rows)
