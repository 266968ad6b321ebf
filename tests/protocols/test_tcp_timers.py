"""The connection's timers (protocols/tcp_timers.py), in virtual time: keepalive
(RFC 1122 4.2.3.6, BSD tcp_timer_keep), retransmission with RFC 6298's RTO and
Karn's rule, the persist timer, and the user timeout (RFC 5482)."""

from __future__ import annotations

import errno

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trionet.protocols.tcp import SEQ_MASK
from trionet.protocols.tcp_connection import TcpConfig, TcpConnection, TcpEvent, TcpOutput, TcpState

from tcp_pair import Pair
from test_tcp_connection import ACK, FIN, ISS, LPORT, PLAIN, PSH, RPORT, RST, SYN, Peer, established, only

KEEP = TcpConfig(
    timestamps=False, sack=False, window_scaling=False, keepalive=True, keepidle=100.0, keepintvl=10.0, keepcnt=3
)


def is_probe(conn: TcpConnection, out: TcpOutput) -> bool:
    h, payload = only(out)
    return h.flags == ACK and h.seq == (conn.snd_una - 1) & SEQ_MASK and h.ack == conn.rcv_nxt and payload == b""


def test_keepalive_is_off_by_default() -> None:
    conn, _ = established(PLAIN)
    assert not conn.config.keepalive
    assert conn.next_deadline() is None
    out = conn.on_timer(10 * 3600.0)
    assert out.segments == () and out.deadline is None
    assert conn.state is TcpState.ESTABLISHED
    assert conn.statistics().keepalive_probes == 0


def test_bsd_defaults_and_validation() -> None:
    config = TcpConfig()
    assert (config.keepalive, config.keepidle, config.keepintvl, config.keepcnt) == (False, 7200.0, 75.0, 8)
    for bad in ({"keepidle": 0}, {"keepintvl": -1.0}, {"keepcnt": 0}):
        with pytest.raises(ValueError):
            TcpConfig(**bad)
    conn, _ = established(PLAIN)
    with pytest.raises(ValueError):
        conn.set_keepalive(True, 0.0, idle=0.0)


def test_an_unanswered_connection_is_probed_then_dropped_at_idle_plus_count_intervals() -> None:
    conn, _ = established(KEEP)
    assert conn.next_deadline() == 100.0
    times = []
    out = conn.on_timer(99.9)
    assert out.segments == ()
    while conn.state is not TcpState.CLOSED:
        t = conn.next_deadline()
        out = conn.on_timer(t)
        times.append(t)
        if conn.state is not TcpState.CLOSED:
            assert is_probe(conn, out)
            assert conn.keepalive_probes_unanswered == len(times)
    assert times == [100.0, 110.0, 120.0, 130.0]  # keepidle + keepcnt * keepintvl
    assert [h.flags for h, _ in out.segments] == [RST]
    assert out.events == (TcpEvent.TIMEOUT, TcpEvent.CLOSED)
    assert conn.error == errno.ETIMEDOUT
    stats = conn.statistics()
    assert (stats.keepalive_probes, stats.keepalive_drops, stats.timeouts) == (3, 1, 0)


def test_an_answered_probe_keeps_the_connection_and_restarts_the_idle_period() -> None:
    conn, peer = established(KEEP)
    assert is_probe(conn, conn.on_timer(100.0))
    assert is_probe(conn, conn.on_timer(110.0))
    peer.now = 111.0
    out = peer.seg(ACK, ack=conn.snd_una)  # the peer's answer
    assert out.segments == ()
    assert out.deadline == 211.0
    assert conn.keepalive_probes_unanswered == 0
    assert is_probe(conn, conn.on_timer(211.0))
    assert conn.state is TcpState.ESTABLISHED


def test_any_received_segment_resets_the_idle_timer() -> None:
    conn, peer = established(KEEP)
    peer.now = 50.0
    peer.seg(ACK, b"data")
    assert conn.next_deadline() == pytest.approx(50.2)  # the delayed ACK comes first
    conn.on_timer(50.2)
    assert conn.next_deadline() == 150.0
    # Even a segment outside the window (BSD resets t_rcvtime for any).
    peer.now = 70.0
    peer.seg(ACK, b"old", seq=peer.seq - 1000)
    assert conn.next_deadline() == 170.0


