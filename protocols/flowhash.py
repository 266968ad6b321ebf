"""Flow hashing: which protocol thread handles a packet.

DragonFly hashes TCP and UDP packets by their 4-tuple so that one connection
is only ever touched by one protocol thread; fragments, other protocols and
UDP multicast or broadcast all go to CPU 0. The hash is an XOR of addresses
and ports, so it is the same in both directions of a flow.

DragonFly: ``INP_MPORT_HASH`` and ``ip_mport`` in ``sys/netinet/ip_demux.c``.
"""

from __future__ import annotations

__all__ = ["IPPROTO_TCP", "IPPROTO_UDP", "ipv4_flow_hash", "tuple_hash"]

IPPROTO_TCP = 6
IPPROTO_UDP = 17


def tuple_hash(saddr: int, sport: int, daddr: int, dport: int) -> int:
    """The flow hash of a 4-tuple, in 0..255; symmetric in its two ends."""
    h = saddr ^ daddr ^ sport ^ dport
    h ^= h >> 16
    h ^= h >> 8
    return h & 0xFF


def ipv4_flow_hash(packet: bytes | bytearray | memoryview) -> int:
    """The flow hash of an IPv4 packet (starting at its IP header).

    Returns:
        :func:`tuple_hash` of the addresses and ports for a TCP or UDP packet
        that is not a fragment (and, for UDP, not multicast or limited
        broadcast); 0 for everything else, including packets too short or
        malformed to tell, which IP input will examine and drop on CPU 0.
        Never raises for any bytes.
    """
    n = len(packet)
    if n < 20:
        return 0
    vihl = packet[0]
    ihl = (vihl & 0x0F) * 4
    if vihl >> 4 != 4 or ihl < 20 or n < ihl + 4:
        return 0
    proto = packet[9]
    if proto != IPPROTO_TCP and proto != IPPROTO_UDP:
        return 0
    if ((packet[6] << 8) | packet[7]) & 0x3FFF:  # MF set or a non-zero offset
        return 0
    daddr = int.from_bytes(packet[16:20], "big")
    if proto == IPPROTO_UDP and (daddr >> 28 == 0xE or daddr == 0xFFFFFFFF):
        return 0
    return tuple_hash(
        int.from_bytes(packet[12:16], "big"),
        (packet[ihl] << 8) | packet[ihl + 1],
        daddr,
        (packet[ihl + 2] << 8) | packet[ihl + 3],
    )
