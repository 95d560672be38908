"""Ground truth: drift, arrivals, lifetimes and the diurnal cycle match their laws."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simrec.config import DAY_S, HOUR_S, Config
from simrec.rng import Streams
from simrec.world.clicks import position_bias, sigmoid
from simrec.world.diurnal import Diurnal
from simrec.world.interests import ou_step
from simrec.world.world import World


def ks_exponential(x: np.ndarray, mean: float) -> float:
    """Kolmogorov-Smirnov distance between the sample ``x`` and Exp(mean)."""
    x = np.sort(x)
    n = len(x)
    cdf = 1 - np.exp(-x / mean)
    return float(max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n)))


@pytest.mark.parametrize("lag_s", [600.0, 3_600.0, 6 * HOUR_S, DAY_S])
def test_ou_autocorrelation_is_exp_minus_kappa_lag(rng, lag_s):
    kappa, var = 1 / DAY_S, 0.25
    x0 = rng.normal(0, math.sqrt(var), (200_000, 1)).astype(np.float32)
    x1 = ou_step(x0, lag_s, kappa, var, rng)
    corr = np.corrcoef(x0[:, 0], x1[:, 0])[0, 1]
    # standard error of a correlation estimate ~ (1 - rho^2) / sqrt(n): 3e-5 at 600 s,
    # 0.0019 at a day; 5 of them (a step that returned its input would be 0.007 off at 600 s)
    rho = math.exp(-kappa * lag_s)
    assert corr == pytest.approx(rho, abs=5 * (1 - rho**2) / math.sqrt(len(x0)))
    # the stationary variance is preserved
    assert x1.var() == pytest.approx(var, rel=0.02)


def test_lazy_interest_drift_of_users_has_the_closed_form_correlation():
    cfg = Config()
    cfg.users.initial = 40_000
    cfg.users.anonymous_share = 0.0
    cfg.interests.taste_var = 0.0
    w = World(cfg, Streams(1))
    ids = np.arange(cfg.users.initial)
    lag = 12 * HOUR_S
    a = w.users.interests(ids, 1_000.0).ravel()
    # read half of the users at an intermediate time: the lazy update must not change the law
    w.users.interests(ids[::2], 1_000.0 + lag / 3)
    b = w.users.interests(ids, 1_000.0 + lag).ravel()
    rho = math.exp(-cfg.interests.drift_kappa_per_s * lag)
    assert np.corrcoef(a, b)[0, 1] == pytest.approx(rho, abs=0.01)


def test_user_and_item_arrivals_are_poisson_with_their_rates():
    cfg = Config()
    cfg.users.initial = 2_000
    cfg.users.anonymous_share = 0.0
    cfg.users.arrival_rate_per_day = 2_400.0  # 100 an hour
    cfg.items.initial = 500
    cfg.items.arrival_rate_per_day = 4_800.0  # 200 an hour
    w = World(cfg, Streams(2))
    users, items = [], []
    for h in range(1, 401):
        u, i = w.advance(h * HOUR_S)
        users.append(len(u))
        items.append(len(i))
    for counts, mean in ((np.array(users), 100.0), (np.array(items), 200.0)):
        # 400 samples: the sample mean has sd sqrt(mean / 400); allow 4 sd
        assert counts.mean() == pytest.approx(mean, abs=4 * math.sqrt(mean / 400))
        # Poisson: variance equals the mean (dispersion within 25 %)
        assert counts.var() / counts.mean() == pytest.approx(1.0, abs=0.25)


def test_item_lifetimes_are_exponential_with_their_mean():
    cfg = Config()
    cfg.items.initial = 20_000
    cfg.items.mean_lifetime_s = 5 * HOUR_S
    w = World(cfg, Streams(3))
    it = w.items.t
    ids = np.arange(it.size)
    # initial items: remaining life from t=0 is Exp(mean) (memoryless)
    life = it.death_s[ids] - np.maximum(it.birth_s[ids], 0.0)
    # KS 1 % critical value 1.63 / sqrt(n)
    assert ks_exponential(life, cfg.items.mean_lifetime_s) < 1.63 / math.sqrt(len(life))
    born = w.items.advance(0.0, DAY_S)
    life = it.death_s[born] - it.birth_s[born]
    assert len(born) > 1000
    assert ks_exponential(life, cfg.items.mean_lifetime_s) < 1.63 / math.sqrt(len(life))


def test_live_items_are_exactly_those_published_and_not_yet_dead_in_birth_order():
    cfg = Config()
    cfg.items.initial = 300
    cfg.items.mean_lifetime_s = 90.0  # many die within the step they are born in
    cfg.items.arrival_rate_per_day = 3 * DAY_S / 60  # about 3 a minute
    w = World(cfg, Streams(4))
    it = w.items.t
    dying_young = 0
    for step in range(1, 241):
        t = step * 60.0
        born = w.advance(t)[1]
        dying_young += int((it.death_s[born] <= t).sum())
        ids = np.arange(it.size)
        alive = ids[(it.view("death_s") > t) & (it.view("birth_s") <= t)]
        assert np.array_equal(w.items.active, alive), f"step {step}"
        assert np.all(np.diff(it.birth_s[w.items.active]) >= 0)
    assert dying_young > 20  # the case of an item born and dead within one step occurred


def test_request_counts_follow_activity_and_diurnal_cycle():
    cfg = Config()
    cfg.users.initial = 5_000
    cfg.users.anonymous_share = 0.0
    cfg.users.mean_lifetime_days = math.inf
    w = World(cfg, Streams(4))
    rng = np.random.default_rng(0)
    users = w.users
    total_rate = users.t.rate_per_s[: users.t.size].sum()
    for t0 in (0.0, 4 * HOUR_S, 16 * HOUR_S):  # night, low, peak
        n = np.array([len(users.sample_requests(t0, t0 + 600.0, rng)) for _ in range(50)])
        expected = total_rate * w.diurnal.integral(t0, t0 + 600.0)
        assert n.mean() == pytest.approx(expected, rel=4 / math.sqrt(50 * expected))
    # heavy users are sampled in proportion to their rate
    draws = np.concatenate([users.sample_requests(0, 3600.0, rng) for _ in range(20)])
    counts = np.bincount(draws, minlength=users.t.size)
    rate = users.t.rate_per_s[: users.t.size]
    top = rate > np.quantile(rate, 0.9)
    share = counts[top].sum() / counts.sum()
    assert share == pytest.approx(rate[top].sum() / rate.sum(), abs=0.02)


def test_anonymous_share_of_requests():
    cfg = Config()
    cfg.users.initial = 5_000
    cfg.users.anonymous_share = 0.3
    w = World(cfg, Streams(5))
    rng = np.random.default_rng(1)
    anon = total = 0
    for step in range(1, 6 * 24 + 1):  # a day in 10-minute steps
        t = step * 600.0
        w.advance(t)
        u = w.users.sample_requests(t, t + 600.0, rng)
        anon += w.users.t.anonymous[u].sum()
        total += len(u)
    assert anon / total == pytest.approx(0.3, abs=0.03)


def test_diurnal_integral_matches_numerical_quadrature():
    d = Diurnal(0.6, 16.0)
    t = np.linspace(1_000.0, 50_000.0, 200_001)
    numeric = np.trapezoid([d.factor(x) for x in t[::100]], t[::100])
    assert d.integral(t[0], t[-1]) == pytest.approx(numeric, rel=1e-4)
    assert d.integral(0, DAY_S) == pytest.approx(DAY_S)
    assert d.low_s == pytest.approx(4 * HOUR_S)


def test_click_model_is_a_probability_with_decreasing_position_bias():
    pos = position_bias(10, 0.5)
    np.testing.assert_allclose(pos, 1 / np.sqrt(np.arange(1, 11)), rtol=1e-6)  # 1 / slot^0.5
    assert pos[0] == 1 and np.all(np.diff(pos) < 0)
    z = np.linspace(-50, 50, 101)
    p = sigmoid(z)
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-z)), rtol=1e-12, atol=1e-15)
    assert np.all((p >= 0) & (p <= 1)) and np.all(np.diff(p) >= 0)
    assert sigmoid(np.array([0.0]))[0] == pytest.approx(0.5)


def test_topic_popularity_hot_topic_changes_daily():
    cfg = Config()
    cfg.topics.hot_topic_boost = 1.0
    w = World(cfg, Streams(6))
    hots = []
    for day in range(10):
        w.topics.advance(day * DAY_S + 1.0)
        hots.append(w.topics.hot)
        assert w.topics.popularity[w.topics.hot] == pytest.approx(w.topics.base[w.topics.hot] + 1.0)
        w.topics.advance(day * DAY_S + DAY_S / 2)
        assert w.topics.hot == hots[-1]  # the same all day
        w.topics.advance((day + 1) * DAY_S - 1.0)
        assert w.topics.hot == hots[-1]
    # redrawn each day among 50 topics: a repeat has probability 1/50 a day
    assert sum(a != b for a, b in zip(hots, hots[1:], strict=False)) >= 8


@pytest.mark.parametrize("rule_slots", [0, 2])
def test_a_catalogue_that_empties_leaves_requests_unserved(rule_slots):
    """No arrivals and 5-minute lives: the catalogue empties during the measured period.
    The run goes on; requests after that get empty slates (no impressions, no oracle
    slate), instead of the run failing partway."""
    import simrec

    cfg = simrec.compose(
        [
            "policy=hourly",
            "sim.days=0.05",
            "sim.warmup_days=0.01",
            "users.initial=1000",
            "items.initial=300",
            "items.arrival_rate_per_day=0",
            "items.mean_lifetime_s=300",
            f"serving.rule_slots={rule_slots}",
            "sim.progress=false",
        ]
    )
    ts = simrec.run(cfg).timeseries
    a = ts[ts.cohort == "all"].sort_values("time_s")
    assert a.impressions.iloc[0] > 0 and a.oracle_expected_clicks.iloc[0] > 0
    last = a.iloc[-1]
    assert last.requests > 0 and last.live_items == 0
    assert last.impressions == 0 and last.oracle_impressions == 0
    assert last.oracle_expected_clicks == 0
