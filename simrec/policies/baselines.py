"""Baselines: ``frozen`` (never updates after warm-up) and ``oracle`` (always fresh)."""

from __future__ import annotations

from simrec.config import PolicySettings
from simrec.model.version import LiveOracle
from simrec.policies.base import POLICIES, UpdateContext, no_params


@POLICIES.register("frozen")
class Frozen:
    """Keeps the version that was live at the end of warm-up (lower bound)."""

    def __init__(self, settings: PolicySettings) -> None:
        no_params(settings)
        self.settings = settings

    def start(self, ctx: UpdateContext) -> None:
        return None


@POLICIES.register("oracle")
class Oracle:
    """Serves with the true world state at request time, for free (upper bound)."""

    def __init__(self, settings: PolicySettings) -> None:
        no_params(settings)
        self.settings = settings

    def start(self, ctx: UpdateContext) -> None:
        live = LiveOracle(ctx.world)
        for replica in ctx.replicas.values():
            replica.version = live
            replica.landed_s = ctx.env.now
