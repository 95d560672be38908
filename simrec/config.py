"""Typed configuration of one simulation run.

Every rate, variance and size of the model is a field here, with its unit in its name or
docstring. The Hydra app composes YAML into these dataclasses once, at the entry point
(:func:`from_dict`), and :func:`validate` refuses bad settings before anything runs.
Times are seconds of simulated time, sizes are bytes, bandwidths bytes/s.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

DAY_S = 86_400.0
HOUR_S = 3_600.0
MAX_DAYS = 3650.0
"""Longest simulated or warm-up period accepted (days): ten years."""
MAX_ROWS = 100_000_000
"""Most users, items (initial, or arriving per day) accepted: far past any 2-core machine."""


class ConfigError(ValueError):
    """A setting is out of its allowed range. The message names the setting."""


@dataclass
class SimSettings:
    """Clock of the run.

    Attributes:
        days: measured days, after the warm-up.
        warmup_days: days simulated before measurement starts; the learner trains and the
            serving model is synced instantly every ``warmup_sync_interval_s`` meanwhile, so every
            policy starts from the same state.
        warmup_sync_interval_s: instant full syncs during warm-up (seconds).
        step_s: time step (seconds). Requests of one step are served as one vectorised batch by
            the version live at the step's start; control events (landings) take effect at the next
            step. Results move by less than the tolerance stated in docs/validation.md when halved.
        bucket_s: width of a metrics time bucket (seconds).
        batch_size: requests scored together against one shared candidate pool.
        progress: show a progress bar of simulated time.
        threads: 2 trains the learner, scores the oracle's counterfactual and ranks a share
            of the step's requests in worker threads beside the main one (they touch
            disjoint data, the learner's queued work is waited for before anything reads
            it, and the oracle reads the world as it was at its step, so results are
            identical to 1); 1 runs everything in one thread, e.g. when several runs share
            the cores.
    """

    days: float = 2.0
    warmup_days: float = 1.0
    warmup_sync_interval_s: float = HOUR_S
    step_s: float = 60.0
    bucket_s: float = 900.0
    batch_size: int = 256
    progress: bool = False
    threads: int = 2


@dataclass
class UserSettings:
    """Registered users and anonymous sessions (ground truth).

    Attributes:
        initial: users alive at time 0.
        mean_lifetime_days: mean of the exponential lifetime of a registered user (churn).
        arrival_rate_per_day: Poisson arrivals of new registered users; ``None`` means
            ``initial / mean_lifetime_days`` (a stationary population).
        activity_median_per_day: median of the log-normal activity rate (requests per day).
        activity_sigma: sigma of log activity (heavy tail).
        diurnal_amplitude: relative amplitude of the daily traffic cycle, in [0, 1).
        diurnal_peak_hour: hour of day (0-24) of peak traffic; the low is 12 h later.
        new_user_window_s: a registered user younger than this counts in cohort ``new_users``.
        anonymous_share: share of requests that come from anonymous sessions, in [0, 1).
        session_requests_mean: mean number of requests in an anonymous session (>= 1).
        session_length_s: mean duration of an anonymous session (seconds).
    """

    initial: int = 20_000
    mean_lifetime_days: float = 30.0
    arrival_rate_per_day: float | None = None
    activity_median_per_day: float = 10.0
    activity_sigma: float = 1.0
    diurnal_amplitude: float = 0.6
    diurnal_peak_hour: float = 16.0
    new_user_window_s: float = DAY_S
    anonymous_share: float = 0.05
    session_requests_mean: float = 5.0
    session_length_s: float = 300.0


@dataclass
class InterestSettings:
    """Latent interests: u(t) = taste + x(t), x an Ornstein-Uhlenbeck process.

    Attributes:
        dim: latent dimension d.
        taste_var: total variance of the static taste (split evenly over d dimensions).
        drift_var: stationary total variance of the OU part.
        drift_kappa_per_s: OU mean-reversion rate kappa (1/s); corr(x(t), x(t+D)) = exp(-kappa D).
    """

    dim: int = 8
    taste_var: float = 0.5
    drift_var: float = 0.5
    drift_kappa_per_s: float = 1.0 / DAY_S


@dataclass
class TopicSettings:
    """Topics and their popularity.

    Attributes:
        count: number of topics.
        popularity_std: stationary std of the log-popularity OU process of a topic (logit units).
        popularity_kappa_per_s: mean-reversion rate of topic popularity (1/s).
        hot_topic_boost: logit boost of the hot topic; 0 disables hot topics.
        hot_topic_period_s: a new hot topic is drawn every this many seconds.
        hot_topic_arrival_weight: factor by which new items prefer the hot topic.
    """

    count: int = 50
    popularity_std: float = 0.3
    popularity_kappa_per_s: float = 1.0 / (6 * HOUR_S)
    hot_topic_boost: float = 0.0
    hot_topic_period_s: float = DAY_S
    hot_topic_arrival_weight: float = 5.0


@dataclass
class ItemSettings:
    """Catalogue with churn.

    Attributes:
        initial: items alive at time 0.
        mean_lifetime_s: mean exponential lifetime of an item (seconds).
        arrival_rate_per_day: Poisson item arrivals; ``None`` means stationary
            (``initial * DAY_S / mean_lifetime_s``).
        diurnal_arrivals: whether item arrivals follow the traffic's diurnal cycle.
        spread_var: total variance of an item vector around its topic centre.
        quality_std: std of the item quality bias (logit units).
        freshness_boost: logit boost of a brand-new item.
        freshness_decay_s: time constant (seconds) of the exponential decay of the boost.
        fresh_window_s: an item younger than this counts in cohort ``fresh_items``.
    """

    initial: int = 5_000
    mean_lifetime_s: float = 2 * DAY_S
    arrival_rate_per_day: float | None = None
    diurnal_arrivals: bool = False
    spread_var: float = 0.3
    quality_std: float = 0.5
    freshness_boost: float = 0.5
    freshness_decay_s: float = 6 * HOUR_S
    fresh_window_s: float = HOUR_S


@dataclass
class ClickSettings:
    """True click model: p = sigmoid(base + scale*<u,i> + quality + fresh + popularity) * pos(k).

    Attributes:
        base_logit: intercept.
        affinity_scale: weight of the interest-item affinity.
        position_decay: position bias of slot k (0-based) is 1 / (1 + k)^position_decay.
    """

    base_logit: float = -3.0
    affinity_scale: float = 3.0
    position_decay: float = 0.5


@dataclass
class ServingSettings:
    """Retrieval and ranking.

    Attributes:
        candidates: K, candidates retrieved per request among live items the version knows.
        slate_size: k, items shown per request (top-k of the ranked candidates).
        rule_slots: slots of the slate given to a hand-written rule that injects newest items.
        rule_pool: the rule picks among this many newest live items.
        pool_size: distinct items in the retrieval pool a batch shares; each request's K
            candidates are a window of it at a random offset (see serving/replica.py).
    """

    candidates: int = 100
    slate_size: int = 10
    rule_slots: int = 0
    rule_pool: int = 50
    pool_size: int = 512


@dataclass
class CorruptionSettings:
    """A burst of biased training data (click spam on some items).

    Attributes:
        enabled: whether the burst happens.
        start_s: start, seconds after the start of the measured period.
        duration_s: length of the burst (seconds).
        items: number of spammed items (drawn among live items at the start).
        click_rate: probability that an impression of a spammed item is logged as a click.
    """

    enabled: bool = False
    start_s: float = 6 * HOUR_S
    duration_s: float = 2 * HOUR_S
    items: int = 200
    click_rate: float = 0.9


@dataclass
class LearnerSettings:
    """The model learned from the log, and its size accounting.

    Attributes:
        kind: ``learned`` (factorisation model trained online) or ``oracle`` (snapshots equal the
            true world state).
        optimizer: ``sgd`` or ``adagrad``.
        learning_rate: step size.
        l2: L2 penalty on embedding rows.
        minibatch: examples per SGD minibatch.
        join_delay_s: delay between an impression and its training example reaching the trainer.
        throughput_per_s: examples the trainer can process per second (``inf`` = unbounded).
        user_min_sightings: a user gets a row only after this many training examples.
        row_ttl_s: rows untouched for this long are evicted (seconds; ``inf`` = never).
        init_std: std of the random initial topic rows.
        holdout_share: share of requests held out of training for offline validation.
        bytes_per_row: bytes of one production embedding row (values plus optimizer state).
        user_row_scale: production user rows one simulated user row stands for.
        item_row_scale: production item rows one simulated item row stands for.
        dense_bytes: bytes of the dense part of the model.
    """

    kind: str = "learned"
    optimizer: str = "adagrad"
    learning_rate: float = 0.2
    l2: float = 1e-4
    minibatch: int = 2048
    join_delay_s: float = 120.0
    throughput_per_s: float = math.inf
    user_min_sightings: int = 1
    row_ttl_s: float = 7 * DAY_S
    init_std: float = 0.1
    holdout_share: float = 0.05
    bytes_per_row: float = 1024.0
    user_row_scale: float = 25_000.0
    item_row_scale: float = 10_000.0
    dense_bytes: float = 1e9


@dataclass
class ValidationSettings:
    """Offline validation of a checkpoint on held-out recent log.

    Attributes:
        enabled: validate before shipping.
        metric: ``logloss`` (lower is better) or ``auc`` (higher is better).
        tolerance: the candidate passes if it is at most this much worse than the live version
            (relative, e.g. 0.01 = 1 % worse log loss allowed).
        window_s: held-out examples of the last ``window_s`` seconds are evaluated.
        fixed_s: fixed cost of a validation job (seconds).
        examples_per_s: evaluation throughput; duration = fixed_s + examples / examples_per_s.
    """

    enabled: bool = True
    metric: str = "logloss"
    tolerance: float = 0.01
    window_s: float = HOUR_S
    fixed_s: float = 60.0
    examples_per_s: float = 1e5


@dataclass
class PipelineSettings:
    """Checkpoint pipeline stages.

    Attributes:
        storage_write_bytes_per_s: save bandwidth of the training side (bytes/s).
        load_bytes_per_s: load bandwidth of a serving replica (bytes/s).
        overlap: rule for a trigger while an update is in flight: ``skip`` (drop the new
            trigger), ``queue`` (keep at most one pending, run it next), ``supersede`` (abort the
            one in flight while it is saved or validated and start the new one now; once it is
            being broadcast, queue the new one instead).
        validation: offline validation settings.
    """

    storage_write_bytes_per_s: float = 2e9
    load_bytes_per_s: float = 5e9
    overlap: str = "skip"
    validation: ValidationSettings = field(default_factory=ValidationSettings)


@dataclass
class PolicySettings:
    """Update policy; ``name`` is a key of :data:`simrec.policies.POLICIES`.

    Attributes:
        name: registry key.
        interval_s: time between update triggers (seconds); ``None`` for policies without one.
        phase_s: triggers fall at times t = phase_s (mod interval_s), time 0 being midnight of
            day 0 (seconds; e.g. 14 400 = 04:00, the traffic low, for a daily policy).
        dense_interval_s: ``online`` only: period of the dense-part sync (seconds).
        pipeline: checkpoint pipeline settings (ignored by frozen and oracle).
        params: settings of a plug-in policy that the built-in ones do not have (a mapping
            the plug-in reads and checks itself; see docs/policies.md).
    """

    name: str = "hourly"
    interval_s: float | None = HOUR_S
    phase_s: float = 0.0
    dense_interval_s: float = DAY_S
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class DatacenterSettings:
    """One inference datacenter.

    Attributes:
        name: unique name.
        traffic_share: share of users homed here (shares are normalised).
        latency_s: one-way latency from the training datacenter (seconds).
    """

    name: str = "dc0"
    traffic_share: float = 1.0
    latency_s: float = 0.0005


@dataclass
class InfraSettings:
    """Datacenters and the links between them.

    Attributes:
        name: preset name (for result tables).
        training_dc: name of the training datacenter.
        datacenters: the inference datacenters.
        topology: ``star``, ``relay_tree`` or ``p2p``.
        uplink_bytes_per_s: bandwidth of each datacenter's uplink (bytes/s).
        fanout: children per node of a relay tree.
        chunks: chunks of a peer-to-peer dissemination.
    """

    name: str = "single_dc"
    training_dc: str = "train"
    datacenters: list[DatacenterSettings] = field(default_factory=lambda: [DatacenterSettings()])
    topology: str = "star"
    uplink_bytes_per_s: float = 1e11
    fanout: int = 2
    chunks: int = 16


@dataclass
class Config:
    """Everything one run needs. ``scenario`` is a label of the world preset."""

    seed: int = 0
    scenario: str = "default"
    sim: SimSettings = field(default_factory=SimSettings)
    users: UserSettings = field(default_factory=UserSettings)
    interests: InterestSettings = field(default_factory=InterestSettings)
    topics: TopicSettings = field(default_factory=TopicSettings)
    items: ItemSettings = field(default_factory=ItemSettings)
    clicks: ClickSettings = field(default_factory=ClickSettings)
    serving: ServingSettings = field(default_factory=ServingSettings)
    learner: LearnerSettings = field(default_factory=LearnerSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    infra: InfraSettings = field(default_factory=InfraSettings)
    corruption: CorruptionSettings = field(default_factory=CorruptionSettings)


def to_dict(cfg: Config) -> dict[str, Any]:
    """Plain nested dict of a config (for summaries and Hydra)."""
    return dataclasses.asdict(cfg)


def from_dict(data: dict[str, Any]) -> Config:
    """Build a typed :class:`Config` from a nested dict, refusing unknown keys and bad types."""
    return _build(Config, data, "")


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{prefix + unknown[0]}: unknown setting (allowed: {', '.join(sorted(fields))})"
        )
    kwargs = {}
    hints = _hints(cls)
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, prefix + name)
    return cls(**kwargs)


def _hints(cls: type) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(cls)


def _coerce(tp: Any, value: Any, path: str) -> Any:
    import types
    import typing

    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, path)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path + ".")
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        return [_coerce(inner, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        if isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, str) and value.strip().lower() in ("inf", "+inf", "infinity"):
            return math.inf
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    return value


def _check(ok: bool, path: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{path}={value!r} is not allowed: must be {allowed}")


def _number(n: int) -> str:
    """``n`` with spaces between thousands from 10 000 on, as the docs write numbers."""
    return f"{n:,}".replace(",", " ") if n >= 10_000 else str(n)


def _count(path: str, value: int, lo: int, hi: int) -> None:
    _check(lo <= value <= hi, path, value, f"in [{lo}, {_number(hi)}]")


def _positive(path: str, value: float, allow_inf: bool = False) -> None:
    finite = math.isfinite(value) or (allow_inf and value == math.inf)
    _check(finite and value > 0, path, value, "> 0" + (" (inf allowed)" if allow_inf else ""))


def _nonneg(path: str, value: float) -> None:
    _check(math.isfinite(value) and value >= 0, path, value, ">= 0")


def _prob(path: str, value: float, upper_open: bool = False) -> None:
    ok = 0 <= value < 1 if upper_open else 0 <= value <= 1
    _check(ok, path, value, "in [0, 1)" if upper_open else "in [0, 1]")


def validate(cfg: Config) -> Config:
    """Refuse out-of-range settings with a :class:`ConfigError` naming the setting.

    Plug-in names (policy, topology) are checked against their registries by the engine.
    Sizes and durations have upper limits far beyond any useful run, so that a typo (an
    extra zero, a wrong unit) is refused here instead of exhausting memory or time later.
    """
    if not isinstance(cfg, Config):
        raise ConfigError(f"expected a simrec Config, got {type(cfg).__name__}: {cfg!r}")
    from_dict(to_dict(cfg))  # types, for a config edited in place
    for k, d in enumerate(cfg.infra.datacenters):
        if not isinstance(d, DatacenterSettings):
            raise ConfigError(f"infra.datacenters[{k}]: expected DatacenterSettings, got {d!r}")
    _check(cfg.seed >= 0, "seed", cfg.seed, ">= 0")
    s = cfg.sim
    _positive("sim.days", s.days)
    _check(s.days <= MAX_DAYS, "sim.days", s.days, f"<= {MAX_DAYS}")
    _nonneg("sim.warmup_days", s.warmup_days)
    _check(s.warmup_days <= MAX_DAYS, "sim.warmup_days", s.warmup_days, f"<= {MAX_DAYS}")
    _positive("sim.warmup_sync_interval_s", s.warmup_sync_interval_s)
    _check(
        s.warmup_sync_interval_s >= 1,
        "sim.warmup_sync_interval_s",
        s.warmup_sync_interval_s,
        ">= 1",
    )
    _positive("sim.step_s", s.step_s)
    _check(s.step_s >= 1, "sim.step_s", s.step_s, ">= 1")
    _positive("sim.bucket_s", s.bucket_s)
    _check(s.bucket_s >= s.step_s, "sim.bucket_s", s.bucket_s, f">= sim.step_s ({s.step_s})")
    steps = s.bucket_s / s.step_s
    _check(
        abs(steps - round(steps)) < 1e-9 * steps,
        "sim.bucket_s",
        s.bucket_s,
        f"a whole number of steps (sim.step_s={s.step_s})",
    )
    _count("sim.batch_size", s.batch_size, 1, 1_000_000)
    _check(s.threads in (1, 2), "sim.threads", s.threads, "1 or 2")
    u = cfg.users
    _count("users.initial", u.initial, 1, MAX_ROWS)
    _positive("users.mean_lifetime_days", u.mean_lifetime_days, allow_inf=True)
    if u.arrival_rate_per_day is not None:
        _nonneg("users.arrival_rate_per_day", u.arrival_rate_per_day)
        _check(
            u.arrival_rate_per_day <= MAX_ROWS,
            "users.arrival_rate_per_day",
            u.arrival_rate_per_day,
            f"<= {_number(MAX_ROWS)}",
        )
    _positive("users.activity_median_per_day", u.activity_median_per_day)
    _check(
        u.activity_median_per_day <= DAY_S,
        "users.activity_median_per_day",
        u.activity_median_per_day,
        f"<= {DAY_S:.0f} (one request a second)",
    )
    _nonneg("users.activity_sigma", u.activity_sigma)
    _check(u.activity_sigma <= 5, "users.activity_sigma", u.activity_sigma, "in [0, 5]")
    _prob("users.diurnal_amplitude", u.diurnal_amplitude, upper_open=True)
    _check(
        0 <= u.diurnal_peak_hour <= 24, "users.diurnal_peak_hour", u.diurnal_peak_hour, "in [0, 24]"
    )
    _nonneg("users.new_user_window_s", u.new_user_window_s)
    _prob("users.anonymous_share", u.anonymous_share, upper_open=True)
    _check(
        math.isfinite(u.session_requests_mean) and u.session_requests_mean >= 1,
        "users.session_requests_mean",
        u.session_requests_mean,
        ">= 1 and finite",
    )
    _positive("users.session_length_s", u.session_length_s)
    i = cfg.interests
    _count("interests.dim", i.dim, 1, 1024)
    _nonneg("interests.taste_var", i.taste_var)
    _nonneg("interests.drift_var", i.drift_var)
    _nonneg("interests.drift_kappa_per_s", i.drift_kappa_per_s)
    t = cfg.topics
    _count("topics.count", t.count, 1, 1_000_000)
    _nonneg("topics.popularity_std", t.popularity_std)
    _nonneg("topics.popularity_kappa_per_s", t.popularity_kappa_per_s)
    _nonneg("topics.hot_topic_boost", t.hot_topic_boost)
    _positive("topics.hot_topic_period_s", t.hot_topic_period_s)
    _check(
        t.hot_topic_arrival_weight >= 1,
        "topics.hot_topic_arrival_weight",
        t.hot_topic_arrival_weight,
        ">= 1",
    )
    it = cfg.items
    _count("items.initial", it.initial, 1, MAX_ROWS)
    _positive("items.mean_lifetime_s", it.mean_lifetime_s)
    if it.arrival_rate_per_day is not None:
        _nonneg("items.arrival_rate_per_day", it.arrival_rate_per_day)
        _check(
            it.arrival_rate_per_day <= MAX_ROWS,
            "items.arrival_rate_per_day",
            it.arrival_rate_per_day,
            f"<= {_number(MAX_ROWS)}",
        )
    _nonneg("items.spread_var", it.spread_var)
    _nonneg("items.quality_std", it.quality_std)
    _check(
        math.isfinite(it.freshness_boost),
        "items.freshness_boost",
        it.freshness_boost,
        "a finite number",
    )
    _positive("items.freshness_decay_s", it.freshness_decay_s)
    _nonneg("items.fresh_window_s", it.fresh_window_s)
    c = cfg.clicks
    _check(math.isfinite(c.base_logit), "clicks.base_logit", c.base_logit, "a finite number")
    _nonneg("clicks.affinity_scale", c.affinity_scale)
    _nonneg("clicks.position_decay", c.position_decay)
    sv = cfg.serving
    _count("serving.slate_size", sv.slate_size, 1, 1000)
    _count("serving.candidates", sv.candidates, 1, 100_000)
    _check(
        sv.candidates >= sv.slate_size,
        "serving.candidates",
        sv.candidates,
        f">= serving.slate_size ({sv.slate_size}): a slate of serving.slate_size items is "
        "chosen among serving.candidates",
    )
    _check(
        0 <= sv.rule_slots <= sv.slate_size,
        "serving.rule_slots",
        sv.rule_slots,
        f"in [0, serving.slate_size={sv.slate_size}]",
    )
    _count("serving.rule_pool", sv.rule_pool, 1, MAX_ROWS)
    _count("serving.pool_size", sv.pool_size, 1, 10_000_000)
    _check(
        sv.pool_size >= sv.candidates,
        "serving.pool_size",
        sv.pool_size,
        f">= serving.candidates ({sv.candidates})",
    )
    lr = cfg.learner
    _check(lr.kind in ("learned", "oracle"), "learner.kind", lr.kind, "one of: learned, oracle")
    _check(
        lr.optimizer in ("sgd", "adagrad"),
        "learner.optimizer",
        lr.optimizer,
        "one of: sgd, adagrad",
    )
    _positive("learner.learning_rate", lr.learning_rate)
    _nonneg("learner.l2", lr.l2)
    _count("learner.minibatch", lr.minibatch, 1, 100_000_000)
    _nonneg("learner.join_delay_s", lr.join_delay_s)
    _positive("learner.throughput_per_s", lr.throughput_per_s, allow_inf=True)
    _check(lr.user_min_sightings >= 1, "learner.user_min_sightings", lr.user_min_sightings, ">= 1")
    _positive("learner.row_ttl_s", lr.row_ttl_s, allow_inf=True)
    _nonneg("learner.init_std", lr.init_std)
    _prob("learner.holdout_share", lr.holdout_share, upper_open=True)
    _positive("learner.bytes_per_row", lr.bytes_per_row)
    _positive("learner.user_row_scale", lr.user_row_scale)
    _positive("learner.item_row_scale", lr.item_row_scale)
    _nonneg("learner.dense_bytes", lr.dense_bytes)
    p = cfg.policy
    if p.interval_s is not None:
        _positive("policy.interval_s", p.interval_s)
        _check(p.interval_s >= 1, "policy.interval_s", p.interval_s, ">= 1")
    _nonneg("policy.phase_s", p.phase_s)
    _positive("policy.dense_interval_s", p.dense_interval_s)
    _check(p.dense_interval_s >= 1, "policy.dense_interval_s", p.dense_interval_s, ">= 1")
    pl = p.pipeline
    _positive("policy.pipeline.storage_write_bytes_per_s", pl.storage_write_bytes_per_s)
    _positive("policy.pipeline.load_bytes_per_s", pl.load_bytes_per_s)
    _check(
        pl.overlap in ("skip", "queue", "supersede"),
        "policy.pipeline.overlap",
        pl.overlap,
        "one of: skip, queue, supersede",
    )
    v = pl.validation
    _check(
        v.metric in ("logloss", "auc"),
        "policy.pipeline.validation.metric",
        v.metric,
        "one of: logloss, auc",
    )
    _nonneg("policy.pipeline.validation.tolerance", v.tolerance)
    _positive("policy.pipeline.validation.window_s", v.window_s)
    _nonneg("policy.pipeline.validation.fixed_s", v.fixed_s)
    _positive("policy.pipeline.validation.examples_per_s", v.examples_per_s)
    inf = cfg.infra
    _check(
        len(inf.datacenters) >= 1,
        "infra.datacenters",
        inf.datacenters,
        "a list of at least one datacenter",
    )
    names = [d.name for d in inf.datacenters]
    _check(len(set(names)) == len(names), "infra.datacenters", names, "uniquely named")
    for k, d in enumerate(inf.datacenters):
        _positive(f"infra.datacenters[{k}].traffic_share", d.traffic_share)
        _nonneg(f"infra.datacenters[{k}].latency_s", d.latency_s)
    _positive("infra.uplink_bytes_per_s", inf.uplink_bytes_per_s)
    _count("infra.fanout", inf.fanout, 1, 10_000)
    _count("infra.chunks", inf.chunks, 1, 10_000)
    co = cfg.corruption
    _nonneg("corruption.start_s", co.start_s)
    if co.enabled:  # a burst that never happens is a mistake, not a control run
        _check(
            co.start_s < s.days * DAY_S,
            "corruption.start_s",
            co.start_s,
            f"< sim.days x 86400 ({s.days * DAY_S:g} s, the measured period) when "
            "corruption.enabled",
        )
    _nonneg("corruption.duration_s", co.duration_s)
    _count("corruption.items", co.items, 1, MAX_ROWS)
    _prob("corruption.click_rate", co.click_rate)
    return cfg
