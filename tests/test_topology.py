"""Topologies: closed-form arrival times, bytes moved and argument checks."""

import pytest
import simpy

from simrec.network import TOPOLOGIES, build_topology

B = 1e8  # uplink bandwidth, bytes/s
L = 0.05  # latency, s
S = 1e9  # payload, bytes
T = S / B  # time to push one payload through an idle uplink, s


@pytest.fixture
def env():
    return simpy.Environment()


def dcs(n):
    return [f"dc{i}" for i in range(n)]


def arrivals(env, kind, n, latency=L, **options):
    """Broadcast S bytes from "train" to n datacenters; return arrival times and topology."""
    topology = build_topology(kind, env, "train", dcs(n), B, latency, **options)
    events = topology.broadcast(S, dcs(n))
    env.run()
    return {dc: event.value for dc, event in events.items()}, topology


def moved(topology):
    return sum(link.bytes_delivered for link in topology.links.values())


@pytest.mark.parametrize("n", [1, 2, 5])
def test_star_shares_one_uplink(env, n):
    times, star = arrivals(env, "star", n)
    assert list(star.links) == ["train.uplink"]
    assert times == {dc: pytest.approx(n * T + L, rel=1e-9) for dc in dcs(n)}
    assert moved(star) == pytest.approx(n * S, rel=1e-9)


def test_star_with_latency_per_datacenter(env):
    latency = {"dc0": 0.01, "dc1": 0.2, "dc2": 1.5}
    times, _ = arrivals(env, "star", 3, latency=latency)
    assert times == {dc: pytest.approx(3 * T + latency[dc], rel=1e-9) for dc in dcs(3)}


@pytest.mark.parametrize("kind", sorted(TOPOLOGIES))
def test_colocated_serving_gets_the_payload_at_once(env, kind):
    topology = build_topology(kind, env, "train", ["train", "dc0"], B, {"dc0": L})
    events = topology.broadcast(S, ["train", "dc0"])
    env.run()
    assert events["train"].value == 0
    assert events["dc0"].value == pytest.approx(T + L, rel=1e-9)
    assert moved(topology) == pytest.approx(S, rel=1e-9)


def test_broadcast_to_some_datacenters(env):
    star = build_topology("star", env, "train", dcs(4), B, L)
    events = star.broadcast(S, ["dc3", "dc1"])
    env.run()
    assert list(events) == ["dc3", "dc1"]
    assert events["dc3"].value == pytest.approx(2 * T + L, rel=1e-9)


def test_relay_chain(env):
    times, chain = arrivals(env, "relay_tree", 3, fanout=1)
    assert times == {f"dc{i}": pytest.approx((i + 1) * (T + L), rel=1e-9) for i in range(3)}
    assert sorted(chain.links) == ["dc0.uplink", "dc1.uplink", "dc2.uplink", "train.uplink"]
    assert chain.links["dc2.uplink"].bytes_sent == 0


def test_relay_binary_tree(env):
    # train -> dc0, dc1 sharing its uplink; dc0 -> dc2 alone on dc0's uplink.
    times, tree = arrivals(env, "relay_tree", 3, fanout=2)
    assert times["dc0"] == pytest.approx(2 * T + L, rel=1e-9)
    assert times["dc1"] == pytest.approx(2 * T + L, rel=1e-9)
    assert times["dc2"] == pytest.approx(3 * T + 2 * L, rel=1e-9)
    assert moved(tree) == pytest.approx(3 * S, rel=1e-9)


def test_relay_tree_is_breadth_first(env):
    # train -> dc0, dc1; dc0 -> dc2, dc3; dc1 -> dc4.
    times, _ = arrivals(env, "relay_tree", 5, fanout=2, latency=0.0)
    assert times == {
        "dc0": pytest.approx(2 * T, rel=1e-9),
        "dc1": pytest.approx(2 * T, rel=1e-9),
        "dc2": pytest.approx(4 * T, rel=1e-9),
        "dc3": pytest.approx(4 * T, rel=1e-9),
        "dc4": pytest.approx(3 * T, rel=1e-9),
    }


