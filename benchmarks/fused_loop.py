"""What the per-request work costs on its own: one fused compiled loop, nothing around it.

The engine spends CPU time on the per-request work (retrieval, scoring, top k, the truth of
the shown items, clicks, interest drift, training on every impression, the oracle's
counterfactual) and on everything around it (the world's advance, traffic, logging, metrics,
the update pipeline, SimPy, Python). This script times the first part alone, written as
directly as compiled code allows, to say how fast any engine built on these kernels could go
on this machine at the default shape (100 k users, 25 k items, d = 8, K = 100 candidates
from pools of 512 shared by batches of 256, slates of 10):

* one ``numba`` loop over requests, with no Python per batch or step: a uniform user, an OU
  drift step of its interests (normals drawn by NumPy in bulk, timed), its window of K
  candidates scored and ranked by the engine's own kernels (``_window_scores``,
  ``_top_k``), the truth of the 10 shown items (dot product, sigmoid, position bias) and
  their clicks, one Adagrad step on the user's and the item's rows per impression, and the
  oracle's window scored by the truth, ranked, and its expected clicks;
* the model is simpler than the engine's learner (no topic rows, no age features, no
  held-out share) and the truth has no freshness or topic popularity, so this does no more
  work than the engine, except that it takes Adagrad's step per impression (the engine's
  learner steps each touched row once per minibatch). It measures the work; it is not a
  second engine, and its values are not calibrated to the engine's world
  (``tests/test_fused_loop.py`` checks that it serves, clicks and learns).

Stages are timed cumulatively (each row adds one stage to the row above) in one thread, best
of three; then the whole loop runs in two threads on two independent copies, with no
coordination at all, which bounds what two cores can do with this work. 1 M requests/s on
two cores allows 2 CPU µs per request for everything. Run from the repository root:
``python benchmarks/fused_loop.py`` (about 30 s); ``--requests`` sets the requests per
timing. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import threading
import time

import numpy as np
from numba import njit

from simrec.serving.ranking import _scratch, _top_k, _window_scores, first_distinct

USERS, ITEMS, D, K, POOL, SLATE, BATCH = 100_000, 25_000, 8, 100, 512, 10, 256
AFFINITY, DRIFT, LR = 3.0, 0.01, 0.2
STAGES = ("ranking, truth, clicks", "+ interest drift", "+ training", "+ oracle")


def tables(seed: int) -> dict[str, np.ndarray]:
    """A world's and a model's rows: true and learned vectors, biases, Adagrad sums."""
    rng = np.random.default_rng(seed)
    f = np.float32
    return dict(
        user_true=rng.normal(0, 0.7, (USERS, D)).astype(f),
        item_true=rng.normal(0, 0.5, (ITEMS, D)).astype(f),
        item_true_bias=rng.normal(-3.0, 0.5, ITEMS).astype(f),
        user_vec=rng.normal(0, 0.1, (USERS, D)).astype(f),
        user_acc=np.full((USERS, D), 1e-3, f),
        item_vec=rng.normal(0, 0.1, (ITEMS, D)).astype(f),
        item_acc=np.full((ITEMS, D), 1e-3, f),
        item_bias=np.zeros(ITEMS, f),
    )


@njit(nogil=True)
def _pool(seen):
    """POOL distinct items, uniformly, in draw order, as the engine draws them: the first
    distinct ones of uniform draws (``seen`` is zeroed scratch)."""
    while True:
        out = first_distinct(np.random.randint(0, ITEMS, 2 * POOL), POOL, seen)
        if len(out) == POOL:
            return out


@njit(nogil=True)
def _extended(pool, vec, bias):
    """The pool's rows transposed and wrapped round by K - 1 (the engine's layout)."""
    W = POOL + K - 1
    vt = np.empty((D, W), np.float32)
    b = np.empty(W, np.float32)
    for c in range(W):
        i = pool[c % POOL]
        b[c] = bias[i]
        for a in range(D):
            vt[a, c] = vec[i, a]
    return vt, b


@njit(nogil=True)
def serve(
    n, seed, normals, user_true, item_true, item_true_bias, user_vec, user_acc, item_vec,
    item_acc, item_bias, stages,
):  # fmt: skip
    """Serve ``n`` requests (a multiple of BATCH) doing the first ``stages`` of STAGES.
    Returns (clicks, the model's expected clicks, the oracle's expected clicks)."""
    np.random.seed(seed)
    vals, top, keys, rank = _scratch(K, SLATE)
    sc = np.empty(K, np.float32)
    u = np.empty(D, np.float32)
    pos = np.empty(SLATE, np.float32)
    for j in range(SLATE):
        pos[j] = (j + 1) ** -0.5
    seen = np.zeros(ITEMS, np.bool_)
    clicks = expected = oracle = 0.0
    lr = np.float32(LR)
    for q in range(n // BATCH):
        pool = _pool(seen)
        mvt, mb = _extended(pool, item_vec, item_bias)
        tvt, tb = _extended(pool, item_true, item_true_bias)
        if stages >= 4:
            opool = _pool(seen)
            ovt, ob = _extended(opool, item_true, item_true_bias)
        for r in range(BATCH):
            usr = np.random.randint(USERS)
            if stages >= 2:
                for a in range(D):
                    x = user_true[usr, a]
                    user_true[usr, a] = x + np.float32(DRIFT) * (normals[q * BATCH + r, a] - x)
            c0 = np.random.randint(POOL)
            for a in range(D):
                u[a] = user_vec[usr, a]
            _window_scores(sc, u, np.float32(1.0), mvt, mb, c0)
            _top_k(sc, vals, top, keys, rank)
            for j in range(SLATE):
                c = c0 + top[j]
                z = tb[c]
                for a in range(D):
                    z += np.float32(AFFINITY) * user_true[usr, a] * tvt[a, c]
                p = pos[j] / (1.0 + math.exp(-z))
                click = np.random.random() < p
                clicks += click
                expected += p
                if stages >= 3:  # one Adagrad step on the impression
                    it = pool[c % POOL]
                    zl = item_bias[it]
                    for a in range(D):
                        zl += user_vec[usr, a] * item_vec[it, a]
                    g = np.float32(1.0 / (1.0 + math.exp(-zl)) - click)
                    for a in range(D):
                        gu = g * item_vec[it, a]
                        gi = g * user_vec[usr, a]
                        user_acc[usr, a] += gu * gu
                        item_acc[it, a] += gi * gi
                        user_vec[usr, a] -= lr * gu / math.sqrt(user_acc[usr, a])
                        item_vec[it, a] -= lr * gi / math.sqrt(item_acc[it, a])
                    item_bias[it] -= lr * g
            if stages >= 4:
                c1 = np.random.randint(POOL)
                for a in range(D):
                    u[a] = user_true[usr, a]
                _window_scores(sc, u, np.float32(AFFINITY), ovt, ob, c1)
                _top_k(sc, vals, top, keys, rank)
                for j in range(SLATE):
                    oracle += pos[j] / (1.0 + math.exp(-vals[j]))
    return clicks, expected, oracle


def run(n: int, stages: int, seed: int, t: dict[str, np.ndarray]) -> tuple[float, ...]:
    """``n`` requests in chunks, the drift's normals drawn by NumPy per chunk."""
    gen = np.random.default_rng(seed)
    chunk = BATCH * 128
    out = np.zeros(3)
    for c in range(-(-n // chunk)):
        m = min(chunk, n - c * chunk) // BATCH * BATCH
        normals = gen.standard_normal((m, D), dtype=np.float32)
        out += serve(m, seed * 1_000_003 + c, normals, *t.values(), stages)
    return tuple(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=float, default=1e6, help="requests per timing")
    n = int(ap.parse_args().requests) // BATCH * BATCH
    run(BATCH, 4, 0, tables(0))  # load the compiled code
    result: dict[str, float] = {}
    for s, name in enumerate(STAGES, 1):
        t = tables(1)
        best = math.inf
        for rep in range(3):
            c0 = time.process_time()
            run(n, s, rep + 1, t)
            best = min(best, time.process_time() - c0)
        result[name] = best / n * 1e6
        print(f"{name:24s} {result[name]:6.3f} CPU µs/request")
    copies = [tables(2), tables(3)]
    threads = [threading.Thread(target=run, args=(n, 4, i + 1, copies[i])) for i in range(2)]
    w0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    two = 2 * n / (time.perf_counter() - w0)
    print(f"two threads, all stages: {two:,.0f} requests/s")
    print(
        json.dumps(
            {
                "cpu_us_per_request": {k: round(v, 4) for k, v in result.items()},
                "two_thread_requests_per_s": round(two),
                "budget_cpu_us_per_request_for_1M_on_2_cores": 2.0,
            }
        )
    )


if __name__ == "__main__":
    main()
