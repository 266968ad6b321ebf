"""The Linux kernel as an independent peer of the Internet layer: ARP, IPv4
with fragmentation and reassembly, ICMP echo and errors, and UDP, checked
against the kernel's own stack in a network namespace.

The tests run over two wires (the ``kind`` parameter)::

    tap:    trionet 198.18.0.1/24 ==TapWire== 198.18.0.2/24 kernel (namespace)
    vxlan:  trionet 198.18.0.1/24 ==UdpWire, VXLAN VNI 4243== 198.18.0.2/24 kernel VXLAN device
            (underlay: a veth pair on a /30 of 198.18.128.0/17, from the root
            namespace to a second namespace that holds the device's socket)

Network safety: the kernel's end of the Internet layer lives only in
namespaces the test creates; the one thing the test puts in the root
namespace is the root end of its own veth pair (vxlan), and the UdpWire binds
that address, so no datagram leaves for a device we did not create. The
namespaces, the TAP device and the veth pair are removed however the test
ends. Real time is used (the kernel is real); every wait is bounded by
``trio.fail_after``, and the kernel-side programs time out on their own.

The kernel's side is read from its own counters (``/proc/net/snmp`` inside
the namespace): a checksum it rejected, a fragment it could not reassemble,
an ICMP error it never sent would all show there.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio

import trionet
from trionet import Host, Ifnet
from trionet.drivers.vnic import Vnic
from trionet.testing import command_unavailable, linux_peer_unavailable
from trionet.wires import TapWire, UdpWire


SKIP_REASON = linux_peer_unavailable("bridge")
needs_kernel = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")
pytestmark = [pytest.mark.integration, needs_kernel]
# The kernel's own ping (kernel_ping).
PING_SKIP_REASON = command_unavailable("ping")
needs_ping = pytest.mark.skipif(PING_SKIP_REASON is not None, reason=PING_SKIP_REASON or "")
# ethtool turns off the VXLAN device's checksum offload (see facing_the_kernel).
ETHTOOL_SKIP_REASON = command_unavailable("ethtool")
over_both_wires = pytest.mark.parametrize(
    "kind",
    [
        "tap",
        pytest.param(
            "vxlan",
            marks=pytest.mark.skipif(ETHTOOL_SKIP_REASON is not None, reason=ETHTOOL_SKIP_REASON or ""),
        ),
    ],
)

OURS = "198.18.0.1"
KERNEL = "198.18.0.2"
VNI = 4243
VXLAN_MTU = 1450  # what Linux gives a VXLAN device over a 1500-byte underlay

_serial = itertools.count()


####################################################################
# helpers: commands, the kernel's counters, programs in the namespace
####################################################################


async def run(*argv: str) -> str:
    """Run a command; its stdout, or a failure that shows its stderr."""
    with trio.fail_after(10):
        result = await trio.run_process(
            list(argv), capture_stdout=True, capture_stderr=True, check=False
        )
    if result.returncode != 0:
        err = result.stderr.decode().strip()
        pytest.fail(f"{' '.join(argv)} exited {result.returncode}: {err}")
    return result.stdout.decode()


def cleanup(*argv: str) -> None:
    """A teardown command: synchronous (it runs even in a cancelled scope), errors ignored."""
    subprocess.run(list(argv), capture_output=True, check=False, timeout=10)


async def kernel_snmp(netns: str) -> dict[str, dict[str, int]]:
    """``/proc/net/snmp`` as seen in ``netns``: {"Ip": {"ReasmOKs": 1, ...}, ...}."""
    lines = (await run("ip", "netns", "exec", netns, "cat", "/proc/net/snmp")).splitlines()
    table: dict[str, dict[str, int]] = {}
    for names, values in zip(lines[::2], lines[1::2]):
        group, _, keys = names.partition(": ")
        table[group] = dict(zip(keys.split(), map(int, values.partition(": ")[2].split())))
    return table


async def kernel_ping(netns: str, *args: str) -> str:
    """``ping`` run by the kernel in ``netns``; its output (it may fail)."""
    argv = ["ip", "netns", "exec", netns, "ping", *args]
    with trio.fail_after(10):
        result = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
    return result.stdout.decode() + result.stderr.decode()


# Kernel-side programs: argv is local address, local port, peer address,
# peer port, payload (hex). Each ends by printing one JSON line, and gives up
# after 5 s on its own.

_KERNEL_SENDS_FIRST = """
import json, socket, sys
local, lport, peer, pport, payload = sys.argv[1:]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((local, int(lport)))
s.settimeout(5)
s.sendto(bytes.fromhex(payload), (peer, int(pport)))
data, addr = s.recvfrom(65535)
print(json.dumps({"data": data.hex(), "addr": addr}))
"""

_KERNEL_ANSWERS = """
import json, socket, sys
local, lport = sys.argv[1:3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((local, int(lport)))
s.settimeout(5)
print("ready", flush=True)
data, addr = s.recvfrom(65535)
s.sendto(data[::-1], addr)
print(json.dumps({"data": data.hex(), "addr": addr}))
"""

_KERNEL_CONNECTED = """
import json, socket, sys
local, lport, peer, pport, payload = sys.argv[1:]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((local, int(lport)))
s.connect((peer, int(pport)))
s.settimeout(5)
s.send(bytes.fromhex(payload))
try:
    outcome = s.recv(65535).hex()
except ConnectionRefusedError:
    outcome = "ECONNREFUSED"
except TimeoutError:
    outcome = "timeout"
print(json.dumps({"outcome": outcome}))
"""


_KERNEL_SENDS_TWICE = """
import json, select, socket, sys
local, lport, peer, pport, payload = sys.argv[1:]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((local, int(lport)))
s.connect((peer, int(pport)))
s.send(bytes.fromhex(payload))
select.select([s], [], [], 5)  # the ICMP error makes the socket readable
outcomes = []
for _ in range(2):
    try:
        s.send(bytes.fromhex(payload))
        outcomes.append("sent")
    except ConnectionRefusedError:
        outcomes.append("ECONNREFUSED")
print(json.dumps({"outcomes": outcomes}))
"""


@attrs.define(eq=False)
class KernelProgram:
    """A Python program running in the namespace (see :func:`kernel_python`)."""

    process: trio.Process
    _buffer: bytearray = attrs.field(factory=bytearray)

    async def _stderr(self) -> str:
        assert self.process.stderr is not None
        chunks = []
        while chunk := await self.process.stderr.receive_some():
            chunks.append(chunk)
        return b"".join(chunks).decode()

    async def readline(self) -> str:
        """The next line it printed (fails if it exits first)."""
        assert self.process.stdout is not None
        with trio.fail_after(6):
            while b"\n" not in self._buffer:
                chunk = await self.process.stdout.receive_some()
                if not chunk:
                    await self.process.wait()
                    pytest.fail(
                        f"the kernel-side program exited {self.process.returncode}: "
                        f"{await self._stderr()}"
                    )
                self._buffer += chunk
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        return line.decode()

    async def result(self) -> Any:
        """Wait for it to finish; the JSON object it printed last."""
        line = await self.readline()
        with trio.fail_after(6):
            assert await self.process.wait() == 0, await self._stderr()
        return json.loads(line)


@asynccontextmanager
async def kernel_python(netns: str, script: str, *args: object) -> AsyncIterator[KernelProgram]:
    """Run ``script`` with this Python inside ``netns``; killed if still running at exit."""
    argv = ["ip", "netns", "exec", netns, sys.executable, "-c", script, *map(str, args)]
    process = await trio.lowlevel.open_process(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        yield KernelProgram(process)
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
                await process.wait()
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    await stream.aclose()


def pattern(size: int, seed: int) -> bytes:
    """``size`` bytes with no short period, so a piece at the wrong offset shows."""
    return bytes((i * 7 + seed + i // 256) & 0xFF for i in range(size))


####################################################################
# the two ways to face the kernel
####################################################################


@attrs.frozen
class Peer:
    """A trionet host (``OURS``) and the kernel (``KERNEL``) in ``netns``, one link apart."""

    kind: str
    host: Host
    ifp: Ifnet
    netns: str
    kernel_dev: str  # the kernel's device facing us, in netns
    mtu: int


@asynccontextmanager
async def facing_the_kernel(kind: str) -> AsyncIterator[Peer]:
    """A fresh namespace with the kernel's end of a link to a fresh trionet host."""
    n = next(_serial)
    pid = os.getpid()
    netns = f"trionet-inet-{pid}-{n}"
    underlay = f"{netns}-u"
    dev = f"tnl{pid}x{n}"  # at most 15 bytes with a suffix: pid <= 7 digits
    try:
        await run("ip", "netns", "add", netns)
        await run("ip", "-n", netns, "link", "set", "lo", "up")
        if kind == "tap":
            async with _over_tap(netns, dev) as peer:
                yield peer
        else:
            await run("ip", "netns", "add", underlay)
            async with _over_vxlan(netns, underlay, dev, n) as peer:
                yield peer
    finally:
        # Deleting a namespace removes the devices in it (the TAP device if
        # the wire had not closed it, the VXLAN device, the veth pair); the
        # explicit delete covers a veth made but never moved.
        cleanup("ip", "netns", "del", netns)
        cleanup("ip", "netns", "del", underlay)
        cleanup("ip", "link", "del", f"{dev}r")


@asynccontextmanager
async def _host_on(wire: TapWire | UdpWire) -> AsyncIterator[tuple[Host, Ifnet]]:
    async with trionet.open_host("h") as host:
        ifp = await host.if_attach(Vnic(wire))
        await host.ifup(ifp)
        host.ifconfig(ifp.name, f"{OURS}/24")
        yield host, ifp


@asynccontextmanager
async def _over_tap(netns: str, dev: str) -> AsyncIterator[Peer]:
    async with TapWire(dev) as wire:
        async with _host_on(wire) as (host, ifp):
            await run("ip", "link", "set", dev, "netns", netns)
            await run("ip", "-n", netns, "addr", "add", f"{KERNEL}/24", "dev", dev)
            await run("ip", "-n", netns, "link", "set", dev, "up")
            yield Peer("tap", host, ifp, netns, dev, 1500)


@asynccontextmanager
async def _over_vxlan(netns: str, underlay: str, dev: str, n: int) -> AsyncIterator[Peer]:
    # The underlay: a veth pair, DEVr in the root namespace and DEVn in a
    # namespace of its own, on a /30 of 198.18.128.0/17 chosen by pid and
    # serial (test_udp.py uses 198.19.0.0/16; test_tap.py 198.18.77.0/24,
    # but only inside its namespace). The VXLAN device is made there, so its
    # UDP socket stays there, and then moved into netns: the kernel stack we
    # test sees only the inner packets, and its counters only ours.
    base = (198 << 24) | (18 << 16) | (1 << 15) | (((os.getpid() % 512) * 16 + n % 16) * 4)
    root_addr = socket.inet_ntoa((base + 1).to_bytes(4, "big"))
    under_addr = socket.inet_ntoa((base + 2).to_bytes(4, "big"))
    root_dev, under_dev, vx = f"{dev}r", f"{dev}n", f"{dev}v"
    await run("ip", "link", "add", root_dev, "type", "veth", "peer", "name", under_dev, "netns", underlay)
    await run("ip", "addr", "add", f"{root_addr}/30", "dev", root_dev)
    await run("ip", "link", "set", root_dev, "up")
    await run("ip", "-n", underlay, "addr", "add", f"{under_addr}/30", "dev", under_dev)
    await run("ip", "-n", underlay, "link", "set", under_dev, "up")
    wire = UdpWire(
        (under_addr, 4789), local=(root_addr, 0), mode="vxlan", vni=VNI, mtu=VXLAN_MTU,
        name="linux-vxlan",
    )  # fmt: skip
    async with wire:
        await run(
            "ip", "-n", underlay, "link", "add", vx, "type", "vxlan", "id", str(VNI),
            "dstport", "4789", "local", under_addr, "dev", under_dev, "nolearning",
        )  # fmt: skip
        # Everything the device sends (broadcast or not) goes to our port.
        await run(
            "ip", "netns", "exec", underlay, "bridge", "fdb", "append", "00:00:00:00:00:00",
            "dev", vx, "dst", root_addr, "port", str(wire.local_address[1]),
        )  # fmt: skip
        await run("ip", "-n", underlay, "link", "set", vx, "netns", netns)
        await run("ip", "-n", netns, "link", "set", vx, "mtu", str(VXLAN_MTU))
        # Without this the kernel leaves the inner UDP checksum to "hardware"
        # (CHECKSUM_PARTIAL), the veth never fills it in, and we rightly drop
        # the kernel's small datagrams as bad_checksum. (Fragments and ICMP
        # are always checksummed in software.) A real NIC would compute it.
        await run("ip", "netns", "exec", netns, "ethtool", "-K", vx, "tx", "off")
        await run("ip", "-n", netns, "addr", "add", f"{KERNEL}/24", "dev", vx)
        await run("ip", "-n", netns, "link", "set", vx, "up")
        async with _host_on(wire) as (host, ifp):
            yield Peer("vxlan", host, ifp, netns, vx, VXLAN_MTU)


####################################################################
# ICMP echo
####################################################################


@needs_ping
@over_both_wires
async def test_the_kernel_pings_us(kind: str) -> None:
    """The kernel's ``ping`` gets all three replies; our ICMP counted three
    echo requests and IP delivered them."""
    async with facing_the_kernel(kind) as peer:
        out = await kernel_ping(peer.netns, "-c", "3", "-W", "2", "-i", "0.2", OURS)
        assert "3 packets transmitted, 3 received" in out, out
        assert peer.host.inet.icmp.counts["echo_requests"] == 3
        ip = peer.host.inet.ip.statistics()
        assert ip.received >= 3 and ip.delivered >= 3
        assert ip.drops == {}
        snmp = await kernel_snmp(peer.netns)
        assert snmp["Icmp"]["OutEchos"] == snmp["Icmp"]["InEchoReps"] == 3
        assert snmp["Icmp"]["InErrors"] == snmp["Icmp"]["InCsumErrors"] == 0


@over_both_wires
async def test_we_ping_the_kernel(kind: str) -> None:
    """``host.ping`` gets three replies with round-trip times; the kernel
    counted three echo requests and three replies."""
    async with facing_the_kernel(kind) as peer:
        with trio.fail_after(10):
            result = await peer.host.ping(KERNEL, count=3, timeout=2, interval=0.1)
        assert (result.sent, result.received, result.errors) == (3, 3, ())
        assert len(result.rtts) == 3
        assert result.rtt_min is not None and result.rtt_max is not None
        assert 0 < result.rtt_min <= result.rtt_max < 2
        assert peer.host.inet.icmp.counts["echo_replies"] == 3
        snmp = await kernel_snmp(peer.netns)
        assert snmp["Icmp"]["InEchos"] == snmp["Icmp"]["OutEchoReps"] == 3
        assert snmp["Icmp"]["InErrors"] == snmp["Icmp"]["InCsumErrors"] == 0


####################################################################
# UDP
####################################################################


@over_both_wires
async def test_udp_both_ways(kind: str) -> None:
    """Kernel -> us -> kernel, then us -> kernel -> us: payloads, source
    addresses and ports are what each side sent; the kernel found every
    checksum good."""
    async with facing_the_kernel(kind) as peer:
        host = peer.host
        # The kernel speaks first, from port 6000, to our bound socket.
        s = host.udp_socket()
        s.bind((OURS, 5000))
        args = (KERNEL, 6000, OURS, 5000, b"hello".hex())
        async with kernel_python(peer.netns, _KERNEL_SENDS_FIRST, *args) as program:
            with trio.fail_after(5):
                data, addr = await s.recvfrom()
            assert (data, addr) == (b"hello", (KERNEL, 6000))
            await s.sendto(b"hello yourself", addr)
            got = await program.result()
        assert bytes.fromhex(got["data"]) == b"hello yourself"
        assert got["addr"] == [OURS, 5000]
        assert s.statistics().received == s.statistics().sent == 1

        # We speak first, from an ephemeral port, to a kernel socket on 6001.
        c = host.udp_socket()
        async with kernel_python(peer.netns, _KERNEL_ANSWERS, KERNEL, 6001) as program:
            assert await program.readline() == "ready"
            await c.sendto(b"ping?", (KERNEL, 6001))
            with trio.fail_after(5):
                data, addr = await c.recvfrom()
            got = await program.result()
        assert bytes.fromhex(got["data"]) == b"ping?"
        assert got["addr"] == [OURS, c.getsockname()[1]]
        assert (data, addr) == (b"?gnip", (KERNEL, 6001))

        assert host.inet.udp.statistics() == trionet.UdpStatistics(received=2, drops={})
        udp = (await kernel_snmp(peer.netns))["Udp"]
        assert udp["InDatagrams"] == udp["OutDatagrams"] == 2
        assert udp["InErrors"] == udp["InCsumErrors"] == udp["NoPorts"] == 0


@over_both_wires
async def test_port_unreachable_both_ways(kind: str) -> None:
    """A datagram to a port nobody listens on draws ICMP port unreachable,
    and a connected socket on either side then fails with ECONNREFUSED."""
    async with facing_the_kernel(kind) as peer:
        host = peer.host
        # Kernel -> our closed port 5999: we answer, its recv is refused.
        args = (KERNEL, 6002, OURS, 5999, b"anyone?".hex())
        async with kernel_python(peer.netns, _KERNEL_CONNECTED, *args) as program:
            got = await program.result()
        assert got == {"outcome": "ECONNREFUSED"}
        assert host.inet.udp.statistics().drops == {"noport": 1}
        assert host.inet.icmp.statistics().errors_sent == {(3, 3): 1}

        # Us -> the kernel's closed port 7999: its answer reaches our socket.
        s = host.udp_socket()
        s.connect((KERNEL, 7999))
        await s.send(b"anyone?")
        with trio.fail_after(5), pytest.raises(trionet.NetError) as info:
            await s.recv()
        assert info.value.errno == errno.ECONNREFUSED
        assert host.inet.icmp.counts["errors_received"] == 1
        assert "error_unmatched" not in host.inet.icmp.drops

        snmp = await kernel_snmp(peer.netns)
        assert snmp["Udp"]["NoPorts"] == 1
        assert snmp["Icmp"]["OutDestUnreachs"] == snmp["Icmp"]["InDestUnreachs"] == 1
        assert snmp["Icmp"]["InErrors"] == snmp["Icmp"]["InCsumErrors"] == 0


async def test_a_refused_connected_socket_fails_its_next_send_too() -> None:
    """With an ICMP port unreachable pending, the next send on the connected
    socket fails with ECONNREFUSED and clears it (DragonFly ``sosendudp``
    returns ``so_error``); the kernel, asked the same, does so too."""
    async with facing_the_kernel("tap") as peer:
        host = peer.host
        args = (KERNEL, 6003, OURS, 5999, b"anyone?".hex())
        async with kernel_python(peer.netns, _KERNEL_SENDS_TWICE, *args) as program:
            got = await program.result()
        assert got == {"outcomes": ["ECONNREFUSED", "sent"]}

        s = host.udp_socket()
        s.connect((KERNEL, 7999))
        await s.send(b"anyone?")
        with trio.fail_after(5):
            while host.inet.icmp.counts["errors_received"] < 1:
                await trio.sleep(0.005)
        with pytest.raises(trionet.NetError) as info:
            await s.send(b"anyone?")
        assert info.value.errno == errno.ECONNREFUSED
        await s.send(b"anyone?")  # the error was cleared by reporting it


####################################################################
# fragmentation
####################################################################


@needs_ping
@over_both_wires
async def test_3000_byte_datagrams_are_fragmented_and_reassembled_both_ways(kind: str) -> None:
    """A 3000-byte UDP datagram each way over the link: the kernel
    fragments its own and reassembles ours, we do the same, and both
    payloads arrive intact. Then a 3000-byte ping each way."""
    async with facing_the_kernel(kind) as peer:
        host = peer.host
        theirs, ours = pattern(3000, 1), pattern(3000, 2)
        s = host.udp_socket()
        s.bind((OURS, 5000))
        args = (KERNEL, 6000, OURS, 5000, theirs.hex())
        async with kernel_python(peer.netns, _KERNEL_SENDS_FIRST, *args) as program:
            with trio.fail_after(5):
                data, addr = await s.recvfrom()
            assert addr == (KERNEL, 6000)
            assert data == theirs
            await s.sendto(ours, addr)
            got = await program.result()
        assert bytes.fromhex(got["data"]) == ours
        assert got["addr"] == [OURS, 5000]

        # 3008 bytes of UDP in pieces of at most mtu - 20, a multiple of 8.
        pieces = -(-3008 // ((peer.mtu - 20) // 8 * 8))
        ip = host.inet.ip.statistics()
        assert (ip.reassembled, ip.fragmented, ip.fragments_sent) == (1, 1, pieces)
        snmp = (await kernel_snmp(peer.netns))["Ip"]
        assert (snmp["FragOKs"], snmp["FragCreates"]) == (1, pieces)
        assert (snmp["ReasmReqds"], snmp["ReasmOKs"], snmp["ReasmFails"]) == (pieces, 1, 0)

        # ICMP too: echo requests over the MTU, their replies as big.
        out = await kernel_ping(peer.netns, "-c", "1", "-W", "2", "-s", "3000", OURS)
        assert "1 packets transmitted, 1 received" in out, out
        with trio.fail_after(5):
            result = await host.ping(KERNEL, count=1, size=3000, timeout=2)
        assert (result.sent, result.received, result.errors) == (1, 1, ())
        ip = host.inet.ip.statistics()
        assert (ip.reassembled, ip.fragmented) == (3, 3)
        assert ip.drops == {}
        assert ip.reassembly.reassembled == 3 and ip.reassembly.in_progress == 0
