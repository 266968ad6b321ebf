"""Faithfulness checks 22 and 23 of reference/dragonfly.md section 9: netisr
flow hashing, ordering, batches and rollups; message-port semantics.

DragonFly: ``sys/net/netisr.c``, ``sys/kern/lwkt_msgport.c``,
``sys/netinet/ip_demux.c`` (section 5 of the reference).
"""

import errno
import socket
import struct
from typing import Any

import pytest
import trio
import trio.testing

import trionet
from trionet import Host, KernelPanic, NetError
from trionet.lowlevel import NetMsg
from trionet.protocols.flowhash import ipv4_flow_hash

NETISR_IP = 2

IP_MF = 0x2000


def ipv4(
    src: str,
    dst: str,
    proto: int,
    payload: bytes,
    *,
    frag: int = 0,
    ident: int = 0,
) -> bytes:
    """An IPv4 header (no options, checksum left 0) followed by ``payload``."""
    return (
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,  # version 4, IHL 5
            0,
            20 + len(payload),
            ident,
            frag,  # flags (MF = 0x2000) and fragment offset
            64,
            proto,
            0,
            socket.inet_aton(src),
            socket.inet_aton(dst),
        )
        + payload
    )


def tcp(src: str, sport: int, dst: str, dport: int, seq: int, **kw: Any) -> bytes:
    """An IPv4+TCP segment with sequence number ``seq`` (ACK set, no payload)."""
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x10, 65535, 0, 0)
    return ipv4(src, dst, socket.IPPROTO_TCP, header, **kw)


def udp(src: str, sport: int, dst: str, dport: int, **kw: Any) -> bytes:
    header = struct.pack("!HHHH", sport, dport, 8, 0)
    return ipv4(src, dst, socket.IPPROTO_UDP, header, **kw)


def seq_of(pkt: bytes) -> int:
    (seq,) = struct.unpack_from("!I", pkt, 24)
    return seq


def thread_name(host: Host) -> str:
    """The name of the host kernel thread running the calling task."""
    task = trio.lowlevel.current_task()
    names = [t.name for t in host.threads() if t.task is task]
    assert len(names) == 1, names
    return names[0]


# Flow A hashes to an odd value (CPU 1 of 2), flow B to an even one (CPU 0).
A = ("10.0.0.1", 1234, "10.0.0.2", 80)
B = ("10.0.0.1", 1235, "10.0.0.2", 80)


def test_flow_hash_byte_literals() -> None:
    """Check 22: the hand-built packets hash as expected (and symmetrically)."""
    pa = tcp(*A, seq=0)
    assert pa[:20] == bytes.fromhex("4500002800000000400600000a0000010a000002")
    assert ipv4_flow_hash(pa) == 0x85
    assert ipv4_flow_hash(tcp(A[2], A[3], A[0], A[1], seq=0)) == 0x85
    assert ipv4_flow_hash(tcp(*B, seq=0)) == 0x84
    assert ipv4_flow_hash(tcp(*A, seq=0, frag=IP_MF)) == 0
    assert ipv4_flow_hash(tcp(*A, seq=0, frag=1)) == 0


####################################################################
# Check 22: netisr hashing and order
####################################################################


async def test_one_flow_always_lands_on_one_netisr_in_order() -> None:
    """Check 22: packets of one TCP 4-tuple, in either direction, are always
    handled by the same netisr thread and in the order they were queued;
    another flow may land elsewhere."""
    async with trionet.open_host("h", ncpus=2) as host:
        record: list[tuple[str, int]] = []

        def ip_input(pkt: bytes) -> None:
            record.append((thread_name(host), seq_of(pkt)))

        host.netisr_register(NETISR_IP, ip_input, ipv4_flow_hash)
        a_rev = (A[2], A[3], A[0], A[1])
        expected: dict[str, list[int]] = {"A": [], "B": []}
        seq = 0
        for round_ in range(5):
            for _ in range(40):
                seq += 1
                # seq % 10 encodes the flow: 1 = A, 2 = A reversed, 3 = B.
                which = seq % 3
                flow, tag, code = [(A, "A", 1), (a_rev, "A", 2), (B, "B", 3)][which]
                s = seq * 10 + code
                assert host.netisr_queue(NETISR_IP, tcp(*flow, seq=s)) is True
                expected[tag].append(s)
            if round_ % 2:
                await trio.testing.wait_all_tasks_blocked()
        await trio.testing.wait_all_tasks_blocked()

        got_a = [(name, s) for name, s in record if s % 10 in (1, 2)]
        got_b = [(name, s) for name, s in record if s % 10 == 3]
        assert {name for name, _ in got_a} == {"netisr 1"}
        assert {name for name, _ in got_b} == {"netisr 0"}
        assert [s for _, s in got_a] == expected["A"]
        assert [s for _, s in got_b] == expected["B"]
        stats = host.netisr_statistics()
        assert [p.packets for p in stats.ports] == [len(expected["B"]), len(expected["A"])]
        assert [p.drops for p in stats.ports] == [0, 0]


