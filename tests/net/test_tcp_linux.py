"""The Linux kernel as an independent TCP peer: its ``curl`` fetches a page
from an HTTP server on a trionet host, and a trionet client downloads a file
from ``python3 -m http.server`` running on the kernel's stack; a kernel
server that speaks first completes a handshake whose final ACK we lost; and
the kernel, as a router with a smaller next link, teaches a trionet client
the path MTU.

The topology::

    trionet 198.18.6.1/24 ==TapWire== 198.18.6.2/24 kernel (namespace, IPv6 off)

and for path MTU discovery, a second namespace behind the first::

    ... 198.18.6.2 kernel router 198.18.7.1/24 (veth, mtu 576) --- (mtu 1500) 198.18.7.2/24 kernel server

HTTP is spoken with h11 on our side (an independent, sans-IO HTTP/1.1
implementation), with the kernel's ``curl`` and Python's ``http.server`` on
the other. Every body is checked byte for byte through its SHA-256, and both
stacks' counters show that no segment was refused for a bad checksum.

The TAP device is opened without ``IFF_VNET_HDR``, so the kernel cannot hand
it GSO super-frames or partially checksummed ones: it segments and checksums
in software before a frame reaches us, and every frame fits the 1500-byte MTU.

Network safety: the kernel's end lives only in a namespace the test creates;
nothing is configured in the root namespace. The namespace (and with it the
TAP device) is removed however the test ends, and the kernel-side server is
killed. Real time is used (the kernel is real); every wait is bounded by
``trio.fail_after``, and ``curl`` has a ``--max-time`` of its own.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import h11
import pytest
import trio

import trionet
from trionet import Host
from trionet.drivers.vnic import Vnic
from trionet.lowlevel import WireEndpoint
from trionet.protocols.tcp import TcpFlags
from trionet.testing import command_unavailable, linux_peer_unavailable
from trionet.wires import TapWire

from kernel_commands import PATIENCE, cleanup, run
from tcp_dropper import TcpDropper, final_handshake_acks


SKIP_REASON = linux_peer_unavailable()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
]
CURL_SKIP_REASON = command_unavailable("curl")
needs_curl = pytest.mark.skipif(CURL_SKIP_REASON is not None, reason=CURL_SKIP_REASON or "")
ETHTOOL_SKIP_REASON = command_unavailable("ethtool")
needs_ethtool = pytest.mark.skipif(ETHTOOL_SKIP_REASON is not None, reason=ETHTOOL_SKIP_REASON or "")

OURS = "198.18.6.1"
KERNEL = "198.18.6.2"
HTTP_PORT = 8080

_serial = itertools.count()


####################################################################
# helpers
####################################################################


async def kernel_snmp(netns: str) -> dict[str, dict[str, int]]:
    """``/proc/net/snmp`` as seen in ``netns``: {"Tcp": {"InCsumErrors": 0, ...}, ...}."""
    out = (await run("ip", "netns", "exec", netns, "cat", "/proc/net/snmp")).stdout.decode()
    lines = out.splitlines()
    table: dict[str, dict[str, int]] = {}
    for names, values in zip(lines[::2], lines[1::2]):
        group, _, keys = names.partition(": ")
        table[group] = dict(zip(keys.split(), map(int, values.partition(": ")[2].split())))
    return table


async def curl(netns: str, url: str, output: Path) -> subprocess.CompletedProcess[bytes]:
    """The kernel's ``curl`` in ``netns`` fetches ``url`` into ``output``;
    stdout is ``"<HTTP status> <bytes downloaded>"``."""
    return await run(
        "ip", "netns", "exec", netns,
        "curl", "-sS", "--max-time", "20", "-o", str(output),
        "-w", "%{http_code} %{size_download}", url,
        check=False,
    )  # fmt: skip


def seeded_bytes(size: int, seed: int) -> bytes:
    """``size`` random bytes, the same for the same seed."""
    return random.Random(seed).randbytes(size)


async def wait_for_no_connections(host: Host) -> None:
    """Wait until every connection is closed or in TIME_WAIT (listeners may stay)."""
    with trio.fail_after(10):
        while any(row.state not in ("LISTEN", "TIME_WAIT") for row in host.netstat()):
            await trio.sleep(0.01)


####################################################################
# the kernel, one TAP link away
####################################################################


@attrs.frozen
class Peer:
    """A trionet host (``OURS``) and the kernel (``KERNEL``) in ``netns``."""

    host: Host
    wire: TapWire
    netns: str


@asynccontextmanager
async def facing_the_kernel(
    wrap: Callable[[TapWire], WireEndpoint] | None = None,
) -> AsyncIterator[Peer]:
    """A fresh namespace (IPv6 off) holding the kernel's end of a TAP link to
    a fresh trionet host; the namespace goes however the block ends.
    ``wrap`` puts middleware between our vnic and the TAP device."""
    n = next(_serial)
    netns = f"trionet-tcp-{os.getpid()}-{n}"
    dev = f"tnc{os.getpid()}x{n}"  # at most 15 bytes: pid <= 7 digits
    try:
        await run("ip", "netns", "add", netns)
        # No router solicitations or MLD reports from the kernel: only the
        # traffic the test asks for crosses the link.
        await run(
            "ip", "netns", "exec", netns, "sh", "-c",
            "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6;"
            " echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
        )  # fmt: skip
        await run("ip", "-n", netns, "link", "set", "lo", "up")
        async with TapWire(dev) as wire, trionet.open_host("h") as host:
            ifp = await host.if_attach(Vnic(wrap(wire) if wrap is not None else wire))
            await host.ifup(ifp)
            host.ifconfig(ifp.name, f"{OURS}/24")
            await run("ip", "link", "set", dev, "netns", netns)
            await run("ip", "-n", netns, "addr", "add", f"{KERNEL}/24", "dev", dev)
            await run("ip", "-n", netns, "link", "set", dev, "up")
            yield Peer(host, wire, netns)
    finally:
        # Deleting the namespace deletes the TAP device in it (if the wire
        # had not already), and with it every socket's route to us.
        cleanup("ip", "netns", "del", netns)
        cleanup("ip", "link", "del", dev)  # made but never moved


def assert_nothing_dropped(peer: Peer) -> None:
    """No frame from the kernel was refused by the wire (none over the MTU:
    no GSO super-frame leaked through), and no datagram or segment by IP or
    our TCP (bad checksum, truncated...).

    (Our sends may have one drop: the ARP announcement made at ``ifup``,
    before the device was up in the namespace, which the kernel refuses
    with ``EIO``.)
    """
    wire = peer.wire.statistics()
    assert (wire.rx_drops, wire.rx_oversize, wire.rx_runts) == (0, 0, 0), wire
    assert peer.host.inet.ip.statistics().drops == {}
    tcp = peer.host.inet.tcp.statistics()
    assert tcp.drops == {}, tcp.drops


####################################################################
# kernel client -> trionet server
####################################################################


@attrs.define
class HttpServer:
    """An HTTP/1.1 server (h11) that answers every request with ``body``."""

    body: bytes
    requests: list[h11.Request] = attrs.field(factory=list)

    async def handle(self, stream: trionet.TcpStream) -> None:
        conn = h11.Connection(our_role=h11.SERVER)
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                with trio.fail_after(PATIENCE):
                    conn.receive_data(await stream.receive_some())
            elif isinstance(event, h11.Request):
                self.requests.append(event)
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise AssertionError(f"unexpected request event {event!r}")
        headers = [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(len(self.body))),
            ("Connection", "close"),
        ]
        with trio.fail_after(PATIENCE):
            await stream.send_all(conn.send(h11.Response(status_code=200, headers=headers)))
            await stream.send_all(conn.send(h11.Data(data=self.body)))
            await stream.send_all(conn.send(h11.EndOfMessage()))
        await stream.aclose()


@needs_curl
@pytest.mark.parametrize("tso", [False, True], ids=["plain", "tso-on"])
async def test_curl_fetches_a_page_from_a_trionet_http_server(tmp_path: Path, tso: bool) -> None:
    """200 KB from our h11 server to the kernel's ``curl``: exit code 0,
    status 200, the same SHA-256; the connection closes cleanly on our side,
    and neither stack refused a segment. With TSO forced on (off by default
    over TAP), our TCP hands the vnic super-segments and the TAP wire cuts
    them into MSS-sized segments with real checksums for the kernel."""
    body = seeded_bytes(200_000, seed=1)
    server = HttpServer(body)
    output = tmp_path / "page.bin"
    async with facing_the_kernel() as peer, trio.open_nursery() as nursery:
        if tso:
            (ifp,) = [i for i in peer.host.ifnets() if i.name.startswith("vnic")]
            await peer.host.ifcap(ifp.name, txcsum=True, tso=True)
            assert ifp.capenable & trionet.IfCap.TSO
        await nursery.start(peer.host.serve_tcp, server.handle, HTTP_PORT)
        result = await curl(peer.netns, f"http://{OURS}:{HTTP_PORT}/", output)
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout.decode() == f"200 {len(body)}"
        assert hashlib.sha256(output.read_bytes()).hexdigest() == hashlib.sha256(body).hexdigest()

        (request,) = server.requests
        assert (request.method, request.target) == (b"GET", b"/")
        assert (b"host", f"{OURS}:{HTTP_PORT}".encode()) in request.headers

        await wait_for_no_connections(peer.host)
        tcp = peer.host.inet.tcp.statistics()
        assert tcp.accepts == 1
        # With TSO our TCP sent fewer (super-)segments than the wire frames.
        assert (peer.wire.statistics().tx_frames > tcp.segments_sent + 20) == tso
        assert_nothing_dropped(peer)
        snmp = (await kernel_snmp(peer.netns))["Tcp"]
        assert snmp["ActiveOpens"] == 1
        assert snmp["AttemptFails"] == snmp["EstabResets"] == 0
        assert snmp["InErrs"] == snmp["InCsumErrors"] == 0
        nursery.cancel_scope.cancel()


@needs_curl
async def test_curl_is_refused_by_a_closed_trionet_port(tmp_path: Path) -> None:
    """Nobody listens: our RST makes ``curl`` fail at once with exit code 7
    ("Failed to connect"), and we counted the SYN as ``drop_noport``."""
    async with facing_the_kernel() as peer:
        result = await curl(peer.netns, f"http://{OURS}:{HTTP_PORT + 1}/", tmp_path / "none")
        assert result.returncode == 7, result.stderr.decode()
        tcp = peer.host.inet.tcp.statistics()
        assert tcp.drops == {"noport": 1}
        assert tcp.rsts_sent == 1
        snmp = (await kernel_snmp(peer.netns))["Tcp"]
        assert (snmp["ActiveOpens"], snmp["AttemptFails"]) == (1, 1)
        assert snmp["InErrs"] == snmp["InCsumErrors"] == 0


####################################################################
# trionet client -> kernel server
####################################################################


@asynccontextmanager
async def netns_server(
    netns: str, log: Path, *args: str, ready: bytes = b"listening\n"
) -> AsyncIterator[trio.Process]:
    """``python3 -u *args`` in ``netns``, its stderr in ``log``; the block
    starts once the server has printed its first line (after listen(2)),
    which must start with ``ready``, and the server is killed when it ends."""
    argv = ["ip", "netns", "exec", netns, sys.executable, "-u", *args]
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
                    pytest.fail(f"{args} exited {process.returncode}: {log.read_text()}")
                banner += chunk
        assert banner.startswith(ready), banner
        yield process
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
                with trio.move_on_after(10):
                    await process.wait()
            if process.stdout is not None:
                await process.stdout.aclose()


@asynccontextmanager
async def kernel_http_server(netns: str, directory: Path, log: Path) -> AsyncIterator[None]:
    """``python3 -m http.server`` serving ``directory`` on ``KERNEL:HTTP_PORT``
    in ``netns``, listening when the block starts (it prints "Serving HTTP
    on ..." after listen(2)); killed when it ends."""
    args = ("-m", "http.server", str(HTTP_PORT), "--bind", KERNEL, "--directory", str(directory))
    async with netns_server(netns, log, *args, ready=b"Serving HTTP on"):
        yield


async def http_get(
    host: Host, address: str, port: int, target: str
) -> tuple[h11.Response, bytes, trionet.TcpStream]:
    """GET ``target`` with h11 over a new trionet stream: the response, its
    body, and the stream (closed by then)."""
    stream = await host.open_tcp_stream(address, port)
    try:
        conn = h11.Connection(our_role=h11.CLIENT)
        headers = [("Host", f"{address}:{port}"), ("Connection", "close")]
        request = h11.Request(method="GET", target=target, headers=headers)
        await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
        response = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some())
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise AssertionError(f"unexpected response event {event!r}")
        assert response is not None
        return response, bytes(body), stream
    finally:
        await stream.aclose()


