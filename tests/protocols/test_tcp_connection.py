"""The TCP connection machine, one RFC behaviour at a time, with constructed segments.

The test plays the peer by hand: ``Peer`` builds the segments the peer would
send and the tests check, segment by segment, what the machine answers. The
parts the connection is built from have their own files (``test_tcp_output``,
``test_tcp_timers``, ``test_tcp_recovery``...), which use ``Peer`` and
``established`` from here.
"""

from __future__ import annotations

import errno

import pytest

from trionet.protocols.tcp import SEQ_MASK, TcpFlags, TcpHeader, TcpOptions
from trionet.protocols.tcp_connection import (
    LocalProtocolError,
    TcpConfig,
    TcpConnection,
    TcpEvent,
    TcpOutput,
    TcpState,
    is_connection_request,
)

from tcp_pair import Pair

SYN, ACK, FIN, RST, PSH = TcpFlags.SYN, TcpFlags.ACK, TcpFlags.FIN, TcpFlags.RST, TcpFlags.PSH
ISS = 1000
IRS = 50000
LPORT, RPORT = 40000, 80

PLAIN = TcpConfig(timestamps=False, sack=False, window_scaling=False)


class Peer:
    """The far end, by hand: builds segments to feed to ``conn``."""

    def __init__(self, conn: TcpConnection, irs: int = IRS) -> None:
        self.conn = conn
        self.seq = irs  # the peer's next sequence number
        self.now = 0.0

    def seg(
        self,
        flags: TcpFlags = ACK,
        payload: bytes = b"",
        *,
        seq: int | None = None,
        ack: int | None = None,
        window: int = 65535,
        options: TcpOptions = TcpOptions(),
    ) -> TcpOutput:
        h = TcpHeader(
            RPORT, LPORT,
            (self.seq if seq is None else seq) & SEQ_MASK,
            (self.conn.snd_nxt if ack is None else ack) & SEQ_MASK,
            flags, window, 0, options,
        )
        if seq is None:
            self.seq += len(payload) + bool(flags & SYN) + bool(flags & FIN)
        return self.conn.receive(h, payload, self.now)


def established(
    config: TcpConfig = PLAIN, *, window: int = 65535, options: TcpOptions | None = None, now: float = 0.0
) -> tuple[TcpConnection, Peer]:
    """A connection after an active open (the SYN-ACK arriving at ``now``), and its peer."""
    conn = TcpConnection(LPORT, RPORT, iss=ISS, config=config)
    out = conn.connect(0.0)
    (syn, _), = out.segments
    peer = Peer(conn)
    peer.now = now
    opts = options if options is not None else TcpOptions(mss=1460)
    out = peer.seg(SYN | ACK, ack=ISS + 1, window=window, options=opts)
    assert TcpEvent.CONNECTED in out.events
    assert conn.state is TcpState.ESTABLISHED
    return conn, peer


def flags_of(out: TcpOutput) -> list[TcpFlags]:
    return [h.flags for h, _ in out.segments]


def only(out: TcpOutput) -> tuple[TcpHeader, bytes]:
    assert len(out.segments) == 1, out.segments
    return out.segments[0]


####################################################################
# Opening
####################################################################


def test_active_open_sends_a_syn_with_our_options_and_acks_the_syn_ack() -> None:
    conn = TcpConnection(LPORT, RPORT, iss=ISS, config=TcpConfig(recv_buffer=1 << 20), ts_offset=5)
    out = conn.connect(2.0)
    syn, payload = only(out)
    assert (syn.sport, syn.dport, syn.seq, syn.flags, payload) == (LPORT, RPORT, ISS, SYN, b"")
    assert syn.window == 65535
    assert syn.options == TcpOptions(mss=1460, wscale=5, sack_permitted=True, timestamps=(2005, 0))
    assert conn.state is TcpState.SYN_SENT
    assert out.deadline == 3.0  # initial RTO 1 s

    peer = Peer(conn)
    peer.now = 2.05
    out = peer.seg(SYN | ACK, ack=ISS + 1, window=1000,
                   options=TcpOptions(mss=1400, wscale=2, sack_permitted=True, timestamps=(777, 2005)))
    assert out.events == (TcpEvent.CONNECTED,)
    ack, _ = only(out)
    assert (ack.flags, ack.seq, ack.ack) == (ACK, ISS + 1, IRS + 1)
    assert ack.options.timestamps == (2055, 777)
    assert conn.state is TcpState.ESTABLISHED
    assert conn.window_scales == (2, 5)
    assert conn.snd_wnd == 1000  # a SYN's window is never scaled
    assert conn.timestamps_enabled and conn.sack_enabled
    assert conn.smss == 1400 - 12
    assert conn.srtt == pytest.approx(0.05)  # from the timestamp echo
    assert out.deadline is None  # nothing outstanding


