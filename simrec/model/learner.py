"""The learned model and its online trainer.

Model (logit of a click):

    z = w0 + w_pos[slot] + w_age . phi(age) + tb[topic] + b[item] + U[user] . (T[topic] + V[item])

Sparse parameters are the user rows ``U``, item rows ``V`` and biases ``b`` (id-keyed tables),
plus the topic rows ``T``/``tb``; dense parameters are ``w0``, ``w_pos`` and ``w_age``. An item's
row is registered when it is published, with ``V = 0`` so that it starts at its topic's vector
(initialisation from content features); a user's row is created when first trained, after
``user_min_sightings`` examples (frequency filtering); rows untouched for ``row_ttl_s`` are
evicted. Every row remembers when it was last written, so the touched keys since any sync are
known. Training is minibatch row-wise Adagrad (or SGD) on logistic loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simrec.columns import Columns
from simrec.config import LearnerSettings
from simrec.model.log import Examples
from simrec.model.sgd import train_minibatches
from simrec.model.version import AGE_POWERS, AGE_TAUS_S, LearnedVersion


@dataclass
class Delta:
    """Sparse rows touched since a sync cut, for online updates.

    ``size_bytes`` is the production-scale payload (rows x scale x bytes per row).
    """

    cut: int
    data_time_s: float
    user_ids: np.ndarray
    U: np.ndarray
    item_ids: np.ndarray
    V: np.ndarray
    b: np.ndarray
    T: np.ndarray
    tb: np.ndarray
    evicted_users: np.ndarray
    evicted_items: np.ndarray
    size_bytes: float


class Learner:
    """Online trainer of the model above.

    Args:
        cfg: learner settings.
        dim: embedding dimension.
        n_topics: number of topics.
        slate_size: number of positions.
        catalogue: the items' table; the learner reads only publication metadata from it
            (topic, publication time, retirement time).
        rng: the learner stream.
    """

    def __init__(
        self,
        cfg: LearnerSettings,
        dim: int,
        n_topics: int,
        slate_size: int,
        catalogue: Columns,
        rng: np.random.Generator,
    ) -> None:
        self.cfg = cfg
        self.d = dim
        self.catalogue = catalogue
        self.rng = rng
        spec_row = {
            "known": (np.bool_, (), False),
            "updated_s": (np.float64, (), -np.inf),
            "stamp": (np.int64, (), -1),  # write sequence number of the last write
            "evicted": (np.int64, (), -1),  # write sequence number of the eviction
            "acc": (np.float32, (), 0.0),
        }
        self.users = Columns(
            {"vec": (np.float32, (dim,), 0.0), "seen": (np.int32, (), 0), **spec_row}, 4096
        )
        self.items = Columns(
            {
                "vec": (np.float32, (dim,), 0.0),
                "b": (np.float32, (), 0.0),
                "b_acc": (np.float32, (), 0.0),
                **spec_row,
            },
            4096,
        )
        self.T = rng.normal(0, cfg.init_std, (n_topics, dim)).astype(np.float32)
        self.T_acc = np.zeros(n_topics, np.float32)
        self.tb = np.zeros(n_topics, np.float32)
        self.tb_acc = np.zeros(n_topics, np.float32)
        self.dense = np.zeros(1 + slate_size + len(AGE_TAUS_S), np.float32)
        self.dense_acc = np.zeros_like(self.dense)
        self.slate_size = slate_size
        self.data_time_s = -np.inf
        self.version = 0
        self.seq = 0  # write sequence: deltas select rows written after a cut of it
        self._scratch: dict[str, np.ndarray] = {}

    # --- tables -------------------------------------------------------------------------
    @staticmethod
    def _ensure(tab: Columns, max_id: int) -> None:
        if max_id >= tab.size:
            tab.append(max_id + 1 - tab.size)

    def register_items(self, ids: np.ndarray, t: float) -> None:
        """Publish items: their rows exist from now on (V = 0, at the topic's vector)."""
        if len(ids) == 0:
            return
        self._ensure(self.items, int(ids.max()))
        it = self.items
        it.known[ids] = True
        it.vec[ids] = 0.0
        it.b[ids] = 0.0
        it.updated_s[ids] = t
        self.seq += 1
        it.stamp[ids] = self.seq

    def evict(self, now: float) -> None:
        """Evict rows untouched for ``row_ttl_s``. An item's row goes only once the item has
        left the catalogue (a live item stays retrievable however rarely it is shown)."""
        cut = now - self.cfg.row_ttl_s
        self.seq += 1
        for tab in (self.users, self.items):
            stale = tab.view("known") & (tab.view("updated_s") < cut)
            if tab is self.items:
                stale &= self.catalogue.view("death_s") <= now
            old = np.flatnonzero(stale)
            if len(old):
                tab.known[old] = False
                tab.vec[old] = 0.0
                tab.acc[old] = 0.0
                tab.evicted[old] = self.seq
                if tab is self.users:
                    tab.seen[old] = 0
                else:
                    tab.b[old] = 0.0
                    tab.b_acc[old] = 0.0

    @property
    def n_user_rows(self) -> int:
        return int(self.users.view("known").sum())

    @property
    def n_item_rows(self) -> int:
        return int(self.items.view("known").sum())

    # --- training -----------------------------------------------------------------------
    def train(self, ex: Examples, now: float) -> None:
        """Train on examples in minibatches of ``cfg.minibatch`` (see
        :mod:`simrec.model.sgd`); rows written are stamped with ``now``."""
        if len(ex) == 0:
            return
        cfg = self.cfg
        ut, it = self.users, self.items
        self._ensure(ut, int(ex.user.max()))
        self._ensure(it, int(ex.item.max()))
        u_slot = self._slots("u", ut.size)
        i_slot = self._slots("i", it.size)
        cat = self.catalogue
        self.seq = train_minibatches(
            ex.t,
            ex.user,
            ex.item,
            ex.slot,
            ex.click,
            cfg.minibatch,
            cat.topic,
            cat.birth_s,
            AGE_TAUS_S,
            AGE_POWERS,
            ut.vec,
            ut.known,
            ut.seen,
            ut.acc,
            ut.updated_s,
            ut.stamp,
            it.vec,
            it.acc,
            it.b,
            it.b_acc,
            it.known,
            it.updated_s,
            it.stamp,
            self.T,
            self.T_acc,
            self.tb,
            self.tb_acc,
            self.dense,
            self.dense_acc,
            u_slot,
            i_slot,
            cfg.user_min_sightings,
            cfg.l2,
            cfg.learning_rate,
            cfg.optimizer == "adagrad",
            now,
            self.seq,
        )
        self.data_time_s = max(self.data_time_s, float(ex.t[-1]))

    def _slots(self, name: str, size: int) -> np.ndarray:
        """A scratch array of -1 over ids below ``size`` (the kernel leaves it all -1)."""
        slots = self._scratch.get(name)
        if slots is None or len(slots) < size:
            slots = self._scratch[name] = np.full(max(size, 1024) * 2, -1, dtype=np.int64)
        return slots

    # --- snapshots ----------------------------------------------------------------------
    def size_bytes(
        self, n_users: int, n_items: int, n_topics: int = 0, dense: bool = False
    ) -> float:
        """Production-scale bytes of a payload with these simulated rows."""
        c = self.cfg
        rows = n_users * c.user_row_scale + n_items * c.item_row_scale + n_topics
        return rows * c.bytes_per_row + (c.dense_bytes if dense else 0.0)

    def full_bytes(self) -> float:
        """Bytes of a full checkpoint now."""
        return self.size_bytes(self.n_user_rows, self.n_item_rows, len(self.T), dense=True)

    def snapshot(self) -> LearnedVersion:
        """A copy of the current parameters as a new version."""
        self.version += 1
        ut, it = self.users, self.items
        known = ut.view("known")
        U = ut.view("vec").copy()
        fallback = U[known].mean(axis=0) if known.any() else np.zeros(self.d, np.float32)
        w = self.dense
        return LearnedVersion(
            version=self.version,
            data_time_s=self.data_time_s,
            U=U,
            u_known=known.copy(),
            u_fallback=fallback.astype(np.float32),
            V=it.view("vec").copy(),
            b=it.view("b").copy(),
            i_known=it.view("known").copy(),
            T=self.T.copy(),
            tb=self.tb.copy(),
            w0=float(w[0]),
            w_pos=w[1 : 1 + self.slate_size].copy(),
            w_age=w[1 + self.slate_size :].copy(),
            catalogue=self.catalogue,
        )

    def delta(self, since: int) -> Delta:
        """Rows written after write-sequence cut ``since`` (touched keys), and rows evicted
        after it. The delta's ``cut`` is the cut for the next one."""
        ut, it = self.users, self.items
        uid = np.flatnonzero(ut.view("known") & (ut.view("stamp") > since))
        iid = np.flatnonzero(it.view("known") & (it.view("stamp") > since))
        eu = np.flatnonzero(~ut.view("known") & (ut.view("evicted") > since))
        ei = np.flatnonzero(~it.view("known") & (it.view("evicted") > since))
        return Delta(
            cut=self.seq,
            data_time_s=self.data_time_s,
            user_ids=uid,
            U=ut.vec[uid].copy(),
            item_ids=iid,
            V=it.vec[iid].copy(),
            b=it.b[iid].copy(),
            T=self.T.copy(),
            tb=self.tb.copy(),
            evicted_users=eu,
            evicted_items=ei,
            size_bytes=self.size_bytes(len(uid) + len(eu), len(iid) + len(ei), len(self.T)),
        )


def apply_delta(version: LearnedVersion, delta: Delta) -> None:
    """Apply a sparse delta to a serving copy in place (copy on write)."""
    version.own()
    n_u = int(max(delta.user_ids.max(initial=-1), delta.evicted_users.max(initial=-1))) + 1
    n_i = int(max(delta.item_ids.max(initial=-1), delta.evicted_items.max(initial=-1))) + 1
    version.grow(n_u, n_i)
    version.U[delta.user_ids] = delta.U
    version.u_known[delta.user_ids] = True
    version.V[delta.item_ids] = delta.V
    version.b[delta.item_ids] = delta.b
    version.i_known[delta.item_ids] = True
    version.u_known[delta.evicted_users] = False
    version.i_known[delta.evicted_items] = False
    version.T[:] = delta.T
    version.tb[:] = delta.tb
    version.data_time_s = max(version.data_time_s, delta.data_time_s)


def apply_dense(version: LearnedVersion, source: LearnedVersion) -> None:
    """Replace the dense part (and the unknown-user fallback) of a serving copy."""
    version.own()
    version.w0 = source.w0
    version.w_pos = source.w_pos.copy()
    version.w_age = source.w_age.copy()
    version.u_fallback = source.u_fallback.copy()
