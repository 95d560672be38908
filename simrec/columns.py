"""Growable, id-indexed column arrays (amortised doubling), shared by world and model tables."""

from __future__ import annotations

import numpy as np


class Columns:
    """A set of numpy columns indexed by a dense integer id, grown on demand.

    Args:
        spec: column name -> (dtype, trailing shape, fill value for new slots).
        capacity: initial capacity (rows).
    """

    def __init__(self, spec: dict[str, tuple], capacity: int = 1024) -> None:
        self._spec = spec
        self.size = 0
        self._cap = max(int(capacity), 16)
        self._cols: dict[str, np.ndarray] = {}
        for name, (dtype, shape, fill) in spec.items():
            self._cols[name] = np.full((self._cap, *shape), fill, dtype=dtype)

    def __getattr__(self, name: str) -> np.ndarray:
        cols = self.__dict__.get("_cols")
        if cols is not None and name in cols:
            return cols[name]
        raise AttributeError(name)

    def append(self, n: int) -> np.ndarray:
        """Reserve ``n`` new rows and return their ids (``size - n`` to ``size - 1``; fill
        them through the slice :meth:`last` for speed)."""
        need = self.size + n
        if need > self._cap:
            cap = self._cap
            while cap < need:
                cap *= 2
            for name, (dtype, shape, fill) in self._spec.items():
                new = np.full((cap, *shape), fill, dtype=dtype)
                new[: self.size] = self._cols[name][: self.size]
                self._cols[name] = new
            self._cap = cap
        ids = np.arange(self.size, need, dtype=np.int64)
        self.size = need
        return ids

    def last(self, n: int) -> slice:
        """The slice of the last ``n`` rows (those of the latest :meth:`append` of ``n``)."""
        return slice(self.size - n, self.size)

    def view(self, name: str) -> np.ndarray:
        """The used part of a column."""
        return self._cols[name][: self.size]


def grown(a: np.ndarray, n: int) -> np.ndarray:
    """``a`` with room for at least ``n`` rows (amortised doubling; new rows are zero)."""
    out = np.zeros((max(n, 2 * len(a)), *a.shape[1:]), dtype=a.dtype)
    out[: len(a)] = a
    return out
