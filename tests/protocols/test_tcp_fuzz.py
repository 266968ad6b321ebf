"""Hypothesis: random and mutated segments, timers and calls into a connection in every state.

Whatever arrives, the machine raises nothing (only documented caller errors
for calls the state forbids), everything it asks to send can be emitted,
and its invariants hold: snd_una <= snd_nxt <= snd_max, buffers within
their bounds, out-of-order blocks sorted and disjoint, the deadline it
reports is the one it has.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trionet.protocols.errors import RemoteProtocolError
from trionet.protocols.tcp import SEQ_MASK, TcpFlags, TcpHeader, TcpOptions
from trionet.protocols.tcp_connection import (
    LocalProtocolError,
    TcpConfig,
    TcpConnection,
    TcpEvent,
    TcpOutput,
    TcpState,
)

from tcp_pair import ADDR_A, ADDR_B

SYN, ACK, FIN, RST = TcpFlags.SYN, TcpFlags.ACK, TcpFlags.FIN, TcpFlags.RST
ISS, IRS = SEQ_MASK - 2000, 7000  # our sequence space wraps during the test
CONFIG = TcpConfig(recv_buffer=6000, send_buffer=5000, mss=500, max_ooo_blocks=4, msl=2.0, challenge_ack_limit=3)

STATES = [
    "SYN_SENT", "SYN_RECEIVED", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "CLOSE_WAIT",
    "CLOSING", "LAST_ACK", "TIME_WAIT", "CLOSED",
]


def check(conn: TcpConnection, out: TcpOutput) -> None:
    for header, payload in out.segments:
        header.emit(payload, ADDR_A, ADDR_B)  # never more than 40 bytes of options
    assert out.deadline == conn.next_deadline()
    assert conn._snd_una <= conn._snd_nxt <= conn._snd_max
    assert conn._snd_una - 1 <= conn._sb_base <= conn._snd_una + 1
    assert conn.buffered <= conn.config.send_buffer
    assert conn.readable + conn.ooo_bytes <= conn.config.recv_buffer
    assert len(conn._ooo.blocks) <= conn.config.max_ooo_blocks
    prev_end = conn._rcv_nxt
    for start, buf in conn._ooo.blocks:
        assert start > prev_end and buf
        prev_end = start + len(buf)
    if conn.state not in (TcpState.SYN_SENT, TcpState.CLOSED):
        assert conn._rcv_adv - conn._rcv_nxt <= conn.config.recv_buffer - conn.readable
    if conn.cwnd is not None:
        assert conn.cwnd >= 1
    if conn.state is TcpState.CLOSED:
        assert conn.next_deadline() is None
    if TcpEvent.CLOSED in out.events:
        assert out.events[-1] is TcpEvent.CLOSED


def seg(conn: TcpConnection, flags: TcpFlags, seq: int, payload: bytes = b"", ack: int | None = None, now: float = 0.0,
        window: int = 4000, options: TcpOptions = TcpOptions()) -> TcpOutput:
    h = TcpHeader(80, 40000, seq & SEQ_MASK, (conn.snd_max if ack is None else ack) & SEQ_MASK, flags, window, 0, options)
    out = conn.receive(h, payload, now)
    check(conn, out)
    return out


def build(state: str) -> tuple[TcpConnection, int]:
    """A connection in ``state`` (with data in flight where it can have some); returns it and the peer's next seq."""
    conn = TcpConnection(40000, 80, iss=ISS, config=CONFIG, ts_offset=99)
    ts = TcpOptions(mss=500, wscale=1, sack_permitted=True, timestamps=(5, 0))
    if state == "SYN_RECEIVED":
        conn.accept(TcpHeader(80, 40000, IRS, 0, SYN, 4000, 0, ts), b"", 0.0)
        return conn, IRS + 1
    conn.connect(0.0)
    if state == "SYN_SENT":
        conn.send(b"early", 0.0)
        return conn, IRS
    if state == "CLOSED":
        conn.abort(0.0)
        return conn, IRS
    seg(conn, SYN | ACK, IRS, ack=ISS + 1, options=ts)
    peer = IRS + 1
    conn.send(bytes(3000), 0.0)
    seg(conn, ACK, peer + 600, b"o" * 100)  # out-of-order data held
    if state == "ESTABLISHED":
        return conn, peer
    if state == "CLOSE_WAIT" or state == "LAST_ACK":
        seg(conn, ACK, peer, b"x" * 10)
        seg(conn, FIN | ACK, peer + 10)
        if state == "LAST_ACK":
            conn.close(0.0)
        return conn, peer + 11
    conn.close(0.0)
    if state == "FIN_WAIT_1":
        return conn, peer
    if state == "CLOSING":
        seg(conn, FIN | ACK, peer, ack=ISS + 1)
        return conn, peer + 1
    seg(conn, ACK, peer, ack=conn.snd_max)  # everything, FIN included
    if state == "FIN_WAIT_2":
        return conn, peer
    seg(conn, FIN | ACK, peer)
    return conn, peer + 1


