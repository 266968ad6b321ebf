"""What a test (or a script) needs from the machine: system commands, and the
Linux kernel at the far end.

Both helpers answer with a skip reason (or ``None``), in one wording that a
CI job can recognise (:data:`UNAVAILABLE`): a suite that must run every test
turns exactly these skips into failures.
"""

from __future__ import annotations

import os
import re
import shutil
import sys

__all__ = ["command_unavailable", "file_unavailable", "linux_peer_unavailable"]

#: The Debian package of each command a test may need (a command missing
#: here is assumed to come in a package of its own name).
PACKAGES = {
    "ip": "iproute2",
    "bridge": "iproute2",
    "ping": "iputils-ping",
    "curl": "curl",
    "tshark": "tshark",
    "tcpdump": "tcpdump",
    "ethtool": "ethtool",
    "sysctl": "procps",
    "getent": "libc-bin",
    "qemu-system-x86_64": "qemu-system-x86",
    "busybox": "busybox-static",
    "dnsmasq": "dnsmasq-base",
    "chromium": "chromium",
}

#: Matches every reason the helpers here give: a missing command, or
#: missing privileges or kernel support for a Linux peer.
UNAVAILABLE = re.compile(
    r"needs (the \S+ (command|file) \(Debian package \S+\)|Linux \(|root \(|/dev/net/tun )"
)


def command_unavailable(*commands: str) -> str | None:
    """Why one of ``commands`` cannot run here, or ``None`` if all can.

    The reason names the first command not on ``PATH`` and the Debian
    package that has it: ``"needs the tshark command (Debian package
    tshark)"``. Use it as a skip reason::

        reason = command_unavailable("tshark")
        needs_tshark = pytest.mark.skipif(reason is not None, reason=reason or "")
    """
    for command in commands:
        if shutil.which(command) is None:
            package = PACKAGES.get(command, command)
            return f"needs the {command} command (Debian package {package})"
    return None


def file_unavailable(path: str, package: str) -> str | None:
    """Why a data file a test needs is missing (``"needs the file
    /usr/lib/ipxe/qemu/pxe-e1000.rom (Debian package ipxe-qemu)"``), or
    ``None`` if it exists; a skip reason in the wording of
    :func:`command_unavailable`."""
    if os.path.exists(path):
        return None
    return f"needs the file {path} (Debian package {package})"


def linux_peer_unavailable(*commands: str) -> str | None:
    """Why the Linux kernel cannot be a peer here, or ``None`` if it can.

    A peer needs Linux, root (``CAP_NET_ADMIN``, for TAP devices and network
    namespaces), ``/dev/net/tun`` and the ``ip`` command, plus ``commands``
    (checked by :func:`command_unavailable`). Use the answer as a skip
    reason, so a test skips only where this is truly unavailable and says
    why::

        reason = linux_peer_unavailable("curl")
        pytestmark = pytest.mark.skipif(reason is not None, reason=reason or "")
    """
    if sys.platform != "linux":
        return "needs Linux (TAP devices and network namespaces)"
    if os.geteuid() != 0:
        return "needs root (CAP_NET_ADMIN) to create TAP devices and network namespaces"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun (the Linux 'tun' module)"
    return command_unavailable("ip", *commands)
