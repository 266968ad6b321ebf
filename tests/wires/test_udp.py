"""UdpWire: raw and VXLAN frames over real UDP sockets on loopback, and a Linux VXLAN peer.

These tests use the OS, so they run in real time; none sleeps to let things
settle: each waits (bounded by ``trio.fail_after``) for the counter or the
frame it expects.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator

import attrs
import pytest
import trio

import trionet
from trionet.drivers.vnic import Vnic
from trionet.lowlevel import Mbuf, ifq_dispatch
from trionet.testing import linux_peer_unavailable
from trionet.wires import UdpWire, UdpWireStatistics, open_udp_wire_pair

pytestmark = pytest.mark.integration

PROTO = 0x88B5
LOOPBACK = "127.0.0.1"


def frame(seq: int, size: int = 60, dst: bytes = b"\xff" * 6, src: bytes = b"\x02" + bytes(5)) -> bytes:
    return dst + src + PROTO.to_bytes(2, "big") + seq.to_bytes(4, "big") + bytes(size - 18)


def vxlan(vni: int, payload: bytes, flags: int = 0x08) -> bytes:
    return bytes((flags, 0, 0, 0)) + vni.to_bytes(3, "big") + b"\x00" + payload


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate`` every millisecond of real time, for at most 5 s."""
    with trio.fail_after(5):
        while not predicate():
            await trio.sleep(0.001)


def udp_socket(host: str = LOOPBACK) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(5)
    return sock


def datagrams_add_up(s: UdpWireStatistics) -> bool:
    return s.rx_datagrams == (
        s.rx_frames + s.rx_drops + s.rx_foreign + s.rx_malformed + s.rx_vni_mismatch + s.rx_oversize
    )


####################################################################
# two wires, and plain sockets as the far end
####################################################################


@pytest.mark.parametrize(("mode", "vni"), [("raw", 0), ("vxlan", 0x123456)])
async def test_two_wires_exchange_frames_both_ways(mode: str, vni: int) -> None:
    async with open_udp_wire_pair(mode=mode, vni=vni) as (a, b):
        assert a.peer == b.local_address and b.peer == a.local_address
        assert a.link_up and b.link_up
        got_a: list[bytes] = []
        got_b: list[bytes] = []
        a.set_receiver(got_a.append)
        b.set_receiver(got_b.append)
        sizes = [18, 60, 1514]  # the smallest frame with a sequence number, up to mtu + 14
        for i, size in enumerate(sizes):
            assert a.send(frame(i, size))
            assert b.send(frame(100 + i, size))
        await wait_until(lambda: len(got_a) == len(got_b) == 3)
        assert got_b == [frame(i, size) for i, size in enumerate(sizes)]
        assert got_a == [frame(100 + i, size) for i, size in enumerate(sizes)]
        sa, sb = a.statistics(), b.statistics()
        assert sa.tx_frames == sb.rx_frames == 3
        assert sa.tx_bytes == sb.rx_bytes == sum(sizes)
        for s in (sa, sb):
            assert s.tx_drops == s.rx_drops == s.rx_foreign == s.rx_malformed == 0
            assert datagrams_add_up(s)


async def test_a_qemu_style_datagram_arrives_intact() -> None:
    """A plain socket sending one Ethernet frame per datagram (QEMU ``-netdev
    dgram``, GNS3) reaches the receiver byte for byte, one frame each."""
    with udp_socket() as qemu:
        async with UdpWire(qemu.getsockname()) as wire:
            got: list[bytes] = []
            wire.set_receiver(got.append)
            sent = [frame(i, size) for i, size in enumerate((60, 64, 590, 1514))]
            for f in sent:
                qemu.sendto(f, wire.local_address)
            await wait_until(lambda: len(got) == len(sent))
            assert got == sent
            assert all(type(f) is bytes for f in got)
            s = wire.statistics()
            assert s.rx_frames == s.rx_datagrams == 4 and s.rx_bytes == sum(map(len, sent))


