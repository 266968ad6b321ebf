"""Ephemeral ports, shared by UDP and TCP.

BSD hands them out in order from ``net.inet.ip.portrange.first`` to
``.last`` (49152..65535, RFC 6335's dynamic range), skipping ports in use,
and wraps around. Sequential rather than random (RFC 6056 prefers random):
in a seeded network the ports, and so every run, stay reproducible.
"""

from __future__ import annotations

import errno
from collections.abc import Container

from .._exceptions import NetError

__all__ = ["EPHEMERAL", "EphemeralPorts"]

EPHEMERAL = range(49152, 65536)


class EphemeralPorts:
    """The next-port cursor of one protocol."""

    def __init__(self) -> None:
        self._next = EPHEMERAL.start

    def allocate(self, in_use: Container[int], errnum: int = errno.EADDRINUSE) -> int:
        """The next port not in ``in_use``.

        Raises:
            NetError: ``errnum`` when every port is in use.
        """
        for _ in range(len(EPHEMERAL)):
            port = self._next
            self._next = port + 1 if port + 1 < EPHEMERAL.stop else EPHEMERAL.start
            if port not in in_use:
                return port
        raise NetError(errnum, "no ephemeral port is free")
