"""Offloads: packets whose TCP or UDP checksum, and segmentation, are left to the card.

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
3. :func:`complete` works on IPv4 packets carrying TCP or UDP, and on IPv6
   ones whose TCP or UDP header follows the fixed header (the only IPv6
   packets the stack marks), at any offset (14 for an Ethernet frame, 0 for a
   bare IP packet); anything else is returned unchanged (only TCP and UDP
   are ever marked). TSO (rule 4) is IPv4's only.
4. TSO: a sender whose interface segments in hardware (``IFCAP_TSO``) may
   hand it a TCP *super-segment* longer than the link's MTU, a pending frame
   with :attr:`PendingFrame.tso_mss` set: the payload size of the segments
   it stands for. :func:`segment` cuts it into those (Linux's software GSO):
   each with the super-segment's TCP header and options, its own sequence
   number, FIN and PSH only on the last, and its own IP header (length,
   identification, checksum); their TCP checksums still left to the card.
   Whatever observes frames one by one (a capture, a fault injector, a wire
   with a bandwidth, a socket or a device, a receiver without ``IFCAP_LRO``)
   cuts it first; :func:`wire_frames` does both steps. Between two cards
   that segment and coalesce (TSO and LRO) on an in-memory link, it may
   travel whole, as virtio-net carries them between guests.

DragonFly: ``sys/netinet/ip_output.c`` (``in_delayed_cksum``),
``sys/sys/mbuf.h`` (``CSUM_*``).
"""

from __future__ import annotations

from .checksum import ones_complement_sum

__all__ = [
    "CSUM_DATA_VALID",
    "PendingFrame",
    "complete",
    "fill_checksum",
    "is_pending",
    "segment",
    "wire_frames",
]

#: ``m.csum`` of a received packet that arrived pending at an interface that
#: verifies checksums: its data is known good, and its checksum field may
#: still be 0 (so a router forwards it pending, or completes it).
CSUM_DATA_VALID = 0x1

_TCP = 6
_UDP = 17


class PendingFrame(bytes):
    """A frame (or IP packet) whose TCP or UDP checksum field is 0, to be
    filled in by whoever first needs real bytes (:func:`complete`).

    Attributes:
        tso_mss: for a TCP super-segment, the payload size of the segments
            it stands for (:func:`segment`); 0 for an ordinary frame.
    """

    tso_mss = 0


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
        l3: where the IP header starts (14 in an Ethernet frame, 0 in a
            bare IP packet). IPv4, or IPv6 whose fixed header is followed
            directly by the TCP or UDP header (the only IPv6 packets the
            stack leaves to the card).
    """
    if frame.__class__ is not PendingFrame:
        return frame  # type: ignore[return-value]
    data = bytes(frame)
    if len(data) >= l3 + 48 and data[l3] >> 4 == 6:
        proto = data[l3 + 6]
        if proto != _TCP and proto != _UDP:
            return data
        l4 = l3 + 40
        end = min(l4 + int.from_bytes(data[l3 + 4 : l3 + 6], "big"), len(data))
        if end - l4 < (18 if proto == _TCP else 8):
            return data
        segment = fill_checksum(proto, memoryview(data)[l4:end], data[l3 + 8 : l3 + 24], data[l3 + 24 : l3 + 40])
        return data[:l4] + segment + data[end:]
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


_FIN_PSH = 0x01 | 0x08
_CWR = 0x80


def segment(frame: PendingFrame, l3: int = 14) -> list[PendingFrame]:
    """Cut a TCP super-segment (``frame.tso_mss`` set) into the segments it
    stands for (rule 4); a frame without ``tso_mss`` comes back alone."""
    mss = frame.tso_mss
    if not mss:
        return [frame]
    data = bytes(frame)
    ihl = (data[l3] & 0x0F) << 2
    l4 = l3 + ihl
    thl = (data[l4 + 12] >> 4) << 2
    head, ip = data[:l3], data[l3:l4]
    tcp = data[l4 : l4 + thl]
    payload = memoryview(data)[l4 + thl :]
    seq = int.from_bytes(tcp[4:8], "big")
    flags = tcp[13]
    ident = int.from_bytes(ip[4:6], "big")
    n = len(payload)
    out = []
    for i, off in enumerate(range(0, n, mss)):
        chunk = payload[off : off + mss]
        f = flags if off + mss >= n else flags & ~_FIN_PSH
        if i:
            f &= ~_CWR
        th = (
            tcp[:4] + ((seq + off) & 0xFFFFFFFF).to_bytes(4, "big") + tcp[8:13] + bytes((f,))
            + tcp[14:16] + b"\0\0" + tcp[18:]
        )  # fmt: skip
        iph = (
            ip[:2] + (ihl + thl + len(chunk)).to_bytes(2, "big")
            + ((ident + i) & 0xFFFF).to_bytes(2, "big") + ip[6:10] + b"\0\0" + ip[12:]
        )  # fmt: skip
        iph = iph[:10] + (~ones_complement_sum(iph) & 0xFFFF).to_bytes(2, "big") + iph[12:]
        out.append(PendingFrame(head + iph + th + chunk))
    return out


def wire_frames(frame: bytes, l3: int = 14) -> list[bytes]:
    """The frames a card puts on a real wire for ``frame``: a super-segment
    cut into segments (rule 4), every checksum filled in (rule 1)."""
    if frame.__class__ is not PendingFrame:
        return [frame]
    if frame.tso_mss:  # type: ignore[attr-defined]
        return [complete(f, l3) for f in segment(frame, l3)]  # type: ignore[arg-type]
    return [complete(frame, l3)]
