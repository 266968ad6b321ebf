"""A QEMU guest boots from a trionet network: DHCP, then its boot script over HTTP.

The topology::

    QEMU PC (no disk)                          trionet host "boot" 10.0.9.1/24
    iPXE on an e1000 NIC ==UDP 127.0.0.1==     (a vnic on a UdpWire)
    52:54:00:12:34:56                          dhcpd: 10.0.9.100-10.0.9.150
                                               rtadvd: fd00:9::/64
                                               HTTP on port 8080: /boot.ipxe

QEMU's ``-netdev dgram`` carries each Ethernet frame of the guest's NIC in one
UDP datagram; trionet's :class:`~trionet.wires.UdpWire` speaks the same
format, so the guest and the trionet host share a LAN on 127.0.0.1:

1. the guest's firmware (iPXE) asks for an address; ``host.dhcp_server``
   leases one, with the boot file ``http://10.0.9.1:8080/boot.ipxe``;
2. iPXE fetches that script over trionet's TCP and runs it: it prints a line
   on the guest's console and waits there, on the network;
3. trionet pings the guest three times and prints the lease table and the
   guest's console.

The router advertisement (``host.rtadvd``) is there because iPXE also waits
for one before it uses the network (about 13 s more without it).

Needs ``qemu-system-x86_64`` and iPXE's ROM for the e1000 (Debian packages
``qemu-system-x86`` and ``ipxe-qemu``); no root and no disk image. QEMU runs
under software emulation (TCG); the whole run takes about 10 s of real time,
every wait bounded, and QEMU is killed at the end however the script ends.

Run::

    python3 examples/qemu_dhcp.py
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile

import structlog
import trio

import trionet
from trionet.drivers.vnic import Vnic
from trionet.wires import UdpWire

ROM = "/usr/lib/ipxe/qemu/pxe-e1000.rom"
GUEST_MAC = "52:54:00:12:34:56"
OURS = "10.0.9.1"
HTTP_PORT = 8080
#: What the guest runs: a line on its console, then it waits on the network.
BOOT_SCRIPT = b"#!ipxe\necho Hello from a trionet network: booted ${net0/ip} from ${next-server}\nsleep 30\n"
#: Bound on the whole run, in seconds.
PATIENCE = 60


def missing_requirement() -> str | None:
    """Why this script cannot run here, or None."""
    if shutil.which("qemu-system-x86_64") is None:
        return "needs the qemu-system-x86_64 command (Debian package qemu-system-x86)"
    if not os.path.exists(ROM):
        return f"needs the file {ROM} (Debian package ipxe-qemu)"
    return None


def qemu_argv(local_port: int, remote_port: int) -> list[str]:
    """A diskless PC booting from its e1000 NIC, the NIC's frames on UDP
    between 127.0.0.1:``local_port`` (QEMU) and 127.0.0.1:``remote_port``
    (us); its console (BIOS, then iPXE) on stdout."""
    return [
        "qemu-system-x86_64", "-nographic", "-display", "none", "-no-user-config", "-nodefaults",
        "-machine", "accel=tcg", "-m", "64", "-boot", "n", "-serial", "stdio", "-no-reboot",
        "-device", f"e1000,netdev=n0,mac={GUEST_MAC},romfile={ROM}",
        "-netdev", f"dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port={local_port},"
        f"remote.type=inet,remote.host=127.0.0.1,remote.port={remote_port}",
    ]  # fmt: skip


def free_udp_port() -> int:
    """A UDP port of 127.0.0.1 that nobody has bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


async def serve_boot_script(stream: trionet.TcpStream) -> None:
    """HTTP/1.0, one request: the boot script, whatever the path."""
    async with stream:
        request = b""
        while b"\r\n\r\n" not in request and len(request) < 8192:
            data = await stream.receive_some()
            if not data:
                return
            request += data
        head = f"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(BOOT_SCRIPT)}\r\n\r\n"
        await stream.send_all(head.encode() + BOOT_SCRIPT)


async def boot(host: trionet.Host, wire: UdpWire, console_path: str) -> None:
    ifp = await host.if_attach(Vnic(wire))
    await host.ifup(ifp)
    host.ifconfig(ifp.name, f"{OURS}/24")
    host.dhcp_server(
        ifp.name, pool="10.0.9.100-10.0.9.150", router=OURS, dns=[OURS],
        next_server=OURS, boot_file=f"http://{OURS}:{HTTP_PORT}/boot.ipxe",
    )  # fmt: skip
    host.sysctl("net.inet6.ip6.forwarding", 1)
    host.rtadvd(ifp.name, prefix="fd00:9::/64")
    print(f"boot:{ifp.name} {OURS}/24 on UDP {wire.local_address[0]}:{wire.local_address[1]} <-> QEMU {wire.peer[1]}")
    async with trio.open_nursery() as nursery:
        await nursery.start(host.serve_tcp, serve_boot_script, HTTP_PORT)
        with open(console_path, "wb") as console:
            qemu = await trio.lowlevel.open_process(
                qemu_argv(wire.peer[1], wire.local_address[1]),
                stdout=console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        try:
            while not [r for r in host.dhcp_leases() if r.lladdr == GUEST_MAC and r.state == "bound"]:
                if qemu.returncode is not None:
                    raise SystemExit(f"QEMU exited with {qemu.returncode}")
                await trio.sleep(0.1)
            print(f"\n1. the guest took a lease:\n{trionet.format_dhcp_leases(host.dhcp_leases())}", end="")
            while b"Hello from a trionet network" not in read(console_path):
                await trio.sleep(0.1)
            print(f"2. it fetched http://{OURS}:{HTTP_PORT}/boot.ipxe over trionet TCP and runs it")
            (lease,) = [r for r in host.dhcp_leases() if r.lladdr == GUEST_MAC]
            result = await host.ping(lease.address, count=3, interval=0.2)
            print(f"3. trionet pings the guest at {lease.address}: {result.received}/{result.sent} replies")
        finally:
            with trio.CancelScope(shield=True):
                qemu.kill()
                await qemu.wait()
            nursery.cancel_scope.cancel()
    # The console's lines, without terminal escapes and carriage returns.
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", read(console_path).decode("latin-1"))
    lines = [line.strip() for line in re.split(r"[\r\n]+", text)]
    shown = [line for line in lines if line.startswith(("net0: 10.", "Filename:", "Hello"))]
    print("\nthe guest's console:\n" + "".join(f"  {line}\n" for line in shown), end="")


async def main() -> None:
    problem = missing_requirement()
    if problem is not None:
        raise SystemExit(f"qemu_dhcp.py {problem}")
    with tempfile.TemporaryDirectory() as tmp, trio.fail_after(PATIENCE):
        async with trionet.open_host("boot") as host, UdpWire(("127.0.0.1", 9), local=("127.0.0.1", 0)) as wire:
            wire.peer = ("127.0.0.1", free_udp_port())
            await boot(host, wire, os.path.join(tmp, "console.txt"))


if __name__ == "__main__":
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    trio.run(main)
