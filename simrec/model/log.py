"""The impression log as a streaming joiner sees it.

Impressions are appended in time order in chunks. Training examples become readable only
``join_delay_s`` after the impression (the click attribution window); a share of requests is
held out of training and kept for offline validation.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from numba import njit


@dataclass
class Examples:
    """A batch of logged impressions (arrays of equal length)."""

    t: np.ndarray  # impression time (s)
    user: np.ndarray
    item: np.ndarray
    slot: np.ndarray
    click: np.ndarray  # 0/1 as float32

    def __len__(self) -> int:
        return len(self.t)

    def take(self, sel: slice | np.ndarray) -> Examples:
        return Examples(
            self.t[sel], self.user[sel], self.item[sel], self.slot[sel], self.click[sel]
        )

    @staticmethod
    def from_slates(
        t: float, users: np.ndarray, items: np.ndarray, clicks: np.ndarray, held: np.ndarray
    ) -> tuple[Examples, Examples]:
        """The impressions of served slates (``items`` (B, k), -1 for an empty slot) as
        training examples and held-out examples (requests ``held`` (B,)), in slate order."""
        parts = _split(users, items, clicks, held)
        train, hold = parts[:4], parts[4:]
        return (
            Examples(np.full(len(train[0]), t), *train),
            Examples(np.full(len(hold[0]), t), *hold),
        )

    @staticmethod
    def concat(parts: list[Examples]) -> Examples:
        if not parts:
            return Examples(
                *(np.empty(0, dt) for dt in (np.float64, np.int64, np.int64, np.int16, np.float32))
            )
        return Examples(
            *(
                np.concatenate([getattr(p, f) for p in parts])
                for f in ("t", "user", "item", "slot", "click")
            )
        )


class ClickLog:
    """Training stream and held-out validation stream.

    Args:
        join_delay_s: an impression becomes a training example this long after it happened.
        holdout_window_s: held-out examples older than this are dropped.
    """

    def __init__(self, join_delay_s: float, holdout_window_s: float) -> None:
        self.join_delay_s = join_delay_s
        self.holdout_window_s = holdout_window_s
        self._train: deque[Examples] = deque()
        self._holdout: deque[Examples] = deque()
        self.pending = 0

    def add(self, train: Examples, holdout: Examples) -> None:
        """Log training impressions and held-out impressions."""
        if len(holdout):
            self._holdout.append(holdout)
        if len(train):
            self._train.append(train)
            self.pending += len(train)

    def ready(self, now: float, limit: float = np.inf) -> Examples:
        """Pop up to ``limit`` training examples joined by ``now`` (time <= now - join delay)."""
        cut = now - self.join_delay_s
        out: list[Examples] = []
        n = 0
        while self._train and n < limit:
            head = self._train[0]
            k = int(np.searchsorted(head.t, cut, side="right"))
            k = int(min(k, limit - n))
            if k == 0:
                break
            if k == len(head):
                out.append(self._train.popleft())
            else:
                out.append(head.take(slice(0, k)))
                self._train[0] = head.take(slice(k, None))
            n += k
        self.pending -= n
        return Examples.concat(out)

    def holdout(self, now: float) -> Examples:
        """Held-out examples joined by ``now`` within the validation window."""
        lo = now - self.join_delay_s - self.holdout_window_s
        while self._holdout and self._holdout[0].t[-1] < lo:
            self._holdout.popleft()
        ex = Examples.concat(list(self._holdout))
        keep = (ex.t >= lo) & (ex.t <= now - self.join_delay_s)
        return ex.take(keep)


@njit(cache=True, nogil=True)
def _split(users, items, clicks, held):
    """(user, item, slot, click) columns of the shown slots of training requests, then of
    held-out requests."""
    B, k = items.shape
    n_held = 0
    n_all = 0
    for r in range(B):
        shown = 0
        for j in range(k):
            shown += items[r, j] >= 0
        n_all += shown
        if held[r]:
            n_held += shown
    cols = []
    for n in (n_all - n_held, n_held):
        cols.append(
            (
                np.empty(n, np.int64),
                np.empty(n, np.int64),
                np.empty(n, np.int16),
                np.empty(n, np.float32),
            )
        )
    fill = [0, 0]
    for r in range(B):
        h = 1 if held[r] else 0
        u, i, s, c = cols[h]
        x = fill[h]
        for j in range(k):
            if items[r, j] >= 0:
                u[x] = users[r]
                i[x] = items[r, j]
                s[x] = j
                c[x] = clicks[r, j]
                x += 1
        fill[h] = x
    tu, ti, ts, tc = cols[0]
    hu, hi, hs, hc = cols[1]
    return tu, ti, ts, tc, hu, hi, hs, hc
