"""The compiled kernels compute what their plain-numpy definitions compute.

Each kernel is checked against a direct numpy statement of the same operation (written for
clarity, not speed) on random inputs with repeated ids, ties and edge cases.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import tiny
from test_learner import make_learner

from simrec.engine import Simulation
from simrec.metrics.recorder import COHORTS, Recorder
from simrec.model.log import Examples
from simrec.model.version import age_features
from simrec.serving.ranking import (
    _top_k,
    extended,
    first_distinct,
    model_slates,
    oracle_expected,
)
from simrec.serving.replica import Served, done
from simrec.world.clicks import sigmoid
from simrec.world.users import _guided_ids, _RatePool


# --- learner ----------------------------------------------------------------------------
def reference_step(learner, ex: Examples, now: float) -> None:
    """One minibatch of the learner, as numpy: every logit with the parameters at the start,
    gradients summed per row, one Adagrad (or SGD) step per touched row."""
    cfg, ut, it, cat = learner.cfg, learner.users, learner.items, learner.catalogue
    lr, l2, ada = cfg.learning_rate, cfg.l2, cfg.optimizer == "adagrad"

    def step(table, acc, rows, grad):
        if not ada:
            table[rows] -= lr * grad
            return
        g2 = grad * grad if grad.ndim == 1 else np.mean(grad * grad, axis=1)
        acc[rows] += g2
        s = lr / np.sqrt(acc[rows] + 1e-8)
        table[rows] -= grad * (s[:, None] if grad.ndim == 2 else s)

    uu, uinv = np.unique(ex.user, return_inverse=True)
    ut.seen[uu] += np.bincount(uinv).astype(np.int32)
    new = uu[~ut.known[uu] & (ut.seen[uu] >= cfg.user_min_sightings)]
    ut.known[new], ut.vec[new], ut.acc[new] = True, 0.0, 0.0
    ii, iinv = np.unique(ex.item, return_inverse=True)
    gone = ii[~it.known[ii]]
    it.known[gone], it.vec[gone], it.b[gone] = True, 0.0, 0.0
    top = cat.topic[ex.item]
    phi = age_features(ex.t - cat.birth_s[ex.item])
    Uu = ut.vec[ex.user] * ut.known[ex.user][:, None]
    Vi = learner.T[top] + it.vec[ex.item]
    w, S = learner.dense, learner.slate_size
    z = w[0] + w[1 + ex.slot] + phi @ w[1 + S :] + learner.tb[top] + it.b[ex.item]
    z = z + np.einsum("nd,nd->n", Uu, Vi)
    g = sigmoid(z) - ex.click
    d = Uu.shape[1]
    gU = np.zeros((len(uu), d))
    np.add.at(gU, uinv, g[:, None] * Vi)
    gV = np.zeros((len(ii), d))
    np.add.at(gV, iinv, g[:, None] * Uu)
    gb = np.bincount(iinv, weights=g)
    nt = len(learner.T)
    gT = np.zeros((nt, d))
    np.add.at(gT, top, g[:, None] * Uu)
    tt = np.unique(top)
    gtb = np.bincount(top, weights=g, minlength=nt)
    kn = ut.known[uu]
    rows = uu[kn]
    step(ut.vec, ut.acc, rows, gU[kn] + l2 * ut.vec[rows])
    step(it.vec, it.acc, ii, gV + l2 * it.vec[ii])
    step(it.b, it.b_acc, ii, gb)
    step(learner.T, learner.T_acc, tt, gT[tt])
    step(learner.tb, learner.tb_acc, tt, gtb[tt])
    gd = np.concatenate([[g.sum()], np.bincount(ex.slot, weights=g, minlength=S), g @ phi])
    step(w, learner.dense_acc, np.arange(len(w)), gd / len(g))
    learner.seq += 1
    ut.updated_s[rows], ut.stamp[rows] = now, learner.seq
    it.updated_s[ii], it.stamp[ii] = now, learner.seq


def random_examples(rng, world, n, n_users=40, t=500.0, hours=1) -> Examples:
    """``n`` examples at ``t`` (s) or, with ``hours`` > 1, at one of that many whole hours
    after it (so that one item is seen at several ages within a minibatch)."""
    return Examples(
        t + 3600.0 * rng.integers(0, hours, n),
        rng.integers(0, n_users, n),
        rng.choice(world.items.active[:60], n),  # few items: many repeats
        rng.integers(0, 10, n).astype(np.int16),
        (rng.random(n) < 0.3).astype(np.float32),
    )


@pytest.mark.parametrize("optimizer", ["adagrad", "sgd"])
def test_learner_kernel_matches_the_numpy_minibatch_step(optimizer):
    """Three minibatches (one partial) with repeated users and items, users below the
    frequency filter, an evicted item shown again and (second call) items seen at several
    ages within one minibatch: every table agrees to float32 rounding (rtol 1e-4 after the
    steps compound), and the bookkeeping exactly."""
    fast, world = make_learner(optimizer=optimizer, minibatch=300, user_min_sightings=3)
    slow, _ = make_learner(optimizer=optimizer, minibatch=300, user_min_sightings=3)
    rng = np.random.default_rng(11)
    for lrn in (fast, slow):  # nonzero starting rows, and one item evicted
        lrn.T[:] = np.random.default_rng(1).normal(0, 0.3, lrn.T.shape)
        lrn.items.known[world.items.active[5]] = False
    for round_, now in enumerate((600.0, 20_000.0)):  # one time, then mixed times
        ex = random_examples(rng, world, 800, t=500.0 + round_, hours=1 + 4 * round_)
        fast.train(ex, now)
        for s in range(0, len(ex), 300):
            slow._ensure(slow.users, int(ex.user.max()))
            slow._ensure(slow.items, int(ex.item.max()))
            reference_step(slow, ex.take(slice(s, s + 300)), now)
    assert fast.seq == slow.seq
    for name in ("known", "seen", "stamp", "updated_s"):
        np.testing.assert_array_equal(fast.users.view(name), slow.users.view(name), name)
    for name in ("known", "stamp", "updated_s"):
        np.testing.assert_array_equal(fast.items.view(name), slow.items.view(name), name)
    pairs = {
        "U": (fast.users.view("vec"), slow.users.view("vec")),
        "V": (fast.items.view("vec"), slow.items.view("vec")),
        "b": (fast.items.view("b"), slow.items.view("b")),
        "T": (fast.T, slow.T),
        "tb": (fast.tb, slow.tb),
        "dense": (fast.dense, slow.dense),
        "dense_acc": (fast.dense_acc, slow.dense_acc),
    }
    for name, (a, b) in pairs.items():
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=name)
    assert np.abs(fast.users.view("vec")).max() > 0.01  # the steps moved the rows


# --- serving ----------------------------------------------------------------------------
@pytest.mark.parametrize("spread", [10**6, 30, 3, 1])  # from few ties to all equal
def test_top_k_is_the_stable_descending_order_with_ties(spread):
    """Both paths: rank counting (few ties, k small against K) and insertion (more than
    RANK_MAX candidates: all equal, or k = 40 of 100); signed zeros tie with each other."""
    rng = np.random.default_rng(0)
    # groups of 10, one left over, 3 (odd), 2; no groups (2k > K); k = 1; insertion (k = 40)
    shapes = [(100, 10), (101, 10), (33, 10), (20, 10), (12, 10), (7, 10), (10, 10)]
    for K, k in [*shapes, (100, 1), (100, 40)]:
        for _ in range(200):
            sc = (rng.integers(0, spread, K) - spread // 2).astype(np.float32)
            sc[rng.random(K) < 0.05] = -0.0
            vals, top = np.empty(k + 1, np.float32), np.empty(k + 1, np.int64)
            n = _top_k(sc, vals, top, np.empty(K + 16, np.int64), np.empty(K, np.int64))
            want = np.argsort(-sc, kind="stable")[:k]
            assert n == min(k, K)
            np.testing.assert_array_equal(top[:n], want)
            np.testing.assert_array_equal(vals[:n], sc[want])


def window_inputs(rng, B=70, nb=3, M=40, K=15, d=4):
    return dict(
        uvec=rng.normal(size=(B, d)).astype(np.float32),
        ivec=rng.normal(size=(nb, M, d)).astype(np.float32),
        ibias=rng.normal(size=(nb, M)).astype(np.float32),
        start=rng.integers(0, M, B),
        true_u=rng.normal(size=(B, d)).astype(np.float32),
        tvec=rng.normal(size=(nb, M, d)).astype(np.float32),
        terms=rng.normal(size=(nb, M)).astype(np.float32),
        pools=rng.integers(1000, 2000, (nb, M)),
        K=K,
        bs=(B + nb - 1) // nb,
    )


def windows(x, start, K):
    """Each request's K window columns (wrapping) of a (B, M) pool-column array."""
    M = x.shape[1]
    cols = (start[:, None] + np.arange(K)) % M
    return np.take_along_axis(x, cols, axis=1), cols


