"""MLD messages and the host-side listener: literals, time codes, validation, scapy, schedules, fuzz."""

from __future__ import annotations

from functools import partial

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import (
    ICMPv6MLDMultAddrRec,
    ICMPv6MLDone,
    ICMPv6MLQuery,
    ICMPv6MLQuery2,
    ICMPv6MLReport,
    ICMPv6MLReport2,
)

from trionet.protocols.errors import LocalProtocolError, RemoteProtocolError
from trionet.protocols.icmpv6 import (
    ECHO_REQUEST,
    MLD_LISTENER_DONE,
    MLD_LISTENER_QUERY,
    MLD_LISTENER_REPORT,
    MLDV2_LISTENER_REPORT,
    Icmp6Message,
)
from trionet.protocols.mld import (
    ALLOW_NEW_SOURCES,
    BLOCK_OLD_SOURCES,
    CHANGE_TO_EXCLUDE,
    CHANGE_TO_INCLUDE,
    MODE_IS_EXCLUDE,
    MODE_IS_INCLUDE,
    MldListener,
    MldQuery,
    MldV1Done,
    MldV1Report,
    MldV2Report,
    MulticastRecord,
    decode_max_response_code,
    decode_qqic,
    encode_max_response_code,
    encode_qqic,
    parse_mld,
)

import icmp6_scapy
from icmp6_scapy import a6, n6
from protocol_checks import parse_or_reject


LL1 = a6("fe80::1")
G1 = a6("2001:db8::1")
UNSPEC = bytes(16)
ALL_NODES = a6("ff02::1")
ALL_MLDV2 = a6("ff02::16")
MDNS = a6("ff02::fb")
SITE = a6("ff05::1:3")


def mld(data: bytes, src: bytes, dst: bytes, hop_limit: int = 1) -> object:
    msg, body = Icmp6Message.parse(data, src, dst)
    return parse_mld(msg, body, hop_limit=hop_limit, src=src)


scapy_decode = partial(icmp6_scapy.scapy_decode, hlim=1)
scapy_build = partial(icmp6_scapy.scapy_build, hlim=1)


#### Byte literals

# An MLDv2 report fe80::1 -> ff02::16 joining ff02::fb (checksum 0x6f0f, as
# scapy computes it).
JOIN_MDNS = bytes.fromhex(
    "8f006f0f" "0000" "0001"  # type 143, code 0, checksum, reserved, 1 record
    "04" "00" "0000"  # CHANGE_TO_EXCLUDE, no aux data, no sources
    "ff0200000000000000000000000000fb"
)


def test_deconstruct() -> None:
    assert mld(JOIN_MDNS, LL1, ALL_MLDV2) == MldV2Report((MulticastRecord(CHANGE_TO_EXCLUDE, MDNS),))


def test_construct() -> None:
    assert MldV2Report([MulticastRecord(CHANGE_TO_EXCLUDE, MDNS)]).emit(LL1) == JOIN_MDNS


def test_auxiliary_data_is_skipped() -> None:
    # Aux data length counts 32-bit words (RFC 3810 5.2.6). (Scapy 2.6 counts
    # bytes, so this one is by hand.)
    body = (
        bytes((MODE_IS_INCLUDE, 2)) + (1).to_bytes(2, "big") + SITE + G1 + b"auxdata!"
        + bytes((ALLOW_NEW_SOURCES, 0, 0, 0)) + MDNS
    )
    data = Icmp6Message(MLDV2_LISTENER_REPORT, 0, 2).emit(LL1, ALL_MLDV2, body)
    assert mld(data, LL1, ALL_MLDV2) == MldV2Report(
        (MulticastRecord(MODE_IS_INCLUDE, SITE, (G1,)), MulticastRecord(ALLOW_NEW_SOURCES, MDNS))
    )
    with pytest.raises(RemoteProtocolError, match="short_message"):
        mld(Icmp6Message(MLDV2_LISTENER_REPORT, 0, 1).emit(LL1, ALL_MLDV2, body[:40]), LL1, ALL_MLDV2)


