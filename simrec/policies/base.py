"""The update-policy protocol, its registry, and what a policy may use (the context).

A policy decides *when* an update starts, *what* it carries and *which stages* it goes
through. It gets an :class:`UpdateContext` and starts SimPy processes in :meth:`start`;
nothing happens at construction. Register a new policy with ``@POLICIES.register("name")``;
the Hydra option ``policy=name`` selects it (see docs/policies.md for a worked example).
"""

from __future__ import annotations

from typing import Protocol

from simrec.config import ConfigError, PolicySettings
from simrec.pipeline.context import UpdateContext
from simrec.registry import Registry

__all__ = ["POLICIES", "UpdateContext", "UpdatePolicy"]


class UpdatePolicy(Protocol):
    """A plug-in that keeps the serving replicas fresh."""

    settings: PolicySettings

    def start(self, ctx: UpdateContext) -> None:
        """Start the policy's processes (called once, at the start of the measured period)."""
        ...


POLICIES: Registry[type] = Registry("policy")


def no_params(settings: PolicySettings) -> None:
    """Refuse ``policy.params`` for a policy that has no settings of its own (a typo there
    would otherwise change nothing, silently)."""
    if settings.params:
        raise ConfigError(
            f"policy.params={settings.params!r} is not allowed for policy "
            f"{settings.name!r}: it has no settings of its own (must be empty)"
        )