async def test_raw_mode_sends_exactly_one_frame_per_datagram() -> None:
    with udp_socket() as peer:
        async with UdpWire(peer.getsockname()) as wire:
            sent = [frame(i, size) for i, size in enumerate((14 + 4, 60, 1514))]
            for f in sent:
                assert wire.send(f)
            for f in sent:
                data, src = peer.recvfrom(65535)
                assert data == f
                assert src == wire.local_address


async def test_vxlan_mode_sends_the_rfc7348_header_then_the_frame() -> None:
    with udp_socket() as peer:
        async with UdpWire(peer.getsockname(), mode="vxlan", vni=0xABCDEF) as wire:
            f = frame(7)
            assert wire.send(memoryview(f))  # any buffer will do
            data, src = peer.recvfrom(65535)
            assert data[:8] == b"\x08\x00\x00\x00\xab\xcd\xef\x00"
            assert data[8:] == f and len(data) == 8 + 60
            assert src == wire.local_address
            assert wire.statistics().tx_bytes == 60  # the frame, not the datagram


####################################################################
# what the receive side drops, and counts
####################################################################


async def test_datagrams_from_anyone_but_the_peer_are_dropped_and_counted() -> None:
    """Acceptance: another port on the peer's address and another address
    are both foreign in raw mode; the receiver sees only the peer's frame."""
    with udp_socket() as peer, udp_socket() as other_port, udp_socket("127.0.0.2") as other_addr:
        async with UdpWire(peer.getsockname()) as wire:
            got: list[bytes] = []
            wire.set_receiver(got.append)
            other_port.sendto(frame(1), wire.local_address)
            other_addr.sendto(frame(2), wire.local_address)
            await wait_until(lambda: wire.statistics().rx_foreign == 2)
            peer.sendto(frame(3), wire.local_address)
            await wait_until(lambda: wire.statistics().rx_frames == 1)
            assert got == [frame(3)]
            s = wire.statistics()
            assert s.rx_datagrams == 3 and s.rx_drops == 0 and datagrams_add_up(s)


async def test_vxlan_accepts_any_source_port_of_the_peer_address_only() -> None:
    """VXLAN senders hash the flow into the source port (RFC 7348 section 5):
    any port of the peer's address is accepted, another address is not."""
    with udp_socket() as peer, udp_socket() as entropy_port, udp_socket("127.0.0.2") as stranger:
        async with UdpWire(peer.getsockname(), mode="vxlan", vni=5) as wire:
            got: list[bytes] = []
            wire.set_receiver(got.append)
            stranger.sendto(vxlan(5, frame(1)), wire.local_address)
            await wait_until(lambda: wire.statistics().rx_foreign == 1)
            peer.sendto(vxlan(5, frame(2)), wire.local_address)
            entropy_port.sendto(vxlan(5, frame(3)), wire.local_address)
            await wait_until(lambda: len(got) == 2)
            assert got == [frame(2), frame(3)]


async def test_raw_runts_and_oversized_datagrams_are_counted() -> None:
    with udp_socket() as peer:
        async with UdpWire(peer.getsockname(), mtu=1000) as wire:
            got: list[bytes] = []
            wire.set_receiver(got.append)
            dst = wire.local_address
            peer.sendto(b"", dst)  # an empty datagram is legal UDP
            peer.sendto(bytes(13), dst)
            peer.sendto(bytes(1015), dst)
            peer.sendto(bytes(65507), dst)  # the largest IPv4 UDP payload
            peer.sendto(bytes(1014), dst)  # exactly mtu + 14: accepted
            await wait_until(lambda: wire.statistics().rx_datagrams == 5)
            s = wire.statistics()
            assert (s.rx_malformed, s.rx_oversize, s.rx_frames) == (2, 2, 1)
            assert got == [bytes(1014)]
            assert datagrams_add_up(s)