def test_repr_is_readable() -> None:
    assert repr(MulticastRecord(MODE_IS_INCLUDE, SITE, (G1,))) == (
        "MulticastRecord(type=1, group=ff05::1:3, sources=(2001:db8::1))"
    )


#### Time codes (RFC 3810 5.1.3, 5.1.9)


@pytest.mark.parametrize(
    ("code", "ms"),
    [(0, 0), (10000, 10000), (32767, 32767), (0x8000, 32768), (0x8001, 32776), (0xFFFF, 8387584)],
)
def test_max_response_code(code: int, ms: int) -> None:
    assert decode_max_response_code(code) == ms
    assert encode_max_response_code(ms) == code


def test_every_max_response_code_round_trips() -> None:
    for code in range(0x10000):
        assert encode_max_response_code(decode_max_response_code(code)) == code


@settings(max_examples=200)
@given(st.integers(0, 8387584))
def test_encoding_a_delay_rounds_down(ms: int) -> None:
    got = decode_max_response_code(encode_max_response_code(ms))
    assert got <= ms
    # The mantissa has 12 bits after the implicit one: relative error < 2**-12.
    assert ms - got < max(1, ms >> 12)


@pytest.mark.parametrize(("code", "seconds"), [(0, 0), (125, 125), (127, 127), (0x80, 128), (0xFF, 31744)])
def test_qqic(code: int, seconds: int) -> None:
    assert decode_qqic(code) == seconds
    assert encode_qqic(seconds) == code
    assert MldQuery(qqic=code).qqi == seconds


def test_every_qqic_round_trips_and_out_of_range_is_refused() -> None:
    assert [encode_qqic(decode_qqic(c)) for c in range(256)] == list(range(256))
    for bad in (-1, 31744 * 2):
        with pytest.raises(ValueError):
            encode_qqic(bad)
    for bad in (-1, 1 << 23):
        with pytest.raises(ValueError):
            encode_max_response_code(bad)


#### Validation


def q1(group: bytes = UNSPEC, src: bytes = LL1) -> bytes:
    return MldQuery(version=1, group=group).emit(src, ALL_NODES)


QUERY2 = MldQuery(group=SITE, sources=(G1,)).emit(LL1, ALL_NODES)

REJECTIONS = [
    # (name, data, src, hop limit, reason)
    ("query with hop limit 2", QUERY2, LL1, 2, "bad_hop_limit"),
    ("report with hop limit 255", JOIN_MDNS, LL1, 255, "bad_hop_limit"),
    ("query from a global address", QUERY2, G1, 1, "bad_source"),
    ("query from ::", QUERY2, UNSPEC, 1, "bad_source"),
    ("v1 query from ::", q1(), UNSPEC, 1, "bad_source"),
    ("done from ::", MldV1Done(SITE).emit(LL1), UNSPEC, 1, "bad_source"),
    ("v2 report from a global address", JOIN_MDNS, G1, 1, "bad_source"),
    ("v1 report from a global address", MldV1Report(SITE).emit(LL1), G1, 1, "bad_source"),
    ("23-byte query", q1()[:-1], LL1, 1, "short_message"),
    ("25-byte query", q1() + b"\0", LL1, 1, "short_message"),
    ("27-byte query", q1() + b"\0\0\0", LL1, 1, "short_message"),
    ("v2 query without its source", QUERY2[:-1], LL1, 1, "short_message"),
    ("v1 report without group", MldV1Report(SITE).emit(LL1)[:20], LL1, 1, "short_message"),
    ("done without group", MldV1Done(SITE).emit(LL1)[:8], LL1, 1, "short_message"),
    ("v2 report cut in a record", JOIN_MDNS[:-1], LL1, 1, "short_message"),
    ("v2 report, one record missing", MldV2Report([MulticastRecord(4, MDNS)] * 3).emit(LL1)[:48], LL1, 1, "short_message"),
    ("v2 report, a source missing", MldV2Report([MulticastRecord(1, SITE, (G1, G1))]).emit(LL1)[:-16], LL1, 1, "short_message"),
]


