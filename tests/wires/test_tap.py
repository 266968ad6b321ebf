"""TapWire: a Linux TAP device, with the host kernel's own stack as the far end.

The kernel tests need root, /dev/net/tun and ``ip``; they create their TAP
devices and a network namespace of their own (named after the pid), use
addresses of 198.18.0.0/15 inside it, and remove both in teardown. Real time
is used because the kernel is involved, but nothing sleeps to let things
settle: each wait polls for the counter or frame it expects, under
``trio.fail_after``.
"""

from __future__ import annotations

import errno
import itertools
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import attrs
import pytest
import trio

import trionet
from trionet import Host, Ifnet
from trionet._net._arp import Arp
from trionet.drivers.vnic import Vnic
from trionet.lowlevel import ETHER_BROADCAST, Mbuf, ifq_dispatch
from trionet.testing import linux_peer_unavailable
from trionet.wires import TapWire, TapWireStatistics


SKIP_REASON = linux_peer_unavailable()
needs_kernel = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")
# The kernel's own ping makes it send (ARP requests, oversized frames).
PING_SKIP_REASON = linux_peer_unavailable("ping")
needs_kernel_ping = pytest.mark.skipif(PING_SKIP_REASON is not None, reason=PING_SKIP_REASON or "")

# Inside the test namespace: the kernel's address and the one we play.
KERNEL_IP = "198.18.77.2"
OUR_IP = "198.18.77.1"
ARP_HEADER = bytes.fromhex("0001 0800 06 04")  # Ethernet, IPv4, 6, 4

_serial = itertools.count()


def unique_ifname() -> str:
    """A device name no concurrent test run uses (pid + counter, <= 15 bytes)."""
    return f"tnt{os.getpid()}x{next(_serial)}"


def ipv4(text: str) -> bytes:
    return bytes(int(part) for part in text.split("."))


def arp(oper: int, sha: bytes, spa: str, tha: bytes, tpa: str) -> bytes:
    """An ARP packet (no Ethernet header)."""
    return ARP_HEADER + oper.to_bytes(2, "big") + sha + ipv4(spa) + tha + ipv4(tpa)


async def run(*argv: str) -> str:
    """Run a command; its stdout, or a failure that shows its stderr."""
    result = await trio.run_process(
        list(argv), capture_stdout=True, capture_stderr=True, check=False
    )
    if result.returncode != 0:
        err = result.stderr.decode().strip()
        pytest.fail(f"{' '.join(argv)} exited {result.returncode}: {err}")
    return result.stdout.decode()


async def run_until_cancelled(*argv: str) -> None:
    """Run a command that may fail (``ping`` nobody answers), output discarded."""
    await trio.run_process(
        list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )


async def link_exists(name: str) -> bool:
    """Whether ``ip link show NAME`` finds the device in the root namespace."""
    result = await trio.run_process(
        ["ip", "link", "show", name], capture_stdout=True, capture_stderr=True, check=False
    )
    return result.returncode == 0


async def ns_sysfs(netns: str, ifname: str, attr: str) -> str:
    """``/sys/class/net/IFNAME/ATTR`` as seen inside ``netns``."""
    path = f"/sys/class/net/{ifname}/{attr}"
    return (await run("ip", "netns", "exec", netns, "cat", path)).strip()


