"""Behaviour that must emerge from the mechanics (design section 6), end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import simrec

SMALL = ["users.initial=3000", "items.initial=1000"]


def run(policy: str, *extra: str, days: float = 2.0, seed: int = 0) -> simrec.Result:
    cfg = simrec.compose(
        [
            f"policy={policy}",
            f"seed={seed}",
            f"sim.days={days}",
            "sim.warmup_days=1",
            *SMALL,
            *extra,
        ]
    )
    return simrec.run(cfg)


@pytest.fixture(scope="module")
def two_days() -> dict[str, simrec.Result]:
    """Every policy over two measured days with drift on, same world and seed."""
    return {p: run(p) for p in ("oracle", "online", "minute", "hourly", "daily", "frozen")}


def ctr(result: simrec.Result) -> float:
    return result.summary["expected_ctr"]


def test_fresher_policies_serve_better(two_days):
    """Same world and seed for every policy (common random numbers), so the gaps are the
    policies'. Measured at seed 0 (expected CTR): oracle - hourly 0.078, hourly - daily
    0.022, daily - frozen 0.005, online - hourly 0.003, minute - hourly 0.0024 (0.0014 to
    0.0042 over seeds 0-2); each is required to be at least 0.001."""
    r = two_days
    c = {p: ctr(r[p]) for p in r}
    for better, worse in [
        ("oracle", "hourly"),
        ("hourly", "daily"),
        ("daily", "frozen"),
        ("online", "hourly"),
        ("minute", "hourly"),
    ]:
        assert c[better] > c[worse] + 0.001, (better, worse)
    stale = {p: r[p].summary["staleness_mean_s"] for p in r}
    assert stale["oracle"] == 0 < stale["online"] < stale["hourly"] < stale["daily"]
    assert stale["daily"] < stale["frozen"]


def test_frozen_model_decays_over_time(two_days):
    """Relative CTR (policy / oracle) of the frozen model falls from the first measured day
    to the second in every seed, by 0.045 on average over seeds 0-2 (measured; one seed's
    drop ranges 0.015-0.07, so the threshold is on the mean)."""

    def drop(result: simrec.Result) -> float:
        ts = result.timeseries
        a = ts[ts.cohort == "all"]
        day = (a.time_s // 86_400).astype(int)
        per_day = a.groupby(day)[["expected_clicks", "oracle_expected_clicks"]].sum()
        rel = per_day.expected_clicks / per_day.oracle_expected_clicks
        return float(rel.iloc[0] - rel.iloc[1])

    drops = [drop(two_days["frozen"]), *(drop(run("frozen", seed=s)) for s in (1, 2))]
    assert min(drops) > 0
    assert np.mean(drops) > 0.02


def test_diminishing_returns_as_the_interval_shrinks(two_days):
    r = two_days
    gain_hour = ctr(r["hourly"]) - ctr(r["daily"])
    gain_minute = ctr(r["minute"]) - ctr(r["hourly"])
    # seed 0: 0.0024 against 0.022 (see above)
    assert 0.001 < gain_minute < gain_hour / 3


def sawtooth(result: simrec.Result, interval_s: float) -> tuple[float, float]:
    """Expected CTR relative to the oracle in the first and last tenth of the intervals
    between landed updates (relative, so the diurnal cycle cancels). A bucket is placed by
    its start, so a bucket counted after a landing was served entirely by the new version."""
    ts = result.timeseries
    a = ts[ts.cohort == "all"]
    landed = np.sort(result.updates.loc[result.updates.status == "landed", "landed_s"].unique())
    mid = a.time_s.to_numpy()
    idx = np.searchsorted(landed, mid) - 1
    ok = idx >= 0
    phase = np.full(len(a), np.nan)
    phase[ok] = (mid[ok] - landed[idx[ok]]) / interval_s
    df = pd.DataFrame({"phase": phase, "e": a.expected_clicks, "o": a.oracle_expected_clicks})
    first = df[df.phase < 0.1]
    last = df[(df.phase > 0.9) & (df.phase < 1.0)]
    return first.e.sum() / first.o.sum(), last.e.sum() / last.o.sum()


def test_sawtooth_under_hourly():
    r = run("hourly", "sim.bucket_s=60")
    first, last = sawtooth(r, 3600.0)
    # relative CTR falls by 0.010 within an hour at seed 0 (0.005 to 0.016 over seeds 0-2)
    assert first > last + 0.003


def test_sawtooth_under_daily(two_days):
    first, last = sawtooth(two_days["daily"], 86_400.0)
    assert first > last + 0.01


def test_new_items_need_a_landed_version_before_model_ranked_impressions(two_days):
    for policy in ("hourly", "daily", "minute"):
        r = two_days[policy]
        up = r.updates
        landed = up[up.status == "landed"].sort_values("landed_s")
        items = r.items.dropna(subset=["first_model_impression_s"])
        assert len(items) > 50
        # the first version containing an item is the first one snapshotted after its birth
        k = np.searchsorted(landed.save_start_s.to_numpy(), items.birth_s.to_numpy())
        assert (k < len(landed)).all()
        first_landing = landed.landed_s.to_numpy()[k]
        assert (items.first_model_impression_s.to_numpy() >= first_landing).all()
    frozen = two_days["frozen"].items
    assert frozen.first_model_impression_s.isna().all()


def test_online_shows_new_items_within_minutes(two_days):
    online = two_days["online"].summary["new_item_first_impression_median_s"]
    hourly = two_days["hourly"].summary["new_item_first_impression_median_s"]
    assert online < 600 < hourly


def test_online_moves_far_fewer_bytes_than_minute_for_nearly_the_same_ctr(two_days):
    online, minute = two_days["online"].summary, two_days["minute"].summary
    assert online["bytes_moved_per_day"] * 5 <= minute["bytes_moved_per_day"]
    assert online["expected_ctr"] == pytest.approx(minute["expected_ctr"], rel=0.02)


def test_anonymous_sessions_gain_only_from_updates_within_the_session(two_days):
    def anon_fallback(r):
        ts = r.timeseries
        a = ts[ts.cohort == "anonymous"]
        return a.fallback_requests.sum() / a.requests.sum()

    assert anon_fallback(two_days["frozen"]) == 1.0
    assert anon_fallback(two_days["hourly"]) > 0.95
    assert anon_fallback(two_days["online"]) < anon_fallback(two_days["hourly"]) - 0.05


def test_same_config_and_seed_give_identical_results():
    a = run("hourly", days=0.25)
    b = run("hourly", days=0.25)
    drop = {"wall_time_s"}
    assert {k: v for k, v in a.summary.items() if k not in drop} == {
        k: v for k, v in b.summary.items() if k not in drop
    }
    for name in ("timeseries", "updates", "staleness", "items"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    c = run("hourly", days=0.25, seed=1)
    assert c.summary["expected_ctr"] != a.summary["expected_ctr"]


@pytest.mark.slow
def test_policy_ordering_over_seeds_and_days():
    """Three seeds, three measured days: mean expected CTR online >= minute >= hourly >=
    daily >= frozen (online and minute within 0.5 % of each other count as tied), and mean
    staleness in the reverse order."""
    policies = ("online", "minute", "hourly", "daily", "frozen")
    rows = [run(p, days=3.0, seed=s).summary for p in policies for s in range(3)]
    df = pd.DataFrame(rows).groupby("policy")[["expected_ctr", "staleness_mean_s"]].mean()
    e, s = df.expected_ctr, df.staleness_mean_s
    assert e["online"] >= e["minute"] * 0.995
    assert e["minute"] > e["hourly"] > e["daily"] > e["frozen"]
    assert s["online"] < s["minute"] < s["hourly"] < s["daily"] < s["frozen"]
