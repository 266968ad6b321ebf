"""The NAPT table: translation checked with scapy as the oracle, TCP/UDP/ICMP
timers, ICMP errors both ways, port allocation, bounds, and fuzz."""

from __future__ import annotations

import struct

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import ICMP, IP, TCP, UDP, IPerror, Raw

from trionet.protocols.checksum import internet_checksum, ones_complement_sum, pseudo_header_sum
from trionet.protocols.icmp import IcmpMessage, echo
from trionet.protocols.ipv4 import IPv4Header, ip_aton
from trionet.protocols.nat import Nat, NatRow, NatStatistics, format_nat
from trionet.protocols.tcp import TcpFlags, TcpHeader
from trionet.protocols.udp import UdpHeader

IN_A = "10.0.0.2"
IN_B = "10.0.0.3"
OUT = "192.0.2.1"
REM = "198.51.100.7"
OTHER = "203.0.113.9"
ROUTER = "198.51.100.254"


def _nat(**kwargs: object) -> Nat:
    return Nat(ip_aton(OUT), **kwargs)  # type: ignore[arg-type]


def _scapy_checksums_ok(data: bytes) -> None:
    """scapy recomputes every checksum of ``data`` (outer IP and the
    transport) and must get the bytes we produced."""
    pkt = IP(data)
    clone = IP(data)
    del clone.chksum
    for layer in (TCP, UDP, ICMP):
        if layer in clone and not (layer is UDP and pkt[UDP].chksum == 0):
            del clone[layer].chksum
    assert bytes(clone) == data


def _verify(data: bytes) -> None:
    """Every checksum of ``data`` verifies (our own arithmetic, independent
    of the incremental updates under test): the IP header, the transport,
    and for an ICMP error the quoted IP header."""
    hdr, seg = IPv4Header.parse(data)  # raises on a bad header checksum
    if hdr.proto == 6:
        assert ones_complement_sum(seg, pseudo_header_sum(hdr.src, hdr.dst, 6, len(seg))) == 0xFFFF
    elif hdr.proto == 17:
        if seg[6:8] != b"\0\0":
            assert ones_complement_sum(seg, pseudo_header_sum(hdr.src, hdr.dst, 17, len(seg))) == 0xFFFF
    elif hdr.proto == 1:
        assert internet_checksum(seg) == 0
        if seg[0] in (3, 4, 11, 12):
            q = seg[8:]
            assert internet_checksum(q[: (q[0] & 15) * 4]) == 0


def _reply(pkt: bytes, **changes: object) -> bytes:
    """What the remote sends back to a translated datagram: addresses and
    ports swapped (a SYN draws a SYN-ACK)."""
    p = IP(pkt)
    r = IP(src=p.dst, dst=p.src)
    if TCP in p:
        flags = "SA" if p[TCP].flags == "S" else "A"
        r /= TCP(sport=p[TCP].dport, dport=p[TCP].sport, flags=changes.pop("flags", flags))
    elif UDP in p:
        r /= UDP(sport=p[UDP].dport, dport=p[UDP].sport) / Raw(b"pong")
    else:
        r /= ICMP(type=0, id=p[ICMP].id, seq=p[ICMP].seq) / Raw(b"echo")
    for name, value in changes.items():
        setattr(r, name, value)
    return bytes(r)


#### UDP


def test_udp_outbound_rewrites_the_source_with_valid_checksums() -> None:
    nat = _nat()
    original = bytes(IP(src=IN_A, dst=REM, ttl=63) / UDP(sport=5353, dport=53) / Raw(b"query"))
    out = nat.outbound(original, 0.0)
    assert out is not None
    p = IP(out)
    assert (p.src, p.dst, p[UDP].sport, p[UDP].dport, p.ttl) == (OUT, REM, 5353, 53, 63)
    assert bytes(p[Raw]) == b"query"
    _scapy_checksums_ok(out)
    assert nat.statistics().translated_out == 1


def test_udp_reply_is_translated_back_to_the_inside_host() -> None:
    nat = _nat()
    out = nat.outbound(bytes(IP(src=IN_A, dst=REM) / UDP(sport=4000, dport=53) / b"q"), 0.0)
    assert out is not None
    back = nat.inbound(_reply(out), 1.0)
    assert back is not None
    p = IP(back)
    assert (p.src, p.dst, p[UDP].sport, p[UDP].dport) == (REM, IN_A, 53, 4000)
    _scapy_checksums_ok(back)
    (row,) = nat.rows(1.0)
    assert (row.packets_out, row.packets_in) == (1, 1)