@pytest.mark.parametrize(
    ("data", "src", "hop_limit", "reason"), [r[1:] for r in REJECTIONS], ids=[r[0] for r in REJECTIONS]
)
def test_rejects(data: bytes, src: bytes, hop_limit: int, reason: str) -> None:
    # Rebuild the checksum for the source and the cut under test.
    msg = Icmp6Message(data[0], data[1], int.from_bytes(data[4:8], "big"))
    data = msg.emit(src, ALL_NODES, data[8:])
    with pytest.raises(RemoteProtocolError) as info:
        mld(data, src, ALL_NODES, hop_limit)
    assert info.value.reason == reason


def test_reports_may_come_from_unspecified() -> None:
    assert mld(MldV2Report([MulticastRecord(4, MDNS)]).emit(UNSPEC), UNSPEC, ALL_MLDV2) == MldV2Report(
        [MulticastRecord(4, MDNS)]
    )
    assert mld(MldV1Report(SITE).emit(UNSPEC), UNSPEC, SITE) == MldV1Report(SITE)


def test_the_code_is_ignored_and_extra_query_bytes_allowed() -> None:
    data = Icmp6Message(MLD_LISTENER_QUERY, 7, 1000 << 16).emit(LL1, ALL_NODES, bytes(20) + b"extra")
    assert mld(data, LL1, ALL_NODES) == MldQuery(max_response_delay=1.0, qrv=0, qqic=0)


def test_a_type_that_is_not_mld_is_the_callers_bug() -> None:
    with pytest.raises(ValueError, match="not an MLD"):
        parse_mld(Icmp6Message(ECHO_REQUEST, 0), memoryview(bytes(16)), hop_limit=1, src=LL1)


def test_emit_refuses_what_it_cannot_say() -> None:
    for query in (
        MldQuery(version=1, sources=(G1,)),
        MldQuery(version=1, s_flag=True),
        MldQuery(version=1, max_response_delay=65.536),
        MldQuery(max_response_delay=8387.585),
        MldQuery(version=3),
        MldQuery(qrv=8),
        MldQuery(qqic=256),
        MldQuery(group=UNSPEC[:15]),
    ):
        with pytest.raises(ValueError):
            query.emit(LL1)
    with pytest.raises(ValueError):
        MldV2Report([MulticastRecord(256, MDNS)]).emit(LL1)
    with pytest.raises(ValueError):
        MldV2Report([MulticastRecord(1, MDNS, (G1[:4],))]).emit(LL1)
    with pytest.raises(ValueError):
        MldV1Report(b"").emit(LL1)


#### Scapy