@pytest.mark.parametrize("txcsum", [False, True], ids=["software-checksums", "txcsum-on"])
async def test_trionet_client_downloads_a_file_from_python_http_server(tmp_path: Path, txcsum: bool) -> None:
    """2 MiB from the kernel's ``http.server`` to our h11 client: status 200,
    the right Content-Length and SHA-256; the kernel found every checksum good
    and our side of the connection closed. With checksum offload forced on
    (it is off by default over TAP), our segments leave with their checksums
    left to the card, and the TAP wire fills them in before the kernel reads
    them: a TCP segment with a bad checksum would be dropped and counted."""
    blob = seeded_bytes(2 * 1024 * 1024, seed=2)
    served = tmp_path / "www"
    served.mkdir()
    (served / "blob.bin").write_bytes(blob)
    async with facing_the_kernel() as peer:
        (ifp,) = [i for i in peer.host.ifnets() if i.name.startswith("vnic")]
        assert not ifp.capenable
        if txcsum:
            assert await peer.host.ifcap(ifp.name, txcsum=True) == trionet.IfCap.TXCSUM
        async with kernel_http_server(peer.netns, served, tmp_path / "http.server.log"):
            with trio.fail_after(PATIENCE):
                response, body, stream = await http_get(peer.host, KERNEL, HTTP_PORT, "/blob.bin")
            assert response.status_code == 200
            assert dict(response.headers)[b"content-length"] == str(len(blob)).encode()
            assert len(body) == len(blob)
            assert hashlib.sha256(body).hexdigest() == hashlib.sha256(blob).hexdigest()
            assert stream.statistics().bytes_received > len(blob)  # headers too

            await wait_for_no_connections(peer.host)
        assert_nothing_dropped(peer)
        assert peer.host.inet.tcp.statistics().connects == 1
        snmp = (await kernel_snmp(peer.netns))["Tcp"]
        assert snmp["PassiveOpens"] == 1
        assert snmp["InErrs"] == snmp["InCsumErrors"] == 0