def test_passive_open_answers_a_syn_and_establishes_on_the_ack() -> None:
    conn = TcpConnection(LPORT, RPORT, iss=ISS, config=TcpConfig())
    syn = TcpHeader(RPORT, LPORT, IRS, 0, SYN, 8192, 0, TcpOptions(mss=536, wscale=7, timestamps=(10, 0)))
    assert is_connection_request(syn)
    out = conn.accept(syn, b"", 1.0)
    synack, _ = only(out)
    assert synack.flags == SYN | ACK
    assert (synack.seq, synack.ack) == (ISS, IRS + 1)
    # We answer only what was offered: no SACK-permitted, since the SYN had none.
    assert synack.options.mss == 1460 and synack.options.wscale == 3
    assert not synack.options.sack_permitted
    assert synack.options.timestamps == (1000, 10)
    assert conn.state is TcpState.SYN_RECEIVED
    h = TcpHeader(RPORT, LPORT, IRS + 1, ISS + 1, ACK, 100, 0, TcpOptions(timestamps=(11, 1000)))
    out = conn.receive(h, b"", 1.1)
    assert out.events == (TcpEvent.CONNECTED,)
    assert out.segments == ()
    assert conn.state is TcpState.ESTABLISHED
    assert conn.snd_wnd == 100 << 7


def test_accept_refuses_what_is_not_a_connection_request() -> None:
    conn = TcpConnection(LPORT, RPORT, iss=ISS)
    with pytest.raises(ValueError):
        conn.accept(TcpHeader(RPORT, LPORT, IRS, 0, SYN | ACK), b"", 0.0)
    conn.connect(0.0)
    with pytest.raises(LocalProtocolError):
        conn.connect(0.0)


def test_a_lost_syn_ack_is_sent_again_when_the_syn_comes_again() -> None:
    conn = TcpConnection(LPORT, RPORT, iss=ISS, config=PLAIN)
    syn = TcpHeader(RPORT, LPORT, IRS, 0, SYN, 8192)
    conn.accept(syn, b"", 0.0)
    out = conn.receive(syn, b"", 0.5)
    synack, _ = only(out)
    assert (synack.flags, synack.seq, synack.ack) == (SYN | ACK, ISS, IRS + 1)


def test_syn_sent_ignores_a_bad_ack_with_a_reset_and_a_rst_without_ack() -> None:
    conn = TcpConnection(LPORT, RPORT, iss=ISS, config=PLAIN)
    conn.connect(0.0)
    peer = Peer(conn)
    rst, _ = only(peer.seg(SYN | ACK, ack=ISS + 7))  # acknowledges what we never sent
    assert (rst.flags, rst.seq) == (RST, ISS + 7)
    assert peer.seg(RST, seq=IRS).segments == ()
    assert conn.state is TcpState.SYN_SENT


def test_a_rst_answering_our_syn_means_refused() -> None:
    conn = TcpConnection(LPORT, RPORT, iss=ISS, config=PLAIN)
    conn.connect(0.0)
    out = Peer(conn).seg(RST | ACK, seq=0, ack=ISS + 1)
    assert out.events == (TcpEvent.RESET, TcpEvent.CLOSED)
    assert conn.error == errno.ECONNREFUSED
    assert conn.state is TcpState.CLOSED
    assert out.deadline is None


def test_syn_retransmission_backs_off_and_gives_up() -> None:
    conn = TcpConnection(LPORT, RPORT, iss=ISS, config=TcpConfig(max_syn_retries=3))
    out = conn.connect(0.0)
    times = []
    while out.deadline is not None:
        t = out.deadline
        out = conn.on_timer(t)
        times.append((t, [h.flags for h, _ in out.segments]))
    assert times == [(1.0, [SYN]), (3.0, [SYN]), (7.0, [SYN]), (15.0, [])]
    assert conn.error == errno.ETIMEDOUT
    assert out.events == (TcpEvent.TIMEOUT, TcpEvent.CLOSED)


