"""Loss recovery (protocols/tcp_recovery.py): duplicate ACKs, fast retransmit and
NewReno (RFC 5681, 6582), and SACK-based recovery (RFC 6675: the scoreboard,
IsLost, pipe and NextSeg), segment by segment.

The sender has a flight of full segments numbered from 0 (``seg(i)`` is the
sequence number of segment ``i``); the test plays the receiver, sending the
ACKs and SACK blocks it would send, and checks what is retransmitted.
"""

from __future__ import annotations

import collections
import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trionet.protocols.tcp import SEQ_MASK, TcpOptions
from trionet.protocols.tcp_connection import (
    MAX_SACK_RANGES,
    TcpConfig,
    TcpConnection,
    TcpOutput,
    TcpState,
)

from tcp_pair import Pair
from test_tcp_connection import ACK, ISS, SYN, Peer, established
from test_tcp_fuzz import check

SMSS = 1460
BASE = ISS + 1
SACK = TcpConfig(timestamps=False)  # SACK on (the default), no timestamps: SMSS is 1460
SACK_SYN = TcpOptions(mss=1460, sack_permitted=True)


def seg(i: float) -> int:
    return BASE + int(i * SMSS)


def flight(
    n: int, *, extra: int = 0, config: TcpConfig = SACK, options: TcpOptions = SACK_SYN
) -> tuple[TcpConnection, Peer]:
    """A connection with ``n`` full segments in flight (cwnd exactly ``n``) and ``extra`` more queued."""
    conn, peer = established(config, options=options)
    conn.congestion_control.cwnd = n * SMSS
    out = conn.send(bytes((n + extra) * SMSS), 0.0)
    assert [h.seq for h, _ in out.segments] == [seg(i) for i in range(n)]
    return conn, peer


def sack(peer: Peer, ack: float, *blocks: tuple[float, float]) -> TcpOutput:
    """The receiver's ACK at segment ``ack`` with SACK blocks given in segments."""
    opts = TcpOptions(sack_blocks=tuple((seg(a) & SEQ_MASK, seg(b) & SEQ_MASK) for a, b in blocks))
    return peer.seg(ACK, ack=seg(ack), options=opts)


def sent(out: TcpOutput) -> list[float]:
    """The data segments of an output, as segment numbers."""
    return [((h.seq - BASE) & SEQ_MASK) / SMSS for h, p in out.segments if p]


####################################################################
# Recovery
####################################################################


def test_retransmits_exactly_the_holes_and_leaves_recovery_at_the_recovery_point() -> None:
    conn, peer = flight(10)
    assert conn.sack_enabled
    # Segments 2 and 5 are lost; the others arrive in order.
    assert sent(sack(peer, 2)) == []
    assert sent(sack(peer, 2, (3, 4))) == []
    assert sent(sack(peer, 2, (3, 5))) == []  # two SACKed segments: not yet lost
    assert not conn.in_recovery
    out = sack(peer, 2, (6, 7), (3, 5))  # the third duplicate ACK
    assert conn.in_recovery
    assert sent(out) == [2]  # the first hole, at once
    # RFC 6675 (4.2): ssthresh = cwnd = FlightSize / 2 (8 segments in flight).
    assert conn.ssthresh == conn.cwnd == 4 * SMSS
    # pipe: the retransmitted 2; 5, not lost (only one segment SACKed above
    # it); and 7, 8, 9 (never SACKed, nothing above them).
    assert conn.pipe == 5 * SMSS
    assert sent(sack(peer, 2, (6, 8), (3, 5))) == []  # pipe 4 = cwnd
    assert conn.pipe == 4 * SMSS
    # Three segments SACKed above 5: it is lost now, and pipe leaves room.
    out = sack(peer, 2, (6, 9), (3, 5))
    assert sent(out) == [5]
    assert conn.pipe == 3 * SMSS
    assert sent(sack(peer, 2, (6, 10), (3, 5))) == []  # nothing else to send: SACKed data never again
    assert conn.sacked_ranges == ((seg(3) & SEQ_MASK, seg(5) & SEQ_MASK), (seg(6) & SEQ_MASK, seg(10) & SEQ_MASK))
    # The retransmitted 2 arrives: a partial ACK; 5 is already on its way.
    assert sent(sack(peer, 5, (6, 10))) == []
    assert conn.in_recovery
    assert conn.sacked_ranges == ((seg(6) & SEQ_MASK, seg(10) & SEQ_MASK),)
    out = sack(peer, 10)
    assert not conn.in_recovery
    assert conn.cwnd == conn.ssthresh == 4 * SMSS
    assert conn.sacked_ranges == () and conn.pipe == 0
    assert out.deadline is None  # nothing outstanding
    stats = conn.statistics()
    assert (stats.retransmits, stats.bytes_retransmitted) == (2, 2 * SMSS)
    assert (stats.fast_retransmits, stats.sack_recoveries, stats.timeouts) == (1, 1, 0)
    assert stats.dup_acks == 6