def test_udp_zero_checksum_stays_zero() -> None:
    nat = _nat()
    pkt = IPv4Header(ip_aton(IN_A), ip_aton(REM), 17).emit(
        UdpHeader(7, 9).emit(b"data", ip_aton(IN_A), ip_aton(REM), checksum=False)
    )
    out = nat.outbound(pkt, 0.0)
    assert out is not None and out[26:28] == b"\0\0"
    _scapy_checksums_ok(out)


def test_udp_updated_checksum_of_zero_is_sent_as_ffff() -> None:
    # Search a payload whose translated checksum comes out 0 (as 0xFFFF).
    for i in range(70000):
        payload = struct.pack("!I", i)
        pkt = bytes(IP(src=IN_A, dst=REM) / UDP(sport=1000, dport=53) / Raw(payload))
        nat = _nat()
        out = nat.outbound(pkt, 0.0)
        assert out is not None
        if out[26:28] == b"\xff\xff":
            _scapy_checksums_ok(out)
            _verify(out)
            return
    pytest.fail("no payload gave a zero checksum")  # pragma: no cover


def test_udp_timer_is_refreshed_by_both_directions_then_expires() -> None:
    nat = _nat(udp_timeout=300.0)
    out = nat.outbound(bytes(IP(src=IN_A, dst=REM) / UDP(sport=4000, dport=53)), 0.0)
    assert out is not None
    assert nat.next_deadline() == 300.0
    assert nat.inbound(_reply(out), 200.0) is not None  # refresh from outside
    assert nat.next_deadline() == 500.0
    assert nat.inbound(_reply(out), 499.0) is not None
    assert nat.next_deadline() == 799.0
    assert nat.inbound(_reply(out), 799.0) is None  # lazily expired
    assert len(nat) == 0
    stats = nat.statistics()
    assert (stats.expired, stats.passed, stats.drops) == (1, 1, {})


def test_expire_removes_due_entries_and_next_deadline_is_the_earliest() -> None:
    nat = _nat(udp_timeout=300.0, icmp_timeout=60.0, tcp_transitory=240.0)
    nat.outbound(bytes(IP(src=IN_A, dst=REM) / UDP(sport=1, dport=2)), 0.0)
    nat.outbound(bytes(IP(src=IN_A, dst=REM) / TCP(sport=1, dport=2, flags="S")), 10.0)
    nat.outbound(bytes(IP(src=IN_A, dst=REM) / ICMP(id=7)), 20.0)
    assert nat.next_deadline() == 80.0
    nat.expire(79.0)
    assert len(nat) == 3
    nat.expire(80.0)
    assert [r.proto for r in nat.rows(80.0)] == [6, 17]
    assert nat.next_deadline() == 250.0
    nat.expire(1000.0)
    assert len(nat) == 0 and nat.next_deadline() is None
    assert nat.statistics().expired == 3


#### TCP


def _state(nat: Nat, now: float) -> tuple[str, float]:
    (row,) = nat.rows(now)
    return row.state, row.expires


def test_tcp_handshake_establishes_and_fins_close() -> None:
    nat = _nat()
    syn = bytes(IP(src=IN_A, dst=REM) / TCP(sport=40000, dport=80, flags="S", seq=1000))
    out = nat.outbound(syn, 0.0)
    assert out is not None
    _scapy_checksums_ok(out)
    assert IP(out)[TCP].sport == 40000 and IP(out).src == OUT
    assert _state(nat, 0.0) == ("syn_sent", 240.0)
    synack = nat.inbound(_reply(out), 1.0)
    assert synack is not None
    p = IP(synack)
    assert (p.dst, p[TCP].dport, str(p[TCP].flags)) == (IN_A, 40000, "SA")
    _scapy_checksums_ok(synack)
    assert _state(nat, 1.0) == ("established", 7440.0)
    ack = bytes(IP(src=IN_A, dst=REM) / TCP(sport=40000, dport=80, flags="A"))
    assert nat.outbound(ack, 100.0) is not None
    assert _state(nat, 100.0) == ("established", 7440.0)
    # A FIN one way only is a half-close: still established.
    fin = bytes(IP(src=IN_A, dst=REM) / TCP(sport=40000, dport=80, flags="FA"))
    assert nat.outbound(fin, 200.0) is not None
    assert _state(nat, 200.0) == ("established", 7440.0)
    assert nat.inbound(_reply(out, flags="FA"), 201.0) is not None
    assert _state(nat, 201.0) == ("closing", 240.0)
    assert nat.outbound(ack, 202.0) is not None  # the last ACK
    assert nat.next_deadline() == 442.0
    nat.expire(442.0)
    assert len(nat) == 0


