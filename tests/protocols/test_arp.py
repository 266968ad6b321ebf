"""ARP packets (literals, round trips, scapy, fuzz) and the ArpCache machine."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import ARP, raw

from trionet.protocols.arp import (
    ARPOP_REPLY,
    ARPOP_REQUEST,
    ArpCache,
    ArpEntryRow,
    ArpInput,
    ArpPacket,
    ArpStatistics,
    Expiry,
    Resolution,
)
from trionet.protocols.errors import RemoteProtocolError

from protocol_checks import parse_or_reject

macs = st.binary(min_size=6, max_size=6)
ips = st.binary(min_size=4, max_size=4)
packets = st.builds(ArpPacket, st.integers(0, 0xFFFF), macs, ips, macs, ips)


def _mac(mac: bytes) -> str:
    return mac.hex(":")


def _ip(addr: bytes) -> str:
    return ".".join(map(str, addr))


#### Packets

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
MAC_C = bytes.fromhex("020000000003")
IP_A = bytes([10, 0, 0, 1])
IP_B = bytes([10, 0, 0, 2])
IP_C = bytes([10, 0, 0, 3])
IP_D = bytes([10, 0, 0, 4])
ZERO_MAC = bytes(6)

REQUEST = bytes.fromhex(
    "0001 0800 06 04 0001 020000000001 0a000001 000000000000 0a000002".replace(" ", "")
)


def test_deconstruct() -> None:
    pkt, rest = ArpPacket.parse(REQUEST + bytes(18))  # Ethernet padding
    assert pkt == ArpPacket(ARPOP_REQUEST, MAC_A, IP_A, ZERO_MAC, IP_B)
    assert bytes(rest) == bytes(18)


def test_construct() -> None:
    assert ArpPacket(ARPOP_REQUEST, MAC_A, IP_A, ZERO_MAC, IP_B).emit() == REQUEST


def test_repr_is_readable() -> None:
    text = repr(ArpPacket(ARPOP_REQUEST, MAC_A, IP_A, ZERO_MAC, IP_B))
    assert "02:00:00:00:00:01" in text and "10.0.0.2" in text


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "short_header"),
        (REQUEST[:7], "short_header"),
        (REQUEST[:27], "short_header"),
        (b"\x00\x06" + REQUEST[2:], "unsupported"),  # IEEE 802 hardware
        (REQUEST[:2] + b"\x86\xdd" + REQUEST[4:], "unsupported"),
        (REQUEST[:4] + b"\x08\x04" + REQUEST[6:8], "unsupported"),  # checked before the length
        (REQUEST[:5] + b"\x10" + REQUEST[6:], "unsupported"),
    ],
)
def test_rejects(data: bytes, reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        ArpPacket.parse(data)
    assert info.value.reason == reason


def test_emit_refuses_bad_fields() -> None:
    for pkt in (
        ArpPacket(1, MAC_A[:5], IP_A, ZERO_MAC, IP_B),
        ArpPacket(1, MAC_A, IP_A + b"\0", ZERO_MAC, IP_B),
        ArpPacket(70000, MAC_A, IP_A, ZERO_MAC, IP_B),
    ):
        with pytest.raises(ValueError):
            pkt.emit()


@settings(max_examples=100)
@given(packets, st.binary(max_size=20))
def test_round_trip(pkt: ArpPacket, padding: bytes) -> None:
    parsed, rest = ArpPacket.parse(bytearray(pkt.emit() + padding))
    assert parsed == pkt
    assert bytes(rest) == padding


@settings(max_examples=100)
@given(packets)
def test_scapy_decodes_what_we_emit(pkt: ArpPacket) -> None:
    s = ARP(pkt.emit())
    assert (s.hwtype, s.ptype, s.hwlen, s.plen, s.op) == (1, 0x0800, 6, 4, pkt.op)
    assert (s.hwsrc, s.psrc, s.hwdst, s.pdst) == (_mac(pkt.sha), _ip(pkt.spa), _mac(pkt.tha), _ip(pkt.tpa))


@settings(max_examples=100)
@given(packets)
def test_we_decode_what_scapy_builds(pkt: ArpPacket) -> None:
    data = raw(ARP(op=pkt.op, hwsrc=_mac(pkt.sha), psrc=_ip(pkt.spa), hwdst=_mac(pkt.tha), pdst=_ip(pkt.tpa)))
    assert ArpPacket.parse(data)[0] == pkt


def _parse_or_reject(data: bytes | bytearray) -> None:
    parse_or_reject(ArpPacket.parse, data)


@settings(max_examples=200)
@given(st.binary(max_size=40))
def test_arbitrary_bytes_only_raise_remote_protocol_error(data: bytes) -> None:
    _parse_or_reject(data)


@settings(max_examples=100)
@given(packets, st.data())
def test_mutated_packets_only_raise_remote_protocol_error(pkt: ArpPacket, data: st.DataObject) -> None:
    frame = bytearray(pkt.emit())
    i = data.draw(st.integers(0, len(frame) - 1))
    frame[i] = data.draw(st.integers(0, 255))
    _parse_or_reject(frame[: data.draw(st.integers(0, len(frame)))])
    _parse_or_reject(frame)


#### The cache machine

ME = frozenset({IP_A})


def reply_from(mac: bytes, ip: bytes, to_ip: bytes = IP_A) -> ArpPacket:
    return ArpPacket(ARPOP_REPLY, mac, ip, MAC_A, to_ip)


def request_from(mac: bytes, ip: bytes, target: bytes) -> ArpPacket:
    return ArpPacket(ARPOP_REQUEST, mac, ip, ZERO_MAC, target)


def feed(cache: ArpCache, pkt: ArpPacket, now: float) -> ArpInput:
    return cache.input(pkt, now, my_ips=ME, my_mac=MAC_A)


def test_an_unknown_address_is_requested_once_and_packets_queue() -> None:
    cache = ArpCache()
    assert cache.resolve(IP_B, "p1", 0.0) == Resolution(request=True)
    assert cache.resolve(IP_B, "p2", 0.2) == Resolution()
    assert cache.resolve(IP_B, "p3", 0.4) == Resolution()
    assert cache.lookup(IP_B) is None
    assert cache.entries() == [ArpEntryRow(IP_B, None, "incomplete", 1.0)]
    assert cache.statistics().requests == 1


def test_a_reply_releases_the_pending_packets_in_order() -> None:
    cache = ArpCache()
    for i, now in enumerate((0.0, 0.1, 0.2)):
        cache.resolve(IP_B, f"p{i}", now)
    result = feed(cache, reply_from(MAC_B, IP_B), 0.5)
    assert result == ArpInput(released=((MAC_B, ("p0", "p1", "p2")),), learned=True)
    assert cache.lookup(IP_B) == MAC_B
    assert cache.resolve(IP_B, "p3", 0.6) == Resolution(mac=MAC_B)
    assert cache.entries() == [ArpEntryRow(IP_B, MAC_B, "reachable", 1200.5)]


def test_the_pending_queue_is_bounded_and_drops_the_oldest() -> None:
    cache = ArpCache(max_pending=2)
    cache.resolve(IP_B, "p0", 0.0)
    cache.resolve(IP_B, "p1", 0.0)
    assert cache.resolve(IP_B, "p2", 0.0) == Resolution(dropped="p0")
    assert feed(cache, reply_from(MAC_B, IP_B), 0.1).released == ((MAC_B, ("p1", "p2")),)
    assert cache.statistics().pending_dropped == 1


def test_retransmit_schedule_then_give_up_with_the_packets() -> None:
    cache = ArpCache(retransmit=1.0, max_requests=3)
    cache.resolve(IP_B, "p0", 10.0)
    cache.resolve(IP_B, "p1", 10.5)
    assert cache.next_deadline() == 11.0
    assert cache.expire(10.99) == Expiry()
    assert cache.expire(11.0) == Expiry(requests=(IP_B,))
    assert cache.next_deadline() == 12.0
    assert cache.expire(12.25) == Expiry(requests=(IP_B,))
    assert cache.next_deadline() == 13.25
    assert cache.expire(13.0) == Expiry()
    assert cache.expire(13.25) == Expiry(failed=((IP_B, ("p0", "p1")),))
    assert cache.next_deadline() is None
    assert cache.entries() == []
    stats = cache.statistics()
    assert (stats.requests, stats.failed) == (3, 1)
    # A later resolve starts over.
    assert cache.resolve(IP_B, "p2", 20.0).request


def test_expire_handles_several_addresses_in_deadline_order() -> None:
    cache = ArpCache(retransmit=1.0, max_requests=2)
    cache.resolve(IP_B, "b", 0.0)
    cache.resolve(IP_C, "c", 0.5)
    cache.resolve(IP_D, "d", 1.2)
    assert cache.expire(1.5) == Expiry(requests=(IP_B, IP_C))
    assert cache.next_deadline() == 2.2  # D's first retransmit
    assert cache.expire(2.5) == Expiry(requests=(IP_D,), failed=((IP_B, ("b",)), (IP_C, ("c",))))
    assert cache.next_deadline() == 3.5


def test_reachable_entries_age_out() -> None:
    cache = ArpCache(reachable=60.0)
    feed(cache, request_from(MAC_B, IP_B, IP_A), 5.0)  # for us: learned
    assert cache.next_deadline() == 65.0
    assert cache.expire(64.9) == Expiry()
    assert cache.lookup(IP_B) == MAC_B
    assert cache.expire(65.0) == Expiry()
    assert cache.lookup(IP_B) is None
    assert cache.next_deadline() is None
    assert cache.statistics().expired == 1


def test_a_confirmation_pushes_the_age_back() -> None:
    cache = ArpCache(reachable=60.0)
    feed(cache, request_from(MAC_B, IP_B, IP_A), 0.0)
    feed(cache, request_from(MAC_C, IP_C, IP_A), 10.0)
    feed(cache, reply_from(MAC_B, IP_B), 30.0)  # confirms B
    assert cache.next_deadline() == 70.0  # C first now
    cache.expire(70.0)
    assert [row.ip for row in cache.entries()] == [IP_B]
    assert cache.next_deadline() == 90.0


def test_resolve_does_not_use_an_aged_entry_before_expire_runs() -> None:
    cache = ArpCache(reachable=60.0)
    feed(cache, request_from(MAC_B, IP_B, IP_A), 0.0)
    assert cache.resolve(IP_B, "p", 59.0) == Resolution(mac=MAC_B)
    assert cache.resolve(IP_B, "p", 60.0) == Resolution(request=True)


def test_a_request_for_us_is_answered_and_teaches_the_sender() -> None:
    cache = ArpCache()
    result = feed(cache, request_from(MAC_B, IP_B, IP_A), 0.0)
    assert result.reply == ArpPacket(ARPOP_REPLY, MAC_A, IP_A, MAC_B, IP_B)
    assert result.learned
    assert cache.lookup(IP_B) == MAC_B
    assert cache.statistics().replies_sent == 1


def test_merge_rule_creates_entries_only_for_packets_to_us() -> None:
    cache = ArpCache()
    # B asks for C: not for us, B unknown: nothing learned, no reply.
    assert feed(cache, request_from(MAC_B, IP_B, IP_C), 0.0) == ArpInput()
    assert cache.lookup(IP_B) is None
    # Once B is known, a packet not for us still updates it (merge).
    feed(cache, request_from(MAC_B, IP_B, IP_A), 1.0)
    result = feed(cache, request_from(MAC_C, IP_B, IP_C), 2.0)  # B moved to MAC_C
    assert result == ArpInput(learned=True)
    assert cache.lookup(IP_B) == MAC_C
    assert cache.statistics().updated == 1
    assert cache.entries() == [ArpEntryRow(IP_B, MAC_C, "reachable", 1202.0)]


def test_a_gratuitous_arp_updates_a_known_entry() -> None:
    cache = ArpCache()
    feed(cache, request_from(MAC_B, IP_B, IP_A), 0.0)
    announcement = cache.gratuitous(IP_B, MAC_C)
    assert announcement == ArpPacket(ARPOP_REQUEST, MAC_C, IP_B, ZERO_MAC, IP_B)
    assert feed(cache, announcement, 1.0) == ArpInput(learned=True)
    assert cache.lookup(IP_B) == MAC_C


def test_a_duplicate_address_is_a_conflict_and_is_ignored() -> None:
    cache = ArpCache()
    result = feed(cache, request_from(MAC_B, IP_A, IP_A), 0.0)
    assert result == ArpInput(conflict=True, ignored="conflict")
    assert cache.entries() == []
    assert cache.statistics().conflicts == 1


@pytest.mark.parametrize(
    ("pkt", "reason"),
    [
        (request_from(b"\xff" * 6, IP_B, IP_A), "group_sender"),
        (request_from(bytes.fromhex("01005e000001"), IP_B, IP_A), "group_sender"),
        (request_from(MAC_A, IP_A, IP_A), "own_mac"),
        (ArpPacket(3, MAC_B, IP_B, ZERO_MAC, IP_A), "bad_op"),
    ],
)
def test_ignored_packets(pkt: ArpPacket, reason: str) -> None:
    cache = ArpCache()
    assert feed(cache, pkt, 0.0) == ArpInput(ignored=reason)
    assert cache.entries() == []
    assert cache.statistics().ignored == 1


def test_a_probe_is_answered_but_teaches_nothing() -> None:
    # RFC 5227 probe: sender address 0.0.0.0.
    cache = ArpCache()
    result = feed(cache, request_from(MAC_B, bytes(4), IP_A), 0.0)
    assert result.reply == ArpPacket(ARPOP_REPLY, MAC_A, IP_A, MAC_B, bytes(4))
    assert not result.learned and cache.entries() == []


def test_static_entries() -> None:
    cache = ArpCache()
    cache.resolve(IP_B, "p0", 0.0)
    assert cache.add_static(IP_B, MAC_B) == ("p0",)  # the waiting packet is now sendable
    assert cache.resolve(IP_B, "p1", 1.0) == Resolution(mac=MAC_B)
    # The network cannot change a static entry, nor does it age.
    assert feed(cache, request_from(MAC_C, IP_B, IP_A), 2.0).reply is not None
    assert cache.lookup(IP_B) == MAC_B
    assert cache.next_deadline() is None
    cache.expire(1e9)
    assert cache.entries() == [ArpEntryRow(IP_B, MAC_B, "static", None)]
    assert cache.remove(IP_B)
    assert not cache.remove(IP_B)
    assert cache.lookup(IP_B) is None
    with pytest.raises(ValueError):
        cache.add_static(IP_B, b"\xff" * 6)
    with pytest.raises(ValueError):
        cache.add_static(IP_B[:3], MAC_B)


def test_remove_counts_the_pending_packets() -> None:
    cache = ArpCache()
    cache.resolve(IP_B, "p0", 0.0)
    cache.resolve(IP_B, "p1", 0.0)
    assert cache.remove(IP_B)
    assert cache.statistics().pending_dropped == 2
    assert cache.next_deadline() is None


def test_eviction_prefers_the_least_recently_confirmed_reachable_entry() -> None:
    cache = ArpCache(max_entries=2)
    cache.add_static(IP_D, MAC_C)  # statics do not count
    feed(cache, request_from(MAC_B, IP_B, IP_A), 0.0)
    feed(cache, request_from(MAC_C, IP_C, IP_A), 1.0)
    feed(cache, reply_from(MAC_B, IP_B), 2.0)  # B is now the fresher one
    assert cache.resolve(bytes([10, 0, 0, 9]), "p", 3.0) == Resolution(request=True)
    assert cache.lookup(IP_C) is None
    assert cache.lookup(IP_B) == MAC_B
    assert cache.lookup(IP_D) == MAC_C
    assert cache.statistics().evicted == 1


def test_eviction_of_an_incomplete_entry_reports_its_packets() -> None:
    cache = ArpCache(max_entries=2)
    cache.resolve(IP_B, "b0", 0.0)
    cache.resolve(IP_B, "b1", 0.1)
    cache.resolve(IP_C, "c0", 0.2)
    assert cache.resolve(IP_D, "d0", 0.3) == Resolution(request=True, evicted=("b0", "b1"))
    assert [row.ip for row in cache.entries()] == [IP_C, IP_D]
    # Learning a new entry from a request to us can evict too.
    result = feed(cache, request_from(MAC_B, IP_B, IP_A), 0.4)
    assert result.evicted == ("c0",)
    stats = cache.statistics()
    assert (stats.evicted, stats.pending_dropped) == (2, 3)


@settings(max_examples=50)
@given(st.lists(st.tuples(st.sampled_from(["resolve", "input", "expire"]), st.integers(0, 20)), max_size=60))
def test_the_table_stays_bounded_and_next_deadline_is_exact(ops: list[tuple[str, int]]) -> None:
    cache = ArpCache(max_entries=4, retransmit=1.0, reachable=5.0, max_pending=2)
    now = 0.0
    for op, n in ops:
        ip = bytes([10, 0, 1, n])
        now += 0.25
        if op == "resolve":
            cache.resolve(ip, n, now)
        elif op == "input":
            cache.input(request_from(bytes([2, 0, 0, 0, 1, n]), ip, IP_A), now, my_ips=ME, my_mac=MAC_A)
        else:
            cache.expire(now)
        rows = cache.entries()
        assert len(rows) <= 4
        expected = min((row.expires for row in rows if row.expires is not None), default=None)
        assert cache.next_deadline() == expected
        if op == "expire":
            # Everything due has been done: nothing left at or before now.
            assert all(row.expires > now for row in rows)


def test_constructor_validates() -> None:
    for kwargs in ({"max_entries": 0}, {"retransmit": 0}, {"max_requests": 0}, {"max_pending": 0}):
        with pytest.raises(ValueError):
            ArpCache(**kwargs)  # type: ignore[arg-type]


def test_statistics_is_a_frozen_value() -> None:
    stats = ArpCache().statistics()
    assert stats == ArpStatistics()
    with pytest.raises(AttributeError):
        stats.requests = 1  # type: ignore[misc]


def test_two_caches_joined_by_a_fake_link() -> None:
    # h11 ConnectionPair style: A resolves B; frames cross as bytes.
    a, b = ArpCache(), ArpCache()
    res = a.resolve(IP_B, "ip-packet", 0.0)
    assert res.request
    request = ArpPacket(ARPOP_REQUEST, MAC_A, IP_A, ZERO_MAC, IP_B).emit()
    at_b = b.input(ArpPacket.parse(request)[0], 0.001, my_ips=frozenset({IP_B}), my_mac=MAC_B)
    assert at_b.reply is not None and b.lookup(IP_A) == MAC_A
    at_a = a.input(ArpPacket.parse(at_b.reply.emit())[0], 0.002, my_ips=ME, my_mac=MAC_A)
    assert at_a.released == ((MAC_B, ("ip-packet",)),)
    assert a.next_deadline() == pytest.approx(1200.002)


def test_learned_entries_age_like_any_other_and_leave_static_ones_alone() -> None:
    cache = ArpCache(reachable=100.0)
    cache.resolve(IP_B, "p0", 0.0)
    assert cache.learn(IP_B, MAC_B, 1.0) == ("p0",)  # the waiting packet is now sendable
    assert cache.lookup(IP_B) == MAC_B
    assert cache.entries() == [ArpEntryRow(IP_B, MAC_B, "reachable", 101.0)]
    assert cache.next_deadline() == 101.0
    cache.expire(101.0)
    assert cache.lookup(IP_B) is None
    cache.add_static(IP_C, MAC_C)
    assert cache.learn(IP_C, MAC_B, 2.0) == ()
    assert cache.lookup(IP_C) == MAC_C
    # A full table makes room as input does.
    small = ArpCache(max_entries=2)
    for n in range(3):
        small.learn(bytes([10, 0, 0, n]), MAC_B, float(n))
    assert len(small.entries()) == 2 and small.statistics().evicted == 1
    with pytest.raises(ValueError):
        cache.learn(IP_B, b"\x01" * 6, 3.0)
