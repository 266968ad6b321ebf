"""Fuzzing every input path of the Internet layer: a bad frame is a counted drop.

Frames go in as a driver hands them up (``ifp.input``): random bytes, and
valid Ethernet/ARP, IPv4, ICMP, UDP and fragmented frames built with the
``trionet.protocols`` emitters, then mutated (bit flips, byte overwrites,
truncation, extension, length/IHL/fragment/address fields), with the
checksums fixed afterwards or not, so that a mutation also reaches the layer
behind a checksum. After each frame the host settles and the counters are
compared with a ledger (:func:`check_frame`):

- no exception escapes: ``ifp.input`` is called directly, and a netisr
  handler that raised would crash ``open_host``'s nursery and so the run;
- each frame is accounted for exactly once, layer by layer: Ethernet input
  drops it or queues it; ARP input counts it as received and drops it under
  exactly the reason its parser and cache rules give (:func:`arp_verdict`),
  or under none; IP input ends each IPv4 frame in exactly one of a drop
  reason, forwarded, held by the reassembler, ``noproto`` or delivered; ICMP
  UDP or TCP input counts each delivered datagram once and ends it once
  (the rig has no TCP socket, so a segment ends as a drop: ``noport``
  answered with a RST, or a bad header).
- the kernel threads are all still there at the end.

After the frames, virtual time runs until the reassembly and ARP timers have
nothing left (:func:`run_timers_out`), and then (:func:`check_settled`)
nothing is held and every packet IP handed to ARP for output is on a wire or
counted as dropped.

Each Hypothesis example boots its own host in its own ``trio.run`` with
``MockClock(autojump_threshold=0)``: a Hypothesis example cannot await, so it
cannot run inside a pytest-trio test (the ``autojump_clock`` fixture), and a
fresh host per example (about 6 ms) keeps examples independent, so
Hypothesis can shrink a failure to one frame. The targeted and flood tests
are ordinary async tests under ``autojump_clock``, or use the same runner.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import attrs
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trio.testing import wait_all_tasks_blocked

import trionet
from trionet import Host, IfIoctl, Ifnet
from trionet.drivers.vnic import Vnic
from trionet.protocols import icmp as icmp_proto
from trionet.protocols.arp import ARPOP_REPLY, ARPOP_REQUEST, ArpPacket
from trionet.protocols.checksum import internet_checksum, ones_complement_sum
from trionet.protocols.errors import RemoteProtocolError
from trionet.protocols.ethernet import ETHERTYPE_ARP, ETHERTYPE_IP
from trionet.protocols.ipv4 import IPv4Header, fragment, ip_aton
from trionet.protocols.udp import UdpHeader
from trionet.wires import memory_pair

####################################################################
# The host under test
####################################################################
#
#   peer 10.0.0.2 --- vnic0 10.0.0.1/24 [h] vnic1 10.0.1.1/24 --(mtu 576)-- gw 10.0.1.2
#                                                  route 10.9.0.0/16 via 10.0.1.2
#
# Peer and gateway have static ARP entries; 10.0.0.3 and 10.0.1.7 never
# answer ARP. A UDP socket is bound to 0.0.0.0:7; another to 0.0.0.0:5000
# and connected to 10.0.0.2:53 (so ICMP port unreachable about it has a
# socket to reach).

MY_MAC = b"\x02\x00\x00\x00\x00\x01"
MY_MAC1 = b"\x02\x00\x00\x00\x00\x11"
PEER_MAC = b"\x02\x00\x00\x00\x00\x02"
GW_MAC = b"\x02\x00\x00\x00\x00\x12"
STRANGER_MAC = b"\x02\x00\x00\x00\x00\x77"
BCAST_MAC = b"\xff" * 6
MCAST_MAC = b"\x01\x00\x5e\x00\x00\x01"

MY_IP = ip_aton("10.0.0.1")
MY_IP1 = ip_aton("10.0.1.1")
PEER_IP = ip_aton("10.0.0.2")
NEIGH_IP = ip_aton("10.0.0.3")
OTHER_IP = ip_aton("10.0.0.9")  # on the link, not in our ARP table
SUBNET_BCAST = ip_aton("10.0.0.255")
SUBNET1_BCAST = ip_aton("10.0.1.255")
GW_IP = ip_aton("10.0.1.2")
NEIGH1_IP = ip_aton("10.0.1.7")
REMOTE_IP = ip_aton("10.9.0.5")
NOROUTE_IP = ip_aton("172.16.0.9")
ALL_ONES = b"\xff" * 4
MCAST_IP = ip_aton("224.0.0.1")
ZERO_IP = bytes(4)

ECHO_PORT = 7
CONNECTED_PORT = 5000
PEER_PORT = 53
CLOSED_PORT = 9


@attrs.define(eq=False)
class Rig:
    host: Host
    ifp: Ifnet  # vnic0: frames are injected here
    ifp1: Ifnet
    wire: list[bytes]  # frames the host sent, on both links
    socks: list[trionet.UdpSocket]


@asynccontextmanager
async def open_rig(*, forwarding: bool = False, recvspace: int = 42080) -> AsyncIterator[Rig]:
    async with trionet.open_host("h", ncpus=2) as host:
        wire: list[bytes] = []
        a0, b0 = memory_pair("w0")
        a1, b1 = memory_pair("w1", mtu=576)
        b0.set_receiver(wire.append)
        b1.set_receiver(wire.append)
        ifp = await host.if_attach(Vnic(a0, lladdr=MY_MAC))
        ifp1 = await host.if_attach(Vnic(a1, lladdr=MY_MAC1))
        for i in (ifp, ifp1):
            await host.ifup(i)
        await wait_all_tasks_blocked()
        host.ifconfig(ifp.name, "10.0.0.1/24")
        host.ifconfig(ifp1.name, "10.0.1.1/24")
        host.route_add("10.9.0.0/16", "10.0.1.2")
        host.inet.arp.cache.add_static(PEER_IP, PEER_MAC)
        host.inet.arp.cache.add_static(GW_IP, GW_MAC)
        host.sysctl("net.inet.ip.forwarding", int(forwarding))
        host.sysctl("net.inet.udp.recvspace", recvspace)
        echo = host.udp_socket()
        echo.bind(("0.0.0.0", ECHO_PORT))
        client = host.udp_socket()
        client.bind(("0.0.0.0", CONNECTED_PORT))
        client.connect(("10.0.0.2", PEER_PORT))
        await wait_all_tasks_blocked()
        wire.clear()  # the gratuitous ARPs
        yield Rig(host, ifp, ifp1, wire, [echo, client])


####################################################################
# The ledger
####################################################################

# IP input drops before it decides where a datagram goes: the header
# parser's reasons and the impossible sources.
IP_INPUT_DROPS = {
    "short_header", "bad_version", "bad_ihl", "bad_length", "bad_checksum", "bad_fragment",
    "bad_source", "martian",
}
IP_FORWARD_DROPS = {"not_for_us", "not_forwarding", "ttl_exceeded", "needs_fragmentation"}
IP_OUTPUT_DROP = re.compile(r"output_e[a-z]+$")  # the next hop's send queue refused it
ICMP_INPUT_DROPS = {
    "short_header", "bad_checksum", "broadcast_echo", "unexpected_reply", "unhandled_type",
}
ICMP_INPUT_COUNTS = {"echo_requests", "echo_replies", "errors_received"}
# What became of received errors, and of the errors and replies ICMP sends.
ICMP_OTHER_DROPS = {
    "short_quote", "error_unmatched", "error_suppressed", "error_about_error", "error_ratelimited",
}
ICMP_SEND_FAILED = re.compile(r"(reply|error)_e[a-z]+$")
ICMP_SEND_REFUSED = re.compile(r"(reply|error)_e(nobufs|netdown|inval)$")  # by ifq_dispatch
UDP_INPUT_DROPS = {"short_header", "bad_length", "bad_checksum", "noport", "fullsock"}
# The rig has no TCP sockets: every segment ends as one of these.
TCP_INPUT_DROPS = {"not_unicast", "short_header", "bad_offset", "bad_checksum", "bad_option", "noport"}
ARP_DROPS = {"short_header", "unsupported", "bad_op", "own_mac", "group_sender", "conflict"}
ARP_OUTPUT_DROPS = {"pending_full", "unresolved", "output_refused"}
GAUGES = {"reass.in_progress", "reass.buffered_bytes"}


def ledger(r: Rig) -> Counter[str]:
    """Every counter a received frame can move, flattened into one Counter."""
    host = r.host
    inet = host.inet
    c: Counter[str] = Counter()
    for ifp in host.ifnets():
        s = ifp.statistics()
        for name in ("ierrors", "noproto", "iqdrops", "inotforus", "oerrors", "oqdrops"):
            c[f"if.{name}"] += getattr(s, name)
    c["netisr.packets"] = sum(p.packets for p in host.netisr_statistics().ports)
    arp = inet.arp.statistics()
    c["arp.received"] = arp.received
    c.update({f"arp.drop.{k}": v for k, v in arp.drops.items()})
    for k, v in attrs.asdict(inet.arp.cache.statistics()).items():
        c[f"arp.{k}"] = v
    ip = inet.ip.statistics()
    for k in (
        "received", "delivered", "forwarded", "sent", "fragmented", "fragments_sent", "reassembled",
    ):
        c[f"ip.{k}"] = getattr(ip, k)
    c.update({f"ip.drop.{k}": v for k, v in ip.drops.items()})
    for k, v in attrs.asdict(ip.reassembly).items():
        c[f"reass.{k}"] = v
    icmp = inet.icmp.statistics()
    c["icmp.received"] = icmp.received
    c.update({f"icmp.drop.{k}": v for k, v in icmp.drops.items()})
    for k in ("echo_requests", "echo_replies", "errors_received"):
        c[f"icmp.{k}"] = getattr(icmp, k)
    c.update({f"icmp.errors_sent_{t}_{code}": v for (t, code), v in icmp.errors_sent.items()})
    udp = inet.udp.statistics()
    c["udp.received"] = udp.received
    c.update({f"udp.drop.{k}": v for k, v in udp.drops.items()})
    tcp = inet.tcp.statistics()
    c["tcp.received"] = tcp.segments_received
    c.update({f"tcp.drop.{k}": v for k, v in tcp.drops.items()})
    c["sock.received"] = sum(s.statistics().received for s in r.socks)
    c["wire.ip"] = sum(1 for f in r.wire if f[12:14] == b"\x08\x00")
    return c


def _sum(d: Counter[str], prefix: str, names: set[str] | re.Pattern[str]) -> int:
    total = 0
    for key, value in d.items():
        if key.startswith(prefix):
            name = key[len(prefix) :]
            if name in names if isinstance(names, set) else names.match(name):
                total += value
    return total


def check_known_reasons(c: Counter[str]) -> None:
    """Every drop reason is one this file accounts for (add new ones here)."""
    for key, value in c.items():
        if not value:
            continue
        if key.startswith("ip.drop."):
            name = key[8:]
            assert (
                name in IP_INPUT_DROPS | IP_FORWARD_DROPS | {"no_route", "no_source", "noproto"}
                or IP_OUTPUT_DROP.match(name)
            ), key
        elif key.startswith("icmp.drop."):
            name = key[10:]
            assert name in ICMP_INPUT_DROPS | ICMP_OTHER_DROPS or ICMP_SEND_FAILED.match(name), key
        elif key.startswith("udp.drop."):
            assert key[9:] in UDP_INPUT_DROPS, key
        elif key.startswith("tcp.drop."):
            assert key[9:] in TCP_INPUT_DROPS, key
        elif key.startswith("arp.drop."):
            assert key[9:] in ARP_DROPS | ARP_OUTPUT_DROPS, key


def arp_verdict(frame: bytes) -> str | None:
    """The drop reason ARP input must count for ``frame`` (received on vnic0,
    whose only address is 10.0.0.1), or None for a packet it accepts."""
    try:
        pkt, _ = ArpPacket.parse(frame[14:])
    except RemoteProtocolError as exc:
        return exc.reason
    if pkt.op not in (ARPOP_REQUEST, ARPOP_REPLY):
        return "bad_op"
    if pkt.sha == MY_MAC:
        return "own_mac"
    if pkt.sha[0] & 1:
        return "group_sender"
    if pkt.spa == MY_IP:
        return "conflict"
    return None


def check_frame(frame: bytes, d: Counter[str]) -> None:
    """Assert that the counter deltas ``d`` account for ``frame`` exactly once."""
    # Ethernet input: dropped (and counted) or queued to a protocol thread.
    eth_drops = d["if.ierrors"] + d["if.noproto"] + d["if.iqdrops"] + d["if.inotforus"]
    queued = d["netisr.packets"]
    assert (eth_drops, queued) in ((1, 0), (0, 1)), d
    ethertype = int.from_bytes(frame[12:14], "big") if queued else None
    assert d["arp.received"] == (1 if ethertype == ETHERTYPE_ARP else 0), d
    assert d["ip.received"] == (1 if ethertype == ETHERTYPE_IP else 0), d

    if ethertype == ETHERTYPE_ARP:
        # ARP input: received, then dropped under one reason or accepted
        # (learned, refreshed, answered, or a request for another host).
        verdict = arp_verdict(frame)
        arp_drops = {k: v for k, v in d.items() if k.startswith("arp.drop.") and v}
        assert arp_drops == ({} if verdict is None else {f"arp.drop.{verdict}": 1}), (verdict, d)
        return
    if ethertype != ETHERTYPE_IP:
        return

    # IP input ends the datagram in exactly one way. Drops of what the host
    # sends in answer (an echo reply or ICMP error with no route) share the
    # "no_route"/"no_source" counters; ICMP counts those as reply_*/error_*
    # too, so they are taken out here.
    answer_no_route = d["icmp.drop.reply_enetunreach"] + d["icmp.drop.error_enetunreach"]
    answer_no_source = d["icmp.drop.reply_eaddrnotavail"] + d["icmp.drop.error_eaddrnotavail"]
    assert d["ip.drop.no_route"] >= answer_no_route, d
    assert d["ip.drop.no_source"] == answer_no_source, d
    ends = {
        "input_drop": _sum(d, "ip.drop.", IP_INPUT_DROPS),
        "forward_drop": _sum(d, "ip.drop.", IP_FORWARD_DROPS)
        + d["ip.drop.no_route"]
        - answer_no_route
        + _sum(d, "ip.drop.", IP_OUTPUT_DROP),
        "forwarded": d["ip.forwarded"],
        # a fragment the reassembler kept or dropped (its own counters say
        # which), rather than completing a datagram with it
        "fragment_held": d["reass.fragments"] - d["ip.reassembled"],
        "noproto": d["ip.drop.noproto"],
        "delivered": d["ip.delivered"],
    }
    assert sum(ends.values()) == 1 and min(ends.values()) >= 0, (ends, d)
    assert d["reass.fragments"] <= 1, d

    # Each delivered datagram is counted by ICMP, UDP or TCP input, and ended once.
    assert d["icmp.received"] + d["udp.received"] + d["tcp.received"] == d["ip.delivered"], d
    assert _sum(d, "tcp.drop.", TCP_INPUT_DROPS) == d["tcp.received"], d
    icmp_ends = _sum(d, "icmp.drop.", ICMP_INPUT_DROPS) + _sum(d, "icmp.", ICMP_INPUT_COUNTS)
    assert icmp_ends == d["icmp.received"], d
    unmatched = d["icmp.drop.short_quote"] + d["icmp.drop.error_unmatched"]
    assert unmatched <= d["icmp.errors_received"], d
    assert _sum(d, "udp.drop.", UDP_INPUT_DROPS) + d["sock.received"] == d["udp.received"], d


def check_settled(r: Rig, c: Counter[str]) -> None:
    """After the timers ran: nothing held, every output packet accounted for."""
    reass = r.host.inet.ip.statistics().reassembly
    assert reass.in_progress == 0 and reass.buffered_bytes == 0, reass
    assert reass.datagrams == (
        reass.reassembled + reass.timeouts + reass.overlaps + reass.oversize + reass.evicted
    ), reass
    assert all(row.state != "incomplete" for row in r.host.inet.arp.cache.entries())
    # Every packet IP handed to ARP output (datagrams sent or forwarded,
    # counting fragments instead of what was fragmented; a forwarded one the
    # send queue refused is counted as output_*, not forwarded) is on a wire
    # or dropped: refused by a send queue (counted by IP or ICMP), pushed out
    # of or evicted with an ARP pending queue (the cache's pending_dropped),
    # or given up unresolved.
    refused = _sum(c, "icmp.drop.", ICMP_SEND_REFUSED) + _sum(c, "ip.drop.", IP_OUTPUT_DROP)
    to_arp = (
        c["ip.sent"] + c["ip.forwarded"] + _sum(c, "ip.drop.", IP_OUTPUT_DROP)
        - c["ip.fragmented"] + c["ip.fragments_sent"]
    )
    assert to_arp == (
        c["wire.ip"] + refused + c["arp.pending_dropped"] + c["arp.drop.unresolved"]
    ), c


async def run_timers_out(r: Rig) -> None:
    """Let virtual time run until reassembly and ARP resolution hold nothing
    (3 s each here). Not one long sleep: the 1 Hz interface and driver
    timers would make every example slow."""
    for _ in range(20):
        deadlines = [
            row.expires for row in r.host.inet.arp.cache.entries() if row.state == "incomplete"
        ]
        deadlines.append(r.host.inet.ip.reassembler.next_deadline())
        due = [d for d in deadlines if d is not None]
        if not due:
            return
        await trio.sleep_until(max(due) + 0.001)
        await wait_all_tasks_blocked()
    raise AssertionError("the timers never settled")


async def run_frames(
    frames: list[bytes],
    *,
    forwarding: bool = False,
    recvspace: int = 42080,
    ping: bool = False,
    setup: Callable[[Rig], Awaitable[None]] | None = None,
) -> Counter[str]:
    """Inject ``frames`` one by one into a fresh rig, checking each; then run
    the timers out and check the totals. Returns the final ledger."""
    rig = open_rig(forwarding=forwarding, recvspace=recvspace)
    async with rig as r, trio.open_nursery() as nursery:
        # A shorter reassembly timeout (the bounds are unchanged) spares each
        # example 27 s of 1 Hz timer ticks in virtual time.
        r.host.inet.ip.reassembler.timeout = 3.0
        if setup is not None:
            await setup(r)
        if ping:
            # An echo request in flight (ident 1, seq 0), for replies and
            # errors to match.
            nursery.start_soon(partial(r.host.ping, "10.0.0.2", count=1, timeout=5.0))
        await wait_all_tasks_blocked()
        threads = [t.name for t in r.host.threads()]
        before = ledger(r)
        for frame in frames:
            r.ifp.input(frame)
            await wait_all_tasks_blocked()
            after = ledger(r)
            check_known_reasons(after)
            assert all(after[k] >= before[k] for k in before if k not in GAUGES), (before, after)
            check_frame(frame, after - before)
            before = after
        await run_timers_out(r)
        final = ledger(r)
        check_known_reasons(final)
        check_settled(r, final)
        # Every kernel thread is still there (one that raised would also
        # have crashed the host's nursery, and so this run).
        assert [t.name for t in r.host.threads()] == threads
        return final


def run(frames: list[bytes], **kwargs: Any) -> Counter[str]:
    clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(partial(run_frames, frames, **kwargs), clock=clock)


####################################################################
# Frame builders and mutations
####################################################################


def ether(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    return dst + src + ethertype.to_bytes(2, "big") + payload


def ip_frame(packet: bytes, mac: bytes = MY_MAC) -> bytes:
    return ether(mac, PEER_MAC, ETHERTYPE_IP, packet)


def ipv4(
    src: bytes, dst: bytes, proto: int, payload: bytes, *, options: bytes = b"", **fields: Any
) -> bytes:
    """An IPv4 datagram; with ``options`` (a multiple of 4 bytes), IHL > 5."""
    packet = IPv4Header(src, dst, proto, **fields).emit(payload)
    if not options:
        return packet
    header = bytearray(packet[:20] + options)
    header[0] = 0x40 | len(header) // 4
    header[2:4] = (len(header) + len(payload)).to_bytes(2, "big")
    header[10:12] = b"\0\0"
    header[10:12] = internet_checksum(header).to_bytes(2, "big")
    return bytes(header) + payload


def udp(
    sport: int, dport: int, data: bytes, src: bytes, dst: bytes, *, checksum: bool = True
) -> bytes:
    return UdpHeader(sport, dport).emit(data, src, dst, checksum=checksum)


def fix_checksums(frame: bytes, *, ip: bool, l4: bool) -> bytes:
    """Recompute the IPv4 header checksum and the ICMP/UDP checksum of a
    (mutated) frame, where it still has room for them; never raises."""
    b = bytearray(frame)
    if len(b) < 34 or b[12:14] != b"\x08\x00" or b[14] >> 4 != 4:
        return frame
    hlen = (b[14] & 0x0F) * 4
    if hlen < 20 or 14 + hlen > len(b):
        return frame
    if l4:
        end = min(14 + int.from_bytes(b[16:18], "big"), len(b))
        seg = 14 + hlen
        if b[23] == 1 and end - seg >= 8:
            b[seg + 2 : seg + 4] = b"\0\0"
            b[seg + 2 : seg + 4] = internet_checksum(b[seg:end]).to_bytes(2, "big")
        elif b[23] == 17 and end - seg >= 8:
            length = int.from_bytes(b[seg + 4 : seg + 6], "big")
            if 8 <= length <= end - seg:
                b[seg + 6 : seg + 8] = b"\0\0"
                pseudo_header = bytes(b[26:34]) + b"\x00\x11" + length.to_bytes(2, "big")
                pseudo = ones_complement_sum(pseudo_header)
                csum = internet_checksum(b[seg : seg + length], pseudo) or 0xFFFF
                b[seg + 6 : seg + 8] = csum.to_bytes(2, "big")
    if ip:
        b[24:26] = b"\0\0"
        b[24:26] = internet_checksum(b[14 : 14 + hlen]).to_bytes(2, "big")
    return bytes(b)


def _field(offset: int, size: int) -> Callable[[bytearray, int], None]:
    def put(b: bytearray, value: int) -> None:
        if offset + size <= len(b):
            b[offset : offset + size] = (value % (1 << (8 * size))).to_bytes(size, "big")

    return put


def _ihl(b: bytearray, value: int) -> None:
    if len(b) > 14:
        b[14] = (b[14] & 0xF0) | (value & 0x0F)


def _l4(offset: int, size: int) -> Callable[[bytearray, int], None]:
    # A field of the header after IP's, wherever the (mutated) IHL puts it.
    def put(b: bytearray, value: int) -> None:
        if len(b) > 14:
            _field(14 + (b[14] & 0x0F) * 4 + offset, size)(b, value)

    return put


FIELDS: dict[str, Callable[[bytearray, int], None]] = {
    "ethertype": _field(12, 2),
    "ip_total_length": _field(16, 2),
    "ip_ihl": _ihl,
    "ip_frag": _field(20, 2),
    "ip_ttl": _field(22, 1),
    "ip_proto": _field(23, 1),
    "ip_src": _field(26, 4),
    "ip_dst": _field(30, 4),
    "l4_type_or_sport": _l4(0, 2),
    "udp_dport": _l4(2, 2),
    "udp_length": _l4(4, 2),
    "icmp_rest": _l4(4, 4),
    "icmp_quote_ihl": _l4(8, 1),
    "arp_lengths": _field(18, 2),
    "arp_op": _field(20, 2),
}

_BYTE_OPS = ("flip", "set", "truncate", "extend")
MUTATION = st.one_of(
    st.tuples(st.sampled_from(_BYTE_OPS), st.integers(0, 1 << 16), st.integers(0, 255)),
    st.tuples(
        st.sampled_from(sorted(FIELDS)),
        st.just(0),
        st.one_of(
            st.sampled_from([0, 1, 4, 5, 6, 8, 15, 20, 28, 0x2000, 0x3FFF, 576, 1500, 0xFFFF]),
            st.integers(0, 0xFFFFFFFF),
        ),
    ),
)


def mutate(frame: bytes, ops: list[tuple[str, int, int]], lo: int = 0) -> bytes:
    """Apply ``ops``; byte positions fall in ``frame[lo:]`` (all of it if shorter)."""
    b = bytearray(frame)
    for op, pos, value in ops:
        if op in _BYTE_OPS:
            start = lo if len(b) > lo else 0
            i = start + pos % (len(b) - start + 1)
            if op == "flip" and i < len(b):
                b[i] ^= 1 << (value & 7)
            elif op == "set" and i < len(b):
                b[i] = value
            elif op == "truncate":
                del b[i:]
            elif op == "extend":
                b += bytes([value]) * (1 + pos % 64)
        else:
            FIELDS[op](b, value)
    return bytes(b)


def maybe_mutated(frame: bytes, lo: int = 0) -> st.SearchStrategy[bytes]:
    """``frame`` as is, or mutated with its checksums then fixed or not."""
    return st.one_of(
        st.just(frame),
        st.builds(
            lambda ops, fix_ip, fix_l4: fix_checksums(mutate(frame, ops, lo), ip=fix_ip, l4=fix_l4),
            st.lists(MUTATION, min_size=1, max_size=3),
            st.booleans(),
            st.booleans(),
        ),
    )


def mutated_all(frames: list[bytes], lo: int = 0) -> st.SearchStrategy[list[bytes]]:
    return st.tuples(*(maybe_mutated(f, lo) for f in frames)).map(list)


####################################################################
# Strategies
####################################################################

# Addresses are drawn from lists that reach every branch (Hypothesis would
# rarely hit one of them with random bytes); mutations supply the rest.
SOURCES = st.sampled_from(
    [PEER_IP, PEER_IP, PEER_IP, PEER_IP, REMOTE_IP, NEIGH_IP, NOROUTE_IP, ZERO_IP, MY_IP, MCAST_IP,
     ALL_ONES, SUBNET_BCAST, ip_aton("127.0.0.1"), ip_aton("240.0.0.1"), ip_aton("0.1.2.3")]
)
DESTINATIONS = st.sampled_from(
    [MY_IP, MY_IP, MY_IP, MY_IP1, SUBNET_BCAST, SUBNET1_BCAST, ALL_ONES, MCAST_IP, NEIGH_IP,
     PEER_IP, REMOTE_IP, REMOTE_IP, REMOTE_IP, NOROUTE_IP, NEIGH1_IP, ZERO_IP]
)
LOCAL_DESTINATIONS = st.sampled_from(
    [MY_IP, MY_IP, MY_IP, MY_IP1, SUBNET_BCAST, ALL_ONES, MCAST_IP]
)
LINK_DESTINATIONS = st.sampled_from([MY_MAC, MY_MAC, MY_MAC, BCAST_MAC, MCAST_MAC, STRANGER_MAC])
SIZES = st.one_of(st.integers(0, 64), st.integers(540, 1400))


def _our_udp_datagram() -> bytes:
    # What the connected socket sent: 10.0.0.1:5000 -> 10.0.0.2:53.
    datagram = udp(CONNECTED_PORT, PEER_PORT, b"query", MY_IP, PEER_IP)
    return IPv4Header(MY_IP, PEER_IP, 17).emit(datagram)


def _our_echo_request() -> bytes:
    # What the ping in flight sent (ident 1, seq 0).
    return IPv4Header(MY_IP, PEER_IP, 1).emit(icmp_proto.echo(1, 0, bytes(56)))


@st.composite
def icmp_messages(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["echo", "echo", "error", "error", "any"]))
    if kind == "echo":
        reply = draw(st.booleans())
        ident, seq = draw(st.sampled_from([(1, 0), (1, 0), (1, 1), (2, 0), (0xFFFF, 0xFFFF)]))
        return icmp_proto.echo(ident, seq, bytes(draw(SIZES)), reply)
    if kind == "error":
        quoted = draw(
            st.sampled_from([_our_udp_datagram(), _our_echo_request(), b""])
            | st.binary(max_size=40)
        )
        type_ = draw(st.sampled_from(sorted(icmp_proto.ERROR_TYPES)))
        return icmp_proto.error(type_, draw(st.sampled_from([0, 1, 3, 4])), quoted)
    msg = icmp_proto.IcmpMessage(
        draw(st.integers(0, 255)), draw(st.integers(0, 255)), draw(st.integers(0, 0xFFFFFFFF))
    )
    return msg.emit(draw(st.binary(max_size=32)))


@st.composite
def ip_datagrams(draw: st.DrawFn) -> list[bytes]:
    """One IPv4 datagram of any kind to anywhere, in an Ethernet frame,
    mutated mostly in its IP header."""
    src, dst = draw(SOURCES), draw(DESTINATIONS)
    proto = draw(st.sampled_from([17, 1, 6, 47]))
    size = draw(SIZES)
    if proto == 17:
        dport = draw(st.sampled_from([ECHO_PORT, CLOSED_PORT]))
        payload = udp(PEER_PORT, dport, bytes(size), src, dst)
    elif proto == 1:
        payload = icmp_proto.echo(7, 7, bytes(size))
    else:
        payload = bytes(size)
    options = draw(st.sampled_from([b"", b"", b"\x01" * 4, b"\x01" * 40]))
    packet = ipv4(
        src, dst, proto, payload[: 1480 - len(options)],
        options=options,
        ttl=draw(st.sampled_from([64, 64, 64, 64, 0, 1, 2, 255])),
        tos=draw(st.sampled_from([0, 0xB8])),
        ident=draw(st.integers(0, 0xFFFF)),
        df=draw(st.booleans()),
    )
    padding = draw(st.sampled_from([b"", b"", bytes(18)]))  # Ethernet minimum-frame padding
    frame = ip_frame(packet + padding, draw(LINK_DESTINATIONS))
    return [draw(maybe_mutated(frame, lo=14))]


@st.composite
def icmp_datagrams(draw: st.DrawFn) -> list[bytes]:
    """ICMP messages of every kind, to this host, mutated behind the IP header."""
    src = draw(st.sampled_from([PEER_IP, PEER_IP, REMOTE_IP, NEIGH_IP, NOROUTE_IP, ZERO_IP, MY_IP]))
    packet = IPv4Header(src, draw(LOCAL_DESTINATIONS), 1).emit(draw(icmp_messages()))
    return [draw(maybe_mutated(ip_frame(packet, draw(LINK_DESTINATIONS)), lo=34))]


@st.composite
def udp_datagrams(draw: st.DrawFn) -> list[bytes]:
    """UDP datagrams to the bound, connected and closed ports, mutated behind the IP header."""
    src = draw(st.sampled_from([PEER_IP, PEER_IP, REMOTE_IP, NEIGH_IP, NOROUTE_IP, ZERO_IP]))
    dst = draw(LOCAL_DESTINATIONS)
    sport = draw(st.sampled_from([PEER_PORT, 1234, 0]))
    dport = draw(st.sampled_from([ECHO_PORT, ECHO_PORT, CONNECTED_PORT, CLOSED_PORT, 0]))
    data = bytes(draw(SIZES))
    datagram = udp(sport, dport, data, src, dst, checksum=draw(st.booleans()))
    packet = IPv4Header(src, dst, 17).emit(datagram)
    return [draw(maybe_mutated(ip_frame(packet, draw(LINK_DESTINATIONS)), lo=34))]


@st.composite
def fragment_sets(draw: st.DrawFn) -> list[bytes]:
    """The fragments of one or two datagrams to this host: picked, reordered,
    duplicated, overlapping (the same datagram fragmented again with another
    MTU), some mutated."""
    frames: list[bytes] = []
    for ident in draw(st.lists(st.sampled_from([1, 2]), min_size=1, max_size=2, unique=True)):
        data = bytes(range(256)) * 3
        data = data[: draw(st.integers(24, 700))]
        proto = draw(st.sampled_from([17, 17, 1, 47]))
        if proto == 17:
            dport = draw(st.sampled_from([ECHO_PORT, CLOSED_PORT]))
            payload = udp(PEER_PORT, dport, data, PEER_IP, MY_IP)
        elif proto == 1:
            payload = icmp_proto.echo(3, 3, data)
        else:
            payload = data
        dst = draw(st.sampled_from([MY_IP, MY_IP, SUBNET_BCAST]))
        hdr = IPv4Header(PEER_IP, dst, proto, ident=ident)
        mtus = st.sampled_from([28, 36, 68, 100, 204, 300])
        pieces = fragment(hdr, payload, draw(mtus))
        if draw(st.booleans()):
            pieces += fragment(hdr, payload, draw(mtus))  # overlapping, same bytes
        order = draw(
            st.permutations(range(len(pieces))).map(lambda p: list(p[:10]))
            | st.lists(st.sampled_from(range(len(pieces))), min_size=1, max_size=10)
        )
        frames += [ip_frame(pieces[i]) for i in order]
    return draw(mutated_all(frames[:10], lo=14))


@st.composite
def arp_packets(draw: st.DrawFn) -> list[bytes]:
    macs = st.sampled_from([PEER_MAC, STRANGER_MAC, STRANGER_MAC, MY_MAC, MCAST_MAC, bytes(6)])
    pkt = ArpPacket(
        draw(st.sampled_from([1, 1, 1, 2, 2, 2, 0, 3, 0xFFFF])),
        draw(macs),
        draw(st.sampled_from([PEER_IP, NEIGH_IP, NEIGH_IP, OTHER_IP, ZERO_IP, MY_IP])),
        draw(st.sampled_from([bytes(6), bytes(6), MY_MAC, STRANGER_MAC])),
        draw(st.sampled_from([MY_IP, MY_IP, MY_IP, MY_IP1, NEIGH_IP, PEER_IP])),
    )
    padding = draw(st.sampled_from([b"", bytes(18)]))
    mac = draw(st.sampled_from([BCAST_MAC, MY_MAC]))
    frame = ether(mac, PEER_MAC, ETHERTYPE_ARP, pkt.emit() + padding)
    return [draw(maybe_mutated(frame, lo=14))]


RANDOM_FRAMES = st.one_of(
    st.binary(max_size=1600).map(lambda b: [b]),
    # Random bytes behind an Ethernet header, so they reach ARP and IP.
    st.builds(
        lambda mac, et, body: [ether(mac, PEER_MAC, et, body)],
        st.sampled_from([MY_MAC, BCAST_MAC, STRANGER_MAC]),
        st.sampled_from([ETHERTYPE_IP, ETHERTYPE_ARP, 0x86DD, 0x8100]),
        st.binary(max_size=200),
    ),
    # Random bytes behind a valid IPv4 header.
    st.builds(
        lambda proto, dst, body: [ip_frame(IPv4Header(PEER_IP, dst, proto).emit(body))],
        st.sampled_from([1, 17, 6]),
        st.sampled_from([MY_IP, SUBNET_BCAST, REMOTE_IP]),
        st.binary(max_size=200),
    ),
)


def frame_lists(
    unit: st.SearchStrategy[list[bytes]], max_units: int = 3
) -> st.SearchStrategy[list[bytes]]:
    return st.lists(unit, min_size=1, max_size=max_units).map(lambda us: [f for u in us for f in u])


FUZZ = settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


####################################################################
# Fuzz tests, one per input path
####################################################################


@FUZZ
@given(frame_lists(RANDOM_FRAMES, 4), st.booleans())
def test_random_bytes_are_counted_drops_and_never_raise(
    frames: list[bytes], forwarding: bool
) -> None:
    run(frames, forwarding=forwarding)


@FUZZ
@given(frame_lists(arp_packets()))
def test_arp_input_counts_every_packet_and_drops_under_one_reason(frames: list[bytes]) -> None:
    run(frames)


@FUZZ
@given(frame_lists(ip_datagrams()), st.booleans())
def test_ipv4_input_and_forwarding_account_for_every_datagram(
    frames: list[bytes], forwarding: bool
) -> None:
    run(frames, forwarding=forwarding)


@FUZZ
@given(frame_lists(icmp_datagrams()))
def test_icmp_input_accounts_for_every_message(frames: list[bytes]) -> None:
    run(frames, ping=True)


@FUZZ
@given(frame_lists(udp_datagrams()), st.sampled_from([42080, 600]))
def test_udp_input_accounts_for_every_datagram(frames: list[bytes], recvspace: int) -> None:
    run(frames, recvspace=recvspace)


@FUZZ
@given(fragment_sets())
def test_reassembly_of_mangled_fragments_accounts_for_every_fragment(frames: list[bytes]) -> None:
    final = run(frames)
    assert final["reass.reassembled"] == final["ip.reassembled"]


####################################################################
# Reassembly: duplicates, overlaps, the 65535-byte limit
####################################################################


def _udp_fragments(data: bytes, mtu: int, *, ident: int = 1, dport: int = ECHO_PORT) -> list[bytes]:
    hdr = IPv4Header(PEER_IP, MY_IP, 17, ident=ident)
    return fragment(hdr, udp(PEER_PORT, dport, data, PEER_IP, MY_IP), mtu)


def test_duplicate_and_same_byte_overlapping_fragments_still_reassemble() -> None:
    small = _udp_fragments(bytes(range(200)), 68)  # 48-byte pieces
    big = _udp_fragments(bytes(range(200)), 124)  # 104-byte pieces over them
    frames = [ip_frame(p) for p in (small[0], small[0], big[1], *small[1:])]
    final = run(frames)
    assert final["reass.duplicates"] >= 1 and final["reass.overlaps"] == 0
    assert final["reass.reassembled"] == 1 and final["sock.received"] == 1


def test_an_overlap_with_different_bytes_drops_the_datagram() -> None:
    pieces = _udp_fragments(bytes(200), 68)
    forged = bytearray(pieces[1])
    forged[-1] ^= 0xFF
    forged[10:12] = b"\0\0"
    forged[10:12] = internet_checksum(forged[:20]).to_bytes(2, "big")
    frames = [ip_frame(p) for p in (pieces[0], pieces[1], bytes(forged), *pieces[2:])]
    final = run(frames)
    assert final["reass.overlaps"] == 1 and final["sock.received"] == 0
    # The fragments after the conflict began a new datagram, which timed out
    # (without its first fragment, so no ICMP time exceeded).
    assert final["reass.timeouts"] == 1
    assert final["icmp.errors_sent_11_1"] == 0


def test_fragments_beyond_65535_bytes_are_dropped_by_each_check() -> None:
    frames = [
        # Offset 65528 and 16 bytes: the header parser refuses it (ping of death).
        ip_frame(IPv4Header(PEER_IP, MY_IP, 17, ident=1, frag_offset=65528).emit(bytes(16))),
        # Offset 65512 and 16 bytes passes that check, but not with a 20-byte
        # header in front: the reassembler's "oversize".
        ip_frame(IPv4Header(PEER_IP, MY_IP, 17, ident=2, frag_offset=65512).emit(bytes(16))),
    ]
    # Every fragment fits, the whole does not: 60 bytes of header (40 of
    # options, on the first fragment) and 65513 of data.
    first = ipv4(PEER_IP, MY_IP, 17, bytes(1440), options=b"\x01" * 40, ident=3, mf=True)
    frames.append(ip_frame(first))
    for off in range(1440, 65513, 1480):
        n = min(1480, 65513 - off)
        packet = IPv4Header(PEER_IP, MY_IP, 17, ident=3, mf=off + n < 65513, frag_offset=off)
        frames.append(ip_frame(packet.emit(bytes(n))))
    final = run(frames)
    assert final["ip.drop.bad_fragment"] == 1
    assert final["reass.oversize"] == 2
    assert final["ip.reassembled"] == 0 and final["sock.received"] == 0


####################################################################
# Bugs the fuzzers' ledger pointed at
####################################################################


def test_a_forwarded_datagram_the_next_hop_refuses_is_a_drop_not_forwarded() -> None:
    # BSD ip_forward counts ips_forward only when ip_output succeeds, and
    # ips_cantforward otherwise; one datagram, one outcome.
    async def down(r: Rig) -> None:
        await r.host.ifdown(r.ifp1)

    packet = IPv4Header(PEER_IP, REMOTE_IP, 17).emit(udp(PEER_PORT, 9, b"x", PEER_IP, REMOTE_IP))
    final = run([ip_frame(packet)], forwarding=True, setup=down)
    assert final["ip.drop.output_enetdown"] == 1
    assert final["ip.forwarded"] == 0


def _icmp_errors_on_wire(final_wire: list[bytes]) -> list[tuple[int, int, bytes]]:
    out = []
    for f in final_wire:
        if f[12:14] == b"\x08\x00" and f[23] == 1:
            hdr, payload = IPv4Header.parse(f[14:])
            msg, body = icmp_proto.IcmpMessage.parse(payload)
            if msg.type in icmp_proto.ERROR_TYPES:
                out.append((msg.type, msg.code, bytes(body)))
    return out


def test_port_unreachable_after_reassembly_quotes_the_datagram_not_its_last_fragment() -> None:
    # The sender matches an ICMP error to its socket by the quoted UDP
    # header, which only the first fragment carries (RFC 792: the quote is
    # the datagram's IP header and the first 8 bytes of its data).
    rigs: list[Rig] = []

    async def keep(r: Rig) -> None:
        rigs.append(r)

    pieces = _udp_fragments(bytes(100), 68, dport=CLOSED_PORT)
    final = run([ip_frame(p) for p in reversed(pieces)], setup=keep)
    assert final["udp.drop.noport"] == 1
    errors = _icmp_errors_on_wire(rigs[0].wire)
    assert [(t, c) for t, c, _ in errors] == [(3, 3)]
    quoted = errors[0][2]
    assert int.from_bytes(quoted[6:8], "big") & 0x3FFF == 0  # offset 0, MF clear
    assert int.from_bytes(quoted[22:24], "big") == CLOSED_PORT  # the UDP header


def test_a_directed_broadcast_of_another_subnet_is_not_forwarded() -> None:
    # RFC 2644 (BSD net.inet.ip.directed-broadcast=0): a router does not turn
    # a unicast datagram into a broadcast on another subnet (smurf attacks).
    datagram = udp(PEER_PORT, 9, b"x", PEER_IP, SUBNET1_BCAST)
    packet = IPv4Header(PEER_IP, SUBNET1_BCAST, 17).emit(datagram)
    final = run([ip_frame(packet)], forwarding=True)
    assert final["ip.forwarded"] == 0 and final["wire.ip"] == 0
    assert final["ip.drop.not_for_us"] == 1


def test_no_icmp_error_answers_a_link_layer_broadcast() -> None:
    # RFC 1122 3.2.2 (DragonFly icmp_error: M_BCAST|M_MCAST -> freeit): a
    # datagram that came in a link-layer broadcast or multicast draws no
    # error, whatever its IP destination; nor is it forwarded (ip_forward).
    closed = IPv4Header(PEER_IP, MY_IP, 17).emit(udp(PEER_PORT, CLOSED_PORT, b"x", PEER_IP, MY_IP))
    frames = [
        ip_frame(closed, BCAST_MAC),
        ip_frame(closed, MCAST_MAC),
        ip_frame(IPv4Header(PEER_IP, MY_IP, 47).emit(b"gre"), BCAST_MAC),
        ip_frame(IPv4Header(PEER_IP, REMOTE_IP, 17, ttl=1).emit(b"12345678"), BCAST_MAC),
        ip_frame(IPv4Header(PEER_IP, NOROUTE_IP, 17).emit(b"12345678"), MCAST_MAC),
    ]
    final = run(frames, forwarding=True)
    assert final["udp.drop.noport"] == 2 and final["ip.drop.noproto"] == 1
    assert final["ip.drop.not_for_us"] == 2 and final["ip.forwarded"] == 0
    assert final["wire.ip"] == 0
    assert _sum(final, "icmp.", re.compile("errors_sent_")) == 0


####################################################################
# Reassembly flood
####################################################################


async def test_a_reassembly_flood_keeps_memory_bounded_and_counts_every_drop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_rig() as r:
        ip = r.host.inet.ip
        reass = ip.reassembler
        n = 20_000
        # First fragments (offset 0, MF, 8 bytes of data) of n datagrams with
        # distinct sources and idents, in batches the netisr queue takes.
        frame = bytearray(ip_frame(IPv4Header(PEER_IP, MY_IP, 17, ident=0, mf=True).emit(bytes(8))))
        legit_src = ip_aton("10.0.0.200")
        legit_hdr = IPv4Header(legit_src, MY_IP, 17, ident=4242)
        legit_udp = udp(PEER_PORT, ECHO_PORT, b"still works", legit_src, MY_IP)
        legit = [ip_frame(p) for p in fragment(legit_hdr, legit_udp, 28)]
        peak_datagrams = peak_bytes = 0
        for i in range(n):
            frame[18:20] = (i & 0xFFFF).to_bytes(2, "big")
            frame[26:30] = bytes((10, 1 + (i >> 16), (i >> 8) & 0xFF, i & 0xFF))
            frame[24:26] = b"\0\0"
            frame[24:26] = internet_checksum(frame[14:34]).to_bytes(2, "big")
            r.ifp.input(bytes(frame))
            if i % 500 == 499:
                await wait_all_tasks_blocked()
                stats = reass.statistics()
                peak_datagrams = max(peak_datagrams, stats.in_progress)
                peak_bytes = max(peak_bytes, stats.buffered_bytes)
            if i == n // 2:
                # A datagram whose fragments come back to back still
                # completes in the middle of the flood (drop the oldest).
                await wait_all_tasks_blocked()
                for f in legit:
                    r.ifp.input(f)
        await wait_all_tasks_blocked()
        stats = reass.statistics()
        assert r.ifp.statistics().iqdrops == 0
        assert ip.statistics().received == n + len(legit)
        assert peak_datagrams <= reass.max_datagrams and peak_bytes <= reass.max_bytes
        assert stats.in_progress == reass.max_datagrams
        assert stats.buffered_bytes == 8 * reass.max_datagrams
        assert stats.fragments == n + len(legit)
        assert stats.datagrams == n + 1 and stats.reassembled == 1
        assert stats.evicted == n - reass.max_datagrams
        assert r.socks[0].statistics().received == 1
        # After the timeout what was left has expired, counted; each had its
        # first fragment, so each drew ICMP time exceeded (RFC 792).
        await trio.sleep(reass.timeout + 1)
        stats = reass.statistics()
        assert stats.in_progress == 0 and stats.buffered_bytes == 0
        assert stats.timeouts == reass.max_datagrams
        assert stats.datagrams == stats.reassembled + stats.evicted + stats.timeouts
        reass_exceeded = (icmp_proto.TIME_EXCEEDED, icmp_proto.TIMXCEED_REASS)
        assert r.host.inet.icmp.statistics().errors_sent[reass_exceeded] == reass.max_datagrams


async def test_big_fragments_keep_the_reassembly_byte_bound(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_rig() as r:
        await r.host.ifioctl(r.ifp, IfIoctl.SIOCSIFMTU, 9000)
        reass = r.host.inet.ip.reassembler
        chunk = 8976  # a multiple of 8
        for ident in range(200):
            for k in range(3):  # 3 x 8976 bytes held per datagram, never complete
                packet = IPv4Header(PEER_IP, MY_IP, 17, ident=ident, mf=True, frag_offset=k * chunk)
                r.ifp.input(ip_frame(packet.emit(bytes(chunk))))
            await wait_all_tasks_blocked()
            stats = reass.statistics()
            assert stats.buffered_bytes <= reass.max_bytes
            assert stats.in_progress <= reass.max_datagrams
        stats = reass.statistics()
        assert stats.evicted > 0
        assert stats.datagrams == 200 == stats.evicted + stats.in_progress
        await trio.sleep(reass.timeout + 1)
        stats = reass.statistics()
        assert stats.buffered_bytes == 0 and stats.timeouts + stats.evicted == 200


####################################################################
# The ledger on valid traffic: every path, each frame once
####################################################################


def _corpus() -> list[bytes]:
    def to_me(proto: int, payload: bytes, **kw: Any) -> bytes:
        return ip_frame(IPv4Header(PEER_IP, MY_IP, proto, **kw).emit(payload))

    def forward(dst: bytes, size: int, **kw: Any) -> bytes:
        datagram = udp(PEER_PORT, 9, bytes(size), PEER_IP, dst)
        return ip_frame(IPv4Header(PEER_IP, dst, 17, **kw).emit(datagram))

    arp = [
        ArpPacket(ARPOP_REQUEST, PEER_MAC, PEER_IP, bytes(6), MY_IP),  # answered
        ArpPacket(ARPOP_REQUEST, STRANGER_MAC, NEIGH_IP, bytes(6), MY_IP),  # learned, answered
        ArpPacket(ARPOP_REPLY, STRANGER_MAC, NEIGH_IP, MY_MAC, MY_IP),  # refreshes
        ArpPacket(ARPOP_REQUEST, STRANGER_MAC, OTHER_IP, bytes(6), PEER_IP),  # not for us
        ArpPacket(ARPOP_REPLY, PEER_MAC, MY_IP, MY_MAC, MY_IP),  # someone has our address
    ]
    return [
        *(ether(BCAST_MAC, PEER_MAC, ETHERTYPE_ARP, p.emit()) for p in arp),
        to_me(1, icmp_proto.echo(9, 1, b"ping")),  # answered
        to_me(1, icmp_proto.echo(1, 0, bytes(56), reply=True)),  # the ping's reply
        to_me(1, icmp_proto.echo(1, 0, bytes(56), reply=True)),  # again: unexpected
        to_me(1, icmp_proto.error(3, 3, _our_udp_datagram())),  # to the connected socket
        to_me(1, icmp_proto.error(11, 0, _our_echo_request())),  # to the ping (already answered)
        to_me(1, icmp_proto.IcmpMessage(13, 0, 0).emit(bytes(12))),  # timestamp: not handled
        to_me(17, udp(PEER_PORT, ECHO_PORT, b"hello", PEER_IP, MY_IP)),  # delivered
        to_me(17, udp(PEER_PORT, CONNECTED_PORT, b"answer", PEER_IP, MY_IP)),  # connected socket
        to_me(17, udp(PEER_PORT, ECHO_PORT, bytes(700), PEER_IP, MY_IP)),  # buffer full
        to_me(17, udp(1234, CONNECTED_PORT, b"stranger", PEER_IP, MY_IP)),  # not the connected peer
        to_me(17, udp(PEER_PORT, CLOSED_PORT, b"?", PEER_IP, MY_IP)),  # port unreachable
        to_me(47, b"gre"),  # protocol unreachable
        *(ip_frame(p) for p in _udp_fragments(bytes(300), 100, ident=77)),  # reassembled
        ip_frame(_udp_fragments(bytes(300), 100, ident=78)[0]),  # times out
        forward(REMOTE_IP, 16),  # forwarded to the gateway
        forward(REMOTE_IP, 1000),  # fragmented for the 576-byte link
        forward(REMOTE_IP, 1000, df=True),  # fragmentation needed
        forward(NEIGH1_IP, 16),  # to a neighbour that never answers ARP
        forward(REMOTE_IP, 16, ttl=1),  # time exceeded
        forward(NOROUTE_IP, 16),  # net unreachable
    ]


def test_every_path_of_valid_traffic_is_accounted_exactly_once() -> None:
    final = run(_corpus(), forwarding=True, recvspace=600, ping=True)
    assert final["arp.replies_sent"] == 2 and final["arp.learned"] == 1
    assert final["arp.drop.conflict"] == 1
    for key in (
        "icmp.echo_requests", "icmp.echo_replies", "icmp.drop.unexpected_reply",
        "icmp.drop.unhandled_type", "udp.drop.fullsock", "ip.drop.noproto",
        "ip.drop.needs_fragmentation", "ip.drop.ttl_exceeded", "reass.timeouts",
    ):
        assert final[key] == 1, key
    assert final["icmp.errors_received"] == 2 and final["icmp.drop.error_unmatched"] == 1
    assert final["udp.drop.noport"] == 2 and final["sock.received"] == 3
    assert final["ip.reassembled"] == 1 and final["ip.forwarded"] == 3
    assert final["ip.fragmented"] == 1 and final["arp.drop.unresolved"] == 1
    assert final["ip.drop.no_route"] == 1
