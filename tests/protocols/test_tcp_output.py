"""Segment output (protocols/tcp_output.py): Nagle, the send buffer, window
scaling on what we send, and lower_mss (path MTU), against a peer played by
hand (``Peer`` from test_tcp_connection)."""

from __future__ import annotations

from trionet.protocols.tcp import TcpHeader, TcpOptions
from trionet.protocols.tcp_connection import TcpConfig, TcpConnection, TcpEvent

from tcp_pair import Pair
from test_tcp_connection import ACK, ISS, LPORT, PLAIN, RPORT, established, only


def test_nagle_holds_a_small_segment_while_data_is_unacknowledged() -> None:
    conn, peer = established()
    assert [p for _, p in conn.send(b"a", 0.0).segments] == [b"a"]
    assert conn.send(b"b", 0.0).segments == ()  # held: "a" is unacknowledged
    assert conn.send(b"c", 0.0).segments == ()
    out = peer.seg(ACK, ack=ISS + 2)
    assert [p for _, p in out.segments] == [b"bc"]


def test_nodelay_sends_small_segments_at_once() -> None:
    conn, _ = established(TcpConfig(timestamps=False, sack=False, nodelay=True))
    assert [p for _, p in conn.send(b"a", 0.0).segments] == [b"a"]
    assert [p for _, p in conn.send(b"b", 0.0).segments] == [b"b"]


def test_full_segments_go_out_regardless_of_nagle_up_to_the_window() -> None:
    conn, _ = established(window=4000)
    out = conn.send(bytes(10000), 0.0)
    assert [len(p) for _, p in out.segments] == [1460, 1460]  # the IW (3 segments) minus nothing; window 4000
    assert conn.snd_nxt == ISS + 1 + 2920


def test_the_send_buffer_is_bounded() -> None:
    conn, peer = established(TcpConfig(timestamps=False, sack=False, send_buffer=3000))
    assert conn.send(bytes(5000), 0.0).accepted == 3000
    assert conn.send(b"more", 0.0).accepted == 0
    assert conn.send_space == 0
    out = peer.seg(ACK, ack=ISS + 1 + 1460)
    assert TcpEvent.WRITABLE in out.events
    assert conn.send_space == 1460


def test_window_scaling_applies_to_windows_after_the_syn() -> None:
    config = TcpConfig(timestamps=False, sack=False)
    conn, peer = established(config, options=TcpOptions(mss=1460, wscale=4))
    assert conn.window_scales == (4, 3)
    peer.seg(ACK, ack=ISS + 1, window=10000)
    assert conn.snd_wnd == 160000
    # Our own window field is scaled by 3 (256 KiB buffer).
    out = peer.seg(ACK, b"x" * 10, ack=ISS + 1)
    out = conn.on_timer(1.0)
    ack, _ = only(out)
    assert ack.window == (256 * 1024 - 10) >> 3


def test_lower_mss_sends_what_is_in_flight_again_in_smaller_segments() -> None:
    """RFC 1191 / BSD tcp_mtudisc: the segments in flight were too big for
    the path; everything from snd_una goes out again at once, cut to the new
    size, without a congestion response."""
    conn, peer = established(TcpConfig(timestamps=False, sack=False, window_scaling=False, nodelay=True))
    out = conn.send(bytes(range(256)) * 16, 0.1)  # 4096 bytes: 1460 + 1460 + 1176
    assert [len(p) for _, p in out.segments] == [1460, 1460, 1176]
    cwnd = conn.cwnd
    out = conn.lower_mss(536, 0.2)
    assert [(h.seq, len(p)) for h, p in out.segments] == [
        (ISS + 1 + i, min(536, 4096 - i)) for i in range(0, 4096, 536)
    ]
    assert b"".join(p for _, p in out.segments) == bytes(range(256)) * 16
    assert conn.smss == 536 and conn.cwnd == cwnd
    stats = conn.statistics()
    assert stats.retransmits == 8 and stats.bytes_retransmitted == 4096
    # From now on new data goes in 536-byte segments too.
    peer.now = 0.3
    peer.seg(ack=ISS + 1 + 4096)
    out = conn.send(bytes(1000), 0.3)
    assert [len(p) for _, p in out.segments] == [536, 464]


def test_lower_mss_only_lowers_and_only_when_synchronized() -> None:
    conn = TcpConnection(LPORT, RPORT, iss=ISS, config=PLAIN)
    conn.connect(0.0)
    assert conn.lower_mss(500, 0.1).segments == ()  # SYN_SENT: the peer's MSS is not known yet
    conn, _ = established(options=TcpOptions(mss=1000))
    conn.send(bytes(3000), 0.1)
    for mss in (1000, 1460, 9000):  # not below the one in use
        out = conn.lower_mss(mss, 0.2)
        assert out.segments == () and conn.smss == 1000
    out = conn.lower_mss(10, 0.2)  # raised to MIN_MSS
    assert conn.smss == 64 and max(len(p) for _, p in out.segments) == 64
    assert sum(len(p) for _, p in out.segments) == 3000


def test_a_pair_recovers_through_a_path_that_drops_big_segments() -> None:
    """A link that silently drops a's segments over 536 bytes of payload (a
    router sending "fragmentation needed"): the glue's call to lower_mss
    after the first loss is all it takes; the transfer completes, with
    timestamps and SACK on."""
    config = TcpConfig()
    too_big: list[int] = []

    def drop(name: str, header: TcpHeader, payload: bytes) -> bool:
        if name == "a" and len(payload) + 12 > 536:
            too_big.append(header.seq)
            return True
        return False

    pair = Pair(config, config, drop=drop)
    data = bytes(range(256)) * 400
    pair.to_send["a"] += data
    pair.close_when_sent["a"] = True
    lowered = False

    def until() -> bool:
        nonlocal lowered
        if too_big and not lowered:
            lowered = True
            pair.handle("a", pair.a.lower_mss(536, pair.now))  # the ICMP arrived
        return bytes(pair.received["b"]) == data and pair.a.state.name == "FIN_WAIT_2"

    pair.run(until, max_time=60)
    assert bytes(pair.received["b"]) == data
    assert pair.a.smss == 536 - 12
    assert pair.a.statistics().timeouts == 0  # no RTO: the resend came at once