def test_model_slates_rank_each_window_and_price_the_slate_with_the_truth():
    rng = np.random.default_rng(1)
    a = window_inputs(rng)
    B, K, bs = len(a["uvec"]), a["K"], a["bs"]
    q = np.arange(B) // bs
    scores = np.einsum("bd,bmd->bm", a["uvec"], a["ivec"][q]) + a["ibias"][q]
    win, cols = windows(scores, a["start"], K)
    m = 8
    best = np.take_along_axis(cols, np.argsort(-win, axis=1, kind="stable")[:, :m], axis=1)
    z = (
        -1.5
        + 2.0 * np.einsum("bd,bmd->bm", a["true_u"], a["tvec"][q[:, None], best])
        + a["terms"][q[:, None], best]
    )
    pos = (1.0 / (1.0 + np.arange(m)) ** 0.8).astype(np.float32)
    items = np.full((B, 10), -1)
    p = np.zeros((B, 10), np.float32)
    ivt, ib = extended(a["ivec"], a["ibias"], K)
    args = (a["uvec"], ivt, ib, a["start"], K, bs, a["true_u"], a["tvec"], -1.5 + a["terms"])
    args += (2.0, a["pools"], pos)
    model_slates(*args, items, p, 0, B)
    np.testing.assert_array_equal(items[:, :m], a["pools"][q[:, None], best])
    np.testing.assert_allclose(p[:, :m], sigmoid(z) * pos, rtol=1e-5, atol=1e-6)
    assert (items[:, m:] == -1).all() and (p[:, m:] == 0).all()
    # in two row ranges, as the request path splits them between two threads, cut inside
    # a batch: each range fills only its own rows, and together they give the same slates
    split = bs + 3
    assert 0 < split < B and split % bs
    items2 = np.full((B, 10), -1)
    p2 = np.zeros((B, 10), np.float32)
    model_slates(*args, items2, p2, split, B)
    assert (items2[:split] == -1).all() and (p2[:split] == 0).all()
    np.testing.assert_array_equal(items2[split:], items[split:])
    model_slates(*args, items2, p2, 0, split)
    np.testing.assert_array_equal(items2, items)
    np.testing.assert_array_equal(p2, p)