async def wait_until(predicate: Callable[[], object], what: str) -> None:
    """Poll ``predicate`` until it holds; fail after 5 s saying what never happened."""
    try:
        with trio.fail_after(5):
            while not predicate():
                await trio.sleep(0.005)
    except trio.TooSlowError:
        pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace, deleted in teardown whatever happened.

    IPv6 is off in it, so the kernel sends nothing unasked (router
    solicitations, MLD reports at random times) that a test counting frames
    would have to allow for.
    """
    name = f"trionet-tap-{os.getpid()}-{next(_serial)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        subprocess.run(
            ["ip", "netns", "exec", name, "sh", "-c",
             "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6;"
             " echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6"],
            check=True, capture_output=True,
        )
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


@attrs.define
class Peer:
    """A vnic on a TapWire whose device sits, up and addressed, in ``netns``."""

    wire: TapWire
    host: Host
    ifp: Ifnet
    netns: str
    kernel_mac: bytes  # the device's MAC as the kernel reports it
    arps: list[tuple[bytes, bytes, Ifnet]]  # (frame, mbuf.src, mbuf.rcvif) per ARP packet


@asynccontextmanager
async def vnic_facing_the_kernel(netns: str) -> AsyncIterator[Peer]:
    name = unique_ifname()
    arps: list[tuple[bytes, bytes, Ifnet]] = []
    arp_input = Arp.input

    def arpintr(self: Arp, m: Mbuf) -> None:
        arps.append((bytes(m.frame), m.src, m.rcvif))
        arp_input(self, m)

    async with TapWire(name) as wire, AsyncExitStack() as stack:
        # The host registers its ARP input with netisr as it opens; a spy
        # in its place for that moment sees every ARP packet it receives.
        Arp.input = arpintr  # type: ignore[method-assign]
        try:
            host = await stack.enter_async_context(trionet.open_host("h"))
        finally:
            Arp.input = arp_input  # type: ignore[method-assign]
        ifp = await host.if_attach(Vnic(wire))
        await host.ifup(ifp)
        await run("ip", "link", "set", name, "netns", netns)
        await run("ip", "-n", netns, "addr", "add", f"{KERNEL_IP}/24", "dev", name)
        await run("ip", "-n", netns, "link", "set", name, "up")
        mac = bytes.fromhex((await ns_sysfs(netns, name, "address")).replace(":", ""))
        yield Peer(wire, host, ifp, netns, mac, arps)


####################################################################
# lifecycle
####################################################################


@pytest.mark.integration
@needs_kernel
async def test_device_exists_only_while_the_block_is_open() -> None:
    name = unique_ifname()
    async with TapWire(name) as wire:
        assert wire.ifname == wire.name == name
        assert wire.link_up
        assert await link_exists(name)
    assert not wire.link_up
    assert wire.ifname == name  # still readable afterwards
    assert not await link_exists(name)

    class Boom(Exception):
        pass

    # The body's own exception comes out, unwrapped, and the device is gone.
    with pytest.raises(Boom):
        async with TapWire(name):
            assert await link_exists(name)
            raise Boom
    assert not await link_exists(name)

    # No name: the kernel picks tapN.
    async with TapWire() as wire:
        picked = wire.ifname
        assert picked.startswith("tap") and picked[3:].isdigit()
        assert await link_exists(picked)
    assert not await link_exists(picked)


@pytest.mark.integration
@needs_kernel
async def test_a_cancelled_block_removes_the_device() -> None:
    name = unique_ifname()
    with trio.move_on_after(0.05) as scope:
        async with TapWire(name):
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert not await link_exists(name)


@pytest.mark.integration
@needs_kernel
async def test_deleting_the_device_drops_the_carrier() -> None:
    name = unique_ifname()
    async with TapWire(name) as wire:
        await run("ip", "link", "del", name)
        await wait_until(lambda: not wire.link_up, "the carrier to drop")
        assert not wire.send(ETHER_BROADCAST + b"\x02" + bytes(5) + b"\x88\xb5" + bytes(46))
        assert wire.statistics().tx_drops == 1
    assert not await link_exists(name)


####################################################################
# the kernel as the far end
####################################################################


@pytest.mark.integration
@needs_kernel_ping
async def test_frames_the_kernel_sends_arrive_intact_in_a_vnic(netns: str) -> None:
    """The kernel's ARP request for our address reaches the vnic's ARP handler
    byte for byte: broadcast, from the device's MAC, asking for OUR_IP."""
    async with vnic_facing_the_kernel(netns) as peer:
        mac = peer.kernel_mac
        def asks_for_us(frame: bytes) -> bool:
            return frame[-4:] == ipv4(OUR_IP)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                run_until_cancelled, "ip", "netns", "exec", netns, "ping", "-c1", "-W1", OUR_IP
            )
            await wait_until(
                lambda: any(asks_for_us(f) for f, _, _ in peer.arps), "the kernel's ARP request"
            )
            nursery.cancel_scope.cancel()  # nobody answers; do not wait for ping
        frame, src, rcvif = next(a for a in peer.arps if asks_for_us(a[0]))
        expected = arp(1, mac, KERNEL_IP, bytes(6), OUR_IP)
        assert frame == ETHER_BROADCAST + mac + b"\x08\x06" + expected
        assert src == mac
        assert rcvif is peer.ifp
        stats = peer.wire.statistics()
        assert isinstance(stats, TapWireStatistics)
        assert stats.rx_frames >= 1 and stats.rx_bytes >= len(frame)
        assert stats.rx_oversize == stats.rx_runts == stats.rx_drops == 0
        assert peer.ifp.statistics().ipackets >= 1


@pytest.mark.integration
@needs_kernel
async def test_frames_the_vnic_sends_reach_the_kernel(netns: str) -> None:
    """An ARP request from the vnic, queued with ifq_dispatch, is counted by
    the kernel's device and answered: the reply comes back to the vnic."""
    async with vnic_facing_the_kernel(netns) as peer:
        ifp, mac, name = peer.ifp, peer.kernel_mac, peer.wire.ifname
        ours = ifp.lladdr
        rx_before = int(await ns_sysfs(netns, name, "statistics/rx_packets"))
        request = ETHER_BROADCAST + ours + b"\x08\x06" + arp(1, ours, OUR_IP, bytes(6), KERNEL_IP)
        ifq_dispatch(ifp, request)
        await wait_until(lambda: peer.wire.statistics().tx_frames == 1, "the request to go out")
        await wait_until(lambda: peer.arps, "the kernel's ARP reply")
        frame, src, _ = peer.arps[0]
        assert frame == ours + mac + b"\x08\x06" + arp(2, mac, KERNEL_IP, ours, OUR_IP)
        assert src == mac
        assert int(await ns_sysfs(netns, name, "statistics/rx_packets")) == rx_before + 1
        stats = peer.wire.statistics()
        assert stats.tx_bytes == len(request)
        assert stats.tx_drops == stats.tx_errors == 0
        assert ifp.statistics().opackets == 1


