"""The training datacenter as the update pipelines see it: snapshots, deltas, sizes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from simrec.config import LearnerSettings
from simrec.model.learner import Delta, Learner
from simrec.model.version import ModelVersion, OracleVersion
from simrec.world.world import World


class TrainingSide:
    """Produces versions of the learned model (or of the oracle learner).

    Args:
        cfg: learner settings (``kind`` chooses learned or oracle snapshots).
        learner: the trained model.
        world: ground truth (for oracle snapshots).

    Attributes:
        shipped: the newest version that passed validation and was sent (validation compares
            candidates against it).
        barrier: called before the learner is read; the engine sets it to wait for training
            queued in its worker thread.
    """

    def __init__(self, cfg: LearnerSettings, learner: Learner, world: World) -> None:
        self.cfg = cfg
        self.learner = learner
        self.world = world
        self.shipped: ModelVersion | None = None
        self._oracle_version = 0
        self.barrier: Callable[[], None] = lambda: None

    def snapshot(self) -> tuple[ModelVersion, float]:
        """A new full version and its checkpoint size (bytes)."""
        self.barrier()
        if self.cfg.kind == "oracle":
            self._oracle_version += 1
            v = OracleVersion(self.world, self.world.now, self._oracle_version)
            size = self.learner.size_bytes(
                int(v.u_known.sum()), int(v.i_known.sum()), self.world.topics.count, dense=True
            )
            return v, size
        return self.learner.snapshot(), self.learner.full_bytes()

    def delta(self, since: int) -> Delta:
        """Sparse rows written after write-sequence cut ``since`` (learned model only)."""
        self.barrier()
        d = self.learner.delta(since)
        self.learner.version += 1
        return d

    @property
    def next_version(self) -> int:
        self.barrier()
        return self.learner.version

    @property
    def write_seq(self) -> int:
        """The learner's write sequence now: a delta from here holds what is written next."""
        self.barrier()
        return self.learner.seq

    def dense_bytes(self) -> float:
        return self.cfg.dense_bytes


def holdout_mask(n: int, share: float, rng: np.random.Generator) -> np.ndarray:
    """Which of ``n`` requests are held out of training."""
    return rng.random(n) < share
