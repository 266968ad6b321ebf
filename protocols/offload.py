"""Checksum offload: packets whose TCP or UDP checksum is left to the network card.

A sender that knows its interface computes checksums in "hardware"
(``IFCAP_TXCSUM``) leaves the transport checksum field at 0 and marks the
packet: it is a :class:`PendingFrame`, a ``bytes`` subclass, so the mark
travels with the bytes through send queues, drivers and in-memory wires
without any other bookkeeping (DragonFly's ``m_pkthdr.csum_flags`` with
``CSUM_TCP``/``CSUM_UDP``; Linux's ``CHECKSUM_PARTIAL``).

Rules:

1. Whatever observes a frame's bytes completes it first with
   :func:`complete`: a packet capture, a fault injector (a corrupted frame
   must still fail the receiver's check), a wire that leaves the process (UDP,
   TAP), and an input path whose interface does not verify checksums
   (``IFCAP_RXCSUM`` off). A plain ``bytes`` frame is already complete.
2. A receiving interface that verifies checksums marks a pending frame
   verified (``CSUM_DATA_VALID``): its bytes never left memory, so there is
   nothing to verify, and TCP and UDP input skip the check.
3. :func:`complete` works on IPv4 packets carrying TCP or UDP, at any offset
   (14 for an Ethernet frame, 0 for a bare IP packet); anything else is
   returned unchanged (only TCP and UDP are ever marked).

DragonFly: ``sys/netinet/ip_output.c`` (``in_delayed_cksum``),
``sys/sys/mbuf.h`` (``CSUM_*``).
"""

from __future__ import annotations

from .checksum import ones_complement_sum

__all__ = ["CSUM_DATA_VALID", "PendingFrame", "complete", "fill_checksum", "is_pending"]

#: ``m.csum`` of a received packet that arrived pending at an interface that
#: verifies checksums: its data is known good, and its checksum field may
#: still be 0 (so a router forwards it pending, or completes it).
CSUM_DATA_VALID = 0x1

_TCP = 6
_UDP = 17


class PendingFrame(bytes):
    """A frame (or IPv4 packet) whose TCP or UDP checksum field is 0, to be
    filled in by whoever first needs real bytes (:func:`complete`)."""

    __slots__ = ()


def is_pending(frame: object) -> bool:
    """Whether ``frame`` still needs its transport checksum."""
    return frame.__class__ is PendingFrame


def fill_checksum(proto: int, segment: bytes | bytearray | memoryview, src: bytes, dst: bytes) -> bytes:
    """The TCP or UDP ``segment`` (its checksum field 0) with its checksum
    computed over it and the pseudo-header of ``src`` and ``dst``."""
    field = 16 if proto == _TCP else 6
    # The pseudo-header as one integer congruent to its one's-complement sum
    # modulo 0xFFFF (see protocols/udp.py _pseudo).
    pseudo = int.from_bytes(src, "big") + int.from_bytes(dst, "big") + proto + len(segment)
    csum = ~ones_complement_sum(segment, pseudo) & 0xFFFF
    if proto == _UDP and csum == 0:
        csum = 0xFFFF  # RFC 768: 0 means "no checksum"
    segment = bytes(segment)
    return segment[:field] + csum.to_bytes(2, "big") + segment[field + 2 :]


def complete(frame: bytes | bytearray | memoryview, l3: int = 14) -> bytes:
    """``frame`` with its TCP or UDP checksum filled in, as plain ``bytes``.

    Args:
        frame: a :class:`PendingFrame`, or anything else (returned as is).
        l3: where the IPv4 header starts (14 in an Ethernet frame, 0 in a
            bare IP packet).
    """
    if frame.__class__ is not PendingFrame:
        return frame  # type: ignore[return-value]
    data = bytes(frame)
    if len(data) < l3 + 20 or data[l3] >> 4 != 4:
        return data
    proto = data[l3 + 9]
    if proto != _TCP and proto != _UDP:
        return data
    l4 = l3 + ((data[l3] & 0x0F) << 2)
    end = min(l3 + int.from_bytes(data[l3 + 2 : l3 + 4], "big"), len(data))
    if end - l4 < (18 if proto == _TCP else 8):
        return data
    segment = fill_checksum(proto, memoryview(data)[l4:end], data[l3 + 12 : l3 + 16], data[l3 + 16 : l3 + 20])
    return data[:l4] + segment + data[end:]
