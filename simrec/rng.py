"""Independent, named random streams for one run.

One :class:`numpy.random.SeedSequence` per run is split by *name*, not by order, so adding a
component never shifts the draws of the others.
"""

from __future__ import annotations

import zlib

import numpy as np

STREAMS = (
    "users",
    "anonymous",
    "interests",
    "tastes",
    "topics",
    "items",
    "traffic",
    "serving",
    "oracle",
    "learner",
    "corruption",
)


def stream(seed: int, name: str) -> np.random.Generator:
    """Generator for component ``name`` of run ``seed``; the same pair always gives the same
    stream, whatever other streams exist."""
    key = zlib.crc32(name.encode())
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, key])))


class Streams:
    """Lazily created named generators of one run."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._gens: dict[str, np.random.Generator] = {}

    def __getitem__(self, name: str) -> np.random.Generator:
        if name not in self._gens:
            self._gens[name] = stream(self.seed, name)
        return self._gens[name]


def categorical(rng: np.random.Generator, p: np.ndarray, n: int) -> np.ndarray:
    """``n`` draws of indices with probabilities ``p``: the same values, from the same draws,
    as ``rng.choice(len(p), n, p=p)``, without its argument checks (which cost more than
    the draw for the few items or sessions born in one step)."""
    cdf = np.asarray(p, dtype=np.float64).cumsum()  # methods: numpy's wrappers cost more here
    cdf /= cdf[-1]
    return cdf.searchsorted(rng.random(n), side="right")
