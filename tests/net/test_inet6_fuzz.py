"""Fuzzing every IPv6 input path: a bad frame is a counted drop.

The IPv6 twin of ``test_inet_fuzz.py``, built the same way. Frames go in as
a driver hands them up (``ifp.input``): random bytes, and valid IPv6 packets
built with the ``trionet.protocols`` emitters or, for extension header
chains, with scapy (an independent encoder), then mutated (bit flips, byte
overwrites, truncation, extension, header fields), with the upper-layer
checksum fixed afterwards or not, so that a mutation also reaches the layer
behind a checksum. They cover the fixed header (short, bad version, bad
length, jumbogram), extension header chains (Hop-by-Hop with Router Alert,
PadN and unknown options of each action class, Destination Options, Routing
headers with Segments Left zero or not, Fragment headers, too many headers,
truncated ones), fragments, ICMPv6 of every type (echo, errors quoting our
own packets or garbage), neighbour discovery (NS, NA, RS, RA and Redirect
with random options, hop limits and codes, DAD probes for a tentative
address), MLD (queries v1 and v2, reports), and UDP and TCP over IPv6.
After each frame the host settles and the counters are compared with a
ledger (:func:`check_frame`):

- no exception escapes: ``ifp.input`` is called directly, and a netisr
  handler that raised would crash ``open_host``'s nursery and so the run;
- each frame is accounted for exactly once: Ethernet input drops it or
  queues it; IPv6 input ends it in exactly one of a drop reason, forwarded,
  held by the reassembler, ``noproto`` or delivered; ICMPv6, UDP or TCP
  counts each delivered packet once and ends it once (ICMPv6 by a drop, an
  echo answered or matched, an error received, or a hand-off to neighbour
  discovery, which drops a message its parser refuses under exactly the
  parser's reason: :func:`nd_verdict`);
- the kernel threads are all still there at the end.

After the frames, virtual time runs until reassembly and neighbour
resolution hold nothing (:func:`run_timers_out`), and then
(:func:`check_settled`) every packet IPv6 handed to neighbour discovery for
output is on a wire or counted as dropped.

Then the bounds: a reassembly flood and a Neighbor Solicitation flood.

Each Hypothesis example boots its own host in its own ``trio.run`` with
``MockClock(autojump_threshold=0)``, as in ``test_inet_fuzz.py`` (a
Hypothesis example cannot await).
"""

from __future__ import annotations

import ipaddress
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
from scapy.layers.inet import UDP as ScapyUDP
from scapy.layers.inet6 import (
    HBHOptUnknown,
    IPv6 as ScapyIPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    PadN,
    RouterAlert,
)
from scapy.packet import Raw
from trio.testing import wait_all_tasks_blocked

import trionet
from trionet import Host, Ifnet
from trionet.drivers.vnic import Vnic
from trionet.protocols import icmpv6 as icmp6_proto
from trionet.protocols import mld, ndp
from trionet.protocols.checksum import internet_checksum, pseudo_header_sum
from trionet.protocols.errors import RemoteProtocolError
from trionet.protocols.ethernet import ETHERTYPE_IPV6
from trionet.protocols.icmpv6 import Icmp6Message
from trionet.protocols.ipv6 import (
    ALL_NODES,
    ALL_ROUTERS,
    UNSPECIFIED,
    FragmentHeader,
    IPv6Header,
    ip6_aton,
    link_local_address,
    multicast_mac,
    solicited_node_group,
    walk_extensions,
)
from trionet.protocols.nd6 import NeighborCache
from trionet.protocols.tcp import TcpFlags, TcpHeader
from trionet.protocols.udp import UdpHeader
from trionet.wires import memory_pair

####################################################################
# The host under test
####################################################################
#
#   peer fd00::2 --- vnic0 fd00::1/64 [h] vnic1 fd00:1::1/64 --(mtu 1280)-- gw fd00:1::2
#                                            route fd00:9::/32 via fd00:1::2
#
# The host learns the peer's and the gateway's MACs from a Neighbor
# Solicitation each (there is no public static ND entry); fd00::3 and
# fd00:1::7 never answer. A UDP socket is bound to [::]:7, another to
# [::]:5000 and connected to [fd00::2]:53; with ``listen``, a TCP listener
# on port 80. With ``tentative``, fd00::7 is added just before the frames,
# so it is still TENTATIVE while they arrive.

MY_MAC = b"\x02\x00\x00\x00\x00\x01"
MY_MAC1 = b"\x02\x00\x00\x00\x00\x11"
PEER_MAC = b"\x02\x00\x00\x00\x00\x02"
GW_MAC = b"\x02\x00\x00\x00\x00\x12"
STRANGER_MAC = b"\x02\x00\x00\x00\x00\x77"
BCAST_MAC = b"\xff" * 6

MY6 = ip6_aton("fd00::1")
MY6_1 = ip6_aton("fd00:1::1")
MY_LL = link_local_address(MY_MAC)
PEER6 = ip6_aton("fd00::2")
PEER_LL = ip6_aton("fe80::2")
NEIGH6 = ip6_aton("fd00::3")  # on the link, never answers
TENT6 = ip6_aton("fd00::7")
GW6 = ip6_aton("fd00:1::2")
NEIGH1_6 = ip6_aton("fd00:1::7")
REMOTE6 = ip6_aton("fd00:9::5")
NOROUTE6 = ip6_aton("2001:db8::9")
LOOPBACK6 = ip6_aton("::1")
MY_SOLICITED = solicited_node_group(MY6)
TENT_SOLICITED = solicited_node_group(TENT6)
OTHER_GROUP = ip6_aton("ff02::99")  # not joined
SITE_GROUP = ip6_aton("ff05::1")

ECHO_PORT = 7
CONNECTED_PORT = 5000
PEER_PORT = 53
CLOSED_PORT = 9
TCP_PORT = 80


@attrs.define(eq=False)
class Rig:
    host: Host
    ifp: Ifnet  # vnic0: frames are injected here
    ifp1: Ifnet
    wire: list[bytes]  # frames the host sent, on both links
    socks: list[trionet.UdpSocket]


def ns_frame(src: bytes, target: bytes, mac: bytes, *, dst: bytes | None = None) -> bytes:
    """A Neighbor Solicitation from ``src`` (with a source link-layer
    address option ``mac``, unless from ::) for ``target``."""
    dst = dst or solicited_node_group(target)
    slla = mac if src != UNSPECIFIED else None
    msg = ndp.NeighborSolicit(target, slla).emit(src, dst)
    packet = IPv6Header(src, dst, 58, hop_limit=255).emit(msg)
    return ether(multicast_mac(dst), mac, ETHERTYPE_IPV6, packet)


@asynccontextmanager
async def open_rig(
    *, forwarding: bool = False, tentative: bool = False, listen: bool = False
) -> AsyncIterator[Rig]:
    async with trionet.open_host("h", ncpus=2) as host:
        wire: list[bytes] = []
        a0, b0 = memory_pair("w0")
        a1, b1 = memory_pair("w1", mtu=1280)
        b0.set_receiver(wire.append)
        b1.set_receiver(wire.append)
        ifp = await host.if_attach(Vnic(a0, lladdr=MY_MAC))
        ifp1 = await host.if_attach(Vnic(a1, lladdr=MY_MAC1))
        for i in (ifp, ifp1):
            await host.ifup(i)
        await wait_all_tasks_blocked()
        host.sysctl("net.inet6.ip6.forwarding", int(forwarding))
        host.ifconfig(ifp.name, "fd00::1/64")
        host.ifconfig(ifp1.name, "fd00:1::1/64")
        host.route_add("fd00:9::/32", "fd00:1::2")
        await trio.sleep(3)  # DAD: up to 1 s of random delay, then 1 s of listening
        ifp.input(ns_frame(PEER6, MY6, PEER_MAC))
        ifp1.input(ns_frame(GW6, MY6_1, GW_MAC))
        echo = host.udp_socket()
        echo.bind(("::", ECHO_PORT))
        client = host.udp_socket()
        client.bind(("::", CONNECTED_PORT))
        client.connect(("fd00::2", PEER_PORT))
        if listen:
            await host.open_tcp_listeners(TCP_PORT)
        if tentative:
            host.sysctl("net.inet6.ip6.dad_count", 3)
            host.ifconfig(ifp.name, "fd00::7/64")
        await wait_all_tasks_blocked()
        wire.clear()
        yield Rig(host, ifp, ifp1, wire, [echo, client])


