"""Link: processor sharing, latency, counters and argument checks."""

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from simrec.network import Link

BANDWIDTH = 1e8  # bytes/s
LATENCY = 0.05  # s
SIZE = 1e9  # bytes


@pytest.fixture
def env():
    return simpy.Environment()


@pytest.fixture
def link(env):
    return Link(env, "a->b", BANDWIDTH, LATENCY)


def start_at(env, link, delay, size):
    """Start a transfer of ``size`` bytes after ``delay`` seconds; return its event."""
    yield env.timeout(delay)
    return (yield link.transfer(size))


def test_one_transfer_takes_latency_plus_size_over_bandwidth(env, link):
    done = link.transfer(SIZE)
    env.run()
    assert done.value == pytest.approx(LATENCY + SIZE / BANDWIDTH, rel=1e-9)
    assert done.sent.value == pytest.approx(SIZE / BANDWIDTH, rel=1e-9)
    assert link.bytes_sent == link.bytes_delivered == SIZE
    assert link.active == 0


def test_zero_bytes_take_latency_only(env, link):
    done = link.transfer(0)
    assert link.active == 0
    env.run()
    assert done.value == LATENCY


def test_latency_can_be_given_per_transfer(env, link):
    done = link.transfer(SIZE, latency_s=1.0)
    env.run()
    assert done.value == pytest.approx(1.0 + SIZE / BANDWIDTH, rel=1e-9)


def test_two_transfers_started_together_each_take_twice_as_long(env, link):
    first, second = link.transfer(SIZE), link.transfer(SIZE)
    assert link.active == 2
    env.run()
    expected = LATENCY + 2 * SIZE / BANDWIDTH
    assert first.value == second.value == pytest.approx(expected, rel=1e-9)


def test_transfer_starting_when_another_is_half_done(env, link):
    # A alone pushes SIZE/2 in SIZE/(2B). Then A and B share: A's other half takes
    # (SIZE/2)/(B/2) = SIZE/B, so A is pushed at 1.5 SIZE/B, when B has pushed SIZE/2 too.
    # B pushes its last SIZE/2 alone in SIZE/(2B): done at 2 SIZE/B.
    a = env.process(start_at(env, link, 0.0, SIZE))
    b = env.process(start_at(env, link, SIZE / BANDWIDTH / 2, SIZE))
    env.run()
    assert a.value == pytest.approx(1.5 * SIZE / BANDWIDTH + LATENCY, rel=1e-9)
    assert b.value == pytest.approx(2.0 * SIZE / BANDWIDTH + LATENCY, rel=1e-9)


def test_small_transfer_overtakes_a_big_one(env, link):
    # Both share until the small one is pushed at 2 s; the big one's last 8e8 bytes take 8 s.
    big, small = link.transfer(SIZE), link.transfer(SIZE / 10)
    env.run()
    assert small.value == pytest.approx(2 * SIZE / 10 / BANDWIDTH + LATENCY, rel=1e-9)
    expected = SIZE / BANDWIDTH + SIZE / 10 / BANDWIDTH + LATENCY
    assert big.value == pytest.approx(expected, rel=1e-9)


def test_identical_transfers_started_together_finish_at_the_same_instant(env):
    # Without the epsilon, one of the 33-byte transfers ends an ulp after the other.
    link = Link(env, "odd", bandwidth_bytes_per_s=7.0, latency_s=0.0)
    early = [link.transfer(size) for size in (1, 1, 33, 33)]
    env.run(until=7)
    late = [link.transfer(10) for _ in range(3)]
    env.run()
    assert early[0].value == early[1].value
    assert early[2].value == early[3].value
    assert late[0].value == late[1].value == late[2].value
    # The 1s end at 4/7; by 7 s each 33 has 9.5 bytes left, pushed at 7/5 bytes/s; then
    # each 10 has 0.5 left, pushed at 7/3: the last byte of the 98 leaves at 98/7 = 14 s.
    assert early[0].value == pytest.approx(4 / 7, rel=1e-9)
    assert early[3].value == pytest.approx(7 + 9.5 * 5 / 7, rel=1e-9)
    assert late[0].value == pytest.approx(14, rel=1e-9)


