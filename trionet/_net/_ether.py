"""Ethernet input and output: from a driver's ``ifp.input(frame)`` to a
protocol thread, and from a protocol to the send queue.

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

Output (:func:`ether_output`) is the one place frames are built: a protocol
that knows the destination MAC (ARP, once it resolved the next hop, or for
its own packets) hands it the payload; it prepends the header
(``trionet.protocols.ethernet``) and queues the frame with ``ifq_dispatch``.
Headers are kept in a small cache by (destination, source, EtherType), so
the per-packet cost is one dict probe and one concatenation; a miss builds
the header with :class:`~trionet.protocols.ethernet.EthernetHeader`, which
checks the addresses. The cache holds at most :data:`HEADER_CACHE_MAX`
entries and starts over when full.

DragonFly: ``sys/net/if_ethersubr.c`` (``ether_input_chain``,
``ether_demux``, ``ether_output``).
"""

from __future__ import annotations

import enum
from errno import EIO
from typing import TYPE_CHECKING

import attrs

from ..protocols.ethernet import BROADCAST as ETHER_BROADCAST
from ..protocols.ethernet import ETHER_ADDR_LEN, ETHER_HDR_LEN, EthernetHeader
from ..protocols.offload import CSUM_DATA_VALID, PendingFrame, complete
from ._if import IfCap

if TYPE_CHECKING:
    from ._if import Ifnet

__all__ = [
    "HEADER_CACHE_MAX",
    "Mbuf",
    "MbufFlags",
    "ether_input",
    "ether_output",
]

#: Ethernet headers :func:`ether_output` keeps, at most.
HEADER_CACHE_MAX = 1024

_ZERO_MAC = bytes(ETHER_ADDR_LEN)
_RXCSUM = int(IfCap.RXCSUM)
_LRO = int(IfCap.LRO)
# (dst, src, ethertype) -> the 14 header bytes.
_headers: dict[tuple[bytes, bytes, int], bytes] = {}


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
        csum: :data:`~trionet.protocols.offload.CSUM_DATA_VALID` when the
            receiving interface vouched for the transport checksum (the
            frame arrived with its checksum left to the card); 0 otherwise.
        tso: for a TCP super-segment handed up whole (``IfCap.LRO``), the
            payload size of the segments it stands for; 0 otherwise.

    DragonFly: ``struct mbuf`` (``m_data``, ``m_pkthdr.rcvif``, ``m_flags``,
    ``m_pkthdr.csum_flags``).
    """

    data: memoryview
    rcvif: Ifnet
    flags: int
    frame: memoryview
    csum: int = 0
    tso: int = 0

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
    tso = 0
    if n > ifp.mtu + ETHER_HDR_LEN:
        # Only a super-segment a card with LRO handed up whole may be longer.
        tso = getattr(frame, "tso_mss", 0)
        if not tso or not int(ifp.capenable) & _LRO:
            data.ierrors += 1
            return
    if n < ETHER_HDR_LEN:
        data.ierrors += 1
        return
    csum = 0
    if frame.__class__ is PendingFrame:
        # Its checksum was left to the card: one that verifies checksums
        # vouches for it; otherwise fill it in, as one that does not would
        # have received it (offload rule 2).
        if int(ifp.capenable) & _RXCSUM:
            csum = CSUM_DATA_VALID
        else:
            frame = complete(frame)
    view = memoryview(frame)
    flags = 0
    if view[0] & 1:
        data.imcasts += 1
        flags = MbufFlags.BCAST if view[:ETHER_ADDR_LEN] == ETHER_BROADCAST else MbufFlags.MCAST
    elif ifp.pcount and ifp.lladdr and view[:ETHER_ADDR_LEN] != ifp.lladdr:
        data.inotforus += 1
        return
    error = ifp.netisr_enqueue(
        (view[12] << 8) | view[13], Mbuf(view[ETHER_HDR_LEN:], ifp, flags, view, csum, tso)
    )
    if error:
        if error == EIO:
            data.noproto += 1
        else:
            data.iqdrops += 1


def ether_output(ifp: Ifnet, dst: bytes, ethertype: int, payload: bytes) -> None:
    """Frame ``payload`` for ``dst`` and queue it on ``ifp``.

    The source address is ``ifp.lladdr`` (zero for an interface without
    one, such as loopback). A plain function that never blocks.

    Args:
        dst: the destination MAC (6 bytes).
        ethertype: the payload's EtherType.

    Raises:
        NetError: what ``ifq_dispatch`` raises (``ENOBUFS``, ``ENETDOWN``),
            counted by the interface.
        ValueError: ``dst`` is not 6 bytes or ``ethertype`` not an
            EtherType.

    DragonFly: ``ether_output`` (the framing half; ``arpresolve`` is ARP's).
    """
    src = ifp.lladdr or _ZERO_MAC
    key = (dst, src, ethertype)
    header = _headers.get(key)
    if header is None:
        header = EthernetHeader(dst, src, ethertype).emit()
        if len(_headers) >= HEADER_CACHE_MAX:
            _headers.clear()
        _headers[key] = header
    frame = header + payload
    if payload.__class__ is PendingFrame:
        frame = PendingFrame(frame)  # the checksum is still the card's to do
        if payload.tso_mss:  # type: ignore[attr-defined]
            frame.tso_mss = payload.tso_mss  # and so is the segmentation
    _ifstart.ifq_dispatch(ifp, frame)


# At the end: _ifstart imports this module's constants (the module object
# is enough here; its ifq_dispatch is looked up at call time).
from . import _ifstart  # noqa: E402
