"""Update pipelines end to end: closed-form landing times, overlap, validation, links."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny

import simrec
from simrec.config import DatacenterSettings
from simrec.engine import Simulation


def deterministic(**over):
    """Pipeline stages with known durations: validation on an empty hold-out takes fixed_s."""
    settings = dict(
        policy__name="hourly",
        policy__interval_s=3600.0,
        learner__holdout_share=0.0,
        policy__pipeline__storage_write_bytes_per_s=4e9,
        policy__pipeline__load_bytes_per_s=8e9,
        policy__pipeline__validation__fixed_s=30.0,
        infra__uplink_bytes_per_s=2e9,
    )
    return tiny(**{**settings, **over})


def test_landing_time_is_save_validate_latency_transfer_load():
    cfg = deterministic()
    cfg.infra.datacenters = [DatacenterSettings("dc0", 1.0, 0.25)]
    up = simrec.run(cfg).updates
    landed = up[up.status == "landed"]
    assert len(landed) >= 5
    b = landed["bytes"]
    expected = b / 4e9 + 30.0 + 0.25 + b / 2e9 + b / 8e9
    np.testing.assert_allclose(landed.landed_s - landed.trigger_s, expected, rtol=1e-9)
    np.testing.assert_allclose(landed.save_end_s - landed.save_start_s, b / 4e9, rtol=1e-9)
    np.testing.assert_allclose(landed.load_end_s - landed.load_start_s, b / 8e9, rtol=1e-9)


def test_star_through_one_uplink_finishes_at_n_times_bytes_over_bandwidth():
    cfg = deterministic()
    cfg.infra.datacenters = [DatacenterSettings(f"dc{i}", 1.0, 0.0) for i in range(3)]
    up = simrec.run(cfg).updates
    landed = up[up.status == "landed"]
    assert set(landed.datacenter) == {"dc0", "dc1", "dc2"}
    np.testing.assert_allclose(
        landed.transfer_end_s - landed.transfer_start_s, 3 * landed["bytes"] / 2e9, rtol=1e-9
    )


def test_p2p_lands_sooner_than_star_for_three_datacenters():
    lat = {}
    for topo in ("star", "p2p"):
        cfg = deterministic(infra__topology=topo)
        cfg.infra.datacenters = [DatacenterSettings(f"dc{i}", 1.0, 0.01) for i in range(3)]
        up = simrec.run(cfg).updates
        landed = up[up.status == "landed"]
        lat[topo] = float((landed.transfer_end_s - landed.transfer_start_s).max())
    assert lat["p2p"] < 0.75 * lat["star"]


def test_interval_shorter_than_pipeline_neither_queues_nor_crashes():
    """A 60 s interval with a pipeline of about 90 s: ``skip`` drops triggers, ``queue`` keeps
    at most one pending, so updates run back to back; ``supersede`` aborts an update still in
    save or validation and queues behind one already on the links. At most one update is
    ever in flight, links never carry two payloads at once, every trigger is accounted for."""
    for rule in ("skip", "queue", "supersede"):
        cfg = deterministic(policy__interval_s=60.0, policy__pipeline__overlap=rule)
        up = simrec.run(cfg).updates
        trig = up.groupby("update_id").first()
        # every trigger is an attempt or a logged skip; a queued one is logged when it starts
        assert len(trig) == pytest.approx(cfg.sim.days * 86400 / 60, abs=3)
        assert (up.status == "unfinished").sum() <= 1
        landed = up[up.status == "landed"].sort_values("landed_s")
        assert len(landed) > 100
        # broadcasts never overlap: each starts after the previous one landed
        starts = landed.transfer_start_s.to_numpy()
        assert np.all(starts[1:] >= landed.landed_s.to_numpy()[:-1] - 1e-9)
        if rule != "supersede":
            saves = landed.save_start_s.to_numpy()
            assert np.all(saves[1:] >= landed.landed_s.to_numpy()[:-1] - 1e-9)
        skipped = (up.status == "skipped").sum()
        assert skipped > 0 if rule == "skip" else skipped < len(trig) / 2
        # at every trigger, how many updates wait to start (triggered, not yet saving):
        # none with skip, at most one (and sometimes one) with queue and supersede
        started = trig[trig.save_start_s.notna()]
        t = trig.trigger_s.to_numpy()[:, None]
        waiting = (started.trigger_s.to_numpy() <= t) & (started.save_start_s.to_numpy() > t)
        assert waiting.sum(axis=1).max() == (0 if rule == "skip" else 1)
        # only supersede aborts updates, and with a 60 s interval it does
        assert (up.status == "superseded").any() == (rule == "supersede")


def test_supersede_on_a_thin_link_stays_bounded():
    """An interval shorter than the transfer: superseding never piles payloads on the link."""
    cfg = deterministic(
        policy__interval_s=60.0,
        policy__pipeline__overlap="supersede",
        infra__uplink_bytes_per_s=2e8,
    )
    sim = Simulation(cfg)
    link = next(iter(sim.topology.links.values()))
    peak = []
    orig = link.transfer

    def spy(size, latency_s=None):
        tr = orig(size, latency_s)
        peak.append(link.active)
        return tr

    link.transfer = spy
    state = sim.run()
    assert max(peak) == 1
    up = state.updates.frame()
    assert (up.status == "landed").sum() >= 3
    assert (up.status == "superseded").any()  # triggers during save or validation abort it


def test_versions_never_go_backwards_and_landed_updates_passed_validation():
    sim = Simulation(tiny(policy__name="minute", policy__interval_s=300.0, sim__days=0.5))
    versions = {name: [] for name in sim.replicas}
    for name, replica in sim.replicas.items():
        orig = replica.swap

        def spy(version, t, orig=orig, name=name):
            ok = orig(version, t)
            versions[name].append(sim.replicas[name].version.version)
            return ok

        replica.swap = spy
    state = sim.run()
    for seq in versions.values():
        assert len(seq) > 20 and np.all(np.diff(seq) >= 0)
    up = state.updates.frame()
    landed = up[up.status == "landed"]
    assert landed.validation_passed.all()


def corrupted(validation: bool):
    return tiny(
        policy__name="hourly",
        policy__interval_s=3600.0,
        sim__days=0.5,
        corruption__enabled=True,
        corruption__start_s=1800.0,
        corruption__duration_s=3 * 3600.0,
        corruption__items=100,
        policy__pipeline__validation__enabled=validation,
    )


def test_validation_stops_a_corrupted_checkpoint_and_without_it_ctr_suffers():
    clean = simrec.run(tiny(policy__name="hourly", policy__interval_s=3600.0, sim__days=0.5))
    guarded = simrec.run(corrupted(validation=True))
    exposed = simrec.run(corrupted(validation=False))
    up = guarded.updates
    assert (up.status == "rejected").any()
    rejected = up[up.status == "rejected"]
    assert rejected.landed_s.isna().all() and (rejected.validation_passed == False).all()  # noqa: E712
    assert guarded.summary["updates_rejected"] >= 1
    assert exposed.summary["updates_rejected"] == 0
    # the corrupted model reaches serving without validation and CTR shows it
    assert exposed.summary["expected_ctr"] < 0.95 * clean.summary["expected_ctr"]
    assert guarded.summary["expected_ctr"] > exposed.summary["expected_ctr"]


def test_thinner_links_and_bigger_checkpoints_make_staler_models():
    # validation off: a rejected checkpoint would add an interval of staleness by chance
    base = dict(
        policy__name="hourly",
        policy__interval_s=3600.0,
        sim__days=0.5,
        policy__pipeline__validation__enabled=False,
    )
    fat = simrec.run(tiny(**base)).summary
    thin = simrec.run(tiny(infra__uplink_bytes_per_s=1e8, **base)).summary
    big = simrec.run(tiny(learner__bytes_per_row=8192.0, **base)).summary
    for slow in (thin, big):
        assert slow["update_latency_mean_s"] > 3 * fat["update_latency_mean_s"]
        assert slow["staleness_mean_s"] > fat["staleness_mean_s"] + 300
        assert slow["expected_ctr"] < fat["expected_ctr"]


@pytest.mark.parametrize("warmup_days", [0.1, 0.25, 0.6])
def test_triggers_follow_the_time_of_day_whatever_the_warm_up(warmup_days):
    """``daily`` at phase 4 h triggers at 04:00 of the simulated clock (time 0 is midnight),
    whether the measured period starts before 04:00 (warm-up 2.4 h) or after (6 h, 14.4 h)."""
    from simrec.policies.periodic import next_phase

    assert next_phase(0.0, 86_400.0, 14_400.0) == 14_400.0
    assert next_phase(14_400.0, 86_400.0, 14_400.0) == 100_800.0
    assert next_phase(50_000.0, 3_600.0, 0.0) == 50_400.0
    cfg = tiny(
        policy__name="daily",
        policy__interval_s=86_400.0,
        policy__phase_s=14_400.0,
        sim__warmup_days=warmup_days,
        sim__days=1.0,
    )
    up = simrec.run(cfg).updates
    origin = cfg.sim.warmup_days * 86_400.0
    trig = up.trigger_s.unique() + origin
    assert len(trig) == 1  # one 04:00 in every measured day
    assert trig[0] % 86_400.0 == pytest.approx(14_400.0)


def test_a_queued_update_keeps_its_trigger_time():
    cfg = deterministic(policy__interval_s=60.0, policy__pipeline__overlap="queue")
    up = simrec.run(cfg).updates
    started = up[up.status != "skipped"].groupby("update_id").first()
    waited = started.save_start_s - started.trigger_s
    assert (waited > 0).any() and (waited >= 0).all()
    assert (started.trigger_s % 60.0 == 0).all()