def test_counters(env, link):
    link.transfer(SIZE)
    link.transfer(2 * SIZE)
    assert (link.bytes_sent, link.bytes_delivered, link.active) == (3 * SIZE, 0, 2)
    env.run(until=2 * SIZE / BANDWIDTH + LATENCY + 1e-6)
    assert (link.bytes_delivered, link.active) == (SIZE, 1)
    env.run()
    assert (link.bytes_sent, link.bytes_delivered, link.active) == (3 * SIZE, 3 * SIZE, 0)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"bandwidth_bytes_per_s": 0}, "bandwidth_bytes_per_s"),
        ({"bandwidth_bytes_per_s": -1.0}, "bandwidth_bytes_per_s"),
        ({"bandwidth_bytes_per_s": float("nan")}, "bandwidth_bytes_per_s"),
        ({"latency_s": -0.1}, "latency_s"),
        ({"latency_s": float("inf")}, "latency_s"),
    ],
)
def test_bad_link_arguments(env, kwargs, name):
    args = {"bandwidth_bytes_per_s": BANDWIDTH, "latency_s": LATENCY, **kwargs}
    bad = repr(kwargs[name])
    with pytest.raises(ValueError, match=rf"{name} must be a finite number [>=]+ 0, got {bad}"):
        Link(env, "bad", **args)


def test_bad_transfer_arguments(link):
    with pytest.raises(ValueError, match=r"size_bytes must be a finite number >= 0, got -1"):
        link.transfer(-1)
    with pytest.raises(ValueError, match=r"latency_s must be a finite number >= 0, got -2"):
        link.transfer(1, latency_s=-2)
    assert link.bytes_sent == 0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 20), st.integers(1, 1000)),  # start time (s), size (bytes)
        min_size=1,
        max_size=30,
    )
)
def test_processor_sharing_properties(jobs):
    env = simpy.Environment()
    bandwidth, latency = 7.0, 0.25
    link = Link(env, "prop", bandwidth, latency)
    transfers = []

    def start(start_s, size):
        yield env.timeout(start_s)
        transfers.append((start_s, size, link.transfer(float(size))))

    for start_s, size in jobs:
        env.process(start(start_s, size))
    env.run()

    # Every transfer finishes, all bytes arrive, latency_s after they were pushed.
    assert link.active == 0
    assert link.bytes_delivered == link.bytes_sent == sum(size for _, size in jobs)
    for _, _, t in transfers:
        assert t.processed
        assert t.value == pytest.approx(t.sent.value + latency, rel=1e-12)

    # The link is busy (pushing some transfer) for exactly sum(bytes)/bandwidth seconds.
    total = sum(size for _, size in jobs) / bandwidth
    busy, covered = 0.0, float("-inf")
    for begin, end in sorted((start_s, t.sent.value) for start_s, _, t in transfers):
        busy += max(0.0, end - max(begin, covered))
        covered = max(covered, end)
    assert busy == pytest.approx(total, rel=1e-9)

    # Work conservation: the last byte leaves when it would on a first-come-first-served
    # link; if the link is never idle, that is sum(bytes)/bandwidth after the first start.
    first_start = min(start_s for start_s, _ in jobs)
    finish, idle = first_start, False
    for start_s, size in sorted(jobs):
        idle = idle or start_s > finish
        finish = max(finish, start_s) + size / bandwidth
    last = max(t.sent.value for _, _, t in transfers)
    assert last == pytest.approx(finish, rel=1e-9)
    if not idle:
        assert last - first_start == pytest.approx(total, rel=1e-9)

    # Transfers started together finish in order of size; equal sizes at the same instant.
    for start_s in {s for s, _ in jobs}:
        together = sorted((size, t.sent.value) for s, size, t in transfers if s == start_s)
        for (size_a, sent_a), (size_b, sent_b) in zip(together, together[1:], strict=False):
            assert sent_a <= sent_b
            if size_a == size_b:
                assert sent_a == sent_b
