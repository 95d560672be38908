"""Offline validation: a real evaluation of a candidate against the live version."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simrec.config import ValidationSettings
from simrec.model.log import Examples
from simrec.model.version import ModelVersion


def logloss(p: np.ndarray, y: np.ndarray) -> float:
    """Mean binary cross-entropy (nats) of predictions ``p`` for labels ``y``."""
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def auc(p: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half); NaN with one class."""
    y = y.astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p))
    sp = p[order]
    # average ranks of ties
    _, first, counts = np.unique(sp, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@dataclass
class Verdict:
    """Outcome of one validation job."""

    passed: bool
    candidate_score: float
    live_score: float
    examples: int
    duration_s: float


def validate(
    candidate: ModelVersion, live: ModelVersion, holdout: Examples, cfg: ValidationSettings
) -> Verdict:
    """Score both versions on held-out examples; the candidate passes unless it is worse than
    the live version by more than ``cfg.tolerance`` (relative). With no held-out examples it
    passes (nothing to judge on)."""
    n = len(holdout)
    duration = cfg.fixed_s + n / cfg.examples_per_s
    if n == 0:
        return Verdict(True, float("nan"), float("nan"), 0, duration)
    y = holdout.click
    pc = candidate.predict_proba(holdout.user, holdout.item, holdout.slot, holdout.t)
    pl = live.predict_proba(holdout.user, holdout.item, holdout.slot, holdout.t)
    if cfg.metric == "logloss":
        c, l_ = logloss(pc, y), logloss(pl, y)
        passed = c <= l_ * (1 + cfg.tolerance)
    else:
        c, l_ = auc(pc, y), auc(pl, y)
        passed = not (c < l_ * (1 - cfg.tolerance))
    return Verdict(bool(passed), c, l_, n, duration)