####################################################################
# The ledger
####################################################################

# IPv6 input drops before it decides where a packet goes, and the
# extension header walk's and reassembler's reasons.
IP6_INPUT_DROPS = {
    "short_header", "bad_version", "bad_length", "jumbogram", "bad_source", "martian",
    "not_member", "tentative", "nested_fragment", "too_many_ext", "hbh_not_first",
    "short_ext", "bad_option", "unknown_option", "routing_header", "bad_fragment_length",
    "bad_fragment_offset", "no_next_header",
}
IP6_FORWARD_DROPS = {"not_for_us", "not_forwarding", "beyond_scope", "hop_limit_exceeded", "too_big"}
IP6_ROUTE_DROPS = {"no_route", "no_source", "no_zone"}
IP6_OUTPUT_DROP = re.compile(r"output_e[a-z]+$")
ICMP6_INPUT_DROPS = {
    "short_header", "bad_checksum", "unspecified_source", "unexpected_reply", "unhandled_type",
}
ICMP6_INPUT_COUNTS = {"echo_requests", "echo_replies", "errors_received"}
ICMP6_OTHER_DROPS = {"short_quote", "error_unmatched", "error_suppressed", "error_ratelimited"}
ICMP6_SEND_FAILED = re.compile(r"(reply|error)_e[a-z]+$")
ICMP6_SEND_REFUSED = re.compile(r"(reply|error)_e(nobufs|netdown)$")  # by ifq_dispatch
# What the ND and MLD parsers refuse (ndp.parse_nd, mld.parse_mld).
ND_PARSE_DROPS = {
    "bad_hop_limit", "bad_code", "short_message", "bad_option_length", "short_option", "bad_rs",
    "ra_not_link_local", "multicast_target", "bad_dad_probe", "solicited_to_multicast",
    "redirect_not_link_local", "bad_redirect", "bad_source",
}
# Neighbour discovery's other reasons: the cache's Nd6Input reasons, and
# what the glue ignores or fails to do.
ND_OTHER_DROPS = {
    "no_entry", "no_lladdr", "lladdr_differs", "static", "table_full", "bad_address",
    "bad_lladdr", "ns_not_for_us", "na_for_own_address", "rs_not_router", "ra_ignored",
    "redirect_ignored", "pending_full", "evicted", "unresolved", "output_refused",
    "no_source", "filter_refused", "autoconf_refused", "ra_no_link_local",
}
UDP_INPUT_DROPS = {"short_header", "bad_length", "bad_checksum", "noport", "fullsock", "zero_checksum"}
TCP_INPUT_DROPS = {
    "not_unicast", "short_header", "bad_offset", "bad_checksum", "bad_option", "noport",
    "listen_rst", "listen_ack", "listen_nosyn", "listen_overflow", "syncache_overflow",
    "bad_cookie", "netisr_full",
}
GAUGES = {
    "reass.in_progress", "reass.buffered_bytes", "reass.abandoned", "nd.entries",
    "nd.permanent", "tcp.connections", "tcp.syncache",
}
ND_TYPES = {133, 134, 135, 136, 137}
MLD_TYPES = {130, 131, 132, 143}


def ledger(r: Rig) -> Counter[str]:
    """Every counter a received frame can move, flattened into one Counter."""
    host = r.host
    inet6 = host.inet6
    c: Counter[str] = Counter()
    for ifp in host.ifnets():
        s = ifp.statistics()
        for name in ("ierrors", "noproto", "iqdrops", "inotforus", "oerrors", "oqdrops"):
            c[f"if.{name}"] += getattr(s, name)
    c["netisr.packets"] = sum(p.packets for p in host.netisr_statistics().ports)
    ip6 = inet6.ip6.statistics()
    for k in ("received", "delivered", "forwarded", "sent", "fragmented", "fragments_sent", "reassembled"):
        c[f"ip6.{k}"] = getattr(ip6, k)
    c.update({f"ip6.drop.{k}": v for k, v in ip6.drops.items()})
    for k, v in attrs.asdict(ip6.reassembly).items():
        c[f"reass.{k}"] = v
    icmp6 = inet6.icmp6.statistics()
    c["icmp6.received"] = icmp6.received
    c.update({f"icmp6.drop.{k}": v for k, v in icmp6.drops.items()})
    for k in ICMP6_INPUT_COUNTS:
        c[f"icmp6.{k}"] = getattr(icmp6, k)
    c.update({f"icmp6.errors_sent_{t}_{code}": v for (t, code), v in icmp6.errors_sent.items()})
    nd6 = inet6.nd6.statistics()
    c["nd6.received"] = nd6.received
    c["nd6.dad_duplicates"] = nd6.dad_duplicates
    c.update({f"nd6.drop.{k}": v for k, v in nd6.drops.items()})
    for ifp in (r.ifp, r.ifp1):
        for k, v in attrs.asdict(inet6.nd6.cache_statistics(ifp)).items():
            c[f"nd.{k}"] += v
    udp = host.inet.udp.statistics()
    c["udp.received"] = udp.received
    c.update({f"udp.drop.{k}": v for k, v in udp.drops.items()})
    tcp = host.inet.tcp.statistics()
    for k in (
        "segments_received", "syncache_added", "cookies_sent", "requeued", "output_errors",
        "connections", "syncache",
    ):
        c[f"tcp.{k}"] = getattr(tcp, k)
    c.update({f"tcp.drop.{k}": v for k, v in tcp.drops.items()})
    c["sock.received"] = sum(s.statistics().received for s in r.socks)
    for f in r.wire:
        if f[12:14] == b"\x86\xdd":
            c["wire.nd" if _own_nd(f) else "wire.ip6"] += 1
    return c


def _own_nd(frame: bytes) -> bool:
    # Whether a frame the host sent is one of neighbour discovery's own
    # messages (NS, NA, RS, RA, MLD reports: sent past IPv6 output, so not
    # in its counters). A forwarded packet never has hop limit 255 nor a
    # link-local or unspecified source.
    try:
        hdr, payload = IPv6Header.parse(frame[14:])
        chain = walk_extensions(hdr.next_header, payload)
    except RemoteProtocolError:
        return False
    if chain.proto != 58 or chain.offset >= len(payload):
        return False
    own_source = hdr.hop_limit == 255 or hdr.src == UNSPECIFIED or hdr.src[:2] == b"\xfe\x80"
    return payload[chain.offset] in ND_TYPES | MLD_TYPES and own_source


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
        if key.startswith("ip6.drop."):
            name = key[9:]
            assert (
                name in IP6_INPUT_DROPS | IP6_FORWARD_DROPS | IP6_ROUTE_DROPS | {"noproto", "needs_fragmentation"}
                or IP6_OUTPUT_DROP.match(name)
            ), key
        elif key.startswith("icmp6.drop."):
            name = key[11:]
            assert name in ICMP6_INPUT_DROPS | ICMP6_OTHER_DROPS or ICMP6_SEND_FAILED.match(name), key
        elif key.startswith("nd6.drop."):
            assert key[9:] in ND_PARSE_DROPS | ND_OTHER_DROPS, key
        elif key.startswith("udp.drop."):
            assert key[9:] in UDP_INPUT_DROPS, key
        elif key.startswith("tcp.drop."):
            assert key[9:] in TCP_INPUT_DROPS, key


def _upper(frame: bytes) -> tuple[IPv6Header, Any, memoryview] | None:
    # The fixed header, extension chain and payload of an IPv6 frame, if
    # it parses.
    try:
        hdr, payload = IPv6Header.parse(frame[14:])
        chain = walk_extensions(hdr.next_header, payload, dst_multicast=hdr.dst[0] == 0xFF)
    except RemoteProtocolError:
        return None
    return hdr, chain, payload


def nd_verdict(frame: bytes) -> tuple[int, str | None] | None:
    """For an unfragmented ICMPv6 ND or MLD message: its type and the
    reason its parser refuses it (None: accepted); None for anything else."""
    parsed = _upper(frame)
    if parsed is None:
        return None
    hdr, chain, payload = parsed
    if chain.fragment is not None or chain.proto != 58:
        return None
    try:
        msg, body = Icmp6Message.parse(payload[chain.offset :], hdr.src, hdr.dst)
    except RemoteProtocolError:
        return None
    try:
        if msg.type in ND_TYPES:
            ndp.parse_nd(msg, body, hop_limit=hdr.hop_limit, src=hdr.src, dst=hdr.dst)
        elif msg.type in MLD_TYPES:
            mld.parse_mld(msg, body, hop_limit=hdr.hop_limit, src=hdr.src)
        else:
            return None
    except RemoteProtocolError as exc:
        return msg.type, exc.reason
    return msg.type, None