async def test_vxlan_malformed_wrong_vni_and_oversized_datagrams_are_counted() -> None:
    with udp_socket() as peer:
        async with UdpWire(peer.getsockname(), mode="vxlan", vni=42, mtu=1000) as wire:
            got: list[bytes] = []
            wire.set_receiver(got.append)
            dst = wire.local_address
            peer.sendto(vxlan(42, b"")[:7], dst)  # a truncated header
            peer.sendto(vxlan(42, bytes(13)), dst)  # a runt inner frame
            peer.sendto(vxlan(42, frame(1), flags=0x00), dst)  # no I flag
            peer.sendto(vxlan(43, frame(2)), dst)  # another VNI
            peer.sendto(vxlan(42, bytes(1015)), dst)  # oversized inner frame
            # Reserved bits and bytes are ignored on receipt (RFC 7348 section 5).
            odd = bytes((0x08 | 0x80, 1, 2, 3)) + (42).to_bytes(3, "big") + b"\x09" + frame(3)
            peer.sendto(odd, dst)
            await wait_until(lambda: wire.statistics().rx_datagrams == 6)
            s = wire.statistics()
            assert (s.rx_malformed, s.rx_vni_mismatch, s.rx_oversize, s.rx_frames) == (3, 1, 1, 1)
            assert got == [frame(3)]
            assert datagrams_add_up(s)


async def test_a_frame_with_no_receiver_is_counted() -> None:
    with udp_socket() as peer:
        async with UdpWire(peer.getsockname()) as wire:
            peer.sendto(frame(1), wire.local_address)
            await wait_until(lambda: wire.statistics().rx_drops == 1)
            assert wire.statistics().rx_frames == 0


async def test_the_receive_task_drains_in_batches() -> None:
    with udp_socket() as peer:
        async with UdpWire(peer.getsockname(), batch=8) as wire:
            got: list[bytes] = []
            wire.set_receiver(got.append)
            for i in range(100):  # all queued in the socket before the task runs
                peer.sendto(frame(i), wire.local_address)
            await wait_until(lambda: len(got) == 100)
            assert got == [frame(i) for i in range(100)]
            s = wire.statistics()
            assert s.rx_datagrams == 100
            assert 13 <= s.rx_batches < 100  # at most 8 per pass, not one per wake-up


async def test_an_exception_in_the_receiver_crashes_the_block() -> None:
    def receiver(f: bytes) -> None:
        raise RuntimeError("driver bug")

    with udp_socket() as peer:
        with pytest.raises(BaseExceptionGroup) as info:
            async with UdpWire(peer.getsockname()) as wire:
                wire.set_receiver(receiver)
                peer.sendto(frame(1), wire.local_address)
                with trio.fail_after(5):
                    await trio.sleep_forever()
        assert info.group_contains(RuntimeError, match="driver bug")


####################################################################
# the send side
####################################################################


async def test_send_refuses_runts_and_oversized_frames() -> None:
    with udp_socket() as peer:
        async with UdpWire(peer.getsockname(), mtu=100) as wire:
            assert not wire.send(bytes(13))
            assert not wire.send(bytes(115))
            assert wire.send(bytes(114))
            s = wire.statistics()
            assert (s.tx_frames, s.tx_drops, s.tx_errors) == (1, 2, 0)
            assert peer.recv(65535) == bytes(114)


async def test_an_os_error_on_send_is_counted_not_raised() -> None:
    # Sending to the broadcast address without SO_BROADCAST fails in the
    # kernel with EACCES before anything is transmitted.
    async with UdpWire(("255.255.255.255", 9)) as wire:
        assert not wire.send(frame(1))
        s = wire.statistics()
        assert (s.tx_frames, s.tx_drops, s.tx_errors) == (0, 1, 1)


