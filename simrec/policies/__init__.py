"""Update policies: plug-ins behind :class:`UpdatePolicy`, named in configs by registry key."""

from simrec.policies import baselines, online, periodic  # noqa: F401  (register the plug-ins)
from simrec.policies.base import POLICIES, UpdateContext, UpdatePolicy

__all__ = ["POLICIES", "UpdateContext", "UpdatePolicy"]