def check_frame(frame: bytes, d: Counter[str], *, strict_tcp: bool) -> None:
    """Assert that the counter deltas ``d`` account for ``frame`` exactly once."""
    # Ethernet input: dropped (and counted) or queued to a protocol thread
    # (a reassembled TCP segment is queued again, to its owner's thread).
    eth_drops = d["if.ierrors"] + d["if.noproto"] + d["if.iqdrops"] + d["if.inotforus"]
    queued = d["netisr.packets"] - d["tcp.requeued"]
    assert (eth_drops, queued) in ((1, 0), (0, 1)), d
    ethertype = int.from_bytes(frame[12:14], "big") if queued else None
    assert d["ip6.received"] == (1 if ethertype == ETHERTYPE_IPV6 else 0), d
    if ethertype != ETHERTYPE_IPV6:
        return

    # IPv6 input ends the packet in exactly one way. A failed route choice
    # ("no_route", "no_source", "no_zone") is either that end (forwarding)
    # or the failure of an answer (an echo reply, an ICMPv6 error, a RST),
    # which ICMPv6 or TCP counts too.
    ends = {
        "input_drop": _sum(d, "ip6.drop.", IP6_INPUT_DROPS),
        "forward_drop": _sum(d, "ip6.drop.", IP6_FORWARD_DROPS) + _sum(d, "ip6.drop.", IP6_OUTPUT_DROP),
        "forwarded": d["ip6.forwarded"],
        # a fragment the reassembler kept or dropped (its own counters say
        # which), rather than completing a packet with it
        "fragment_held": d["reass.fragments"] - d["reass.reassembled"]
        - d["ip6.drop.bad_fragment_length"] - d["ip6.drop.bad_fragment_offset"],
        "noproto": d["ip6.drop.noproto"],
        "delivered": d["ip6.delivered"],
    }
    assert min(ends.values()) >= 0, (ends, d)
    route_failures = _sum(d, "ip6.drop.", IP6_ROUTE_DROPS)
    answer_failures = _sum(d, "icmp6.drop.", ICMP6_SEND_FAILED) + d["tcp.output_errors"]
    total = sum(ends.values())
    assert total <= 1, (ends, d)
    if total == 1:
        assert route_failures <= answer_failures, (ends, d)
    else:
        # No other end: a failed forwarding route choice is the end.
        assert route_failures and route_failures - 1 <= answer_failures, (ends, d)
    assert d["reass.fragments"] <= 1, d

    # Each delivered packet is counted by ICMPv6, UDP or TCP input, and ended once.
    assert d["icmp6.received"] + d["udp.received"] + d["tcp.segments_received"] == d["ip6.delivered"], d
    tcp_ends = _sum(d, "tcp.drop.", TCP_INPUT_DROPS) + d["tcp.syncache_added"] + d["tcp.cookies_sent"]
    if strict_tcp:
        assert tcp_ends == d["tcp.segments_received"], d
    else:  # a segment for a SYN cache entry ends there, uncounted
        assert tcp_ends <= d["tcp.segments_received"], d
    icmp_ends = (
        _sum(d, "icmp6.drop.", ICMP6_INPUT_DROPS) + _sum(d, "icmp6.", ICMP6_INPUT_COUNTS) + d["nd6.received"]
    )
    assert icmp_ends == d["icmp6.received"], d
    unmatched = d["icmp6.drop.short_quote"] + d["icmp6.drop.error_unmatched"]
    assert unmatched <= d["icmp6.errors_received"], d
    assert _sum(d, "udp.drop.", UDP_INPUT_DROPS) + d["sock.received"] == d["udp.received"], d

    # Neighbour discovery and MLD drop what their parsers refuse, under
    # exactly the parser's reason, and nothing else under such a reason.
    if d["nd6.received"]:
        verdict = nd_verdict(frame)
        parse_drops = {k: v for k, v in d.items() if k[9:] in ND_PARSE_DROPS and k.startswith("nd6.drop.") and v}
        if verdict is not None:
            expected = {} if verdict[1] is None else {f"nd6.drop.{verdict[1]}": 1}
            assert parse_drops == expected, (verdict, d)


def check_settled(r: Rig, c: Counter[str]) -> None:
    """After the timers ran: nothing held, every output packet accounted for
    (``c``: the ledger's change since the first frame)."""
    reass = r.host.inet6.ip6.statistics().reassembly
    assert reass.in_progress == 0 and reass.buffered_bytes == 0, reass
    assert reass.datagrams == (
        reass.reassembled + reass.timeouts + reass.overlaps + reass.oversize + reass.evicted
    ), reass
    assert all(row.state != "INCOMPLETE" for row in r.host.ndp()), r.host.ndp()
    # Every packet IPv6 handed to neighbour discovery (packets sent or
    # forwarded, counting fragments instead of what was fragmented; a
    # forwarded one the send queue refused is counted as output_*, not
    # forwarded) is on a wire or dropped: refused by a send queue (counted
    # by IPv6, ICMPv6 or TCP), pushed out of, evicted with or refused by the
    # neighbour cache, or given up unresolved.
    refused = (
        _sum(c, "icmp6.drop.", ICMP6_SEND_REFUSED) + _sum(c, "ip6.drop.", IP6_OUTPUT_DROP)
    )
    to_nd = (
        c["ip6.sent"] + c["ip6.forwarded"] + _sum(c, "ip6.drop.", IP6_OUTPUT_DROP)
        - c["ip6.fragmented"] + c["ip6.fragments_sent"]
    )
    held = c["nd.dropped_overflow"] + c["nd.dropped_evicted"] + c["nd.dropped_table_full"]
    assert to_nd == c["wire.ip6"] + refused + held + c["nd6.drop.unresolved"], c


async def run_timers_out(r: Rig) -> None:
    """Let virtual time run until reassembly and neighbour resolution hold
    nothing (3 s each here)."""
    for _ in range(20):
        now = trio.current_time()
        deadlines = [now + row.expires for row in r.host.ndp() if row.state == "INCOMPLETE"]
        deadlines.append(r.host.inet6.ip6.reassembler.next_deadline())
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
    tentative: bool = False,
    listen: bool = False,
    setup: Callable[[Rig], Awaitable[None]] | None = None,
) -> Counter[str]:
    """Inject ``frames`` one by one into a fresh rig, checking each; then run
    the timers out and check the totals. Returns the ledger's change."""
    async with open_rig(forwarding=forwarding, tentative=tentative, listen=listen) as r:
        # A shorter reassembly timeout (the bounds are unchanged) spares each
        # example 57 s of 1 Hz timer ticks in virtual time.
        r.host.inet6.ip6.reassembler.timeout = 3.0
        if setup is not None:
            await setup(r)
        await wait_all_tasks_blocked()
        threads = [t.name for t in r.host.threads()]
        first = before = ledger(r)
        for frame in frames:
            r.ifp.input(frame)
            await wait_all_tasks_blocked()
            after = ledger(r)
            check_known_reasons(after)
            assert all(after[k] >= before[k] for k in before if k not in GAUGES), (before, after)
            check_frame(frame, after - before, strict_tcp=not listen)
            before = after
        await run_timers_out(r)
        final = ledger(r)
        check_known_reasons(final)
        change = Counter({k: final[k] - first[k] for k in final.keys() | first.keys()})
        check_settled(r, change)
        # Every kernel thread is still there (one that raised would also
        # have crashed the host's nursery, and so this run).
        assert [t.name for t in r.host.threads()] == threads
        return change


def run(frames: list[bytes], **kwargs: Any) -> Counter[str]:
    clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(partial(run_frames, frames, **kwargs), clock=clock)


####################################################################
# Frame builders and mutations
####################################################################


