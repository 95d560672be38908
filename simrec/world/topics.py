"""Topics: fixed centres in interest space, and a popularity that changes over time."""

from __future__ import annotations

import math

import numpy as np

from simrec.config import TopicSettings
from simrec.world.interests import ou_step


class Topics:
    """Topic centres and popularity.

    Popularity (logit units) is an OU process per topic with stationary std
    ``popularity_std`` plus, if enabled, ``hot_topic_boost`` on one "hot topic" redrawn every
    ``hot_topic_period_s`` (news' topic of the day, short video's trends).

    Args:
        cfg: topic settings.
        dim: latent dimension.
        rng: the topics stream.
    """

    def __init__(self, cfg: TopicSettings, dim: int, rng: np.random.Generator) -> None:
        self.cfg = cfg
        self.rng = rng
        self.count = cfg.count
        self.centres = rng.normal(0, math.sqrt(1.0 / dim), (cfg.count, dim)).astype(np.float32)
        self.base = rng.normal(0, cfg.popularity_std, cfg.count).astype(np.float32)
        self.t = 0.0
        self.hot = -1
        self._hot_epoch = -1
        self._update_hot(0.0)

    def _update_hot(self, t: float) -> None:
        if self.cfg.hot_topic_boost <= 0:
            return
        epoch = int(t // self.cfg.hot_topic_period_s)
        if epoch != self._hot_epoch:
            self._hot_epoch = epoch
            self.hot = int(self.rng.integers(self.count))

    def advance(self, t: float) -> None:
        """Move popularity to time ``t`` (s)."""
        dt = t - self.t
        if dt > 0:
            self.base = ou_step(
                self.base[None, :],
                dt,
                self.cfg.popularity_kappa_per_s,
                self.cfg.popularity_std**2,
                self.rng,
            )[0]
            self.t = t
        self._update_hot(t)

    @property
    def popularity(self) -> np.ndarray:
        """Current popularity logit of each topic."""
        if self.hot < 0:
            return self.base
        pop = self.base.copy()
        pop[self.hot] += self.cfg.hot_topic_boost
        return pop

    def arrival_weights(self) -> np.ndarray:
        """Probability that a new item belongs to each topic: proportional to the exp of its
        OU popularity logit (without the hot topic's boost), times
        ``hot_topic_arrival_weight`` for the hot topic."""
        w = np.exp(self.base.astype(np.float64))
        if self.hot >= 0:
            w[self.hot] *= self.cfg.hot_topic_arrival_weight
        return w / w.sum()
