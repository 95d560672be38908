"""simrec's world and learner written the way a typical SimPy user would: the naive reference.

One SimPy process per user draws that user's requests (a Poisson loop at the user's rate times
the diurnal factor, by thinning); every request advances the user's OU drift, draws K distinct
candidates among the live items the serving model knows, scores them with one numpy call,
shows the top k, draws Bernoulli clicks from the true click model and, after the join delay,
trains the model with one Adagrad (or SGD) step per impression. The oracle's counterfactual
(its own K candidates among all live items) is drawn for every request and, as in the engine,
scored only in the measured period, where the metrics record it. The world (users, items,
topics, ground truth) is simrec's own :class:`simrec.world.World`, advanced every
``sim.step_s`` by a world process, so catalogue and popularity follow the same law (and, for
the same seed, the same path) as in the engine.

Deliberate simplifications, none of which changes the per-request work: one datacenter, no
rule slots, no corruption burst, no row eviction (runs shorter than ``learner.row_ttl_s``),
and periodic policies sync the trainer's tables to serving instantly every ``interval_s``
(no save, validation, transfer or load stages). Policies: ``oracle``, ``frozen`` and the
periodic ones; warm-up syncs as in the engine.

Run ``python benchmarks/naive_reference.py`` for a small timing.
"""

from __future__ import annotations

import math
import time

import numpy as np
import simpy

from simrec.config import DAY_S, Config
from simrec.model.version import AGE_TAUS_S, age_features
from simrec.rng import Streams
from simrec.world import World
from simrec.world.clicks import position_bias, sigmoid
from simrec.world.interests import ou_step

EPS = 1e-8


def _grown(a: np.ndarray, n: int) -> np.ndarray:
    """``a`` with at least ``n`` rows (zero-filled, capacity doubled)."""
    if n <= len(a):
        return a
    out = np.zeros((max(n, 2 * len(a)), *a.shape[1:]), dtype=a.dtype)
    out[: len(a)] = a
    return out


class Model:
    """The model of :mod:`simrec.model.learner`, ``dense`` = (w0, w_pos, w_age):

    z = w0 + w_pos[slot] + w_age . phi(age) + tb[topic] + b[item] + U[user] . (T[topic] + V[item])
    """

    PARAMS = ("U", "u_known", "V", "b", "i_known", "T", "tb", "dense")

    def __init__(self, d: int, n_topics: int, k: int, init_std: float, rng) -> None:
        self.U, self.U_acc = np.zeros((1024, d), np.float32), np.zeros(1024, np.float32)
        self.u_known, self.seen = np.zeros(1024, bool), np.zeros(1024, np.int32)
        self.V, self.V_acc = np.zeros((1024, d), np.float32), np.zeros(1024, np.float32)
        self.b, self.b_acc = np.zeros(1024, np.float32), np.zeros(1024, np.float32)
        self.i_known = np.zeros(1024, bool)
        self.T = rng.normal(0, init_std, (n_topics, d)).astype(np.float32)
        self.T_acc, self.tb, self.tb_acc = (np.zeros(n_topics, np.float32) for _ in range(3))
        self.dense = np.zeros(1 + k + len(AGE_TAUS_S), np.float32)
        self.dense_acc = np.zeros_like(self.dense)
        self.k = k

    def grow(self, n_users: int, n_items: int) -> None:
        for name in ("U", "U_acc", "u_known", "seen"):
            setattr(self, name, _grown(getattr(self, name), n_users))
        for name in ("V", "V_acc", "b", "b_acc", "i_known"):
            setattr(self, name, _grown(getattr(self, name), n_items))

    def snapshot(self) -> Model:
        """A serving copy of the parameters, with the mean known user as the fallback."""
        s = object.__new__(Model)
        for name in self.PARAMS:
            setattr(s, name, getattr(self, name).copy())
        s.k = self.k
        s.fallback = (
            self.U[self.u_known].mean(axis=0)
            if self.u_known.any()
            else np.zeros(self.U.shape[1], np.float32)
        )
        return s

    def knows(self, items: np.ndarray) -> np.ndarray:
        inside = items < len(self.i_known)
        return inside & self.i_known[np.where(inside, items, 0)]

    def score(self, u: int, items: np.ndarray, topic: np.ndarray, age: np.ndarray) -> np.ndarray:
        """Ranking scores of ``items`` for user ``u`` (terms constant over items dropped)."""
        uvec = self.U[u] if u < len(self.u_known) and self.u_known[u] else self.fallback
        bias = self.b[items] + self.tb[topic] + age_features(age) @ self.dense[1 + self.k :]
        return (self.T[topic] + self.V[items]) @ uvec + bias


