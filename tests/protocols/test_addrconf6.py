"""IPv6 autoconfiguration machines: Dad, HostAutoconf (router discovery and
SLAAC) and RouterAdvertiser, each driven by hand and by Hypothesis."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trionet.protocols.addrconf6 import (
    DUP_ADDR_DETECT_TRANSMITS,
    INFINITE_LIFETIME,
    MAX_FINAL_RTR_ADVERTISEMENTS,
    MAX_INITIAL_RTR_ADVERT_INTERVAL,
    MAX_INITIAL_RTR_ADVERTISEMENTS,
    MAX_RA_DELAY_TIME,
    MAX_RTR_SOLICITATION_DELAY,
    MAX_RTR_SOLICITATIONS,
    MIN_DELAY_BETWEEN_RAS,
    RETRANS_TIMER,
    RTR_SOLICITATION_INTERVAL,
    AddressRow,
    AutoconfChanges,
    Dad,
    DadState,
    DadStep,
    HostAutoconf,
    HostAutoconfStatistics,
    PrefixOption,
    PrefixRow,
    RaConfig,
    RouterAdvertInfo,
    RouterAdvertiser,
    RouterAdvertiserStatistics,
    RouterRow,
)

IID = bytes.fromhex("021122fffe334455")
ROUTER = bytes.fromhex("fe800000000000000200000000000001")
ROUTER_2 = bytes.fromhex("fe800000000000000200000000000002")
PREFIX = bytes.fromhex("20010db8000000010000000000000000")  # 2001:db8:0:1::/64
PREFIX_2 = bytes.fromhex("20010db8000000020000000000000000")
ADDR = PREFIX[:8] + IID
ADDR_2 = PREFIX_2[:8] + IID
HOUR = 3600
DAY = 86400


def pio(
    prefix: bytes = PREFIX,
    plen: int = 64,
    *,
    on_link: bool = True,
    autonomous: bool = True,
    valid: int = DAY,
    preferred: int = 4 * HOUR,
) -> PrefixOption:
    return PrefixOption(prefix, plen, on_link, autonomous, valid, preferred)


def ra(*prefixes: PrefixOption, src: bytes = ROUTER, lifetime: int = 1800, **kw: object) -> RouterAdvertInfo:
    return RouterAdvertInfo(src, lifetime, prefixes=prefixes, **kw)  # type: ignore[arg-type]


def host(**kw: object) -> HostAutoconf:
    return HostAutoconf(IID, rng=random.Random(1), **kw)  # type: ignore[arg-type]


class ScriptedRandom(random.Random):
    """A ``random.Random`` whose ``uniform`` returns ``a + f * (b - a)`` for
    the given fractions in turn (the last one repeats)."""

    def __init__(self, *fractions: float) -> None:
        super().__init__(0)
        self.fractions = list(fractions)

    def uniform(self, a: float, b: float) -> float:
        f = self.fractions.pop(0) if len(self.fractions) > 1 else self.fractions[0]
        return a + f * (b - a)


def test_constants_are_rfc_4861_section_10() -> None:
    assert (MAX_RTR_SOLICITATION_DELAY, RTR_SOLICITATION_INTERVAL, MAX_RTR_SOLICITATIONS) == (1.0, 4.0, 3)
    assert (DUP_ADDR_DETECT_TRANSMITS, RETRANS_TIMER) == (1, 1.0)
    assert (MAX_INITIAL_RTR_ADVERT_INTERVAL, MAX_INITIAL_RTR_ADVERTISEMENTS) == (16.0, 3)
    assert (MAX_FINAL_RTR_ADVERTISEMENTS, MIN_DELAY_BETWEEN_RAS, MAX_RA_DELAY_TIME) == (3, 3.0, 0.5)


#### Duplicate address detection


def test_dad_without_reply_is_preferred_retrans_timer_after_the_last_probe() -> None:
    dad = Dad(ADDR, transmits=3, retrans_timer=1.5)
    assert dad.state is DadState.TENTATIVE and dad.next_deadline() is None
    assert dad.start(10.0, 0.25) == 10.25
    assert dad.expire(10.2) == DadStep()
    probes = []
    while (deadline := dad.next_deadline()) is not None:
        step = dad.expire(deadline)
        if step.probe:
            probes.append(deadline)
        else:
            assert step == DadStep(done=True)
            done = deadline
    assert probes == [10.25, 11.75, 13.25]
    assert done == 13.25 + 1.5
    assert dad.state is DadState.PREFERRED and dad.probes_sent == 3
    assert dad.expire(100.0) == DadStep()  # final: no-op


def test_dad_times_from_when_the_probe_actually_went_out() -> None:
    dad = Dad(ADDR)  # one probe, one second
    dad.start(0.0, 0.0)
    assert dad.expire(5.0) == DadStep(probe=True)  # the glue was late
    assert dad.next_deadline() == 6.0
    assert dad.expire(5.9) == DadStep()
    assert dad.expire(6.0) == DadStep(done=True)


def test_dad_solicitation_from_unspecified_is_a_duplicate() -> None:
    dad = Dad(ADDR, transmits=2)
    dad.start(0.0, 0.0)
    assert dad.expire(0.0).probe
    assert dad.ns_received(from_unspecified=True, own_probe=False)
    assert dad.state is DadState.DUPLICATE and dad.next_deadline() is None
    assert dad.expire(10.0) == DadStep()


def test_dad_probe_heard_before_our_first_probe_is_a_duplicate() -> None:
    dad = Dad(ADDR)
    dad.start(0.0, 0.7)
    assert dad.ns_received(from_unspecified=True, own_probe=False)
    assert dad.state is DadState.DUPLICATE and dad.probes_sent == 0


def test_dad_advertisement_is_a_duplicate() -> None:
    dad = Dad(ADDR)
    dad.start(0.0, 0.0)
    dad.expire(0.0)
    assert dad.na_received()
    assert dad.state is DadState.DUPLICATE
    assert not dad.na_received()  # final: no-op


def test_dad_own_looped_probe_and_unicast_solicitations_are_ignored() -> None:
    dad = Dad(ADDR)
    dad.start(0.0, 0.0)
    assert dad.expire(0.0).probe
    assert not dad.ns_received(from_unspecified=True, own_probe=True)
    # From a unicast source: someone resolving the address (RFC 4862 5.4.3).
    assert not dad.ns_received(from_unspecified=False, own_probe=False)
    assert dad.state is DadState.TENTATIVE
    assert dad.expire(1.0) == DadStep(done=True)
    # Once preferred, DAD has nothing more to say.
    assert not dad.ns_received(from_unspecified=True, own_probe=False)
    assert not dad.na_received()
    assert dad.state is DadState.PREFERRED


def test_dad_zero_transmits_disables_dad() -> None:
    dad = Dad(ADDR, transmits=0)
    assert dad.start(4.0, 0.5) == 4.0
    assert dad.state is DadState.PREFERRED
    assert dad.next_deadline() is None
    assert dad.expire(10.0) == DadStep() and dad.probes_sent == 0


def test_dad_start_twice_keeps_the_first_schedule() -> None:
    dad = Dad(ADDR)
    assert dad.start(0.0, 0.5) == 0.5
    assert dad.start(0.2, 0.9) == 0.5
    dad.expire(0.5)
    dad.expire(1.5)
    assert dad.start(2.0, 0.0) == 2.0 and dad.next_deadline() is None  # ended: nothing scheduled


def test_values_print_addresses_readably() -> None:
    assert "2001:db8:0:1::" in repr(pio())
    assert "src=b''" in repr(RouterAdvertInfo(b"", 0))


def test_dad_solicited_node_group() -> None:
    assert Dad(ADDR).solicited_node == bytes.fromhex("ff0200000000000000000001ff334455")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"addr": ADDR[:15]}, "16 bytes"),
        ({"addr": ADDR, "transmits": -1}, "transmits"),
        ({"addr": ADDR, "retrans_timer": 0.0}, "retrans_timer"),
    ],
)
def test_dad_rejects_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Dad(**kwargs)  # type: ignore[arg-type]


def test_dad_rejects_a_negative_delay() -> None:
    with pytest.raises(ValueError, match="delay"):
        Dad(ADDR).start(0.0, -1.0)


dad_events = st.lists(
    st.tuples(
        st.sampled_from(["expire", "ns_dad", "ns_own", "ns_unicast", "na"]),
        st.floats(0.0, 3.0),
    ),
    max_size=30,
)


@settings(max_examples=200)
@given(st.integers(0, 4), st.floats(0.1, 2.0), st.floats(0.0, 1.0), dad_events)
def test_dad_is_bounded_and_final(transmits: int, retrans: float, delay: float, events: list) -> None:
    dad = Dad(ADDR, transmits=transmits, retrans_timer=retrans)
    now = 0.0
    dad.start(now, delay)
    probes: list[float] = []
    verdict = dad.state if dad.state is not DadState.TENTATIVE else None
    for kind, dt in events:
        now += dt
        before = dad.state
        if kind == "expire":
            step = dad.expire(now)
            assert not (step.probe and step.done)
            if step.probe:
                probes.append(now)
            if step.done:
                assert len(probes) == transmits and now >= probes[-1] + retrans
                verdict = DadState.PREFERRED
        elif kind == "ns_dad" or kind == "na":
            dup = dad.ns_received(from_unspecified=True, own_probe=False) if kind == "ns_dad" else dad.na_received()
            assert dup == (before is DadState.TENTATIVE)
            if dup:
                verdict = DadState.DUPLICATE
        else:
            assert not dad.ns_received(from_unspecified=kind == "ns_own", own_probe=kind == "ns_own")
        assert len(probes) <= transmits
        if verdict is not None:
            assert dad.state is verdict and dad.next_deadline() is None
        else:
            assert dad.state is DadState.TENTATIVE and dad.next_deadline() is not None


#### Host: router solicitation


def test_solicitations_three_at_most_after_a_random_delay() -> None:
    h = host()
    assert h.next_deadline() is None
    h.start(100.0)
    first = h.next_deadline()
    assert first is not None and 100.0 <= first <= 100.0 + MAX_RTR_SOLICITATION_DELAY
    sent = []
    now = 100.0
    while (deadline := h.next_deadline()) is not None:
        assert h.expire(deadline - 0.001)[0] is False
        solicit, changes = h.expire(deadline)
        assert solicit and changes == AutoconfChanges()
        sent.append(deadline)
        now = deadline
    assert len(sent) == MAX_RTR_SOLICITATIONS
    assert [b - a for a, b in zip(sent, sent[1:])] == [RTR_SOLICITATION_INTERVAL] * 2
    assert h.expire(now + 100)[0] is False
    assert h.statistics().rs_sent == 3


def test_solicitations_stop_when_an_advertisement_arrives() -> None:
    h = host()
    h.start(0.0)
    deadline = h.next_deadline()
    assert deadline is not None and h.expire(deadline)[0]
    # A router that is not a default router does not end the solicitations.
    h.ra_input(ra(lifetime=0), deadline + 1)
    assert h.next_deadline() == deadline + RTR_SOLICITATION_INTERVAL
    h.ra_input(ra(), deadline + 2)
    assert h.next_deadline() == deadline + 2 + 1800  # only the router's lifetime is left
    assert h.statistics().rs_sent == 1


def test_no_solicitations_without_accept_rtadv() -> None:
    h = host(accept_rtadv=False)
    h.start(0.0)
    assert h.next_deadline() is None


def test_start_again_solicits_afresh() -> None:
    h = host()
    h.start(0.0)
    for _ in range(3):
        deadline = h.next_deadline()
        assert deadline is not None
        h.expire(deadline)
    assert h.next_deadline() is None
    h.start(50.0)
    deadline = h.next_deadline()
    assert deadline is not None and 50.0 <= deadline <= 51.0


#### Host: advertisements


def test_slaac_forms_prefix_plus_iid() -> None:
    h = host()
    changes = h.ra_input(ra(pio(valid=DAY, preferred=4 * HOUR)), 10.0)
    assert changes == AutoconfChanges(
        new_addresses=((ADDR, 64, 10.0 + DAY, 10.0 + 4 * HOUR),),
        new_routers=(ROUTER,),
        new_prefixes=((PREFIX, 64),),
    )
    assert h.addresses() == (AddressRow(ADDR, 64, 10.0 + DAY, 10.0 + 4 * HOUR, "preferred"),)
    assert h.routers() == (RouterRow(ROUTER, 1810.0),)
    assert h.prefixes() == (PrefixRow(PREFIX, 64, 10.0 + DAY),)
    stats = h.statistics()
    assert (stats.ra_received, stats.addresses_added, stats.routers_added, stats.prefixes_added) == (1, 1, 1, 1)


def test_prefix_host_bits_are_ignored() -> None:
    h = host()
    noisy = PREFIX[:8] + bytes.fromhex("ffffffffffffffff")
    changes = h.ra_input(ra(pio(noisy)), 0.0)
    assert changes.new_addresses[0][0] == ADDR
    assert changes.new_prefixes == ((PREFIX, 64),)
    wide = h.ra_input(ra(pio(bytes.fromhex("20010db8ffffffff0000000000000000"), 32, autonomous=False)), 0.0)
    assert wide.new_prefixes == ((bytes.fromhex("20010db8000000000000000000000000"), 32),)


def test_non_64_prefix_is_on_link_but_forms_no_address() -> None:
    h = host()
    changes = h.ra_input(ra(pio(plen=48)), 0.0)
    assert changes.new_addresses == ()
    assert changes.new_prefixes == ((bytes.fromhex("20010db8000000000000000000000000"), 48),)
    assert h.statistics().prefix_length_mismatch == 1


def test_flags_select_on_link_and_autonomous() -> None:
    h = host()
    changes = h.ra_input(ra(pio(on_link=False), pio(PREFIX_2, autonomous=False)), 0.0)
    assert [a for a, *_ in changes.new_addresses] == [ADDR]
    assert changes.new_prefixes == ((PREFIX_2, 64),)


@pytest.mark.parametrize(
    "option",
    [
        pio(bytes.fromhex("fe800000000000000000000000000000")),  # link-local
        pio(bytes.fromhex("ff020000000000000000000000000000")),  # multicast
        pio(valid=HOUR, preferred=2 * HOUR),  # preferred > valid
        pio(plen=129),
        pio(PREFIX[:8]),
    ],
    ids=["link_local", "multicast", "preferred_above_valid", "plen_129", "short_prefix"],
)
def test_bad_prefix_options_are_ignored_whole(option: PrefixOption) -> None:
    h = host()
    changes = h.ra_input(ra(option), 0.0)
    assert changes == AutoconfChanges(new_routers=(ROUTER,))
    assert h.statistics().prefix_options_ignored == 1


def test_zero_valid_lifetime_adds_nothing() -> None:
    h = host()
    changes = h.ra_input(ra(pio(valid=0, preferred=0)), 0.0)
    assert changes.new_addresses == () and changes.new_prefixes == ()


def _host_with_address(valid: int, preferred: int = 0) -> HostAutoconf:
    h = host()
    h.ra_input(ra(pio(valid=valid, preferred=preferred)), 0.0)
    return h


def test_two_hour_rule_1_takes_a_lifetime_above_two_hours() -> None:
    h = _host_with_address(DAY)
    changes = h.ra_input(ra(pio(valid=3 * HOUR, preferred=HOUR)), 100.0)
    assert changes.updated_addresses == ((ADDR, 64, 100.0 + 3 * HOUR, 100.0 + HOUR),)


def test_two_hour_rule_1_takes_a_lifetime_above_the_remaining_one() -> None:
    h = _host_with_address(30 * 60)
    changes = h.ra_input(ra(pio(valid=HOUR, preferred=HOUR)), 100.0)
    assert changes.updated_addresses == ((ADDR, 64, 100.0 + HOUR, 100.0 + HOUR),)


def test_two_hour_rule_2_keeps_a_remaining_lifetime_of_two_hours_or_less() -> None:
    h = _host_with_address(HOUR, HOUR)
    changes = h.ra_input(ra(pio(valid=10 * 60, preferred=5 * 60)), 100.0)
    # The valid lifetime is kept; the preferred one is reset all the same.
    assert changes.updated_addresses == ((ADDR, 64, float(HOUR), 100.0 + 5 * 60),)
    assert h.statistics().valid_lifetime_kept == 1
    # Even a valid lifetime of 0 does not remove it (the denial of service
    # the rule is there to stop).
    h.ra_input(ra(pio(valid=0, preferred=0)), 200.0)
    assert h.addresses()[0].valid_until == HOUR


def test_two_hour_rule_3_cuts_to_two_hours() -> None:
    h = _host_with_address(DAY, HOUR)
    changes = h.ra_input(ra(pio(valid=0, preferred=0)), 100.0)
    assert changes.updated_addresses == ((ADDR, 64, 100.0 + 2 * HOUR, 100.0),)
    assert h.statistics().valid_lifetime_two_hours == 1


def test_infinite_lifetimes_never_expire() -> None:
    h = _host_with_address(INFINITE_LIFETIME, INFINITE_LIFETIME)
    assert h.addresses()[0].valid_until == math.inf
    assert h.prefixes()[0].expires == math.inf
    h.ra_input(ra(pio(valid=INFINITE_LIFETIME, preferred=INFINITE_LIFETIME), lifetime=0), 1.0)
    assert h.next_deadline() is None
    # Infinity is more than two hours: rule (e)1 takes a finite value.
    changes = h.ra_input(ra(pio(valid=3 * HOUR, preferred=HOUR)), 2.0)
    assert changes.updated_addresses == ((ADDR, 64, 2.0 + 3 * HOUR, 2.0 + HOUR),)


def test_address_is_deprecated_then_removed() -> None:
    h = _host_with_address(100, 50)
    assert h.next_deadline() == 50.0
    assert h.expire(49.9) == (False, AutoconfChanges())
    solicit, changes = h.expire(50.0)
    assert changes.deprecated_addresses == (ADDR,) and changes.removed_addresses == ()
    assert h.addresses()[0].state == "deprecated"
    assert h.next_deadline() == 100.0
    _, changes = h.expire(100.0)
    assert changes.removed_addresses == (ADDR,) and changes.removed_prefixes == ((PREFIX, 64),)
    assert h.addresses() == () and h.prefixes() == ()
    stats = h.statistics()
    assert (stats.addresses_deprecated, stats.addresses_removed, stats.prefixes_removed) == (1, 1, 1)


def test_a_deprecated_address_is_preferred_again_by_a_new_preferred_lifetime() -> None:
    h = _host_with_address(DAY, 0)
    assert h.expire(0.0)[1].deprecated_addresses == (ADDR,)
    changes = h.ra_input(ra(pio(valid=DAY, preferred=HOUR)), 10.0)
    assert changes.updated_addresses == ((ADDR, 64, 10.0 + DAY, 10.0 + HOUR),)
    assert h.addresses()[0].state == "preferred"
    assert h.expire(10.0 + HOUR)[1].deprecated_addresses == (ADDR,)


def test_router_lifetime_zero_removes_the_router() -> None:
    h = host()
    h.ra_input(ra(), 0.0)
    changes = h.ra_input(ra(lifetime=0), 5.0)
    assert changes.removed_routers == (ROUTER,)
    assert h.routers() == ()
    assert h.ra_input(ra(lifetime=0), 6.0).removed_routers == ()  # not a router: nothing


def test_router_is_refreshed_then_expires() -> None:
    h = host()
    assert h.ra_input(ra(lifetime=100), 0.0).new_routers == (ROUTER,)
    assert h.ra_input(ra(lifetime=100), 50.0) == AutoconfChanges()  # refreshed, nothing new
    assert h.routers() == (RouterRow(ROUTER, 150.0),)
    assert h.expire(100.0)[1] == AutoconfChanges()
    assert h.expire(150.0)[1].removed_routers == (ROUTER,)
    assert h.statistics().routers_removed == 1


def test_on_link_prefix_valid_zero_removes_it() -> None:
    h = host()
    h.ra_input(ra(pio(autonomous=False)), 0.0)
    changes = h.ra_input(ra(pio(autonomous=False, valid=0, preferred=0)), 1.0)
    assert changes.removed_prefixes == ((PREFIX, 64),)
    # Added and removed by one advertisement: reported as neither.
    both = h.ra_input(ra(pio(autonomous=False), pio(autonomous=False, valid=0, preferred=0)), 2.0)
    assert both.new_prefixes == () and both.removed_prefixes == () and h.prefixes() == ()
    # Removed and added again by one advertisement: the glue keeps it.
    h.ra_input(ra(pio(autonomous=False)), 3.0)
    again = h.ra_input(ra(pio(autonomous=False, valid=0, preferred=0), pio(autonomous=False, valid=60, preferred=0)), 4.0)
    assert again.new_prefixes == () and again.removed_prefixes == ()
    assert h.prefixes() == (PrefixRow(PREFIX, 64, 64.0),)


def test_a_repeated_option_reports_its_address_once() -> None:
    h = host()
    changes = h.ra_input(ra(pio(valid=DAY, preferred=HOUR), pio(valid=2 * DAY, preferred=2 * HOUR)), 0.0)
    assert changes.new_addresses == ((ADDR, 64, 2.0 * DAY, 2.0 * HOUR),)
    assert changes.updated_addresses == () and changes.new_prefixes == ((PREFIX, 64),)


def test_link_parameters_are_reported() -> None:
    h = host()
    changes = h.ra_input(ra(cur_hop_limit=32, reachable_time=30000, retrans_timer=1500, mtu=1400), 0.0)
    assert (changes.hop_limit, changes.reachable_time, changes.retrans_timer, changes.mtu) == (32, 30.0, 1.5, 1400)
    unspecified = h.ra_input(ra(cur_hop_limit=0, reachable_time=0, retrans_timer=0, mtu=None), 0.0)
    assert (unspecified.hop_limit, unspecified.reachable_time, unspecified.retrans_timer, unspecified.mtu) == (
        None,
        None,
        None,
        None,
    )
    bogus = h.ra_input(ra(mtu=1279, reachable_time=3_600_001), 0.0)
    assert bogus.mtu is None and bogus.reachable_time is None
    assert h.ra_input(ra(mtu=1280), 0.0).mtu == 1280


def test_accept_rtadv_off_changes_nothing() -> None:
    h = host(accept_rtadv=False)
    assert h.ra_input(ra(pio(), mtu=1400, cur_hop_limit=9), 0.0) == AutoconfChanges()
    assert h.addresses() == () and h.routers() == () and h.prefixes() == ()
    assert h.statistics().ra_ignored == 1
    h.accept_rtadv = True
    assert h.ra_input(ra(pio()), 0.0).new_addresses


def test_advertisement_from_a_non_link_local_source_is_ignored() -> None:
    h = host()
    assert h.ra_input(ra(pio(), src=ADDR_2), 0.0) == AutoconfChanges()
    assert h.statistics() == HostAutoconfStatistics(ra_ignored=1)


def test_bounds_ignore_and_count_the_extra_entries() -> None:
    h = host(max_addresses=2, max_routers=1, max_prefixes=2)
    prefixes = [bytes.fromhex(f"20010db800000{i:03x}0000000000000000") for i in range(3)]
    changes = h.ra_input(ra(*(pio(p) for p in prefixes)), 0.0)
    assert len(changes.new_addresses) == 2 and len(changes.new_prefixes) == 2
    assert h.ra_input(ra(src=ROUTER_2), 0.0).new_routers == ()
    stats = h.statistics()
    assert (stats.addresses_ignored, stats.prefixes_ignored, stats.routers_ignored) == (1, 1, 1)
    assert len(h.addresses()) == 2 and len(h.prefixes()) == 2 and h.routers() == (RouterRow(ROUTER, 1800.0),)


def test_duplicate_address_stays_unused_until_its_valid_lifetime_ends() -> None:
    h = _host_with_address(DAY, HOUR)
    assert h.address_duplicated(ADDR) and not h.address_duplicated(ADDR_2)
    assert h.addresses()[0].state == "duplicate"
    # The next advertisement neither forms it again nor reports an update.
    changes = h.ra_input(ra(pio(valid=DAY, preferred=HOUR)), 10.0)
    assert changes.new_addresses == () and changes.updated_addresses == ()
    assert h.expire(10.0 + HOUR)[1].deprecated_addresses == ()
    assert h.expire(10.0 + DAY)[1].removed_addresses == (ADDR,)


def test_host_rejects_a_bad_iid() -> None:
    with pytest.raises(ValueError, match="8 bytes"):
        HostAutoconf(IID[:7], rng=random.Random())


#### Host: random advertisement sequences

ROUTERS = [ROUTER, ROUTER_2, bytes.fromhex("fe800000000000000200000000000003"), ADDR]
PREFIX_POOL = [bytes.fromhex(f"20010db8000000{i:02x}0000000000000000") for i in range(6)] + [
    bytes.fromhex("fe800000000000000000000000000000")
]
lifetimes = st.one_of(
    st.sampled_from([0, 1, 60, 7199, 7200, 7201, DAY, INFINITE_LIFETIME]),
    st.integers(0, 3 * DAY),
)


@st.composite
def prefix_options(draw: st.DrawFn) -> PrefixOption:
    valid = draw(lifetimes)
    preferred = draw(st.one_of(st.integers(0, valid), lifetimes))  # sometimes above valid
    return PrefixOption(
        draw(st.sampled_from(PREFIX_POOL)),
        draw(st.sampled_from([64, 64, 64, 48, 128])),
        draw(st.booleans()),
        draw(st.booleans()),
        valid,
        preferred,
    )


advertisements = st.builds(
    RouterAdvertInfo,
    st.sampled_from(ROUTERS),
    st.sampled_from([0, 30, 1800, 9000]),
    prefixes=st.lists(prefix_options(), max_size=5).map(tuple),
)
host_steps = st.lists(
    st.one_of(st.tuples(st.just("ra"), advertisements), st.tuples(st.just("wait"), st.floats(0.0, 10_000.0))),
    max_size=40,
)


class _Ledger:
    """What the glue would hold, built from the changes alone."""

    def __init__(self) -> None:
        self.addresses: dict[bytes, tuple[bytes, int, float, float]] = {}
        self.routers: set[bytes] = set()
        self.prefixes: set[tuple[bytes, int]] = set()

    def apply(self, c: AutoconfChanges) -> None:
        for row in c.new_addresses:
            assert row[0] not in self.addresses, "added twice"
            self.addresses[row[0]] = row
        for row in c.updated_addresses:
            assert row[0] in self.addresses, "updated before it was added"
            self.addresses[row[0]] = row
        for addr in c.deprecated_addresses:
            assert addr in self.addresses, "deprecated before it was added"
        for addr in c.removed_addresses:
            assert self.addresses.pop(addr, None) is not None, "removed before it was added"
        self._move(self.routers, c.new_routers, c.removed_routers)
        self._move(self.prefixes, c.new_prefixes, c.removed_prefixes)

    @staticmethod
    def _move(live: set, new: Iterable, removed: Iterable) -> None:
        for item in new:
            assert item not in live, "added twice"
            live.add(item)
        for item in removed:
            assert item in live, "removed before it was added"
            live.remove(item)


@settings(max_examples=300)
@given(host_steps, st.integers(0, 4), st.integers(0, 3), st.integers(0, 4), st.booleans())
def test_random_advertisements_keep_the_bounds_and_the_books(
    steps: list, max_addresses: int, max_routers: int, max_prefixes: int, solicit: bool
) -> None:
    h = HostAutoconf(
        IID, max_addresses=max_addresses, max_routers=max_routers, max_prefixes=max_prefixes, rng=random.Random(3)
    )
    ledger = _Ledger()
    now = 0.0
    if solicit:
        h.start(now)
    solicitations = 0
    for kind, arg in steps:
        if kind == "ra":
            before = {row.addr: row.valid_until for row in h.addresses()}
            ledger.apply(h.ra_input(arg, now))
            for row in h.addresses():
                if row.addr in before:
                    # No unauthenticated advertisement cuts a remaining
                    # valid lifetime below two hours (RFC 4862 5.5.3 (e)).
                    assert row.valid_until - now >= min(before[row.addr] - now, 7200.0) - 1e-6
                assert row.preferred_until <= row.valid_until
        else:
            target = now + arg
            while (deadline := h.next_deadline()) is not None and deadline <= target:
                assert deadline >= now
                now = deadline
                sent, changes = h.expire(now)
                solicitations += sent
                ledger.apply(changes)
                after = h.next_deadline()
                assert after is None or after > now
            now = target
        assert len(h.addresses()) <= max_addresses
        assert len(h.routers()) <= max_routers
        assert len(h.prefixes()) <= max_prefixes
        assert {row.addr for row in h.addresses()} == set(ledger.addresses)
        assert {row.addr for row in h.routers()} == ledger.routers
        assert {(row.prefix, row.prefix_len) for row in h.prefixes()} == ledger.prefixes
        for row in h.addresses():
            assert ledger.addresses[row.addr] == (row.addr, row.prefix_len, row.valid_until, row.preferred_until)
            assert row.addr[8:] == IID and row.prefix_len == 64
    assert solicitations <= MAX_RTR_SOLICITATIONS
    assert h.statistics().rs_sent == solicitations


#### Router


PREFIX_OPTION = pio(valid=DAY, preferred=4 * HOUR)


def advertiser(rng: random.Random | None = None, **kw: object) -> RouterAdvertiser:
    config = RaConfig((PREFIX_OPTION,), **kw)  # type: ignore[arg-type]
    return RouterAdvertiser(config, rng or random.Random(5))


def run_until(adv: RouterAdvertiser, end: float) -> list[tuple[float, RouterAdvertInfo]]:
    sent = []
    while (deadline := adv.next_deadline()) is not None and deadline <= end:
        advert = adv.expire(deadline)
        assert advert is not None
        sent.append((deadline, advert))
    return sent


def test_initial_advertisements_come_at_most_16_seconds_apart() -> None:
    adv = advertiser()  # intervals 200..600 s
    assert adv.next_deadline() is None
    adv.start(0.0)
    times = [t for t, _ in run_until(adv, 10_000.0)]
    assert times[:3] == [16.0, 32.0, 48.0]
    assert 200.0 <= times[3] - times[2] <= 600.0


def test_the_advertisement_carries_the_configuration() -> None:
    adv = advertiser(mtu=1400, cur_hop_limit=32, reachable_time=30000, retrans_timer=1000, managed=True)
    adv.start(0.0)
    assert adv.expire(1.0) is None
    deadline = adv.next_deadline()
    assert deadline is not None
    assert adv.expire(deadline) == RouterAdvertInfo(
        src=b"",
        router_lifetime=1800,
        cur_hop_limit=32,
        reachable_time=30000,
        retrans_timer=1000,
        mtu=1400,
        prefixes=(PREFIX_OPTION,),
        managed=True,
        other=False,
    )


def test_unsolicited_intervals_are_random_within_the_bounds() -> None:
    adv = advertiser(min_interval=30.0, max_interval=40.0, router_lifetime=40)
    adv.start(0.0)
    times = [0.0] + [t for t, _ in run_until(adv, 5_000.0)]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps[:3] == [16.0] * 3
    assert all(30.0 <= g <= 40.0 for g in gaps[3:]) and len(set(gaps[3:])) > 10


def test_solicitation_is_answered_within_max_ra_delay_time() -> None:
    adv = advertiser()
    adv.start(0.0)
    assert len(run_until(adv, 100.0)) == 3  # the fourth is 200..600 s after the third
    adv.rs_received(100.0)
    deadline = adv.next_deadline()
    assert deadline is not None and 100.0 <= deadline <= 100.0 + MAX_RA_DELAY_TIME
    assert adv.expire(deadline) is not None
    # The periodic timer restarts from the answer.
    after = adv.next_deadline()
    assert after is not None and 200.0 <= after - deadline <= 600.0
    assert adv.statistics() == RouterAdvertiserStatistics(advertisements=4, solicited=1, solicitations=1)


def test_an_answer_counts_among_the_initial_advertisements() -> None:
    adv = advertiser()
    adv.start(0.0)
    run_until(adv, 16.0)
    adv.rs_received(20.0)
    answer = adv.next_deadline()
    assert answer is not None and adv.expire(answer) is not None
    assert adv.next_deadline() == answer + 16.0  # the third, still capped
    run_until(adv, answer + 16.0)
    after = adv.next_deadline()
    assert after is not None and after - (answer + 16.0) >= 200.0


def test_solicitation_soon_after_an_advertisement_waits_for_min_delay_between_ras() -> None:
    adv = advertiser(ScriptedRandom(1.0, 0.5))  # interval capped to 16; delay 0.25
    adv.start(0.0)
    run_until(adv, 16.0)
    adv.rs_received(17.0)
    assert adv.next_deadline() == 16.0 + MIN_DELAY_BETWEEN_RAS + 0.25


def test_solicitations_coalesce_into_one_advertisement() -> None:
    adv = advertiser()
    adv.start(0.0)
    run_until(adv, 16.0)
    for t in (20.0, 20.1, 20.2, 20.3, 20.4):
        adv.rs_received(t)
    sent = run_until(adv, 21.0)
    assert len(sent) == 1
    stats = adv.statistics()
    assert (stats.solicitations, stats.solicitations_coalesced, stats.solicited) == (5, 4, 1)


def test_an_advertisement_already_due_sooner_answers_the_solicitation() -> None:
    # Intervals of 3 s, then an answer delay of 0.5 s.
    adv = advertiser(ScriptedRandom(0.0, 0.0, 1.0), min_interval=3.0, max_interval=4.0, router_lifetime=4)
    adv.start(0.0)
    assert [t for t, _ in run_until(adv, 3.0)] == [3.0]
    adv.rs_received(3.1)  # an answer would be due at 3 + 3 + 0.5: the periodic one at 6 is sooner
    assert adv.next_deadline() == 6.0
    adv.rs_received(3.2)
    assert [t for t, _ in run_until(adv, 6.0)] == [6.0]
    stats = adv.statistics()
    assert (stats.solicitations, stats.solicitations_coalesced, stats.solicited) == (2, 2, 1)


def test_stop_sends_final_advertisements_with_lifetime_zero() -> None:
    adv = advertiser()
    adv.start(0.0)
    run_until(adv, 16.0)
    adv.stop(17.0)  # the first one waits for MIN_DELAY_BETWEEN_RAS
    adv.rs_received(17.5)  # ignored while stopping
    sent = run_until(adv, 10_000.0)
    assert [t for t, _ in sent] == [19.0, 22.0, 25.0]
    assert all(a.router_lifetime == 0 and a.prefixes == (PREFIX_OPTION,) for _, a in sent)
    assert adv.next_deadline() is None and not adv.advertising
    stats = adv.statistics()
    assert (stats.final, stats.solicitations_ignored) == (MAX_FINAL_RTR_ADVERTISEMENTS, 1)
    adv.stop(30.0)  # no-op
    assert adv.next_deadline() is None


def test_stop_before_start_sends_nothing_and_start_after_stop_starts_over() -> None:
    adv = advertiser()
    adv.stop(0.0)
    assert adv.next_deadline() is None
    adv.start(1.0)
    adv.start(2.0)  # no-op while advertising
    assert adv.next_deadline() == 17.0
    adv.stop(5.0)
    assert adv.next_deadline() == 5.0  # nothing sent yet: no wait
    adv.start(6.0)  # cancels the final advertisements
    assert adv.next_deadline() == 22.0
    assert adv.statistics().final == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_interval": 3.9}, "max_interval"),
        ({"max_interval": 1801.0}, "max_interval"),
        ({"min_interval": 2.9}, "min_interval"),
        ({"min_interval": 451.0}, "min_interval"),  # > 0.75 * 600
        ({"router_lifetime": 599}, "router_lifetime"),
        ({"router_lifetime": 9001}, "router_lifetime"),
        ({"cur_hop_limit": 256}, "cur_hop_limit"),
        ({"mtu": 1279}, "mtu"),
        ({"reachable_time": 3_600_001}, "reachable_time"),
        ({"retrans_timer": -1}, "retrans_timer"),
        ({"prefixes": (pio(plen=129),)}, "prefix_len"),
        ({"prefixes": (pio(PREFIX[:8]),)}, "16 bytes"),
        ({"prefixes": (pio(valid=1, preferred=2),)}, "lifetimes"),
    ],
)
def test_config_validation(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RaConfig(**kwargs)  # type: ignore[arg-type]


def test_config_edges_are_accepted() -> None:
    RaConfig(min_interval=3.0, max_interval=4.0, router_lifetime=0)
    RaConfig(min_interval=1350.0, max_interval=1800.0, router_lifetime=9000)
    assert RaConfig([PREFIX_OPTION]).prefixes == (PREFIX_OPTION,)  # type: ignore[arg-type]


router_events = st.lists(
    st.tuples(st.sampled_from(["rs", "rs", "rs", "stop", "start"]), st.floats(0.0, 60.0)), max_size=40
)


@settings(max_examples=300)
@given(
    st.floats(3.0, 30.0),
    st.floats(4.0, 60.0),
    router_events,
    st.integers(0, 2**32),
)
def test_random_solicitations_keep_the_spacing_rules(
    min_interval: float, max_interval: float, events: list, seed: int
) -> None:
    max_interval = max(max_interval, min_interval * 4 / 3 + 0.001)
    config = RaConfig((), min_interval, max_interval, router_lifetime=0)
    adv = RouterAdvertiser(config, random.Random(seed))
    now = 0.0
    adv.start(now)
    started = now
    sent: list[tuple[float, int, int | None]] = []  # time, number since start, stop() it follows
    since_start = 0
    stops = 0
    pending_rs: list[float] = []  # solicitations not yet answered

    def advance(to: float) -> None:
        nonlocal now, since_start
        while (deadline := adv.next_deadline()) is not None and deadline <= to:
            assert deadline >= now
            now = deadline
            final = None if adv.advertising else stops
            advert = adv.expire(now)
            assert advert is not None and (advert.router_lifetime == 0)
            since_start += 1
            sent.append((now, since_start, final))
            pending_rs.clear()
        now = to

    for kind, dt in events:
        advance(now + dt)
        if kind == "rs":
            if adv.advertising:
                pending_rs.append(now)
            adv.rs_received(now)
        elif kind == "stop":
            if adv.advertising:
                pending_rs.clear()
                stops += 1
            adv.stop(now)
        else:
            if not adv.advertising:
                started, since_start = now, 0
                pending_rs.clear()
            adv.start(now)
        for t in pending_rs:
            deadline = adv.next_deadline()
            assert deadline is not None and deadline <= t + MIN_DELAY_BETWEEN_RAS + MAX_RA_DELAY_TIME
        if adv.advertising:
            deadline = adv.next_deadline()
            assert deadline is not None
            last = sent[-1][0] if sent and sent[-1][0] >= started else started
            limit = MAX_INITIAL_RTR_ADVERT_INTERVAL if since_start < MAX_INITIAL_RTR_ADVERTISEMENTS else max_interval
            assert deadline <= last + limit + 1e-9
    advance(now + 10_000.0)
    for (a, _, _), (b, _, _) in zip(sent, sent[1:]):
        assert b - a >= MIN_DELAY_BETWEEN_RAS - 1e-9
    finals = [final for *_, final in sent if final is not None]
    assert all(finals.count(stop) <= MAX_FINAL_RTR_ADVERTISEMENTS for stop in set(finals))
    if not adv.advertising and stops:
        # The last stop() ran to the end: all its final advertisements went out.
        assert finals.count(stops) == MAX_FINAL_RTR_ADVERTISEMENTS
    stats = adv.statistics()
    assert stats.advertisements == len(sent)
    assert stats.final == len(finals)


def test_statistics_are_frozen_values() -> None:
    for stats in (host().statistics(), advertiser().statistics()):
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            stats.ra_received = 1  # type: ignore[misc, union-attr]