def ether(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    return dst + src + ethertype.to_bytes(2, "big") + payload


def ip6_frame(packet: bytes, mac: bytes | None = None) -> bytes:
    """``packet`` in a frame to our MAC, or to its multicast destination's."""
    if mac is None:
        mac = multicast_mac(packet[24:40]) if len(packet) >= 40 and packet[24] == 0xFF else MY_MAC
    return ether(mac, PEER_MAC, ETHERTYPE_IPV6, packet)


def ipv6(src: bytes, dst: bytes, nh: int, payload: bytes, hlim: int = 64) -> bytes:
    return IPv6Header(src, dst, nh, hop_limit=hlim).emit(payload)


def udp6(sport: int, dport: int, data: bytes, src: bytes, dst: bytes) -> bytes:
    return UdpHeader(sport, dport).emit(data, src, dst)


def fix_checksum(frame: bytes) -> bytes:
    """Recompute the ICMPv6, UDP or TCP checksum of a (mutated) unfragmented
    frame, where it still has room for it; never raises."""
    parsed = _upper(frame)
    if parsed is None:
        return frame
    hdr, chain, payload = parsed
    at = {58: 2, 17: 6, 6: 16}.get(chain.proto)
    if chain.fragment is not None or at is None or len(payload) - chain.offset < at + 2:
        return frame
    b = bytearray(frame)
    start = 14 + 40 + chain.offset
    end = 14 + 40 + len(payload)
    b[start + at : start + at + 2] = b"\0\0"
    pseudo = pseudo_header_sum(hdr.src, hdr.dst, chain.proto, end - start)
    csum = internet_checksum(b[start:end], pseudo)
    if chain.proto == 17:
        csum = csum or 0xFFFF
    b[start + at : start + at + 2] = csum.to_bytes(2, "big")
    return bytes(b)


def _field(offset: int, size: int) -> Callable[[bytearray, int], None]:
    def put(b: bytearray, value: int) -> None:
        if offset + size <= len(b):
            b[offset : offset + size] = (value % (1 << (8 * size))).to_bytes(size, "big")

    return put


def _version(b: bytearray, value: int) -> None:
    if len(b) > 14:
        b[14] = (b[14] & 0x0F) | (value & 0xF0)


FIELDS: dict[str, Callable[[bytearray, int], None]] = {
    "ethertype": _field(12, 2),
    "version": _version,
    "payload_length": _field(18, 2),
    "next_header": _field(20, 1),
    "hop_limit": _field(21, 1),
    "src": _field(22, 16),
    "dst_low": _field(46, 8),
    "first_ext_next": _field(54, 1),
    "first_ext_len": _field(55, 1),
    "first_ext_byte2": _field(56, 1),
    "first_ext_byte3": _field(57, 1),
    "upper_type": _field(62, 1),
    "upper_code": _field(63, 1),
}

_BYTE_OPS = ("flip", "set", "truncate", "extend")
MUTATION = st.one_of(
    st.tuples(st.sampled_from(_BYTE_OPS), st.integers(0, 1 << 16), st.integers(0, 255)),
    st.tuples(
        st.sampled_from(sorted(FIELDS)),
        st.just(0),
        st.one_of(
            st.sampled_from([0, 1, 2, 6, 8, 17, 43, 44, 58, 59, 60, 0x50, 0x60, 0x70, 128, 135, 255, 1280, 0xFFFF]),
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
    """``frame`` as is, or mutated with its checksum then fixed or not."""
    return st.one_of(
        st.just(frame),
        st.builds(
            lambda ops, fix: fix_checksum(mutate(frame, ops, lo)) if fix else mutate(frame, ops, lo),
            st.lists(MUTATION, min_size=1, max_size=3),
            st.booleans(),
        ),
    )


def mutated_all(frames: list[bytes], lo: int = 0) -> st.SearchStrategy[list[bytes]]:
    return st.tuples(*(maybe_mutated(f, lo) for f in frames)).map(list)


####################################################################
# Strategies
####################################################################

SOURCES = st.sampled_from(
    [PEER6, PEER6, PEER6, PEER6, PEER_LL, PEER_LL, REMOTE6, NEIGH6, NOROUTE6, UNSPECIFIED, MY6,
     LOOPBACK6, ALL_NODES, ip6_aton("::ffff:10.0.0.1"), ip6_aton("fec0::1")]
)
DESTINATIONS = st.sampled_from(
    [MY6, MY6, MY6, MY6_1, MY_LL, ALL_NODES, ALL_ROUTERS, MY_SOLICITED, OTHER_GROUP, SITE_GROUP,
     NEIGH6, PEER6, REMOTE6, REMOTE6, REMOTE6, NOROUTE6, NEIGH1_6, UNSPECIFIED, LOOPBACK6, TENT6,
     ip6_aton("fe80::99")]
)
LOCAL_DESTINATIONS = st.sampled_from([MY6, MY6, MY6, MY6_1, MY_LL, ALL_NODES, MY_SOLICITED, TENT6])
LINK_DESTINATIONS = st.sampled_from([None, None, None, None, MY_MAC, BCAST_MAC, STRANGER_MAC])
SIZES = st.one_of(st.integers(0, 64), st.integers(1100, 1400))
HOP_LIMITS = st.sampled_from([64, 64, 64, 255, 255, 0, 1, 2])


def _our_udp_datagram() -> bytes:
    # What the connected socket sent: [fd00::1]:5000 -> [fd00::2]:53.
    return ipv6(MY6, PEER6, 17, udp6(CONNECTED_PORT, PEER_PORT, b"query", MY6, PEER6))


def _our_tcp_segment() -> bytes:
    th = TcpHeader(40000, 80, 1000, 0, TcpFlags.SYN)
    return ipv6(MY6, PEER6, 6, th.emit(b"", MY6, PEER6))


def _our_echo_request() -> bytes:
    return ipv6(MY6, PEER6, 58, icmp6_proto.echo6(1, 0, bytes(56), MY6, PEER6))


def _options(draw: st.DrawFn, hop_by_hop: bool) -> list[Any]:
    # scapy options: padding, Router Alert, and unknown options of each
    # action class (00 skip, 01 drop, 10 drop + ICMP, 11 drop + ICMP unless
    # multicast).
    kinds = st.sampled_from(["pad", "ra", "ra_bad", "skip", "discard", "icmp", "icmp_unicast"])
    out: list[Any] = []
    for kind in draw(st.lists(kinds, max_size=3)):
        if kind == "pad":
            out.append(PadN(optdata=bytes(draw(st.integers(0, 6)))))
        elif kind == "ra":
            out.append(RouterAlert(value=draw(st.sampled_from([0, 1, 0xFFFF]))))
        elif kind == "ra_bad":
            out.append(HBHOptUnknown(otype=5, optdata=b"\0\0\0"))
        else:
            high = {"skip": 0x00, "discard": 0x40, "icmp": 0x80, "icmp_unicast": 0xC0}[kind]
            otype = high | draw(st.sampled_from([0x1E, 0x3E, 0x07]))
            out.append(HBHOptUnknown(otype=otype, optdata=bytes(draw(st.integers(0, 4)))))
    return out


@st.composite
def ext_chains(draw: st.DrawFn) -> list[bytes]:
    """Extension header chains built by scapy: Hop-by-Hop, Destination
    Options, Routing (Segments Left 0 or not), Fragment (atomic or not), in
    any order and number, then UDP, ICMPv6 echo or No Next Header."""
    src, dst = draw(st.sampled_from([PEER6, PEER6, PEER_LL])), draw(LOCAL_DESTINATIONS)
    layers = []
    kinds = st.lists(st.sampled_from(["hbh", "dst", "rt", "frag"]), max_size=6)
    for kind in draw(kinds | st.integers(8, 10).map(lambda n: ["dst"] * n)):  # too many headers
        if kind == "hbh":
            layers.append(IPv6ExtHdrHopByHop(options=_options(draw, True)))
        elif kind == "dst":
            layers.append(IPv6ExtHdrDestOpt(options=_options(draw, False)))
        elif kind == "rt":
            segleft = draw(st.sampled_from([0, 0, 1]))
            layers.append(
                IPv6ExtHdrRouting(type=draw(st.sampled_from([0, 2, 4])), segleft=segleft, addresses=[_ntoa(REMOTE6)] * segleft)
            )
        else:
            offset = draw(st.sampled_from([0, 0, 1, 8]))
            layers.append(IPv6ExtHdrFragment(offset=offset, m=draw(st.booleans()), id=draw(st.integers(0, 3))))
    pkt = ScapyIPv6(src=_ntoa(src), dst=_ntoa(dst), hlim=draw(HOP_LIMITS))
    for layer in layers:
        pkt = pkt / layer
    upper = draw(st.sampled_from(["udp", "udp", "echo", "none"]))
    if upper == "udp":
        dport = draw(st.sampled_from([ECHO_PORT, CLOSED_PORT]))
        pkt = pkt / ScapyUDP(sport=PEER_PORT, dport=dport) / (b"x" * draw(st.integers(0, 16)))
        packet = bytes(pkt)
    elif upper == "echo":
        # An ICMPv6 echo request built with our emitter behind scapy's chain.
        body = icmp6_proto.echo6(9, 9, b"ping", src, dst)
        packet = _set_last_next_header(bytes(pkt / Raw(load=body)), 58)
    else:
        packet = _set_last_next_header(bytes(pkt), 59)
    return [draw(maybe_mutated(ip6_frame(packet), lo=14))]


def _ntoa(addr: bytes) -> str:
    return str(ipaddress.IPv6Address(addr))


def _set_last_next_header(packet: bytes, nh: int) -> bytes:
    # Point the last Next Header field of the chain at ``nh`` (scapy says
    # 59 before a Raw payload).
    b = bytearray(packet)
    at, cur, off = 6, b[6], 40
    while cur in (0, 43, 44, 60) and off + 8 <= len(b):
        at = off
        size = 8 if cur == 44 else (b[off + 1] + 1) * 8
        cur = b[off]
        off += size
    b[at] = nh
    return bytes(b)


@st.composite
def ip6_packets(draw: st.DrawFn) -> list[bytes]:
    """One IPv6 packet of any kind from anywhere to anywhere, mutated mostly
    in its fixed header: for the fixed-header checks and forwarding."""
    src, dst = draw(SOURCES), draw(DESTINATIONS)
    proto = draw(st.sampled_from([17, 58, 6, 47, 59, 0]))
    size = draw(SIZES)
    if proto == 17:
        payload = udp6(PEER_PORT, draw(st.sampled_from([ECHO_PORT, CLOSED_PORT])), bytes(size), src, dst)
    elif proto == 58:
        payload = icmp6_proto.echo6(7, 7, bytes(size), src, dst)
    elif proto == 0:
        # A Hop-by-Hop header with a Router Alert, then UDP.
        payload = bytes((17, 0, 5, 2, 0, 0, 1, 0)) + udp6(PEER_PORT, CLOSED_PORT, bytes(size), src, dst)
    else:
        payload = bytes(size)
    packet = ipv6(src, dst, proto, payload, draw(HOP_LIMITS))
    padding = draw(st.sampled_from([b"", b"", bytes(18)]))  # link padding
    frame = ip6_frame(packet + padding, draw(LINK_DESTINATIONS))
    return [draw(maybe_mutated(frame, lo=14))]


@st.composite
def icmp6_messages(draw: st.DrawFn) -> list[bytes]:
    """ICMPv6 of every type to this host: echo, errors quoting our own
    packets or garbage, anything; bad checksums by mutation."""
    src = draw(st.sampled_from([PEER6, PEER6, PEER_LL, REMOTE6, NOROUTE6, UNSPECIFIED, MY6]))
    dst = draw(LOCAL_DESTINATIONS)
    kind = draw(st.sampled_from(["echo", "echo", "error", "error", "any"]))
    if kind == "echo":
        ident, seq = draw(st.sampled_from([(1, 0), (2, 0), (0xFFFF, 0xFFFF)]))
        msg = icmp6_proto.echo6(ident, seq, bytes(draw(SIZES)), src, dst, reply=draw(st.booleans()))
    elif kind == "error":
        quoted = draw(
            st.sampled_from([_our_udp_datagram(), _our_tcp_segment(), _our_echo_request(), b""])
            | st.binary(max_size=60)
        )
        type_ = draw(st.sampled_from([1, 2, 3, 4, 0, 5, 127]))
        msg = icmp6_proto.error6(type_, draw(st.sampled_from([0, 1, 3, 4])), quoted, src, dst, draw(st.sampled_from([0, 40, 1000, 1280, 0xFFFFFFFF])))
    else:
        msg = Icmp6Message(draw(st.integers(0, 255)), draw(st.integers(0, 255)), draw(st.integers(0, 0xFFFFFFFF))).emit(
            src, dst, draw(st.binary(max_size=40))
        )
    packet = ipv6(src, dst, 58, msg, draw(HOP_LIMITS))
    return [draw(maybe_mutated(ip6_frame(packet, draw(LINK_DESTINATIONS)), lo=54))]


def _nd_option(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["slla", "tlla", "mtu", "prefix", "redirected", "unknown", "zero", "short"]))
    if kind in ("slla", "tlla"):
        mac = draw(st.sampled_from([PEER_MAC, STRANGER_MAC, MY_MAC, BCAST_MAC, bytes(6)]))
        return bytes((1 if kind == "slla" else 2, 1)) + mac
    if kind == "mtu":
        return bytes((5, 1, 0, 0)) + draw(st.sampled_from([0, 1000, 1280, 1400, 1500, 9000])).to_bytes(4, "big")
    if kind == "prefix":
        plen = draw(st.sampled_from([64, 64, 48, 128, 200]))
        flags = draw(st.sampled_from([0xC0, 0x80, 0x40, 0]))
        valid = draw(st.sampled_from([0, 7200, 0xFFFFFFFF]))
        preferred = draw(st.sampled_from([0, 3600, 0xFFFFFFFF, 9000]))
        prefix = draw(st.sampled_from([ip6_aton("fd00:5::"), ip6_aton("fe80::"), ip6_aton("fd00::")]))
        return bytes((3, 4, plen, flags)) + valid.to_bytes(4, "big") + preferred.to_bytes(4, "big") + bytes(4) + prefix
    if kind == "redirected":
        return bytes((4, 2)) + bytes(14)
    if kind == "unknown":
        return bytes((draw(st.integers(6, 255)), 1)) + bytes(6)
    if kind == "zero":
        return bytes((1, 0)) + bytes(6)
    return bytes((1, 2)) + bytes(6)  # runs past the message


@st.composite
def nd_messages(draw: st.DrawFn) -> list[bytes]:
    """NS, NA, RS, RA and Redirect with random options, hop limits and
    codes, from the peer, a stranger or ::, to us, our groups or others."""
    type_ = draw(st.sampled_from(sorted(ND_TYPES)))
    src = draw(st.sampled_from([PEER6, PEER_LL, ip6_aton("fe80::77"), ip6_aton("fd00::55"), UNSPECIFIED, MY6]))
    target = draw(st.sampled_from([MY6, MY6, MY_LL, TENT6, PEER6, NEIGH6, ip6_aton("fd00::55"), ALL_NODES]))
    dst = draw(
        st.sampled_from([MY6, ALL_NODES, solicited_node_group(target), MY_SOLICITED, ALL_ROUTERS, TENT_SOLICITED])
    )
    data = 0
    if type_ == 135 or type_ == 136:
        body = target
        if type_ == 136:
            data = draw(st.sampled_from([0x20000000, 0x60000000, 0xE0000000, 0x40000000, 0]))
    elif type_ == 134:
        data = draw(st.sampled_from([0x40000708, 0x40C00000, 0]))  # hop limit, flags, lifetime
        body = draw(st.sampled_from([0, 30000])).to_bytes(4, "big") + draw(st.sampled_from([0, 1000])).to_bytes(4, "big")
    elif type_ == 133:
        body = b""
    else:
        body = draw(st.sampled_from([ip6_aton("fe80::9"), REMOTE6])) + draw(st.sampled_from([REMOTE6, PEER6, ALL_NODES]))
    options = b"".join(_nd_option(draw) for _ in range(draw(st.integers(0, 3))))
    code = draw(st.sampled_from([0, 0, 0, 1]))
    msg = Icmp6Message(type_, code, data).emit(src, dst, body + options)
    packet = ipv6(src, dst, 58, msg, draw(st.sampled_from([255, 255, 255, 254, 64, 1])))
    return [draw(maybe_mutated(ip6_frame(packet, draw(st.sampled_from([None, None, MY_MAC]))), lo=54))]


@st.composite
def mld_messages(draw: st.DrawFn) -> list[bytes]:
    """MLD queries (v1 and v2, general and group-specific) and reports,
    with a Router Alert Hop-by-Hop header or without."""
    src = draw(st.sampled_from([PEER_LL, PEER_LL, PEER6, UNSPECIFIED]))
    group = draw(st.sampled_from([UNSPECIFIED, MY_SOLICITED, OTHER_GROUP, ALL_NODES]))
    kind = draw(st.sampled_from(["q1", "q2", "q2", "r1", "done", "r2"]))
    link_src = src if src[0] == 0xFE else PEER_LL  # the emitters want a link-local source
    if kind == "q1":
        msg = mld.MldQuery(max_response_delay=draw(st.sampled_from([0.0, 1.0, 10.0])), group=group, version=1, qrv=0, qqic=0).emit(link_src)
    elif kind == "q2":
        sources = draw(st.lists(st.sampled_from([PEER6, REMOTE6]), max_size=2))
        msg = mld.MldQuery(
            max_response_delay=draw(st.sampled_from([0.0, 1.0, 100.0])), group=group, sources=sources,
            s_flag=draw(st.booleans()), qrv=draw(st.integers(0, 7)),
        ).emit(link_src)
    elif kind == "r1":
        msg = mld.MldV1Report(group if group != UNSPECIFIED else OTHER_GROUP).emit(link_src)
    elif kind == "done":
        msg = mld.MldV1Done(group if group != UNSPECIFIED else OTHER_GROUP).emit(link_src)
    else:
        records = [mld.MulticastRecord(draw(st.integers(1, 6)), OTHER_GROUP, ())]
        msg = mld.MldV2Report(records).emit(link_src)
    dst = draw(st.sampled_from([ALL_NODES, MY_SOLICITED, ip6_aton("ff02::16"), group if group[0] == 0xFF else ALL_NODES]))
    # Re-checksum for the chosen source and destination.
    msg = Icmp6Message(msg[0], msg[1], int.from_bytes(msg[4:8], "big")).emit(src, dst, msg[8:])
    hlim = draw(st.sampled_from([1, 1, 1, 255]))
    if draw(st.booleans()):
        packet = ipv6(src, dst, 0, bytes((58, 0, 5, 2, 0, 0, 1, 0)) + msg, hlim)
    else:
        packet = ipv6(src, dst, 58, msg, hlim)
    return [draw(maybe_mutated(ip6_frame(packet), lo=54))]


@st.composite
def udp6_datagrams(draw: st.DrawFn) -> list[bytes]:
    """UDP to the bound, connected and closed ports, with good, bad and zero
    checksums."""
    src = draw(st.sampled_from([PEER6, PEER6, PEER_LL, REMOTE6, NOROUTE6, UNSPECIFIED]))
    dst = draw(LOCAL_DESTINATIONS)
    sport = draw(st.sampled_from([PEER_PORT, 1234, 0]))
    dport = draw(st.sampled_from([ECHO_PORT, ECHO_PORT, CONNECTED_PORT, CLOSED_PORT, 0]))
    datagram = bytearray(udp6(sport, dport, bytes(draw(SIZES)), src, dst))
    checksum = draw(st.sampled_from(["good", "good", "zero", "bad"]))
    if checksum == "zero":
        datagram[6:8] = b"\0\0"
    elif checksum == "bad":
        datagram[6] ^= 0x5A
    packet = ipv6(src, dst, 17, bytes(datagram))
    return [draw(maybe_mutated(ip6_frame(packet, draw(LINK_DESTINATIONS)), lo=54))]


@st.composite
def tcp6_segments(draw: st.DrawFn) -> list[bytes]:
    """Random segments to the listener and to closed ports."""
    src = draw(st.sampled_from([PEER6, PEER6, PEER_LL, REMOTE6, NOROUTE6, UNSPECIFIED]))
    dst = draw(st.sampled_from([MY6, MY6, MY6_1, MY_LL, ALL_NODES, TENT6]))
    th = TcpHeader(
        draw(st.sampled_from([40000, 40001, 0])),
        draw(st.sampled_from([TCP_PORT, TCP_PORT, CLOSED_PORT])),
        draw(st.integers(0, 0xFFFFFFFF)),
        draw(st.integers(0, 0xFFFFFFFF)),
        TcpFlags(draw(st.sampled_from([0x02, 0x02, 0x10, 0x04, 0x12, 0x11, 0x01, 0]) | st.integers(0, 0xFF))),
        window=draw(st.integers(0, 0xFFFF)),
    )
    segment = bytearray(th.emit(draw(st.binary(max_size=32)), src, dst))
    if draw(st.integers(0, 4)) == 0:
        segment[16] ^= 0xFF  # a bad checksum
    packet = ipv6(src, dst, 6, bytes(segment))
    return [draw(maybe_mutated(ip6_frame(packet, draw(LINK_DESTINATIONS)), lo=54))]


@st.composite
def fragment_sets(draw: st.DrawFn) -> list[bytes]:
    """The fragments of one or two packets to this host: picked, reordered,
    duplicated, overlapping (the same packet fragmented again with other
    sizes), atomic, some mutated."""
    frames: list[bytes] = []
    for ident in draw(st.lists(st.sampled_from([1, 2]), min_size=1, max_size=2, unique=True)):
        data = (bytes(range(256)) * 12)[: draw(st.integers(24, 3000))]
        proto = draw(st.sampled_from([17, 17, 58, 47]))
        dst = draw(st.sampled_from([MY6, MY6, ALL_NODES]))
        if proto == 17:
            payload = udp6(PEER_PORT, draw(st.sampled_from([ECHO_PORT, CLOSED_PORT])), data, PEER6, dst)
        elif proto == 58:
            payload = icmp6_proto.echo6(3, 3, data, PEER6, dst)
        else:
            payload = data
        hdr = IPv6Header(PEER6, dst, proto)
        pieces = _fragments(hdr, proto, payload, draw(st.sampled_from([16, 48, 104, 512, 1232])), ident)
        if draw(st.booleans()):
            pieces += _fragments(hdr, proto, payload, draw(st.sampled_from([16, 48, 104, 512])), ident)
        if draw(st.integers(0, 5)) == 0:
            pieces.append(ipv6(PEER6, dst, 44, FragmentHeader(proto, 0, False, ident).emit(payload)))  # atomic
        order = draw(
            st.permutations(range(len(pieces))).map(lambda p: list(p[:10]))
            | st.lists(st.sampled_from(range(len(pieces))), min_size=1, max_size=10)
        )
        frames += [ip6_frame(pieces[i]) for i in order]
    return draw(mutated_all(frames[:12], lo=14))


def _fragments(hdr: IPv6Header, proto: int, payload: bytes, chunk: int, ident: int) -> list[bytes]:
    # fragment6 never cuts below 1280 bytes; this cuts into ``chunk``-byte
    # pieces (a multiple of 8) for small tests.
    out = []
    for start in range(0, len(payload), chunk):
        piece = payload[start : start + chunk]
        more = start + chunk < len(payload)
        out.append(hdr.__class__(hdr.src, hdr.dst, 44).emit(FragmentHeader(proto, start, more, ident).emit(piece)))
    return out


RANDOM_FRAMES = st.one_of(
    st.binary(max_size=1600).map(lambda b: [b]),
    # Random bytes behind an Ethernet header.
    st.builds(
        lambda mac, et, body: [ether(mac, PEER_MAC, et, body)],
        st.sampled_from([MY_MAC, BCAST_MAC, multicast_mac(ALL_NODES), STRANGER_MAC]),
        st.sampled_from([ETHERTYPE_IPV6, ETHERTYPE_IPV6, 0x0800, 0x0806]),
        st.binary(max_size=200),
    ),
    # Random bytes behind a valid fixed header, with every next header.
    st.builds(
        lambda nh, dst, body: [ip6_frame(ipv6(PEER6, dst, nh, body))],
        st.sampled_from([0, 43, 44, 60, 58, 17, 6, 59, 50, 51, 135]),
        st.sampled_from([MY6, ALL_NODES, REMOTE6]),
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
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


####################################################################
# Fuzz tests, one per input path
####################################################################


@FUZZ
@given(frame_lists(RANDOM_FRAMES, 4), st.booleans())
def test_random_bytes_are_counted_drops_and_never_raise(frames: list[bytes], forwarding: bool) -> None:
    run(frames, forwarding=forwarding)


@FUZZ
@given(frame_lists(ip6_packets()))
def test_ipv6_input_accounts_for_every_packet(frames: list[bytes]) -> None:
    run(frames)


@FUZZ
@given(frame_lists(ip6_packets()))
def test_ipv6_forwarding_accounts_for_every_packet(frames: list[bytes]) -> None:
    final = run(frames, forwarding=True)
    assert final["ip6.drop.not_forwarding"] == 0


@FUZZ
@given(frame_lists(ext_chains()))
def test_extension_header_chains_account_for_every_packet(frames: list[bytes]) -> None:
    run(frames)


@FUZZ
@given(fragment_sets())
def test_reassembly_of_mangled_fragments_accounts_for_every_fragment(frames: list[bytes]) -> None:
    final = run(frames)
    assert final["reass.fragments"] >= final["reass.reassembled"]


@FUZZ
@given(frame_lists(icmp6_messages()))
def test_icmpv6_input_accounts_for_every_message(frames: list[bytes]) -> None:
    run(frames)


@FUZZ
@given(frame_lists(nd_messages(), 4), st.booleans(), st.booleans())
def test_neighbour_discovery_input_accounts_for_every_message(
    frames: list[bytes], forwarding: bool, tentative: bool
) -> None:
    run(frames, forwarding=forwarding, tentative=tentative)


@FUZZ
@given(frame_lists(mld_messages()))
def test_mld_input_accounts_for_every_message(frames: list[bytes]) -> None:
    run(frames)


@FUZZ
@given(frame_lists(udp6_datagrams()), st.booleans())
def test_udp6_input_accounts_for_every_datagram(frames: list[bytes], tentative: bool) -> None:
    run(frames, tentative=tentative)


@FUZZ
@given(frame_lists(tcp6_segments()), st.booleans())
def test_tcp6_input_accounts_for_every_segment(frames: list[bytes], listen: bool) -> None:
    run(frames, listen=listen)


####################################################################
# Reassembly flood
####################################################################


def _first_fragment(src: bytes, ident: int, data: bytes = bytes(8), *, offset: int = 0, more: bool = True) -> bytes:
    return ip6_frame(ipv6(src, MY6, 44, FragmentHeader(17, offset, more, ident).emit(data)))


async def test_a_reassembly_flood_of_distinct_packets_keeps_memory_bounded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_rig() as r:
        ip6 = r.host.inet6.ip6
        reass = ip6.reassembler
        n = 5000
        # A packet whose fragments come back to back completes in the
        # middle of the flood (the oldest go first).
        legit = _fragments(IPv6Header(PEER6, MY6, 17), 17, udp6(PEER_PORT, ECHO_PORT, b"still works" * 3, PEER6, MY6), 16, 4242)
        received = ip6.statistics().received  # the rig's own solicitations
        peak_datagrams = peak_bytes = 0
        for i in range(n):
            # First fragments (offset 0, M set, 8 bytes) from distinct sources.
            r.ifp.input(_first_fragment(ip6_aton(f"fd00::1:{i:x}"), i))
            if i % 250 == 249:
                await wait_all_tasks_blocked()
                stats = reass.statistics()
                peak_datagrams = max(peak_datagrams, stats.in_progress + stats.abandoned)
                peak_bytes = max(peak_bytes, stats.buffered_bytes)
            if i == n // 2:
                await wait_all_tasks_blocked()
                for f in legit:
                    r.ifp.input(ip6_frame(f))
        await wait_all_tasks_blocked()
        stats = reass.statistics()
        assert r.ifp.statistics().iqdrops == 0
        assert ip6.statistics().received - received == n + len(legit)
        assert peak_datagrams <= reass.max_datagrams and peak_bytes <= reass.max_bytes
        assert stats.in_progress == reass.max_datagrams
        assert stats.buffered_bytes == 56 * reass.max_datagrams  # 48 bytes of head, 8 of data
        assert stats.fragments == n + len(legit)
        assert stats.datagrams == n + 1 and stats.reassembled == 1
        assert stats.evicted == n - reass.max_datagrams
        assert r.socks[0].statistics().received == 1
        # After the timeout what was left has expired, counted; each had its
        # first fragment, so each drew Time Exceeded or was rate-limited.
        await trio.sleep(reass.timeout + 1)
        stats = reass.statistics()
        assert stats.in_progress == 0 and stats.buffered_bytes == 0
        assert stats.timeouts == reass.max_datagrams
        assert stats.datagrams == stats.reassembled + stats.evicted + stats.timeouts
        icmp6 = r.host.inet6.icmp6.statistics()
        sent = icmp6.errors_sent.get((icmp6_proto.TIME_EXCEEDED, icmp6_proto.TIMXCEED_REASS), 0)
        assert 0 < sent < reass.max_datagrams
        assert sent + icmp6.drops["error_ratelimited"] == reass.max_datagrams


async def test_a_flood_of_overlapping_fragments_of_one_packet_keeps_memory_bounded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_rig() as r:
        reass = r.host.inet6.ip6.reassembler
        n = 4000
        for i in range(n):
            # 16-byte pieces every 8 bytes: each overlaps the one before.
            offset = (i * 8) % 60000
            r.ifp.input(_first_fragment(PEER6, 7, bytes([i & 0xFF]) * 16, offset=offset))
            if i % 250 == 249:
                await wait_all_tasks_blocked()
                stats = reass.statistics()
                assert stats.in_progress + stats.abandoned <= 1, stats
                assert stats.buffered_bytes <= 16 * 2 + 48, stats
        await wait_all_tasks_blocked()
        stats = reass.statistics()
        assert stats.fragments == n and stats.overlaps >= 1
        # Abandoned (RFC 5722): the rest are discarded until the deadline.
        assert stats.discarded + stats.overlaps + 1 >= n - stats.datagrams
        assert stats.datagrams == (
            stats.reassembled + stats.timeouts + stats.overlaps + stats.oversize + stats.evicted + stats.in_progress
        )
        # Pieces that never overlap: the per-packet bound on pieces.
        for i in range(n):
            r.ifp.input(_first_fragment(PEER6, 8, bytes(8), offset=8 + 16 * (i % 4000)))
            if i % 250 == 249:
                await wait_all_tasks_blocked()
                stats = reass.statistics()
                assert stats.buffered_bytes <= reass.max_bytes
        await wait_all_tasks_blocked()
        stats = reass.statistics()
        assert stats.evicted >= n // (reass.max_fragments + 1) - 1
        await trio.sleep(reass.timeout + 1)
        stats = reass.statistics()
        assert stats.in_progress == stats.abandoned == stats.buffered_bytes == 0


async def test_big_fragments_keep_the_reassembly_byte_bound(autojump_clock: trio.testing.MockClock) -> None:
    async with open_rig() as r:
        await r.host.ifioctl(r.ifp, trionet.IfIoctl.SIOCSIFMTU, 9000)
        reass = r.host.inet6.ip6.reassembler
        chunk = 8936  # a multiple of 8 that fits with 48 bytes of headers
        for ident in range(60):
            for k in range(3):  # 3 x 8936 bytes held per packet, never complete
                r.ifp.input(_first_fragment(PEER6, ident, bytes(chunk), offset=k * chunk))
            await wait_all_tasks_blocked()
            stats = reass.statistics()
            assert stats.buffered_bytes <= reass.max_bytes
            assert stats.in_progress <= reass.max_datagrams
        stats = reass.statistics()
        assert stats.evicted > 0 and stats.datagrams == 60 == stats.evicted + stats.in_progress


####################################################################
# Neighbor Solicitation flood
####################################################################


def _nas_on(wire: list[bytes]) -> int:
    return sum(1 for f in wire if f[12:14] == b"\x86\xdd" and f[20] == 58 and len(f) > 54 and f[54] == 136)


async def test_an_ns_flood_keeps_the_neighbour_cache_bounded(autojump_clock: trio.testing.MockClock) -> None:
    async with open_rig() as r:
        nd6 = r.host.inet6.nd6
        max_entries = attrs.fields(NeighborCache).max_entries.default
        n = 3000
        for i in range(n):
            # From distinct on-link addresses, each with its own MAC.
            mac = b"\x02\x01" + i.to_bytes(4, "big")
            r.ifp.input(ns_frame(ip6_aton(f"fd00::2:{i:x}"), MY6, mac, dst=MY_SOLICITED))
            if i % 250 == 249:
                await wait_all_tasks_blocked()
                assert nd6.cache_statistics(r.ifp).entries <= max_entries
        await wait_all_tasks_blocked()
        stats = nd6.cache_statistics(r.ifp)
        assert r.ifp.statistics().iqdrops == 0
        assert stats.entries == max_entries
        assert stats.learned == n + 1 and stats.evicted == n + 1 - max_entries  # and the peer
        # One answer per solicitation at most (and here exactly one: each
        # asked for our address and gave its MAC).
        assert _nas_on(r.wire) == n
        # The host still resolves and talks to a neighbour.
        r.wire.clear()
        r.ifp.input(ip6_frame(ipv6(PEER6, MY6, 58, icmp6_proto.echo6(5, 5, b"hi", PEER6, MY6))))
        await wait_all_tasks_blocked()
        r.ifp.input(ip6_frame(ipv6(PEER6, MY6, 136, b"")))  # (noise: a bare header)
        r.ifp.input(
            ip6_frame(ipv6(PEER6, MY6, 58, ndp.NeighborAdvert(PEER6, solicited=True, target_lladdr=PEER_MAC).emit(PEER6, MY6), 255))
        )
        await trio.sleep(5)
        assert r.host.inet6.icmp6.statistics().echo_requests == 1
        assert any(f[:6] == PEER_MAC and f[54] == 129 for f in r.wire if len(f) > 54)


async def test_an_ns_flood_for_our_tentative_address_draws_no_answers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_rig(tentative=True) as r:
        nd6 = r.host.inet6.nd6
        received = nd6.statistics().received  # the rig's own solicitations
        n = 2000
        for i in range(n):
            mac = b"\x02\x01" + i.to_bytes(4, "big")
            if i % 2:  # another node's DAD probe
                frame = ns_frame(UNSPECIFIED, TENT6, mac)
            else:  # a resolution from a unicast source
                frame = ns_frame(ip6_aton(f"fd00::2:{i:x}"), TENT6, mac)
            r.ifp.input(frame)
            if i % 250 == 249:
                await wait_all_tasks_blocked()
        await wait_all_tasks_blocked()
        stats = nd6.statistics()
        assert r.ifp.statistics().iqdrops == 0
        assert stats.received - received == n and stats.dad_duplicates == 1
        assert dict(r.host.ifconfig(r.ifp.name).inet6)["fd00::7/64"] == ("duplicated",)
        assert _nas_on(r.wire) == 0
        # Nothing learned from solicitations for an address not ours.
        assert nd6.cache_statistics(r.ifp).entries <= 1
        # After the first probe made it a duplicate, the rest are for an
        # address that is not ours (those from unicast sources before it
        # were ignored uncounted, see the report).
        assert stats.drops["ns_not_for_us"] >= n - 2


####################################################################
# The ledger on valid traffic: every path, each frame once
####################################################################


def _corpus() -> list[bytes]:
    def to_me(nh: int, payload: bytes, *, dst: bytes = MY6, src: bytes = PEER6, hlim: int = 64) -> bytes:
        return ip6_frame(ipv6(src, dst, nh, payload, hlim))

    def icmp(msg: Icmp6Message, body: bytes, *, dst: bytes = MY6, src: bytes = PEER6, hlim: int = 64) -> bytes:
        return to_me(58, msg.emit(src, dst, body), dst=dst, src=src, hlim=hlim)

    closed = udp6(PEER_PORT, CLOSED_PORT, b"?", PEER6, MY6)
    zero = bytearray(udp6(PEER_PORT, ECHO_PORT, b"z", PEER6, MY6))
    zero[6:8] = b"\0\0"
    pieces = _fragments(IPv6Header(PEER6, MY6, 17), 17, udp6(PEER_PORT, ECHO_PORT, bytes(100), PEER6, MY6), 48, 77)
    ra = ndp.RouterAdvert(
        router_lifetime=0, source_lladdr=PEER_MAC,
        prefixes=[ndp.PrefixInfo(ip6_aton("fd00:5::"), 64, True, True, 7200, 3600)],
    )
    return [
        icmp(Icmp6Message(128, 0, 0x10001), b"ping"),  # answered
        icmp(Icmp6Message(128, 0, 0x10002), b"ping", dst=ALL_NODES),  # answered from fd00::1's link
        icmp(Icmp6Message(129, 0, 0x10001), b"pong"),  # unexpected
        icmp(Icmp6Message(1, 4, 0), _our_udp_datagram()),  # to the connected socket
        icmp(Icmp6Message(3, 0, 0), b"garbage"),  # too short to tell
        icmp(Icmp6Message(200, 0, 0), b""),  # not handled
        to_me(17, udp6(PEER_PORT, ECHO_PORT, b"hello", PEER6, MY6)),  # delivered
        to_me(17, closed),  # port unreachable
        to_me(17, bytes(zero)),  # a zero checksum
        to_me(47, b"gre"),  # parameter problem, next header
        to_me(0, bytes((17, 0, 0x9E, 0)) + bytes(4) + closed),  # unknown option 10: parameter problem
        to_me(0, bytes((17, 0, 0x5E, 0)) + bytes(4) + closed),  # unknown option 01: dropped silently
        to_me(43, bytes((17, 2, 0, 1)) + bytes(20) + closed),  # routing header, segments left 1
        to_me(60, bytes((17, 0, 1, 4)) + bytes(4) + udp6(PEER_PORT, ECHO_PORT, b"opt", PEER6, MY6)),  # delivered
        *(ip6_frame(p) for p in reversed(pieces)),  # reassembled, delivered
        to_me(44, FragmentHeader(17, 0, False, 9).emit(udp6(PEER_PORT, ECHO_PORT, b"atomic", PEER6, MY6))),
        to_me(17, udp6(PEER_PORT, ECHO_PORT, b"tent", PEER6, TENT6), dst=TENT6),  # tentative
        ns_frame(ip6_aton("fd00::55"), MY6, STRANGER_MAC),  # answered, learned
        ns_frame(UNSPECIFIED, MY6, STRANGER_MAC),  # a DAD probe for our address: answered to all-nodes
        ns_frame(ip6_aton("fd00::55"), NEIGH6, STRANGER_MAC, dst=MY_SOLICITED),  # not for us
        icmp(Icmp6Message(133, 0, 0), b"", dst=ALL_NODES, src=PEER_LL, hlim=255),  # not a router
        to_me(58, ra.emit(PEER_LL, ALL_NODES), dst=ALL_NODES, src=PEER_LL, hlim=255),  # autoconfigures
        to_me(58, ndp.Redirect(ip6_aton("fe80::9"), REMOTE6).emit(PEER_LL, MY6), src=PEER_LL, hlim=255),
        to_me(58, mld.MldQuery(max_response_delay=1.0).emit(PEER_LL), dst=ALL_NODES, src=PEER_LL, hlim=1),
        to_me(58, icmp6_proto.echo6(1, 1, b"x", PEER6, MY6), hlim=255),  # (a second echo: answered)
    ]


def test_every_path_of_valid_traffic_is_accounted_exactly_once() -> None:
    rigs: list[Rig] = []

    async def keep(r: Rig) -> None:
        rigs.append(r)

    final = run(_corpus(), tentative=True, setup=keep)
    assert final["icmp6.echo_requests"] == 3
    assert final["icmp6.drop.unexpected_reply"] == 1
    assert final["icmp6.errors_received"] == 2 and final["icmp6.drop.short_quote"] == 1
    assert final["icmp6.drop.error_unmatched"] == 0 and final["icmp6.drop.unhandled_type"] == 1
    assert final["sock.received"] == 4  # hello, opt, the reassembled one and the atomic one
    assert final["udp.drop.noport"] == 1 and final["udp.drop.zero_checksum"] == 1
    assert final["icmp6.errors_sent_1_4"] == 1  # port unreachable
    assert final["icmp6.errors_sent_4_1"] == 1 and final["ip6.drop.noproto"] == 1
    assert final["icmp6.errors_sent_4_2"] == 1 and final["ip6.drop.unknown_option"] == 2
    assert final["icmp6.errors_sent_4_0"] == 1 and final["ip6.drop.routing_header"] == 1
    assert final["ip6.reassembled"] == 1 and final["reass.reassembled"] == 2
    assert final["ip6.drop.tentative"] == 1
    assert final["nd.learned"] >= 1 and final["nd6.drop.ns_not_for_us"] == 1
    assert final["nd6.drop.rs_not_router"] == 1 and final["nd6.drop.redirect_ignored"] == 1
    assert _nas_on(rigs[0].wire) == 2  # to fd00::55, and to all-nodes for the probe
    addrs = dict(rigs[0].host.ifconfig(rigs[0].ifp.name).inet6)
    assert any(a.startswith("fd00:5::") for a in addrs), addrs  # SLAAC from the advertisement