####################################################################
# the final handshake ACK lost on the way to the kernel
####################################################################

#: The start of the Python servers run in a namespace (``netns_server``):
#: listen on ``argv[1]:argv[2]``, say so on stdout, accept one connection ``c``.
ACCEPT_ONE = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
print("listening", flush=True)
c, _ = s.accept()
"""

#: A server that speaks first (an SMTP greeting), then echoes one line and
#: closes: ``accept()`` returns only once the kernel's socket is ESTABLISHED.
BANNER_SERVER = ACCEPT_ONE + """
c.sendall(b"220 kernel ESMTP\\r\\n")
line = b""
while not line.endswith(b"\\n"):
    chunk = c.recv(100)
    if not chunk:
        break
    line += chunk
c.sendall(b"250 " + line)
c.recv(100)  # b"": our FIN
c.close()
"""


async def test_the_kernel_leaves_syn_recv_when_our_final_ack_is_lost(tmp_path: Path) -> None:
    """Our ACK of the kernel's SYN-ACK is lost: the kernel, in SYN-RECV,
    sends the SYN-ACK again after 1 s; we answer it, the kernel's socket
    reaches ESTAB, its ``accept()`` returns and its banner reaches us."""
    dropper: TcpDropper | None = None

    def wrap(wire: TapWire) -> WireEndpoint:
        nonlocal dropper
        dropper = TcpDropper(wire, final_handshake_acks())
        return dropper

    port = HTTP_PORT + 2
    async with facing_the_kernel(wrap) as peer:
        log = tmp_path / "banner_server.log"
        async with netns_server(peer.netns, log, "-c", BANNER_SERVER, KERNEL, str(port)) as process:
            with trio.fail_after(10):  # the kernel gives up on SYN-RECV after about a minute
                stream = await peer.host.open_tcp_stream(KERNEL, port)
                got = b""
                while not got.endswith(b"\n"):
                    chunk = await stream.receive_some()
                    assert chunk, got
                    got += chunk
            assert got == b"220 kernel ESMTP\r\n"
            # The kernel's socket left SYN-RECV: ss lists it ESTAB, to us.
            ss = await run("ip", "netns", "exec", peer.netns, "ss", "-Htn")
            (conn,) = [line.split() for line in ss.stdout.decode().splitlines()]
            assert conn[0] == "ESTAB" and conn[4] == f"{OURS}:{stream.getsockname()[1]}", conn
            with trio.fail_after(PATIENCE):
                await stream.send_all(b"HELO trionet\r\n")
                await stream.send_eof()
                got = b""
                while chunk := await stream.receive_some():
                    got += chunk
                await stream.aclose()
            assert got == b"250 HELO trionet\r\n"
            with trio.fail_after(PATIENCE):
                await process.wait()
            assert process.returncode == 0, log.read_text()

        assert dropper is not None
        assert [h.flags for h in dropper.dropped] == [TcpFlags.ACK]
        snmp = (await kernel_snmp(peer.netns))["Tcp"]
        assert snmp["PassiveOpens"] == 1
        assert snmp["RetransSegs"] >= 1  # the SYN-ACK, sent again
        assert snmp["InErrs"] == snmp["InCsumErrors"] == 0
        assert_nothing_dropped(peer)


####################################################################
# path MTU discovery through the kernel as a router
####################################################################

#: Reads one connection to EOF and answers with the SHA-256 of what it read.
DIGEST_SERVER = ACCEPT_ONE + """
import hashlib
h = hashlib.sha256()
while chunk := c.recv(65536):
    h.update(chunk)