async def test_send_before_open_and_after_close_returns_false() -> None:
    with udp_socket() as peer:
        wire = UdpWire(peer.getsockname())
        assert not wire.link_up
        assert not wire.send(frame(1))
        with pytest.raises(RuntimeError, match="async with"):
            wire.local_address
        async with wire:
            assert wire.link_up
            assert wire.send(frame(2))
        assert not wire.link_up
        assert not wire.send(frame(3))
        s = wire.statistics()
        assert (s.tx_frames, s.tx_drops) == (1, 2)
        with pytest.raises(RuntimeError, match="only once"):
            async with wire:
                pass


def assert_port_free(address: tuple[str, int]) -> None:
    # A UDP port can be bound again (no SO_REUSEADDR) only once its socket is closed.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(address)


async def test_the_socket_is_closed_when_the_block_exits() -> None:
    async with UdpWire((LOOPBACK, 9)) as wire:
        address = wire.local_address
        with pytest.raises(OSError):
            assert_port_free(address)
    assert_port_free(address)
    assert wire.local_address == address  # still answers, for logs


async def test_the_socket_is_closed_when_the_body_raises() -> None:
    with pytest.raises(ZeroDivisionError):  # unwrapped, not in an ExceptionGroup
        async with UdpWire((LOOPBACK, 9)) as wire:
            address = wire.local_address
            1 / 0
    assert_port_free(address)
    assert not wire.link_up


async def test_the_socket_is_closed_when_the_block_is_cancelled() -> None:
    with trio.CancelScope() as scope:
        async with UdpWire((LOOPBACK, 9)) as wire:
            address = wire.local_address
            scope.cancel()
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert_port_free(address)


async def test_a_failed_bind_raises_at_enter() -> None:
    with udp_socket() as taken:
        wire = UdpWire((LOOPBACK, 9), local=taken.getsockname())
        with pytest.raises(OSError) as info:
            async with wire:
                pass  # pragma: no cover
        assert info.value.errno == errno.EADDRINUSE
        assert not wire.link_up and not wire.send(frame(1))


async def test_bad_arguments_are_refused() -> None:
    peer = (LOOPBACK, 5000)
    with pytest.raises(ValueError, match="IPv4"):
        UdpWire(("localhost", 5000))
    with pytest.raises(ValueError, match="IPv4"):
        UdpWire(("::1", 5000))
    with pytest.raises(TypeError):
        UdpWire("127.0.0.1:5000")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="port"):
        UdpWire((LOOPBACK, 0))
    with pytest.raises(ValueError, match="port"):
        UdpWire(peer, local=(LOOPBACK, 70000))
    with pytest.raises(ValueError, match="mode"):
        UdpWire(peer, mode="gre")
    with pytest.raises(ValueError, match="24 bits"):
        UdpWire(peer, mode="vxlan", vni=1 << 24)
    with pytest.raises(ValueError, match="24 bits"):
        UdpWire(peer, mode="vxlan", vni=-1)
    with pytest.raises(ValueError, match="vxlan"):
        UdpWire(peer, vni=5)
    with pytest.raises(ValueError, match="mtu"):
        UdpWire(peer, mtu=0)
    with pytest.raises(ValueError, match="mtu"):
        UdpWire(peer, mode="vxlan", mtu=65507 - 14)  # no room for the VXLAN header
    UdpWire(peer, mtu=65507 - 14)
    with pytest.raises(ValueError, match="batch"):
        UdpWire(peer, batch=0)
    wire = UdpWire(peer)
    with pytest.raises(ValueError, match="port"):
        wire.peer = (LOOPBACK, 0)
    assert wire.peer == peer


####################################################################
# the stack over a UdpWire
####################################################################