class NaiveSim:
    """One naive run (see the module docstring); call :meth:`run` once."""

    def __init__(self, cfg: Config, max_requests: int | None = None) -> None:
        sv, lr = cfg.serving, cfg.learner
        if (
            sv.rule_slots
            or len(cfg.infra.datacenters) > 1
            or cfg.corruption.enabled
            or cfg.policy.name == "online"
            or lr.kind != "learned"
        ):
            raise ValueError(
                "the naive reference covers one datacenter, no rule slots, no "
                "corruption, the learned model and non-online policies"
            )
        self.cfg, self.max_requests = cfg, max_requests
        streams = Streams(cfg.seed)
        self.env = simpy.Environment()
        self.world = World(cfg, streams)
        self.rng, self.rng_serve = streams["traffic"], streams["serving"]
        self.rng_learn = streams["learner"]
        self.model = Model(
            cfg.interests.dim, cfg.topics.count, sv.slate_size, lr.init_std, self.rng_learn
        )
        self.pos = position_bias(sv.slate_size, cfg.clicks.position_decay)
        self.measure_start_s = cfg.sim.warmup_days * DAY_S
        self.end_s = self.measure_start_s + cfg.sim.days * DAY_S
        w = self.world
        self.model.grow(w.users.t.size, w.items.t.size)
        self.model.i_known[w.items.active] = True
        self.serving: Model | None = self.model.snapshot()  # None: the live oracle (true world)
        self.refresh_eligible()
        self.requests = 0
        # per measured request: user, expected clicks, oracle expected clicks, clicks, shown
        self.measured: list[tuple[int, float, float, int, int]] = []
        self.done = self.env.event()

    # --- processes ----------------------------------------------------------------------
    def user(self, u: int):
        """Requests of user ``u`` until its death: a thinned Poisson loop."""
        env, tb, diurnal = self.env, self.world.users.t, self.world.diurnal
        anonymous, death = bool(tb.anonymous[u]), float(tb.death_s[u])
        peak = 1.0 if anonymous else 1.0 + diurnal.amplitude
        rate_max = float(tb.rate_per_s[u]) * peak
        while True:
            yield env.timeout(self.rng.exponential(1.0 / rate_max))
            if env.now >= death:
                return
            if anonymous or self.rng.random() * peak < diurnal.factor(env.now):
                self.request(u)

    def world_clock(self):
        """Advance the world every step: births (a process each), deaths, new items."""
        env, w = self.env, self.world
        while True:
            new_users, new_items = w.advance(env.now)
            self.model.grow(w.users.t.size, w.items.t.size)
            self.model.i_known[new_items] = True  # registered at publication, V = 0
            for u in new_users:
                env.process(self.user(int(u)))
            self.refresh_eligible()
            yield env.timeout(self.cfg.sim.step_s)

    def policy(self):
        """Instant syncs in warm-up, one at its end, then the policy's own syncs."""
        env, cfg = self.env, self.cfg
        every = cfg.sim.warmup_sync_interval_s
        while env.now + every < self.measure_start_s:
            yield env.timeout(every)
            self.sync()
        yield env.timeout(self.measure_start_s - env.now)
        self.sync()
        p = cfg.policy
        if p.name == "oracle":
            self.serving = None
            self.refresh_eligible()
        elif p.name != "frozen":
            offset = p.phase_s % p.interval_s
            yield env.timeout(offset if offset > 0 else p.interval_s)
            while True:
                self.sync()
                yield env.timeout(p.interval_s)

    def sync(self) -> None:
        self.serving = self.model.snapshot()
        self.refresh_eligible()

    def refresh_eligible(self) -> None:
        active = self.world.items.active
        self.eligible = active if self.serving is None else active[self.serving.knows(active)]

    # --- one request --------------------------------------------------------------------
    def request(self, u: int) -> None:
        t, w, cfg, rng = self.env.now, self.world, self.cfg, self.rng_serve
        users, it = w.users, w.items.t
        K, k = cfg.serving.candidates, cfg.serving.slate_size
        ut = users.t
        ut.drift[u] = ou_step(
            ut.drift[u][None], t - ut.drift_t[u], users.kappa, users.drift_var, users.rng_i
        )[0]
        ut.drift_t[u] = t
        true_u = ut.taste[u] + ut.drift[u]
        cands = self.eligible[
            rng.choice(len(self.eligible), min(K, len(self.eligible)), replace=False)
        ]
        if self.serving is None:
            scores = w.logits(true_u[None], cands, t)[0]
        else:
            scores = self.serving.score(u, cands, it.topic[cands], t - it.birth_s[cands])
        slate = cands[np.argsort(-scores, kind="stable")[:k]]
        p = sigmoid(w.logits(true_u[None], slate, t)[0]) * self.pos[: len(slate)]
        clicks = rng.random(len(slate)) < p
        active = w.items.active
        pool = active[rng.choice(len(active), min(K, len(active)), replace=False)]
        self.requests += 1
        if self.measure_start_s <= t < self.end_s:  # the oracle only feeds the metrics
            best = np.sort(w.logits(true_u[None], pool, t)[0])[::-1][:k]
            oracle = float((sigmoid(best) * self.pos[: len(best)]).sum())
            self.measured.append((u, float(p.sum()), oracle, int(clicks.sum()), len(slate)))
        if self.rng_learn.random() >= cfg.learner.holdout_share:
            later = self.env.timeout(cfg.learner.join_delay_s)
            later.callbacks.append(lambda _: self.train(u, slate, clicks, t))
        if self.requests == self.max_requests and not self.done.triggered:
            self.done.succeed()

    def train(self, u: int, items: np.ndarray, clicks: np.ndarray, t: float) -> None:
        """One optimizer step per impression (user u saw ``items`` at ``t``)."""
        m, lr, it = self.model, self.cfg.learner, self.world.items.t
        m.seen[u] += len(items)
        if not m.u_known[u] and m.seen[u] >= lr.user_min_sightings:
            m.u_known[u] = True
        kd = 1 + m.k
        phis = age_features(t - it.birth_s[items])
        for slot, (i, y, phi) in enumerate(zip(items, clicks, phis, strict=True)):
            top = it.topic[i]
            uv = m.U[u] * m.u_known[u]
            iv = m.T[top] + m.V[i]
            z = m.dense[0] + m.dense[1 + slot] + phi @ m.dense[kd:] + m.tb[top] + m.b[i] + uv @ iv
            g = float(sigmoid(z) - y)
            if m.u_known[u]:
                self.step(m.U, m.U_acc, u, g * iv + lr.l2 * m.U[u])
            self.step(m.V, m.V_acc, i, g * uv + lr.l2 * m.V[i])
            self.step(m.b, m.b_acc, i, g)
            self.step(m.T, m.T_acc, top, g * uv)
            self.step(m.tb, m.tb_acc, top, g)
            gd = np.zeros_like(m.dense)
            gd[0], gd[1 + slot], gd[kd:] = g, g, g * phi
            self.step(m.dense, m.dense_acc, slice(None), gd)

    def step(self, table: np.ndarray, acc: np.ndarray, row, grad) -> None:
        """Adagrad with one accumulator per row (mean squared gradient of the row; elementwise
        for the dense part), or plain SGD."""
        lr = self.cfg.learner.learning_rate
        if self.cfg.learner.optimizer == "adagrad":
            if isinstance(row, slice):
                acc += grad * grad
            else:
                acc[row] += float(grad @ grad) / len(grad) if np.ndim(grad) else grad * grad
            lr = lr / np.sqrt(acc[row] + EPS)
        table[row] -= lr * grad

    # --- run ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the processes: one per initial user, the world clock and the policy."""
        env = self.env
        for u in self.world.users.active:
            env.process(self.user(int(u)))
        env.process(self.world_clock())
        env.process(self.policy())
        env.timeout(self.end_s).callbacks.append(
            lambda _: None if self.done.triggered else self.done.succeed()
        )

    def run(self) -> dict:
        t0 = time.perf_counter()
        self.start()
        self.env.run(until=self.done)
        return self.report(time.perf_counter() - t0)

    def report(self, wall: float) -> dict:
        """Counts, CTRs of the measured period, and timing over ``wall`` seconds."""
        rows = np.array(self.measured, dtype=float).reshape(-1, 5)
        imp = rows[:, 4].sum()

        def ratio(col: int) -> float:
            return float(rows[:, col].sum() / imp) if imp else math.nan

        return {
            "requests": self.requests,  # all served, warm-up included
            "sim_time_s": float(self.env.now),
            "wall_time_s": wall,
            "requests_per_s": self.requests / wall,
            "measured_requests": len(rows),
            "impressions": int(imp),
            "expected_ctr": ratio(1),
            "oracle_expected_ctr": ratio(2),
            "ctr": ratio(3),
            # per measured request, for standard errors
            "request_user": rows[:, 0].astype(np.int64),
            "request_expected_clicks": rows[:, 1],
            "request_oracle_expected_clicks": rows[:, 2],
            "request_impressions": rows[:, 4],
        }


def run_naive(cfg: Config, max_requests: int | None = None) -> dict:
    """Run the naive reference on ``cfg``, stopping at the end of the run or after
    ``max_requests`` requests (warm-up included). Returns its counts, CTRs and timing
    (``wall_time_s`` includes spawning the initial user processes)."""
    return NaiveSim(cfg, max_requests).run()


if __name__ == "__main__":
    c = Config()
    c.users.initial, c.items.initial = 2000, 500
    out = run_naive(c, max_requests=20_000)
    print({k: v for k, v in out.items() if not isinstance(v, np.ndarray)})
