"""A trionet host and the Linux kernel, talking over a TAP device.

The topology::

    trionet host "tn" 198.18.8.1/24 ==TAP== 198.18.8.2/24 Linux kernel
    (a vnic on a TapWire)                   (network namespace trionet-example-PID)

``net.tap_link(host, netns=..., address=...)`` opens a TAP device, moves the
kernel's end into a network namespace that this script creates (so nothing in
the machine's own network changes) and addresses it; the trionet host gets a
vnic on the device. Then the two stacks talk, each with its own tools:

1. trionet pings the kernel (``host.ping``);
2. the kernel pings trionet (``ip netns exec NS ping``);
3. trionet serves HTTP/1.0 on port 8080 and the kernel's ``curl`` fetches a
   page from it (skipped if ``curl`` is not installed).

The namespace, and with it the TAP device, is deleted however the script
ends. This needs root (``CAP_NET_ADMIN``), ``/dev/net/tun`` and ``ip``
(iproute2); without them it exits with a message. It runs in real time (the
kernel is real), every wait bounded.

Run::

    sudo python3 examples/linux_peer.py
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys

import structlog
import trio

import trionet
from trionet.testing import linux_peer_unavailable

NETNS = f"trionet-example-{os.getpid()}"
OURS = "198.18.8.1"
KERNEL = "198.18.8.2"
HTTP_PORT = 8080
#: Bound on the whole run, in seconds.
PATIENCE = 60


def missing_requirement() -> str | None:
    """Why this script cannot run here, or None."""
    return linux_peer_unavailable()


async def in_netns(*argv: str) -> subprocess.CompletedProcess[bytes]:
    """Run a command in the namespace; its output is captured, failure is not an error."""
    return await trio.run_process(
        ["ip", "netns", "exec", NETNS, *argv],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )


async def http_server(stream: trionet.TcpStream) -> None:
    """A very small HTTP/1.0 server: one request, one page, then close."""
    async with stream:
        request = b""
        while b"\r\n\r\n" not in request and len(request) < 8192:
            data = await stream.receive_some()
            if not data:
                return
            request += data
        method, path, _ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        body = f"hello from trionet: {method} {path}\n".encode()
        head = f"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
        await stream.send_all(head.encode() + body)


async def talk(net: trionet.Network) -> None:
    tn = await net.add_host("tn")
    link = await net.tap_link(tn, netns=NETNS, address=f"{KERNEL}/24")
    ifp, device = link.ends
    tn.ifconfig(ifp.name, f"{OURS}/24")
    print(f"tn:{ifp.name} {OURS}/24 <-> TAP {device} {KERNEL}/24 in namespace {NETNS}")

    result = await tn.ping(KERNEL, count=3, interval=0.2)
    rtt = f", rtt min {result.rtt_min * 1000:.2f} ms" if result.rtts else ""
    print(f"\n1. trionet pings the kernel: {result.received}/{result.sent} replies{rtt}")

    done = await in_netns("ping", "-c", "3", "-i", "0.2", "-W", "2", OURS)
    summary = [line for line in done.stdout.decode().splitlines() if "transmitted" in line]
    print(f"2. the kernel pings trionet: {summary[0] if summary else done.stderr.decode().strip()}")

    if shutil.which("curl") is None:
        print("3. (skipped: no curl; Debian package curl)")
    else:
        async with trio.open_nursery() as nursery:
            await nursery.start(tn.serve_tcp, http_server, HTTP_PORT)
            done = await in_netns(
                "curl", "-sS", "--max-time", "10", f"http://{OURS}:{HTTP_PORT}/index.txt"
            )
            nursery.cancel_scope.cancel()
        answer = done.stdout.decode().strip() or done.stderr.decode().strip()
        print(f"3. the kernel's curl fetches http://{OURS}:{HTTP_PORT}/index.txt: {answer}")

    print(f"\ntn$ netstat -i\n{trionet.format_netstat_i(tn.netstat_i())}", end="")


async def main() -> None:
    problem = missing_requirement()
    if problem is not None:
        raise SystemExit(f"linux_peer.py {problem}")
    await trio.run_process(["ip", "netns", "add", NETNS])
    try:
        # IPv6 off in the namespace: no router solicitations or DAD to wait for.
        await in_netns("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        with trio.fail_after(PATIENCE):
            async with trionet.open_network(seed=1) as net:
                await talk(net)
    finally:
        # Synchronous, so it runs even when the scope above was cancelled.
        subprocess.run(["ip", "netns", "delete", NETNS], capture_output=True, check=False)


if __name__ == "__main__":
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    trio.run(main)