def test_only_received_segments_count_as_activity_not_sent_ones() -> None:
    conn, peer = established(KEEP)
    conn.send(b"x", 10.0)
    peer.now = 10.1
    peer.seg(ACK, ack=conn.snd_nxt)  # its ACK is activity: idle from 10.1
    conn.send(b"y", 50.0)  # never acknowledged: retransmitted, with backoff
    probes = []
    while not probes:
        t = conn.next_deadline()
        out = conn.on_timer(t)
        probes = [t for h, p in out.segments if not p]
    # Probes go out whatever is in flight (BSD), idle counted from 10.1.
    assert probes == [pytest.approx(110.1)]
    assert conn.statistics().retransmits > 0


def test_probes_in_close_wait_and_fin_wait_2_but_not_while_our_fin_is_unacknowledged() -> None:
    conn, peer = established(KEEP)
    peer.seg(FIN | ACK)
    assert conn.state is TcpState.CLOSE_WAIT
    assert is_probe(conn, conn.on_timer(100.0))

    conn, peer = established(KEEP)
    conn.close(0.0)
    assert conn.state is TcpState.FIN_WAIT_1
    assert conn.next_deadline() == 1.0  # the FIN's retransmission timer is in charge
    peer.now = 0.5
    peer.seg(ACK, ack=conn.snd_max)
    assert conn.state is TcpState.FIN_WAIT_2
    assert conn.next_deadline() == 100.5
    assert is_probe(conn, conn.on_timer(100.5))
    peer.now = 101.0
    peer.seg(FIN | ACK)
    assert conn.state is TcpState.TIME_WAIT
    assert conn.next_deadline() == 101.0 + 2 * KEEP.msl


def test_set_keepalive_turns_it_on_and_off_on_a_live_connection() -> None:
    conn, peer = established(PLAIN)
    out = conn.set_keepalive(True, 1000.0, idle=60.0, interval=5.0, count=2)
    assert out.segments == () and out.deadline == 1060.0
    config = conn.config
    assert (config.keepalive, config.keepidle, config.keepintvl, config.keepcnt) == (True, 60.0, 5.0, 2)
    assert is_probe(conn, conn.on_timer(1060.0))
    assert is_probe(conn, conn.on_timer(1065.0))
    out = conn.set_keepalive(False, 1066.0)
    assert out.deadline is None
    assert conn.on_timer(5000.0).segments == ()
    # On again: the idle period starts afresh, unanswered probes forgotten.
    assert conn.set_keepalive(True, 6000.0).deadline == 6060.0
    conn.on_timer(6060.0)
    conn.on_timer(6065.0)
    out = conn.on_timer(6070.0)
    assert out.events == (TcpEvent.TIMEOUT, TcpEvent.CLOSED)
    assert conn.statistics().keepalive_probes == 4


def test_replacing_the_config_directly_counts_idle_time_from_the_last_segment() -> None:
    # What a glue doing attrs.evolve(conn.config, keepalive=...) gets (BSD's
    # SO_KEEPALIVE, where the keep timer always runs): no fresh idle period.
    conn, peer = established(PLAIN)
    peer.now = 30.0
    peer.seg(ACK)
    conn.config = attrs.evolve(conn.config, keepalive=True, keepidle=100.0, keepintvl=10.0, keepcnt=1)
    assert conn.next_deadline() == 130.0
    assert is_probe(conn, conn.on_timer(500.0))  # late: one probe, the interval from it
    assert conn.next_deadline() == 510.0
    conn.config = attrs.evolve(conn.config, keepalive=False)
    assert conn.next_deadline() is None
    assert conn.on_timer(600.0).segments == ()
    assert conn.state is TcpState.ESTABLISHED


def advance(conn: TcpConnection, until: float) -> float | None:
    """Run every timer due up to ``until``, at its own time, as the glue does; the last one's time."""
    ran = None
    while (t := conn.next_deadline()) is not None and t <= until:
        conn.on_timer(t)
        ran = t
    return ran


