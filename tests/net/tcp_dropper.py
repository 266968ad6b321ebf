"""Test-only wire middleware: lose the outbound TCP segments a predicate picks.

Wrap the endpoint a host's vnic sends through; frames that carry a TCP
segment (Ethernet II, IPv4, not a fragment) the predicate chooses are
swallowed as a lossy link would (``send`` says the wire took them);
everything else, and everything inbound, passes unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

from trionet.lowlevel import EndpointWrapper, WireEndpoint
from trionet.protocols.errors import RemoteProtocolError
from trionet.protocols.ethernet import ETHERTYPE_IP, EthernetHeader
from trionet.protocols.ipv4 import IPPROTO_TCP, IPv4Header
from trionet.protocols.tcp import TcpFlags, TcpHeader

#: Decides from a segment's header and payload whether to lose it.
Predicate = Callable[[TcpHeader, memoryview], bool]


class TcpDropper(EndpointWrapper):
    """Loses the outbound TCP segments ``drop`` picks.

    Attributes:
        dropped: the headers of the segments lost, in order.
    """

    def __init__(self, inner: WireEndpoint, drop: Predicate) -> None:
        super().__init__(inner)
        self.drop = drop
        self.dropped: list[TcpHeader] = []

    def send(self, frame: bytes) -> bool:
        segment = _tcp_segment(frame)
        if segment is not None and self.drop(*segment):
            self.dropped.append(segment[0])
            return True
        return self.pass_down(frame)


def _tcp_segment(frame: bytes) -> tuple[TcpHeader, memoryview] | None:
    try:
        eth, packet = EthernetHeader.parse(frame)
        if eth.ethertype != ETHERTYPE_IP:
            return None
        ip, data = IPv4Header.parse(packet)
        if ip.proto != IPPROTO_TCP or ip.is_fragment:
            return None
        return TcpHeader.parse(data, ip.src, ip.dst)
    except RemoteProtocolError:
        return None


def final_handshake_acks() -> Predicate:
    """A predicate losing, on every connection this side opens, the ACK that
    completes the handshake: the first segment after our SYN that is a bare
    ACK (no data, no other flag)."""
    opening: set[tuple[int, int]] = set()

    def drop(header: TcpHeader, payload: memoryview) -> bool:
        key = (header.sport, header.dport)
        if header.flags == TcpFlags.SYN:
            opening.add(key)
        elif key in opening and header.flags == TcpFlags.ACK and not payload:
            opening.discard(key)
            return True
        return False

    return drop
