"""The vectorised engine and the naive one-process-per-user reference agree on expected CTR.

Only comparisons where the learned model cannot matter are meaningful (the engine trains in
minibatches of 2 048, the reference one impression at a time, so their models differ):

* ``policy=oracle``: both serve the true top-k of K candidates, so expected CTR must agree;
* ``policy=frozen`` with no warm-up: both serve an untrained model whose scores all tie,
  i.e. a random slate of the K candidates;
* in both runs, the oracle expected CTR (top-k by true click probability among K candidates
  of all live items) does not depend on the model at all.

Tolerance. Per measured request r let x_r be its expected clicks and n_r its impressions; a
run's estimate is R = sum x_r / sum n_r. Both runs use the same seed, hence the same users,
catalogue and topic-popularity path; what differs is which requests are drawn, the interest
drift, candidate draws and tie-breaking. Requests of one user are correlated (the user's taste
persists), so the variance of the difference d = R_engine - R_naive is taken clustered by user:
with e_u = sum over u's requests of (x_r - R n_r) / sum n_r in each run,
Var(d) ~= sum_u (e_u_engine - e_u_naive)^2 (per-request variance plus within-user
covariance; users independent). The test requires |d| <= 4 sd(d), about 0.008 in expected
CTR for the oracle (CTR ~0.20) and 0.002 for the random slate (CTR ~0.05); a 4-sigma band
has a two-sided false-alarm rate of 6e-5 for a normal d. For scale: making the reference's
position-bias exponent 10 % too large moves d by 4.5 sd (oracle) and 6.3 sd (random slate).

The engine's requests of one batch take their K candidates from one shared pool (windows of
``serving.pool_size`` distinct items), the reference draws K distinct items per request: the
same law per request, so only the variance differs (the batch correlation is not in the band).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import simrec
from simrec.metrics.recorder import Recorder

_path = Path(__file__).resolve().parents[1] / "benchmarks" / "naive_reference.py"
_spec = importlib.util.spec_from_file_location("naive_reference", _path)
naive = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(naive)

SIGMAS = 4.0


def small(policy: str, warmup_h: float) -> simrec.Config:
    """2 000 users, the default 5 000 items, 5 measured hours: ~7 000 requests."""
    cfg = simrec.Config()
    cfg.users.initial = 2000
    cfg.sim.days = 5 / 24
    cfg.sim.warmup_days = warmup_h / 24
    cfg.policy.name = policy
    return cfg


def engine_requests(cfg: simrec.Config, monkeypatch) -> tuple[dict, dict[str, np.ndarray]]:
    """simrec.run with the measured requests captured one by one (around Recorder.record)."""
    rows: list[tuple[np.ndarray, ...]] = []
    record = Recorder.record

    def capture(self, dc, t, s, staleness_s, since_update_s):
        if self.bucket(t) is not None:
            rows.append((s.users, s.p.sum(axis=1), s.oracle_expected, (s.items >= 0).sum(axis=1)))
        return record(self, dc, t, s, staleness_s, since_update_s)

    monkeypatch.setattr(Recorder, "record", capture)
    summary = simrec.run(cfg).summary
    users, exp, oracle, imp = (np.concatenate(c) for c in zip(*rows, strict=True))
    return summary, {
        "request_user": users,
        "request_expected_clicks": exp,
        "request_oracle_expected_clicks": oracle,
        "request_impressions": imp,
    }


def difference(a: dict, b: dict, key: str) -> tuple[float, float]:
    """d = R_a - R_b of ratio ``key`` / impressions, and its user-clustered standard error."""
    xa, na, xb, nb = (a[key], a["request_impressions"], b[key], b["request_impressions"])
    ra, rb = xa.sum() / na.sum(), xb.sum() / nb.sum()
    r = (xa.sum() + xb.sum()) / (na.sum() + nb.sum())
    ids = np.union1d(a["request_user"], b["request_user"])

    def per_user(run, x, n):
        at = np.searchsorted(ids, run["request_user"])
        return np.bincount(at, weights=x - r * n, minlength=len(ids)) / n.sum()

    e = per_user(a, xa, na) - per_user(b, xb, nb)
    return float(ra - rb), float(np.sqrt(np.sum(e**2)))


def check(engine: dict, ref: dict, key: str) -> float:
    d, se = difference(engine, ref, key)
    assert abs(d) <= SIGMAS * se, f"{key}: engine - naive = {d:+.5f}, tolerance {SIGMAS * se:.5f}"
    return se


@pytest.mark.parametrize("policy,warmup_h", [("oracle", 1.0), ("frozen", 0.0)])
def test_engine_matches_naive_reference(policy, warmup_h, monkeypatch):
    cfg = small(policy, warmup_h)
    summary, engine = engine_requests(cfg, monkeypatch)
    ref = naive.run_naive(cfg)
    assert summary["requests"] == len(engine["request_user"]) > 3000
    assert ref["measured_requests"] > 3000
    se = check(engine, ref, "request_expected_clicks")
    check(engine, ref, "request_oracle_expected_clicks")
    # the band is narrow enough to tell the two regimes apart many times over
    assert SIGMAS * se < 0.1 * summary["expected_ctr"]
    if policy == "oracle":
        assert summary["expected_ctr"] == pytest.approx(summary["oracle_expected_ctr"], rel=0.02)
    else:  # an untrained model ranks at random: far below the oracle
        assert ref["expected_ctr"] < 0.5 * ref["oracle_expected_ctr"]