def test_oracle_expected_clicks_are_the_best_k_of_each_window_by_truth():
    rng = np.random.default_rng(2)
    a = window_inputs(rng)
    B, K, bs = len(a["uvec"]), a["K"], a["bs"]
    q = np.arange(B) // bs
    bias = -2.0 + a["terms"]
    z = 1.7 * np.einsum("bd,bmd->bm", a["true_u"], a["tvec"][q]) + bias[q]
    win, _ = windows(z, a["start"], K)
    best = -np.sort(-win, axis=1)[:, :10]
    pos = (1.0 / (1.0 + np.arange(10)) ** 0.8).astype(np.float32)
    want = (sigmoid(best) * pos).sum(axis=1)
    tvt, tb = extended(a["tvec"], bias, K)
    got = oracle_expected(a["true_u"], tvt, tb, a["start"], K, pos, bs, 1.7)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_true_pools_are_the_worlds_truth_in_the_extended_layout():
    sim = Simulation(tiny())
    w = sim.world
    w.advance(5_000.0)
    rng = np.random.default_rng(6)
    pools = rng.choice(w.items.active, (3, 40))
    K = 15
    got_v, got_b = sim.server._truth(pools, K, 5_000.0)
    want_v, want_b = extended(
        w.items.t.vec[pools],
        w.cfg.clicks.base_logit + w.item_terms(pools.ravel(), 5_000.0).reshape(pools.shape),
        K,
    )
    np.testing.assert_array_equal(got_v, want_v)
    np.testing.assert_allclose(got_b, want_b, rtol=1e-6)
    rows_v, rows_b = sim.server._truth(pools, K, 5_000.0, rows=True)
    np.testing.assert_array_equal(rows_v, w.items.t.vec[pools])
    np.testing.assert_allclose(rows_b, want_b[:, : pools.shape[1]], rtol=1e-6)


