"""The true click model (pure functions of arrays).

p(u, i, t, k) = sigmoid(base + scale <u(t), v_i> + quality_i + fresh_i(t) + pop_topic(i)(t))
                * position_bias(k),  position_bias(k) = 1 / (1 + k)^decay  (k = 0 is the top slot).
"""

from __future__ import annotations

import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function, stable for large |z|."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def position_bias(slots: int, decay: float) -> np.ndarray:
    """Examination probability of each of ``slots`` positions."""
    return (1.0 / (1.0 + np.arange(slots)) ** decay).astype(np.float32)


def true_logits(
    user_vecs: np.ndarray,
    item_vecs: np.ndarray,
    item_terms: np.ndarray,
    base_logit: float,
    affinity_scale: float,
) -> np.ndarray:
    """Relevance logits (B, K) of users (B, d) for a shared pool of items (K, d).

    ``item_terms`` (K,) is quality + freshness + topic popularity of each pool item.
    """
    return base_logit + affinity_scale * (user_vecs @ item_vecs.T) + item_terms[None, :]