def test_tcp_fin_from_outside_first_is_a_half_close_too() -> None:
    nat = _nat()
    out = nat.outbound(bytes(IP(src=IN_A, dst=REM) / TCP(sport=40000, dport=80, flags="S")), 0.0)
    assert out is not None
    nat.inbound(_reply(out), 1.0)
    nat.inbound(_reply(out, flags="FA"), 2.0)
    assert _state(nat, 2.0) == ("established", 7440.0)
    nat.outbound(bytes(IP(src=IN_A, dst=REM) / TCP(sport=40000, dport=80, flags="FA")), 3.0)
    assert _state(nat, 3.0) == ("closing", 240.0)


def test_tcp_rst_keeps_the_entry_a_short_time() -> None:
    nat = _nat(tcp_close=10.0)
    out = nat.outbound(bytes(IP(src=IN_A, dst=REM) / TCP(sport=40000, dport=80, flags="S")), 0.0)
    assert out is not None
    assert nat.inbound(_reply(out, flags="R"), 1.0) is not None
    assert _state(nat, 1.0) == ("closing", 10.0)
    assert nat.next_deadline() == 11.0


def test_tcp_without_syn_makes_no_entry() -> None:
    nat = _nat()
    for flags in ("A", "SA", "R", "PA", "F", "SF"):
        pkt = bytes(IP(src=IN_A, dst=REM) / TCP(sport=40000, dport=80, flags=flags))
        assert nat.outbound(pkt, 0.0) is None
    assert nat.drops == {"tcp_no_syn": 6}
    assert len(nat) == 0


def test_tcp_syn_reopens_a_closing_entry() -> None:
    nat = _nat()
    syn = bytes(IP(src=IN_A, dst=REM) / TCP(sport=40000, dport=80, flags="S"))
    out = nat.outbound(syn, 0.0)
    assert out is not None
    nat.inbound(_reply(out), 1.0)
    nat.outbound(bytes(IP(src=IN_A, dst=REM) / TCP(sport=40000, dport=80, flags="R")), 2.0)
    assert _state(nat, 2.0)[0] == "closing"
    assert nat.outbound(syn, 3.0) is not None
    assert _state(nat, 3.0) == ("syn_sent", 240.0)
    assert nat.statistics().created == 1


def test_tcp_unanswered_syn_expires_after_the_transitory_timeout() -> None:
    nat = _nat(tcp_transitory=240.0)
    out = nat.outbound(bytes(IP(src=IN_A, dst=REM) / TCP(sport=40000, dport=80, flags="S")), 0.0)
    assert out is not None
    assert nat.inbound(_reply(out), 240.0) is None
    assert nat.statistics().expired == 1


#### ICMP echo


def test_icmp_echo_identifiers_are_mapped_like_ports() -> None:
    nat = _nat(ports=(20000, 20010))
    a = nat.outbound(bytes(IP(src=IN_A, dst=REM) / ICMP(id=77, seq=1) / b"ping"), 0.0)
    b = nat.outbound(bytes(IP(src=IN_B, dst=REM) / ICMP(id=77, seq=1) / b"ping"), 0.0)
    assert a is not None and b is not None
    assert IP(a)[ICMP].id == 77 and IP(b)[ICMP].id == 20000
    for data in (a, b):
        _scapy_checksums_ok(data)
    back_b = nat.inbound(_reply(b), 1.0)
    back_a = nat.inbound(_reply(a), 1.0)
    assert back_a is not None and back_b is not None
    assert (IP(back_a).dst, IP(back_a)[ICMP].id) == (IN_A, 77)
    assert (IP(back_b).dst, IP(back_b)[ICMP].id) == (IN_B, 77)
    _scapy_checksums_ok(back_b)
    assert [r.state for r in nat.rows(1.0)] == ["icmp", "icmp"]


def test_icmp_echo_request_from_outside_is_not_ours() -> None:
    nat = _nat()
    nat.outbound(bytes(IP(src=IN_A, dst=REM) / ICMP(id=77)), 0.0)
    assert nat.inbound(bytes(IP(src=REM, dst=OUT) / ICMP(type=8, id=77)), 1.0) is None
    assert nat.statistics().passed == 1


#### Filtering and ports