def test_simultaneous_open() -> None:
    pair = Pair(PLAIN, PLAIN, simultaneous=True)
    pair.run(until=lambda: pair.a.state is pair.b.state is TcpState.ESTABLISHED, max_time=5)
    assert pair.a.state is pair.b.state is TcpState.ESTABLISHED
    assert pair.now < 0.1  # no retransmission needed
    # Both went through SYN_RECEIVED: each sent SYN, then SYN-ACK.
    flags = [(name, h.flags) for _, name, h, _ in pair.sent_log]
    assert ("a", SYN) in flags and ("a", SYN | ACK) in flags
    assert ("b", SYN) in flags and ("b", SYN | ACK) in flags
    pair.to_send["a"] += b"x" * 5000
    pair.to_send["b"] += b"y" * 3000
    pair.run(until=lambda: len(pair.received["b"]) == 5000 and len(pair.received["a"]) == 3000, max_time=5)
    assert pair.received["b"] == b"x" * 5000 and pair.received["a"] == b"y" * 3000


def test_data_on_a_syn_is_not_acknowledged() -> None:
    conn = TcpConnection(LPORT, RPORT, iss=ISS, config=PLAIN)
    synack, _ = only(conn.accept(TcpHeader(RPORT, LPORT, IRS, 0, SYN, 8192), b"early", 0.0))
    assert synack.ack == IRS + 1
    assert conn.readable == 0


####################################################################
# Closing
####################################################################


def test_orderly_close_through_fin_wait_and_time_wait() -> None:
    conn, peer = established(TcpConfig(timestamps=False, sack=False, msl=5.0))
    fin, _ = only(conn.close(1.0))
    assert fin.flags == FIN | ACK and fin.seq == ISS + 1
    assert conn.state is TcpState.FIN_WAIT_1
    peer.now = 1.1
    assert peer.seg(ACK, ack=ISS + 2).segments == ()
    assert conn.state is TcpState.FIN_WAIT_2
    with pytest.raises(LocalProtocolError):
        conn.send(b"late", 1.1)
    peer.now = 2.0
    out = peer.seg(FIN | ACK, b"bye")
    assert out.events == (TcpEvent.DATA, TcpEvent.EOF)
    ack, _ = only(out)
    assert ack.ack == IRS + 1 + 3 + 1
    assert conn.state is TcpState.TIME_WAIT
    assert out.deadline == 12.0  # 2 MSL
    assert conn.read(100, 2.0).data == b"bye" and conn.at_eof
    # The peer's FIN again (our ACK was lost): ACK it, restart 2 MSL.
    out = conn.receive(TcpHeader(RPORT, LPORT, IRS + 4, ISS + 2, FIN | ACK, 100), b"", 6.0)
    ack, _ = only(out)
    assert (ack.flags, ack.ack) == (ACK, IRS + 5)
    assert out.deadline == 16.0
    assert conn.on_timer(15.9).events == ()
    out = conn.on_timer(16.0)
    assert out.events == (TcpEvent.CLOSED,)
    assert conn.state is TcpState.CLOSED and conn.error is None


def test_passive_close_through_close_wait_and_last_ack() -> None:
    conn, peer = established()
    out = peer.seg(FIN | ACK)
    assert out.events == (TcpEvent.EOF,)
    assert conn.state is TcpState.CLOSE_WAIT and conn.at_eof
    # Half-closed by the peer: we may still send.
    out = conn.send(b"still talking", 0.1)
    (h, data), = out.segments
    assert data == b"still talking"
    fin, _ = only(conn.close(0.2))
    assert fin.flags & FIN and fin.seq == ISS + 1 + 13
    assert conn.state is TcpState.LAST_ACK
    out = peer.seg(ACK, ack=ISS + 1 + 13 + 1)
    assert out.events == (TcpEvent.WRITABLE, TcpEvent.CLOSED)
    assert conn.state is TcpState.CLOSED