@pytest.mark.integration
@needs_kernel_ping
async def test_oversized_frames_from_the_kernel_are_counted_and_dropped(netns: str) -> None:
    """The kernel side's MTU raised above the wire's: a big ping reaches us
    as one frame over mtu + 14 bytes, counted in rx_oversize, never delivered."""
    async with vnic_facing_the_kernel(netns) as peer:
        name = peer.wire.ifname
        assert await ns_sysfs(netns, name, "mtu") == "1500"  # the wire set it
        await run("ip", "-n", netns, "link", "set", name, "mtu", "2000")
        # A static neighbour, so the kernel sends the echo request at once.
        lladdr = peer.ifp.lladdr.hex(":")
        await run("ip", "-n", netns, "neigh", "add", OUR_IP, "lladdr", lladdr, "dev", name)
        before = peer.wire.statistics()
        ping = ("ip", "netns", "exec", netns, "ping", "-c1", "-W1", "-s", "1900", OUR_IP)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_until_cancelled, *ping)
            await wait_until(lambda: peer.wire.statistics().rx_oversize == 1, "the oversized frame")
            nursery.cancel_scope.cancel()
        after = peer.wire.statistics()
        assert after.rx_frames == before.rx_frames  # dropped, not delivered
        assert after.rx_bytes == before.rx_bytes


####################################################################
# send refusals and errors
####################################################################


@pytest.mark.integration
@needs_kernel
async def test_send_refuses_and_counts_what_the_kernel_cannot_take() -> None:
    good = ETHER_BROADCAST + b"\x02" + bytes(5) + b"\x88\xb5" + bytes(46)
    async with TapWire(unique_ifname(), mtu=1500) as wire:
        assert not wire.send(good[:13])  # runt
        assert not wire.send(good + bytes(1500))  # over mtu + 14
        assert wire.statistics().tx_errors == 0  # refused before any write
        # The device is down in the kernel (we never set it up): EIO.
        assert not wire.send(good)
        stats = wire.statistics()
        assert (stats.tx_frames, stats.tx_drops, stats.tx_errors) == (0, 3, 1)
    assert not wire.send(good)  # closed
    assert wire.statistics().tx_drops == 4


def test_arguments_are_checked_before_any_system_call() -> None:
    with pytest.raises(ValueError, match="at most 15"):
        TapWire("a" * 16)
    TapWire("a" * 15)  # the longest allowed
    for bad in ("", "a/b", "a b", "a:b", ".."):
        with pytest.raises(ValueError, match="not a valid Linux interface name"):
            TapWire(bad)
    with pytest.raises(TypeError):
        TapWire(b"tap0")  # type: ignore[arg-type]
    for mtu in (0, 67, 65522, True):
        with pytest.raises(ValueError, match="mtu"):
            TapWire(mtu=mtu)
    with pytest.raises(ValueError, match="batch"):
        TapWire(batch=0)
    wire = TapWire("tntap0")
    assert not wire.link_up
    with pytest.raises(RuntimeError, match="no device yet"):
        wire.ifname
    assert not wire.send(b"\xff" * 60)
    assert wire.statistics() == TapWireStatistics(0, 0, 1, 0, 0, 0, 0, 0, 0)


async def test_a_missing_tun_device_says_what_is_needed(tmp_path: Path) -> None:
    wire = TapWire("tntap0", _tun_path=str(tmp_path / "tun"))
    with pytest.raises(trionet.NetError) as info:
        async with wire:
            pass  # pragma: no cover
    assert info.value.errno == errno.ENOENT
    assert isinstance(info.value, OSError)
    assert "needs root (more exactly CAP_NET_ADMIN)" in str(info.value)
    assert "/dev/net/tun" in str(info.value)


async def test_other_systems_get_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "freebsd14")
    with pytest.raises(trionet.NetError, match="only on Linux") as info:
        async with TapWire("tntap0"):
            pass  # pragma: no cover
    assert info.value.errno == errno.EOPNOTSUPP


_UNPRIVILEGED = """
import errno, os, trio
from trionet.wires import TapWire
import trionet
os.setgroups([]); os.setgid(65534); os.setuid(65534)  # nobody, no capabilities
async def main():
    try:
        async with TapWire("tntap0"):
            print("opened")
    except trionet.NetError as exc:
        print(errno.errorcode[exc.errno], exc.strerror)
trio.run(main)
"""


@pytest.mark.integration
@needs_kernel
async def test_without_root_the_error_says_so() -> None:
    """As user nobody, opening fails with EACCES (the device node is root's)
    or EPERM (TUNSETIFF without CAP_NET_ADMIN), with a message saying why."""
    out = (await run(sys.executable, "-c", _UNPRIVILEGED)).strip()
    code, _, message = out.partition(" ")
    assert code in ("EACCES", "EPERM"), out
    assert "TapWire needs root (more exactly CAP_NET_ADMIN)" in message
    assert "/dev/net/tun" in message