def test_inbound_from_another_remote_or_port_passes_untouched() -> None:
    nat = _nat()
    out = nat.outbound(bytes(IP(src=IN_A, dst=REM) / UDP(sport=4000, dport=53)), 0.0)
    assert out is not None
    assert nat.inbound(_reply(out, src=OTHER), 1.0) is None
    wrong_port = bytes(IP(src=REM, dst=OUT) / UDP(sport=54, dport=4000))
    assert nat.inbound(wrong_port, 1.0) is None
    wrong_proto = bytes(IP(src=REM, dst=OUT) / TCP(sport=53, dport=4000, flags="SA"))
    assert nat.inbound(wrong_proto, 1.0) is None
    not_to_us = bytes(IP(src=REM, dst=IN_A) / UDP(sport=53, dport=4000))
    assert nat.inbound(not_to_us, 1.0) is None
    stats = nat.statistics()
    assert (stats.passed, stats.drops, stats.translated_in) == (4, {}, 0)


def test_port_collision_gets_another_outside_port() -> None:
    nat = _nat(ports=(30000, 30100))
    a = nat.outbound(bytes(IP(src=IN_A, dst=REM) / UDP(sport=5000, dport=53)), 0.0)
    b = nat.outbound(bytes(IP(src=IN_B, dst=REM) / UDP(sport=5000, dport=53)), 0.0)
    # Another remote: the inside port is free there, so it is kept.
    c = nat.outbound(bytes(IP(src=IN_B, dst=OTHER) / UDP(sport=5000, dport=53)), 0.0)
    assert a is not None and b is not None and c is not None
    assert [IP(x)[UDP].sport for x in (a, b, c)] == [5000, 30000, 5000]
    back = nat.inbound(_reply(b), 1.0)
    assert back is not None and (IP(back).dst, IP(back)[UDP].dport) == (IN_B, 5000)
    back = nat.inbound(_reply(a), 1.0)
    assert back is not None and (IP(back).dst, IP(back)[UDP].dport) == (IN_A, 5000)


def test_round_robin_cursor_and_no_port() -> None:
    nat = _nat(ports=(6000, 6001))
    hosts = ["10.0.0.%d" % i for i in range(2, 6)]
    outs = [nat.outbound(bytes(IP(src=h, dst=REM) / UDP(sport=6000, dport=53)), 0.0) for h in hosts]
    assert [IP(o)[UDP].sport if o else None for o in outs] == [6000, 6001, None, None]
    assert nat.drops == {"no_port": 2}
    assert len(nat) == 2


def test_a_mapping_is_freed_by_expiry() -> None:
    nat = _nat(ports=(6000, 6000), udp_timeout=10.0)
    nat.outbound(bytes(IP(src=IN_A, dst=REM) / UDP(sport=6000, dport=53)), 0.0)
    assert nat.outbound(bytes(IP(src=IN_B, dst=REM) / UDP(sport=6000, dport=53)), 5.0) is None
    out = nat.outbound(bytes(IP(src=IN_B, dst=REM) / UDP(sport=6000, dport=53)), 10.0)
    assert out is not None and IP(out)[UDP].sport == 6000


#### ICMP errors


def test_port_unreachable_quoting_a_translated_udp_datagram() -> None:
    nat = _nat(ports=(30000, 30100))
    nat.outbound(bytes(IP(src=IN_B, dst=REM) / UDP(sport=5000, dport=9)), 0.0)  # takes 5000
    original = bytes(IP(src=IN_A, dst=REM, id=4242) / UDP(sport=5000, dport=9) / b"hello there")
    out = nat.outbound(original, 0.0)
    assert out is not None and IP(out)[UDP].sport == 30000
    for quote_len in (28, len(out)):  # RFC 792's 8 bytes, and the whole datagram
        error = bytes(IP(src=REM, dst=OUT) / ICMP(type=3, code=3) / Raw(out[:quote_len]))
        back = nat.inbound(error, 1.0)
        assert back is not None
        p = IP(back)
        assert (p.src, p.dst, p[ICMP].type) == (REM, IN_A, 3)
        assert bytes(p[ICMP].payload) == original[:quote_len]
        assert p[IPerror].src == IN_A and p[IPerror].sport == 5000
        _verify(back)
        _scapy_checksums_ok(back)
    (row,) = [r for r in nat.rows(1.0) if r.inside[0] == ip_aton(IN_A)]
    assert row.packets_in == 2


def test_time_exceeded_quoting_a_tcp_syn_from_a_router() -> None:
    nat = _nat()
    original = bytes(IP(src=IN_A, dst=REM, ttl=1) / TCP(sport=40000, dport=443, flags="S", seq=7))
    out = nat.outbound(original, 0.0)
    assert out is not None
    for quote_len in (28, len(out)):  # 8 bytes of TCP, then with its checksum
        error = bytes(IP(src=ROUTER, dst=OUT) / ICMP(type=11, code=0) / Raw(out[:quote_len]))
        back = nat.inbound(error, 1.0)
        assert back is not None
        p = IP(back)
        assert (p.src, p.dst) == (ROUTER, IN_A)
        assert bytes(p[ICMP].payload) == original[:quote_len]
        _verify(back)
        _scapy_checksums_ok(back)
    assert _state(nat, 1.0) == ("syn_sent", 239.0)  # errors refresh no timer