def test_half_close_keeps_receiving() -> None:
    pair = Pair(PLAIN, PLAIN)
    pair.run(until=lambda: pair.b is not None and pair.b.state is TcpState.ESTABLISHED)
    pair.close_when_sent["a"] = True
    pair.run(until=lambda: pair.b.at_eof and pair.a.state is TcpState.FIN_WAIT_2)
    assert pair.a.state is TcpState.FIN_WAIT_2 and pair.b.state is TcpState.CLOSE_WAIT
    pair.to_send["b"] += bytes(range(256)) * 400
    pair.close_when_sent["b"] = True
    pair.run(until=lambda: pair.a.at_eof)
    assert pair.received["a"] == bytes(range(256)) * 400
    assert pair.a.state is TcpState.TIME_WAIT
    pair.run(until=lambda: pair.a.state is pair.b.state is TcpState.CLOSED)
    assert pair.events["a"][-1] is TcpEvent.CLOSED and pair.events["b"][-1] is TcpEvent.CLOSED


def test_simultaneous_close_goes_through_closing() -> None:
    conn, peer = established(TcpConfig(timestamps=False, sack=False, msl=1.0))
    fin, _ = only(conn.close(0.0))
    # The peer's FIN crosses ours: it does not acknowledge our FIN.
    out = peer.seg(FIN | ACK, ack=ISS + 1)
    assert conn.state is TcpState.CLOSING
    ack, _ = only(out)
    assert ack.ack == IRS + 2
    out = peer.seg(ACK, ack=ISS + 2)
    assert conn.state is TcpState.TIME_WAIT
    assert out.deadline == 2.0
    assert conn.on_timer(2.0).events == (TcpEvent.CLOSED,)


def test_simultaneous_close_of_two_machines() -> None:
    pair = Pair(TcpConfig(msl=2.0), TcpConfig(msl=2.0))
    pair.run(until=lambda: pair.b is not None and pair.b.state is TcpState.ESTABLISHED)
    pair.handle("a", pair.a.close(pair.now))
    pair.handle("b", pair.b.close(pair.now))
    pair.run(until=lambda: pair.a.state is pair.b.state is TcpState.TIME_WAIT, max_time=10)
    assert pair.a.state is pair.b.state is TcpState.TIME_WAIT
    start = pair.now
    pair.run(until=lambda: pair.a.state is pair.b.state is TcpState.CLOSED, max_time=20)
    assert pair.a.state is pair.b.state is TcpState.CLOSED
    assert pair.now == pytest.approx(start + 4.0, abs=0.05)


def test_abort_sends_a_rst_and_closes() -> None:
    conn, peer = established()
    conn.send(b"queued", 0.0)
    out = conn.abort(0.1)
    rst, _ = only(out)
    assert rst.flags == RST and rst.seq == ISS + 1 + 6
    assert out.events == (TcpEvent.CLOSED,)
    # A closed TCB answers like no connection at all (RFC 9293 3.10.7.1).
    rst, _ = only(peer.seg(ACK, b"x", ack=ISS + 1))
    assert (rst.flags, rst.seq) == (RST, ISS + 1)
    assert peer.seg(RST).segments == ()


####################################################################
# RST and SYN handling (RFC 5961)
####################################################################


def test_rst_at_rcv_nxt_resets() -> None:
    conn, peer = established()
    out = peer.seg(RST)
    assert out.events == (TcpEvent.RESET, TcpEvent.CLOSED)
    assert conn.error == errno.ECONNRESET
    assert out.segments == ()


def test_rst_in_window_but_not_exact_draws_a_challenge_ack() -> None:
    conn, peer = established()
    out = peer.seg(RST, seq=IRS + 1 + 100)
    ack, _ = only(out)
    assert (ack.flags, ack.seq, ack.ack) == (ACK, ISS + 1, IRS + 1)
    assert conn.state is TcpState.ESTABLISHED
    assert conn.statistics().challenge_acks == 1


def test_rst_outside_the_window_is_dropped_silently() -> None:
    conn, peer = established()
    assert peer.seg(RST, seq=IRS + 1 + 70000).segments == ()
    assert peer.seg(RST, seq=IRS - 5).segments == ()
    assert conn.state is TcpState.ESTABLISHED


def test_syn_in_a_synchronized_state_draws_a_challenge_ack() -> None:
    conn, peer = established()
    for seq in (IRS + 1, IRS + 5000):
        ack, _ = only(peer.seg(SYN, seq=seq, ack=0))
        assert (ack.flags, ack.ack) == (ACK, IRS + 1)
    assert conn.state is TcpState.ESTABLISHED


