"""The Linux resolver (glibc, through ``getent``) asks a trionet DNS server,
and a trionet host resolves through the same server, over TAP; a capture of
the server's link, read by tshark, shows both as DNS with no malformed
packet.

The layout (real time: the kernel is real)::

    ns1 198.18.0.1 (serve_dns) ==PcapTap(TapWire A)==+
                                                     br0 198.18.0.3  (namespace; getent)
    client 198.18.0.2 (resolver = ns1) ==TapWire B===+

Network safety: both TAP devices and the bridge live in a namespace the
test creates and deletes, with its ``/etc/netns/NAME/resolv.conf`` (which
``ip netns exec`` bind-mounts over ``/etc/resolv.conf``), however the test
ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import trio

import trionet
from trionet.drivers.vnic import Vnic
from trionet.testing import linux_peer_unavailable
from trionet.wires import PcapTap, TapWire

SKIP_REASON = linux_peer_unavailable("getent", "tshark")
pytestmark = [pytest.mark.integration, pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")]

NS1, CLIENT, KERNEL = "198.18.0.1", "198.18.0.2", "198.18.0.3"
ZONE = trionet.DnsZone(
    {"www": "10.0.2.2", "big": [f"10.9.0.{i}" for i in range(1, 41)]},
    origin="lab",
)


async def run(*argv: str, check: bool = True) -> tuple[int, str]:
    """Run a command: its status and stdout, or a failure showing its stderr."""
    with trio.fail_after(20):
        result = await trio.run_process(list(argv), capture_stdout=True, capture_stderr=True, check=False)
    if check and result.returncode != 0:
        err = result.stderr.decode().strip()
        pytest.fail(f"{' '.join(argv)} exited {result.returncode}: {err}")
    return result.returncode, result.stdout.decode()


def cleanup(*argv: str) -> None:
    subprocess.run(list(argv), capture_output=True, check=False, timeout=10)


async def test_linux_and_a_trionet_host_resolve_through_a_trionet_dns_server(tmp_path: Path) -> None:
    pid = os.getpid()
    netns = f"trionet-dns-{pid}"
    etc = Path("/etc/netns") / netns
    dev_a, dev_b = f"tnd{pid}a", f"tnd{pid}b"
    capture = tmp_path / "ns1.pcap"
    try:
        await run("ip", "netns", "add", netns)
        etc.mkdir(parents=True)
        (etc / "resolv.conf").write_text(f"nameserver {NS1}\noptions timeout:2 attempts:3\n")
        (etc / "hosts").write_text("127.0.0.1 localhost\n")
        await run("ip", "netns", "exec", netns, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6")
        await run("ip", "-n", netns, "link", "set", "lo", "up")
        async with TapWire(dev_a) as tap_a, TapWire(dev_b) as tap_b:
            for dev in (dev_a, dev_b):
                await run("ip", "link", "set", dev, "netns", netns)
            await run("ip", "-n", netns, "link", "add", "br0", "type", "bridge")
            for dev in (dev_a, dev_b):
                await run("ip", "-n", netns, "link", "set", dev, "master", "br0")
                await run("ip", "-n", netns, "link", "set", dev, "up")
            await run("ip", "-n", netns, "addr", "add", f"{KERNEL}/24", "dev", "br0")
            await run("ip", "-n", netns, "link", "set", "br0", "up")
            with PcapTap(tap_a, capture) as pcap_a:
                async with trionet.open_network(seed=1) as net:
                    ns1 = await net.add_host("ns1")
                    client = await net.add_host("client")
                    for host, wire, address in ((ns1, pcap_a, NS1), (client, tap_b, CLIENT)):
                        ifp = await host.if_attach(Vnic(wire))
                        await host.ifup(ifp)
                        host.ifconfig(ifp.name, f"{address}/24")
                    client.resolver = NS1
                    async with trio.open_nursery() as nursery:
                        server = await nursery.start(ns1.serve_dns, ZONE)
                        with trio.fail_after(30):
                            # Linux asks: A, PTR, NXDOMAIN, and a truncated answer it re-asks over TCP.
                            _, out = await run("ip", "netns", "exec", netns, "getent", "ahostsv4", "www.lab")
                            assert out.split()[0] == "10.0.2.2", out
                            _, out = await run("ip", "netns", "exec", netns, "getent", "hosts", "10.0.2.2")
                            assert out.split()[:2] == ["10.0.2.2", "www.lab"], out
                            code, out = await run(
                                "ip", "netns", "exec", netns, "getent", "ahostsv4", "nope.lab", check=False
                            )
                            assert code == 2, out  # getent: key not found
                            _, out = await run("ip", "netns", "exec", netns, "getent", "ahostsv4", "big.lab")
                            assert {line.split()[0] for line in out.splitlines()} == {
                                f"10.9.0.{i}" for i in range(1, 41)
                            }, out
                            # A trionet host asks the same server, across the bridge.
                            assert await client.resolve("www.lab") == ["10.0.2.2"]
                        nursery.cancel_scope.cancel()
                    stats = server.statistics()
                    assert stats.answers >= 4 and stats.nxdomain >= 1 and stats.truncated >= 1
                    assert stats.tcp_queries >= 1 and stats.drops == 0
    finally:
        cleanup("ip", "netns", "del", netns)
        shutil.rmtree(etc, ignore_errors=True)

    _, malformed = await run("tshark", "-r", str(capture), "-Y", "_ws.malformed || _ws.expert.severity == error")
    assert malformed.strip() == "", malformed
    _, fields = await run(
        "tshark", "-r", str(capture), "-Y", "dns", "-T", "fields",
        "-e", "ip.src", "-e", "dns.flags.response", "-e", "dns.flags.rcode", "-e", "dns.qry.name",
        "-e", "dns.qry.type", "-e", "dns.flags.truncated", "-e", "tcp.srcport",
    )  # fmt: skip
    rows = [line.split("\t") for line in fields.splitlines()]
    # The kernel's queries and our answers to them, over UDP and TCP.
    # (A query has no rcode field.)
    assert [KERNEL, "0", "", "www.lab", "1", "0", ""] in rows, fields
    assert [NS1, "1", "0", "www.lab", "1", "0", ""] in rows, fields
    assert [NS1, "1", "0", "2.2.0.10.in-addr.arpa", "12", "0", ""] in rows, fields
    assert [NS1, "1", "3", "nope.lab", "1", "0", ""] in rows, fields
    assert [NS1, "1", "0", "big.lab", "1", "1", ""] in rows, fields  # TC over UDP
    assert [NS1, "1", "0", "big.lab", "1", "0", "53"] in rows, fields  # the whole answer over TCP
    # The trionet client's query, seen on the server's link.
    assert [CLIENT, "0", "", "www.lab", "1", "0", ""] in rows, fields
    assert all(row[0] in (KERNEL, CLIENT, NS1) for row in rows), fields