async def test_two_hosts_with_vnics_deliver_1000_frames_in_order() -> None:
    n = 1000
    async with (
        trionet.open_host("h1") as h1,
        trionet.open_host("h2") as h2,
        open_udp_wire_pair() as (a, b),
    ):
        # UDP has no backpressure: nothing on the receiving side slows the
        # sender's TX engine down. With a 32-descriptor TX ring one engine
        # pass sends at most 32 frames, which the receiving wire (64 per
        # drain) and ithread (64 per interrupt) keep up with; with the
        # default 256 the receiver's RX ring overflows (counted in iqdrops,
        # but this test wants every frame). On a busy machine the receiving
        # host can still fall behind, so the sender also keeps at most 64
        # frames in flight.
        ifa = await h1.if_attach(Vnic(a, tx_ring=32))
        ifb = await h2.if_attach(Vnic(b, tx_ring=32))
        await h1.ifup(ifa)
        await h2.ifup(ifb)
        got: list[int] = []

        def handler(m: Mbuf) -> None:
            got.append(int.from_bytes(m.data[:4], "big"))

        h2.netisr_register(PROTO, handler)
        sent = 0
        with trio.fail_after(5):
            while sent < n:
                if len(ifa.snd) < ifa.snd.maxlen and sent - len(got) < 64:
                    ifq_dispatch(ifa, frame(sent, dst=ifb.lladdr, src=ifa.lladdr))
                    sent += 1
                else:
                    await trio.sleep(0)
        await wait_until(lambda: len(got) == n)
        assert got == list(range(n))
        sa, sb = ifa.statistics(), ifb.statistics()
        assert sa.opackets == sb.ipackets == n
        for s in (sa, sb):
            assert s.oqdrops == s.iqdrops == s.ierrors == s.oerrors == 0
        assert a.statistics().tx_frames == b.statistics().rx_frames == n


####################################################################
# a real peer: the Linux kernel's VXLAN device
####################################################################


@attrs.frozen
class VethNamespace:
    """A namespace ``ns`` joined to the root namespace by a veth pair."""

    ns: str
    root_dev: str
    ns_dev: str
    root_addr: str
    ns_addr: str


def ip_run(*cmd: str) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    if result.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed: {result.stderr.strip()}")
    return result.stdout


