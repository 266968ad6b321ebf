"""What a test (or a script) needs to put the Linux kernel at the far end."""

from __future__ import annotations

import os
import shutil
import sys

__all__ = ["linux_peer_unavailable"]

#: The Debian package of each command a Linux-peer test may need.
PACKAGES = {
    "ip": "iproute2",
    "bridge": "iproute2",
    "ping": "iputils-ping",
    "curl": "curl",
    "tshark": "tshark",
    "ethtool": "ethtool",
}


def linux_peer_unavailable(*commands: str) -> str | None:
    """Why the Linux kernel cannot be a peer here, or ``None`` if it can.

    A peer needs Linux, root (``CAP_NET_ADMIN``, for TAP devices and network
    namespaces), ``/dev/net/tun`` and the ``ip`` command, plus ``commands``.
    Use the answer as a skip reason, so a test skips only where this is
    truly unavailable and says why::

        reason = linux_peer_unavailable("curl")
        pytestmark = pytest.mark.skipif(reason is not None, reason=reason or "")
    """
    if sys.platform != "linux":
        return "needs Linux (TAP devices and network namespaces)"
    if os.geteuid() != 0:
        return "needs root (CAP_NET_ADMIN) to create TAP devices and network namespaces"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun (the Linux 'tun' module)"
    for command in ("ip", *commands):
        if shutil.which(command) is None:
            package = PACKAGES.get(command, command)
            return f"needs the {command} command (Debian package {package})"
    return None
