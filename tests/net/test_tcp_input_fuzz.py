"""Hypothesis against TCP input on a host with a listener and a live
connection: no segment, however odd, crashes a thread, the SYN cache stays
bounded, every connection's sequence space stays ordered, and the live
connection still carries data unless a segment legitimately reset it.

Segments carry valid checksums (a bad checksum is a counted drop long before
TCP, see ``test_inet_fuzz.py``), come from the peer or from a stranger, to
the listener, to the connection or to closed ports, with every flag
combination, sequence and acknowledgment numbers near the connection's or
anywhere, random windows, options and payloads.

Each example boots its own pair of hosts in its own ``trio.run`` under a
``MockClock`` (a Hypothesis example cannot await).
"""

from __future__ import annotations

import random
import threading
from functools import partial

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trionet
from trionet.protocols.ethernet import EthernetHeader
from trionet.protocols.ipv4 import IPv4Header, ip_aton
from trionet.protocols.tcp import SEQ_MASK, TcpFlags, TcpHeader, TcpOptions

A_IP, B_IP, STRANGER = ip_aton("10.0.0.1"), ip_aton("10.0.0.2"), ip_aton("10.0.0.77")

options = st.one_of(
    st.just(TcpOptions()),
    st.builds(
        TcpOptions,
        mss=st.none() | st.integers(0, 0xFFFF),
        wscale=st.none() | st.integers(0, 255),
        sack_permitted=st.booleans(),
        sack_blocks=st.lists(
            st.tuples(st.integers(0, SEQ_MASK), st.integers(0, SEQ_MASK)), max_size=3
        ).map(tuple),
        timestamps=st.none() | st.tuples(st.integers(0, SEQ_MASK), st.integers(0, SEQ_MASK)),
    ),
)

segment = st.fixed_dictionaries(
    {
        "from_peer": st.booleans(),
        "to": st.sampled_from(["listener", "connection", "closed"]),
        "sport": st.sampled_from(["connection", "other"]),
        "flags": st.integers(0, 0xFF),
        "seq": st.one_of(st.sampled_from(["rcv_nxt", "rcv_nxt-1", "rcv_nxt+1000"]), st.integers(0, SEQ_MASK)),
        "ack": st.one_of(st.sampled_from(["snd_una", "snd_max", "snd_una-1"]), st.integers(0, SEQ_MASK)),
        "window": st.integers(0, 0xFFFF),
        "options": options,
        "payload": st.binary(max_size=64),
    }
)


async def _run(segments: list[dict]) -> None:
    async with trionet.open_network(seed=1) as net:
        a, b = await net.add_host("a"), await net.add_host("b")
        link = await net.link(a, b, delay=0.001)
        a.ifconfig(link.ends[0].name, "10.0.0.1/24")
        b.ifconfig(link.ends[1].name, "10.0.0.2/24")
        (listener,) = await b.open_tcp_listeners(80)
        client = await a.open_tcp_stream("10.0.0.2", 80)
        server = await listener.accept()
        b_if = link.ends[1]
        conn = server._pcb.peek()
        for s in segments:
            src = A_IP if s["from_peer"] else STRANGER
            sport = client._pcb.lport if s["sport"] == "connection" else 40000
            dport = {"listener": 80, "connection": 80, "closed": 9}[s["to"]]
            seq, ack = s["seq"], s["ack"]
            if isinstance(seq, str):
                seq = conn.rcv_nxt + {"rcv_nxt": 0, "rcv_nxt-1": -1, "rcv_nxt+1000": 1000}[seq]
            if isinstance(ack, str):
                ack = {"snd_una": conn.snd_una, "snd_max": conn.snd_max, "snd_una-1": conn.snd_una - 1}[ack]
            th = TcpHeader(
                sport, dport, seq & SEQ_MASK, ack & SEQ_MASK, TcpFlags(s["flags"]),
                window=s["window"], options=s["options"],
            )
            try:
                raw = th.emit(s["payload"], src, B_IP)
            except ValueError:
                continue  # more options than fit in 40 bytes: not a segment
            packet = IPv4Header(src, B_IP, 6).emit(raw)
            b_if.input(EthernetHeader(b_if.lladdr, link.ends[0].lladdr, 0x0800).emit(packet))
            await trio.lowlevel.checkpoint()
        await trio.sleep(5)
        tcp = b.inet.tcp
        assert tcp.syncache <= b.sysctl("net.inet.tcp.syncache.limit")
        for pcb in list(tcp._pcbs.values()):
            c = pcb.peek()
            assert c._snd_una <= c._snd_nxt <= c._snd_max, c
            assert c.readable <= c.config.recv_buffer
        # The live connection carries data, unless a segment really reset it.
        if client.state.name == "ESTABLISHED" and server.state.name == "ESTABLISHED":
            payload = random.Random(1).randbytes(20_000)
            got = bytearray()
            with trio.fail_after(60):
                await client.send_all(payload)
                while len(got) < len(payload):
                    chunk = await server.receive_some()
                    if not chunk:
                        break
                    got += chunk
            # Data injected in the window (from the peer's address, at a
            # sequence number it guessed right) is accepted, as by any TCP:
            # it can take the place of the first bytes we send (at most
            # rcv_nxt + 1000 + 64); the rest must be ours. So is a FIN
            # injected there: once our data fills the gap below it, the
            # stream ends early, as the injected FIN says.
            if len(got) < len(payload):
                assert server.state.name == "CLOSE_WAIT", (len(got), server.state)
            assert bytes(got[2000:]) == payload[2000 : len(got)]
        await client.aclose()
        await server.aclose()


#: Real seconds an example may take. Virtual time cannot bound a livelock
#: (two hosts trading segments without end never let the clock jump), so a
#: thread cancels the run after this long and the example fails.
WALL_LIMIT = 60.0


async def _run_bounded(segments: list[dict]) -> None:
    token = trio.lowlevel.current_trio_token()
    with trio.CancelScope() as scope:
        timer = threading.Timer(WALL_LIMIT, token.run_sync_soon, (scope.cancel,))
        timer.start()
        try:
            await _run(segments)
        finally:
            timer.cancel()
    assert not scope.cancelled_caught, f"no end after {WALL_LIMIT} s of real time: a livelock"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(segment, min_size=1, max_size=12))
def test_random_segments_never_crash_a_host_and_keep_tcp_bounded(segments: list[dict]) -> None:
    trio.run(partial(_run_bounded, segments), clock=trio.testing.MockClock(autojump_threshold=0))