def test_is_lost_starts_recovery_before_three_duplicate_acks() -> None:
    # The ACKs for 3 and 4 were lost: one ACK SACKs three segments above 2.
    conn, peer = flight(10)
    out = sack(peer, 2, (3, 6))
    assert conn.in_recovery
    assert sent(out) == [2]
    assert conn.statistics().sack_recoveries == 1


def test_is_lost_counts_discontiguous_ranges_as_well_as_bytes() -> None:
    # Three small SACKed ranges (300 bytes in all) above the hole: lost.
    conn, peer = flight(10)
    small = [(seg(i), seg(i) + 100) for i in (3, 5, 7)]
    peer.seg(ACK, ack=seg(0), options=TcpOptions(sack_blocks=tuple(small[:2])))
    assert not conn.in_recovery  # two ranges, 200 bytes
    out = peer.seg(ACK, ack=seg(0), options=TcpOptions(sack_blocks=(small[2],)))
    assert conn.in_recovery  # on the second duplicate ACK
    assert sent(out) == [0]
    assert len(out.segments[0][1]) == SMSS  # the hole is a whole segment


def test_new_data_is_sent_only_while_cwnd_minus_pipe_allows() -> None:
    conn, peer = flight(10, extra=10)
    sack(peer, 0, (1, 2))
    sack(peer, 0, (1, 3))
    out = sack(peer, 0, (1, 4))
    assert sent(out) == [0]
    assert conn.cwnd == 5 * SMSS
    assert conn.pipe == 7 * SMSS  # the retransmission, and 4..9
    new = []
    pipes = []
    for i in range(5, 11):
        out = sack(peer, 0, (1, i))
        new += sent(out)
        pipes.append(conn.pipe // SMSS)
        assert len(out.segments) <= 1
    # Two ACKs bring pipe down to cwnd; each later one releases one new segment.
    assert pipes == [6, 5, 5, 5, 5, 5]
    assert new == [10, 11, 12, 13]
    # The retransmission arrives: everything up to the recovery point (10).
    out = sack(peer, 10)
    assert not conn.in_recovery
    assert conn.statistics().retransmits == 1


@pytest.mark.parametrize(("extra", "last"), [(0, 6), (5, 10)], ids=["rule-3-hole", "rule-2-new-data"])
def test_holes_not_yet_lost_are_retransmitted_only_when_no_new_data_waits(extra: int, last: int) -> None:
    # 0..4 and 6 are lost; 5, 7 and 8 arrive; 9 is still on its way.
    conn, peer = flight(10, extra=extra)
    sack(peer, 0, (5, 6))
    sack(peer, 0, (7, 8), (5, 6))
    out = sack(peer, 0, (7, 9), (5, 6))
    assert sent(out) == [0, 1, 2]  # the first hole, then rule 1 while cwnd (5) - pipe allows
    assert sent(sack(peer, 1, (7, 9), (5, 6))) == [3]
    assert sent(sack(peer, 2, (7, 9), (5, 6))) == [4]
    # 6 is not lost (two segments SACKed above it): NextSeg sends new data
    # if there is some (rule 2), else the hole anyway (rule 3).
    assert sent(sack(peer, 3, (7, 9), (5, 6))) == [last]


def test_a_partial_ack_with_nothing_sacked_above_retransmits_the_next_segment() -> None:
    # Segments 2 and 9 (the last) are lost: no SACK can ever show 9 lost.
    conn, peer = flight(10)
    sack(peer, 2)
    sack(peer, 2, (3, 4))
    sack(peer, 2, (3, 5))
    assert sent(sack(peer, 2, (3, 6))) == [2]
    for i in (7, 8, 9):
        assert sent(sack(peer, 2, (3, i))) == []
    out = sack(peer, 9)  # the retransmitted 2 arrived
    assert sent(out) == [9]  # Divergence from RFC 6675: NewReno's partial-ACK rule
    assert sent(sack(peer, 9)) == []  # once
    sack(peer, 10)
    assert not conn.in_recovery
    assert conn.statistics().timeouts == 0


def test_a_loss_just_after_recovery_is_recovered_without_a_timeout() -> None:
    conn, peer = flight(10, extra=5)
    for i in (2, 3, 4):
        sack(peer, 0, (1, i))
    assert conn.in_recovery
    sack(peer, 0, (1, 10))  # sends new data 10, 11, ... as pipe allows
    sack(peer, 10)  # leaves recovery exactly at the recovery point
    assert not conn.in_recovery and conn.snd_max > seg(10) & SEQ_MASK
    # Segment 10, sent during recovery, was lost too.
    sack(peer, 10, (11, 12))
    sack(peer, 10, (11, 13))
    out = sack(peer, 10, (11, 14))
    assert conn.in_recovery and sent(out)[0] == 10
    assert conn.statistics().sack_recoveries == 2


def test_a_timeout_clears_the_scoreboard_and_go_back_n_skips_what_is_sacked_after() -> None:
    conn, peer = flight(10)
    sack(peer, 0, (5, 6))
    assert conn.sacked_ranges
    out = conn.on_timer(1.0)
    assert sent(out) == [0]
    assert conn.sacked_ranges == ()  # RFC 6675 5.1: the receiver may have reneged
    assert not conn.in_recovery and conn.cwnd == SMSS
    # 1 and 4 are lost; the ACKs after the timeout say so.
    peer.now = 1.1
    out = sack(peer, 1, (2, 4), (5, 10))
    assert sent(out) == [1]  # cwnd 2 segments: SACKed data counts as in flight
    assert not conn.in_recovery  # no new recovery before the timeout's recovery point
    out = sack(peer, 4, (5, 10))
    assert sent(out) == [4]  # 2, 3 and 5..9 are never sent again
    out = sack(peer, 10)
    assert conn.snd_una == conn.snd_max
    stats = conn.statistics()
    assert (stats.retransmits, stats.timeouts, stats.fast_retransmits) == (3, 1, 0)


def test_without_sack_negotiated_sack_blocks_are_ignored_and_newreno_recovers() -> None:
    conn, peer = flight(10, options=TcpOptions(mss=1460))
    assert not conn.sack_enabled
    for i in (2, 3, 4):
        sack(peer, 0, (1, i))
    assert conn.in_recovery
    assert conn.sacked_ranges == ()
    assert conn.cwnd == conn.ssthresh + 3 * SMSS  # NewReno's inflation
    sack(peer, 0, (1, 5))
    assert conn.cwnd == conn.ssthresh + 4 * SMSS
    stats = conn.statistics()
    assert (stats.fast_retransmits, stats.sack_recoveries) == (1, 0)


def test_a_peer_that_agreed_to_sack_but_sends_no_blocks_still_gets_a_fast_retransmit() -> None:
    conn, peer = flight(10)
    for _ in range(3):
        out = sack(peer, 0)
    assert conn.in_recovery and sent(out) == [0]
    assert conn.statistics().sack_recoveries == 1


####################################################################
# The scoreboard
####################################################################


def test_duplicated_acks_carrying_no_new_sack_information_do_not_count() -> None:
    conn, peer = flight(10)
    for _ in range(5):
        sack(peer, 0, (1, 2))  # the same ACK, duplicated by the network
    assert not conn.in_recovery
    assert conn.statistics().dup_acks == 5


def test_blocks_outside_snd_una_to_snd_max_are_ignored_and_straddling_ones_cut() -> None:
    conn, peer = flight(10)
    sack(peer, 2, (0, 1), (9, 11), (4, 3))  # a D-SACK below the ACK, beyond snd_max, empty
    assert conn.sacked_ranges == ()
    assert conn.statistics().sack_blocks_ignored == 3
    sack(peer, 3, (1, 4.5))  # straddles the cumulative ACK
    assert conn.sacked_ranges == ((seg(3) & SEQ_MASK, seg(4.5) & SEQ_MASK),)
    sack(peer, 3, (4.5, 5), (6, 7), (5, 6))  # touching blocks merge
    assert conn.sacked_ranges == ((seg(3) & SEQ_MASK, seg(7) & SEQ_MASK),)


def test_the_scoreboard_is_bounded_and_forgets_the_highest_range() -> None:
    conn, peer = flight(10)
    n = MAX_SACK_RANGES + 4
    blocks = [((BASE + 200 * k) & SEQ_MASK, (BASE + 200 * k + 50) & SEQ_MASK) for k in range(1, n + 1)]
    for i in range(0, n, 4):
        peer.seg(ACK, ack=BASE, options=TcpOptions(sack_blocks=tuple(blocks[i : i + 4])))
    assert conn.sacked_ranges == tuple(blocks[:MAX_SACK_RANGES])
    assert conn.statistics().sack_ranges_dropped == 4


def test_sequence_numbers_wrap_in_the_scoreboard() -> None:
    conn = TcpConnection(40000, 80, iss=SEQ_MASK - 3 * SMSS, config=SACK)
    conn.connect(0.0)
    peer = Peer(conn)
    peer.seg(SYN | ACK, ack=conn.snd_nxt, options=SACK_SYN)
    conn.congestion_control.cwnd = 10 * SMSS
    base = conn.snd_una
    conn.send(bytes(10 * SMSS), 0.0)

    def at(i: int) -> int:
        return (base + i * SMSS) & SEQ_MASK

    for i in (2, 3, 4):
        out = peer.seg(ACK, ack=at(0), options=TcpOptions(sack_blocks=((at(1), at(i)),)))
    assert conn.in_recovery
    assert [h.seq for h, p in out.segments if p] == [at(0)]
    assert conn.sacked_ranges == ((at(1), at(4)),)


####################################################################
# Random ACKs and SACK blocks at a sender in recovery
####################################################################


@settings(max_examples=60)
@given(
    st.lists(
        st.tuples(
            st.integers(-2, 24),  # cumulative ACK, in segments (out of range ones included)
            st.lists(st.tuples(st.integers(-4, 26), st.integers(-4, 26)), max_size=4),
            st.sampled_from([0, 1, 100, SMSS // 2]),  # byte offset of the block edges
            st.booleans(),  # the timer fires after this ACK
        ),
        max_size=30,
    )
)
def test_random_sack_blocks_at_a_sender_in_recovery_keep_the_invariants(script: list) -> None:
    conn, peer = flight(20, extra=4)
    for i in (2, 3, 4):
        sack(peer, 0, (1, i))
    assert conn.in_recovery
    now = 0.0
    for ack, blocks, offset, timer in script:
        una = (conn.snd_una - BASE) & SEQ_MASK
        ack_seq = seg(ack) if ack >= 0 else seg(0) - 1
        if ack_seq < BASE + una:
            ack_seq = BASE + una  # keep the ACK acceptable most of the time
        edges = tuple(((seg(a) + offset) & SEQ_MASK, (seg(b) + offset) & SEQ_MASK) for a, b in blocks)
        opts = TcpOptions(sack_blocks=edges)
        peer.now = now
        out = peer.seg(ACK, ack=ack_seq & SEQ_MASK, options=opts)
        check(conn, out)
        if timer:
            now += 1.5
            out = conn.on_timer(now)
            check(conn, out)
        una, nxt, mx = conn._snd_una, conn._snd_nxt, conn._snd_max
        assert una <= nxt <= mx
        ranges = conn._sacks.ranges
        assert len(ranges) <= MAX_SACK_RANGES
        prev = una
        for start, end in ranges:
            assert prev <= start < end <= mx
            prev = end + 1  # disjoint, never touching
        assert 0 <= conn.pipe
        if conn.state is TcpState.CLOSED:
            break


####################################################################
# Back to back through a lossy link: SACK against NewReno
####################################################################

DATA = random.Random(6675).randbytes(300_000)


def _segment_loss(rate: float, seed: int):
    """Loses each transmission of a segment with probability ``rate``, decided by its identity.

    Both runs then lose the same first transmissions whatever the timing,
    so they can be compared.
    """
    seen: collections.Counter = collections.Counter()

    def drop(name: str, h, payload: bytes) -> bool:
        key = (name, h.seq, h.ack if name == "b" else 0, len(payload))
        seen[key] += 1
        digest = hashlib.sha256(repr((seed, key, seen[key])).encode()).digest()
        return int.from_bytes(digest[:4], "big") < rate * 2**32

    return drop


def _transfer(sack_on: bool, seed: int) -> Pair:
    config = TcpConfig(sack=sack_on, msl=1.0)
    pair = Pair(config, config, seed=seed, drop=_segment_loss(0.05, seed))
    pair.to_send["a"] += DATA
    pair.close_when_sent["a"] = pair.close_when_sent["b"] = True
    pair.run(until=lambda: pair.b is not None and pair.a.state is pair.b.state is TcpState.CLOSED, max_time=5000)
    return pair


def test_sack_retransmits_no_more_than_newreno_at_five_percent_loss() -> None:
    digest = hashlib.sha256(DATA).hexdigest()
    totals = {False: 0, True: 0}
    for seed in range(5):
        for sack_on in (False, True):
            pair = _transfer(sack_on, seed)
            assert hashlib.sha256(pair.received["b"]).hexdigest() == digest
            assert pair.a.state is pair.b.state is TcpState.CLOSED and pair.a.error is None
            stats = pair.a.statistics()
            assert stats.bytes_sent == len(DATA)
            assert (stats.sack_recoveries > 0) is sack_on
            totals[sack_on] += stats.bytes_retransmitted
    assert 0 < totals[True] <= totals[False]


####################################################################
# Duplicate ACKs and NewReno (RFC 5681, 6582)
####################################################################


def _loss_setup(config: TcpConfig | None = None) -> tuple[TcpConnection, Peer, int]:
    conn, peer = established(config or TcpConfig(timestamps=False, sack=False))
    conn.congestion_control.cwnd = 20 * 1460
    out = conn.send(bytes(18 * 1460), 0.0)
    assert len(out.segments) == 18
    return conn, peer, ISS + 1


def test_fast_retransmit_after_three_duplicate_acks() -> None:
    conn, peer, base = _loss_setup()
    flight = 18 * 1460
    assert peer.seg(ACK, ack=base).segments == ()
    assert peer.seg(ACK, ack=base).segments == ()
    out = peer.seg(ACK, ack=base)
    (h, p), = out.segments
    assert h.seq == base and len(p) == 1460  # the first unacknowledged segment
    assert conn.in_recovery
    assert conn.ssthresh == flight // 2
    assert conn.cwnd == flight // 2 + 3 * 1460
    stats = conn.statistics()
    assert (stats.dup_acks, stats.fast_retransmits) == (3, 1)


def test_window_updates_and_data_are_not_duplicate_acks() -> None:
    conn, peer, base = _loss_setup()
    peer.seg(ACK, ack=base, window=60000)
    peer.seg(ACK, b"data", ack=base, window=60000)
    peer.seg(ACK, ack=base, window=60001)
    assert conn.statistics().dup_acks == 0


def test_newreno_partial_ack_retransmits_the_next_hole_and_full_ack_ends_recovery() -> None:
    conn, peer, base = _loss_setup()
    for _ in range(3):
        peer.seg(ACK, ack=base)
    assert conn.in_recovery
    ssthresh = conn.ssthresh
    # Segments 0 and 5 were lost: the retransmission of 0 brings a partial
    # ACK up to segment 5.
    cwnd = conn.cwnd
    out = peer.seg(ACK, ack=base + 5 * 1460)
    first = out.segments[0]
    assert first[0].seq == base + 5 * 1460 and len(first[1]) == 1460
    assert conn.in_recovery
    assert conn.cwnd == cwnd - 5 * 1460 + 1460  # deflated, one SMSS added back
    # The full ACK: everything up to "recover" (all 18 segments).
    out = peer.seg(ACK, ack=base + 18 * 1460)
    assert not conn.in_recovery
    assert conn.cwnd == min(ssthresh, 1460 + 1460)


def test_dup_acks_below_recover_do_not_start_a_second_recovery() -> None:
    conn, peer, base = _loss_setup()
    conn.on_timer(1.0)  # a timeout first: recover = snd_max
    assert conn.cwnd == 1460
    for _ in range(4):
        peer.seg(ACK, ack=base)
    assert not conn.in_recovery
    assert conn.statistics().fast_retransmits == 0


def test_timeout_falls_back_to_one_segment_and_goes_back_n() -> None:
    conn, peer, base = _loss_setup()
    out = conn.on_timer(1.0)
    (h, p), = out.segments
    assert h.seq == base and len(p) == 1460
    assert conn.cwnd == 1460 and conn.ssthresh == 18 * 1460 // 2
    # The ACK covers more than the retransmission (the rest had arrived):
    # sending resumes from the ACK, in slow start.
    out = peer.seg(ACK, ack=base + 10 * 1460)
    assert [h.seq for h, _ in out.segments] == [base + 10 * 1460, base + 11 * 1460]
