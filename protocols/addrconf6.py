"""IPv6 address autoconfiguration (RFC 4862) and router discovery (RFC 4861
sections 6 and 10), sans-IO: duplicate address detection, the host's side of
router advertisements, and the router's advertiser.

None of the machines here sends, sleeps, reads a clock or draws randomness of
its own: every method takes ``now`` (which must never decrease), randomness
comes from the ``random.Random`` it was given, and each returns what the glue
must do. Messages are plain values (:class:`RouterAdvertInfo`, and
:data:`PrefixOption`, which is :class:`.ndp.PrefixInfo`); parsing and
emitting the ICMPv6 messages belongs to the ND modules, and addresses are
16-byte ``bytes``. Every table is bounded and every timer has a
:meth:`next_deadline`/``expire(now)`` pair, as in :mod:`.arp`.

Theory of operation: duplicate address detection
================================================

:class:`Dad` decides whether one tentative address may be used (RFC 4862
section 5.4).

1. The address is TENTATIVE until DAD ends: the glue does not use it as a
   source and does not answer solicitations for it, but joins its
   solicited-node group (:attr:`Dad.solicited_node`).
2. :meth:`Dad.start` schedules the first probe ``delay`` seconds on (the
   glue draws the delay in ``[0, MAX_RTR_SOLICITATION_DELAY]`` for the first
   address of an interface, RFC 4862 5.4.2). :meth:`Dad.expire` then asks
   for exactly ``transmits`` probes, ``retrans_timer`` apart: Neighbor
   Solicitations for the address, from ``::``, to its solicited-node group.
3. ``retrans_timer`` after the last probe with no duplicate heard,
   :meth:`Dad.expire` reports ``done``: the address is PREFERRED.
4. While TENTATIVE (even before the first probe: someone else started first,
   KAME's "you win"), a Neighbor Solicitation for the address from ``::``
   that we did not send ourselves is another node's probe, and any Neighbor
   Advertisement for it is an owner's answer: the address is DUPLICATE
   (5.4.3, 5.4.4). A solicitation from a unicast source is someone resolving
   the address: ignored. Telling our own looped-back probe from another
   node's is the glue's job (by the nonce of RFC 7527, or because it saw the
   multicast loopback); it says so with ``own_probe``.
5. ``transmits == 0`` disables DAD (``DupAddrDetectTransmits`` 0): the
   address is PREFERRED as soon as :meth:`Dad.start` is called.
6. PREFERRED and DUPLICATE are final: every later call is a no-op.

DragonFly: ``nd6_dad_start``, ``nd6_dad_timer``, ``nd6_dad_ns_input`` and
``nd6_dad_na_input`` in ``sys/netinet6/nd6_nbr.c``. Divergence: KAME counts
solicitations received and decides when the timer runs out; here the glue
identifies our own probes, so the first foreign probe decides at once.

Theory of operation: the host
=============================

:class:`HostAutoconf` keeps one interface's default router list, on-link
prefix list and autoconfigured (SLAAC) addresses.

1. :meth:`HostAutoconf.start` (the interface came up) schedules router
   solicitations: the first after a random delay in
   ``[0, MAX_RTR_SOLICITATION_DELAY]``, then every RTR_SOLICITATION_INTERVAL,
   at most MAX_RTR_SOLICITATIONS in all. A Router Advertisement with a
   non-zero router lifetime ends them (RFC 4861 6.3.7).
2. :meth:`HostAutoconf.ra_input` takes an advertisement the ND code has
   already validated. With ``accept_rtadv`` false, or a source that is not
   link-local, it changes nothing.
3. Default routers (RFC 4861 6.3.4): a router is added with a non-zero
   lifetime, refreshed by each advertisement, removed at once by lifetime 0
   and by :meth:`~HostAutoconf.expire` when its lifetime runs out.
4. Link parameters: a non-zero hop limit, reachable time (at most an hour,
   as DragonFly's ``MAX_REACHABLE_TIME``) and retransmission timer, and an
   MTU of at least 1280, are reported each time they are advertised; the
   glue applies them (and bounds the MTU by the link's).
5. Prefix options: one that is malformed, link-local or multicast, or whose
   preferred lifetime exceeds its valid lifetime, is ignored whole (KAME's
   ``in6_init_prefix_ltimes``). With the L flag it adds, refreshes or (valid
   lifetime 0) removes an on-link prefix; without it, it says nothing about
   on-link state.
6. With the A flag (RFC 4862 5.5.3), a /64 prefix forms the address
   ``prefix + iid``; other lengths are counted and ignored. A new address
   (valid lifetime non-zero) is reported in ``new_addresses`` and goes
   through :class:`Dad` in the glue. For an existing one the preferred
   lifetime is reset, and the valid lifetime follows the two-hour rule (e):
   taken if above two hours or above what remains; kept if two hours or
   less remain; otherwise set to two hours. Advertisements are not
   authenticated (no SEND), so rule (e)2's exception never applies.
7. :meth:`~HostAutoconf.expire` deprecates an address at its
   ``preferred_until`` and removes it at its ``valid_until``; routers and
   prefixes go at their expiry. Lifetime 0xFFFFFFFF is infinity: never.
8. Bounds: at most ``max_routers``, ``max_prefixes`` and ``max_addresses``
   entries; an advertisement that would add more is obeyed except for the
   extra entries, which are counted (RFC 4861 6.3.4 lets a host limit its
   lists).
9. An address the glue's DAD found DUPLICATE is marked with
   :meth:`~HostAutoconf.address_duplicated`: it stays in the list (so the
   next advertisement does not form it again) without further updates or
   deprecation reports, and is removed at its valid lifetime.

DragonFly: ``nd6_ra_input``, ``defrtrlist_update`` and ``prelist_update``
in ``sys/netinet6/nd6_rtr.c``; solicitations come from ``rtsold(8)``.
Divergence: KAME hangs autoconfigured addresses off the prefix entry; here
the lists are separate, as RFC 4861 and 4862 describe them, so an address
outlives an on-link prefix and vice versa.

Theory of operation: the router
===============================

:class:`RouterAdvertiser` decides when one advertising interface multicasts
a Router Advertisement to ff02::1 (RFC 4861 6.2).

1. One timer holds the next multicast advertisement. After each one it is
   reset to a uniformly random interval in ``[min_interval, max_interval]``;
   for the first MAX_INITIAL_RTR_ADVERTISEMENTS after :meth:`start` the
   interval is capped at MAX_INITIAL_RTR_ADVERT_INTERVAL (6.2.4).
2. A Router Solicitation is answered by a multicast advertisement after a
   random delay in ``[0, MAX_RA_DELAY_TIME]``; if the last multicast
   advertisement went out less than MIN_DELAY_BETWEEN_RAS ago, at that
   much plus the delay after it instead. An advertisement already scheduled
   sooner answers it, and while an answer is pending, further solicitations
   coalesce into it (6.2.6). Hence no two multicast advertisements are ever
   less than MIN_DELAY_BETWEEN_RAS apart.
3. :meth:`stop` sends MAX_FINAL_RTR_ADVERTISEMENTS advertisements with
   router lifetime 0, MIN_DELAY_BETWEEN_RAS apart, then nothing (6.2.5).
   Solicitations received while stopping or stopped are ignored.
4. :meth:`expire` returns the advertisement to send; ``src`` is ``b""``,
   for the glue to fill in with the interface's link-local address.

DragonFly: ``usr.sbin/rtadvd/rtadvd.c`` (``ra_timer_update``, ``rs_input``,
``ra_output``, ``die``). Divergence: rtadvd's ``rs_input`` always re-arms
the timer, even when an advertisement is already due sooner; here the
sooner one answers, as 6.2.6 says.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import random

import attrs

from .ndp import PrefixInfo

__all__ = [
    "DUP_ADDR_DETECT_TRANSMITS",
    "INFINITE_LIFETIME",
    "MAX_FINAL_RTR_ADVERTISEMENTS",
    "MAX_INITIAL_RTR_ADVERTISEMENTS",
    "MAX_INITIAL_RTR_ADVERT_INTERVAL",
    "MAX_RA_DELAY_TIME",
    "MAX_RTR_SOLICITATIONS",
    "MAX_RTR_SOLICITATION_DELAY",
    "MIN_DELAY_BETWEEN_RAS",
    "RETRANS_TIMER",
    "RTR_SOLICITATION_INTERVAL",
    "AddressRow",
    "AutoconfChanges",
    "Dad",
    "DadState",
    "DadStep",
    "HostAutoconf",
    "HostAutoconfStatistics",
    "PrefixOption",
    "PrefixRow",
    "RaConfig",
    "RouterAdvertInfo",
    "RouterAdvertiser",
    "RouterAdvertiserStatistics",
    "RouterRow",
]

#### Protocol constants (RFC 4861 section 10, RFC 4862 section 5.1)

MAX_RTR_SOLICITATION_DELAY = 1.0
RTR_SOLICITATION_INTERVAL = 4.0
MAX_RTR_SOLICITATIONS = 3
DUP_ADDR_DETECT_TRANSMITS = 1
RETRANS_TIMER = 1.0
MAX_INITIAL_RTR_ADVERT_INTERVAL = 16.0
MAX_INITIAL_RTR_ADVERTISEMENTS = 3
MAX_FINAL_RTR_ADVERTISEMENTS = 3
MIN_DELAY_BETWEEN_RAS = 3.0
MAX_RA_DELAY_TIME = 0.5

#: A lifetime of all ones means forever (RFC 4861 4.6.2).
INFINITE_LIFETIME = 0xFFFFFFFF

IPV6_MMTU = 1280  # the least MTU of an IPv6 link (RFC 8200 section 5)
TWO_HOURS = 7200.0  # RFC 4862 5.5.3 (e)
# DragonFly: MAX_REACHABLE_TIME in sys/netinet6/nd6.h (ms); larger ignored.
MAX_REACHABLE_TIME_MS = 3_600_000
_MAX_ROUTER_LIFETIME = 9000  # RFC 4861 6.2.1, AdvDefaultLifetime
_U32 = 0xFFFFFFFF
_SOLICITED_NODE_PREFIX = bytes.fromhex("ff02" + "00" * 9 + "01ff")  # ff02::1:ff00:0/104


def _fmt_addr(addr: bytes) -> str:
    if len(addr) == 16:
        return str(ipaddress.IPv6Address(addr))
    return addr.hex() or "b''"


def _is_link_local(addr: bytes) -> bool:
    # fe80::/10, as IN6_IS_ADDR_LINKLOCAL.
    return len(addr) == 16 and addr[0] == 0xFE and addr[1] & 0xC0 == 0x80


def _mask(prefix: bytes, plen: int) -> bytes:
    """``prefix`` with the bits after the first ``plen`` cleared."""
    value = int.from_bytes(prefix, "big")
    keep = ((1 << plen) - 1) << (128 - plen)
    return (value & keep).to_bytes(16, "big")


def _until(now: float, lifetime: int) -> float:
    return math.inf if lifetime == INFINITE_LIFETIME else now + lifetime


#### Messages, as values


#: A Prefix Information option (RFC 4861 4.6.2): the ND codec's own value,
#: so an advertisement's prefixes pass between the two unconverted
#: (``prefix``, ``prefix_len``, ``on_link``, ``autonomous``,
#: ``valid_lifetime``, ``preferred_lifetime``; :data:`INFINITE_LIFETIME` is
#: forever).
PrefixOption = PrefixInfo


@attrs.frozen
class RouterAdvertInfo:
    """The content of a Router Advertisement (RFC 4861 4.2) that matters to
    autoconfiguration.

    Attributes:
        src: the router's link-local address (``b""`` in what
            :class:`RouterAdvertiser` returns: the glue fills it in).
        router_lifetime: seconds as a default router; 0: not one.
        cur_hop_limit: 0 means unspecified.
        reachable_time, retrans_timer: milliseconds; 0 means unspecified.
        mtu: the MTU option, if any.
        prefixes: the Prefix Information options.
        managed, other: the M and O flags (for DHCPv6; reported, not acted on).
    """

    src: bytes = attrs.field(repr=_fmt_addr)
    router_lifetime: int
    cur_hop_limit: int = 0
    reachable_time: int = 0
    retrans_timer: int = 0
    mtu: int | None = None
    prefixes: tuple[PrefixOption, ...] = ()
    managed: bool = False
    other: bool = False


#### Duplicate address detection


class DadState(enum.Enum):
    """Where DAD stands for an address (RFC 4862 5.4)."""

    TENTATIVE = "tentative"
    PREFERRED = "preferred"
    DUPLICATE = "duplicate"


@attrs.frozen
class DadStep:
    """What :meth:`Dad.expire` asks of the glue.

    Attributes:
        probe: send a Neighbor Solicitation for the address, from ``::``, to
            its solicited-node group, now.
        done: DAD passed: the address is PREFERRED, use it.
    """

    probe: bool = False
    done: bool = False


def _check_addr(addr: bytes, what: str = "an IPv6 address") -> None:
    if len(addr) != 16:
        raise ValueError(f"{what} is 16 bytes, got {len(addr)}")


@attrs.define(eq=False)
class Dad:
    """Duplicate address detection for one tentative address: see the
    module's theory of operation.

    Args:
        addr: the tentative address (16 bytes).
        transmits: probes to send (``DupAddrDetectTransmits``); 0 disables
            DAD.
        retrans_timer: seconds between probes and after the last one
            (``RetransTimer``).

    Raises:
        ValueError: ``addr`` is not 16 bytes, ``transmits`` is negative or
            ``retrans_timer`` not positive.
    """

    addr: bytes = attrs.field(repr=_fmt_addr)
    transmits: int = attrs.field(default=DUP_ADDR_DETECT_TRANSMITS, kw_only=True)
    retrans_timer: float = attrs.field(default=RETRANS_TIMER, kw_only=True)

    _state: DadState = attrs.field(init=False, default=DadState.TENTATIVE)
    _deadline: float | None = attrs.field(init=False, default=None)
    _sent: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        _check_addr(self.addr)
        if self.transmits < 0:
            raise ValueError(f"transmits must be >= 0, got {self.transmits}")
        if not self.retrans_timer > 0:
            raise ValueError(f"retrans_timer must be > 0 s, got {self.retrans_timer}")

    @property
    def state(self) -> DadState:
        """TENTATIVE, PREFERRED or DUPLICATE."""
        return self._state

    @property
    def probes_sent(self) -> int:
        """Probes :meth:`expire` has asked for so far (at most ``transmits``)."""
        return self._sent

    @property
    def solicited_node(self) -> bytes:
        """The address's solicited-node group, ff02::1:ffXX:XXXX (RFC 4291
        2.7.1): join it before the first probe, send probes to it."""
        return _SOLICITED_NODE_PREFIX + self.addr[13:]

    def start(self, now: float, delay: float) -> float:
        """Begin DAD: the first probe is due at ``now + delay``.

        With ``transmits == 0`` the address becomes PREFERRED here (check
        :attr:`state`) and nothing is scheduled. A second call, or one after
        DAD ended, changes nothing.

        Returns:
            When the first probe is due (``now`` if none is).

        Raises:
            ValueError: ``delay`` is negative.

        DragonFly: ``nd6_dad_start``.
        """
        if delay < 0:
            raise ValueError(f"delay must be >= 0 s, got {delay}")
        if self._state is not DadState.TENTATIVE:
            return now
        if self._deadline is not None:
            return self._deadline
        if self.transmits == 0:
            self._state = DadState.PREFERRED
            return now
        self._deadline = now + delay
        return self._deadline

    def expire(self, now: float) -> DadStep:
        """Do what is due at ``now``: a probe, or the verdict.

        DragonFly: ``nd6_dad_timer``.
        """
        if self._deadline is None or now < self._deadline:
            return DadStep()
        if self._sent < self.transmits:
            self._sent += 1
            self._deadline = now + self.retrans_timer
            return DadStep(probe=True)
        self._deadline = None
        self._state = DadState.PREFERRED
        return DadStep(done=True)

    def ns_received(self, *, from_unspecified: bool, own_probe: bool) -> bool:
        """A Neighbor Solicitation whose target is the address arrived.

        Args:
            from_unspecified: its source was ``::`` (a DAD probe).
            own_probe: the glue knows it is our own probe, looped back.

        Returns:
            True if it makes the address DUPLICATE (another node's probe).

        DragonFly: ``nd6_dad_ns_input``.
        """
        if self._state is not DadState.TENTATIVE or not from_unspecified or own_probe:
            return False
        self._duplicate()
        return True

    def na_received(self) -> bool:
        """A Neighbor Advertisement whose target is the address arrived.

        Returns:
            True if it makes the address DUPLICATE (always, while TENTATIVE).

        DragonFly: ``nd6_dad_na_input``.
        """
        if self._state is not DadState.TENTATIVE:
            return False
        self._duplicate()
        return True

    def next_deadline(self) -> float | None:
        """When :meth:`expire` has work next, or ``None`` if never."""
        return self._deadline

    def _duplicate(self) -> None:
        self._state = DadState.DUPLICATE
        self._deadline = None


#### The host


@attrs.frozen
class AutoconfChanges:
    """What :meth:`HostAutoconf.ra_input` and :meth:`HostAutoconf.expire` ask
    of the glue. Times are absolute (``now`` plus a lifetime), ``math.inf``
    for an infinite lifetime.

    Attributes:
        new_addresses: ``(addr, prefix_len, valid_until, preferred_until)``
            for addresses formed now: run DAD, then assign them.
        updated_addresses: the same for addresses whose lifetimes changed
            (one with ``preferred_until > now`` is preferred again).
        deprecated_addresses: addresses whose preferred lifetime ended: keep
            them, but prefer others as a source for new communication.
        removed_addresses: addresses whose valid lifetime ended: remove them.
        new_routers, removed_routers: default routers (link-local addresses).
        new_prefixes, removed_prefixes: ``(prefix, prefix_len)`` on-link
            prefixes; the prefix has its host bits cleared.
        mtu: set the link MTU (bounded by the interface's), or ``None``.
        hop_limit: set the default hop limit, or ``None``.
        reachable_time: set ``BaseReachableTime`` (seconds), or ``None``.
        retrans_timer: set ``RetransTimer`` (seconds), or ``None``.
    """

    new_addresses: tuple[tuple[bytes, int, float, float], ...] = ()
    updated_addresses: tuple[tuple[bytes, int, float, float], ...] = ()
    deprecated_addresses: tuple[bytes, ...] = ()
    removed_addresses: tuple[bytes, ...] = ()
    new_routers: tuple[bytes, ...] = ()
    removed_routers: tuple[bytes, ...] = ()
    new_prefixes: tuple[tuple[bytes, int], ...] = ()
    removed_prefixes: tuple[tuple[bytes, int], ...] = ()
    mtu: int | None = None
    hop_limit: int | None = None
    reachable_time: float | None = None
    retrans_timer: float | None = None


@attrs.frozen
class AddressRow:
    """One row of :meth:`HostAutoconf.addresses`.

    Attributes:
        addr: the address.
        prefix_len: its prefix length (64).
        valid_until, preferred_until: absolute times (``math.inf``: never).
        state: ``"preferred"``, ``"deprecated"`` or ``"duplicate"`` (DAD's
            TENTATIVE state lives in the glue's :class:`Dad`).
    """

    addr: bytes = attrs.field(repr=_fmt_addr)
    prefix_len: int
    valid_until: float
    preferred_until: float
    state: str


@attrs.frozen
class RouterRow:
    """One row of :meth:`HostAutoconf.routers`: a default router and when
    its lifetime ends."""

    addr: bytes = attrs.field(repr=_fmt_addr)
    expires: float


@attrs.frozen
class PrefixRow:
    """One row of :meth:`HostAutoconf.prefixes`: an on-link prefix and when
    its valid lifetime ends (``math.inf``: never)."""

    prefix: bytes = attrs.field(repr=_fmt_addr)
    prefix_len: int
    expires: float


@attrs.frozen
class HostAutoconfStatistics:
    """Counters of a :class:`HostAutoconf`, since it was made.

    Attributes:
        rs_sent: router solicitations :meth:`~HostAutoconf.expire` asked for.
        ra_received: advertisements processed.
        ra_ignored: advertisements ignored (``accept_rtadv`` off, or a source
            that is not link-local).
        routers_added, routers_removed: default routers added; removed by
            lifetime 0 or expiry.
        routers_ignored: new routers not added: the list was full.
        prefixes_added, prefixes_removed, prefixes_ignored: the same for
            on-link prefixes.
        addresses_added, addresses_deprecated, addresses_removed: SLAAC
            addresses formed, deprecated, removed.
        addresses_ignored: addresses not formed: the list was full.
        prefix_options_ignored: malformed, link-local or multicast prefixes,
            or preferred lifetime above valid lifetime.
        prefix_length_mismatch: A-flag prefixes not 64 bits long (RFC 4862
            5.5.3 (d)'s "system management error").
        valid_lifetime_kept: updates whose valid lifetime was ignored by the
            two-hour rule, (e)2.
        valid_lifetime_two_hours: updates whose valid lifetime was cut to two
            hours, (e)3.
    """

    rs_sent: int = 0
    ra_received: int = 0
    ra_ignored: int = 0
    routers_added: int = 0
    routers_removed: int = 0
    routers_ignored: int = 0
    prefixes_added: int = 0
    prefixes_removed: int = 0
    prefixes_ignored: int = 0
    addresses_added: int = 0
    addresses_deprecated: int = 0
    addresses_removed: int = 0
    addresses_ignored: int = 0
    prefix_options_ignored: int = 0
    prefix_length_mismatch: int = 0
    valid_lifetime_kept: int = 0
    valid_lifetime_two_hours: int = 0


@attrs.define(eq=False, slots=True)
class _Address:
    prefix_len: int
    valid_until: float
    preferred_until: float
    deprecated: bool = False
    duplicate: bool = False

    def row(self, addr: bytes) -> tuple[bytes, int, float, float]:
        return (addr, self.prefix_len, self.valid_until, self.preferred_until)


def _prefix_option_ok(p: PrefixOption) -> bool:
    return (
        len(p.prefix) == 16
        and 0 <= p.prefix_len <= 128
        and 0 <= p.preferred_lifetime <= p.valid_lifetime <= _U32
        and not _is_link_local(p.prefix)
        and p.prefix[0] != 0xFF  # multicast
    )


@attrs.define(eq=False)
class HostAutoconf:
    """One interface's router discovery and stateless address
    autoconfiguration: see the module's theory of operation.

    Args:
        iid: the 8-byte interface identifier (modified EUI-64, or a stable
            private one) appended to /64 prefixes.
        accept_rtadv: process advertisements at all
            (``net.inet6.ip6.accept_rtadv``).
        max_addresses, max_routers, max_prefixes: the list bounds.
        rng: the source of the solicitation delay.

    .. attribute:: accept_rtadv

       May be changed at any time; while false, :meth:`ra_input` changes
       nothing and :meth:`start` schedules no solicitation.

    Not thread-safe. Each call is O(entries), at most
    ``max_addresses + max_routers + max_prefixes``, plus O(options) in
    :meth:`ra_input`.
    """

    iid: bytes = attrs.field(repr=lambda b: b.hex(":"))
    accept_rtadv: bool = attrs.field(default=True, kw_only=True)
    max_addresses: int = attrs.field(default=16, kw_only=True, validator=attrs.validators.ge(0))
    max_routers: int = attrs.field(default=8, kw_only=True, validator=attrs.validators.ge(0))
    max_prefixes: int = attrs.field(default=16, kw_only=True, validator=attrs.validators.ge(0))
    rng: random.Random = attrs.field(kw_only=True, repr=False)

    _addresses: dict[bytes, _Address] = attrs.field(init=False, factory=dict)
    _routers: dict[bytes, float] = attrs.field(init=False, factory=dict)
    _prefixes: dict[tuple[bytes, int], float] = attrs.field(init=False, factory=dict)
    _rs_next: float | None = attrs.field(init=False, default=None)
    _rs_sent: int = attrs.field(init=False, default=0)
    _stats: dict[str, int] = attrs.field(
        init=False, factory=lambda: dict.fromkeys(attrs.fields_dict(HostAutoconfStatistics), 0)
    )

    def __attrs_post_init__(self) -> None:
        if len(self.iid) != 8:
            raise ValueError(f"the interface identifier is 8 bytes, got {len(self.iid)}")

    ####  Router solicitation

    def start(self, now: float) -> None:
        """The interface came up: schedule up to MAX_RTR_SOLICITATIONS
        router solicitations, the first after a random delay in
        ``[0, MAX_RTR_SOLICITATION_DELAY]``. Calling it again starts over.

        DragonFly: ``rtsold(8)``.
        """
        self._rs_sent = 0
        self._rs_next = None
        if self.accept_rtadv:
            self._rs_next = now + self.rng.uniform(0.0, MAX_RTR_SOLICITATION_DELAY)

    ####  Advertisements

    def ra_input(self, ra: RouterAdvertInfo, now: float) -> AutoconfChanges:
        """Process a validated Router Advertisement (RFC 4861 6.1.2 is the ND
        code's job: hop limit 255, ICMP code 0, lengths, options).

        Returns:
            An :class:`AutoconfChanges`: what the advertisement added,
            refreshed or removed, and link parameters to set.

        DragonFly: ``nd6_ra_input``.
        """
        stats = self._stats
        if not self.accept_rtadv or not _is_link_local(ra.src):
            stats["ra_ignored"] += 1
            return AutoconfChanges()
        stats["ra_received"] += 1
        if ra.router_lifetime != 0:
            self._rs_next = None  # RFC 4861 6.3.7: desist from soliciting

        new_routers: tuple[bytes, ...] = ()
        removed_routers: tuple[bytes, ...] = ()
        if ra.src in self._routers:
            if ra.router_lifetime == 0:
                del self._routers[ra.src]
                removed_routers = (ra.src,)
                stats["routers_removed"] += 1
            else:
                self._routers[ra.src] = now + ra.router_lifetime
        elif ra.router_lifetime != 0:
            if len(self._routers) < self.max_routers:
                self._routers[ra.src] = now + ra.router_lifetime
                new_routers = (ra.src,)
                stats["routers_added"] += 1
            else:
                stats["routers_ignored"] += 1

        # Collected in dicts so that an option repeated within one
        # advertisement reports each entry once, in its final state.
        new_addresses: dict[bytes, tuple[bytes, int, float, float]] = {}
        updated_addresses: dict[bytes, tuple[bytes, int, float, float]] = {}
        new_prefixes: dict[tuple[bytes, int], None] = {}
        removed_prefixes: dict[tuple[bytes, int], None] = {}
        for option in ra.prefixes:
            if not _prefix_option_ok(option):
                stats["prefix_options_ignored"] += 1
                continue
            key = (_mask(option.prefix, option.prefix_len), option.prefix_len)
            if option.on_link:
                self._on_link(key, option.valid_lifetime, now, new_prefixes, removed_prefixes)
            if option.autonomous:
                self._autonomous(key, option, now, new_addresses, updated_addresses)

        mtu = ra.mtu if ra.mtu is not None and IPV6_MMTU <= ra.mtu <= _U32 else None
        return AutoconfChanges(
            new_addresses=tuple(new_addresses.values()),
            updated_addresses=tuple(updated_addresses.values()),
            new_routers=new_routers,
            removed_routers=removed_routers,
            new_prefixes=tuple(new_prefixes),
            removed_prefixes=tuple(removed_prefixes),
            mtu=mtu,
            hop_limit=ra.cur_hop_limit if 0 < ra.cur_hop_limit <= 255 else None,
            reachable_time=(
                ra.reachable_time / 1000 if 0 < ra.reachable_time <= MAX_REACHABLE_TIME_MS else None
            ),
            retrans_timer=ra.retrans_timer / 1000 if 0 < ra.retrans_timer <= _U32 else None,
        )

    def _on_link(
        self,
        key: tuple[bytes, int],
        valid: int,
        now: float,
        new: dict[tuple[bytes, int], None],
        removed: dict[tuple[bytes, int], None],
    ) -> None:
        # RFC 4861 6.3.4, the on-link half of a Prefix Information option.
        stats = self._stats
        if key in self._prefixes:
            if valid == 0:
                del self._prefixes[key]
                stats["prefixes_removed"] += 1
                if key in new:
                    del new[key]  # added and removed by one advertisement
                else:
                    removed[key] = None
            else:
                self._prefixes[key] = _until(now, valid)
        elif valid != 0:
            if len(self._prefixes) < self.max_prefixes:
                self._prefixes[key] = _until(now, valid)
                stats["prefixes_added"] += 1
                if key in removed:
                    del removed[key]  # removed and added again by one advertisement
                else:
                    new[key] = None
            else:
                stats["prefixes_ignored"] += 1

    def _autonomous(
        self,
        key: tuple[bytes, int],
        option: PrefixOption,
        now: float,
        new: dict[bytes, tuple[bytes, int, float, float]],
        updated: dict[bytes, tuple[bytes, int, float, float]],
    ) -> None:
        # RFC 4862 5.5.3 (d) and (e); (a)-(c) were checked by the caller.
        stats = self._stats
        prefix, plen = key
        if plen + 8 * len(self.iid) != 128:
            stats["prefix_length_mismatch"] += 1
            return
        addr = prefix[:8] + self.iid
        valid, preferred = option.valid_lifetime, option.preferred_lifetime
        entry = self._addresses.get(addr)
        if entry is None:
            if valid == 0:
                return
            if len(self._addresses) >= self.max_addresses:
                stats["addresses_ignored"] += 1
                return
            entry = _Address(plen, _until(now, valid), _until(now, preferred))
            self._addresses[addr] = entry
            new[addr] = entry.row(addr)
            stats["addresses_added"] += 1
            return
        remaining = entry.valid_until - now
        if valid == INFINITE_LIFETIME or valid > TWO_HOURS or valid > remaining:
            entry.valid_until = _until(now, valid)  # (e)1
        elif remaining <= TWO_HOURS:
            stats["valid_lifetime_kept"] += 1  # (e)2: unauthenticated, ignored
        else:
            entry.valid_until = now + TWO_HOURS  # (e)3
            stats["valid_lifetime_two_hours"] += 1
        # preferred <= valid was checked, and each rule keeps valid_until at
        # least now + valid; min() only guards float rounding.
        entry.preferred_until = min(_until(now, preferred), entry.valid_until)
        if entry.preferred_until > now:
            entry.deprecated = False
        if entry.duplicate:
            return
        if addr in new:
            new[addr] = entry.row(addr)
        else:
            updated[addr] = entry.row(addr)

    ####  Timers

    def expire(self, now: float) -> tuple[bool, AutoconfChanges]:
        """Do the work due at ``now``.

        Returns:
            ``(solicit, changes)``: whether to send a Router Solicitation
            (to ff02::2) now, and the addresses deprecated or removed, and
            the routers and prefixes removed, by their lifetimes.
        """
        stats = self._stats
        solicit = False
        if self._rs_next is not None and self._rs_next <= now:
            solicit = True
            self._rs_sent += 1
            stats["rs_sent"] += 1
            self._rs_next = (
                now + RTR_SOLICITATION_INTERVAL if self._rs_sent < MAX_RTR_SOLICITATIONS else None
            )
        deprecated: list[bytes] = []
        removed: list[bytes] = []
        for addr, entry in list(self._addresses.items()):
            if entry.valid_until <= now:
                del self._addresses[addr]
                removed.append(addr)
                stats["addresses_removed"] += 1
            elif not entry.deprecated and entry.preferred_until <= now:
                entry.deprecated = True
                if not entry.duplicate:
                    deprecated.append(addr)
                    stats["addresses_deprecated"] += 1
        removed_routers = [r for r, expires in self._routers.items() if expires <= now]
        for router in removed_routers:
            del self._routers[router]
        stats["routers_removed"] += len(removed_routers)
        removed_prefixes = [p for p, expires in self._prefixes.items() if expires <= now]
        for key in removed_prefixes:
            del self._prefixes[key]
        stats["prefixes_removed"] += len(removed_prefixes)
        return solicit, AutoconfChanges(
            deprecated_addresses=tuple(deprecated),
            removed_addresses=tuple(removed),
            removed_routers=tuple(removed_routers),
            removed_prefixes=tuple(removed_prefixes),
        )

    def next_deadline(self) -> float | None:
        """The earliest time :meth:`expire` has work, or ``None`` if never
        (only infinite lifetimes, and no solicitation pending)."""
        times = [e.valid_until for e in self._addresses.values()]
        times += [e.preferred_until for e in self._addresses.values() if not e.deprecated]
        times += self._routers.values()
        times += self._prefixes.values()
        if self._rs_next is not None:
            times.append(self._rs_next)
        deadline = min(times, default=math.inf)
        return None if deadline == math.inf else deadline

    ####  Administration and views

    def address_duplicated(self, addr: bytes) -> bool:
        """DAD found ``addr`` (from ``new_addresses``) DUPLICATE: keep it
        unused until its valid lifetime ends (rule 9).

        Returns:
            Whether ``addr`` is one of the autoconfigured addresses.
        """
        entry = self._addresses.get(addr)
        if entry is None:
            return False
        entry.duplicate = True
        return True

    def addresses(self) -> tuple[AddressRow, ...]:
        """The autoconfigured addresses, sorted."""
        rows = []
        for addr, e in sorted(self._addresses.items()):
            state = "duplicate" if e.duplicate else "deprecated" if e.deprecated else "preferred"
            rows.append(AddressRow(addr, e.prefix_len, e.valid_until, e.preferred_until, state))
        return tuple(rows)

    def routers(self) -> tuple[RouterRow, ...]:
        """The default router list, sorted."""
        return tuple(RouterRow(addr, expires) for addr, expires in sorted(self._routers.items()))

    def prefixes(self) -> tuple[PrefixRow, ...]:
        """The on-link prefix list, sorted."""
        return tuple(PrefixRow(p, plen, exp) for (p, plen), exp in sorted(self._prefixes.items()))

    def statistics(self) -> HostAutoconfStatistics:
        """The counters, as a frozen :class:`HostAutoconfStatistics`."""
        return HostAutoconfStatistics(**self._stats)


#### The router


def _check_prefix_option(p: PrefixOption) -> None:
    if len(p.prefix) != 16:
        raise ValueError(f"a prefix is 16 bytes, got {len(p.prefix)}")
    if not 0 <= p.prefix_len <= 128:
        raise ValueError(f"prefix_len must be 0..128, got {p.prefix_len}")
    if not 0 <= p.preferred_lifetime <= p.valid_lifetime <= _U32:
        raise ValueError(
            "prefix lifetimes need 0 <= preferred <= valid <= 0xFFFFFFFF, "
            f"got preferred {p.preferred_lifetime}, valid {p.valid_lifetime}"
        )


@attrs.frozen
class RaConfig:
    """What a :class:`RouterAdvertiser` advertises, and how often (RFC 4861
    6.2.1's per-interface variables; ``rtadvd.conf(5)``).

    Attributes:
        prefixes: the Prefix Information options.
        min_interval, max_interval: seconds between unsolicited
            advertisements (``MinRtrAdvInterval``, ``MaxRtrAdvInterval``).
        router_lifetime: ``AdvDefaultLifetime``, seconds; 0: not a default
            router.
        cur_hop_limit, mtu, reachable_time (ms), retrans_timer (ms),
        managed, other: advertised as they are.

    Raises:
        ValueError: 4 <= max_interval <= 1800, 3 <= min_interval <=
            0.75 * max_interval, router_lifetime 0 or max_interval..9000, or
            a field out of its field's range, does not hold.
    """

    prefixes: tuple[PrefixOption, ...] = attrs.field(default=(), converter=tuple)
    min_interval: float = 200.0
    max_interval: float = 600.0
    router_lifetime: int = 1800
    cur_hop_limit: int = 64
    mtu: int | None = None
    reachable_time: int = 0
    retrans_timer: int = 0
    managed: bool = False
    other: bool = False

    def __attrs_post_init__(self) -> None:
        if not 4 <= self.max_interval <= 1800:
            raise ValueError(f"max_interval must be 4..1800 s, got {self.max_interval}")
        if not 3 <= self.min_interval <= 0.75 * self.max_interval:
            raise ValueError(
                f"min_interval must be 3..0.75*max_interval ({0.75 * self.max_interval:g}) s, "
                f"got {self.min_interval}"
            )
        lifetime = self.router_lifetime
        if lifetime != 0 and not self.max_interval <= lifetime <= _MAX_ROUTER_LIFETIME:
            raise ValueError(
                f"router_lifetime must be 0 or max_interval..9000 s, got {self.router_lifetime}"
            )
        if not 0 <= self.cur_hop_limit <= 255:
            raise ValueError(f"cur_hop_limit must be 0..255, got {self.cur_hop_limit}")
        if self.mtu is not None and not IPV6_MMTU <= self.mtu <= _U32:
            raise ValueError(f"mtu must be at least 1280, got {self.mtu}")
        if not 0 <= self.reachable_time <= MAX_REACHABLE_TIME_MS:
            raise ValueError(f"reachable_time must be 0..3600000 ms, got {self.reachable_time}")
        if not 0 <= self.retrans_timer <= _U32:
            raise ValueError(f"retrans_timer must be 0..0xFFFFFFFF ms, got {self.retrans_timer}")
        for option in self.prefixes:
            _check_prefix_option(option)


@attrs.frozen
class RouterAdvertiserStatistics:
    """Counters of a :class:`RouterAdvertiser`, since it was made.

    Attributes:
        advertisements: multicast advertisements :meth:`~RouterAdvertiser.expire`
            returned (all kinds).
        solicited: of those, ones that answered at least one solicitation.
        final: of those, final ones (router lifetime 0) after
            :meth:`~RouterAdvertiser.stop`.
        solicitations: solicitations received while advertising.
        solicitations_coalesced: of those, answered by an advertisement
            already scheduled (by an earlier solicitation, or the periodic
            timer when it was due sooner).
        solicitations_ignored: solicitations received while not advertising.
    """

    advertisements: int = 0
    solicited: int = 0
    final: int = 0
    solicitations: int = 0
    solicitations_coalesced: int = 0
    solicitations_ignored: int = 0


class _RaState(enum.Enum):
    IDLE = "idle"  # not started, or every final advertisement sent
    ADVERTISING = "advertising"
    STOPPING = "stopping"  # final advertisements left to send


@attrs.define(eq=False)
class RouterAdvertiser:
    """The advertising side of one router interface: see the module's theory
    of operation.

    Args:
        config: what to advertise and how often.
        rng: the source of the random intervals and delays.

    Not thread-safe; every call is O(1), apart from the advertisement's
    prefix tuple, which is shared, not copied.
    """

    config: RaConfig
    rng: random.Random = attrs.field(repr=False)

    _state: _RaState = attrs.field(init=False, default=_RaState.IDLE)
    _next: float | None = attrs.field(init=False, default=None)
    _answering: bool = attrs.field(init=False, default=False)  # next one answers an RS
    _sent: int = attrs.field(init=False, default=0)  # since start(), or finals while stopping
    _last: float | None = attrs.field(init=False, default=None)
    _stats: dict[str, int] = attrs.field(
        init=False, factory=lambda: dict.fromkeys(attrs.fields_dict(RouterAdvertiserStatistics), 0)
    )

    @property
    def advertising(self) -> bool:
        """Between :meth:`start` and :meth:`stop`."""
        return self._state is _RaState.ADVERTISING

    def start(self, now: float) -> None:
        """The interface becomes an advertising interface: schedule the
        first advertisement (rule 1). No-op while already advertising; while
        stopping, the remaining final advertisements are cancelled.

        DragonFly: ``rtadvd``'s ``ra_timer_update`` at start-up.
        """
        if self._state is _RaState.ADVERTISING:
            return
        self._state = _RaState.ADVERTISING
        self._sent = 0
        self._answering = False
        self._next = now + self._interval()

    def rs_received(self, now: float) -> None:
        """A Router Solicitation arrived: schedule a multicast answer (rule 2).

        DragonFly: ``rs_input``.
        """
        stats = self._stats
        if self._state is not _RaState.ADVERTISING:
            stats["solicitations_ignored"] += 1
            return
        stats["solicitations"] += 1
        if self._answering:
            stats["solicitations_coalesced"] += 1
            return
        self._answering = True
        delay = self.rng.uniform(0.0, MAX_RA_DELAY_TIME)
        if self._last is not None and now < self._last + MIN_DELAY_BETWEEN_RAS:
            when = self._last + MIN_DELAY_BETWEEN_RAS + delay
        else:
            when = now + delay
        assert self._next is not None  # always set while advertising
        if when < self._next:
            self._next = when
        else:
            stats["solicitations_coalesced"] += 1

    def stop(self, now: float) -> None:
        """The interface ceases to advertise: schedule the final
        advertisements with router lifetime 0 (rule 3), the first now or as
        soon as MIN_DELAY_BETWEEN_RAS allows. No-op unless advertising.

        DragonFly: ``die``.
        """
        if self._state is not _RaState.ADVERTISING:
            return
        self._state = _RaState.STOPPING
        self._sent = 0
        self._answering = False
        when = now
        if self._last is not None:
            when = max(now, self._last + MIN_DELAY_BETWEEN_RAS)
        self._next = when

    def expire(self, now: float) -> RouterAdvertInfo | None:
        """The advertisement to multicast to ff02::1 now, if one is due.

        DragonFly: ``ra_timeout`` and ``ra_output``.
        """
        if self._next is None or now < self._next:
            return None
        stats = self._stats
        self._last = now
        self._sent += 1
        stats["advertisements"] += 1
        ra = self._advertisement()
        if self._state is _RaState.STOPPING:
            stats["final"] += 1
            ra = attrs.evolve(ra, router_lifetime=0)
            if self._sent < MAX_FINAL_RTR_ADVERTISEMENTS:
                self._next = now + MIN_DELAY_BETWEEN_RAS
            else:
                self._next = None
                self._state = _RaState.IDLE
            return ra
        if self._answering:
            stats["solicited"] += 1
            self._answering = False
        self._next = now + self._interval()
        return ra

    def next_deadline(self) -> float | None:
        """When :meth:`expire` has an advertisement next, or ``None``."""
        return self._next

    def statistics(self) -> RouterAdvertiserStatistics:
        """The counters, as a frozen :class:`RouterAdvertiserStatistics`."""
        return RouterAdvertiserStatistics(**self._stats)

    def _interval(self) -> float:
        # Rule 1: the interval before advertisement number self._sent + 1.
        config = self.config
        interval = self.rng.uniform(config.min_interval, config.max_interval)
        if self._sent < MAX_INITIAL_RTR_ADVERTISEMENTS:
            interval = min(interval, MAX_INITIAL_RTR_ADVERT_INTERVAL)
        return interval

    def _advertisement(self) -> RouterAdvertInfo:
        config = self.config
        return RouterAdvertInfo(
            src=b"",
            router_lifetime=config.router_lifetime,
            cur_hop_limit=config.cur_hop_limit,
            reachable_time=config.reachable_time,
            retrans_timer=config.retrans_timer,
            mtu=config.mtu,
            prefixes=config.prefixes,
            managed=config.managed,
            other=config.other,
        )