@pytest.fixture
def veth_namespace() -> Iterator[VethNamespace]:
    """A fresh namespace and veth pair, named after the pid; removed at teardown.

    The root side gets 198.19.X.1/30 and the namespace side 198.19.X.2/30,
    with X derived from the pid, inside the benchmarking range 198.18.0.0/15
    (never the machine's own 192.0.2.0/24), so parallel runs do not collide.
    """
    # Linux, root and ip (and /dev/net/tun, which VXLAN does not need but
    # every machine that passes the rest has).
    reason = linux_peer_unavailable()
    if reason is not None:
        pytest.skip(reason)
    pid = os.getpid()
    subnet = (198 << 24) | (19 << 16) | ((pid % 16384) * 4)
    env = VethNamespace(
        ns=f"tnu{pid}",
        root_dev=f"tnu{pid}a",
        ns_dev=f"tnu{pid}b",
        root_addr=socket.inet_ntoa((subnet + 1).to_bytes(4, "big")),
        ns_addr=socket.inet_ntoa((subnet + 2).to_bytes(4, "big")),
    )
    try:
        ip_run("ip", "netns", "add", env.ns)
        ip_run("ip", "link", "add", env.root_dev, "type", "veth", "peer", "name", env.ns_dev, "netns", env.ns)
        ip_run("ip", "addr", "add", f"{env.root_addr}/30", "dev", env.root_dev)
        ip_run("ip", "link", "set", env.root_dev, "up")
        ip_run("ip", "-n", env.ns, "addr", "add", f"{env.ns_addr}/30", "dev", env.ns_dev)
        ip_run("ip", "-n", env.ns, "link", "set", env.ns_dev, "up")
        ip_run("ip", "-n", env.ns, "link", "set", "lo", "up")
        yield env
    finally:
        # Deleting the namespace destroys the veth pair and the VXLAN device;
        # the explicit link delete covers a namespace that was never made.
        subprocess.run(["ip", "netns", "del", env.ns], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", env.root_dev], capture_output=True, timeout=10)


def arp_request(sender_mac: bytes, sender_ip: str, target_ip: str) -> bytes:
    return (
        b"\xff" * 6
        + sender_mac
        + b"\x08\x06"
        + bytes.fromhex("0001 0800 06 04 0001")
        + sender_mac
        + socket.inet_aton(sender_ip)
        + bytes(6)
        + socket.inet_aton(target_ip)
    )


def is_arp(f: bytes, op: int, sender_ip: str) -> bool:
    return (
        len(f) >= 42
        and f[12:14] == b"\x08\x06"
        and f[20:22] == op.to_bytes(2, "big")
        and f[28:32] == socket.inet_aton(sender_ip)
    )


async def test_linux_vxlan_device_is_a_peer_in_both_directions(veth_namespace: VethNamespace) -> None:
    """The kernel's VXLAN device (VNI 4242, listening on the IANA port 4789,
    sending to our port through an all-zeros fdb entry) and a UdpWire
    exchange frames: an ARP request the kernel sends reaches us, and the ARP
    request we send is received by the device (rx_packets rises) and answered."""
    env = veth_namespace
    vx = f"tnx{os.getpid()}"
    vni = 4242
    inner_ns, inner_us = "198.18.0.1", "198.18.0.9"

    def rx_packets() -> int:
        out = ip_run("ip", "netns", "exec", env.ns, "cat", f"/sys/class/net/{vx}/statistics/rx_packets")
        return int(out)

    async with UdpWire(
        (env.ns_addr, 4789), local=(env.root_addr, 0), mode="vxlan", vni=vni, name="linux-vxlan"
    ) as wire:
        got: list[bytes] = []
        wire.set_receiver(got.append)
        port = wire.local_address[1]
        # Made inside the namespace, so deleting it removes the device too.
        ip_run(
            "ip", "-n", env.ns, "link", "add", vx, "type", "vxlan", "id", str(vni),
            "dstport", "4789", "local", env.ns_addr, "dev", env.ns_dev, "nolearning",
        )
        ip_run(
            "ip", "netns", "exec", env.ns, "bridge", "fdb", "append", "00:00:00:00:00:00",
            "dev", vx, "dst", env.root_addr, "port", str(port),
        )
        ip_run("ip", "-n", env.ns, "addr", "add", f"{inner_ns}/24", "dev", vx)
        ip_run("ip", "-n", env.ns, "link", "set", vx, "up")

        # Kernel -> us: a datagram to an unresolved neighbour on the VXLAN
        # subnet makes the kernel broadcast an ARP request over the device.
        ip_run(
            "ip", "netns", "exec", env.ns, sys.executable, "-c",
            "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
            ".sendto(b'x', ('198.18.0.2', 9))",
        )
        await wait_until(lambda: any(is_arp(f, 1, inner_ns) for f in got))
        request = next(f for f in got if is_arp(f, 1, inner_ns))
        assert request[:6] == b"\xff" * 6
        assert request[38:42] == socket.inet_aton("198.18.0.2")
        kernel_mac = request[6:12]
        s = wire.statistics()
        # The kernel's VXLAN source port varies with the flow: accepted because
        # only the address is compared.
        assert s.rx_foreign == s.rx_malformed == s.rx_vni_mismatch == 0

        # Us -> kernel: our ARP request is received by the device and answered.
        before = rx_packets()
        our_mac = b"\x02\x00\x00\x00\x00\x09"
        assert wire.send(arp_request(our_mac, inner_us, inner_ns))
        await wait_until(lambda: any(is_arp(f, 2, inner_ns) for f in got))
        assert rx_packets() > before
        reply = next(f for f in got if is_arp(f, 2, inner_ns))
        assert reply[:6] == our_mac and reply[6:12] == kernel_mac
        assert reply[32:38] == our_mac and reply[38:42] == socket.inet_aton(inner_us)