def test_scapy_decodes_our_messages() -> None:
    report = MldV2Report([MulticastRecord(CHANGE_TO_INCLUDE, MDNS), MulticastRecord(BLOCK_OLD_SOURCES, SITE, (G1,))])
    pkt = scapy_decode(report.emit(LL1), LL1, ALL_MLDV2)
    r2 = pkt[ICMPv6MLReport2]
    assert r2.records_number == 2
    # Scapy 2.6 decodes the second record as the first one's payload (the
    # record class has no extract_padding): walk the chain.
    recs = []
    for r in r2.records:
        while isinstance(r, ICMPv6MLDMultAddrRec):
            recs.append(r)
            r = r.payload
    assert [(r.rtype, r.dst, r.sources) for r in recs] == [
        (3, "ff02::fb", []), (6, "ff05::1:3", ["2001:db8::1"]),
    ]

    query = MldQuery(max_response_delay=40.96, group=SITE, sources=(G1,), s_flag=True, qrv=3, qqic=200)
    pkt = scapy_decode(query.emit(LL1), LL1, SITE)
    q2 = pkt[ICMPv6MLQuery2]
    assert (q2.mrd, q2.mladdr, q2.S, q2.QRV, q2.QQIC, q2.sources) == (
        0x8400, "ff05::1:3", 1, 3, 200, ["2001:db8::1"],
    )

    pkt = scapy_decode(MldQuery(version=1, max_response_delay=1.5).emit(LL1), LL1, ALL_NODES)
    assert (pkt[ICMPv6MLQuery].mrd, pkt[ICMPv6MLQuery].mladdr) == (1500, "::")
    pkt = scapy_decode(MldV1Report(SITE).emit(LL1), LL1, SITE)
    assert pkt[ICMPv6MLReport].mladdr == "ff05::1:3"
    pkt = scapy_decode(MldV1Done(SITE).emit(LL1), LL1, a6("ff02::2"))
    assert pkt[ICMPv6MLDone].mladdr == "ff05::1:3"


#### Hypothesis: round trips, scapy both ways

addrs = st.binary(min_size=16, max_size=16)
link_local = st.binary(min_size=14, max_size=14).map(lambda b: b"\xfe\x80" + b)
records = st.builds(MulticastRecord, st.integers(0, 255), addrs, st.lists(addrs, max_size=3).map(tuple))
v2_reports = st.builds(MldV2Report, st.lists(records, max_size=5).map(tuple))
v2_queries = st.builds(
    MldQuery,
    max_response_delay=st.integers(0, 0xFFFF).map(lambda c: decode_max_response_code(c) / 1000),
    group=addrs,
    version=st.just(2),
    sources=st.lists(addrs, max_size=4).map(tuple),
    s_flag=st.booleans(),
    qrv=st.integers(0, 7),
    qqic=st.integers(0, 255),
)
v1_queries = st.builds(
    MldQuery,
    max_response_delay=st.integers(0, 0xFFFF).map(lambda ms: ms / 1000),
    group=addrs,
    version=st.just(1),
    qrv=st.just(0),
    qqic=st.just(0),
)
mld_messages = v2_reports | v2_queries | v1_queries | st.builds(MldV1Report, addrs) | st.builds(MldV1Done, addrs)


def source_for(message: object) -> st.SearchStrategy[bytes]:
    return link_local | st.just(UNSPEC) if isinstance(message, MldV1Report | MldV2Report) else link_local


@settings(max_examples=300)
@given(mld_messages, st.data())
def test_round_trip(message: object, data: st.DataObject) -> None:
    src = data.draw(source_for(message))
    dst = data.draw(addrs)
    wire = message.emit(src, dst)  # type: ignore[attr-defined]
    assert mld(wire, src, dst) == message


def _scapy_layer(message: object) -> object:
    if isinstance(message, MldV2Report):
        return ICMPv6MLReport2(
            records=[ICMPv6MLDMultAddrRec(rtype=r.type, dst=n6(r.group), sources=[n6(s) for s in r.sources]) for r in message.records]
        )
    if isinstance(message, MldV1Report):
        return ICMPv6MLReport(mladdr=n6(message.group))
    if isinstance(message, MldV1Done):
        return ICMPv6MLDone(mladdr=n6(message.group))
    assert isinstance(message, MldQuery)
    ms = round(message.max_response_delay * 1000)
    if message.version == 1:
        return ICMPv6MLQuery(mrd=ms, mladdr=n6(message.group))
    return ICMPv6MLQuery2(
        mrd=encode_max_response_code(ms), mladdr=n6(message.group), S=message.s_flag, QRV=message.qrv,
        QQIC=message.qqic, sources=[n6(s) for s in message.sources],
    )


@settings(max_examples=200)
@given(mld_messages, link_local, addrs)
def test_we_decode_what_scapy_builds(message: object, src: bytes, dst: bytes) -> None:
    data = scapy_build(_scapy_layer(message), src, dst)
    assert mld(data, src, dst) == message
    assert data == message.emit(src, dst)  # type: ignore[attr-defined]


