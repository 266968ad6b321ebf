"""The far ends of the DHCP and NAT tests (``test_dhcp_peers.py``): a
network namespace, programs run in it (busybox ``udhcpc``, ``dnsmasq``,
``python3 -m http.server``) and a QEMU guest booting iPXE over a UdpWire.

Every program is started bounded and killed when its block ends, however
it ends; every namespace is deleted (with the TAP device moved into it).
Addresses inside namespaces are private (10.x, 172.16/12); QEMU talks only
to 127.0.0.1.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from kernel_commands import PATIENCE, cleanup, run

_serial = itertools.count()


def names(kind: str) -> tuple[str, str]:
    """A fresh (namespace, TAP device) name pair; the device name fits
    Linux's 15 bytes (pid <= 7 digits)."""
    n = next(_serial)
    return f"trionet-{kind}-{os.getpid()}-{n}", f"tn{kind[:2]}{os.getpid()}x{n}"


@asynccontextmanager
async def netns(name: str) -> AsyncIterator[str]:
    """Network namespace ``name`` (loopback up) for the block; deleted,
    with every device in it, however the block ends."""
    try:
        await run("ip", "netns", "add", name)
        await run("ip", "-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        cleanup("ip", "netns", "del", name)


@asynccontextmanager
async def process(argv: Sequence[str], log: Path) -> AsyncIterator[trio.Process]:
    """``argv`` running for the block, its stdout and stderr in ``log``;
    killed (and reaped, bounded) when the block ends."""
    with log.open("wb") as out:
        proc = await trio.lowlevel.open_process(list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        with trio.CancelScope(shield=True):
            if proc.returncode is None:
                proc.kill()
                with trio.move_on_after(10):
                    await proc.wait()


async def wait_for_text(log: Path, text: str, proc: trio.Process | None = None, *, timeout: float = 10) -> str:
    """Wait (bounded) until ``text`` shows in ``log``; fails at once if
    ``proc`` exits first. Returns the log."""
    with trio.fail_after(timeout):
        while True:
            seen = log.read_text(errors="replace")
            if text in seen:
                return seen
            if proc is not None and proc.returncode is not None:
                pytest.fail(f"{proc.args!r} exited {proc.returncode} before {text!r}:\n{seen}")
            await trio.sleep(0.05)


####################################################################
# busybox udhcpc
####################################################################

#: udhcpc runs this at each event ($1: deconfig, bound, renew, nak,
#: leasefail); it only records what it was given, one NAME=VALUE a line,
#: in $UDHCPC_OUT.$1 (configuring the device is not its business here).
UDHCPC_SCRIPT = """#!/bin/sh
out="$UDHCPC_OUT.$1"
for name in interface ip subnet mask router dns domain lease serverid siaddr boot_file mtu hostname; do
    eval "value=\\${$name-}"
    printf '%s=%s\\n' "$name" "$value"
done > "$out"
"""


async def udhcpc(ns: str, dev: str, tmp_path: Path, *args: str) -> dict[str, str]:
    """busybox ``udhcpc`` on ``dev`` in namespace ``ns``, until it has a
    lease (``-q``) or gave up after five discovers a second apart (``-n``);
    the values its script got at ``bound`` ({"ip": "10.0.0.100", ...})."""
    script = tmp_path / "udhcpc.script"
    script.write_text(UDHCPC_SCRIPT)
    script.chmod(0o755)
    out = tmp_path / "udhcpc.env"
    argv = [
        "ip", "netns", "exec", ns, "env", "-i", f"PATH={os.environ.get('PATH', '/usr/bin:/bin')}", f"UDHCPC_OUT={out}",
        "busybox", "udhcpc", "-i", dev, "-f", "-q", "-n", "-t", "5", "-T", "1", "-s", str(script), *args,
    ]  # fmt: skip
    result = await run(*argv, check=False)
    log = result.stdout.decode() + result.stderr.decode()
    bound = Path(f"{out}.bound")
    assert result.returncode == 0 and bound.exists(), log
    return dict(line.split("=", 1) for line in bound.read_text().splitlines())


####################################################################
# dnsmasq
####################################################################


@asynccontextmanager
async def dnsmasq(
    ns: str, dev: str, tmp_path: Path, *, dhcp_range: str, router: str, dns: Sequence[str], domain: str
) -> AsyncIterator[Path]:
    """``dnsmasq`` serving DHCP only (``--port=0``: no DNS) on ``dev`` in
    namespace ``ns``, the block starting once its sockets are bound;
    yields its lease file (``expiry MAC address hostname client-id`` lines).
    ``--no-ping``: no ICMP check of an address before offering it (that
    check delays every offer by about three seconds)."""
    leases = tmp_path / "dnsmasq.leases"
    log = tmp_path / "dnsmasq.log"
    argv = [
        "ip", "netns", "exec", ns, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
        f"--interface={dev}", "--bind-interfaces", "--dhcp-authoritative", "--no-ping", "--log-dhcp",
        f"--dhcp-range={dhcp_range}", f"--dhcp-option=3,{router}", f"--dhcp-option=6,{','.join(dns)}",
        f"--dhcp-option=15,{domain}", f"--dhcp-leasefile={leases}", f"--pid-file={tmp_path / 'dnsmasq.pid'}",
        f"--log-facility={log}",
    ]  # fmt: skip
    log.touch()
    async with process(argv, tmp_path / "dnsmasq.out") as proc:
        await wait_for_text(log, "sockets bound exclusively to interface", proc)
        yield leases


####################################################################
# python3 -m http.server
####################################################################


@asynccontextmanager
async def http_server(ns: str, address: str, port: int, directory: Path, log: Path) -> AsyncIterator[Path]:
    """``python3 -m http.server`` on ``address:port`` in ``ns``, serving
    ``directory``, listening when the block starts; yields its log (one
    line a request, starting with the client's address)."""
    argv = [
        "ip", "netns", "exec", ns, sys.executable, "-u", "-m", "http.server", str(port),
        "--bind", address, "--directory", str(directory),
    ]  # fmt: skip
    async with process(argv, log) as proc:
        await wait_for_text(log, "Serving HTTP on", proc)
        yield log


async def http_get(host: object, address: str, port: int, path: str) -> tuple[bytes, bytes]:
    """An HTTP/1.0 GET from trionet ``host``: (head, body)."""
    with trio.fail_after(PATIENCE):
        stream = await host.open_tcp_stream(address, port)  # type: ignore[attr-defined]
        await stream.send_all(f"GET {path} HTTP/1.0\r\nHost: {address}:{port}\r\n\r\n".encode())
        response = b""
        while chunk := await stream.receive_some():
            response += chunk
        await stream.aclose()
    head, _, body = response.partition(b"\r\n\r\n")
    return head, body


####################################################################
# QEMU booting iPXE
####################################################################

#: The ROM the Debian package ipxe-qemu installs for QEMU's e1000.
IPXE_ROM = "/usr/lib/ipxe/qemu/pxe-e1000.rom"


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 free a moment ago (for QEMU's end, which
    must be given one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def qemu_ipxe_argv(mac: str, local_port: int, remote_port: int) -> list[str]:
    """A diskless PC that boots from its e1000 NIC with iPXE, the NIC's
    frames one UDP datagram each between 127.0.0.1:``local_port`` (QEMU)
    and 127.0.0.1:``remote_port`` (us). The console (SeaBIOS, then iPXE:
    both print to the serial port when there is no VGA) is stdout.
    Software emulation (``accel=tcg``) works everywhere; ``-no-reboot``
    makes a reset end QEMU."""
    return [
        "qemu-system-x86_64", "-nographic", "-display", "none", "-no-user-config", "-nodefaults",
        "-machine", "accel=tcg", "-m", "64", "-boot", "n", "-serial", "stdio", "-no-reboot",
        "-device", f"e1000,netdev=n0,mac={mac},romfile={IPXE_ROM}",
        "-netdev", f"dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port={local_port},"
        f"remote.type=inet,remote.host=127.0.0.1,remote.port={remote_port}",
    ]  # fmt: skip
