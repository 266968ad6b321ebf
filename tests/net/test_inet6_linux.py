"""The Linux kernel as an independent IPv6 peer: neighbour discovery (with
the kernel's unreachability probes) and DAD, ICMPv6 echo with fragmentation
and reassembly, UDP and ICMPv6 errors, TCP (``curl`` against a trionet
server, a trionet client against ``python3 -m http.server``), router
advertisements, and Packet Too Big from the kernel as a router, each
checked against the kernel's own stack (``/proc/net/snmp6``) in a network
namespace, with a capture of the link read by tshark.

The topology::

    trionet fd00::1/64 + fe80::EUI-64 ==PcapTap(TapWire)== fd00::2/64 + fe80:: kernel (namespace)

and for path MTU discovery, a second namespace behind the first::

    ... fd00::2 kernel router fd00:2::1/64 (veth, mtu 1280) --- fd00:2::2/64 kernel host

Both stacks run duplicate address detection (the kernel's ``accept_dad``
stays on): every test waits, bounded, until the kernel's addresses have left
the ``tentative`` state and ours have too.

Every test captures the link (:class:`~trionet.wires.PcapTap` around the
TAP endpoint, both directions) and, when its body passed, has tshark read
the capture with TCP and UDP checksum validation on (ICMPv6 checksums are
always checked): no malformed packet, no bad checksum, no expert error.

Network safety: the kernel's end lives only in a namespace the test creates
(IPv6 addresses from the ULA prefix ``fd00::/8`` and link-local ones);
nothing is configured in the root namespace. The namespace (and with it the
TAP device) is removed however the test ends, and kernel-side servers are
killed. Real time is used (the kernel is real); every wait is bounded by
``trio.fail_after``, ``ping`` has ``-W`` and ``curl`` ``--max-time``.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import random
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import pytest
import trio

import trionet
import trionet.protocols.ipv6
from trionet import Host, Ifnet
from trionet.drivers.vnic import Vnic
from trionet.testing import command_unavailable, linux_peer_unavailable

from kernel_commands import PATIENCE, cleanup, run
from trionet.wires import PcapTap, TapWire

# tshark reads every test's capture.
SKIP_REASON = linux_peer_unavailable("tshark")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
]
PING_SKIP_REASON = command_unavailable("ping")
needs_ping = pytest.mark.skipif(PING_SKIP_REASON is not None, reason=PING_SKIP_REASON or "")
CURL_SKIP_REASON = command_unavailable("curl")
needs_curl = pytest.mark.skipif(CURL_SKIP_REASON is not None, reason=CURL_SKIP_REASON or "")

OURS = "fd00::1"
KERNEL = "fd00::2"
HTTP_PORT = 8080

_serial = itertools.count()


####################################################################
# helpers
####################################################################


async def kernel_snmp6(netns: str) -> dict[str, int]:
    """``/proc/net/snmp6`` as seen in ``netns``: {"Ip6ReasmOKs": 1, ...}."""
    out = (await run("ip", "netns", "exec", netns, "cat", "/proc/net/snmp6")).stdout.decode()
    return {name: int(value) for name, value in (line.split() for line in out.splitlines())}


async def kernel_ping(netns: str, *args: str) -> str:
    """``ping -6`` run by the kernel in ``netns``; its output (it may fail)."""
    result = await run("ip", "netns", "exec", netns, "ping", "-6", *args, check=False)
    return result.stdout.decode() + result.stderr.decode()


async def kernel_addrs(netns: str, dev: str) -> list[str]:
    """``ip -6 -o addr show dev DEV`` in ``netns``: one line per address."""
    out = (await run("ip", "-6", "-n", netns, "-o", "addr", "show", "dev", dev)).stdout.decode()
    return out.splitlines()


async def wait_kernel_addresses_settled(netns: str, dev: str, *, count: int) -> list[str]:
    """Wait (bounded) until the kernel has at least ``count`` IPv6 addresses
    on ``dev`` and none is tentative (its DAD is on); fails on ``dadfailed``."""
    with trio.fail_after(10):
        while True:
            lines = await kernel_addrs(netns, dev)
            assert not any("dadfailed" in line for line in lines), lines
            if len(lines) >= count and not any("tentative" in line for line in lines):
                return lines
            await trio.sleep(0.1)


def kernel_link_local(lines: list[str]) -> str:
    """The ``fe80::`` address among ``ip -o addr`` lines."""
    (address,) = [m.group(1) for line in lines if (m := re.search(r"inet6 (fe80::[0-9a-f:]+)/64", line))]
    return address


def inet6(host: Host, ifname: str) -> dict[str, tuple[str, ...]]:
    """Our addresses on ``ifname``: {"fd00::1/64": ("tentative",), ...}."""
    return dict(host.ifconfig(ifname).inet6)


async def wait_our_addresses_settled(host: Host, ifname: str) -> None:
    """Wait (bounded) until none of our addresses on ``ifname`` is tentative."""
    with trio.fail_after(10):
        while any("tentative" in flags for flags in inet6(host, ifname).values()):
            await trio.sleep(0.05)


def our_link_local(host: Host, ifname: str) -> str:
    (address,) = [a.split("/")[0] for a in inet6(host, ifname) if a.startswith("fe80:")]
    return address


def seeded_bytes(size: int, seed: int) -> bytes:
    """``size`` random bytes, the same for the same seed."""
    return random.Random(seed).randbytes(size)


async def wait_for_no_connections(host: Host) -> None:
    """Wait until every connection is closed or in TIME_WAIT (listeners may stay)."""
    with trio.fail_after(10):
        while any(row.state not in ("LISTEN", "TIME_WAIT") for row in host.netstat()):
            await trio.sleep(0.01)


####################################################################
# the capture, read by tshark
####################################################################

#: tshark validates TCP and UDP checksums only when asked (ICMPv6 always).
TSHARK_CHECKS = ("-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE")


async def tshark(capture: Path, *args: str) -> str:
    result = await run("tshark", "-n", "-r", str(capture), *TSHARK_CHECKS, *args)
    return result.stdout.decode()


async def assert_capture_clean(capture: Path) -> str:
    """tshark finds no malformed packet, no bad checksum and no expert
    error in ``capture``; returns its one-line summary of every frame."""
    bad = await tshark(
        capture, "-Y",
        "_ws.malformed || _ws.expert.severity == error"
        " || icmpv6.checksum.status == 0 || tcp.checksum.status == 0 || udp.checksum.status == 0",
    )  # fmt: skip
    assert bad.strip() == "", bad
    verbose = await tshark(capture, "-V")
    for word in ("Malformed", "[Checksum Status: Bad]", "Bad checksum"):
        assert word not in verbose, word
    # (Every capture has neighbour discovery at least: checksums were checked.)
    assert "[Checksum Status: Good]" in verbose
    return await tshark(capture)


async def good_checksums(capture: Path, proto: str) -> int:
    """How many frames of ``proto`` (icmpv6, tcp, udp) tshark found with a good checksum."""
    out = await tshark(capture, "-Y", f"{proto}.checksum.status == 1")
    return len(out.splitlines())


####################################################################
# the kernel, one TAP link away
####################################################################


@attrs.frozen
class Peer:
    """A trionet host and the kernel in ``netns``, one TAP link apart."""

    host: Host
    ifp: Ifnet
    wire: TapWire
    netns: str
    dev: str  # the kernel's TAP device, in netns
    capture: Path


@asynccontextmanager
async def facing_the_kernel(
    tmp_path: Path, *, ours: str | None = OURS, kernel: str | None = KERNEL, router: bool = False
) -> AsyncIterator[Peer]:
    """A fresh namespace holding the kernel's end of a TAP link to a fresh
    trionet host, both with IPv6 on; ``ours``/``kernel`` (/64) are set on
    each side (``None``: only link-local), and the block starts once no
    address on either side is tentative. With ``router`` the trionet host
    forwards (``net.inet6.ip6.forwarding=1``) and the kernel accepts router
    advertisements. The capture is checked by tshark when the block ends
    without an error; the namespace goes however it ends."""
    n = next(_serial)
    netns = f"trionet-inet6-{os.getpid()}-{n}"
    dev = f"tn6{os.getpid()}x{n}"  # at most 15 bytes: pid <= 7 digits
    capture = tmp_path / f"link{n}.pcap"
    try:
        await run("ip", "netns", "add", netns)
        await run("ip", "-n", netns, "link", "set", "lo", "up")
        async with TapWire(dev) as wire:
            with PcapTap(wire, capture) as pcap:
                async with trionet.open_host("h") as host:
                    host.sysctl("net.inet6.ip6.auto_linklocal", 1)
                    if router:
                        host.sysctl("net.inet6.ip6.forwarding", 1)
                    ifp = await host.if_attach(Vnic(pcap))
                    await host.ifup(ifp)
                    if ours is not None:
                        host.ifconfig(ifp.name, f"{ours}/64")
                    await run("ip", "link", "set", dev, "netns", netns)
                    sysctl = f"net.ipv6.conf.{dev}"
                    # A host (forwarding 0) that takes router advertisements
                    # (accept_ra 1 would do too; 2 whatever forwarding says).
                    for setting in ("disable_ipv6=0", "forwarding=0", f"accept_ra={2 if router else 1}"):
                        await run("ip", "netns", "exec", netns, "sysctl", "-qw", f"{sysctl}.{setting}")
                    if kernel is not None:
                        await run("ip", "-n", netns, "addr", "add", f"{kernel}/64", "dev", dev)
                    await run("ip", "-n", netns, "link", "set", dev, "up")
                    await wait_kernel_addresses_settled(netns, dev, count=1 + (kernel is not None))
                    await wait_our_addresses_settled(host, ifp.name)
                    yield Peer(host, ifp, wire, netns, dev, capture)
    finally:
        # Deleting the namespace deletes the TAP device in it (if the wire
        # had not already).
        cleanup("ip", "netns", "del", netns)
        cleanup("ip", "link", "del", dev)  # made but never moved
    await assert_capture_clean(capture)


def assert_nothing_dropped(peer: Peer, **nd6_drops: int) -> None:
    """No frame from the kernel was refused by the wire, and no IPv6 packet,
    ICMPv6, ND or MLD message or TCP segment by us (bad checksum,
    truncated, a bad option...); ``nd6_drops`` are the ND drops expected."""
    wire = peer.wire.statistics()
    assert (wire.rx_drops, wire.rx_oversize, wire.rx_runts) == (0, 0, 0), wire
    assert peer.host.inet6.ip6.statistics().drops == {}
    assert peer.host.inet6.icmp6.statistics().drops == {}
    assert peer.host.inet.tcp.statistics().drops == {}
    assert peer.host.inet6.nd6.statistics().drops == nd6_drops


def assert_kernel_happy(snmp6: dict[str, int]) -> None:
    """The kernel refused nothing of ours: no bad header, checksum, or
    failed reassembly."""
    for name in (
        "Ip6InHdrErrors", "Ip6InAddrErrors", "Ip6InTruncatedPkts", "Ip6ReasmFails",
        "Icmp6InErrors", "Icmp6InCsumErrors", "Udp6InErrors", "Udp6InCsumErrors",
    ):  # fmt: skip
        assert snmp6[name] == 0, (name, snmp6[name])


####################################################################
# ICMPv6 echo
####################################################################


@needs_ping
async def test_the_kernel_pings_our_global_and_link_local_addresses(tmp_path: Path) -> None:
    """The kernel's ``ping -6 -c 3`` gets three replies from our global
    address and three from our link-local one (``fe80::...%dev``); we
    answered six echo requests, and found the kernel in our neighbour cache."""
    async with facing_the_kernel(tmp_path) as peer:
        out = await kernel_ping(peer.netns, "-c", "3", "-W", "2", "-i", "0.2", OURS)
        assert "3 packets transmitted, 3 received" in out, out
        ours_ll = our_link_local(peer.host, peer.ifp.name)
        out = await kernel_ping(peer.netns, "-c", "3", "-W", "2", "-i", "0.2", f"{ours_ll}%{peer.dev}")
        assert "3 packets transmitted, 3 received" in out, out
        assert peer.host.inet6.icmp6.statistics().echo_requests == 6
        assert KERNEL in {row.address for row in peer.host.ndp()}
        assert_nothing_dropped(peer)
        snmp6 = await kernel_snmp6(peer.netns)
        assert snmp6["Icmp6OutEchos"] == snmp6["Icmp6InEchoReplies"] == 6
        assert_kernel_happy(snmp6)


async def test_we_ping_the_kernels_global_and_link_local_addresses(tmp_path: Path) -> None:
    """``host.ping`` gets three replies from the kernel's global address and
    three from its link-local one; the kernel counted six echo requests."""
    async with facing_the_kernel(tmp_path) as peer:
        with trio.fail_after(10):
            result = await peer.host.ping(KERNEL, count=3, timeout=2, interval=0.1)
        assert (result.sent, result.received, result.errors) == (3, 3, ())
        assert result.rtt_max is not None and 0 < result.rtt_max < 2
        kernel_ll = kernel_link_local(await kernel_addrs(peer.netns, peer.dev))
        with trio.fail_after(10):
            result = await peer.host.ping(f"{kernel_ll}%{peer.ifp.name}", count=3, timeout=2, interval=0.1)
        assert (result.sent, result.received, result.errors) == (3, 3, ())
        assert peer.host.inet6.icmp6.statistics().echo_replies == 6
        assert_nothing_dropped(peer)
        snmp6 = await kernel_snmp6(peer.netns)
        assert snmp6["Icmp6InEchos"] == snmp6["Icmp6OutEchoReplies"] == 6
        assert_kernel_happy(snmp6)


@needs_ping
async def test_3000_byte_pings_are_fragmented_and_reassembled_both_ways(tmp_path: Path) -> None:
    """``ping -6 -s 3000`` from the kernel: we reassemble its fragments and
    reply in fragments it reassembles. Then ``host.ping(size=3000)``: the
    same the other way. Every count on both sides says three pieces each."""
    async with facing_the_kernel(tmp_path) as peer:
        out = await kernel_ping(peer.netns, "-c", "2", "-W", "2", "-i", "0.2", "-s", "3000", OURS)
        assert "2 packets transmitted, 2 received" in out, out
        ip6 = peer.host.inet6.ip6.statistics()
        assert (ip6.reassembled, ip6.fragmented) == (2, 2)
        with trio.fail_after(10):
            result = await peer.host.ping(KERNEL, count=2, size=3000, timeout=2, interval=0.1)
        assert (result.sent, result.received, result.errors) == (2, 2, ())
        # 3008 bytes of ICMPv6 in pieces of at most 1500 - 40 - 8, a multiple of 8.
        pieces = -(-3008 // ((1500 - 48) // 8 * 8))
        ip6 = peer.host.inet6.ip6.statistics()
        assert (ip6.reassembled, ip6.fragmented, ip6.fragments_sent) == (4, 4, 4 * pieces)
        assert ip6.reassembly.in_progress == 0
        assert_nothing_dropped(peer)
        snmp6 = await kernel_snmp6(peer.netns)
        assert (snmp6["Ip6FragOKs"], snmp6["Ip6FragCreates"]) == (4, 4 * pieces)
        assert (snmp6["Ip6ReasmReqds"], snmp6["Ip6ReasmOKs"]) == (4 * pieces, 4)
        assert snmp6["Icmp6InEchos"] == snmp6["Icmp6InEchoReplies"] == 2
        assert_kernel_happy(snmp6)
    reassembled = await tshark(peer.capture, "-Y", "icmpv6.type == 128 && ipv6.fragments", "-T", "fields",
                               "-e", "ipv6.reassembled.length")  # fmt: skip
    assert reassembled.split() == ["3008"] * 4, reassembled


####################################################################
# TCP: HTTP both ways
####################################################################


@attrs.define
class Http10Server:
    """A tiny HTTP/1.0 responder: reads a request head, answers ``body``, closes."""

    body: bytes
    requests: list[bytes] = attrs.field(factory=list)
    peers: list[tuple[str, int]] = attrs.field(factory=list)

    async def handle(self, stream: trionet.TcpStream) -> None:
        self.peers.append(stream.getpeername())
        head = b""
        with trio.fail_after(PATIENCE):
            while b"\r\n\r\n" not in head:
                chunk = await stream.receive_some()
                if not chunk:
                    return
                head += chunk
            self.requests.append(head)
            await stream.send_all(
                b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                + f"Content-Length: {len(self.body)}\r\n\r\n".encode()
                + self.body
            )
        await stream.aclose()


@needs_curl
async def test_curl_fetches_a_page_from_a_trionet_server_over_ipv6(tmp_path: Path) -> None:
    """``curl -6 http://[fd00::1]:8080/`` in the namespace: exit 0, status
    200, the body we served (100 KB, so many segments), and the request
    naming our bracketed address; the kernel refused no segment."""
    body = seeded_bytes(100_000, seed=6).hex().encode()[:100_000]
    server = Http10Server(body)
    output = tmp_path / "page.txt"
    async with facing_the_kernel(tmp_path) as peer, trio.open_nursery() as nursery:
        await nursery.start(peer.host.serve_tcp, server.handle, HTTP_PORT)
        result = await run(
            "ip", "netns", "exec", peer.netns,
            "curl", "-6", "-sS", "--max-time", "20", "-o", str(output),
            "-w", "%{http_code} %{size_download}", f"http://[{OURS}]:{HTTP_PORT}/",
            check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout.decode() == f"200 {len(body)}"
        assert output.read_bytes() == body
        (request,) = server.requests
        assert request.startswith(b"GET / HTTP/1.1\r\n"), request
        assert f"Host: [{OURS}]:{HTTP_PORT}\r\n".encode() in request, request
        await wait_for_no_connections(peer.host)
        assert peer.host.inet.tcp.statistics().accepts == 1
        assert_nothing_dropped(peer)
        snmp6 = await kernel_snmp6(peer.netns)
        assert_kernel_happy(snmp6)
        nursery.cancel_scope.cancel()
    assert await good_checksums(peer.capture, "tcp") > 50


@asynccontextmanager
async def kernel_http_server(netns: str, directory: Path, log: Path) -> AsyncIterator[None]:
    """``python3 -m http.server --bind ::`` serving ``directory`` on
    ``HTTP_PORT`` in ``netns``, listening when the block starts (it prints
    "Serving HTTP on ..." after listen(2)); killed when it ends."""
    argv = [
        "ip", "netns", "exec", netns, sys.executable, "-u", "-m", "http.server",
        str(HTTP_PORT), "--bind", "::", "--directory", str(directory),
    ]  # fmt: skip
    with log.open("wb") as stderr:
        process = await trio.lowlevel.open_process(argv, stdout=subprocess.PIPE, stderr=stderr)
    try:
        assert process.stdout is not None
        banner = b""
        with trio.fail_after(10):
            while b"\n" not in banner:
                chunk = await process.stdout.receive_some()
                if not chunk:
                    await process.wait()
                    pytest.fail(f"http.server exited {process.returncode}: {log.read_text()}")
                banner += chunk
        assert banner.startswith(b"Serving HTTP on"), banner
        yield
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
                with trio.move_on_after(10):
                    await process.wait()
            if process.stdout is not None:
                await process.stdout.aclose()


async def test_trionet_client_downloads_a_file_from_python_http_server_over_ipv6(tmp_path: Path) -> None:
    """500 KB from the kernel's ``http.server`` (bound to ``::``) to our
    client over ``open_tcp_stream("fd00::2", ...)``: status 200 and the same
    SHA-256; the kernel saw the request come from our global address."""
    blob = seeded_bytes(500_000, seed=7)
    served = tmp_path / "www"
    served.mkdir()
    (served / "blob.bin").write_bytes(blob)
    log = tmp_path / "http.server.log"
    async with facing_the_kernel(tmp_path) as peer:
        async with kernel_http_server(peer.netns, served, log):
            with trio.fail_after(PATIENCE):
                stream = await peer.host.open_tcp_stream(KERNEL, HTTP_PORT)
                assert stream.getpeername() == (KERNEL, HTTP_PORT)
                await stream.send_all(f"GET /blob.bin HTTP/1.0\r\nHost: [{KERNEL}]:{HTTP_PORT}\r\n\r\n".encode())
                response = b""
                while chunk := await stream.receive_some():
                    response += chunk
                await stream.aclose()
            head, _, body = response.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.0 200"), head
            assert f"Content-Length: {len(blob)}".encode() in head, head
            assert hashlib.sha256(body).hexdigest() == hashlib.sha256(blob).hexdigest()
            await wait_for_no_connections(peer.host)
        logged = log.read_text()
        assert f'{OURS} - - ' in logged and '"GET /blob.bin HTTP/1.0" 200' in logged, logged
        assert peer.host.inet.tcp.statistics().connects == 1
        assert_nothing_dropped(peer)
        assert_kernel_happy(await kernel_snmp6(peer.netns))


####################################################################
# router advertisements
####################################################################


@needs_ping
async def test_our_router_advertisements_autoconfigure_the_kernel(tmp_path: Path) -> None:
    """A trionet router (forwarding on) advertises fd00:1::/64 with MTU 1400:
    the kernel answers with an address in the prefix made from its EUI-64,
    a default route through our link-local address, and the link MTU; and
    reaches our address in that prefix through it."""
    async with facing_the_kernel(tmp_path, ours="fd00:1::1", kernel=None, router=True) as peer:
        host, ifname = peer.host, peer.ifp.name
        host.rtadvd(ifname, prefix="fd00:1::/64", mtu=1400, router_lifetime=600)
        # The kernel's solicitations (at link up) got no answer before
        # rtadvd; our unsolicited advertisements come within 16 s.
        with trio.fail_after(25):
            while True:
                lines = await kernel_addrs(peer.netns, peer.dev)
                slaac = [line for line in lines if "inet6 fd00:1::" in line]
                if slaac and "tentative" not in slaac[0]:
                    break
                await trio.sleep(0.2)
        (line,) = slaac
        assert "scope global dynamic" in line, line
        kernel_ll = kernel_link_local(lines)
        assert re.search(r"inet6 (fd00:1::[0-9a-f:]+)/64", line).group(1).endswith(  # type: ignore[union-attr]
            kernel_ll.removeprefix("fe80::")
        ), (line, kernel_ll)
        routes = (await run("ip", "-6", "-n", peer.netns, "route", "show", "default")).stdout.decode()
        assert f"via {our_link_local(host, ifname)} dev {peer.dev} proto ra" in routes, routes
        mtu = (await run("ip", "netns", "exec", peer.netns, "cat", f"/proc/sys/net/ipv6/conf/{peer.dev}/mtu")).stdout
        assert int(mtu) == 1400
        # The kernel reaches fd00:1::1 on-link (the prefix), and an address
        # outside every prefix it knows through its new default route.
        out = await kernel_ping(peer.netns, "-c", "2", "-W", "2", "-i", "0.2", "fd00:1::1")
        assert "2 packets transmitted, 2 received" in out, out
        host.ifconfig(ifname, "fd00:99::1/128")
        await wait_our_addresses_settled(host, ifname)
        out = await kernel_ping(peer.netns, "-c", "2", "-W", "2", "-i", "0.2", "fd00:99::1")
        assert "2 packets transmitted, 2 received" in out, out
        # (The kernel's solicitations before rtadvd started found no advertiser.)
        early = host.inet6.nd6.statistics().drops.get("rs_not_router", 0)
        assert early <= 3
        assert_nothing_dropped(peer, **({"rs_not_router": early} if early else {}))
        assert_kernel_happy(await kernel_snmp6(peer.netns))
    summary = await tshark(peer.capture, "-Y", "icmpv6.type == 134", "-T", "fields", "-e", "icmpv6.opt.prefix",
                           "-e", "icmpv6.opt.mtu", "-e", "ipv6.dst")  # fmt: skip
    assert "fd00:1::\t1400" in summary, summary


####################################################################
# duplicate address detection
####################################################################


async def test_our_dad_finds_the_kernels_address(tmp_path: Path) -> None:
    """fd00::99 on the kernel first (past its own DAD), then on us: the
    kernel defends it, our DAD marks it duplicated and does not use it; the
    kernel keeps it, and still answers there."""
    async with facing_the_kernel(tmp_path) as peer:
        host, ifname = peer.host, peer.ifp.name
        await run("ip", "-n", peer.netns, "addr", "add", "fd00::99/64", "dev", peer.dev)
        await wait_kernel_addresses_settled(peer.netns, peer.dev, count=3)
        host.ifconfig(ifname, "fd00::99/64")
        assert inet6(host, ifname)["fd00::99/64"] == ("tentative",)
        with trio.fail_after(10):
            while inet6(host, ifname)["fd00::99/64"] == ("tentative",):
                await trio.sleep(0.05)
        assert inet6(host, ifname)["fd00::99/64"] == ("duplicated",)
        assert host.inet6.nd6.statistics().dad_duplicates == 1
        assert inet6(host, ifname)[f"{OURS}/64"] == ()
        lines = await kernel_addrs(peer.netns, peer.dev)
        (line,) = [line for line in lines if "fd00::99/64" in line]
        assert "dadfailed" not in line and "tentative" not in line, line
        # Our echo request to fd00::99 leaves for the kernel, which answers.
        with trio.fail_after(10):
            result = await host.ping("fd00::99", count=1, timeout=2)
        assert result.received == 1
        snmp6 = await kernel_snmp6(peer.netns)
        assert snmp6["Icmp6InEchos"] == snmp6["Icmp6OutEchoReplies"] == 1
        assert_nothing_dropped(peer)
        assert_kernel_happy(snmp6)


####################################################################
# UDP and ICMPv6 errors
####################################################################

#: Kernel-side: bind argv[1] port argv[2], connect to argv[3] port argv[4],
#: send argv[5] (hex), print what comes back (or the error) as one line.
KERNEL_UDP = """
import socket, sys
local, lport, peer, pport, payload = sys.argv[1:]
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind((local, int(lport)))
s.connect((peer, int(pport)))
s.settimeout(5)
s.send(bytes.fromhex(payload))
try:
    print(s.recv(65535).hex())