@settings(max_examples=200)
@given(mld_messages, link_local, addrs)
def test_scapy_checksums_what_we_build(message: object, src: bytes, dst: bytes) -> None:
    scapy_decode(message.emit(src, dst), src, dst)  # type: ignore[attr-defined]


#### Fuzz

mld_types = st.sampled_from([MLD_LISTENER_QUERY, MLD_LISTENER_REPORT, MLD_LISTENER_DONE, MLDV2_LISTENER_REPORT])
any_addr = addrs | link_local | st.just(UNSPEC) | st.binary(max_size=17)


def _parse_mld(body: bytes, type_: int, rest: int, hop_limit: int, src: bytes) -> None:
    parse_mld(Icmp6Message(type_, 0, rest), memoryview(body), hop_limit=hop_limit, src=src)


@settings(max_examples=500)
@given(st.binary(max_size=80), mld_types, st.integers(0, 0xFFFFFFFF) | st.integers(0, 4), st.just(1) | st.integers(0, 255), any_addr)
def test_arbitrary_input_only_raises_remote_protocol_error(
    body: bytes, type_: int, rest: int, hop_limit: int, src: bytes
) -> None:
    parse_or_reject(_parse_mld, body, type_, rest, hop_limit, src)


@settings(max_examples=300)
@given(mld_messages, st.data())
def test_cut_and_mutated_messages_only_raise_remote_protocol_error(message: object, data: st.DataObject) -> None:
    frame = bytearray(message.emit(LL1, ALL_NODES))  # type: ignore[attr-defined]
    i = data.draw(st.integers(4, len(frame) - 1))  # not the type
    frame[i] ^= data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(8, len(frame)))
    parse_or_reject(_parse_mld, bytes(frame[8:cut]), frame[0], int.from_bytes(frame[4:8], "big"), 1, LL1)


#### MldListener


class Fixed(random.Random):
    """A Random whose uniform(a, b) is always a + frac * (b - a)."""

    def __init__(self, frac: float) -> None:
        super().__init__(0)
        self.frac = frac

    def uniform(self, a: float, b: float) -> float:
        return a + self.frac * (b - a)


def records_of(reports: list[MldV2Report]) -> list[tuple[int, bytes]]:
    out = []
    for report in reports:
        for rec in report.records:
            assert rec.sources == ()
            out.append((rec.type, rec.group))
    return out


def test_join_reports_at_once_and_repeats_once() -> None:
    lis = MldListener(Fixed(0.5))
    assert records_of(lis.join(MDNS, 10.0)) == [(CHANGE_TO_EXCLUDE, MDNS)]
    assert lis.groups() == {MDNS}
    assert lis.next_deadline() == 10.5
    assert lis.expire(10.4) == []
    assert records_of(lis.expire(10.5)) == [(CHANGE_TO_EXCLUDE, MDNS)]
    assert lis.next_deadline() is None  # robustness 2: sent twice in all
    assert lis.expire(100.0) == []


def test_leave_reports_to_include_at_once_and_repeats_once() -> None:
    lis = MldListener(Fixed(1.0))
    lis.join(SITE, 0.0)
    lis.expire(1.0)
    assert records_of(lis.leave(SITE, 5.0)) == [(CHANGE_TO_INCLUDE, SITE)]
    assert lis.groups() == frozenset()
    assert lis.next_deadline() == 6.0
    assert records_of(lis.expire(6.0)) == [(CHANGE_TO_INCLUDE, SITE)]
    assert lis.next_deadline() is None
    assert lis.leave(SITE, 7.0) == []  # not joined


