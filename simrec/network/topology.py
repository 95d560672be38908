"""How one payload travels from the training datacenter to the inference datacenters.

Every datacenter sends through one uplink :class:`~simrec.network.link.Link` of
``uplink_bandwidth_bytes_per_s`` bytes/s, shared by everything it sends at once. A hop into
datacenter ``dc`` then takes ``latency_s`` seconds: one number for every hop, or a mapping
from datacenter name to the latency of any hop into that datacenter.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from functools import partial
from typing import Protocol

import simpy

from simrec.network.link import Link, _check


class Topology(Protocol):
    """Disseminates one payload from the training datacenter to inference datacenters."""

    links: dict[str, Link]  # every link it owns, by name

    def broadcast(self, size_bytes: float, destinations: Sequence[str]) -> dict[str, simpy.Event]:
        """One event per destination datacenter, succeeding (value = arrival time, seconds)
        when that datacenter holds the whole payload of ``size_bytes`` bytes."""
        ...


class _Base:
    """Shared set-up: uplinks, latencies and the checks on destinations."""

    options: tuple[str, ...] = ()  # extra keyword arguments build_topology passes on

    def __init__(
        self,
        env: simpy.Environment,
        training_dc: str,
        inference_dcs: Sequence[str],
        uplink_bandwidth_bytes_per_s: float,
        latency_s: float | Mapping[str, float],
    ) -> None:
        self.env = env
        self.training_dc = training_dc
        self.inference_dcs = _unique("inference_dcs", inference_dcs)
        self.uplink_bandwidth_bytes_per_s = _check(
            "uplink_bandwidth_bytes_per_s", uplink_bandwidth_bytes_per_s, positive=True
        )
        remote = [dc for dc in self.inference_dcs if dc != training_dc]
        if isinstance(latency_s, Mapping):
            missing = [dc for dc in remote if dc not in latency_s]
            if missing:
                raise ValueError(f"latency_s has no latency for datacenters {missing}")
            self._latency = {
                dc: _check(f"latency_s[{dc!r}]", latency_s[dc], positive=False) for dc in remote
            }
        else:
            _check("latency_s", latency_s, positive=False)
            self._latency = dict.fromkeys(remote, latency_s)
        self.links: dict[str, Link] = {}

    def _add_uplink(self, dc: str) -> Link:
        # The latency is that of the datacenter sent to, so it is given per transfer.
        link = Link(self.env, f"{dc}.uplink", self.uplink_bandwidth_bytes_per_s, 0.0)
        self.links[link.name] = link
        return link

    def uplink(self, dc: str) -> Link:
        """The link datacenter ``dc`` sends through."""
        return self.links[f"{dc}.uplink"]

    def latency_to(self, dc: str) -> float:
        """Latency (seconds) of a hop into inference datacenter ``dc``."""
        return self._latency[dc]

    def broadcast(self, size_bytes: float, destinations: Sequence[str]) -> dict[str, simpy.Event]:
        """One event per destination datacenter, succeeding (value = arrival time, seconds)
        when that datacenter holds the whole payload of ``size_bytes`` bytes.

        A destination that is the training datacenter itself holds it at once.
        """
        _check("size_bytes", size_bytes, positive=False)
        destinations = _unique("destinations", destinations)
        unknown = [dc for dc in destinations if dc != self.training_dc and dc not in self._latency]
        if unknown:
            known = [self.training_dc, *self._latency]
            raise ValueError(f"unknown destinations {unknown}; known datacenters: {known}")
        remote = [dc for dc in destinations if dc != self.training_dc]
        arrivals = self._send(size_bytes, remote) if remote else {}
        local = self.env.event().succeed(self.env.now)
        return {dc: arrivals.get(dc, local) for dc in destinations}

    def _send(self, size_bytes: float, remote: list[str]) -> dict[str, simpy.Event]:
        raise NotImplementedError


class Star(_Base):
    """The training datacenter sends one copy to each destination through its uplink."""

    def __init__(self, env, training_dc, inference_dcs, uplink_bandwidth_bytes_per_s, latency_s):
        super().__init__(env, training_dc, inference_dcs, uplink_bandwidth_bytes_per_s, latency_s)
        self._add_uplink(training_dc)

    def _send(self, size_bytes, remote):
        uplink = self.uplink(self.training_dc)
        return {dc: uplink.transfer(size_bytes, self.latency_to(dc)) for dc in remote}


class RelayTree(_Base):
    """A tree of relays, breadth first in the order of the destinations, ``fanout`` children
    per node, rooted at the training datacenter. A datacenter forwards the payload to its
    children through its own uplink once it holds all of it."""

    options = ("fanout",)

    def __init__(
        self, env, training_dc, inference_dcs, uplink_bandwidth_bytes_per_s, latency_s, fanout=2
    ):
        super().__init__(env, training_dc, inference_dcs, uplink_bandwidth_bytes_per_s, latency_s)
        if not (isinstance(fanout, int) and fanout >= 1):
            raise ValueError(f"fanout must be an integer >= 1, got {fanout!r}")
        self.fanout = fanout
        for dc in [training_dc, *self._latency]:
            self._add_uplink(dc)

    def _send(self, size_bytes, remote):
        nodes = [self.training_dc, *remote]
        holds = {self.training_dc: self.env.event().succeed(self.env.now)}
        for i, dc in enumerate(remote, start=1):
            parent = nodes[(i - 1) // self.fanout]
            holds[dc] = self.env.event()
            link = self.uplink(parent)
            latency = self.latency_to(dc)
            self.env.process(_hop(self.env, link, size_bytes, latency, holds[parent], holds[dc]))
        return holds


class PeerToPeer(_Base):
    """Ekko-like dissemination: the payload is cut into ``chunks`` equal chunks. The training
    datacenter sends them one after the other, chunk ``j`` to destination ``j mod N``; a
    destination forwards each chunk it gets from the training datacenter to every other
    destination through its own uplink."""

    options = ("chunks",)

    def __init__(
        self, env, training_dc, inference_dcs, uplink_bandwidth_bytes_per_s, latency_s, chunks=16
    ):
        super().__init__(env, training_dc, inference_dcs, uplink_bandwidth_bytes_per_s, latency_s)
        if not (isinstance(chunks, int) and chunks >= 1):
            raise ValueError(f"chunks must be an integer >= 1, got {chunks!r}")
        self.chunks = chunks
        for dc in [training_dc, *self._latency]:
            self._add_uplink(dc)

    def _send(self, size_bytes, remote):
        chunk_bytes = size_bytes / self.chunks
        holds = {dc: self.env.event() for dc in remote}
        missing = dict.fromkeys(remote, self.chunks)

        def receive(dc: str, _: simpy.Event) -> None:
            missing[dc] -= 1
            if missing[dc] == 0:
                holds[dc].succeed(self.env.now)

        def forward(owner: str, transfer: simpy.Event) -> None:
            receive(owner, transfer)
            for peer in remote:
                if peer != owner:
                    relay = self.uplink(owner).transfer(chunk_bytes, self.latency_to(peer))
                    relay.callbacks.append(partial(receive, peer))

        owners = [remote[j % len(remote)] for j in range(self.chunks)]
        latencies = [self.latency_to(owner) for owner in owners]
        uplink = self.uplink(self.training_dc)
        self.env.process(_seed(self.env, uplink, chunk_bytes, owners, latencies, forward))
        return holds


def _hop(
    env: simpy.Environment,
    link: Link,
    size_bytes: float,
    latency_s: float,
    after: simpy.Event,
    done: simpy.Event,
) -> Generator[simpy.Event, object, None]:
    """Once ``after`` has happened, send the payload over ``link``; then trigger ``done``."""
    yield after
    arrival = yield link.transfer(size_bytes, latency_s)
    done.succeed(arrival)


def _seed(
    env: simpy.Environment,
    uplink: Link,
    chunk_bytes: float,
    owners: list[str],
    latencies: list[float],
    on_arrival: Callable[[str, simpy.Event], None],
) -> Generator[simpy.Event, object, None]:
    """Push chunk ``j`` to ``owners[j]`` (latency ``latencies[j]``), one after the other;
    call ``on_arrival(owner, transfer)`` when a chunk arrives."""
    for owner, latency in zip(owners, latencies, strict=True):
        transfer = uplink.transfer(chunk_bytes, latency)
        transfer.callbacks.append(partial(on_arrival, owner))
        yield transfer.sent


def _unique(name: str, dcs: Sequence[str]) -> list[str]:
    if isinstance(dcs, str):
        raise ValueError(f"{name} must be a sequence of datacenter names, got the string {dcs!r}")
    dcs = list(dcs)
    duplicates = sorted({dc for dc in dcs if dcs.count(dc) > 1})
    if duplicates:
        raise ValueError(f"{name} must not repeat datacenters, got {duplicates} more than once")
    return dcs


TOPOLOGIES: dict[str, type[_Base]] = {"star": Star, "relay_tree": RelayTree, "p2p": PeerToPeer}


def build_topology(
    kind: str,
    env: simpy.Environment,
    training_dc: str,
    inference_dcs: Sequence[str],
    uplink_bandwidth_bytes_per_s: float,
    latency_s: float | Mapping[str, float],
    fanout: int = 2,
    chunks: int = 16,
) -> Topology:
    """Build the topology registered as ``kind`` in :data:`TOPOLOGIES`.

    ``fanout`` is used by ``relay_tree`` only, ``chunks`` by ``p2p`` only.
    """
    if kind not in TOPOLOGIES:
        raise ValueError(f"unknown topology kind {kind!r}; known kinds: {sorted(TOPOLOGIES)}")
    cls = TOPOLOGIES[kind]
    options = {"fanout": fanout, "chunks": chunks}
    extra = {name: options[name] for name in cls.options}
    return cls(env, training_dc, inference_dcs, uplink_bandwidth_bytes_per_s, latency_s, **extra)