def test_a_syn_ack_sent_again_is_acknowledged_at_once() -> None:
    # Our ACK of the SYN-ACK was lost: the peer, still in SYN_RECEIVED,
    # sends its SYN-ACK again, and only our answer establishes it (issue 13).
    conn, peer = established()
    ack, _ = only(peer.seg(SYN | ACK, seq=IRS, ack=ISS + 1))
    assert (ack.flags, ack.seq, ack.ack) == (ACK, ISS + 1, IRS + 1)
    assert conn.state is TcpState.ESTABLISHED
    assert conn.statistics().challenge_acks == 0


def test_the_answer_to_a_syn_ack_sent_again_is_not_rate_limited() -> None:
    conn, peer = established(TcpConfig(timestamps=False, sack=False, oow_ack_interval=0.5))
    assert len(peer.seg(ACK, seq=IRS - 100).segments) == 1  # an old ACK, answered (the limit starts)
    assert peer.seg(ACK, seq=IRS - 100).segments == ()  # within 0.5 s: suppressed
    for _ in range(3):
        ack, _ = only(peer.seg(SYN | ACK, seq=IRS, ack=ISS + 1))
        assert (ack.flags, ack.ack) == (ACK, IRS + 1)
    assert conn.statistics().oow_acks_suppressed == 1


def test_a_late_copy_of_the_peers_syn_is_acknowledged() -> None:
    conn = TcpConnection(LPORT, RPORT, iss=ISS, config=PLAIN)
    syn = TcpHeader(RPORT, LPORT, IRS, 0, SYN, 8192)
    conn.accept(syn, b"", 0.0)
    conn.receive(TcpHeader(RPORT, LPORT, IRS + 1, ISS + 1, ACK, 8192), b"", 0.1)
    assert conn.state is TcpState.ESTABLISHED
    ack, _ = only(conn.receive(syn, b"", 0.2))
    assert (ack.flags, ack.seq, ack.ack) == (ACK, ISS + 1, IRS + 1)
    assert conn.state is TcpState.ESTABLISHED


def test_a_syn_ack_for_data_already_received_is_answered_within_the_limit() -> None:
    # Once data has arrived the SYN-ACK is wholly old (the peer is
    # synchronized): the rate-limited ACK of any unacceptable segment.
    conn, peer = established(TcpConfig(timestamps=False, sack=False, delayed_ack=0))
    only(peer.seg(ACK, b"hello"))
    ack, _ = only(peer.seg(SYN | ACK, seq=IRS, ack=ISS + 1))
    assert ack.ack == IRS + 6
    assert peer.seg(SYN | ACK, seq=IRS, ack=ISS + 1).segments == ()
    assert conn.statistics().oow_acks_suppressed == 1
    assert conn.readable == 5


def test_challenge_acks_are_rate_limited() -> None:
    conn, peer = established(TcpConfig(timestamps=False, sack=False, challenge_ack_limit=3))
    sent = sum(len(peer.seg(RST, seq=IRS + 10).segments) for _ in range(10))
    assert sent == 3
    assert conn.statistics().challenge_acks_suppressed == 7
    peer.now = 1.0
    assert len(peer.seg(RST, seq=IRS + 10).segments) == 1


def test_an_ack_for_unsent_data_is_answered_and_dropped() -> None:
    conn, peer = established()
    out = peer.seg(ACK, b"data", ack=ISS + 500)
    ack, _ = only(out)
    assert ack.ack == IRS + 1  # the data was not taken
    assert conn.readable == 0


def test_an_ack_too_far_in_the_past_draws_a_challenge_ack() -> None:
    conn, peer = established(window=1000)
    ack, _ = only(peer.seg(ACK, b"data", ack=ISS + 1 - 5000))
    assert ack.ack == IRS + 1
    assert conn.statistics().challenge_acks == 1


def test_in_syn_received_a_bad_ack_is_answered_with_a_reset() -> None:
    conn = TcpConnection(LPORT, RPORT, iss=ISS, config=PLAIN)
    conn.accept(TcpHeader(RPORT, LPORT, IRS, 0, SYN, 8192), b"", 0.0)
    out = conn.receive(TcpHeader(RPORT, LPORT, IRS + 1, ISS + 99, ACK, 100), b"", 0.1)
    rst, _ = only(out)
    assert (rst.flags, rst.seq) == (RST, ISS + 99)
    assert conn.state is TcpState.SYN_RECEIVED


####################################################################
# Receiving: delayed ACKs, SACK, windows, PAWS
####################################################################