def test_errors_quoting_an_echo_request_reach_the_pinger() -> None:
    nat = _nat(ports=(20000, 20010))
    nat.outbound(bytes(IP(src=IN_B, dst=REM) / ICMP(id=9)), 0.0)
    original = bytes(IP(src=IN_A, dst=REM) / ICMP(id=9, seq=3) / b"payload")
    out = nat.outbound(original, 0.0)
    assert out is not None and IP(out)[ICMP].id == 20000
    error = bytes(IP(src=ROUTER, dst=OUT) / ICMP(type=11) / Raw(out))
    back = nat.inbound(error, 1.0)
    assert back is not None
    assert bytes(IP(back)[ICMP].payload) == original
    _verify(back)


def test_rfc4884_padding_after_the_quote_is_left_alone() -> None:
    nat = _nat()
    original = bytes(IP(src=IN_A, dst=REM) / TCP(sport=40000, dport=443, flags="S"))
    out = nat.outbound(original, 0.0)
    assert out is not None
    # The whole 40-byte datagram, zero padded to 128 bytes (length 32 words
    # in byte 5), then an extension whose bytes look like anything.
    extension = bytes.fromhex("20000000") + b"\xff" * 12
    body = IcmpMessage(11, 0, 32 << 16).emit(out + bytes(128 - len(out)) + extension)
    error = IPv4Header(ip_aton(ROUTER), ip_aton(OUT), 1).emit(body)
    back = nat.inbound(error, 1.0)
    assert back is not None
    assert back[28:] == original + bytes(128 - len(original)) + extension
    _verify(back)


def test_inside_hosts_port_unreachable_goes_out_translated() -> None:
    nat = _nat(ports=(30000, 30100))
    nat.outbound(bytes(IP(src=IN_B, dst=REM) / UDP(sport=5000, dport=9)), 0.0)
    out = nat.outbound(bytes(IP(src=IN_A, dst=REM) / UDP(sport=5000, dport=9)), 0.0)
    assert out is not None
    from_remote = bytes(IP(src=REM, dst=OUT) / UDP(sport=9, dport=30000) / b"late answer")
    delivered = nat.inbound(from_remote, 1.0)
    assert delivered is not None and IP(delivered).dst == IN_A
    for quote_len in (28, len(delivered)):
        error = bytes(IP(src=IN_A, dst=REM) / ICMP(type=3, code=3) / Raw(delivered[:quote_len]))
        sent = nat.outbound(error, 2.0)
        assert sent is not None
        p = IP(sent)
        assert (p.src, p.dst) == (OUT, REM)
        assert bytes(p[ICMP].payload) == from_remote[:quote_len]
        _verify(sent)
        _scapy_checksums_ok(sent)
    # From an inside router about the same datagram: the outer source is
    # masqueraded too.
    error = bytes(IP(src="10.0.0.1", dst=REM) / ICMP(type=11) / Raw(delivered))
    sent = nat.outbound(error, 2.0)
    assert sent is not None and IP(sent).src == OUT
    _verify(sent)


def test_errors_about_no_entry() -> None:
    nat = _nat()
    stray = bytes(IP(src=OUT, dst=REM) / UDP(sport=1234, dport=9))
    assert nat.inbound(bytes(IP(src=REM, dst=OUT) / ICMP(type=3, code=3) / Raw(stray)), 0.0) is None
    assert nat.statistics().passed == 1
    stray_in = bytes(IP(src=REM, dst=IN_A) / UDP(sport=9, dport=1234))
    assert nat.outbound(bytes(IP(src=IN_A, dst=REM) / ICMP(type=3, code=3) / Raw(stray_in)), 0.0) is None
    assert nat.drops == {"no_entry": 1}
    # Well-formed errors about what we never translate are passed too.
    gre = bytes(IP(src=OUT, dst=REM, proto=47) / Raw(bytes(8)))
    later_fragment = bytes(IP(src=OUT, dst=REM, frag=3) / UDP(sport=1234, dport=9))
    for quote in (gre, later_fragment):
        assert nat.inbound(bytes(IP(src=REM, dst=OUT) / ICMP(type=3) / Raw(quote)), 0.0) is None
    assert nat.statistics().passed == 3 and nat.drops == {"no_entry": 1}
    redirect = bytes(IP(src=REM, dst=OUT) / ICMP(type=5) / Raw(stray))
    nat.outbound(bytes(IP(src=IN_A, dst=REM) / UDP(sport=1234, dport=9)), 0.0)
    assert nat.inbound(redirect, 0.0) is None  # redirects are never translated