def test_a_leave_replaces_pending_join_repetitions() -> None:
    lis = MldListener(Fixed(0.5))
    lis.join(MDNS, 0.0)
    assert records_of(lis.leave(MDNS, 0.1)) == [(CHANGE_TO_INCLUDE, MDNS)]
    assert records_of(lis.expire(0.6)) == [(CHANGE_TO_INCLUDE, MDNS)]
    assert lis.next_deadline() is None


def test_joining_twice_reports_once() -> None:
    lis = MldListener(Fixed(0.5))
    assert lis.join(MDNS, 0.0)
    assert lis.join(MDNS, 0.1) == []


def test_repetition_intervals_are_random_within_the_interval() -> None:
    delays = set()
    for seed in range(50):
        lis = MldListener(random.Random(seed), robustness=3)
        lis.join(MDNS, 100.0)
        t1 = lis.next_deadline()
        assert t1 is not None and 100.0 <= t1 <= 101.0
        assert records_of(lis.expire(t1)) == [(CHANGE_TO_EXCLUDE, MDNS)]
        t2 = lis.next_deadline()
        assert t2 is not None and t1 <= t2 <= t1 + 1.0
        assert records_of(lis.expire(t2)) == [(CHANGE_TO_EXCLUDE, MDNS)]
        assert lis.next_deadline() is None
        delays.add(t1)
    assert len(delays) == 50
    # Seeded: the same seed gives the same schedule.
    a, b = MldListener(random.Random(7)), MldListener(random.Random(7))
    a.join(MDNS, 0.0), b.join(MDNS, 0.0)
    assert a.next_deadline() == b.next_deadline()


def test_all_nodes_and_interface_local_groups_are_never_reported() -> None:
    lis = MldListener(Fixed(0.0))
    assert lis.join(ALL_NODES, 0.0) == []
    assert lis.join(a6("ff01::1"), 0.0) == []
    assert lis.join(a6("ff00::1234"), 0.0) == []
    assert lis.next_deadline() is None
    lis.input(MldQuery(max_response_delay=1.0), 1.0)
    assert lis.expire(1.0) == []  # nothing reportable: no empty report
    lis.input(MldQuery(max_response_delay=1.0, group=ALL_NODES), 2.0)
    assert lis.next_deadline() is None
    assert lis.leave(ALL_NODES, 3.0) == []
    lis.join(MDNS, 4.0)
    lis.join(ALL_NODES, 4.0)
    lis.input(MldQuery(), 5.0)
    out = lis.expire(100.0)
    assert ALL_NODES not in {g for _, g in records_of(out)}


def test_a_general_query_draws_one_current_state_report() -> None:
    lis = MldListener(Fixed(0.25), robustness=1)
    for g in (MDNS, SITE, ALL_NODES):
        lis.join(g, 0.0)
    assert lis.next_deadline() is None
    lis.input(MldQuery(max_response_delay=10.0), 1.0)
    assert lis.next_deadline() == 3.5
    assert lis.expire(3.4) == []
    assert records_of(lis.expire(3.5)) == [(MODE_IS_EXCLUDE, MDNS), (MODE_IS_EXCLUDE, SITE)]
    assert lis.next_deadline() is None


def test_one_pending_general_response_the_sooner_wins() -> None:
    lis = MldListener(Fixed(0.5), robustness=1)
    lis.join(MDNS, 0.0)
    lis.input(MldQuery(max_response_delay=10.0), 0.0)  # due 5.0
    lis.input(MldQuery(max_response_delay=20.0), 1.0)  # would be 11.0: the pending one is sooner
    assert lis.next_deadline() == 5.0
    lis.input(MldQuery(max_response_delay=2.0), 2.0)  # 3.0: sooner, replaces it
    assert lis.next_deadline() == 3.0
    assert len(lis.expire(3.0)) == 1
    assert lis.expire(100.0) == []