except ConnectionRefusedError:
    print("ECONNREFUSED")
"""


async def kernel_udp(netns: str, *args: object) -> str:
    argv = ["ip", "netns", "exec", netns, sys.executable, "-c", KERNEL_UDP, *map(str, args)]
    return (await run(*argv)).stdout.decode().strip()


async def test_udp_and_port_unreachable_both_ways(tmp_path: Path) -> None:
    """A 2000-byte datagram from the kernel reaches our socket (reassembled)
    and our answer reaches it; a datagram to our closed port draws our ICMPv6
    port unreachable, which refuses the kernel's connected socket; and the
    kernel's port unreachable refuses ours."""
    async with facing_the_kernel(tmp_path) as peer:
        host = peer.host
        s = host.udp_socket()
        s.bind(("::", 5000))
        theirs = seeded_bytes(2000, seed=8)
        async with trio.open_nursery() as nursery:

            async def echo() -> None:
                with trio.fail_after(10):
                    data, addr = await s.recvfrom()
                assert (data, addr) == (theirs, (KERNEL, 6000))
                await s.sendto(data[::-1], addr)

            nursery.start_soon(echo)
            got = await kernel_udp(peer.netns, KERNEL, 6000, OURS, 5000, theirs.hex())
        assert bytes.fromhex(got) == theirs[::-1]

        got = await kernel_udp(peer.netns, KERNEL, 6001, OURS, 5999, b"anyone?".hex())
        assert got == "ECONNREFUSED"
        assert host.inet6.icmp6.statistics().errors_sent == {(1, 4): 1}

        c = host.udp_socket()
        c.connect((KERNEL, 7999))
        await c.send(b"anyone?")
        with trio.fail_after(5), pytest.raises(trionet.NetError) as info:
            await c.recv()
        assert info.value.errno == errno.ECONNREFUSED
        assert host.inet6.icmp6.statistics().errors_received == 1
        assert_nothing_dropped(peer)
        snmp6 = await kernel_snmp6(peer.netns)
        assert snmp6["Udp6NoPorts"] == 1 and snmp6["Udp6InDatagrams"] == 1
        assert snmp6["Icmp6InDestUnreachs"] == snmp6["Icmp6OutDestUnreachs"] == 1
        assert_kernel_happy(snmp6)
    assert await good_checksums(peer.capture, "udp") >= 3