def test_delayed_ack_waits_up_to_200_ms_for_one_segment() -> None:
    conn, peer = established()
    peer.now = 1.0
    out = peer.seg(ACK | PSH, b"x" * 1460, ack=ISS + 1)
    assert out.segments == () and out.deadline == pytest.approx(1.2)
    assert conn.on_timer(1.19).segments == ()
    ack, _ = only(conn.on_timer(1.2))
    assert ack.ack == IRS + 1 + 1460


def test_every_second_full_segment_is_acked_at_once() -> None:
    conn, peer = established()
    assert peer.seg(ACK, b"x" * 1460).segments == ()
    ack, _ = only(peer.seg(ACK, b"x" * 1460))
    assert ack.ack == IRS + 1 + 2920
    assert ack.window == 65535  # unscaled connection, 256 KiB buffer: capped
    assert peer.seg(ACK, b"x" * 1460).segments == ()


def test_delayed_ack_can_be_turned_off() -> None:
    conn, peer = established(TcpConfig(timestamps=False, sack=False, delayed_ack=0))
    assert len(peer.seg(ACK, b"x").segments) == 1


def test_out_of_order_data_is_acked_at_once_with_sack_blocks() -> None:
    config = TcpConfig(timestamps=False)
    conn, peer = established(config, options=TcpOptions(mss=1460, sack_permitted=True))
    base = IRS + 1
    ack, _ = only(peer.seg(ACK, b"b" * 100, seq=base + 100))
    assert ack.ack == base and ack.options.sack_blocks == ((base + 100, base + 200),)
    ack, _ = only(peer.seg(ACK, b"d" * 100, seq=base + 300))
    assert ack.options.sack_blocks == ((base + 300, base + 400), (base + 100, base + 200))
    ack, _ = only(peer.seg(ACK, b"c" * 100, seq=base + 200))  # joins both blocks
    assert ack.options.sack_blocks == ((base + 100, base + 400),)
    assert conn.readable == 0 and conn.ooo_bytes == 300
    ack, _ = only(peer.seg(ACK, b"a" * 100, seq=base))  # fills the hole: ACK at once
    assert ack.ack == base + 400 and ack.options.sack_blocks == ()
    assert conn.read(1000, 0.0).data == b"a" * 100 + b"b" * 100 + b"c" * 100 + b"d" * 100


def test_at_most_three_sack_blocks_with_timestamps_most_recent_first() -> None:
    conn, peer = established(TcpConfig(), options=TcpOptions(mss=1460, sack_permitted=True, timestamps=(1, 0)))
    base = IRS + 1
    for i in (1, 3, 5, 7):
        out = peer.seg(ACK, b"z" * 10, seq=base + 100 * i, options=TcpOptions(timestamps=(2, 0)))
    ack, _ = only(out)
    assert ack.options.sack_blocks == tuple((base + 100 * i, base + 100 * i + 10) for i in (7, 5, 3))
    ack.emit(b"", bytes(4), bytes(4))  # fits in 40 bytes of options


def test_overlapping_out_of_order_segments_keep_the_first_copy() -> None:
    conn, peer = established()
    base = IRS + 1
    peer.seg(ACK, b"B" * 100, seq=base + 100)
    peer.seg(ACK, b"X" * 300, seq=base + 50)  # overlaps on both sides
    peer.seg(ACK, b"A" * 50, seq=base)
    assert conn.read(1000, 0.0).data == b"A" * 50 + b"X" * 50 + b"B" * 100 + b"X" * 150


def test_the_receive_window_closes_and_reopens_with_an_update() -> None:
    config = TcpConfig(timestamps=False, sack=False, recv_buffer=4000, delayed_ack=0)
    conn, peer = established(config)
    windows = []
    for _ in range(3):
        ack, _ = only(peer.seg(ACK, b"x" * 1460))
        windows.append(ack.window)
    assert windows == [2540, 1080, 0]
    # Only what fits is taken: the window is 0, the segment is trimmed away.
    ack, _ = only(peer.seg(ACK, b"y" * 100, seq=IRS + 1 + 4000))
    assert ack.ack == IRS + 1 + 4000 and ack.window == 0
    assert conn.readable == 4000
    # Reading a little does not advertise a silly window.
    assert conn.read(100, 0.0).segments == ()
    out = conn.read(3000, 0.0)
    ack, _ = only(out)
    assert ack.window == 3100


