"""The learned model: it learns, its tables behave, its snapshots and deltas are right."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny

import simrec
from simrec.model.learner import Learner, apply_delta
from simrec.model.log import ClickLog, Examples
from simrec.rng import Streams
from simrec.world.world import World


def make_learner(**over) -> tuple[Learner, World]:
    cfg = tiny()
    for k, v in over.items():
        setattr(cfg.learner, k, v)
    world = World(cfg, Streams(0))
    learner = Learner(
        cfg.learner,
        cfg.interests.dim,
        cfg.topics.count,
        cfg.serving.slate_size,
        world.items.t,
        np.random.default_rng(0),
    )
    learner.register_items(world.items.active, 0.0)
    return learner, world


def examples(users, items, t=100.0, click=0.0) -> Examples:
    n = len(users)
    return Examples(
        np.full(n, t),
        np.asarray(users, np.int64),
        np.asarray(items, np.int64),
        np.zeros(n, np.int16),
        np.full(n, click, np.float32),
    )


def test_model_learns_well_above_untrained_and_close_to_oracle():
    """With drift off, one day of training lifts expected CTR from about 0.05 (untrained)
    to about 0.12, against the oracle's 0.20: 61 % of the oracle (measured, seed 0)."""
    common = dict(
        interests__drift_var=0.0,
        interests__taste_var=1.0,
        sim__days=0.25,
        policy__name="frozen",
        policy__interval_s=None,
    )
    untrained = simrec.run(tiny(sim__warmup_days=0.0, **common)).summary
    trained = simrec.run(tiny(sim__warmup_days=1.0, **common)).summary
    assert trained["expected_ctr"] > 2 * untrained["expected_ctr"]
    assert trained["expected_ctr"] / trained["oracle_expected_ctr"] > 0.55
    assert untrained["expected_ctr"] / untrained["oracle_expected_ctr"] < 0.35


def test_frequency_filter_creates_a_user_row_after_n_sightings():
    learner, _ = make_learner(user_min_sightings=3)
    for k in range(1, 4):
        learner.train(examples([7], [1]), now=100.0 * k)
        assert learner.users.known[7] == (k >= 3)


def test_item_rows_registered_at_publication_start_at_their_topic():
    learner, world = make_learner()
    snap = learner.snapshot()
    new = world.items.advance(0.0, 3_600.0)
    assert not snap.known_items(new).any()
    learner.register_items(new, 3_600.0)
    snap2 = learner.snapshot()
    assert snap2.known_items(new).all()
    vec, _ = snap2.item_side(new, 3_600.0)
    np.testing.assert_allclose(vec, learner.T[world.items.t.topic[new]])


def test_rows_expire_after_inactivity_and_deltas_carry_tombstones():
    learner, _ = make_learner(row_ttl_s=1_000.0)
    learner.train(examples([1, 2], [3, 4]), now=100.0)
    cut = learner.seq
    learner.train(examples([2], [4]), now=900.0)
    learner.evict(1_500.0)
    assert not learner.users.known[1] and learner.users.known[2]
    d = learner.delta(cut)
    assert list(d.user_ids) == [2] and list(d.evicted_users) == [1]


def test_delta_holds_exactly_the_rows_written_since_the_cut():
    learner, _ = make_learner()
    learner.train(examples([1, 2, 3], [10, 11, 12]), now=100.0)
    cut = learner.seq
    learner.train(examples([3, 4], [12, 13]), now=160.0)
    d = learner.delta(cut)
    assert set(d.user_ids) == {3, 4}
    assert set(d.item_ids) == {12, 13}
    c = learner.cfg
    rows = 2 * c.user_row_scale + 2 * c.item_row_scale + learner.T.shape[0]
    assert d.size_bytes == pytest.approx(rows * c.bytes_per_row)
    # applying the delta to an older snapshot reproduces the trainer's rows
    old = learner.snapshot()
    learner.train(examples([4, 5], [13, 14]), now=220.0)
    d2 = learner.delta(d.cut)
    apply_delta(old, d2)
    np.testing.assert_array_equal(old.U[[4, 5]], learner.users.vec[[4, 5]])
    assert old.u_known[5]


def test_full_checkpoint_size_counts_rows_times_scale_plus_dense():
    learner, world = make_learner()
    learner.train(examples(np.arange(50), np.arange(50)), now=100.0)
    c = learner.cfg
    rows = 50 * c.user_row_scale + len(world.items.active) * c.item_row_scale + learner.T.shape[0]
    assert learner.full_bytes() == pytest.approx(rows * c.bytes_per_row + c.dense_bytes)


def test_training_lowers_log_loss_on_the_data():
    learner, world = make_learner()
    rng = np.random.default_rng(3)
    n = 20_000
    users = rng.integers(0, 200, n)
    items = rng.choice(world.items.active, n)
    # user u clicks items of even topic with p=0.5, others never
    even = world.items.t.topic[items] % 2 == 0
    clicks = (even & (users % 2 == 0) & (rng.random(n) < 0.5)).astype(np.float32)
    ex = Examples(np.full(n, 50.0), users, items, np.zeros(n, np.int16), clicks)

    def loss() -> float:
        p = np.clip(learner.snapshot().predict_proba(users, items, ex.slot, ex.t), 1e-7, 1)
        return float(-np.mean(clicks * np.log(p) + (1 - clicks) * np.log1p(-p + 1e-7)))

    before = loss()
    for _ in range(5):
        learner.train(ex, now=100.0)
    assert loss() < 0.8 * before


def test_join_delay_and_holdout():
    log = ClickLog(join_delay_s=300.0, holdout_window_s=3_600.0)
    for t in (0.0, 60.0, 120.0):
        ex = Examples(
            np.full(4, t),
            np.arange(4),
            np.arange(4),
            np.zeros(4, np.int16),
            np.zeros(4, np.float32),
        )
        held = np.array([True, False, False, False])
        log.add(ex.take(~held), ex.take(held))
    assert len(log.ready(299.0)) == 0
    assert len(log.ready(360.0)) == 6  # t=0 and t=60, three trainable each
    assert len(log.holdout(420.0)) == 3
    assert log.pending == 3