c.sendall(h.hexdigest().encode())
c.close()
"""

SERVER_NET = "198.18.7"


@needs_ethtool  # the server's ACKs must leave its veth checksummed (tx offload off)
async def test_the_kernel_as_a_router_teaches_us_the_path_mtu(tmp_path: Path) -> None:
    """Our 1500-byte segments carry DF; the kernel router's next link is 576
    bytes, so it answers "fragmentation needed" (its own ICMP, MTU 576). We
    lower the MSS and send again; 1 MB reaches the kernel server behind it,
    whose SHA-256 matches, and the router fragmented nothing."""
    n = next(_serial)
    server_ns = f"trionet-pmtu-{os.getpid()}-{n}"
    vr, vs = f"tpr{os.getpid()}x{n}", f"tps{os.getpid()}x{n}"
    port = HTTP_PORT + 3
    async with facing_the_kernel() as peer:
        try:
            await run("ip", "netns", "add", server_ns)
            await run(
                "ip", "netns", "exec", server_ns, "sh", "-c",
                "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6;"
                " echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
            )  # fmt: skip
            await run("ip", "-n", peer.netns, "link", "add", vr, "type", "veth", "peer", "name", vs)
            await run("ip", "-n", peer.netns, "link", "set", vs, "netns", server_ns)
            await run("ip", "-n", peer.netns, "link", "set", vr, "mtu", "576")
            await run("ip", "-n", peer.netns, "addr", "add", f"{SERVER_NET}.1/24", "dev", vr)
            await run("ip", "-n", peer.netns, "link", "set", vr, "up")
            await run("ip", "-n", server_ns, "addr", "add", f"{SERVER_NET}.2/24", "dev", vs)
            await run("ip", "-n", server_ns, "link", "set", vs, "up")
            await run("ip", "-n", server_ns, "link", "set", "lo", "up")
            await run("ip", "-n", server_ns, "route", "add", "default", "via", f"{SERVER_NET}.1")
            # The server's ACKs cross the veth: have them checksummed there.
            await run("ip", "netns", "exec", server_ns, "ethtool", "-K", vs, "tx", "off")
            await run("ip", "netns", "exec", peer.netns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            peer.host.route_add(f"{SERVER_NET}.0/24", KERNEL)

            log = tmp_path / "digest_server.log"
            async with netns_server(server_ns, log, "-c", DIGEST_SERVER, f"{SERVER_NET}.2", str(port)):
                payload = seeded_bytes(1_000_000, seed=3)
                with trio.fail_after(PATIENCE):
                    stream = await peer.host.open_tcp_stream(f"{SERVER_NET}.2", port)
                    conn = stream._pcb.peek()
                    assert conn.smss == 1460 - 12  # both ends on 1500-byte links
                    await stream.send_all(payload)
                    await stream.send_eof()
                    answer = b""
                    while chunk := await stream.receive_some():
                        answer += chunk
                    await stream.aclose()
                assert answer.decode() == hashlib.sha256(payload).hexdigest()
                assert conn.smss == 576 - 40 - 12
            tcp = peer.host.inet.tcp.statistics()
            assert tcp.mtu_resent == 1 and tcp.drops == {}
            icmp = peer.host.inet.icmp.statistics()
            assert icmp.errors_received >= 1 and icmp.drops == {}
            router = await kernel_snmp(peer.netns)
            assert router["Ip"]["FragCreates"] == 0 and router["Ip"]["FragFails"] >= 1
            assert router["IcmpMsg"]["OutType3"] >= 1
        finally:
            cleanup("ip", "netns", "del", server_ns)