@needs_curl
async def test_curl_fetches_a_page_from_our_link_local_address(tmp_path: Path) -> None:
    """``curl`` to ``http://[fe80::...%dev]:8080/``: TCP over link-local
    addresses, the kernel choosing its own link-local source."""
    server = Http10Server(b"hello over link-local\n")
    output = tmp_path / "page.txt"
    async with facing_the_kernel(tmp_path) as peer, trio.open_nursery() as nursery:
        await nursery.start(peer.host.serve_tcp, server.handle, HTTP_PORT)
        ours_ll = our_link_local(peer.host, peer.ifp.name)
        result = await run(
            "ip", "netns", "exec", peer.netns,
            "curl", "-6", "-sS", "--max-time", "20", "-g", "-o", str(output),
            f"http://[{ours_ll}%25{peer.dev}]:{HTTP_PORT}/",
            check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr.decode()
        assert output.read_bytes() == server.body
        kernel_ll = kernel_link_local(await kernel_addrs(peer.netns, peer.dev))
        await wait_for_no_connections(peer.host)
        # (Not from a TIME_WAIT row: who closes first is a race in real time.)
        assert [address for address, _ in server.peers] == [kernel_ll], server.peers
        assert_nothing_dropped(peer)
        assert_kernel_happy(await kernel_snmp6(peer.netns))
        nursery.cancel_scope.cancel()


####################################################################
# neighbour unreachability detection
####################################################################


@needs_ping
async def test_the_kernels_unicast_probes_of_our_address_are_answered(tmp_path: Path) -> None:
    """With its reachable time cut to 100 ms, the kernel's entry for us goes
    stale between pings, and it confirms us with unicast solicitations
    (NUD probes): we answer each with a solicited advertisement, so every
    ping is answered and the entry never fails."""
    async with facing_the_kernel(tmp_path) as peer:
        neigh = f"net.ipv6.neigh.{peer.dev}"
        for setting in ("base_reachable_time_ms=100", "delay_first_probe_time=1"):
            await run("ip", "netns", "exec", peer.netns, "sysctl", "-qw", f"{neigh}.{setting}")
        out = await kernel_ping(peer.netns, "-c", "5", "-W", "2", "-i", "1.5", OURS)
        assert "5 packets transmitted, 5 received" in out, out
        shown = (await run("ip", "-6", "-n", peer.netns, "neigh", "show", OURS)).stdout.decode()
        assert "FAILED" not in shown and "lladdr" in shown, shown
        assert_nothing_dropped(peer)
    probes = await tshark(peer.capture, "-Y", f"icmpv6.type == 135 && ipv6.dst == {OURS}")
    answers = await tshark(peer.capture, "-Y", f"icmpv6.type == 136 && icmpv6.nd.na.flag.s == 1 && ipv6.src == {OURS}")
    assert len(probes.splitlines()) >= 2, probes
    assert len(answers.splitlines()) >= len(probes.splitlines()), (probes, answers)


####################################################################
# path MTU discovery through the kernel as a router
####################################################################


@needs_ping
async def test_the_kernel_as_a_router_sends_us_packet_too_big(tmp_path: Path) -> None:
    """The kernel forwards between our link and a 1280-byte veth link to a
    second namespace. Our 1400-byte echo request does not fit: the kernel
    answers Packet Too Big (MTU 1280), we learn the path MTU, and the next
    request leaves in fragments that the far host reassembles and answers."""
    n = next(_serial)
    server_ns = f"trionet-inet6s-{os.getpid()}-{n}"
    vr, vs = f"t6r{os.getpid()}x{n}", f"t6s{os.getpid()}x{n}"
    async with facing_the_kernel(tmp_path) as peer:
        try:
            await run("ip", "netns", "add", server_ns)
            await run("ip", "-n", peer.netns, "link", "add", vr, "type", "veth", "peer", "name", vs)
            await run("ip", "-n", peer.netns, "link", "set", vs, "netns", server_ns)
            for ns, dev, addr in ((peer.netns, vr, "fd00:2::1"), (server_ns, vs, "fd00:2::2")):
                await run("ip", "-n", ns, "link", "set", dev, "mtu", "1280")
                await run("ip", "-n", ns, "addr", "add", f"{addr}/64", "dev", dev)
                await run("ip", "-n", ns, "link", "set", dev, "up")
            await run("ip", "-n", server_ns, "link", "set", "lo", "up")
            await run("ip", "-n", server_ns, "route", "add", "default", "via", "fd00:2::1")
            await run("ip", "netns", "exec", peer.netns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
            await wait_kernel_addresses_settled(peer.netns, vr, count=2)
            await wait_kernel_addresses_settled(server_ns, vs, count=2)
            peer.host.route_add("fd00:2::/64", KERNEL)

            with trio.fail_after(10):
                result = await peer.host.ping("fd00:2::2", count=2, size=1400, timeout=2, interval=1)
            assert [(e.seq, e.type, e.code) for e in result.errors] == [(0, 2, 0)], result
            assert result.received == 1
            path_mtu = peer.host.inet6.ip6.path_mtu(
                trionet.protocols.ipv6.ip6_aton("fd00:2::2"), peer.ifp
            )
            assert path_mtu == 1280
            assert peer.host.inet6.icmp6.statistics().errors_received == 1
            ip6 = peer.host.inet6.ip6.statistics()
            assert (ip6.fragmented, ip6.reassembled) == (1, 1)  # the reply, fragmented by the far host
            assert_nothing_dropped(peer)
            router = await kernel_snmp6(peer.netns)
            assert router["Icmp6OutPktTooBigs"] == 1
            assert router["Ip6FragCreates"] == 0  # routers never fragment
            assert_kernel_happy(router)
            server = await kernel_snmp6(server_ns)
            assert server["Ip6ReasmOKs"] == 1 and server["Icmp6InEchos"] == 1
        finally:
            cleanup("ip", "netns", "del", server_ns)