#### Drops


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (IP(src=IN_A, dst=REM, flags="MF") / UDP(sport=1, dport=2), "fragment"),
        (IP(src=IN_A, dst=REM, frag=10) / Raw(b"12345678"), "fragment"),
        (IP(src=IN_A, dst=REM, proto=47) / Raw(b"gre"), "unsupported_proto"),
        (IP(src=IN_A, dst=REM) / ICMP(type=0), "unsupported_icmp"),
        (IP(src=IN_A, dst=REM) / ICMP(type=13), "unsupported_icmp"),
        (IP(src=IN_A, dst=REM, proto=17) / Raw(b"\x00\x01\x00\x02\x00\x09"), "truncated"),
        (IP(src=IN_A, dst=REM, proto=6) / Raw(bytes(19)), "truncated"),
        (IP(src=IN_A, dst=REM, proto=1) / Raw(bytes(7)), "truncated"),
        (IP(src=IN_A, dst=REM, chksum=0x1234) / UDP(), "bad_checksum"),
        (IP(src=IN_A, dst=REM) / ICMP(type=3) / Raw(bytes(12)), "truncated"),
        (IP(src=IN_A, dst=REM) / ICMP(type=3) / Raw(b"\x65" + bytes(27)), "bad_quote"),
    ],
)
def test_outbound_drops_are_counted(packet: IP, reason: str) -> None:
    nat = _nat()
    assert nat.outbound(bytes(packet), 0.0) is None
    assert nat.drops == {reason: 1}
    assert len(nat) == 0


def test_inbound_fragment_and_garbage_are_counted_not_passed() -> None:
    nat = _nat()
    assert nat.inbound(bytes(IP(src=REM, dst=OUT, flags="MF") / UDP()), 0.0) is None
    assert nat.inbound(b"\x45\x00", 0.0) is None
    assert nat.drops == {"fragment": 1, "short_header": 1}
    assert nat.statistics().passed == 0


def test_link_padding_is_cut() -> None:
    nat = _nat()
    pkt = bytes(IP(src=IN_A, dst=REM) / UDP(sport=1, dport=2))
    out = nat.outbound(pkt + bytes(18), 0.0)
    assert out is not None and len(out) == len(pkt)


#### Bounds


def _udp_template() -> tuple[bytes, int]:
    pkt = bytes(IP(src=IN_A, dst=REM) / UDP(sport=1, dport=53))
    return pkt, len(pkt)


def test_flood_keeps_the_bound_and_counts_evictions_exactly() -> None:
    nat = _nat(max_entries=1000)
    header = IPv4Header(ip_aton(IN_A), b"", 17)
    udp = b"\x00\x00\x00\x35\x00\x08\x00\x00"  # checksum 0: none
    for i in range(100_000):
        src = bytes((10, 1, i >> 8 & 0xFF, i & 0xFF))
        pkt = attrs.evolve(header, src=src, dst=bytes((198, 51, 100, i >> 16))).emit(
            struct.pack("!H", 1024 + i % 60000) + udp[2:]
        )
        assert nat.outbound(pkt, i * 1e-3) is not None
        assert len(nat) <= 1000
    stats = nat.statistics()
    assert (stats.created, stats.evicted, stats.entries, stats.expired) == (100_000, 99_000, 1000, 0)


def test_eviction_takes_the_least_recently_used() -> None:
    nat = _nat(max_entries=3)
    pkts = [bytes(IP(src=IN_A, dst=REM) / UDP(sport=s, dport=53)) for s in (1, 2, 3, 4)]
    for t, pkt in enumerate(pkts[:3]):
        nat.outbound(pkt, float(t))
    nat.outbound(pkts[0], 3.0)  # port 1 is now the most recent
    # An ICMP entry is in another timer queue; still LRU across queues.
    nat.outbound(bytes(IP(src=IN_A, dst=REM) / ICMP(id=5)), 4.0)
    assert sorted(r.inside[1] for r in nat.rows(4.0)) == [1, 3, 5]
    nat.outbound(pkts[3], 5.0)
    assert sorted(r.inside[1] for r in nat.rows(5.0)) == [1, 4, 5]
    assert nat.statistics().evicted == 2


