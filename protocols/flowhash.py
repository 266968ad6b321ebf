"""Flow hashing: which protocol thread handles a packet.

DragonFly hashes TCP and UDP packets by their 4-tuple so that one connection
is only ever touched by one protocol thread; fragments, other protocols and
UDP multicast or broadcast all go to CPU 0. The hash is an XOR of addresses
and ports, so it is the same in both directions of a flow.

IPv6 packets hash the same way (:func:`ipv6_flow_hash`), each 128-bit address
folded to 32 bits by XOR of its four words first. Only a TCP or UDP header
right after the fixed header is hashed; a packet with extension headers
(fragments included), ICMPv6, and UDP to a multicast group go to CPU 0.

DragonFly: ``INP_MPORT_HASH`` and ``ip_mport`` in ``sys/netinet/ip_demux.c``.
Divergence: DragonFly runs all IPv6 TCP on CPU 0's protocol thread
(``tcp6_addrport`` in ``sys/netinet6/ip6_demux.c``); we spread IPv6 flows as
we spread IPv4 ones.
"""

from __future__ import annotations

__all__ = ["IPPROTO_TCP", "IPPROTO_UDP", "ipv4_flow_hash", "ipv6_flow_hash", "tuple_hash"]

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


def ipv6_flow_hash(packet: bytes | bytearray | memoryview) -> int:
    """The flow hash of an IPv6 packet (starting at its IPv6 header).

    Returns:
        :func:`tuple_hash` of the two addresses, each folded to 32 bits by
        XOR of its four words, and the ports, for a packet whose fixed
        header names TCP or UDP directly (and, for UDP, whose destination is
        not multicast); 0 for everything else: extension headers (fragments
        included), other protocols, and packets too short or malformed to
        tell, which IPv6 input will examine and drop on CPU 0. Never raises
        for any bytes.
    """
    n = len(packet)
    if n < 44 or packet[0] >> 4 != 6:
        return 0
    proto = packet[6]
    if proto != IPPROTO_TCP and proto != IPPROTO_UDP:
        return 0
    plen = (packet[4] << 8) | packet[5]
    if plen < 4 or 40 + plen > n:
        return 0
    if proto == IPPROTO_UDP and packet[24] == 0xFF:  # multicast destination
        return 0
    src = int.from_bytes(packet[8:24], "big")
    dst = int.from_bytes(packet[24:40], "big")
    src ^= src >> 64
    src ^= src >> 32
    dst ^= dst >> 64
    dst ^= dst >> 32
    return tuple_hash(
        src & 0xFFFFFFFF,
        (packet[40] << 8) | packet[41],
        dst & 0xFFFFFFFF,
        (packet[42] << 8) | packet[43],
    )
