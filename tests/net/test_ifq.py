"""Tests for the interface send queue and its disciplines (trionet.lowlevel.IfAltq and friends)."""

from __future__ import annotations

import errno
import itertools
from collections import deque

import attrs
import pytest
import trio
import trio.testing
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from trionet import NetError
from trionet.lowlevel import (
    FAIRQ,
    FIFO,
    PRIQ,
    ClassStatistics,
    IfAltq,
    IfqStatistics,
    TokenBucket,
)

_serial = itertools.count()


def packet(size: int = 100) -> bytearray:
    """A distinct packet object of ``size`` bytes (compared by identity)."""
    pkt = bytearray(size)
    pkt[:8] = next(_serial).to_bytes(8, "big")
    return pkt


class FakeClock:
    """A settable clock for token buckets."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def drain(q: IfAltq) -> list[bytearray]:
    out = []
    while (pkt := q.dequeue()) is not None:
        out.append(pkt)
    return out


################################################################
# Model-based tests
################################################################


class FifoMachine(RuleBasedStateMachine):
    """IfAltq with FIFO against a deque and a limit."""

    def __init__(self) -> None:
        super().__init__()
        self.q = IfAltq(maxlen=4)
        self.model: deque[bytearray] = deque()
        self.maxlen = 4
        self.drops = self.purged = self.dequeued = self.enqueued = self.prepended = 0
        self.polled: bytearray | None = None

    @rule()
    def enqueue(self) -> None:
        pkt = packet()
        full = len(self.model) >= self.maxlen
        assert self.q.enqueue(pkt) is not full
        if full:
            self.drops += 1
        else:
            self.model.append(pkt)
            self.enqueued += 1
            assert len(self.q) <= self.q.maxlen  # only prepend exceeds it

    @rule()
    def dequeue(self) -> None:
        got = self.q.dequeue()
        if not self.model:
            assert got is None
            return
        if self.polled is not None:
            assert got is self.polled
        assert got is self.model.popleft()
        self.polled = None
        self.dequeued += 1

    @rule()
    def poll(self) -> None:
        got = self.q.poll()
        if not self.model:
            assert got is None
            return
        assert got is self.model[0]
        if self.polled is not None:
            assert got is self.polled
        self.polled = got

    @rule()
    def prepend(self) -> None:
        pkt = packet()
        self.q.prepend(pkt)
        self.model.appendleft(pkt)
        self.prepended += 1
        self.polled = None

    @rule()
    def purge(self) -> None:
        assert self.q.purge() == len(self.model)
        self.purged += len(self.model)
        self.model.clear()
        self.polled = None

    @rule(maxlen=st.integers(min_value=1, max_value=6))
    def set_maxlen(self, maxlen: int) -> None:
        self.q.maxlen = maxlen
        self.maxlen = maxlen

    @invariant()
    def books_balance(self) -> None:
        stats = self.q.statistics()
        assert len(self.q) == stats.len == len(self.model)
        assert self.q.is_empty() is (not self.model)
        assert stats.drops == self.drops
        assert stats.purged == self.purged
        assert stats.dequeued == self.dequeued
        assert stats.enqueued == self.enqueued
        assert stats.prepended == self.prepended
        assert stats.maxlen == self.maxlen
        assert stats.discipline == "fifo"
        assert stats.classes == ()


TestFifoMachine = FifoMachine.TestCase
TestFifoMachine.settings = settings(max_examples=40, stateful_step_count=30)


NCLASSES = 4
QLIMIT = 3


class PriqMachine(RuleBasedStateMachine):
    """IfAltq with PRIQ against per-class deques: highest class first, FIFO within."""

    def __init__(self) -> None:
        super().__init__()
        self.q = IfAltq(maxlen=8, discipline=PRIQ(nclasses=NCLASSES, qlimit=QLIMIT))
        self.classes: list[deque[bytearray]] = [deque() for _ in range(NCLASSES)]
        self.head: deque[bytearray] = deque()  # prepended, then the polled packet
        self.drops = 0
        self.class_drops = [0] * NCLASSES

    def _len(self) -> int:
        return len(self.head) + sum(map(len, self.classes))

    def _take(self) -> bytearray | None:
        for cl in reversed(self.classes):
            if cl:
                return cl.popleft()
        return None

    def _enqueue(self, prio: int) -> None:
        pkt = packet()
        cls = min(max(prio, 0), NCLASSES - 1)
        if self._len() >= 8:
            expected = False
            self.drops += 1
        elif len(self.classes[cls]) >= QLIMIT:
            expected = False
            self.drops += 1
            self.class_drops[cls] += 1
        else:
            expected = True
            self.classes[cls].append(pkt)
        assert self.q.enqueue(pkt, prio) is expected

    def _dequeue(self) -> bytearray | None:
        expected = self.head.popleft() if self.head else self._take()
        got = self.q.dequeue()
        assert got is expected
        return got

    def _poll(self) -> bytearray | None:
        if not self.head:
            pkt = self._take()
            if pkt is not None:
                self.head.append(pkt)
        got = self.q.poll()
        assert got is (self.head[0] if self.head else None)
        return got

    @rule(prio=st.integers(min_value=-2, max_value=NCLASSES + 2))
    def enqueue(self, prio: int) -> None:
        self._enqueue(prio)

    @rule()
    def dequeue(self) -> None:
        self._dequeue()

    @rule()
    def poll(self) -> None:
        self._poll()

    @rule(prios=st.lists(st.integers(min_value=0, max_value=NCLASSES - 1), max_size=3))
    def poll_enqueue_dequeue(self, prios: list[int]) -> None:
        # POLL -> REMOVE returns the polled packet even if higher classes
        # received packets in between.
        polled = self._poll()
        for prio in prios:
            self._enqueue(prio)
        if polled is not None:
            assert self._dequeue() is polled

    @rule()
    def prepend(self) -> None:
        pkt = packet()
        self.q.prepend(pkt)
        self.head.appendleft(pkt)

    @rule()
    def purge(self) -> None:
        assert self.q.purge() == self._len()
        self.head.clear()
        for cl in self.classes:
            cl.clear()

    @invariant()
    def lengths_and_drops(self) -> None:
        stats = self.q.statistics()
        assert stats.len == len(self.q) == self._len()
        assert stats.drops == self.drops
        assert [c.drops for c in stats.classes] == self.class_drops
        # A polled packet has left its class; the rest are in their classes.
        assert [c.len for c in stats.classes] == [len(cl) for cl in self.classes]
        assert stats.enqueued + stats.prepended - stats.dequeued - stats.purged == stats.len


TestPriqMachine = PriqMachine.TestCase
TestPriqMachine.settings = settings(max_examples=40, stateful_step_count=30)


################################################################
# FIFO and the queue proper
################################################################


def test_fifo_drops_at_maxlen_and_counts_without_raising() -> None:
    q = IfAltq(maxlen=2)
    a, b, c = packet(), packet(), packet()
    assert q.enqueue(a) and q.enqueue(b)
    assert q.enqueue(c) is False
    assert q.enqueue(c) is False
    assert q.statistics().drops == 2
    assert drain(q) == [a, b]
    assert q.dequeue() is None


def test_default_maxlen_is_ifq_maxlen_and_discipline_fifo() -> None:
    q = IfAltq()
    assert q.maxlen == 50
    assert isinstance(q.discipline, FIFO)
    assert q.started is False
    assert q.tbr is None
    assert q.poll() is None


def test_poll_then_dequeue_returns_the_same_object_and_poll_is_idempotent() -> None:
    q = IfAltq()
    a, b = packet(), packet()
    q.enqueue(a)
    assert q.poll() is a
    assert q.poll() is a
    q.enqueue(b)
    assert len(q) == 2
    assert q.dequeue() is a
    assert q.dequeue() is b


def test_prepend_comes_first_ignores_maxlen_and_is_lifo() -> None:
    q = IfAltq(maxlen=1)
    a, b, c = packet(), packet(), packet()
    q.enqueue(a)
    q.prepend(b)
    q.prepend(c)
    assert len(q) == 3
    assert q.enqueue(packet()) is False
    assert q.poll() is c
    assert drain(q) == [c, b, a]
    stats = q.statistics()
    assert (stats.enqueued, stats.prepended, stats.dequeued) == (1, 2, 3)


def test_prepend_rejects_none() -> None:
    with pytest.raises(TypeError, match="None"):
        IfAltq().prepend(None)


def test_prepended_packet_comes_out_before_the_polled_one() -> None:
    q = IfAltq()
    a, b = packet(), packet()
    q.enqueue(a)
    assert q.poll() is a
    q.prepend(b)
    assert q.poll() is b
    assert drain(q) == [b, a]


def test_purge_counts_purged_not_drops_and_includes_slots() -> None:
    q = IfAltq(maxlen=3)
    for _ in range(4):
        q.enqueue(packet())
    q.poll()
    q.prepend(packet())
    q.started = True
    assert q.purge() == 4
    stats = q.statistics()
    assert (stats.len, stats.purged, stats.drops) == (0, 4, 1)
    assert q.is_empty() and q.dequeue() is None and q.poll() is None
    assert q.started is True  # the interlock belongs to the start logic
    assert q.purge() == 0


@pytest.mark.parametrize("bad", [0, -1])
def test_maxlen_below_one_is_a_value_error(bad: int) -> None:
    q = IfAltq()
    with pytest.raises(ValueError, match="at least 1"):
        q.maxlen = bad
    assert q.maxlen == 50
    with pytest.raises(ValueError, match="at least 1"):
        IfAltq(maxlen=bad)


@pytest.mark.parametrize("bad", [1.5, "3", True, None])
def test_maxlen_must_be_an_int(bad: object) -> None:
    with pytest.raises(TypeError):
        IfAltq().maxlen = bad  # type: ignore[assignment]


def test_lowering_maxlen_drops_nothing_but_refuses_until_drained() -> None:
    q = IfAltq(maxlen=5)
    for _ in range(4):
        q.enqueue(packet())
    q.maxlen = 2
    assert len(q) == 4
    assert q.enqueue(packet()) is False
    q.dequeue()
    q.dequeue()
    assert q.enqueue(packet()) is False
    q.dequeue()
    assert q.enqueue(packet()) is True


def test_set_discipline_on_a_non_empty_queue_is_ebusy() -> None:
    q = IfAltq()
    q.enqueue(packet())
    with pytest.raises(NetError, match="EBUSY") as info:
        q.set_discipline(PRIQ())
    assert info.value.errno == errno.EBUSY
    assert isinstance(info.value, OSError)
    assert isinstance(q.discipline, FIFO)
    # A polled packet still counts as queued.
    q.poll()
    with pytest.raises(NetError):
        q.set_discipline(PRIQ())
    q.purge()
    q.set_discipline(PRIQ())
    assert q.statistics().discipline == "priq"


def test_set_discipline_refuses_a_discipline_holding_packets() -> None:
    d = FIFO()
    d.enqueue(packet(), 0, 0)
    with pytest.raises(ValueError, match="already holds"):
        IfAltq(discipline=d)


def test_statistics_is_a_frozen_snapshot_with_all_fields() -> None:
    q = IfAltq(maxlen=2, discipline=PRIQ(nclasses=2, qlimit=1))
    q.enqueue(packet(), 1)
    q.enqueue(packet(), 1)  # class limit
    q.enqueue(packet(), 0)
    q.enqueue(packet(), 0)  # total limit
    q.dequeue()
    stats = q.statistics()
    assert stats == IfqStatistics(
        len=1,
        maxlen=2,
        enqueued=2,
        dequeued=1,
        drops=2,
        purged=0,
        prepended=0,
        discipline="priq",
        classes=(
            ClassStatistics(prio=0, len=1, enqueued=1, dequeued=0, drops=0),
            ClassStatistics(prio=1, len=0, enqueued=1, dequeued=1, drops=1),
        ),
    )
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        stats.len = 5  # type: ignore[misc]
    q.enqueue(packet(), 1)
    assert stats.len == 1  # a snapshot does not change


def test_reprs_are_short() -> None:
    assert repr(IfAltq()) == "<IfAltq fifo len=0/50>"
    assert repr(PRIQ(nclasses=2)) == "<PRIQ nclasses=2 len=0>"
    assert repr(FAIRQ()) == "<FAIRQ nclasses=16 nbuckets=16 len=0>"
    assert "rate=1000B/s" in repr(TokenBucket(1000, 10, clock=FakeClock()))


################################################################
# PRIQ
################################################################


def test_priq_serves_the_highest_class_first_and_fifo_within() -> None:
    q = IfAltq(discipline=PRIQ(nclasses=8))
    lo1, hi1, lo2, mid, hi2 = (packet() for _ in range(5))
    for pkt, prio in [(lo1, 0), (hi1, 7), (lo2, 0), (mid, 3), (hi2, 7)]:
        assert q.enqueue(pkt, prio)
    assert drain(q) == [hi1, hi2, mid, lo1, lo2]


def test_priq_clamps_out_of_range_prio() -> None:
    q = IfAltq(discipline=PRIQ(nclasses=4))
    neg, top, huge, zero = packet(), packet(), packet(), packet()
    q.enqueue(neg, -5)
    q.enqueue(top, 3)
    q.enqueue(huge, 99)
    q.enqueue(zero, 0)
    lens = [c.len for c in q.statistics().classes]
    assert lens == [2, 0, 0, 2]
    # Clamping keeps the order monotonic: 99 is never served after 3's peers.
    assert drain(q) == [top, huge, neg, zero]


def test_priq_non_int_prio_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        PRIQ().enqueue(packet(), 1.5, 0)  # type: ignore[arg-type]


def test_priq_qlimit_is_per_class() -> None:
    q = IfAltq(discipline=PRIQ(nclasses=2, qlimit=2))
    assert [q.enqueue(packet(), 1) for _ in range(3)] == [True, True, False]
    assert [q.enqueue(packet(), 0) for _ in range(3)] == [True, True, False]
    assert [c.drops for c in q.statistics().classes] == [1, 1]
    assert q.statistics().drops == 2


def test_priq_poll_then_remove_survives_a_higher_priority_arrival() -> None:
    q = IfAltq(discipline=PRIQ())
    low, high = packet(), packet()
    q.enqueue(low, 1)
    assert q.poll() is low
    q.enqueue(high, 15)
    assert q.poll() is low
    assert q.dequeue() is low
    assert q.dequeue() is high


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"nclasses": 0}, ValueError),
        ({"qlimit": 0}, ValueError),
        ({"nclasses": 2.0}, TypeError),
        ({"qlimit": "5"}, TypeError),
    ],
)
def test_priq_rejects_bad_sizes(kwargs: dict[str, object], exc: type[Exception]) -> None:
    with pytest.raises(exc):
        PRIQ(**kwargs)  # type: ignore[arg-type]


################################################################
# FAIRQ
################################################################


def test_fairq_alternates_two_flows_in_one_class() -> None:
    q = IfAltq(discipline=FAIRQ())
    a = [packet() for _ in range(4)]
    b = [packet() for _ in range(4)]
    for pkt in a:
        q.enqueue(pkt, 2, flow=1)
    for pkt in b:
        q.enqueue(pkt, 2, flow=2)
    assert drain(q) == [a[0], b[0], a[1], b[1], a[2], b[2], a[3], b[3]]


def test_fairq_round_robin_over_three_flows_with_uneven_backlogs() -> None:
    q = IfAltq(discipline=FAIRQ())
    a = [packet() for _ in range(3)]
    b = [packet()]
    c = [packet() for _ in range(2)]
    for flow, pkts in ((10, a), (11, b), (12, c)):
        for pkt in pkts:
            q.enqueue(pkt, 0, flow)
    assert drain(q) == [a[0], b[0], c[0], a[1], c[1], a[2]]


def test_fairq_flows_sharing_a_bucket_share_its_fifo() -> None:
    q = IfAltq(discipline=FAIRQ(nbuckets=4))
    x1, y1, x2 = packet(), packet(), packet()
    q.enqueue(x1, 0, flow=1)
    q.enqueue(y1, 0, flow=5)  # 5 & 3 == 1: same bucket
    q.enqueue(x2, 0, flow=1)
    assert drain(q) == [x1, y1, x2]


def test_fairq_new_flow_joins_the_tail_of_the_ring() -> None:
    q = IfAltq(discipline=FAIRQ())
    a = [packet() for _ in range(3)]
    b = [packet() for _ in range(3)]
    c = packet()
    for x, y in zip(a, b, strict=True):
        q.enqueue(x, 0, 1)
        q.enqueue(y, 0, 2)
    assert q.dequeue() is a[0]
    q.enqueue(c, 0, 3)  # behind b, which is waiting for its turn
    assert drain(q) == [b[0], a[1], c, b[1], a[2], b[2]]


def test_fairq_serves_the_higher_class_first() -> None:
    q = IfAltq(discipline=FAIRQ(nclasses=4))
    lo, hi = packet(), packet()
    q.enqueue(lo, 1, 7)
    q.enqueue(hi, 3, 7)
    assert drain(q) == [hi, lo]


def test_fairq_qlimit_is_per_bucket() -> None:
    q = IfAltq(discipline=FAIRQ(qlimit=2))
    assert [q.enqueue(packet(), 0, 1) for _ in range(3)] == [True, True, False]
    assert q.enqueue(packet(), 0, 2) is True
    stats = q.statistics()
    assert stats.classes[0] == ClassStatistics(prio=0, len=3, enqueued=3, dequeued=0, drops=1)
    assert stats.drops == 1


def test_fairq_poll_then_remove_and_purge() -> None:
    q = IfAltq(discipline=FAIRQ())
    a, b, c = packet(), packet(), packet()
    q.enqueue(a, 0, 1)
    q.enqueue(b, 0, 2)
    assert q.poll() is a
    q.enqueue(c, 5, 3)
    assert q.dequeue() is a
    assert q.dequeue() is c
    assert q.purge() == 1
    assert len(q.discipline) == 0
    q.enqueue(a, 0, 1)
    assert drain(q) == [a]


def test_fairq_clamps_prio_and_handles_negative_flows() -> None:
    q = IfAltq(discipline=FAIRQ(nclasses=2))
    a, b = packet(), packet()
    q.enqueue(a, -3, flow=-1)
    q.enqueue(b, 40, flow=2**70)
    assert [c.len for c in q.statistics().classes] == [1, 1]
    assert drain(q) == [b, a]


@pytest.mark.parametrize("nbuckets", [0, 3, 12, 100])
def test_fairq_nbuckets_must_be_a_power_of_two(nbuckets: int) -> None:
    with pytest.raises(ValueError):
        FAIRQ(nbuckets=nbuckets)


################################################################
# Token bucket regulator
################################################################


def test_tbr_limits_dequeue_and_refills() -> None:
    clock = FakeClock(100.0)
    q = IfAltq()
    q.set_tbr(1000, 1500, clock=clock)
    pkts = [packet(1000) for _ in range(4)]
    for pkt in pkts:
        q.enqueue(pkt)
    assert q.tbr_next_time() is None
    assert q.dequeue() is pkts[0]  # 1500 -> 500
    assert q.dequeue() is pkts[1]  # 500 -> -500: a packet may borrow
    assert q.tbr is not None and q.tbr.tokens == -500
    assert q.dequeue() is None
    assert q.poll() is None
    assert len(q) == 2
    # The bucket holds a byte again after 0.501 s.
    assert q.tbr_next_time() == pytest.approx(100.501)
    clock.now = 100.4
    assert q.dequeue() is None
    clock.now = q.tbr_next_time()  # type: ignore[assignment]
    assert q.dequeue() is pkts[2]
    assert q.dequeue() is None


def test_tbr_depth_caps_the_burst() -> None:
    clock = FakeClock()
    q = IfAltq()
    q.set_tbr(1000, 2500, clock=clock)
    for _ in range(10):
        q.enqueue(packet(1000))
    clock.now = 1000.0  # a long idle period refills only to depth
    assert len(drain(q)) == 3  # 2500 -> 1500 -> 500 -> -500
    assert q.tbr is not None and q.tbr.tokens == -500


def test_tbr_poll_checks_once_and_remove_charges_once() -> None:
    clock = FakeClock()
    q = IfAltq()
    q.set_tbr(100, 50, clock=clock)
    a, b = packet(80), packet(80)
    q.enqueue(a)
    q.enqueue(b)
    assert q.poll() is a
    assert q.tbr is not None and q.tbr.tokens == 50  # poll does not charge
    assert q.dequeue() is a
    assert q.tbr.tokens == -30
    assert q.poll() is None


def test_tbr_does_not_regulate_prepended_packets() -> None:
    clock = FakeClock()
    q = IfAltq()
    q.set_tbr(100, 10, clock=clock)
    a = packet(500)
    q.enqueue(a)
    assert q.dequeue() is a
    q.prepend(a)  # the driver could not send it
    assert q.poll() is a
    assert q.dequeue() is a
    assert q.tbr is not None and q.tbr.tokens == -490  # charged once


def test_tbr_removal_and_default_depth() -> None:
    clock = FakeClock()
    q = IfAltq()
    q.set_tbr(10_000_000 / 8, clock=clock)  # 10 Mbit/s: pfctl gives 4 MTUs
    assert q.tbr is not None and q.tbr.depth == 4 * 1500
    q.set_tbr(100e9 / 8, clock=clock)
    assert q.tbr is not None and q.tbr.depth == 24 * 1500
    q.set_tbr(None)
    assert q.tbr is None and q.tbr_next_time() is None


@pytest.mark.parametrize(("rate", "depth"), [(0, 10), (-1, 10), (float("inf"), 10), (100, 0)])
def test_tbr_rejects_bad_parameters(rate: float, depth: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, depth, clock=FakeClock())


async def test_tbr_uses_the_trio_clock_by_default(autojump_clock: trio.testing.MockClock) -> None:
    q = IfAltq()
    q.set_tbr(1000, 1000)
    for _ in range(3):
        q.enqueue(packet(1000))
    start = trio.current_time()
    assert q.dequeue() is not None
    assert q.dequeue() is None
    when = q.tbr_next_time()
    assert when is not None
    await trio.sleep_until(when)
    assert q.dequeue() is not None
    assert trio.current_time() - start == pytest.approx(0.001)


################################################################
# Disciplines used directly
################################################################


@pytest.mark.parametrize("make", [FIFO, PRIQ, FAIRQ])
def test_disciplines_follow_the_protocol(make: type) -> None:
    d = make()
    assert d.dequeue() is None
    a, b = packet(), packet()
    assert d.enqueue(a, 0, 0) and d.enqueue(b, 0, 0)
    assert len(d) == 2
    assert d.dequeue() is a
    assert d.purge() == 1
    assert len(d) == 0 and d.dequeue() is None
    assert isinstance(d.class_statistics(), tuple)
    assert d.name in {"fifo", "priq", "fairq"}
