"""Pure functions of the interest drift: an exact Ornstein-Uhlenbeck transition."""

from __future__ import annotations

import numpy as np


def ou_step(
    x: np.ndarray, dt: np.ndarray | float, kappa: float, var: float, rng: np.random.Generator
) -> np.ndarray:
    """Advance OU states ``x`` (n, d) by ``dt`` seconds exactly.

    x(t + dt) = x(t) e^{-kappa dt} + sqrt(var (1 - e^{-2 kappa dt})) xi, xi ~ N(0, I), where
    ``var`` is the stationary variance per dimension. Then corr(x(t), x(t+dt)) = e^{-kappa dt}.
    """
    dt = np.asarray(dt, dtype=np.float64)
    decay = np.exp(-kappa * dt)
    noise_sd = np.sqrt(var * (1.0 - decay**2))
    if dt.ndim:
        decay = decay[:, None]
        noise_sd = noise_sd[:, None]
    xi = rng.standard_normal(x.shape, dtype=np.float32)
    return (x * decay + noise_sd * xi).astype(np.float32, copy=False)