def test_a_group_specific_query_reports_that_group_only() -> None:
    lis = MldListener(Fixed(0.5), robustness=1)
    lis.join(MDNS, 0.0)
    lis.join(SITE, 0.0)
    lis.input(MldQuery(max_response_delay=4.0, group=SITE), 1.0)  # due 3.0
    lis.input(MldQuery(max_response_delay=10.0, group=SITE), 1.0)  # 6.0: keeps 3.0
    assert lis.next_deadline() == 3.0
    lis.input(MldQuery(max_response_delay=1.0, group=SITE), 2.0)  # 2.5: sooner
    assert records_of(lis.expire(2.5)) == [(MODE_IS_EXCLUDE, SITE)]
    assert lis.next_deadline() is None
    # A query for a group not joined is ignored and counted.
    lis.input(MldQuery(group=a6("ff05::99")), 3.0)
    assert lis.next_deadline() is None
    assert lis.statistics().queries_ignored == 1


def test_a_sooner_general_response_covers_a_group_query() -> None:
    lis = MldListener(Fixed(0.5), robustness=1)
    lis.join(SITE, 0.0)
    lis.input(MldQuery(max_response_delay=2.0), 0.0)  # general, due 1.0
    lis.input(MldQuery(max_response_delay=10.0, group=SITE), 0.0)  # 5.0: not scheduled
    assert records_of(lis.expire(1.0)) == [(MODE_IS_EXCLUDE, SITE)]
    assert lis.next_deadline() is None


def test_a_source_specific_query_is_answered_as_group_specific() -> None:
    lis = MldListener(Fixed(0.0), robustness=1)
    lis.join(SITE, 0.0)
    lis.input(MldQuery(group=SITE, sources=(G1,)), 1.0)
    assert records_of(lis.expire(1.0)) == [(MODE_IS_EXCLUDE, SITE)]


def test_leaving_cancels_a_pending_group_response() -> None:
    lis = MldListener(Fixed(0.5), robustness=1)
    lis.join(SITE, 0.0)
    lis.input(MldQuery(group=SITE, qrv=0), 0.0)  # QRV 0 keeps robustness 1
    assert records_of(lis.leave(SITE, 1.0)) == [(CHANGE_TO_INCLUDE, SITE)]
    assert lis.next_deadline() is None


def test_state_changes_and_responses_due_together_come_in_separate_reports() -> None:
    lis = MldListener(Fixed(0.5))
    lis.join(MDNS, 0.0)  # repeat due 0.5
    lis.input(MldQuery(max_response_delay=1.0), 0.0)  # due 0.5
    out = lis.expire(0.5)
    assert [records_of([r]) for r in out] == [[(CHANGE_TO_EXCLUDE, MDNS)], [(MODE_IS_EXCLUDE, MDNS)]]


def test_a_query_robustness_is_adopted() -> None:
    lis = MldListener(Fixed(0.5))
    lis.input(MldQuery(qrv=3, max_response_delay=0.0), 0.0)
    lis.expire(0.0)
    lis.join(MDNS, 1.0)
    assert len(lis.expire(1.5)) == 1
    assert len(lis.expire(2.0)) == 1
    assert lis.next_deadline() is None
    lis.input(MldQuery(version=1, qrv=0, qqic=0), 3.0)  # MLDv1 and QRV 0 change nothing
    assert lis.robustness == 3


def test_max_groups_is_enforced() -> None:
    lis = MldListener(Fixed(0.5), max_groups=2)
    lis.join(MDNS, 0.0)
    lis.join(SITE, 0.0)
    with pytest.raises(LocalProtocolError, match="max_groups"):
        lis.join(a6("ff05::2"), 0.0)
    assert lis.join(SITE, 0.0) == []  # already joined: fine
    lis.leave(SITE, 0.0)
    assert lis.join(a6("ff05::2"), 0.0)
    with pytest.raises(ValueError):
        lis.join(G1, 0.0)  # not multicast
    with pytest.raises(ValueError):
        lis.join(MDNS[:4], 0.0)


