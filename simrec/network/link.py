"""A directed link between two datacenters, shared by its transfers (processor sharing).

Units: sizes in bytes, times in seconds, bandwidth in bytes/s.
"""

from __future__ import annotations

import math

import simpy

#: A transfer whose remaining bytes are at most ``EPSILON * size`` has finished sending.
#: Absorbs floating-point drift so identical transfers started together finish together.
EPSILON = 1e-12


def _check(name: str, value: float, *, positive: bool) -> float:
    """Return ``value`` if it is a finite number > 0 (``positive``) or >= 0, else raise."""
    ok = math.isfinite(value) and (value > 0 if positive else value >= 0)
    if not ok:
        allowed = "a finite number > 0" if positive else "a finite number >= 0"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return value


class Transfer(simpy.Event):
    """One payload crossing a :class:`Link`.

    The event itself succeeds when the last byte has arrived at the far end; its value is the
    arrival time (seconds). :attr:`sent` succeeds when the last byte has left the near end
    (value: that time), i.e. ``latency_s`` earlier.
    """

    def __init__(self, env: simpy.Environment, size_bytes: float, latency_s: float) -> None:
        super().__init__(env)
        self.size_bytes = size_bytes
        self.latency_s = latency_s
        self.sent = env.event()


class Link:
    """A directed link of ``bandwidth_bytes_per_s`` bytes/s and ``latency_s`` seconds.

    Transfers in progress share the bandwidth equally: with ``n`` of them, each is pushed at
    ``bandwidth_bytes_per_s / n`` bytes/s. Once pushed, a payload takes ``latency_s`` to
    propagate to the far end.

    Counters: :attr:`bytes_sent` counts a transfer's bytes when it is started,
    :attr:`bytes_delivered` when it has arrived; :attr:`active` is the number of transfers
    being pushed right now.
    """

    def __init__(
        self,
        env: simpy.Environment,
        name: str,
        bandwidth_bytes_per_s: float,
        latency_s: float,
    ) -> None:
        self.env = env
        self.name = name
        self.bandwidth_bytes_per_s = _check(
            "bandwidth_bytes_per_s", bandwidth_bytes_per_s, positive=True
        )
        self.latency_s = _check("latency_s", latency_s, positive=False)
        self.bytes_sent = 0.0
        self.bytes_delivered = 0.0
        self._remaining: dict[Transfer, float] = {}  # bytes left to push, per transfer
        self._updated_at = env.now  # time up to which _remaining is exact
        self._generation = 0  # bumped on every change; older wake-ups are stale

    def __repr__(self) -> str:
        return (
            f"Link({self.name!r}, bandwidth_bytes_per_s={self.bandwidth_bytes_per_s!r}, "
            f"latency_s={self.latency_s!r}, active={self.active})"
        )

    @property
    def active(self) -> int:
        """Number of transfers currently being pushed through the link."""
        return len(self._remaining)

    def transfer(self, size_bytes: float, latency_s: float | None = None) -> Transfer:
        """Start pushing ``size_bytes`` bytes now; return the event of their arrival.

        The event succeeds, with the arrival time (seconds) as value, once the payload has
        been pushed at its processor-shared rate and has then propagated for ``latency_s``
        seconds (default: the link's own ``latency_s``; a shared uplink may pass the latency
        to the datacenter it is sending to). A size of 0 takes the latency only.
        """
        size_bytes = _check("size_bytes", size_bytes, positive=False)
        if latency_s is None:
            latency_s = self.latency_s
        else:
            latency_s = _check("latency_s", latency_s, positive=False)
        transfer = Transfer(self.env, size_bytes, latency_s)
        self.bytes_sent += size_bytes
        if size_bytes == 0:
            self._finish_sending(transfer)
            return transfer
        self._progress()
        self._remaining[transfer] = size_bytes
        self._schedule()
        return transfer

    def _progress(self) -> None:
        """Take every active transfer's remaining bytes from ``_updated_at`` to now."""
        now = self.env.now
        if self._remaining and now > self._updated_at:
            pushed = (now - self._updated_at) * self.bandwidth_bytes_per_s / len(self._remaining)
            for transfer in self._remaining:
                self._remaining[transfer] -= pushed
        self._updated_at = now

    def _schedule(self) -> None:
        """Wake up when the transfer with the fewest remaining bytes has been pushed."""
        self._generation += 1
        if not self._remaining:
            return
        generation = self._generation
        first = min(self._remaining, key=self._remaining.__getitem__)
        delay = max(self._remaining[first], 0.0) * len(self._remaining)
        delay /= self.bandwidth_bytes_per_s
        wake_up = self.env.timeout(delay)
        wake_up.callbacks.append(lambda _: self._wake(generation, first))

    def _wake(self, generation: int, first: Transfer) -> None:
        if generation != self._generation:
            return  # a transfer started or ended since this wake-up was scheduled
        self._progress()
        done = [
            transfer
            for transfer, left in self._remaining.items()
            if transfer is first or left <= EPSILON * transfer.size_bytes
        ]
        for transfer in done:
            del self._remaining[transfer]
            self._finish_sending(transfer)
        self._schedule()

    def _finish_sending(self, transfer: Transfer) -> None:
        transfer.sent.succeed(self.env.now)
        arrival = self.env.timeout(transfer.latency_s)
        arrival.callbacks.append(lambda _: self._arrive(transfer))

    def _arrive(self, transfer: Transfer) -> None:
        self.bytes_delivered += transfer.size_bytes
        transfer.succeed(self.env.now)
