"""Ground truth: users, topics, items and clicks."""

from simrec.world.world import World

__all__ = ["World"]
