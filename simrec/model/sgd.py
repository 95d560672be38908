"""The learner's minibatch step as one compiled kernel.

One call trains on a run of examples in minibatches of ``minibatch``. Per minibatch it is
exactly the step :class:`simrec.model.learner.Learner` documents: the frequency filter counts
the minibatch's sightings first, then every logit is computed with the parameters as they
were at the start of the minibatch, gradients are summed per row (user, item, item bias,
topic row, topic bias, dense weights; dense gradients are averaged over the minibatch), L2 is
added once per touched user and item row, and each touched row takes one Adagrad step
(accumulator += mean of the squared row gradient) or one SGD step. Compiled once and cached
on disk.

Per minibatch the kernel makes passes rather than one loop per example: a grouping pass gives
each example its user and item slot; the item side (topic row + item row, biases, age
features) is computed once per distinct item, since a minibatch of 2 048 examples shows only
a few hundred items; then the logits, the sigmoids and the scatter of the gradients each take
a pass of their own, so that the out-of-order core overlaps the examples' dependency chains
(dot product, ``exp``, scatter) instead of waiting on each in turn. Every sum is taken in the
same order as one loop over the examples would take it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from simrec.model.version import age_phi

EPS = 1e-8


@njit(cache=True, nogil=True)
def _step_row(table, i, acc, grad, lr, ada):
    """One optimizer step of row ``table[i]`` (d,) with gradient ``grad`` (d,); its Adagrad
    accumulator (mean squared gradient, summed over steps) is ``acc[i]``."""
    d = table.shape[1]
    if ada:
        g2 = 0.0
        for a in range(d):
            g2 += grad[a] * grad[a]
        acc[i] += np.float32(g2 / d)
        scale = lr / math.sqrt(acc[i] + EPS)
    else:
        scale = lr
    for a in range(d):
        table[i, a] -= np.float32(grad[a] * scale)


@njit(cache=True, nogil=True)
def _step_scalar(table, i, acc, g, lr, ada):
    """One optimizer step of the scalar ``table[i]`` with gradient ``g``."""
    if ada:
        acc[i] += np.float32(g * g)
        table[i] -= np.float32(g * lr / math.sqrt(acc[i] + EPS))
    else:
        table[i] -= np.float32(g * lr)


@njit(cache=True, nogil=True)
def train_minibatches(
    ex_t,
    ex_user,
    ex_item,
    ex_slot,
    ex_click,
    minibatch,
    item_topic,
    item_birth,
    age_taus,
    age_powers,
    U,
    u_known,
    u_seen,
    u_acc,
    u_updated,
    u_stamp,
    V,
    v_acc,
    b,
    b_acc,
    i_known,
    i_updated,
    i_stamp,
    T,
    T_acc,
    tb,
    tb_acc,
    dense,
    dense_acc,
    u_slot,
    i_slot,
    min_sightings,
    l2,
    lr,
    adagrad,
    now,
    seq,
):
    """Train on examples ``ex_*`` (arrays of equal length) in minibatches, in place.

    ``u_slot``/``i_slot`` are scratch arrays over user/item ids, all -1 on entry and on exit.
    Each minibatch takes the next write-sequence number after ``seq``; returns the last used.
    Tables are indexed by id and must already hold every id in the examples.
    """
    n_all = ex_user.shape[0]
    d = U.shape[1]
    n_topics = T.shape[0]
    n_dense = dense.shape[0]
    n_age = age_taus.shape[0]
    slate = n_dense - 1 - n_age
    gT = np.zeros((n_topics, d))
    gtb = np.zeros(n_topics)
    t_hit = np.zeros(n_topics, np.bool_)
    gd = np.zeros(n_dense)
    xphi = np.empty((minibatch, n_age), np.float32)
    xz = np.empty(minibatch, np.float32)
    xg = np.empty(minibatch, np.float32)
    uu = np.empty(minibatch, np.int64)
    ii = np.empty(minibatch, np.int64)
    xu = np.empty(minibatch, np.int64)  # each example's user slot
    xi = np.empty(minibatch, np.int64)  # each example's item slot
    gU = np.empty((minibatch, d))
    gV = np.empty((minibatch, d))
    gb = np.empty(minibatch)
    # per item slot, what every example of the item shares within a minibatch
    s_t = np.empty(minibatch)
    s_tp = np.empty(minibatch, np.int64)
    s_tb = np.empty(minibatch, np.float32)
    s_b = np.empty(minibatch, np.float32)
    s_phi = np.empty((minibatch, n_age), np.float32)
    s_v = np.empty((minibatch, d), np.float32)
    row = np.empty(d)
    for s in range(0, n_all, minibatch):
        e = min(s + minibatch, n_all)
        seq += 1
        # group the minibatch's users and items (slots in order of first sighting)
        nu = 0
        ni = 0
        prev = -1
        ju = -1
        for x in range(s, e):
            u = ex_user[x]
            if u != prev:
                prev = u
                ju = u_slot[u]
                if ju < 0:
                    ju = u_slot[u] = nu
                    uu[nu] = u
                    nu += 1
            xu[x - s] = ju
            u_seen[u] += 1
            i = ex_item[x]
            ji = i_slot[i]
            if ji < 0:
                ji = i_slot[i] = ni
                ii[ni] = i
                s_t[ni] = ex_t[x]
                ni += 1
            xi[x - s] = ji
        # read every touched row once in a loop that does nothing else, so that their
        # cache misses overlap (the passes below each wait on one row at a time); the sum
        # is only there so that the loads are not optimised away
        touch = 0.0
        for j in range(nu):
            u = uu[j]
            touch += U[u, 0] + u_acc[u] + u_updated[u] + u_stamp[u] + u_known[u]
        for j in range(ni):
            i = ii[j]
            touch += V[i, 0] + v_acc[i] + b[i] + b_acc[i] + i_updated[i] + i_stamp[i]
            touch += i_known[i] + item_topic[i] + item_birth[i]
        if touch != touch:
            row[0] = 0.0  # scratch: harmless, and makes the sum observable
        # frequency filter; an item row evicted while the item is still shown comes back
        for j in range(nu):
            u = uu[j]
            if not u_known[u] and u_seen[u] >= min_sightings:
                u_known[u] = True
                U[u, :] = 0.0
                u_acc[u] = 0.0
        for j in range(ni):
            i = ii[j]
            if not i_known[i]:
                i_known[i] = True
                V[i, :] = 0.0
                b[i] = 0.0
        # item sides, once per item: parameters are those at the start of the minibatch
        for j in range(ni):
            i = ii[j]
            tp = item_topic[i]
            s_tp[j] = tp
            s_tb[j] = tb[tp]
            s_b[j] = b[i]
            for a in range(d):
                s_v[j, a] = T[tp, a] + V[i, a]
            age_phi(s_t[j] - item_birth[i], age_taus, age_powers, s_phi[j])
        gU[:nu] = 0.0
        gV[:ni] = 0.0
        gb[:ni] = 0.0
        gT[:] = 0.0
        gtb[:] = 0.0
        t_hit[:] = False
        gd[:] = 0.0
        # logits with the parameters at the start of the minibatch, in passes of their own
        # so that the examples' dependency chains (dot, exp, scatter) overlap
        for x in range(s, e):
            u = ex_user[x]
            ji = xi[x - s]
            k = ex_slot[x]
            z = dense[0] + dense[1 + k] + s_tb[ji] + s_b[ji]
            if ex_t[x] == s_t[ji]:
                for a in range(n_age):
                    xphi[x - s, a] = s_phi[ji, a]
            else:  # an item seen at two times within one minibatch
                age_phi(ex_t[x] - item_birth[ii[ji]], age_taus, age_powers, xphi[x - s])
            for a in range(n_age):
                z += xphi[x - s, a] * dense[1 + slate + a]
            if u_known[u]:
                dot = np.float32(0.0)
                for a in range(d):
                    dot += U[u, a] * s_v[ji, a]
                z += dot
            xz[x - s] = z
        for x in range(s, e):
            xg[x - s] = np.float32(1.0 / (1.0 + math.exp(-xz[x - s])) - ex_click[x])
        # gradients summed per row, in example order
        for x in range(s, e):
            u = ex_user[x]
            ju = xu[x - s]
            ji = xi[x - s]
            tp = s_tp[ji]
            k = ex_slot[x]
            g = xg[x - s]
            if u_known[u]:
                for a in range(d):
                    gU[ju, a] += g * s_v[ji, a]
                    gV[ji, a] += g * U[u, a]
                    gT[tp, a] += g * U[u, a]
            gb[ji] += g
            gtb[tp] += g
            t_hit[tp] = True
            gd[0] += g
            gd[1 + k] += g
            for a in range(n_age):
                gd[1 + slate + a] += g * xphi[x - s, a]
        # one step per touched row
        for j in range(nu):
            u = uu[j]
            u_slot[u] = -1
            if not u_known[u]:
                continue
            for a in range(d):
                row[a] = np.float32(gU[j, a]) + l2 * U[u, a]
            _step_row(U, u, u_acc, row, lr, adagrad)
            u_updated[u] = now
            u_stamp[u] = seq
        for j in range(ni):
            i = ii[j]
            i_slot[i] = -1
            for a in range(d):
                row[a] = np.float32(gV[j, a]) + l2 * V[i, a]
            _step_row(V, i, v_acc, row, lr, adagrad)
            _step_scalar(b, i, b_acc, np.float32(gb[j]), lr, adagrad)
            i_updated[i] = now
            i_stamp[i] = seq
        for tp in range(n_topics):
            if t_hit[tp]:
                for a in range(d):
                    row[a] = np.float32(gT[tp, a])
                _step_row(T, tp, T_acc, row, lr, adagrad)
                _step_scalar(tb, tp, tb_acc, np.float32(gtb[tp]), lr, adagrad)
        m = e - s
        for a in range(n_dense):
            _step_scalar(dense, a, dense_acc, np.float32(gd[a] / m), lr, adagrad)
    return seq