def test_first_distinct_keeps_draw_order_and_clears_its_scratch():
    rng = np.random.default_rng(3)
    seen = np.zeros(50, bool)
    for _ in range(100):
        draw = rng.integers(0, 50, 30)
        _, first = np.unique(draw, return_index=True)
        want = draw[np.sort(first)][:12]
        np.testing.assert_array_equal(first_distinct(draw, 12, seen), want)
        assert not seen.any()


def test_rate_pool_draws_are_searchsorted_through_births_and_compaction():
    """The guide table gives exactly ``searchsorted(cum, x, "right")`` (clamped), for the same
    uniform draws, while ids are appended and dead ones compacted away; zero rates and
    heavy-tailed rates included."""
    rng = np.random.default_rng(4)
    pool = _RatePool()
    death = np.full(20_000, np.inf)
    next_id = 0
    for step in range(60):
        k = int(rng.integers(0, 400)) if step else 1_000
        rates = rng.lognormal(0, 2, k) * (rng.random(k) > 0.05)  # some zero rates
        pool.add(np.arange(next_id, next_id + k), rates)
        death[next_id : next_id + k] = step + rng.exponential(20, k)
        next_id += k
        if step % 7 == 6:
            pool.compact(death, step)
        cum = pool._cum[: pool.n]
        draw_rng = np.random.default_rng(step)
        got = pool.draw(1.0, draw_rng)
        draw_rng = np.random.default_rng(step)
        n = draw_rng.poisson(cum[-1])
        x = draw_rng.uniform(0, cum[-1], n)
        x[:3] = [0.0, cum[-1], np.nextafter(cum[-1], 0)]  # the edges, through the kernel
        want = pool._ids[np.minimum(np.searchsorted(cum, x, side="right"), pool.n - 1)]
        np.testing.assert_array_equal(got[3:], want[3:])
        edges = _guided_ids(cum, pool._ids, x[:3], pool._guide[: pool._nb], pool._w)
        np.testing.assert_array_equal(edges, want[:3])
    idle = _RatePool()  # only zero rates: nothing to draw
    idle.add(np.arange(5), np.zeros(5))
    assert len(idle.draw(1e6, np.random.default_rng(0))) == 0


# --- logging and metrics ----------------------------------------------------------------
def served_batch(rng, sim: Simulation, B=300, k=10) -> Served:
    w = sim.world
    items = rng.choice(w.items.active, (B, k))
    items[rng.random((B, k)) < 0.1] = -1  # empty slots
    p = rng.random((B, k)).astype(np.float32) * (items >= 0)
    return Served(
        users=rng.choice(w.users.active, B),
        fallback=rng.random(B) < 0.2,
        items=items,
        model_slot=np.arange(k) < k - 2,
        p=p,
        clicks=(rng.random((B, k)) < p) & (items >= 0),
        oracle=done(rng.random(B)),
        oracle_slots=k,
    )