#### Management


def test_changing_the_outside_address_flushes() -> None:
    nat = _nat()
    nat.outbound(bytes(IP(src=IN_A, dst=REM) / UDP(sport=1, dport=53)), 0.0)
    nat.outside_addr = ip_aton(OUT)  # the same: kept
    assert len(nat) == 1
    nat.outside_addr = ip_aton("192.0.2.99")
    assert len(nat) == 0 and nat.next_deadline() is None
    out = nat.outbound(bytes(IP(src=IN_A, dst=REM) / UDP(sport=1, dport=53)), 1.0)
    assert out is not None and IP(out).src == "192.0.2.99"
    with pytest.raises(ValueError, match="4 bytes"):
        nat.outside_addr = b"\x01\x02"


def test_rows_are_sorted_and_formatted() -> None:
    nat = _nat()
    nat.outbound(bytes(IP(src=IN_B, dst=REM) / UDP(sport=5353, dport=53)), 0.0)
    nat.outbound(bytes(IP(src=IN_A, dst=REM) / TCP(sport=40000, dport=80, flags="S")), 0.0)
    nat.outbound(bytes(IP(src=IN_A, dst=REM) / ICMP(id=3)), 0.0)
    rows = nat.rows(10.0)
    assert rows[1] == NatRow(
        6, (ip_aton(IN_A), 40000), (ip_aton(OUT), 40000), (ip_aton(REM), 80), "syn_sent", 230.0, 1, 0
    )
    assert format_nat(rows) == (
        "proto inside         outside         remote          state    expires\n"
        "icmp  10.0.0.2:3     192.0.2.1:3     198.51.100.7:0  icmp          50\n"
        "tcp   10.0.0.2:40000 192.0.2.1:40000 198.51.100.7:80 syn_sent     230\n"
        "udp   10.0.0.3:5353  192.0.2.1:5353  198.51.100.7:53 udp          290\n"
    )
    assert "10.0.0.2:40000" in repr(rows[1])
    nat.flush()
    assert nat.rows(10.0) == [] and format_nat([]).startswith("proto")


def test_statistics_is_a_snapshot() -> None:
    nat = _nat(max_entries=10)
    nat.outbound(b"junk", 0.0)
    stats = nat.statistics()
    assert stats == NatStatistics(0, 0, 0, 0, 10, 0, 0, 0, {"short_header": 1})
    nat.drops["short_header"] += 1
    assert stats.drops == {"short_header": 1}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_entries": 0},
        {"ports": (10, 5)},
        {"ports": (0, 70000)},
        {"udp_timeout": 0.0},
        {"tcp_established": -1.0},
    ],
)
def test_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        _nat(**kwargs)
    with pytest.raises(ValueError):
        Nat(b"\x01\x02\x03")


#### Fuzz: round trips, checksums, bounds

INSIDE = [ip_aton("10.0.0.%d" % i) for i in (2, 3, 4)]
REMOTES = [ip_aton(a) for a in (REM, OTHER)]


@st.composite
def inside_datagrams(draw: st.DrawFn) -> bytes:
    src = draw(st.sampled_from(INSIDE))
    dst = draw(st.sampled_from(REMOTES))
    sport = draw(st.sampled_from([1, 1024, 5000, 65535]))
    dport = draw(st.sampled_from([53, 80]))
    payload = draw(st.binary(max_size=40))
    kind = draw(st.sampled_from(["udp", "udp0", "tcp", "icmp"]))
    if kind == "tcp":
        seq = draw(st.integers(0, 2**32 - 1))
        seg = TcpHeader(sport, dport, seq, 0, TcpFlags.SYN).emit(payload, src, dst)
        proto = 6
    elif kind == "icmp":
        seg, proto = echo(sport, draw(st.integers(0, 0xFFFF)), payload), 1
    else:
        seg = UdpHeader(sport, dport).emit(payload, src, dst, checksum=kind == "udp")
        proto = 17
    ttl = draw(st.integers(1, 255))
    return IPv4Header(src, dst, proto, ttl=ttl, ident=draw(st.integers(0, 0xFFFF))).emit(seg)


def _mutate(data: bytes, draw: st.DrawFn) -> bytes:
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if not buf:
            break
        i = draw(st.integers(0, len(buf) - 1))
        buf[i] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(buf)))
    return bytes(buf[:cut]) if draw(st.booleans()) else bytes(buf)


