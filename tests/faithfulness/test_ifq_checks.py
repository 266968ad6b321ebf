"""Faithfulness check 11 of reference/dragonfly.md section 9, at the queue level:
queue limits. The FIFO drops at ``maxlen`` and counts drops; ALTQ POLL→REMOVE
returns the same packet; PRIQ always serves the higher class first; FAIRQ
alternates between buckets.

The ENOBUFS half of the check belongs to the caller, ``ifq_dispatch``; here
the queue only has to refuse the packet (``enqueue`` returns False) and count
it.

DragonFly: ``sys/net/ifq_var.h``, ``sys/net/if.c`` (``ifq_classic_enqueue``),
``sys/net/altq/altq_priq.c``, ``sys/net/altq/altq_fairq.c`` (section 3 of the
reference).
"""

import socket
import struct

import pytest

# IfAltq is not re-exported yet; the check is on the module itself.
from trionet.lowlevel import FAIRQ, FIFO, PRIQ, IfAltq
from trionet.protocols.flowhash import ipv4_flow_hash


def tcp(sport: int, seq: int) -> bytes:
    """A distinct IPv4+TCP segment 10.0.0.1:sport -> 10.0.0.2:80."""
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        40,
        0,
        0,
        64,
        socket.IPPROTO_TCP,
        0,
        socket.inet_aton("10.0.0.1"),
        socket.inet_aton("10.0.0.2"),
    )
    return ip + struct.pack("!HHIIBBHHH", sport, 80, seq, 0, 5 << 4, 0x10, 65535, 0, 0)


def drain(q: IfAltq) -> list[bytes]:
    out = []
    while (pkt := q.dequeue()) is not None:
        out.append(pkt)
    return out


####################################################################
# FIFO: drop-tail at maxlen, drops counted
####################################################################


def test_fifo_drops_at_maxlen_and_counts_each_drop() -> None:
    """Check 11: a classic queue of maxlen N admits N packets, refuses the rest
    (False, never an exception) and counts every refusal in ``drops``; the
    admitted ones leave in order."""
    q = IfAltq(maxlen=5)
    assert isinstance(q.discipline, FIFO)
    pkts = [tcp(1000, i) for i in range(8)]
    results = [q.enqueue(p) for p in pkts]
    assert results == [True] * 5 + [False] * 3
    stats = q.statistics()
    assert (stats.len, stats.enqueued, stats.drops) == (5, 5, 3)
    assert drain(q) == pkts[:5]
    # Room again after draining; the drop count stays.
    assert q.enqueue(pkts[5]) is True
    assert q.statistics().drops == 3


def test_purge_is_not_a_drop() -> None:
    """Check 11: ``if_down`` purging the queue is not congestion: ``purged``
    counts it and ``drops`` does not move."""
    q = IfAltq(maxlen=3)
    for i in range(3):
        q.enqueue(tcp(1000, i))
    assert q.purge() == 3
    stats = q.statistics()
    assert (stats.len, stats.drops, stats.purged) == (0, 0, 3)


####################################################################
# POLL -> REMOVE
####################################################################


@pytest.mark.parametrize("make", [FIFO, PRIQ, FAIRQ])
def test_poll_then_remove_returns_the_same_packet(make: type) -> None:
    """Check 11: ALTDQ_REMOVE right after ALTDQ_POLL returns the very packet
    the poll returned, in every discipline, even when packets arrive in
    between that the discipline would otherwise prefer."""
    q = IfAltq(discipline=make())
    first = tcp(1000, 0)
    q.enqueue(first, prio=0, flow=1)
    polled = q.poll()
    assert polled is first
    # Higher class, other flow: PRIQ/FAIRQ would serve these first.
    for i in range(3):
        q.enqueue(tcp(2000, i), prio=15, flow=2 + i)
    assert q.poll() is polled
    assert q.dequeue() is polled
    assert len(q) == 3


####################################################################
# PRIQ: strict priority
####################################################################


def test_priq_always_serves_the_higher_class_first() -> None:
    """Check 11: whatever the arrival order, a packet of a higher class is
    dequeued before any packet of a lower class, and packets of one class
    keep their order."""
    q = IfAltq(maxlen=100, discipline=PRIQ())
    arrivals = [(prio, tcp(1000 + prio, seq)) for seq in range(4) for prio in (0, 5, 2, 15, 5)]
    for prio, pkt in arrivals:
        assert q.enqueue(pkt, prio=prio)
    out = drain(q)
    prio_of = {id(pkt): prio for prio, pkt in arrivals}
    served = [prio_of[id(pkt)] for pkt in out]
    assert served == sorted(served, reverse=True)
    for prio in (0, 2, 5, 15):
        assert [p for p in out if prio_of[id(p)] == prio] == [p for q_, p in arrivals if q_ == prio]


def test_priq_serves_a_late_high_packet_before_queued_low_ones() -> None:
    """Check 11: a high-priority packet that arrives behind a backlog of low
    ones is the next packet out."""
    q = IfAltq(discipline=PRIQ())
    for i in range(10):
        q.enqueue(tcp(1000, i), prio=1)
    q.dequeue()
    urgent = tcp(2000, 0)
    q.enqueue(urgent, prio=7)
    assert q.dequeue() is urgent


####################################################################
# FAIRQ: round robin between buckets
####################################################################


def test_fairq_alternates_between_buckets() -> None:
    """Check 11: two TCP flows in one class, keyed by their flow hash, land
    in different buckets and are served alternately, although one flow
    queued all its packets before the other."""
    fairq = FAIRQ()
    a = [tcp(1234, i) for i in range(5)]
    b = [tcp(1235, i) for i in range(5)]
    ha, hb = ipv4_flow_hash(a[0]), ipv4_flow_hash(b[0])
    assert ha & (fairq.nbuckets - 1) != hb & (fairq.nbuckets - 1)
    q = IfAltq(discipline=fairq)
    for pkt in a:
        q.enqueue(pkt, prio=3, flow=ha)
    for pkt in b:
        q.enqueue(pkt, prio=3, flow=hb)
    assert drain(q) == [x for pair in zip(a, b, strict=True) for x in pair]


def test_fairq_still_serves_the_higher_class_first() -> None:
    """Check 11: FAIRQ's round robin is inside a class; between classes the
    highest non-empty one wins."""
    q = IfAltq(discipline=FAIRQ())
    low = [tcp(1000 + i, 0) for i in range(3)]
    high = tcp(2000, 0)
    for i, pkt in enumerate(low):
        q.enqueue(pkt, prio=1, flow=i)
    q.enqueue(high, prio=9, flow=0)
    assert drain(q) == [high, *low]
