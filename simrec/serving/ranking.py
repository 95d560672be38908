"""Compiled kernels of the request path: score each request's candidate window, keep the top k.

Requests come in batches of ``batch_size`` consecutive rows; batch ``r // batch_size`` shares
one retrieval pool of M items, and request ``r`` takes the K pool entries from ``start[r]``
on, wrapping round (see :mod:`simrec.serving.replica`). Pools are passed transposed and
extended by their first K - 1 entries, ``(n_batches, d, M + K - 1)``, so that a window is a
contiguous slice and its K scores are computed column by column in SIMD registers. Only those
K scores are computed per request (not the whole pool); the top k are found by counting
ranks among the scores above a cheap lower bound (:func:`_top_k`), best first (on equal
scores the earlier window position wins).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


def extended(vecs: np.ndarray, bias: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray]:
    """Pools ``vecs`` (nb, M, d) and ``bias`` (nb, M) in the kernels' layout: transposed
    (nb, d, M + K - 1) and (nb, M + K - 1), wrapped round by K - 1 entries."""
    vt = vecs.transpose(0, 2, 1)
    w = K - 1
    # C order matters: the kernels are compiled per layout, and only C-ordered windows
    # vectorise
    return (
        np.ascontiguousarray(np.concatenate([vt, vt[:, :, :w]], axis=2), dtype=np.float32),
        np.ascontiguousarray(np.concatenate([bias, bias[:, :w]], axis=1), dtype=np.float32),
    )


@njit(cache=True, nogil=True)
def true_pools(
    pools, K, t, vec, quality, birth_s, topic, popularity, boost, decay_s, base, rows=False
):
    """The truth of each pool's items at time ``t`` (s).

    Args:
        pools: (nb, M) item ids; K: window length.
        vec, quality, birth_s, topic: the catalogue's columns; popularity: topic
            popularity now (logits).
        boost, decay_s: freshness ``boost * exp(-age / decay_s)`` (logits, s), as in
            :meth:`simrec.world.items.Items.freshness`; base: base logit.
        rows: the items' rows, (nb, M, d) and (nb, M), instead of the extended layout.

    Returns:
        vectors (nb, d, M + K - 1) and base + quality + freshness + topic popularity
        (nb, M + K - 1); with ``rows``, (nb, M, d) and (nb, M).
    """
    nb, M = pools.shape
    d = vec.shape[1]
    W = M if rows else M + K - 1
    vt = np.empty((nb, W, d) if rows else (nb, d, W), np.float32)
    bias = np.empty((nb, W), np.float32)
    age = np.empty(M)
    qual = np.empty(M, quality.dtype)
    pop = np.empty(M, popularity.dtype)
    for q in range(nb):
        # the gathers first, in a loop of their own, so that their cache misses overlap
        for c in range(M):
            i = pools[q, c]
            age[c] = max(t - birth_s[i], 0.0)
            qual[c] = quality[i]
            pop[c] = popularity[topic[i]]
            for a in range(d):
                if rows:
                    vt[q, c, a] = vec[i, a]
                else:
                    vt[q, a, c] = vec[i, a]
        for c in range(M):
            fresh = np.float32(boost * math.exp(-age[c] / decay_s))
            bias[q, c] = base + (qual[c] + fresh + pop[c])
        for c in range(M, W):  # the extended layout wraps round: entry c is entry c - M
            bias[q, c] = bias[q, c - M]
            for a in range(d):
                vt[q, a, c] = vt[q, a, c - M]
    return vt, bias


@njit(cache=True, nogil=True)
def _window_scores(sc, u, scale, vt, bias, c0):
    """sc[j] = bias[c0 + j] + scale * <u, vt[:, c0 + j]> for j < len(sc)."""
    K = sc.shape[0]
    sc[:] = 0.0
    for a in range(u.shape[0]):
        ua = u[a]
        row = vt[a, c0 : c0 + K]
        for j in range(K):
            sc[j] += ua * row[j]
    for j in range(K):
        sc[j] = bias[c0 + j] + scale * sc[j]


#: Above this many candidates the top k are kept by insertion rather than by counting ranks
#: (whose cost grows as its square: many candidates survive only when many scores tie).
RANK_MAX = 48


@njit(cache=True, nogil=True, inline="always")
def _scratch(K, k):
    """(vals, top, keys, rank): scratch of :func:`_top_k` for windows of K scores, top k
    (``keys`` has room for the padding of the rank count)."""
    return (
        np.empty(k + 1, np.float32),
        np.empty(k + 1, np.int64),
        np.empty(K + 16, np.int64),
        np.empty(K, np.int64),
    )


@njit(cache=True, nogil=True)
def _top_k(sc, vals, top, keys, rank):
    """The k = ``len(vals) - 1`` largest of ``sc`` into ``vals[:k]`` (descending) and their
    positions into ``top[:k]``, on equal scores the earlier position first; returns how many
    were filled (fewer only if ``sc`` is shorter). The last entries of ``vals`` and ``top``,
    ``keys`` (length >= len(sc) + 16) and ``rank`` (length >= len(sc)) are scratch.

    The maxima of k disjoint groups of ``sc`` are k values, so the smallest of them bounds
    the k-th largest from below; only values at or above it (about a quarter for K = 100,
    k = 10) are candidates. The groups are contiguous runs, whose maxima are taken in two
    independent chains of compares (4x faster than updating k running maxima in memory).
    Each candidate gets a unique integer key, ordered as (score, earlier position), and its
    rank is the number of larger keys: counting them is a loop without branches, where
    inserting into a sorted list mispredicts about twice per candidate; the keys are padded
    to whole vectors so that the count has no scalar tail.
    """
    K = sc.shape[0]
    k = min(vals.shape[0] - 1, K)
    if k <= 0:
        return 0
    thr = -np.inf
    if 2 * k <= K:
        thr = np.inf
        G = K // k
        for a in range(k):  # group a is sc[a*G : (a+1)*G], its maximum taken in two chains
            b = a * G
            m0 = sc[b]
            m1 = sc[b + 1]
            for j in range(b + 2, b + G - 1, 2):
                v0 = sc[j]
                v1 = sc[j + 1]
                m0 = v0 if v0 > m0 else m0
                m1 = v1 if v1 > m1 else m1
            if G & 1:
                v0 = sc[b + G - 1]
                m0 = v0 if v0 > m0 else m0
            m = m1 if m1 > m0 else m0
            thr = m if m < thr else thr
    n = 0
    for j in range(K):  # branch-free filter: positions of the candidates
        rank[n] = j
        n += sc[j] >= thr
    bits = sc.view(np.int32)
    for x in range(n):
        j = rank[x]
        b = np.int64(bits[j])
        if b == -(2**31):  # -0.0 ties with +0.0
            b = 0
        b ^= (b >> 31) & 0x7FFFFFFF  # now ordered as the floats are
        keys[x] = (b << 32) | (K - 1 - j)
    if n <= RANK_MAX:
        npad = (n + 15) & ~15  # whole vectors: no scalar tail in the counting loops
        for y in range(n, npad):
            keys[y] = -(2**63)
        for x in range(n):
            kx = keys[x]
            r = 0
            for y in range(npad):
                r += keys[y] > kx
            rank[x] = r
        for x in range(n):  # ranks from k on all land in the scratch entry k
            r = min(rank[x], k)
            j = K - 1 - (keys[x] & 0xFFFFFFFF)
            top[r] = j
            vals[r] = sc[j]
        return k
    m = 0
    for x in range(n):  # in window order: an equal score never moves ahead
        j = K - 1 - (keys[x] & 0xFFFFFFFF)
        v = sc[j]
        if m == k:
            if v <= vals[k - 1]:
                continue
            p = k - 1
        else:
            p = m
            m += 1
        while p > 0 and vals[p - 1] < v:
            vals[p] = vals[p - 1]
            top[p] = top[p - 1]
            p -= 1
        vals[p] = v
        top[p] = j
    return k


@njit(cache=True, nogil=True)
def model_slates(
    uvec, ivt, ibias, start, K, batch_size, true_u, tvec, tbias, scale, pools, pos, items, p, r0, r1
):
    """Rank the windows of requests ``r0`` to ``r1 - 1`` by the model and fill the first
    ``len(pos)`` slots of their slates, best first, with the true click probability of each
    shown item. A request's slate depends only on its own rows, so disjoint row ranges can
    be ranked in different threads.

    Args:
        uvec: (B, d) model user vectors.
        ivt, ibias: the model's item vectors and biases of each batch's pool, extended
            (see :func:`extended`).
        start: (B,) window offsets; K: window length (<= M).
        true_u: (B, d) true interests; tvec, tbias: the pools' true item vectors and base
            logit + item terms, as rows (see :func:`true_pools`).
        scale: affinity scale of the true click model.
        pools: (nb, M) item ids of the pools; pos: (m,) position bias of the slots to fill.
        items, p: (B, >= m) slates and click probabilities, written in place.
        r0, r1: the requests to rank (rows of the arrays above).
    """
    d = uvec.shape[1]
    M = pools.shape[1]
    k = pos.shape[0]
    sc = np.empty(K, np.float32)
    vals, top, keys, rank = _scratch(K, k)
    cols = np.empty((r1 - r0, k), np.int64)
    z = np.empty((r1 - r0, k))
    for r in range(r0, r1):
        q = r // batch_size
        c0 = start[r]
        _window_scores(sc, uvec[r], np.float32(1.0), ivt[q], ibias[q], c0)
        _top_k(sc, vals, top, keys, rank)
        for j in range(k):
            c = c0 + top[j]
            cols[r - r0, j] = c - M if c >= M else c
    # the truth of the shown items after the ranking, and the sigmoids in a pass of their
    # own: independent work that the core overlaps (10 % faster than per request)
    for r in range(r0, r1):
        q = r // batch_size
        for j in range(k):
            c = cols[r - r0, j]
            dot = np.float32(0.0)
            for a in range(d):
                dot += true_u[r, a] * tvec[q, c, a]
            z[r - r0, j] = tbias[q, c] + scale * dot
            items[r, j] = pools[q, c]
    for r in range(r0, r1):
        for j in range(k):
            p[r, j] = pos[j] / (1.0 + math.exp(-z[r - r0, j]))


@njit(cache=True, nogil=True)
def oracle_expected(true_u, tvt, tbias, start, K, pos, batch_size, scale):
    """Expected clicks of the oracle's slate: the top ``len(pos)`` of each request's window
    by true probability, slot j weighted by the position bias ``pos[j]``.

    ``tvt``/``tbias`` are the oracle pools' true item vectors and base logit + item terms,
    extended (see :func:`extended`); other arguments as in :func:`model_slates`. Returns
    (B,)."""
    B = true_u.shape[0]
    k = pos.shape[0]
    out = np.empty(B)
    sc = np.empty(K, np.float32)
    vals, top, keys, rank = _scratch(K, k)
    for r in range(B):
        q = r // batch_size
        _window_scores(sc, true_u[r], np.float32(scale), tvt[q], tbias[q], start[r])
        n = _top_k(sc, vals, top, keys, rank)
        e = 0.0
        for j in range(n):
            e += pos[j] / (1.0 + math.exp(-vals[j]))
        out[r] = e
    return out


@njit(cache=True, nogil=True)
def first_distinct(draw, k, seen):
    """The first ``k`` distinct values of ``draw``, in draw order (fewer if it has fewer).
    ``seen`` is a scratch bool array over the values, all False on entry and on exit."""
    out = np.empty(k, np.int64)
    n = 0
    for x in draw:
        if not seen[x]:
            seen[x] = True
            out[n] = x
            n += 1
            if n == k:
                break
    for j in range(n):
        seen[out[j]] = False
    return out[:n]


@njit(cache=True, nogil=True)
def first_distinct_rows(draws, k, seen):
    """:func:`first_distinct` of each row of ``draws``: (rows, k) values and whether each
    row had k distinct values (incomplete rows are left partly unset)."""
    out = np.empty((draws.shape[0], k), np.int64)
    complete = np.zeros(draws.shape[0], np.bool_)
    for q in range(draws.shape[0]):
        got = first_distinct(draws[q], k, seen)
        out[q, : len(got)] = got
        complete[q] = len(got) == k
    return out, complete