def _inner_reply(out: bytes) -> bytes:
    """The remote's answer to a translated datagram, built with our emitters."""
    hdr, seg = IPv4Header.parse(out)
    if hdr.proto == 6:
        sport, dport, seq = struct.unpack_from("!HHI", seg)
        synack = TcpHeader(dport, sport, 99, (seq + 1) & 0xFFFFFFFF, TcpFlags.SYN | TcpFlags.ACK)
        body = synack.emit(b"", hdr.dst, hdr.src)
    elif hdr.proto == 17:
        sport, dport = struct.unpack_from("!HH", seg)
        body = UdpHeader(dport, sport).emit(b"pong", hdr.dst, hdr.src)
    else:
        ident, seq = struct.unpack_from("!HH", seg, 4)
        body = echo(ident, seq, b"pong", reply=True)
    return IPv4Header(hdr.dst, hdr.src, hdr.proto).emit(body)


def _ports_of(data: bytes) -> tuple[bytes, bytes, int, int]:
    hdr, seg = IPv4Header.parse(data)
    if hdr.proto == 1:
        ident = struct.unpack_from("!H", seg, 4)[0]
        return hdr.src, hdr.dst, ident, ident
    sport, dport = struct.unpack_from("!HH", seg)
    return hdr.src, hdr.dst, sport, dport


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_fuzz_round_trips_checksums_and_bound(data: st.DataObject) -> None:
    nat = _nat(max_entries=4, ports=(5000, 5003))
    now = 0.0
    for _ in range(data.draw(st.integers(1, 12))):
        now += data.draw(st.sampled_from([0.0, 1.0, 100.0, 1000.0]))
        original = data.draw(inside_datagrams())
        action = data.draw(st.sampled_from(["roundtrip", "error", "mutate_out", "mutate_in", "expire"]))
        if action == "expire":
            nat.expire(now)
            deadline = nat.next_deadline()
            assert deadline is None or deadline > now
            continue
        if action == "mutate_out":
            nat.outbound(_mutate(original, data.draw), now)
            continue
        before = nat.drops.copy()
        out = nat.outbound(original, now)
        if out is None:
            assert nat.drops - before == {"no_port": 1}  # a valid datagram: only the ports ran out
            continue
        _verify(out)
        src, dst, sport, _ = _ports_of(original)
        osrc, odst, osport, _ = _ports_of(out)
        assert (osrc, odst) == (ip_aton(OUT), dst)
        assert out[8] == original[8] and len(out) == len(original)  # TTL, length
        if action == "mutate_in":
            nat.inbound(_mutate(_inner_reply(out), data.draw), now)
            continue
        if action == "roundtrip":
            back = nat.inbound(_inner_reply(out), now)
            assert back is not None
            _verify(back)
            assert _ports_of(back)[1] == src and _ports_of(back)[3] == sport
        else:
            quote = out[: data.draw(st.sampled_from([28, len(out)]))]
            error = IPv4Header(ip_aton(ROUTER), ip_aton(OUT), 1).emit(IcmpMessage(11, 0).emit(quote))
            back = nat.inbound(error, now)
            assert back is not None
            _verify(back)
            assert back[20 + 8 :] == original[: len(quote)]
        assert len(nat) <= 4
    assert len(nat) <= 4
    stats = nat.statistics()
    assert stats.created - stats.evicted - stats.expired == len(nat)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.binary(max_size=80))
def test_random_bytes_never_raise(out_bytes: bytes, in_bytes: bytes) -> None:
    nat = _nat()
    nat.outbound(out_bytes, 0.0)
    nat.inbound(in_bytes, 0.0)
    # Random bytes behind a valid header reach the transport code.
    for proto in (1, 6, 17):
        nat.outbound(IPv4Header(ip_aton(IN_A), ip_aton(REM), proto).emit(out_bytes), 0.0)
        nat.inbound(IPv4Header(ip_aton(REM), ip_aton(OUT), proto).emit(in_bytes), 0.0)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_errors_never_raise_and_keep_checksums_as_valid_as_they_were(data: st.DataObject) -> None:
    nat = _nat()
    original = data.draw(inside_datagrams())
    out = nat.outbound(original, 0.0)
    assert out is not None
    error = bytearray(IPv4Header(ip_aton(ROUTER), ip_aton(OUT), 1).emit(IcmpMessage(3, 3).emit(out)))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(20, len(error) - 1))  # keep the outer header valid
        error[i] = data.draw(st.integers(0, 255))
    was_valid = internet_checksum(error[20:]) == 0
    back = nat.inbound(bytes(error), 0.0)
    if back is not None:
        assert (internet_checksum(back[20:]) == 0) == was_valid
        IPv4Header.parse(back)  # the outer header checksum verifies