def test_pending_repetitions_are_bounded() -> None:
    lis = MldListener(Fixed(0.5), max_groups=2)
    for i in range(10):
        g = a6(f"ff05::{i + 1:x}")
        lis.join(g, 0.0)
        lis.leave(g, 0.0)
    # 2 * max_groups repetitions pending at most: the oldest leaves' went.
    assert lis.statistics().repetitions_dropped == 6
    assert records_of(lis.expire(0.5)) == [(CHANGE_TO_INCLUDE, a6(f"ff05::{i:x}")) for i in range(7, 11)]
    assert lis.next_deadline() is None


def test_a_large_response_is_split_to_fit_the_minimum_mtu() -> None:
    lis = MldListener(Fixed(0.0), robustness=1)
    groups = [a6(f"ff05::{i + 1:x}") for i in range(100)]
    for g in groups:
        lis.join(g, 0.0)
    lis.input(MldQuery(max_response_delay=1.0), 0.0)
    out = lis.expire(0.0)
    assert [len(r.records) for r in out] == [61, 39]
    assert [g for _, g in records_of(out)] == groups
    assert all(40 + 8 + len(r.emit(LL1)) <= 1280 for r in out)


def test_statistics() -> None:
    lis = MldListener(Fixed(0.0))
    lis.join(MDNS, 0.0)
    lis.join(SITE, 0.0)
    lis.expire(0.0)
    lis.input(MldQuery(), 0.0)
    lis.input(MldQuery(group=a6("ff05::99")), 0.0)
    lis.expire(0.0)
    stats = lis.statistics()
    assert (stats.groups, stats.reports, stats.records, stats.queries, stats.queries_ignored) == (2, 4, 6, 2, 1)


def test_constructor_refuses_bad_settings() -> None:
    for kw in ({"robustness": 0}, {"robustness": 8}, {"unsolicited_report_interval": -1.0}, {"max_groups": 0}):
        with pytest.raises(ValueError):
            MldListener(random.Random(0), **kw)  # type: ignore[arg-type]


groups_pool = st.sampled_from([MDNS, SITE, ALL_NODES, a6("ff01::1"), a6("ff05::2"), a6("ff0e::1")])
operations = st.lists(
    st.tuples(
        st.sampled_from(["join", "leave", "general", "specific", "expire"]),
        groups_pool,
        st.floats(0, 3),
        st.floats(0, 12),
    ),
    max_size=40,
)


@settings(max_examples=200)
@given(st.integers(0, 2**32), operations)
def test_random_schedules_keep_the_rules(seed: int, ops: list[tuple[str, bytes, float, float]]) -> None:
    lis = MldListener(random.Random(seed), max_groups=4)
    now = 0.0
    for op, group, step, delay in ops:
        now += step
        deadline = lis.next_deadline()
        if deadline is not None and deadline < now:
            now = deadline  # the glue never runs late here
        out: list[MldV2Report] = []
        if op == "join":
            try:
                out = lis.join(group, now)
            except LocalProtocolError:
                assert len(lis.groups()) == 4
        elif op == "leave":
            out = lis.leave(group, now)
        elif op == "general":
            lis.input(MldQuery(max_response_delay=delay), now)
            deadline = lis.next_deadline()
            assert deadline is not None and deadline <= now + delay
        elif op == "specific":
            lis.input(MldQuery(max_response_delay=delay, group=group), now)
        else:
            out = lis.expire(now)
        for report in out:
            assert 1 <= len(report.records) <= 61
            for rec in report.records:
                assert rec.group not in (ALL_NODES, a6("ff01::1"))
                if rec.type == MODE_IS_EXCLUDE:
                    assert rec.group in lis.groups()
        deadline = lis.next_deadline()
        assert deadline is None or deadline >= now
    # Left alone, it falls quiet.
    for _ in range(20):
        deadline = lis.next_deadline()
        if deadline is None:
            break
        lis.expire(deadline)
    assert lis.next_deadline() is None