def test_p2p_two_datacenters_two_chunks(env):
    # c = S/2 takes T/2 to push. train pushes chunk 0 to dc0 on [0, T/2], chunk 1 to dc1 on
    # [T/2, T]. dc0 forwards chunk 0 on [T/2 + L, T + L]: dc1 holds both at T + 2L.
    # dc1 forwards chunk 1 on [T + L, 1.5T + L]: dc0 holds both at 1.5T + 2L.
    times, p2p = arrivals(env, "p2p", 2, chunks=2)
    assert times["dc0"] == pytest.approx(1.5 * T + 2 * L, rel=1e-9)
    assert times["dc1"] == pytest.approx(T + 2 * L, rel=1e-9)
    assert moved(p2p) == pytest.approx(2 * S, rel=1e-9)


@pytest.mark.parametrize("n", [3, 4, 8])
@pytest.mark.parametrize("chunks", [2, 3, 16])  # one chunk: a slower relay
def test_p2p_beats_star_moving_the_same_bytes(n, chunks):
    star_times, star = arrivals(simpy.Environment(), "star", n)
    p2p_times, p2p = arrivals(simpy.Environment(), "p2p", n, chunks=chunks)
    assert max(p2p_times.values()) < min(star_times.values())
    assert moved(p2p) == pytest.approx(moved(star), rel=1e-9)
    assert moved(p2p) == pytest.approx(n * S, rel=1e-9)
    for link in p2p.links.values():
        assert link.bytes_delivered == pytest.approx(link.bytes_sent, rel=1e-9)
        assert link.active == 0


@pytest.mark.parametrize("kind", sorted(TOPOLOGIES))
def test_every_kind_delivers_everywhere(env, kind):
    times, topology = arrivals(env, kind, 6)
    assert all(t >= T + L for t in times.values())
    assert moved(topology) == pytest.approx(6 * S, rel=1e-9)
    for link in topology.links.values():
        assert link.bytes_delivered == link.bytes_sent


@pytest.mark.parametrize("kind", sorted(TOPOLOGIES))
def test_empty_payload_takes_latency_only(env, kind):
    topology = build_topology(kind, env, "train", dcs(3), B, L, fanout=1)
    events = topology.broadcast(0, dcs(3))
    env.run()
    hops = {"star": [1, 1, 1], "relay_tree": [1, 2, 3], "p2p": [2, 2, 2]}[kind]
    assert [events[dc].value for dc in dcs(3)] == pytest.approx([h * L for h in hops])


def test_unknown_kind_lists_the_known_ones(env):
    with pytest.raises(ValueError, match=r"'ring'.*\['p2p', 'relay_tree', 'star'\]"):
        build_topology("ring", env, "train", dcs(2), B, L)


@pytest.mark.parametrize(
    ("kind", "kwargs", "message"),
    [
        ("star", {"uplink_bandwidth_bytes_per_s": 0}, r"uplink_bandwidth_bytes_per_s .*got 0"),
        ("star", {"latency_s": -1.0}, r"latency_s must be .*>= 0, got -1.0"),
        ("star", {"latency_s": {"dc0": 0.1}}, r"latency_s has no latency for .*'dc1'"),
        ("star", {"latency_s": {"dc0": 0.1, "dc1": -2}}, r"latency_s\['dc1'\] .*got -2"),
        ("star", {"inference_dcs": ["dc0", "dc0"]}, r"inference_dcs must not repeat .*'dc0'"),
        ("relay_tree", {"fanout": 0}, r"fanout must be an integer >= 1, got 0"),
        ("p2p", {"chunks": 0}, r"chunks must be an integer >= 1, got 0"),
        ("p2p", {"chunks": 2.5}, r"chunks must be an integer >= 1, got 2.5"),
    ],
)
def test_bad_topology_arguments(env, kind, kwargs, message):
    args = {
        "training_dc": "train",
        "inference_dcs": dcs(2),
        "uplink_bandwidth_bytes_per_s": B,
        "latency_s": L,
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        build_topology(kind, env, **args)


def test_bad_broadcast_arguments(env):
    star = build_topology("star", env, "train", dcs(2), B, L)
    with pytest.raises(ValueError, match=r"size_bytes must be .*>= 0, got -5"):
        star.broadcast(-5, dcs(2))
    with pytest.raises(ValueError, match=r"unknown destinations \['elsewhere'\]"):
        star.broadcast(S, ["dc0", "elsewhere"])
    with pytest.raises(ValueError, match=r"destinations must not repeat"):
        star.broadcast(S, ["dc0", "dc0"])