def test_the_receive_buffer_never_exceeds_its_bound() -> None:
    config = TcpConfig(timestamps=False, sack=False, recv_buffer=3000)
    conn, peer = established(config)
    for off in range(0, 20000, 700):
        peer.seg(ACK, b"q" * 1000, seq=IRS + 1 + off)
        assert conn.readable + conn.ooo_bytes <= 3000


def test_paws_drops_an_old_timestamp() -> None:
    conn, peer = established(TcpConfig(), options=TcpOptions(mss=1460, timestamps=(1000, 0)))
    peer.seg(ACK, b"new", options=TcpOptions(timestamps=(1005, 0)))
    out = peer.seg(ACK, b"old", options=TcpOptions(timestamps=(900, 0)))
    ack, _ = only(out)
    assert ack.ack == IRS + 1 + 3
    assert conn.statistics().paws_dropped == 1
    assert ack.options.timestamps[1] == 1005  # TS.Recent


####################################################################
# Sequence wrap-around
####################################################################


def test_transfer_across_sequence_wrap() -> None:
    pair = Pair(iss_a=SEQ_MASK - 3000, iss_b=SEQ_MASK - 10, loss=0.02, seed=4)
    data = bytes(range(251)) * 1000
    pair.to_send["a"] += data
    pair.to_send["b"] += data[:9000]
    pair.run(until=lambda: len(pair.received["b"]) == len(data) and len(pair.received["a"]) == 9000, max_time=600)
    assert pair.received["b"] == data
    assert pair.received["a"] == data[:9000]
    assert pair.a.snd_una < 1 << 20  # wrapped


####################################################################
# Closing before the handshake completes
####################################################################


def test_close_in_syn_sent_with_nothing_queued_just_ends() -> None:
    conn = TcpConnection(LPORT, RPORT, iss=ISS, config=PLAIN)
    conn.connect(0.0)
    out = conn.close(0.1)
    assert out.segments == () and out.events == (TcpEvent.CLOSED,)
    assert conn.state is TcpState.CLOSED


def test_close_in_syn_sent_with_queued_data_sends_it_then_the_fin() -> None:
    conn = TcpConnection(LPORT, RPORT, iss=ISS, config=PLAIN)
    conn.connect(0.0)
    conn.send(b"request", 0.0)
    assert conn.close(0.0).segments == ()
    out = Peer(conn).seg(SYN | ACK, ack=ISS + 1, options=TcpOptions(mss=1460))
    assert out.events == (TcpEvent.CONNECTED,)
    (h, p), = out.segments
    assert p == b"request" and h.flags == ACK | PSH | FIN
    assert conn.state is TcpState.FIN_WAIT_1


def test_close_in_syn_received_sends_the_fin_after_the_handshake() -> None:
    conn = TcpConnection(LPORT, RPORT, iss=ISS, config=PLAIN)
    conn.accept(TcpHeader(RPORT, LPORT, IRS, 0, SYN, 8192), b"", 0.0)
    assert conn.close(0.0).segments == ()
    out = conn.receive(TcpHeader(RPORT, LPORT, IRS + 1, ISS + 1, ACK, 8192), b"", 0.1)
    fin, _ = only(out)
    assert fin.flags == ACK | FIN and conn.state is TcpState.FIN_WAIT_1


def test_a_rst_in_syn_received_ends_the_embryonic_connection() -> None:
    conn = TcpConnection(LPORT, RPORT, iss=ISS, config=PLAIN)
    conn.accept(TcpHeader(RPORT, LPORT, IRS, 0, SYN, 8192), b"", 0.0)
    out = conn.receive(TcpHeader(RPORT, LPORT, IRS + 1, 0, RST), b"", 0.1)
    assert out.events == (TcpEvent.RESET, TcpEvent.CLOSED)
    assert conn.error == errno.ECONNREFUSED


def test_a_rst_in_time_wait_is_ignored() -> None:
    # RFC 1337: TIME-WAIT assassination.
    conn, peer = established(TcpConfig(timestamps=False, sack=False, msl=5.0))
    conn.close(0.0)
    peer.seg(FIN | ACK, ack=ISS + 2)
    assert conn.state is TcpState.TIME_WAIT
    assert peer.seg(RST).events == ()
    assert conn.state is TcpState.TIME_WAIT
