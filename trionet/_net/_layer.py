"""What the protocol glue layers share: the drop table and its rules.

:class:`Arp`, :class:`Ip`, :class:`Icmp`, :class:`Udp` and :class:`Tcp` each
count what they do not deliver or send in ``drops``, a reason -> count table
that their ``statistics()`` copy as the ``drops`` field. The table and the
rules for filling it live here, once:

1. Input counts the packet, then parses its header with the protocol's
   ``parse``; a :class:`~trionet.protocols.errors.RemoteProtocolError`
   counts ``drops[exc.reason]`` (``"truncated"``, ``"bad_checksum"``...)
   and drops the packet: a bad packet is data, not a crash. On the
   per-datagram path (IP, ICMP, UDP, TCP) the ``try``, the parse and the
   count are written inline, on purpose: a shared function would cost a
   Python call per packet (a ``try`` costs nothing until something is
   raised). Inputs off that path (ARP's) use :meth:`ProtoLayer._parse`.
2. A packet lost because output refused it counts
   ``{prefix}_{errno name}`` (``output_enobufs``, ``reply_enetunreach``):
   :meth:`ProtoLayer._count_errno`.
3. Every other drop counts a fixed reason string, named in the layer's
   statistics class.

DragonFly: the per-protocol ``*stat`` structures (``ipstat``, ``udpstat``,
``tcpstat``...), whose drop counters are fields; here they are keys.
"""

from __future__ import annotations

import errno
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from ..protocols.errors import RemoteProtocolError

T = TypeVar("T")

__all__ = ["ProtoLayer"]


class ProtoLayer:
    """Base of the protocol glue layers: the ``drops`` table (see the module).

    .. attribute:: drops

       reason -> count of the packets the layer dropped; a
       :class:`collections.Counter`, bumped in place on the per-packet path.
       ``statistics().drops`` is a copy (:meth:`_drop_counts`).
    """

    def __init__(self) -> None:
        self.drops: Counter[str] = Counter()

    def _drop_counts(self) -> dict[str, int]:
        # The snapshot statistics() returns: a plain dict, detached.
        return dict(self.drops)

    def _count_errno(self, prefix: str, exc: OSError) -> None:
        # Rule 2: `prefix` says what was refused ("output", "reply", "error").
        self.drops[f"{prefix}_{errno.errorcode.get(exc.errno, exc.errno)}".lower()] += 1

    def _parse(self, parse: Callable[[Any], T], data: Any) -> T | None:
        # Rule 1 as a call, for inputs off the per-datagram path: parse(data),
        # or None with drops[reason] counted.
        try:
            return parse(data)
        except RemoteProtocolError as exc:
            self.drops[exc.reason] += 1
            return None
