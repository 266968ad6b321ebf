"""The IPv6 neighbour cache (protocols/nd6.py): RFC 4861 Appendix C row by
row, the timers with explicit ``now``, the bounds, static entries, the
random ReachableTime, and a Hypothesis state machine."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from trionet.protocols.nd6 import (
    DELAY_FIRST_PROBE_TIME,
    MAX_MULTICAST_SOLICIT,
    MAX_RANDOM_FACTOR,
    MAX_UNICAST_SOLICIT,
    MIN_RANDOM_FACTOR,
    REACHABLE_TIME,
    RECOMPUTE_REACHABLE_INTERVAL,
    RETRANS_TIMER,
    Nd6EntryRow,
    Nd6Expiry,
    Nd6Input,
    Nd6Resolution,
    Nd6Statistics,
    NdState,
    NeighborCache,
    Solicit,
)

INCOMPLETE = NdState.INCOMPLETE
REACHABLE = NdState.REACHABLE
STALE = NdState.STALE
DELAY = NdState.DELAY
PROBE = NdState.PROBE
PERMANENT = NdState.PERMANENT


def ip6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def solicited_node(ip: bytes) -> bytes:
    # Independently of the module: RFC 4291 section 2.7.1 in text form.
    low = int.from_bytes(ip[13:], "big")
    return ip6(f"ff02::1:ff{low >> 16:02x}:{low & 0xFFFF:04x}")


IP_B = ip6("fe80::b")
IP_C = ip6("fe80::c")
IP_D = ip6("fe80::d")
IP_E = ip6("fe80::e")
MAC_B = bytes.fromhex("020000000002")
MAC_C = bytes.fromhex("020000000003")
MULTICAST_NS_B = Solicit(IP_B, solicited_node(IP_B), None)
UNICAST_NS_B = Solicit(IP_B, IP_B, MAC_B)


def test_constants_are_those_of_rfc_4861_section_10() -> None:
    assert (MAX_MULTICAST_SOLICIT, MAX_UNICAST_SOLICIT) == (3, 3)
    assert (RETRANS_TIMER, DELAY_FIRST_PROBE_TIME, REACHABLE_TIME) == (1.0, 5.0, 30.0)
    assert (MIN_RANDOM_FACTOR, MAX_RANDOM_FACTOR) == (0.5, 1.5)


def test_the_solicitation_goes_to_the_solicited_node_group() -> None:
    cache = NeighborCache()
    target = ip6("2001:db8::1:2345:6789")
    result = cache.resolve(target, "p", 0.0)
    assert result == Nd6Resolution(solicit=Solicit(target, ip6("ff02::1:ff45:6789"), None))
    assert "2001:db8::1:2345:6789" in repr(result) and "ff02::1:ff45:6789" in repr(result)


#### RFC 4861 Appendix C, as data
#
# Each row is one line of Appendix C: the state the entry starts in, the
# event, the state it ends in and the MAC it then has, and a check of what
# the cache asked the glue to do. "!INCOMPLETE" rows run from each of
# REACHABLE, STALE, DELAY and PROBE. Where Appendix C (a summary) is less
# precise than the normative text, the row follows the text and says so:
# - section 7.2.5 case I: Override clear and a different TLLA turns a
#   REACHABLE entry STALE whatever the Solicited flag, and is ignored in the
#   other states;
# - section 7.2.5 case II b: a Solicited NA without TLLA makes the entry
#   REACHABLE (Appendix C's "no link-layer address" row shows only IsRouter);
# - section 7.3.3: "STALE, send queued packets" is STALE, then DELAY, since
#   the queued packets are sent to a STALE entry (DragonFly's nd6_output).

GONE = "gone"  # the entry was deleted
SAME = "unchanged"


def _enter(label: str) -> tuple[NeighborCache, float]:
    """A cache whose entry for IP_B (MAC_B, not a router) is in ``label``,
    and the time of the last step."""
    cache = NeighborCache(rng=random.Random(1))
    if label == "-":
        return cache, 0.0
    if label.startswith("INCOMPLETE"):
        cache.resolve(IP_B, "q", 0.0)
        if label == "INCOMPLETE, N sent":
            cache.expire(1.0)
            cache.expire(2.0)
            return cache, 2.0
        return cache, 0.0
    cache.lladdr_input(IP_B, MAC_B, 0.0)
    if label == "STALE":
        return cache, 0.0
    if label == "REACHABLE":
        cache.confirm(IP_B, 0.0)
        return cache, 0.0
    cache.resolve(IP_B, "x", 0.0)
    if label == "DELAY":
        return cache, 0.0
    cache.expire(5.0)
    if label == "PROBE":
        return cache, 5.0
    assert label == "PROBE, N sent"
    cache.expire(6.0)
    cache.expire(7.0)
    return cache, 7.0


START_STATE = {
    "-": None,
    "INCOMPLETE": INCOMPLETE,
    "INCOMPLETE, N sent": INCOMPLETE,
    "REACHABLE": REACHABLE,
    "STALE": STALE,
    "DELAY": DELAY,
    "PROBE": PROBE,
    "PROBE, N sent": PROBE,
}
NOT_INCOMPLETE = ("REACHABLE", "STALE", "DELAY", "PROBE")

Event = Callable[[NeighborCache, float], object]


def send(cache: NeighborCache, now: float) -> object:
    return cache.resolve(IP_B, "q" if cache.state(IP_B) is None else "new", now)


def timeout(cache: NeighborCache, now: float) -> object:
    deadline = cache.next_deadline()
    assert deadline is not None
    return cache.expire(deadline)


def confirm(cache: NeighborCache, now: float) -> object:
    return cache.confirm(IP_B, now)


def na(*, s: bool, o: bool, tlla: bytes | None, r: bool = False) -> Event:
    def event(cache: NeighborCache, now: float) -> object:
        return cache.na_input(IP_B, tlla=tlla, router=r, solicited=s, override=o, now=now)

    event.__name__ = f"NA(S={int(s)},O={int(o)},TLLA={'none' if tlla is None else tlla.hex()[-1]})"
    return event


def option(message: str, mac: bytes | None) -> Event:
    # A link-layer address option in an NS, RS, RA or Redirect (to a router).
    is_router = {"NS": None, "RS": False, "RA": True, "Redirect": True}[message]

    def event(cache: NeighborCache, now: float) -> object:
        return cache.lladdr_input(IP_B, mac, now, is_router=is_router)

    event.__name__ = f"{message}({'none' if mac is None else mac.hex()[-1]})"
    return event


def multicast_ns(result: object) -> bool:
    solicits = result.solicits if isinstance(result, Nd6Expiry) else (result.solicit,)  # type: ignore[attr-defined]
    return solicits == (MULTICAST_NS_B,)


def unicast_ns(result: object) -> bool:
    return result == Nd6Expiry(solicits=(UNICAST_NS_B,))


def failed(result: object) -> bool:
    return result == Nd6Expiry(failed=((IP_B, ("q",)),))


def unreachable(result: object) -> bool:
    return result == Nd6Expiry(unreachable=(IP_B,))


def sent_to_mac(result: object) -> bool:
    return result == Nd6Resolution(mac=MAC_B)


def released(mac: bytes) -> Callable[[object], bool]:
    def check(result: object) -> bool:
        return isinstance(result, Nd6Input) and result.released == ((mac, "q"),) and result.reason is None

    return check


def accepted(result: object) -> bool:
    return result in (Nd6Input(), Nd6Expiry(), True)


def ignored(reason: str) -> Callable[[object], bool]:
    def check(result: object) -> bool:
        return result == Nd6Input(reason=reason)

    return check


@attrs.frozen
class Row:
    start: str | tuple[str, ...]
    event: Event
    new: NdState | str  # a state, GONE or SAME
    mac: bytes | None  # the cached MAC afterwards (ignored if GONE)
    check: Callable[[object], bool]


def _na_rows() -> list[Row]:
    rows = []
    for s in (False, True):
        for o in (False, True):
            # INCOMPLETE, NA with a TLLA: record it, send queued packets.
            rows.append(Row("INCOMPLETE", na(s=s, o=o, tlla=MAC_B), REACHABLE if s else DELAY, MAC_B, released(MAC_B)))
            # !INCOMPLETE, NA without a TLLA: IsRouter (7.2.5 II b: S=1 -> REACHABLE).
            rows.append(Row(NOT_INCOMPLETE, na(s=s, o=o, tlla=None), REACHABLE if s else SAME, MAC_B, accepted))
        # !INCOMPLETE, Override clear, a different address (7.2.5 case I).
        rows.append(Row("REACHABLE", na(s=s, o=False, tlla=MAC_C), STALE, MAC_B, accepted))
        rows.append(
            Row(("STALE", "DELAY", "PROBE"), na(s=s, o=False, tlla=MAC_C), SAME, MAC_B, ignored("lladdr_differs"))
        )
    return rows


APPENDIX_C: list[Row] = [
    Row("-", send, INCOMPLETE, None, multicast_ns),
    Row("INCOMPLETE", timeout, INCOMPLETE, None, multicast_ns),  # fewer than N sent
    Row("INCOMPLETE, N sent", timeout, GONE, None, failed),  # the glue sends the ICMP error
    *_na_rows(),
    Row(NOT_INCOMPLETE, na(s=True, o=False, tlla=MAC_B), REACHABLE, MAC_B, accepted),
    Row(NOT_INCOMPLETE, na(s=True, o=True, tlla=MAC_C), REACHABLE, MAC_C, accepted),
    Row(NOT_INCOMPLETE, na(s=True, o=True, tlla=MAC_B), REACHABLE, MAC_B, accepted),
    Row(NOT_INCOMPLETE, na(s=False, o=False, tlla=MAC_B), SAME, MAC_B, accepted),
    Row(NOT_INCOMPLETE, na(s=False, o=True, tlla=MAC_C), STALE, MAC_C, accepted),
    Row(NOT_INCOMPLETE, na(s=False, o=True, tlla=MAC_B), SAME, MAC_B, accepted),
    Row(NOT_INCOMPLETE, confirm, REACHABLE, MAC_B, lambda result: result is True),
    Row("REACHABLE", timeout, STALE, MAC_B, accepted),
    Row("STALE", send, DELAY, MAC_B, sent_to_mac),
    Row("DELAY", timeout, PROBE, MAC_B, unicast_ns),
    Row("PROBE", timeout, PROBE, MAC_B, unicast_ns),  # fewer than N sent
    Row("PROBE, N sent", timeout, GONE, None, unreachable),
    *[
        row
        for message in ("NS", "RS", "RA", "Redirect")
        for row in (
            Row("-", option(message, MAC_B), STALE, MAC_B, accepted),
            Row("INCOMPLETE", option(message, MAC_B), DELAY, MAC_B, released(MAC_B)),
            Row(NOT_INCOMPLETE, option(message, MAC_C), STALE, MAC_C, lambda r: isinstance(r, Nd6Input) and not r.reason),
            Row(NOT_INCOMPLETE, option(message, MAC_B), SAME, MAC_B, lambda r: isinstance(r, Nd6Input) and not r.reason),
        )
    ],
    # INCOMPLETE, NS or RS without a link-layer address: unchanged.
    Row("INCOMPLETE", option("NS", None), SAME, None, accepted),
    Row("INCOMPLETE", option("RS", None), SAME, None, accepted),
]

CASES = [
    pytest.param(start, row, id=f"{start}--{row.event.__name__}")
    for row in APPENDIX_C
    for start in (row.start if isinstance(row.start, tuple) else (row.start,))
]


@pytest.mark.parametrize(("start", "row"), CASES)
def test_appendix_c_transition(start: str, row: Row) -> None:
    cache, last = _enter(start)
    assert cache.state(IP_B) is START_STATE[start]
    result = row.event(cache, last + 0.25)
    assert row.check(result), result
    state = cache.state(IP_B)
    if row.new == GONE:
        assert state is None
        assert cache.entries() == []
        return
    assert state is (START_STATE[start] if row.new == SAME else row.new)
    assert cache.lookup(IP_B) == row.mac
    (entry,) = cache.entries()
    assert (entry.state, entry.mac) == (state, row.mac)


def test_appendix_c_covers_every_state() -> None:
    starts = {s for row in APPENDIX_C for s in (row.start if isinstance(row.start, tuple) else (row.start,))}
    ends = {row.new for row in APPENDIX_C}
    assert {START_STATE[s] for s in starts} == {None, INCOMPLETE, REACHABLE, STALE, DELAY, PROBE}
    assert {INCOMPLETE, REACHABLE, STALE, DELAY, PROBE, GONE, SAME} <= ends


#### Section 7.2.5 details


def test_an_na_never_creates_an_entry() -> None:
    cache = NeighborCache()
    assert cache.na_input(IP_B, tlla=MAC_B, router=True, solicited=True, override=True, now=0.0) == Nd6Input(
        reason="no_entry"
    )
    assert cache.entries() == []
    assert cache.statistics().ignored == 1


def test_an_incomplete_entry_ignores_an_na_without_tlla() -> None:
    cache = NeighborCache()
    cache.resolve(IP_B, "q", 0.0)
    result = cache.na_input(IP_B, tlla=None, router=False, solicited=True, override=True, now=0.1)
    assert result == Nd6Input(reason="no_lladdr")
    assert cache.state(IP_B) is INCOMPLETE
    assert cache.entries()[0].held == 1


def test_a_solicited_na_completes_and_releases_in_order() -> None:
    cache = NeighborCache(rng=random.Random(3))
    for i, now in enumerate((0.0, 0.1, 0.2)):
        cache.resolve(IP_B, f"p{i}", now)
    result = cache.na_input(IP_B, tlla=MAC_B, router=True, solicited=True, override=False, now=0.5)
    assert result == Nd6Input(released=((MAC_B, "p0"), (MAC_B, "p1"), (MAC_B, "p2")))
    assert cache.entries() == [
        Nd6EntryRow(IP_B, MAC_B, REACHABLE, True, 0.5 + cache.current_reachable_time)
    ]
    assert cache.resolve(IP_B, "p3", 0.6) == Nd6Resolution(mac=MAC_B)
    assert cache.statistics().resolved == 1


def test_case_i_leaves_isrouter_alone() -> None:
    cache, now = _enter("REACHABLE")
    cache.na_input(IP_B, tlla=MAC_B, router=True, solicited=True, override=False, now=1.0)
    result = cache.na_input(IP_B, tlla=MAC_C, router=False, solicited=True, override=False, now=2.0)
    assert result == Nd6Input()  # not router_lost: the NA is otherwise ignored
    assert cache.entries()[0].is_router
    assert cache.state(IP_B) is STALE


def test_router_lost_when_isrouter_falls() -> None:
    cache, now = _enter("STALE")
    assert cache.na_input(IP_B, tlla=None, router=True, solicited=False, override=False, now=1.0) == Nd6Input()
    assert cache.entries()[0].is_router
    result = cache.na_input(IP_B, tlla=None, router=False, solicited=False, override=False, now=2.0)
    assert result == Nd6Input(router_lost=True)
    # An RS from a router also clears it (6.2.6); an NS leaves it (7.2.3).
    cache.lladdr_input(IP_B, None, 3.0, is_router=True)  # an RA without SLLA
    assert cache.lladdr_input(IP_B, MAC_B, 4.0) == Nd6Input()
    assert cache.entries()[0].is_router
    assert cache.lladdr_input(IP_B, None, 5.0, is_router=False) == Nd6Input(router_lost=True)
    assert cache.statistics().routers_lost == 2


def test_a_router_completing_an_incomplete_entry_is_marked() -> None:
    cache = NeighborCache()
    cache.resolve(IP_B, "q", 0.0)
    result = cache.lladdr_input(IP_B, MAC_B, 0.5, is_router=True)  # an RA with SLLA
    assert result == Nd6Input(released=((MAC_B, "q"),))
    assert cache.entries() == [Nd6EntryRow(IP_B, MAC_B, DELAY, True, 5.5)]


def test_new_entries_from_an_ns_are_not_routers() -> None:
    cache = NeighborCache()
    cache.lladdr_input(IP_B, MAC_B, 0.0)
    cache.lladdr_input(IP_C, MAC_C, 0.0, is_router=True)
    assert [(row.ip, row.is_router) for row in cache.entries()] == [(IP_B, False), (IP_C, True)]
    assert cache.statistics().learned == 2


def test_an_option_without_address_for_an_unknown_neighbour_is_ignored() -> None:
    cache = NeighborCache()
    assert cache.lladdr_input(IP_B, None, 0.0, is_router=True) == Nd6Input(reason="no_entry")
    assert cache.entries() == []


@pytest.mark.parametrize(
    ("target", "tlla", "reason"),
    [
        (IP_B[:15], MAC_B, "bad_address"),
        (ip6("ff02::1"), MAC_B, "bad_address"),
        (bytes(16), MAC_B, "bad_address"),
        (IP_B, MAC_B[:5], "bad_lladdr"),
        (IP_B, b"\x01\x00\x5e\x00\x00\x01", "bad_lladdr"),
        (IP_B, b"\xff" * 6, "bad_lladdr"),
    ],
)
def test_bad_values_from_the_network_are_ignored(target: bytes, tlla: bytes, reason: str) -> None:
    cache = NeighborCache()
    cache.resolve(IP_B, "q", 0.0)
    assert cache.na_input(target, tlla=tlla, router=False, solicited=True, override=True, now=0.1) == Nd6Input(
        reason=reason
    )
    assert cache.lladdr_input(target, tlla, 0.1) == Nd6Input(reason=reason)
    assert cache.state(IP_B) is INCOMPLETE
    assert cache.statistics().ignored == 2


def test_network_values_may_be_views() -> None:
    cache = NeighborCache()
    cache.resolve(IP_B, "q", 0.0)
    frame = bytearray(IP_B + MAC_B)
    view = memoryview(frame)
    result = cache.na_input(view[:16], tlla=view[16:], router=False, solicited=True, override=False, now=0.1)
    assert result.released == ((MAC_B, "q"),)
    assert type(result.released[0][0]) is bytes
    frame[16] = 0x0E  # the cache kept no view into the frame
    assert cache.lookup(IP_B) == MAC_B


#### Timers, with explicit now


def test_incomplete_gives_up_after_three_solicitations_one_second_apart() -> None:
    cache = NeighborCache()
    assert cache.resolve(IP_B, "p0", 0.0) == Nd6Resolution(solicit=MULTICAST_NS_B)
    assert cache.resolve(IP_B, "p1", 0.5) == Nd6Resolution()
    assert cache.next_deadline() == 1.0
    assert cache.expire(0.99) == Nd6Expiry()
    assert cache.expire(1.0) == Nd6Expiry(solicits=(MULTICAST_NS_B,))
    assert cache.next_deadline() == 2.0
    assert cache.expire(2.0) == Nd6Expiry(solicits=(MULTICAST_NS_B,))
    assert cache.expire(2.99) == Nd6Expiry()
    assert cache.expire(3.0) == Nd6Expiry(failed=((IP_B, ("p0", "p1")),))
    assert cache.next_deadline() is None
    assert cache.entries() == []
    stats = cache.statistics()
    assert (stats.multicast_solicits, stats.failed) == (3, 1)
    # A later packet starts over.
    assert cache.resolve(IP_B, "p2", 10.0).solicit == MULTICAST_NS_B


def test_stale_delay_probe_then_deletion() -> None:
    cache = NeighborCache()
    cache.lladdr_input(IP_B, MAC_B, 0.0)
    assert cache.resolve(IP_B, "p", 100.0) == Nd6Resolution(mac=MAC_B)
    assert cache.state(IP_B) is DELAY
    assert cache.next_deadline() == 105.0
    assert cache.resolve(IP_B, "p", 101.0) == Nd6Resolution(mac=MAC_B)  # DELAY: no new timer
    assert cache.next_deadline() == 105.0
    assert cache.expire(104.9) == Nd6Expiry()
    assert cache.expire(105.0) == Nd6Expiry(solicits=(UNICAST_NS_B,))
    assert cache.state(IP_B) is PROBE
    assert cache.resolve(IP_B, "p", 105.5) == Nd6Resolution(mac=MAC_B)  # PROBE still sends
    assert cache.expire(106.0) == Nd6Expiry(solicits=(UNICAST_NS_B,))
    assert cache.expire(107.0) == Nd6Expiry(solicits=(UNICAST_NS_B,))
    assert cache.expire(107.5) == Nd6Expiry()
    assert cache.expire(108.0) == Nd6Expiry(unreachable=(IP_B,))
    assert cache.lookup(IP_B) is None and cache.next_deadline() is None
    stats = cache.statistics()
    assert (stats.unicast_solicits, stats.unreachable) == (3, 1)


def test_a_confirmation_in_delay_spares_the_probe() -> None:
    cache, _ = _enter("DELAY")
    assert cache.confirm(IP_B, 3.0)
    assert cache.expire(5.0) == Nd6Expiry()
    assert cache.state(IP_B) is REACHABLE
    assert cache.next_deadline() == 3.0 + cache.current_reachable_time


def test_a_solicited_na_ends_probing() -> None:
    cache, _ = _enter("PROBE")
    cache.na_input(IP_B, tlla=MAC_B, router=False, solicited=True, override=False, now=5.5)
    assert cache.expire(100.0) == Nd6Expiry()  # REACHABLE -> STALE only
    assert cache.state(IP_B) is STALE


def test_reachable_turns_stale_lazily_on_use() -> None:
    cache, _ = _enter("REACHABLE")
    limit = cache.current_reachable_time
    assert cache.resolve(IP_B, "p", limit - 0.01) == Nd6Resolution(mac=MAC_B)
    assert cache.state(IP_B) is REACHABLE
    # expire() has not run: resolve sees the entry is past ReachableTime.
    assert cache.resolve(IP_B, "p", limit) == Nd6Resolution(mac=MAC_B)
    assert cache.state(IP_B) is DELAY
    assert cache.next_deadline() == limit + DELAY_FIRST_PROBE_TIME


def test_reachable_turns_stale_then_is_collected() -> None:
    cache = NeighborCache(gc_stale_time=600.0)
    cache.lladdr_input(IP_B, MAC_B, 0.0)
    cache.confirm(IP_B, 10.0)
    limit = 10.0 + cache.current_reachable_time
    assert cache.next_deadline() == limit
    assert cache.expire(limit) == Nd6Expiry()
    assert cache.entries() == [Nd6EntryRow(IP_B, MAC_B, STALE, False, limit + 600.0)]
    assert cache.lookup(IP_B) == MAC_B  # STALE still has its MAC
    assert cache.expire(limit + 599.0) == Nd6Expiry()
    assert cache.expire(limit + 600.0) == Nd6Expiry(collected=(IP_B,))
    assert cache.entries() == [] and cache.statistics().collected == 1


def test_expire_handles_several_entries_in_deadline_order() -> None:
    cache = NeighborCache()
    cache.resolve(IP_B, "b", 0.0)
    cache.resolve(IP_C, "c", 0.5)
    cache.lladdr_input(IP_D, MAC_C, 0.0)
    cache.resolve(IP_D, "d", 0.2)  # DELAY until 5.2
    assert cache.expire(1.5) == Nd6Expiry(solicits=(MULTICAST_NS_B, Solicit(IP_C, solicited_node(IP_C))))
    assert cache.next_deadline() == 2.5
    # Late: each entry takes one step, rescheduled from now.
    assert cache.expire(5.5) == Nd6Expiry(
        solicits=(MULTICAST_NS_B, Solicit(IP_C, solicited_node(IP_C)), Solicit(IP_D, IP_D, MAC_C))
    )
    assert cache.next_deadline() == 6.5
    assert cache.expire(6.5) == Nd6Expiry(
        solicits=(Solicit(IP_D, IP_D, MAC_C),), failed=((IP_B, ("b",)), (IP_C, ("c",)))
    )


def test_a_late_expire_does_everything_due_once() -> None:
    cache = NeighborCache()
    cache.resolve(IP_B, "b", 0.0)
    cache.lladdr_input(IP_C, MAC_C, 0.0)
    cache.resolve(IP_C, "c", 0.0)
    result = cache.expire(1000.0)
    # One step per call: a retransmission for B, the first probe for C.
    assert result == Nd6Expiry(solicits=(MULTICAST_NS_B, Solicit(IP_C, IP_C, MAC_C)))
    assert all(row.expires == 1001.0 for row in cache.entries())


#### ReachableTime (RFC 4861 section 6.3.2)


@pytest.mark.parametrize("seed", range(50))
def test_reachable_time_is_randomised_within_half_to_one_and_a_half_base(seed: int) -> None:
    cache = NeighborCache(rng=random.Random(seed))
    assert 15.0 <= cache.current_reachable_time <= 45.0
    cache.lladdr_input(IP_B, MAC_B, 0.0)
    cache.confirm(IP_B, 1.0)
    assert cache.entries()[0].expires == 1.0 + cache.current_reachable_time


def test_reachable_time_differs_between_caches_and_is_seeded() -> None:
    values = {NeighborCache(rng=random.Random(seed)).current_reachable_time for seed in range(20)}
    assert len(values) == 20
    assert NeighborCache(rng=random.Random(5)).current_reachable_time == NeighborCache(
        rng=random.Random(5)
    ).current_reachable_time
    assert NeighborCache().current_reachable_time == NeighborCache(rng=random.Random(0)).current_reachable_time


def test_reachable_time_is_drawn_again_every_few_hours() -> None:
    cache = NeighborCache(rng=random.Random(2))
    cache.lladdr_input(IP_B, MAC_B, 0.0)
    first = cache.current_reachable_time
    cache.confirm(IP_B, 0.0)
    cache.confirm(IP_B, RECOMPUTE_REACHABLE_INTERVAL - 1.0)
    assert cache.current_reachable_time == first
    cache.confirm(IP_B, RECOMPUTE_REACHABLE_INTERVAL)
    second = cache.current_reachable_time
    assert second != first and 15.0 <= second <= 45.0
    assert cache.entries()[0].expires == RECOMPUTE_REACHABLE_INTERVAL + second


def test_a_new_base_from_an_ra_draws_again_and_caps_reachable_entries() -> None:
    cache = NeighborCache(rng=random.Random(4))
    for ip, mac in ((IP_B, MAC_B), (IP_C, MAC_C)):
        cache.lladdr_input(ip, mac, 0.0)
        cache.confirm(ip, 0.0)
    cache.set_base_reachable_time(30.0, 1.0)  # unchanged: no draw
    old = cache.current_reachable_time
    cache.set_base_reachable_time(2.0, 1.0)
    assert cache.reachable_time == 2.0
    new = cache.current_reachable_time
    assert new != old and 1.0 <= new <= 3.0
    assert [row.expires for row in cache.entries()] == [1.0 + new, 1.0 + new]
    # Entries confirmed later stay behind them (rule 7).
    cache.lladdr_input(IP_D, MAC_B, 1.5)
    cache.confirm(IP_D, 1.5)
    assert cache.next_deadline() == 1.0 + new
    assert cache.expire(1.0 + new) == Nd6Expiry()
    assert [row.state for row in cache.entries()] == [STALE, STALE, REACHABLE]
    with pytest.raises(ValueError, match="positive"):
        cache.set_base_reachable_time(0.0, 2.0)


def test_a_new_retrans_timer_caps_pending_solicitations() -> None:
    cache = NeighborCache(retrans_timer=4.0)
    cache.resolve(IP_B, "b", 0.0)
    cache.set_retrans_timer(1.0, 2.0)
    assert cache.next_deadline() == 3.0
    cache.resolve(IP_C, "c", 2.5)
    assert [row.expires for row in cache.entries()] == [3.0, 3.5]
    with pytest.raises(ValueError):
        cache.set_retrans_timer(-1.0, 3.0)


def test_timer_parameters_are_read_only() -> None:
    cache = NeighborCache()
    with pytest.raises(attrs.exceptions.FrozenAttributeError):
        cache.reachable_time = 10.0  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenAttributeError):
        cache.retrans_timer = 10.0  # type: ignore[misc]


#### Bounds


def test_the_hold_queue_is_bounded_and_drops_the_oldest() -> None:
    cache = NeighborCache(max_pending=2)
    cache.resolve(IP_B, "p0", 0.0)
    assert cache.resolve(IP_B, "p1", 0.0) == Nd6Resolution()
    assert cache.resolve(IP_B, "p2", 0.0) == Nd6Resolution(dropped=("p0",))
    assert cache.resolve(IP_B, "p3", 0.0) == Nd6Resolution(dropped=("p1",))
    assert cache.entries()[0].held == 2
    result = cache.na_input(IP_B, tlla=MAC_B, router=False, solicited=True, override=False, now=0.1)
    assert result.released == ((MAC_B, "p2"), (MAC_B, "p3"))
    assert cache.statistics().dropped_overflow == 2


def test_eviction_takes_the_oldest_stale_entry_first() -> None:
    cache = NeighborCache(max_entries=3)
    cache.add_static(IP_E, MAC_C)  # statics do not count
    cache.lladdr_input(IP_B, MAC_B, 0.0)  # STALE
    cache.lladdr_input(IP_C, MAC_C, 1.0)  # STALE, younger
    cache.resolve(IP_D, "d", 2.0)  # INCOMPLETE
    assert cache.resolve(ip6("fe80::1"), "p", 3.0) == Nd6Resolution(solicit=Solicit(ip6("fe80::1"), solicited_node(ip6("fe80::1"))))
    assert cache.state(IP_B) is None
    assert cache.state(IP_C) is STALE
    assert cache.state(IP_E) is PERMANENT
    assert cache.statistics().evicted == 1


def test_eviction_then_takes_the_oldest_incomplete_entry_with_its_packets() -> None:
    cache = NeighborCache(max_entries=2)
    cache.resolve(IP_B, "b0", 0.0)
    cache.resolve(IP_B, "b1", 0.1)
    cache.resolve(IP_C, "c0", 0.2)
    result = cache.resolve(IP_D, "d0", 0.3)
    assert result == Nd6Resolution(solicit=Solicit(IP_D, solicited_node(IP_D)), evicted=("b0", "b1"))
    assert [row.ip for row in cache.entries()] == [IP_C, IP_D]
    # A link-layer option creating an entry evicts too.
    assert cache.lladdr_input(IP_B, MAC_B, 0.4) == Nd6Input(evicted=("c0",))
    stats = cache.statistics()
    assert (stats.evicted, stats.dropped_evicted) == (2, 3)


def test_entries_in_use_are_never_evicted() -> None:
    cache = NeighborCache(max_entries=2)
    cache.lladdr_input(IP_B, MAC_B, 0.0)
    cache.confirm(IP_B, 0.0)  # REACHABLE
    cache.lladdr_input(IP_C, MAC_C, 0.0)
    cache.resolve(IP_C, "c", 0.0)  # DELAY
    assert cache.resolve(IP_D, "d", 1.0) == Nd6Resolution(dropped=("d",))
    assert cache.lladdr_input(IP_D, MAC_B, 1.0) == Nd6Input(reason="table_full")
    assert [row.ip for row in cache.entries()] == [IP_B, IP_C]
    assert cache.statistics().dropped_table_full == 1
    # Once one is no longer in use, there is room again.
    cache.expire(cache.current_reachable_time)
    assert cache.resolve(IP_D, "d", 50.0).solicit is not None


#### Static entries


def test_static_entries_are_never_aged_or_overwritten() -> None:
    cache = NeighborCache()
    cache.resolve(IP_B, "p0", 0.0)
    assert cache.add_static(IP_B, MAC_B, is_router=True) == ("p0",)  # now sendable
    assert cache.resolve(IP_B, "p1", 1.0) == Nd6Resolution(mac=MAC_B)
    for result in (
        cache.na_input(IP_B, tlla=MAC_C, router=False, solicited=True, override=True, now=2.0),
        cache.lladdr_input(IP_B, MAC_C, 2.0, is_router=False),
    ):
        assert result == Nd6Input(reason="static")
    assert not cache.confirm(IP_B, 2.0)
    assert cache.next_deadline() is None
    assert cache.expire(1e9) == Nd6Expiry()
    assert cache.entries() == [Nd6EntryRow(IP_B, MAC_B, PERMANENT, True, None)]
    assert cache.statistics().permanent == 1 and cache.statistics().entries == 0
    assert cache.remove(IP_B)
    assert not cache.remove(IP_B)
    assert cache.lookup(IP_B) is None


def test_add_static_validates() -> None:
    cache = NeighborCache()
    with pytest.raises(ValueError, match="unicast MAC"):
        cache.add_static(IP_B, b"\xff" * 6)
    with pytest.raises(ValueError, match="16 bytes"):
        cache.add_static(IP_B[:4], MAC_B)


def test_remove_counts_the_waiting_packets() -> None:
    cache = NeighborCache()
    cache.resolve(IP_B, "p0", 0.0)
    cache.resolve(IP_B, "p1", 0.0)
    assert cache.remove(IP_B)
    assert cache.statistics().dropped_removed == 2
    assert cache.next_deadline() is None


#### The glue's own addresses


@pytest.mark.parametrize(
    ("ip", "match"),
    [(bytes(4), "16 bytes"), (ip6("ff02::1"), "multicast"), (bytes(16), "unspecified")],
)
def test_the_glues_addresses_must_be_unicast(ip: bytes, match: str) -> None:
    cache = NeighborCache()
    for call in (
        lambda: cache.resolve(ip, "p", 0.0),
        lambda: cache.lookup(ip),
        lambda: cache.state(ip),
        lambda: cache.confirm(ip, 0.0),
        lambda: cache.remove(ip),
        lambda: cache.add_static(ip, MAC_B),
    ):
        with pytest.raises(ValueError, match=match):
            call()
    assert cache.entries() == []


def test_constructor_validates() -> None:
    for kwargs in (
        {"max_entries": 0},
        {"max_pending": 0},
        {"reachable_time": 0},
        {"retrans_timer": -1.0},
        {"gc_stale_time": 0.0},
        {"retrans_timer": float("nan")},
    ):
        with pytest.raises(ValueError):
            NeighborCache(**kwargs)  # type: ignore[arg-type]


def test_statistics_is_a_frozen_value() -> None:
    stats = NeighborCache().statistics()
    assert stats == Nd6Statistics()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        stats.failed = 1  # type: ignore[misc]


def test_the_hot_path_allocates_nothing_for_a_reachable_entry() -> None:
    cache, _ = _enter("REACHABLE")
    first = cache.resolve(IP_B, "p", 1.0)
    assert cache.resolve(IP_B, "p", 2.0) is first
    assert cache.lookup(IP_B) is cache.lookup(IP_B)


#### Hypothesis: a random walk through the machine

IPS = [ip6(f"fe80::{i}") for i in range(1, 7)]
MACS = [bytes([2, 0, 0, 0, 0, i]) for i in range(1, 4)]
MAX_ENTRIES = 4
MAX_PENDING = 3


class NeighborCacheMachine(RuleBasedStateMachine):
    """Interleaves every input with an increasing ``now`` and keeps a model
    of the packets: each is sent at once, or waits, and each waiting packet
    leaves exactly once (released, failed, dropped, evicted, removed, or
    handed back by add_static)."""

    def __init__(self) -> None:
        super().__init__()
        self.cache = NeighborCache(
            max_entries=MAX_ENTRIES, max_pending=MAX_PENDING, gc_stale_time=60.0, rng=random.Random(7)
        )
        self.now = 0.0
        self.packets = 0
        self.waiting: dict[bytes, list[int]] = {ip: [] for ip in IPS}
        self.owner: dict[int, bytes] = {}
        self.gone: set[int] = set()
        self.dropped = 0
        self.just_expired = False

    def _leave(self, packet: object) -> None:
        assert isinstance(packet, int) and packet not in self.gone, packet
        self.gone.add(packet)
        self.waiting[self.owner.pop(packet)].remove(packet)

    def _take_input(self, ip: bytes, result: Nd6Input) -> None:
        if result.released:
            assert [p for _, p in result.released] == self.waiting[ip]
            assert len({mac for mac, _ in result.released}) == 1
            for _, packet in result.released:
                self._leave(packet)
        self._take_evicted(result.evicted)

    def _take_evicted(self, evicted: tuple[object, ...]) -> None:
        if evicted:
            owner = self.owner[evicted[0]]  # type: ignore[index]
            assert list(evicted) == self.waiting[owner]
            for packet in evicted:
                self._leave(packet)
            self.dropped += len(evicted)

    @rule(dt=st.sampled_from([0.0, 0.1, 0.5, 1.0, 2.5, 5.0, 20.0, 70.0]))
    def tick(self, dt: float) -> None:
        self.now += dt
        self.just_expired = False

    @rule(ip=st.sampled_from(IPS))
    def resolve(self, ip: bytes) -> None:
        before = self.cache.state(ip)
        packet = self.packets
        self.packets += 1
        result = self.cache.resolve(ip, packet, self.now)
        if result.mac is not None:
            assert before not in (None, INCOMPLETE)
            assert result == Nd6Resolution(mac=self.cache.lookup(ip))
            self.gone.add(packet)
            return
        assert before in (None, INCOMPLETE)
        if before is None and result.dropped != (packet,):
            assert result.solicit == Solicit(ip, solicited_node(ip))
        else:
            assert result.solicit is None
        if before is INCOMPLETE:
            # Queued; a full queue pushes out its oldest packet.
            full = len(self.waiting[ip]) >= MAX_PENDING
            assert result.dropped == ((self.waiting[ip][0],) if full else ())
        self.waiting[ip].append(packet)
        self.owner[packet] = ip
        for dropped in result.dropped:
            self._leave(dropped)
        self.dropped += len(result.dropped)
        self._take_evicted(result.evicted)

    @rule(
        ip=st.sampled_from(IPS),
        tlla=st.sampled_from([None, *MACS]),
        router=st.booleans(),
        solicited=st.booleans(),
        override=st.booleans(),
    )
    def na(self, ip: bytes, tlla: bytes | None, router: bool, solicited: bool, override: bool) -> None:
        result = self.cache.na_input(
            ip, tlla=tlla, router=router, solicited=solicited, override=override, now=self.now
        )
        assert not result.evicted
        self._take_input(ip, result)

    @rule(ip=st.sampled_from(IPS), mac=st.sampled_from([None, *MACS]), is_router=st.sampled_from([None, False, True]))
    def lladdr(self, ip: bytes, mac: bytes | None, is_router: bool | None) -> None:
        self._take_input(ip, self.cache.lladdr_input(ip, mac, self.now, is_router=is_router))

    @rule(ip=st.sampled_from(IPS))
    def confirm(self, ip: bytes) -> None:
        before = self.cache.state(ip)
        confirmed = self.cache.confirm(ip, self.now)
        assert confirmed == (before in (REACHABLE, STALE, DELAY, PROBE))
        if confirmed:
            assert self.cache.state(ip) is REACHABLE

    @rule()
    def expire(self) -> None:
        result = self.cache.expire(self.now)
        for ip, packets in result.failed:
            assert list(packets) == self.waiting[ip] and packets
            for packet in packets:
                self._leave(packet)
        for ip in result.unreachable + result.collected:
            assert self.cache.state(ip) is None
        self.just_expired = True

    @rule(ip=st.sampled_from(IPS))
    def remove(self, ip: bytes) -> None:
        before = self.cache.statistics().dropped_removed
        waiting = list(self.waiting[ip])
        existed = self.cache.state(ip) is not None
        assert self.cache.remove(ip) == existed
        assert self.cache.statistics().dropped_removed - before == len(waiting)
        for packet in waiting:
            self._leave(packet)
        self.dropped += len(waiting)

    @rule(ip=st.sampled_from(IPS), mac=st.sampled_from(MACS))
    def add_static(self, ip: bytes, mac: bytes) -> None:
        handed_back = self.cache.add_static(ip, mac)
        assert list(handed_back) == self.waiting[ip]
        for packet in handed_back:
            self._leave(packet)

    @invariant()
    def bounds_hold(self) -> None:
        rows = self.cache.entries()
        dynamic = [row for row in rows if row.state is not PERMANENT]
        assert len(dynamic) <= MAX_ENTRIES
        for row in rows:
            assert row.held <= MAX_PENDING
            assert (row.held > 0) == (row.state is INCOMPLETE)
            assert (row.mac is None) == (row.state is INCOMPLETE)
        stats = self.cache.statistics()
        assert (stats.entries, stats.permanent) == (len(dynamic), len(rows) - len(dynamic))

    @invariant()
    def every_packet_is_accounted_for_once(self) -> None:
        held = {row.ip: row.held for row in self.cache.entries()}
        for ip in IPS:
            assert held.get(ip, 0) == len(self.waiting[ip])
        assert len(self.gone) + sum(map(len, self.waiting.values())) == self.packets
        stats = self.cache.statistics()
        assert stats.dropped_overflow + stats.dropped_evicted + stats.dropped_table_full + stats.dropped_removed == (
            self.dropped
        )

    @invariant()
    def next_deadline_is_exact(self) -> None:
        expires = [row.expires for row in self.cache.entries() if row.expires is not None]
        assert self.cache.next_deadline() == min(expires, default=None)
        if self.just_expired:
            assert all(when > self.now for when in expires)

    @invariant()
    def entries_agree_with_lookups(self) -> None:
        rows = {row.ip: row for row in self.cache.entries()}
        for ip in IPS:
            row = rows.get(ip)
            assert self.cache.lookup(ip) == (None if row is None else row.mac)
            assert self.cache.state(ip) is (None if row is None else row.state)


TestNeighborCacheMachine = NeighborCacheMachine.TestCase
TestNeighborCacheMachine.settings = settings(max_examples=200, stateful_step_count=60, deadline=None)
