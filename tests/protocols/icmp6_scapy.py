"""ICMPv6 messages behind scapy's IPv6 header: what the ICMPv6, NDP and MLD
tests share (scapy is the independent decoder)."""

from __future__ import annotations

import socket

from scapy.all import Raw, raw
from scapy.layers.inet6 import IPv6

IPPROTO_ICMPV6 = 58


def a6(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, text)


def n6(addr: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, addr)


def scapy_decode(data: bytes, src: bytes, dst: bytes, *, hlim: int) -> IPv6:
    """Our message behind a scapy IPv6 header, decoded by scapy; asserts that
    scapy computes the same checksum when it rebuilds the message."""
    pkt = IPv6(raw(IPv6(src=n6(src), dst=n6(dst), nh=IPPROTO_ICMPV6, hlim=hlim) / Raw(data)))
    assert pkt[IPv6].payload.cksum == int.from_bytes(data[2:4], "big")
    rebuilt = pkt.copy()
    del rebuilt[IPv6].payload.cksum
    assert raw(rebuilt)[40:] == data
    return pkt


def scapy_build(layer: object, src: bytes, dst: bytes, *, hlim: int) -> bytes:
    """Scapy's encoding of ``layer`` (an ICMPv6 message), without the IPv6 header."""
    return raw(IPv6(src=n6(src), dst=n6(dst), hlim=hlim) / layer)[40:]
