"""Ethernet input: from a driver's ``ifp.input(frame)`` to a protocol thread.

:func:`ether_input` is the input routine of every interface (the loopback
interface frames its packets as Ethernet with zero addresses, as Linux does,
so there is one input path). It is a plain function and only queues, so a
driver may call it with its serializer held, and a protocol that answers at
once (an echo) transmits from its own thread, never from inside the driver.

For each frame, in order:

1. shorter than an Ethernet header, or longer than ``mtu`` plus the header:
   ``ierrors``, dropped;
2. ``ipackets``/``ibytes`` are the driver's; here ``imcasts`` counts group
   (multicast and broadcast) destinations;
3. a unicast frame for another station reaches us only in promiscuous mode:
   counted in ``inotforus`` and dropped (a packet capture saw it already);
4. the EtherType picks the netisr protocol (protocols register under their
   EtherType number, ``ETHERTYPE_IP`` = 0x0800): none registered is
   ``noproto``; a full protocol queue is ``iqdrops``.

The packet a protocol handler receives is an :class:`Mbuf` whose ``data``
starts at the network header.

DragonFly: ``sys/net/if_ethersubr.c`` (``ether_input_chain``,
``ether_demux``).
"""

from __future__ import annotations

import enum
from errno import EIO
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from ._if import Ifnet

__all__ = [
    "ETHERTYPE_ARP",
    "ETHERTYPE_IP",
    "ETHERTYPE_IPV6",
    "ETHER_ADDR_LEN",
    "ETHER_BROADCAST",
    "ETHER_HDR_LEN",
    "Mbuf",
    "MbufFlags",
    "ether_input",
]

ETHER_ADDR_LEN = 6
ETHER_HDR_LEN = 14
ETHER_BROADCAST = b"\xff" * ETHER_ADDR_LEN
ETHERTYPE_IP = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV6 = 0x86DD


class MbufFlags(enum.IntFlag):
    """``m_flags`` bits a receiver cares about."""

    BCAST = 0x1
    MCAST = 0x2


@attrs.define(eq=False, slots=True)
class Mbuf:
    """A received packet on its way up the stack.

    Attributes:
        data: the packet from the current header on (after Ethernet input,
            the network header). A memoryview over the frame: no copy.
        rcvif: the interface it arrived on.
        flags: :class:`MbufFlags` of the link-layer destination.
        frame: the whole received frame, link-layer header included.

    DragonFly: ``struct mbuf`` (``m_data``, ``m_pkthdr.rcvif``, ``m_flags``).
    """

    data: memoryview
    rcvif: Ifnet
    flags: int
    frame: memoryview

    @property
    def src(self) -> bytes:
        """The link-layer source address (6 bytes)."""
        return bytes(self.frame[6:12])

    @property
    def dst(self) -> bytes:
        """The link-layer destination address (6 bytes)."""
        return bytes(self.frame[:6])


def ether_input(ifp: Ifnet, frame: bytes | bytearray | memoryview) -> None:
    """Check, count and queue one received Ethernet frame (see the module rules)."""
    data = ifp.data
    n = len(frame)
    if n < ETHER_HDR_LEN or n > ifp.mtu + ETHER_HDR_LEN:
        data.ierrors += 1
        return
    view = memoryview(frame)
    flags = 0
    if view[0] & 1:
        data.imcasts += 1
        flags = MbufFlags.BCAST if view[:ETHER_ADDR_LEN] == ETHER_BROADCAST else MbufFlags.MCAST
    elif ifp.pcount and ifp.lladdr and view[:ETHER_ADDR_LEN] != ifp.lladdr:
        data.inotforus += 1
        return
    error = ifp.host.netisr_enqueue(
        (view[12] << 8) | view[13], Mbuf(view[ETHER_HDR_LEN:], ifp, flags, view)
    )
    if error:
        if error == EIO:
            data.noproto += 1
        else:
            data.iqdrops += 1