def test_two_machines_stay_connected_for_hours_then_one_notices_the_link_is_gone() -> None:
    config = TcpConfig(keepalive=True)  # BSD timing: 2 h, 75 s, 8
    pair = Pair(config, TcpConfig())
    pair.run(until=lambda: pair.b is not None and pair.b.state is TcpState.ESTABLISHED)
    pair.run_for(10 * 3600.0)
    assert pair.a.state is pair.b.state is TcpState.ESTABLISHED
    assert pair.a.statistics().keepalive_probes == 4  # one every 2 hours, each answered
    assert pair.b.statistics().keepalive_probes == 0
    last = max(t for t, name, _, _ in pair.sent_log if name == "b") + pair.delay  # a's last received segment
    pair.drop = lambda name, h, p: True
    pair.run(until=lambda: pair.a.state is TcpState.CLOSED, max_time=20 * 3600.0)
    assert pair.a.error == errno.ETIMEDOUT
    assert pair.now == pytest.approx(last + 7200.0 + 8 * 75.0, abs=0.1)
    stats = pair.a.statistics()
    assert (stats.keepalive_probes, stats.keepalive_drops) == (4 + 8, 1)
    assert pair.b.state is TcpState.ESTABLISHED  # b had keepalive off


@settings(max_examples=50)
@given(st.lists(st.tuples(st.floats(0.0, 150.0), st.booleans()), max_size=20))
def test_the_drop_comes_exactly_idle_plus_count_intervals_after_the_last_segment(script: list) -> None:
    conn, peer = established(KEEP)
    now = 0.0
    last = 0.0
    closed_at = None
    for dt, receive in script:
        now += dt
        ran = advance(conn, now)
        if conn.state is TcpState.CLOSED:
            closed_at = ran
            break
        if receive:
            peer.now = now
            peer.seg(ACK, ack=conn.snd_una)
            last = now
    while conn.state is not TcpState.CLOSED:
        closed_at = conn.next_deadline()
        conn.on_timer(closed_at)
    assert closed_at == pytest.approx(last + 100.0 + 3 * 10.0)
    assert conn.error == errno.ETIMEDOUT
    assert conn.next_deadline() is None


####################################################################
# Retransmission (RFC 6298), persist, user timeout
####################################################################


def test_a_zero_window_is_probed_with_backoff_until_it_opens() -> None:
    conn, peer = established(window=0)
    out = conn.send(b"x" * 100, 0.0)
    assert out.segments == ()
    assert out.deadline == 1.0  # persist timer, at the RTO
    probes = []
    t = 1.0
    for _ in range(4):
        out = conn.on_timer(t)
        (probe, data), = out.segments
        assert (probe.seq, probe.flags, data) == (ISS, ACK, b"")  # snd_una - 1
        probes.append(t)
        # The peer answers a probe with its (still zero) window.
        peer.now = t
        assert peer.seg(ACK, ack=ISS + 1, window=0).segments == ()
        t = out.deadline
    assert probes == [1.0, 3.0, 7.0, 15.0]
    assert conn.statistics().window_probes == 4
    peer.now = t
    out = peer.seg(ACK, ack=ISS + 1, window=1000)  # the window opens
    assert [p for _, p in out.segments] == [b"x" * 100]


def test_a_small_window_is_filled_by_the_persist_timer() -> None:
    # Sender SWS avoidance: 100 bytes of window against 1000 waiting bytes
    # and a peer that once offered 65535: wait; the persist timer forces it.
    conn, peer = established()
    peer.seg(ACK, ack=ISS + 1, window=100)
    assert conn.send(bytes(1000), 0.0).segments == ()
    out = conn.on_timer(1.0)
    assert [len(p) for _, p in out.segments] == [100]


def test_retransmission_timer_backs_off_exponentially_and_times_out() -> None:
    conn, peer = established(TcpConfig(timestamps=False, sack=False, max_retries=4))
    out = conn.send(b"hello", 0.0)
    assert out.deadline == 1.0
    times = []
    while out.deadline is not None:
        t = out.deadline
        out = conn.on_timer(t)
        times.append((t, [(h.flags, p) for h, p in out.segments]))
    assert times == [
        (1.0, [(ACK | PSH, b"hello")]),
        (3.0, [(ACK | PSH, b"hello")]),
        (7.0, [(ACK | PSH, b"hello")]),
        (15.0, [(ACK | PSH, b"hello")]),
        (31.0, [(RST, b"")]),
    ]
    assert out.events == (TcpEvent.TIMEOUT, TcpEvent.CLOSED)
    assert conn.error == errno.ETIMEDOUT
    assert conn.statistics().timeouts == 4