async def test_fragments_and_other_protocols_go_to_cpu_0() -> None:
    """Check 22: IP fragments (MF set or a non-zero offset), non-TCP/UDP
    packets and UDP multicast go to netisr 0 even when their addresses and
    ports would hash elsewhere; unfragmented UDP is hashed like TCP."""
    async with trionet.open_host("h", ncpus=2) as host:
        record: list[tuple[str, str]] = []
        kinds: dict[bytes, str] = {}

        def ip_input(pkt: bytes) -> None:
            record.append((kinds[pkt], thread_name(host)))

        host.netisr_register(NETISR_IP, ip_input, ipv4_flow_hash)
        icmp_echo = struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"ping"
        packets = {
            "tcp": tcp(*A, seq=1),
            "tcp MF": tcp(*A, seq=2, frag=IP_MF),
            "tcp offset": tcp(*A, seq=3, frag=185),
            "tcp MF+offset": tcp(*A, seq=4, frag=IP_MF | 185),
            "udp": udp(*A),
            "udp MF": udp(*A, frag=IP_MF),
            "udp multicast": udp(A[0], A[1], "224.0.0.1", A[3]),
            "udp broadcast": udp(A[0], A[1], "255.255.255.255", A[3]),
            "icmp": ipv4(A[0], A[2], socket.IPPROTO_ICMP, icmp_echo),
            "gre": ipv4(A[0], A[2], 47, b"\x00" * 8),
        }
        for kind, pkt in packets.items():
            kinds[pkt] = kind
            assert host.netisr_queue(NETISR_IP, pkt) is True
        await trio.testing.wait_all_tasks_blocked()
        assert dict(record) == {
            "tcp": "netisr 1",
            "tcp MF": "netisr 0",
            "tcp offset": "netisr 0",
            "tcp MF+offset": "netisr 0",
            "udp": "netisr 1",
            "udp MF": "netisr 0",
            "udp multicast": "netisr 0",
            "udp broadcast": "netisr 0",
            "icmp": "netisr 0",
            "gre": "netisr 0",
        }
        assert len(record) == len(packets)


@pytest.mark.parametrize(
    ("batch", "n", "expected"),
    [(512, 1300, [512, 512, 276]), (100, 250, [100, 100, 50])],
)
async def test_rollups_run_after_every_batch_of_at_most_batch_packets(
    batch: int, n: int, expected: list[int]
) -> None:
    """Check 22: a netisr thread handles at most net.netisr.batch packets,
    then runs the rollups, before handling more."""
    async with trionet.open_host("h", ncpus=2) as host:
        assert host.sysctl("net.netisr.batch") == 512  # DragonFly's default
        host.sysctl("net.netisr.batch", batch)
        host.sysctl("net.netisr.maxqlen", 4096)
        since_rollup: dict[str, int] = {}
        seen: list[int] = []
        rollups: list[tuple[str, int]] = []

        def ip_input(pkt: bytes) -> None:
            name = thread_name(host)
            since_rollup[name] = since_rollup.get(name, 0) + 1
            seen.append(seq_of(pkt))

        def rollup() -> None:
            name = thread_name(host)
            rollups.append((name, since_rollup.get(name, 0)))
            since_rollup[name] = 0

        host.netisr_register(NETISR_IP, ip_input, ipv4_flow_hash)
        host.netisr_register_rollup(rollup)
        for i in range(n):
            assert host.netisr_queue(NETISR_IP, tcp(*A, seq=i)) is True
        await trio.testing.wait_all_tasks_blocked()
        assert rollups == [("netisr 1", k) for k in expected]
        assert seen == list(range(n))
        port_stats = host.netisr_statistics().ports[1]
        assert (port_stats.packets, port_stats.drops, port_stats.batches) == (
            n,
            0,
            len(expected),
        )


####################################################################
# Check 23: message semantics
####################################################################


