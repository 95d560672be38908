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
from simrec.model.version import AGE_TAUS_S, LearnedVersion, age_features
from simrec.world.clicks import sigmoid

EPS = 1e-8


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
        """Train on examples in minibatches; rows written are stamped with ``now``."""
        m = self.cfg.minibatch
        for s in range(0, len(ex), m):
            self._step(ex.take(slice(s, s + m)), now)
        if len(ex):
            self.data_time_s = max(self.data_time_s, float(ex.t[-1]))

    def _step(self, ex: Examples, now: float) -> None:
        cfg = self.cfg
        ut, it = self.users, self.items
        self._ensure(ut, int(ex.user.max()))
        self._ensure(it, int(ex.item.max()))
        # frequency filter: a user gets a row after `user_min_sightings` examples
        uu, uinv = self._group(ex.user, "u", ut.size)
        ut.seen[uu] += np.bincount(uinv, minlength=len(uu)).astype(np.int32)
        new = uu[(~ut.known[uu]) & (ut.seen[uu] >= cfg.user_min_sightings)]
        if len(new):
            ut.known[new] = True
            ut.vec[new] = 0.0
            ut.acc[new] = 0.0
        ii, iinv = self._group(ex.item, "i", it.size)
        # an item row may have been evicted while the item is still shown: re-register it
        gone = ii[~it.known[ii]]
        if len(gone):
            it.known[gone] = True
            it.vec[gone] = 0.0
            it.b[gone] = 0.0
        top = self.catalogue.topic[ex.item]
        age = ex.t - self.catalogue.birth_s[ex.item]
        phi = age_features(age)
        ukn = ut.known[ex.user]
        Uu = ut.vec[ex.user] * ukn[:, None]
        Vi = self.T[top] + it.vec[ex.item]
        w = self.dense
        z = (
            w[0]
            + w[1 + ex.slot]
            + phi @ w[1 + self.slate_size :]
            + self.tb[top]
            + it.b[ex.item]
            + np.einsum("nd,nd->n", Uu, Vi)
        )
        g = (sigmoid(z) - ex.click).astype(np.float32)
        n = len(g)
        # sparse gradients, summed per row
        gU = _rowsum(g[:, None] * Vi, uinv, len(uu))
        gV = _rowsum(g[:, None] * Uu, iinv, len(ii))
        gb = np.bincount(iinv, weights=g, minlength=len(ii)).astype(np.float32)
        nt = len(self.T)
        tt = np.flatnonzero(np.bincount(top, minlength=nt))
        gT = _rowsum(g[:, None] * Uu, top, nt)[tt]
        gtb = np.bincount(top, weights=g, minlength=nt).astype(np.float32)[tt]
        urows = uu[ut.known[uu]]
        gU = gU[ut.known[uu]] + cfg.l2 * ut.vec[urows]
        gV = gV + cfg.l2 * it.vec[ii]
        self._apply(ut.vec, ut.acc, urows, gU)
        self._apply(it.vec, it.acc, ii, gV)
        self._apply(it.b, it.b_acc, ii, gb)
        self._apply(self.T, self.T_acc, tt, gT)
        self._apply(self.tb, self.tb_acc, tt, gtb)
        gd = np.zeros_like(w)
        gd[0] = g.sum()
        gd[1 : 1 + self.slate_size] = np.bincount(ex.slot, weights=g, minlength=self.slate_size)
        gd[1 + self.slate_size :] = g @ phi
        gd /= n
        self._apply(self.dense, self.dense_acc, slice(None), gd)
        ut.updated_s[urows] = now
        it.updated_s[ii] = now
        self.seq += 1
        ut.stamp[urows] = self.seq
        it.stamp[ii] = self.seq

    def _group(self, ids: np.ndarray, name: str, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Distinct ``ids`` and each element's group index, like ``np.unique(ids,
        return_inverse=True)`` but without sorting (groups in order of last occurrence),
        through a scratch array indexed by id."""
        scratch = self._scratch.get(name)
        if scratch is None or len(scratch) < size:
            scratch = self._scratch[name] = np.empty(max(size, 1024) * 2, dtype=np.int64)
        n = len(ids)
        order = np.arange(n)
        scratch[ids] = order  # the last occurrence of an id wins
        rep = scratch[ids]
        pos = np.flatnonzero(rep == order)
        compact = np.empty(n, dtype=np.int64)
        compact[pos] = np.arange(len(pos))
        return ids[pos], compact[rep]

    def _apply(self, table: np.ndarray, acc: np.ndarray, rows, grad: np.ndarray) -> None:
        lr = self.cfg.learning_rate
        if self.cfg.optimizer == "adagrad":
            g2 = grad * grad if grad.ndim == 1 else np.mean(grad * grad, axis=1)
            if isinstance(rows, slice):
                acc += g2
                table -= lr * grad / np.sqrt(acc + EPS)
                return
            acc[rows] += g2
            scale = lr / np.sqrt(acc[rows] + EPS)
            table[rows] -= grad * (scale[:, None] if grad.ndim == 2 else scale)
        else:
            table[rows] -= lr * grad

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


def _rowsum(values: np.ndarray, inverse: np.ndarray, n: int) -> np.ndarray:
    """Sum rows of ``values`` (m, d) into ``n`` groups given by ``inverse``."""
    d = values.shape[1]
    flat = (inverse[:, None] * d + np.arange(d)).ravel()
    return (
        np.bincount(flat, weights=values.ravel(), minlength=n * d).reshape(n, d).astype(np.float32)
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