def test_every_state_can_be_built() -> None:
    for state in STATES:
        conn, _ = build(state)
        assert conn.state.name == state


u32 = st.integers(0, SEQ_MASK)
near = st.integers(-3000, 9000)
opts = st.builds(
    TcpOptions,
    mss=st.none() | st.integers(0, 0xFFFF),
    wscale=st.none() | st.integers(0, 255),
    sack_permitted=st.booleans(),
    timestamps=st.none() | st.tuples(st.integers(0, 20) | u32, st.integers(0, 5000) | u32),
    sack_blocks=st.lists(st.tuples(u32, u32), max_size=2).map(tuple),
)
segment_action = st.tuples(
    st.just("segment"),
    st.integers(0, 255).map(TcpFlags),
    st.one_of(near, u32),
    st.one_of(st.integers(-3000, 4000), u32),
    st.integers(0, 0xFFFF),
    st.integers(0, 1200),
    opts,
)
other_action = st.one_of(
    st.tuples(st.just("time"), st.floats(0, 30)),
    st.tuples(st.just("send"), st.integers(1, 4000)),
    st.tuples(st.just("read"), st.integers(1, 4000)),
    st.tuples(st.just("close")),
    st.tuples(st.just("abort")),
    st.tuples(st.just("raw"), st.binary(min_size=20, max_size=80)),
)
actions = st.lists(st.one_of(segment_action, segment_action, other_action), max_size=25)


def run(state: str, script: list) -> None:
    conn, peer = build(state)
    now = 0.0
    for action in script:
        kind = action[0]
        if kind == "segment":
            _, flags, dseq, dack, window, size, options = action
            seq = peer + dseq if -3000 <= dseq <= 9000 else dseq
            ack = conn._snd_una + dack if -3000 <= dack <= 4000 else dack
            out = seg(conn, flags, seq, bytes(size), ack=ack, now=now, window=window, options=options)
        elif kind == "time":
            now += action[1]
            out = conn.on_timer(now)
        elif kind == "raw":
            try:
                h, payload = TcpHeader.parse(action[1], ADDR_B, ADDR_A)
            except RemoteProtocolError:
                continue
            out = conn.receive(h, bytes(payload), now)
        else:
            try:
                if kind == "send":
                    out = conn.send(bytes(action[1]), now)
                elif kind == "read":
                    out = conn.read(action[1], now)
                elif kind == "close":
                    out = conn.close(now)
                else:
                    out = conn.abort(now)
            except LocalProtocolError:
                continue
        check(conn, out)


@settings(max_examples=40)
@given(st.sampled_from(STATES), actions)
def test_random_segments_and_calls_keep_the_invariants(state: str, script: list) -> None:
    run(state, script)


@settings(max_examples=30)
@given(st.sampled_from(STATES), st.lists(st.tuples(st.integers(0, 120), st.integers(0, 255)), min_size=1, max_size=6))
def test_mutated_real_segments_keep_the_invariants(state: str, edits: list[tuple[int, int]]) -> None:
    # A segment the peer could have sent, mutated, re-checksummed by emit-parse of the fields.
    conn, peer = build(state)
    h = TcpHeader(80, 40000, peer & SEQ_MASK, conn.snd_una, ACK | FIN, 3000, 0, TcpOptions(timestamps=(9, 1)))
    wire = bytearray(h.emit(bytes(range(100)), ADDR_B, ADDR_A))
    for pos, value in edits:
        if pos < len(wire):
            wire[pos] = value
    # Fix the checksum so the mutation reaches the machine.
    wire[16:18] = b"\0\0"
    from trionet.protocols.checksum import internet_checksum, pseudo_header_sum
    wire[16:18] = internet_checksum(bytes(wire), pseudo_header_sum(ADDR_B, ADDR_A, 6, len(wire))).to_bytes(2, "big")
    try:
        parsed, payload = TcpHeader.parse(bytes(wire), ADDR_B, ADDR_A)
    except RemoteProtocolError:
        return
    check(conn, conn.receive(parsed, bytes(payload), 0.5))
    check(conn, conn.on_timer(100.0))
