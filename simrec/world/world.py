"""The world: users, topics and items advanced together, and the true click model."""

from __future__ import annotations

import numpy as np

from simrec.config import Config
from simrec.rng import Streams
from simrec.world.clicks import true_logits
from simrec.world.diurnal import Diurnal
from simrec.world.items import Items
from simrec.world.topics import Topics
from simrec.world.users import Users


class World:
    """Ground truth of one run.

    Args:
        cfg: the run's config.
        streams: the run's named random streams.
    """

    def __init__(self, cfg: Config, streams: Streams) -> None:
        self.cfg = cfg
        self.diurnal = Diurnal(cfg.users.diurnal_amplitude, cfg.users.diurnal_peak_hour)
        shares = np.array([d.traffic_share for d in cfg.infra.datacenters])
        self.topics = Topics(cfg.topics, cfg.interests.dim, streams["topics"])
        self.items = Items(cfg.items, self.topics, self.diurnal, streams["items"])
        self.users = Users(
            cfg.users,
            cfg.interests,
            shares,
            self.diurnal,
            streams["users"],
            streams["anonymous"],
            streams["interests"],
            streams["tastes"],
        )
        self.now = 0.0

    def advance(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Advance to ``t`` (s): births, deaths, popularity. Returns (new users, new items)."""
        t0 = self.now
        self.topics.advance(t)
        new_items = self.items.advance(t0, t)
        new_users = self.users.advance(t0, t)
        self.now = t
        return new_users, new_items

    def item_terms(
        self, ids: np.ndarray, t: float, popularity: np.ndarray | None = None
    ) -> np.ndarray:
        """quality + freshness + topic popularity of items ``ids`` at ``t`` (logit units)."""
        pop = self.topics.popularity if popularity is None else popularity
        it = self.items.t
        return it.quality[ids] + self.items.freshness(ids, t) + pop[it.topic[ids]]

    def logits(self, user_vecs: np.ndarray, item_ids: np.ndarray, t: float) -> np.ndarray:
        """True relevance logits (B, K) of users with interests ``user_vecs`` for items."""
        c = self.cfg.clicks
        return true_logits(
            user_vecs,
            self.items.t.vec[item_ids],
            self.item_terms(item_ids, t),
            c.base_logit,
            c.affinity_scale,
        )