def test_max_rto_caps_the_backoff() -> None:
    conn, _ = established(TcpConfig(timestamps=False, sack=False, max_rto=3.0))
    out = conn.send(b"x", 0.0)
    gaps = []
    for _ in range(4):
        t = out.deadline
        out = conn.on_timer(t)
        gaps.append(out.deadline - t)
    assert gaps == [2.0, 3.0, 3.0, 3.0]


def test_rto_follows_rfc6298_and_is_at_least_min_rto() -> None:
    # The SYN's round trip is the first sample: 0.1 s.
    conn, peer = established(TcpConfig(timestamps=False, sack=False, nodelay=True), now=0.1)
    assert (conn.srtt, conn.rttvar) == (pytest.approx(0.1), pytest.approx(0.05))
    assert conn.rto == 1.0  # 0.1 + 4 * 0.05 is below the minimum
    conn.send(b"b", 0.1)
    peer.now = 2.1  # a 2 s sample
    peer.seg(ACK, ack=ISS + 2)
    assert conn.srtt == pytest.approx(0.875 * 0.1 + 0.125 * 2.0)
    assert conn.rttvar == pytest.approx(0.75 * 0.05 + 0.25 * 1.9)
    assert conn.rto == pytest.approx(conn.srtt + 4 * conn.rttvar)


def test_min_rto_is_configurable() -> None:
    conn, peer = established(TcpConfig(timestamps=False, sack=False, min_rto=0.2))
    conn.send(b"a", 0.0)
    peer.now = 0.01
    out = peer.seg(ACK, ack=ISS + 2)
    assert conn.rto == pytest.approx(0.2)


def test_karns_rule_no_sample_from_a_retransmitted_segment() -> None:
    conn = TcpConnection(LPORT, RPORT, iss=ISS, config=TcpConfig(timestamps=False, sack=False))
    conn.connect(0.0)
    conn.on_timer(1.0)  # the SYN again
    peer = Peer(conn)
    peer.now = 1.1
    peer.seg(SYN | ACK, ack=ISS + 1)
    assert conn.srtt is None  # which SYN does the SYN-ACK answer? No sample.
    assert conn.rto == 3.0  # RFC 6298 5.7: at least 3 s after a SYN timed out
    conn.send(b"a", 2.0)
    conn.on_timer(5.0)  # retransmitted; RTO backed off to 6
    assert conn.rto == 6.0
    peer.now = 5.5
    peer.seg(ACK, ack=ISS + 2)
    assert conn.srtt is None  # ambiguous again
    assert conn.rto == 6.0  # the backed-off RTO stays until a sample
    conn.send(b"b", 6.0)
    peer.now = 6.3
    peer.seg(ACK, ack=ISS + 3)
    assert conn.srtt == pytest.approx(0.3)
    assert conn.rto == 1.0


def test_an_ack_of_new_data_restarts_the_timer() -> None:
    conn, peer = established(TcpConfig(timestamps=False, sack=False, nodelay=True))
    conn.send(b"a" * 1000, 0.0)
    conn.send(b"b" * 1000, 0.5)
    peer.now = 0.8
    out = peer.seg(ACK, ack=ISS + 1001)
    assert out.deadline == pytest.approx(0.8 + conn.rto)


def test_user_timeout_drops_a_connection_whose_data_stays_unacknowledged() -> None:
    conn, peer = established(TcpConfig(timestamps=False, sack=False, user_timeout=5.0))
    out = conn.send(b"x", 0.0)
    while out.deadline is not None and out.deadline < 5.0:
        out = conn.on_timer(out.deadline)
    assert out.deadline == 5.0
    out = conn.on_timer(5.0)
    assert out.events == (TcpEvent.TIMEOUT, TcpEvent.CLOSED)
    assert conn.error == errno.ETIMEDOUT