def test_examples_from_slates_split_training_and_held_out_impressions():
    sim = Simulation(tiny())
    rng = np.random.default_rng(4)
    s = served_batch(rng, sim)
    held = rng.random(len(s.users)) < 0.3
    train, hold = Examples.from_slates(7.0, s.users, s.items, s.clicks, held)
    shown = s.items >= 0
    B, k = s.items.shape
    for ex, sel in ((train, ~held), (hold, held)):
        mask = shown & sel[:, None]
        np.testing.assert_array_equal(ex.user, np.broadcast_to(s.users[:, None], (B, k))[mask])
        np.testing.assert_array_equal(ex.item, s.items[mask])
        np.testing.assert_array_equal(ex.slot, np.broadcast_to(np.arange(k), (B, k))[mask])
        np.testing.assert_array_equal(ex.click, s.clicks[mask])
        assert (ex.t == 7.0).all()


def test_recorder_sums_each_cohort_as_masked_numpy_sums():
    sim = Simulation(tiny())
    w = sim.world
    rng = np.random.default_rng(5)
    t = 3_000.0
    w.users.t.birth_s[w.users.active[::3]] = t - 100.0  # some new users
    s = served_batch(rng, sim)
    rec = Recorder(w, ["dc"], 0.0, 86_400.0, 900.0)
    rec.record(0, t, s, 10.0, 5.0)
    anon = w.users.t.anonymous[s.users]
    new = ~anon & (t - w.users.t.birth_s[s.users] < w.cfg.users.new_user_window_s)
    shown = s.items >= 0
    fresh = shown & (
        t - w.items.t.birth_s[np.where(shown, s.items, 0)] < w.cfg.items.fresh_window_s
    )
    assert new.any() and fresh.any() and 0 < fresh.sum() < shown.sum()
    b = int(t // 900)
    c = {name: rec.c[name][b, 0] for name in rec.c}
    for j, sel in enumerate((np.ones(len(s.users), bool), new, anon)):
        assert c["requests"][j] == sel.sum(), COHORTS[j]
        assert c["impressions"][j] == shown[sel].sum()
        assert c["clicks"][j] == s.clicks[sel].sum()
        assert c["expected_clicks"][j] == pytest.approx(s.p[sel].sum(), rel=1e-6)
        assert c["oracle_expected_clicks"][j] == pytest.approx(s.oracle_expected[sel].sum())
        assert c["oracle_impressions"][j] == s.oracle_slots * sel.sum()
        assert c["fallback_requests"][j] == s.fallback[sel].sum()
    assert c["requests"][3] == fresh.any(axis=1).sum()
    assert c["impressions"][3] == fresh.sum()
    assert c["clicks"][3] == (s.clicks & fresh).sum()
    assert c["expected_clicks"][3] == pytest.approx(s.p[fresh].sum(), rel=1e-6)


def test_recorder_adds_batches_in_the_order_served_whenever_their_oracle_finishes():
    """A batch whose oracle is still being scored waits, and so do the batches after it;
    the sums come out bit for bit as if every oracle had been ready at once."""
    from concurrent.futures import Future

    sim = Simulation(tiny())
    rng = np.random.default_rng(8)
    batches = [(dc, 1_000.0 + 60 * j, served_batch(rng, sim)) for j in range(4) for dc in (0, 1)]
    ready = Recorder(sim.world, ["a", "b"], 0.0, 86_400.0, 900.0)
    for dc, t, s in batches:
        ready.record(dc, t, s, 1.0, 2.0)
    late = Recorder(sim.world, ["a", "b"], 0.0, 86_400.0, 900.0)
    pending = {}
    for n, (dc, t, s) in enumerate(batches):
        if n in (1, 4):  # these oracles finish late, the second before the first
            pending[n] = Future()
            s = dataclasses.replace(s, oracle=pending[n])
        late.record(dc, t, s, 1.0, 2.0)

    def requests_in() -> int:
        return int(late.c["requests"][:, :, 0].sum())

    B = len(batches[0][2].users)
    assert requests_in() == B  # only the batch before the first pending one
    pending[4].set_result(batches[4][2].oracle_expected)
    late.catch_up(wait=False)
    assert requests_in() == B  # the first pending one still holds the rest back
    pending[1].set_result(batches[1][2].oracle_expected)
    late.catch_up(wait=False)
    assert requests_in() == len(batches) * B
    assert ready.timeseries().equals(late.timeseries())
    assert ready.staleness().equals(late.staleness())