async def test_domsg_waits_for_reply_and_returns_result(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Check 23: domsg returns only once the handler on the port's thread has
    replied, with the handler's result."""
    async with trionet.open_host("h", ncpus=2) as host:
        record: list[str] = []

        async def slow(msg: NetMsg) -> int:
            record.append(thread_name(host))
            await trio.sleep(1.5)
            record.append("handler done")
            return 42 + msg.arg

        msg = NetMsg(slow, arg=1)
        start = trio.current_time()
        result = await host.port("netisr", 1).domsg(msg)
        record.append("domsg returned")
        assert result == 43
        assert trio.current_time() - start == pytest.approx(1.5)
        assert record == ["netisr 1", "handler done", "domsg returned"]
        assert (msg.done, msg.result, msg.error) == (True, 43, None)

        # A plain (sync) handler, and the same message sent again now it is done.
        msg2 = NetMsg(lambda m: (thread_name(host), m.arg), arg="x")
        assert await host.port("ifnet", 0).domsg(msg2) == ("ifnet 0", "x")
        assert await host.port("ifnet", 0).domsg(msg2) == ("ifnet 0", "x")


async def test_domsg_raises_handler_trionet_error_and_host_survives() -> None:
    """Check 23: a TrionetError raised by the handler is the reply: it is raised
    in the domsg caller, and the port's thread (and host) keep running."""
    async with trionet.open_host("h", ncpus=2) as host:
        threads_before = [t.name for t in host.threads()]

        def bad(msg: NetMsg) -> None:
            raise NetError(errno.EINVAL, "bad request")

        msg = NetMsg(bad)
        with pytest.raises(NetError, match="bad request") as excinfo:
            await host.port("netisr", 1).domsg(msg)
        assert excinfo.value.errno == errno.EINVAL
        assert msg.done is True
        assert msg.error is excinfo.value
        await trio.testing.wait_all_tasks_blocked()
        assert [t.name for t in host.threads()] == threads_before
        assert await host.port("netisr", 1).domsg(NetMsg(lambda m: "alive")) == "alive"
        # The same message may be sent again, and fails again the same way.
        with pytest.raises(NetError):
            await host.port("netisr", 1).domsg(msg)


async def test_schednetisr_coalesces_while_in_flight() -> None:
    """Check 23: schednetisr sends its one message only when it is done, so 5
    calls before netisr 0 runs make one sched_handler run."""
    async with trionet.open_host("h", ncpus=2) as host:
        runs: list[str] = []

        host.netisr_register(
            NETISR_IP,
            lambda pkt: None,
            sched_handler=lambda: runs.append(thread_name(host)),
        )
        results = [host.schednetisr(NETISR_IP) for _ in range(5)]
        assert results == [True, False, False, False, False]
        await trio.testing.wait_all_tasks_blocked()
        assert runs == ["netisr 0"]
        stats = host.netisr_statistics()
        assert (stats.sched, stats.sched_coalesced) == (5, 4)
        assert stats.ports[0].messages == 1

        # Done again: the next request is sent, not merged.
        assert host.schednetisr(NETISR_IP) is True
        await trio.testing.wait_all_tasks_blocked()
        assert runs == ["netisr 0", "netisr 0"]
        stats = host.netisr_statistics()
        assert (stats.sched, stats.sched_coalesced) == (6, 4)


async def test_sending_a_message_in_flight_panics() -> None:
    """Check 23: a message can be in flight only once: sending it again before
    its reply raises KernelPanic, and the first send still runs once."""
    async with trionet.open_host("h", ncpus=2) as host:
        runs: list[str] = []
        msg = NetMsg(lambda m: runs.append(thread_name(host)))
        port = host.port("netisr", 1)
        port.sendmsg(msg)
        assert msg.done is False
        with pytest.raises(KernelPanic, match="in flight"):
            port.sendmsg(msg)
        with pytest.raises(KernelPanic, match="in flight"):
            host.port("netisr", 0).sendmsg(msg)
        with pytest.raises(KernelPanic, match="in flight"):
            await port.domsg(msg)
        await trio.testing.wait_all_tasks_blocked()
        assert runs == ["netisr 1"]
        assert msg.done is True
        assert port.statistics().messages == 1


async def test_domsg_to_own_port_runs_inline_without_deadlock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Check 23: a handler on netisr 0 that awaits domsg on netisr 0's own port
    runs the inner message inline instead of deadlocking."""
    async with trionet.open_host("h", ncpus=2) as host:
        record: list[str] = []
        port0 = host.port("netisr", 0)

        def inner(msg: NetMsg) -> int:
            record.append(f"inner on {thread_name(host)}")
            return 7

        async def outer(msg: NetMsg) -> int:
            record.append(f"outer on {thread_name(host)}")
            result = await port0.domsg(NetMsg(inner))
            record.append("outer resumed")
            return result * 6

        def bad(msg: NetMsg) -> None:
            raise NetError(errno.EAGAIN)

        async def outer_error(msg: NetMsg) -> str:
            with pytest.raises(NetError) as excinfo:
                await port0.domsg(NetMsg(bad))
            return f"caught {errno.errorcode[excinfo.value.errno]}"

        with trio.fail_after(5):
            assert await port0.domsg(NetMsg(outer)) == 42
            assert await port0.domsg(NetMsg(outer_error)) == "caught EAGAIN"
        assert record == ["outer on netisr 0", "inner on netisr 0", "outer resumed"]
        # The inline message never went through the queue.
        assert port0.statistics().messages == 2
