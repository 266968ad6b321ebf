"""The IPv6 neighbour cache of RFC 4861 (sections 7.2, 7.3 and 10), sans-IO.

Theory of operation
===================

:class:`NeighborCache` is the IPv6 twin of :class:`.arp.ArpCache`: it maps
IPv6 addresses to MACs. It never sends, sleeps or reads a clock: every
method takes ``now`` and returns what the glue must do (send a Neighbor
Solicitation, send the packets that waited, answer the packets of a failed
resolution with ICMPv6 address unreachable, count what was dropped). The
glue parses and builds the ND messages; the cache sees addresses, MACs and
flags only.

1. An entry is in one of RFC 4861's reachability states (:class:`NdState`):
   INCOMPLETE (multicast solicitations are out, packets wait), REACHABLE
   (confirmed less than ReachableTime ago), STALE (a MAC nobody vouches for
   lately), DELAY (a packet went to a STALE entry: upper layers get
   :data:`DELAY_FIRST_PROBE_TIME` to confirm), PROBE (unicast solicitations
   are out); or PERMANENT, a static entry added by the administrator, never
   aged and never changed by the network.
2. :meth:`~NeighborCache.resolve` is the one call per outgoing packet. A
   REACHABLE or PERMANENT entry answers its MAC and does nothing else (each
   entry keeps its answer ready: no allocation). A STALE entry, or a
   REACHABLE one whose ReachableTime is over (found lazily, as section 7.3.3
   allows), answers its MAC and goes to DELAY; DELAY and PROBE answer their
   MAC. An unknown address gets an INCOMPLETE entry holding the packet and a
   multicast :class:`Solicit`; an INCOMPLETE entry holds the packet, at most
   ``max_pending`` of them (the oldest is pushed out as ``dropped``).
3. :meth:`~NeighborCache.na_input` applies section 7.2.5 (the table
   ``_NA_RULES``); :meth:`~NeighborCache.lladdr_input` sections 7.2.3, 6.2.6,
   6.3.4 and 8.3 (a link-layer address option in an NS, RS, RA or Redirect);
   :meth:`~NeighborCache.confirm` section 7.3.1 (upper-layer confirmation).
   Completing an INCOMPLETE entry releases its packets, in order; one that
   completes STALE goes on to DELAY, since those packets are sent to a STALE
   entry (7.3.3; Appendix C's table stops at STALE). Each entry
   carries the IsRouter flag; ``router_lost`` says it fell from True to
   False, for the glue to drop that default router (7.2.5, last paragraph).
4. :meth:`~NeighborCache.expire` does the timed work: an INCOMPLETE entry
   solicits again every ``retrans_timer`` seconds and gives up after
   :data:`MAX_MULTICAST_SOLICIT` solicitations (``failed``, with its
   packets); DELAY becomes PROBE with a unicast solicitation; PROBE solicits
   again and, after :data:`MAX_UNICAST_SOLICIT` unanswered probes, the entry
   is deleted (``unreachable``); REACHABLE becomes STALE at the end of its
   ReachableTime; STALE entries idle for ``gc_stale_time`` are deleted
   (``collected``). :meth:`~NeighborCache.next_deadline` says when to call
   it next.
5. ReachableTime is one value per cache, that is per interface, as section
   6.3.2 has it: ``reachable_time`` (BaseReachableTime) times a factor
   drawn uniformly from [:data:`MIN_RANDOM_FACTOR`,
   :data:`MAX_RANDOM_FACTOR`] by ``rng``. It is drawn again when the base
   changes (:meth:`~NeighborCache.set_base_reachable_time`, from a Router
   Advertisement) and at the first confirmation after
   :data:`RECOMPUTE_REACHABLE_INTERVAL` ("at least every few hours"). Not
   drawn per confirmation: one value per link is what the RFC specifies,
   and it keeps rule 7's tables in order.
6. At most ``max_entries`` dynamic entries exist. Creating one more evicts
   the STALE entry idle longest (it loses nothing but a future multicast
   solicitation), else the INCOMPLETE entry nearest to giving up (its
   packets are returned as ``evicted``). Entries in use (REACHABLE, DELAY,
   PROBE) are never evicted: when all are in use the new entry is refused
   (its packet comes back as ``dropped``, a link-layer option is ignored as
   ``"table_full"``), so a flood of new addresses cannot push out the
   neighbours a host is talking to (RFC 6583 section 7.1). Static entries
   do not count against the bound.
7. ``now`` must never decrease. Each dynamic state has its own table, in
   deadline order because every deadline in it is ``now`` plus that
   state's constant (``retrans_timer``, ReachableTime, ``gc_stale_time``,
   :data:`DELAY_FIRST_PROBE_TIME`). When a constant changes, the deadlines
   already in its tables are capped at ``now`` plus the new value (which
   keeps their order and puts every later one after them). So
   :meth:`~NeighborCache.next_deadline` is O(1) and
   :meth:`~NeighborCache.expire` does work only for what is due.
8. Addresses the glue passes as its own decisions (``resolve``,
   ``confirm``, ``lookup``, ``add_static``, ``remove``) must be 16-byte
   unicast addresses, neither multicast nor unspecified: anything else
   raises :exc:`ValueError` (checked where it costs nothing on the hot path:
   when the address is not in the table). Values from the network
   (``na_input``, ``lladdr_input``) are ignored with a ``reason`` instead.

DragonFly: ``sys/netinet6/nd6.c`` (``nd6_output``, ``nd6_timer``,
``nd6_cache_lladdr``, ``nd6_nud_hint``, ``nd6_slowtimo``) and
``sys/netinet6/nd6_nbr.c`` (``nd6_na_input``, ``nd6_ns_output``).
Divergence: KAME code keeps neighbour entries in the routing table and holds
one packet per entry (``ln_hold``); here the cache is its own table and holds
up to ``max_pending`` packets, like FreeBSD's ``net.inet6.ip6.maxhold`` hold
chain. DragonFly keeps STALE entries for ``nd6_gctimer`` (one day) and has
no bound on the table; here :data:`GC_STALE_TIME` is 20 minutes (DragonFly's
ARP ``max_age``) and rule 6 bounds the table.
"""

from __future__ import annotations

import enum
import ipaddress
import random
from collections import OrderedDict, deque

import attrs

__all__ = [
    "DELAY_FIRST_PROBE_TIME",
    "GC_STALE_TIME",
    "MAX_MULTICAST_SOLICIT",
    "MAX_RANDOM_FACTOR",
    "MAX_UNICAST_SOLICIT",
    "MIN_RANDOM_FACTOR",
    "REACHABLE_TIME",
    "RECOMPUTE_REACHABLE_INTERVAL",
    "RETRANS_TIMER",
    "NdState",
    "Nd6EntryRow",
    "Nd6Expiry",
    "Nd6Input",
    "Nd6Resolution",
    "Nd6Statistics",
    "NeighborCache",
    "Solicit",
]

#### RFC 4861 section 10: node constants (times in seconds)

MAX_MULTICAST_SOLICIT = 3
MAX_UNICAST_SOLICIT = 3
RETRANS_TIMER = 1.0
DELAY_FIRST_PROBE_TIME = 5.0
REACHABLE_TIME = 30.0
MIN_RANDOM_FACTOR = 0.5
MAX_RANDOM_FACTOR = 1.5

#: How long a STALE entry stays unused before :meth:`NeighborCache.expire`
#: deletes it. RFC 4861 leaves it open (section 7.3.3: "could be removed ...
#: after some time"); DragonFly's ``nd6_gctimer`` is a day, Linux's
#: ``gc_stale_time`` a minute.
GC_STALE_TIME = 1200.0

#: ReachableTime is drawn again at the first confirmation this long after
#: the last draw. DragonFly: ``ND6_RECALC_REACHTM_INTERVAL`` (two hours).
RECOMPUTE_REACHABLE_INTERVAL = 7200.0

_SOLICITED_NODE_PREFIX = bytes.fromhex("ff0200000000000000000001ff")  # ff02::1:ff00:0/104
_UNSPECIFIED = bytes(16)
_INF = float("inf")


def _fmt_ip6(ip: bytes) -> str:
    if len(ip) == 16:
        return ipaddress.IPv6Address(bytes(ip)).compressed
    return bytes(ip).hex()


def _fmt_mac(mac: bytes | None) -> str:
    return "None" if mac is None else bytes(mac).hex(":")


def _solicited_node(ip: bytes) -> bytes:
    # RFC 4291 section 2.7.1: ff02::1:ff00:0/104 and the address's low 24 bits.
    return _SOLICITED_NODE_PREFIX + ip[13:]


def _is_neighbor_address(ip: bytes) -> bool:
    return len(ip) == 16 and ip[0] != 0xFF and ip != _UNSPECIFIED


def _is_unicast_mac(mac: bytes) -> bool:
    return len(mac) == 6 and not mac[0] & 1


def _check_ip(ip: bytes) -> None:
    if len(ip) != 16:
        raise ValueError(f"an IPv6 address is 16 bytes, got {len(ip)}")
    if ip[0] == 0xFF:
        raise ValueError(
            f"{_fmt_ip6(ip)} is a multicast address: it maps to a MAC directly, never through the neighbour cache"
        )
    if ip == _UNSPECIFIED:
        raise ValueError(":: (the unspecified address) is nobody's address and has no neighbour entry")


class NdState(enum.Enum):
    """The reachability state of a neighbour entry (RFC 4861 section 7.3.2),
    plus PERMANENT for static entries (``ndp -s``)."""

    INCOMPLETE = "incomplete"
    REACHABLE = "reachable"
    STALE = "stale"
    DELAY = "delay"
    PROBE = "probe"
    PERMANENT = "permanent"


_INCOMPLETE = NdState.INCOMPLETE
_REACHABLE = NdState.REACHABLE
_STALE = NdState.STALE
_DELAY = NdState.DELAY
_PROBE = NdState.PROBE
_PERMANENT = NdState.PERMANENT


#### Results of the cache's methods


@attrs.frozen
class Solicit:
    """A Neighbor Solicitation for the glue to send now.

    Attributes:
        target: the address being resolved or probed (the NS's Target).
        dst: the IPv6 destination: the target's solicited-node group
            (``ff02::1:ffXX:XXXX``) to resolve an INCOMPLETE entry, the
            target itself for a PROBE.
        dst_mac: the Ethernet destination of a unicast probe (the cached
            MAC); ``None`` for the multicast solicitation, whose MAC the
            glue maps from ``dst`` (RFC 2464 section 7).
    """

    target: bytes = attrs.field(repr=_fmt_ip6)
    dst: bytes = attrs.field(repr=_fmt_ip6)
    dst_mac: bytes | None = attrs.field(default=None, repr=_fmt_mac)


@attrs.frozen
class Nd6Resolution:
    """What :meth:`NeighborCache.resolve` asks of the glue.

    Attributes:
        mac: the destination MAC: send the packet now. ``None``: the packet
            waits in the cache (or is in ``dropped``).
        solicit: a Neighbor Solicitation to send now (only for the packet
            that created the entry; retransmissions come from
            :meth:`NeighborCache.expire`).
        dropped: waiting packets the cache let go of, for the glue to count:
            the oldest one pushed out of this address's full queue, or this
            very packet when the table is full of entries in use.
        evicted: packets that waited for another address whose INCOMPLETE
            entry was evicted to make room, for the glue to count.
    """

    mac: bytes | None = attrs.field(default=None, repr=_fmt_mac)
    solicit: Solicit | None = None
    dropped: tuple[object, ...] = ()
    evicted: tuple[object, ...] = ()


@attrs.frozen
class Nd6Input:
    """What :meth:`NeighborCache.na_input` and
    :meth:`NeighborCache.lladdr_input` ask of the glue.

    Attributes:
        released: ``(mac, packet)`` pairs, in the order the packets were
            queued: a resolution completed, send them now.
        evicted: packets that waited for another address whose INCOMPLETE
            entry was evicted to make room for a new entry, for the glue to
            count.
        reason: why the message was ignored (``"no_entry"``, ``"no_lladdr"``,
            ``"lladdr_differs"``, ``"static"``, ``"table_full"``,
            ``"bad_address"``, ``"bad_lladdr"``), or ``None``.
        router_lost: the neighbour's IsRouter flag went from True to False:
            remove it from the Default Router List and flush the destinations
            that use it as a router (RFC 4861 section 7.2.5).
    """

    released: tuple[tuple[bytes, object], ...] = ()
    evicted: tuple[object, ...] = ()
    reason: str | None = None
    router_lost: bool = False


@attrs.frozen
class Nd6Expiry:
    """What :meth:`NeighborCache.expire` asks of the glue.

    Attributes:
        solicits: Neighbor Solicitations to send now (multicast
            retransmissions and unicast probes).
        failed: ``(address, packets)`` for resolutions given up after
            :data:`MAX_MULTICAST_SOLICIT` solicitations: answer each packet
            with ICMPv6 destination unreachable, code 3 (address
            unreachable), RFC 4861 section 7.2.2.
        unreachable: addresses deleted after :data:`MAX_UNICAST_SOLICIT`
            unanswered probes (section 7.3.3): if one is a router, default
            router selection should now avoid it.
        collected: STALE entries deleted after ``gc_stale_time`` unused;
            they held no packets.
    """

    solicits: tuple[Solicit, ...] = ()
    failed: tuple[tuple[bytes, tuple[object, ...]], ...] = ()
    unreachable: tuple[bytes, ...] = ()
    collected: tuple[bytes, ...] = ()


@attrs.frozen
class Nd6EntryRow:
    """One row of :meth:`NeighborCache.entries` (``ndp -an``).

    Attributes:
        ip: the neighbour's IPv6 address.
        mac: its MAC, or ``None`` while INCOMPLETE.
        state: its :class:`NdState`.
        is_router: the IsRouter flag.
        expires: the entry's next deadline: the next solicitation or the
            end of an INCOMPLETE or PROBE entry, the end of ReachableTime, of
            DELAY, of a STALE entry's life; ``None`` for static entries.
        held: packets waiting for the resolution (INCOMPLETE only).
    """

    ip: bytes = attrs.field(repr=_fmt_ip6)
    mac: bytes | None = attrs.field(repr=_fmt_mac)
    state: NdState
    is_router: bool
    expires: float | None
    held: int = 0


@attrs.frozen
class Nd6Statistics:
    """Counters of a :class:`NeighborCache` since it was made, and two gauges.

    Attributes:
        entries: dynamic entries now (gauge).
        permanent: static entries now (gauge).
        multicast_solicits: multicast solicitations the glue was told to send.
        unicast_solicits: unicast probes the glue was told to send.
        resolved: INCOMPLETE entries completed (by an NA or a link-layer
            address option).
        failed: INCOMPLETE entries given up.
        unreachable: entries deleted after unanswered probes.
        learned: entries created STALE from a link-layer address option.
        updated: cached MACs replaced by a different one.
        collected: STALE entries deleted for being unused.
        evicted: entries evicted by the ``max_entries`` bound.
        routers_lost: IsRouter flags that fell from True to False.
        ignored: ND messages ignored (every ``Nd6Input.reason``).
        dropped_overflow: waiting packets pushed out of a full queue.
        dropped_evicted: waiting packets of evicted entries.
        dropped_table_full: packets refused because every entry was in use.
        dropped_removed: waiting packets of entries deleted by
            :meth:`NeighborCache.remove`.

    The packets of ``failed`` entries are returned, not counted here.
    """

    entries: int = 0
    permanent: int = 0
    multicast_solicits: int = 0
    unicast_solicits: int = 0
    resolved: int = 0
    failed: int = 0
    unreachable: int = 0
    learned: int = 0
    updated: int = 0
    collected: int = 0
    evicted: int = 0
    routers_lost: int = 0
    ignored: int = 0
    dropped_overflow: int = 0
    dropped_evicted: int = 0
    dropped_table_full: int = 0
    dropped_removed: int = 0


_COUNTERS = tuple(name for name in attrs.fields_dict(Nd6Statistics) if name not in ("entries", "permanent"))

# Shared answers: frozen, so one object serves every call.
_HELD = Nd6Resolution()
_NOTHING = Nd6Input()
_ROUTER_LOST = Nd6Input(router_lost=True)
_IGNORED = {
    reason: Nd6Input(reason=reason)
    for reason in (
        "no_entry",
        "no_lladdr",
        "lladdr_differs",
        "static",
        "table_full",
        "bad_address",
        "bad_lladdr",
    )
}
_NOTHING_DUE = Nd6Expiry()


#### RFC 4861 section 7.2.5: an NA for an entry that is not INCOMPLETE


@attrs.frozen
class _NaRule:
    record: bool  # store the Target Link-Layer Address
    state: NdState | None  # the new state; None: unchanged
    router: bool  # update IsRouter from the R flag
    only_if_reachable: bool = False  # case I: REACHABLE -> STALE, else ignore


_CASE_I = _NaRule(record=False, state=_STALE, router=False, only_if_reachable=True)

# (override, solicited, TLLA compared with the cached MAC) -> rule.
# Case I: Override clear and a different TLLA: a REACHABLE entry goes STALE
# and nothing else changes; in any other state the NA is ignored.
# Case II: everything else: record a TLLA that differs (only Override may
# change the MAC), Solicited makes the entry REACHABLE, an unsolicited new
# MAC makes it STALE, and IsRouter follows the R flag.
_NA_RULES: dict[tuple[bool, bool, str], _NaRule] = {
    (False, False, "different"): _CASE_I,
    (False, True, "different"): _CASE_I,
    (False, False, "same"): _NaRule(record=False, state=None, router=True),
    (False, True, "same"): _NaRule(record=False, state=_REACHABLE, router=True),
    (False, False, "none"): _NaRule(record=False, state=None, router=True),
    (False, True, "none"): _NaRule(record=False, state=_REACHABLE, router=True),
    (True, False, "different"): _NaRule(record=True, state=_STALE, router=True),
    (True, True, "different"): _NaRule(record=True, state=_REACHABLE, router=True),
    (True, False, "same"): _NaRule(record=False, state=None, router=True),
    (True, True, "same"): _NaRule(record=False, state=_REACHABLE, router=True),
    (True, False, "none"): _NaRule(record=False, state=None, router=True),
    (True, True, "none"): _NaRule(record=False, state=_REACHABLE, router=True),
}


#### The cache


@attrs.define(eq=False, slots=True)
class _Entry:
    ip: bytes
    state: NdState
    deadline: float  # see Nd6EntryRow.expires; inf for PERMANENT
    mac: bytes | None = None
    is_router: bool = False
    sent: int = 0  # solicitations sent in INCOMPLETE or PROBE
    pending: deque[object] | None = None  # INCOMPLETE only
    send: Nd6Resolution = _HELD  # Nd6Resolution(mac=mac), made once per MAC
    solicit: Solicit | None = None  # INCOMPLETE and PROBE

    def set_mac(self, mac: bytes) -> None:
        self.mac = mac
        self.send = Nd6Resolution(mac=mac)


def _positive(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


@attrs.define(eq=False, kw_only=True)
class NeighborCache:
    """A bounded IPv6 neighbour cache: see the module's theory of operation.

    Args:
        max_entries: the most dynamic entries (rule 6).
        max_pending: packets held per INCOMPLETE entry.
        reachable_time: BaseReachableTime, seconds (rule 5).
        retrans_timer: RetransTimer, seconds between solicitations.
        gc_stale_time: seconds an unused STALE entry is kept.
        rng: draws the ReachableTime factor. ``None``: ``random.Random(0)``,
            the same draw for every cache; the glue should pass the
            network's seeded generator so that hosts differ, which is what
            the randomisation is for.

    ``reachable_time`` and ``retrans_timer`` are read-only after
    construction: change them with :meth:`set_base_reachable_time` and
    :meth:`set_retrans_timer`, which keep the tables in order.

    Not thread-safe, like every machine in ``protocols/``: the glue calls it
    from one thread. Every call is O(1), except :meth:`expire` (O(due
    entries)), :meth:`entries` (O(table)) and a change of ReachableTime or
    RetransTimer (O(entries in the affected states), at most once per
    Router Advertisement or per :data:`RECOMPUTE_REACHABLE_INTERVAL`).
    """

    max_entries: int = attrs.field(default=1024, validator=attrs.validators.ge(1))
    max_pending: int = attrs.field(default=16, validator=attrs.validators.ge(1))
    reachable_time: float = attrs.field(
        default=REACHABLE_TIME, validator=_positive, on_setattr=attrs.setters.frozen
    )
    retrans_timer: float = attrs.field(
        default=RETRANS_TIMER, validator=_positive, on_setattr=attrs.setters.frozen
    )
    gc_stale_time: float = attrs.field(
        default=GC_STALE_TIME, validator=_positive, on_setattr=attrs.setters.frozen
    )
    rng: random.Random | None = attrs.field(default=None)

    _entries: dict[bytes, _Entry] = attrs.field(init=False, factory=dict)
    # One table per dynamic state, each in deadline order (rule 7).
    _incomplete: OrderedDict[bytes, _Entry] = attrs.field(init=False, factory=OrderedDict)
    _reachable: OrderedDict[bytes, _Entry] = attrs.field(init=False, factory=OrderedDict)
    _stale: OrderedDict[bytes, _Entry] = attrs.field(init=False, factory=OrderedDict)
    _delay: OrderedDict[bytes, _Entry] = attrs.field(init=False, factory=OrderedDict)
    _probe: OrderedDict[bytes, _Entry] = attrs.field(init=False, factory=OrderedDict)
    _tables: dict[NdState, OrderedDict[bytes, _Entry]] = attrs.field(init=False, factory=dict)
    _reachable_time: float = attrs.field(init=False, default=0.0)
    _redraw_at: float | None = attrs.field(init=False, default=None)
    _stats: dict[str, int] = attrs.field(init=False, factory=lambda: dict.fromkeys(_COUNTERS, 0))

    def __attrs_post_init__(self) -> None:
        if self.rng is None:
            self.rng = random.Random(0)
        self._tables = {
            _INCOMPLETE: self._incomplete,
            _REACHABLE: self._reachable,
            _STALE: self._stale,
            _DELAY: self._delay,
            _PROBE: self._probe,
        }
        self._reachable_time = self._draw()

    @property
    def current_reachable_time(self) -> float:
        """ReachableTime: how long a confirmation keeps an entry REACHABLE
        (``reachable_time`` times the drawn factor)."""
        return self._reachable_time

    ####  Output path

    def lookup(self, ip: bytes) -> bytes | None:
        """The cached MAC for ``ip``, whatever the entry's state (a STALE
        entry's too); ``None`` if unknown or INCOMPLETE.

        A pure query: no state change, no allocation, no clock. To send a
        packet, call :meth:`resolve`, which also runs Neighbor Unreachability
        Detection (a STALE entry must move to DELAY when used).

        Raises:
            ValueError: ``ip`` is not in the table and is not a 16-byte
                unicast address (rule 8).
        """
        entry = self._entries.get(ip)
        if entry is not None:
            return entry.mac
        _check_ip(ip)
        return None

    def state(self, ip: bytes) -> NdState | None:
        """The state of the entry for ``ip``, or ``None`` if there is none.

        For default router selection (RFC 4861 section 6.3.6 prefers routers
        whose entry exists and is not INCOMPLETE). Raises like :meth:`lookup`.
        """
        entry = self._entries.get(ip)
        if entry is not None:
            return entry.state
        _check_ip(ip)
        return None

    def resolve(self, ip: bytes, packet: object, now: float) -> Nd6Resolution:
        """Find the MAC to send ``packet`` to the neighbour ``ip``.

        Returns:
            An :class:`Nd6Resolution`: ``mac`` set means send now; otherwise
            the packet waits, and ``solicit`` (for the first packet only)
            is a Neighbor Solicitation to send.

        Raises:
            ValueError: ``ip`` is not in the table and is not a 16-byte
                unicast address.

        Bounded: at most ``max_pending`` packets wait per address; the
        oldest is pushed out into ``dropped``.

        DragonFly: ``nd6_output`` (the STALE -> DELAY step and the hold).
        """
        entry = self._entries.get(ip)
        if entry is not None:
            state = entry.state
            if state is _REACHABLE:
                if now < entry.deadline:
                    return entry.send
                # ReachableTime is over: the entry is STALE (7.3.3, found
                # lazily, before expire() has run) and this packet moves it
                # on to DELAY.
                self._move(entry, _DELAY, now + DELAY_FIRST_PROBE_TIME)
                return entry.send
            if state is _STALE:
                self._move(entry, _DELAY, now + DELAY_FIRST_PROBE_TIME)
                return entry.send
            if state is not _INCOMPLETE:
                return entry.send  # DELAY, PROBE, PERMANENT
            pending = entry.pending
            assert pending is not None
            if len(pending) >= self.max_pending:
                oldest = pending.popleft()
                pending.append(packet)
                self._stats["dropped_overflow"] += 1
                return Nd6Resolution(dropped=(oldest,))
            pending.append(packet)
            return _HELD
        _check_ip(ip)
        evicted = self._make_room()
        if evicted is None:
            self._stats["dropped_table_full"] += 1
            return Nd6Resolution(dropped=(packet,))
        entry = _Entry(
            ip,
            _INCOMPLETE,
            now + self.retrans_timer,
            sent=1,
            pending=deque((packet,)),
            solicit=Solicit(ip, _solicited_node(ip)),
        )
        self._entries[ip] = entry
        self._incomplete[ip] = entry
        self._stats["multicast_solicits"] += 1
        return Nd6Resolution(solicit=entry.solicit, evicted=evicted)

    def confirm(self, ip: bytes, now: float) -> bool:
        """Upper-layer reachability confirmation (RFC 4861 section 7.3.1):
        TCP saw forward progress with ``ip`` as next hop.

        An entry in REACHABLE, STALE, DELAY or PROBE becomes REACHABLE for
        ReachableTime from ``now``. Cheap enough to call per acknowledgement.

        Returns:
            Whether an entry was confirmed (``False`` for none, INCOMPLETE
            or static).

        Raises:
            ValueError: as :meth:`lookup`.

        DragonFly: ``nd6_nud_hint``.
        """
        entry = self._entries.get(ip)
        if entry is None:
            _check_ip(ip)
            return False
        if entry.state is _INCOMPLETE or entry.state is _PERMANENT:
            return False
        self._to_reachable(entry, now)
        return True

    ####  Input path

    def na_input(
        self,
        target: bytes,
        *,
        tlla: bytes | None,
        router: bool,
        solicited: bool,
        override: bool,
        now: float,
    ) -> Nd6Input:
        """Take a valid Neighbor Advertisement (RFC 4861 section 7.2.5).

        Args:
            target: the NA's Target Address.
            tlla: its Target Link-Layer Address option, or ``None``.
            router, solicited, override: its R, S and O flags.
            now: the current time.

        Returns:
            An :class:`Nd6Input`: packets released by a completed resolution,
            ``router_lost``, or why the NA was ignored (``"no_entry"``: an
            NA never creates an entry; ``"no_lladdr"``: INCOMPLETE and no
            TLLA; ``"lladdr_differs"``: Override clear, a different TLLA, the
            entry not REACHABLE; ``"static"``; ``"bad_address"``;
            ``"bad_lladdr"``: not a 6-byte unicast MAC).

        An INCOMPLETE entry with a TLLA becomes REACHABLE if Solicited, else
        STALE, and its packets are released; since they are sent to a STALE
        entry, it goes on to DELAY (7.3.3; DragonFly sends them through
        ``nd6_output``, which does the same).

        DragonFly: ``nd6_na_input``.
        """
        if type(target) is not bytes:
            target = bytes(target)
        if not _is_neighbor_address(target):
            return self._ignore("bad_address")
        if tlla is not None:
            tlla = bytes(tlla)
            if not _is_unicast_mac(tlla):
                return self._ignore("bad_lladdr")
        entry = self._entries.get(target)
        if entry is None:
            return self._ignore("no_entry")
        state = entry.state
        if state is _PERMANENT:
            return self._ignore("static")
        if state is _INCOMPLETE:
            if tlla is None:
                return self._ignore("no_lladdr")
            return self._complete(entry, tlla, _REACHABLE if solicited else _STALE, router, now)

        lladdr = "none" if tlla is None else "same" if tlla == entry.mac else "different"
        rule = _NA_RULES[override, solicited, lladdr]
        if rule.only_if_reachable:
            if state is not _REACHABLE:
                return self._ignore("lladdr_differs")
            self._move(entry, _STALE, now + self.gc_stale_time)
            return _NOTHING
        if rule.record:
            assert tlla is not None
            entry.set_mac(tlla)
            self._stats["updated"] += 1
        if rule.state is _REACHABLE:
            self._to_reachable(entry, now)
        elif rule.state is _STALE:
            self._move(entry, _STALE, now + self.gc_stale_time)
        return _ROUTER_LOST if self._set_router(entry, router) else _NOTHING

    def lladdr_input(
        self, ip: bytes, mac: bytes | None, now: float, *, is_router: bool | None = None
    ) -> Nd6Input:
        """Take a link-layer address option that names the sender (or target)
        of a valid NS, RS, RA or Redirect.

        Args:
            ip: the address it belongs to: the source of an NS (not
                unspecified: the glue skips DAD probes), RS or RA; the
                target of a Redirect.
            mac: the Source (Target, for a Redirect) Link-Layer Address
                option, or ``None`` if the message had none (then only
                ``is_router`` applies, to an existing entry).
            now: the current time.
            is_router: the new IsRouter flag: ``False`` for an RS (6.2.6),
                ``True`` for an RA (6.3.4) or a Redirect to a router (8.3);
                ``None`` (an NS) leaves an existing entry's flag alone and
                gives a new entry ``False`` (7.2.3).

        Returns:
            An :class:`Nd6Input`. No entry: one is created STALE (rule 6
            may evict another, or refuse with ``"table_full"``). A different
            MAC: recorded, and the entry goes STALE. The same MAC: nothing
            changes. An INCOMPLETE entry takes the MAC, goes STALE and
            releases its packets (then DELAY, as in :meth:`na_input`).
            Ignored with ``"no_entry"`` (no MAC, no entry), ``"static"``,
            ``"bad_address"`` or ``"bad_lladdr"``.

        DragonFly: ``nd6_cache_lladdr``.
        """
        if type(ip) is not bytes:
            ip = bytes(ip)
        if not _is_neighbor_address(ip):
            return self._ignore("bad_address")
        if mac is not None:
            mac = bytes(mac)
            if not _is_unicast_mac(mac):
                return self._ignore("bad_lladdr")
        entry = self._entries.get(ip)
        if entry is None:
            if mac is None:
                return self._ignore("no_entry")
            evicted = self._make_room()
            if evicted is None:
                return self._ignore("table_full")
            entry = _Entry(ip, _STALE, now + self.gc_stale_time, is_router=bool(is_router))
            entry.set_mac(mac)
            self._entries[ip] = entry
            self._stale[ip] = entry
            self._stats["learned"] += 1
            return Nd6Input(evicted=evicted) if evicted else _NOTHING
        if entry.state is _PERMANENT:
            return self._ignore("static")
        if mac is not None:
            if entry.state is _INCOMPLETE:
                return self._complete(entry, mac, _STALE, is_router, now)
            if mac != entry.mac:
                entry.set_mac(mac)
                self._stats["updated"] += 1
                self._move(entry, _STALE, now + self.gc_stale_time)
        if is_router is not None and self._set_router(entry, is_router):
            return _ROUTER_LOST
        return _NOTHING

    ####  Timers

    def expire(self, now: float) -> Nd6Expiry:
        """Do the work due at ``now`` (rule 4).

        Returns:
            An :class:`Nd6Expiry`: solicitations to send, resolutions given
            up with their packets, entries deleted.

        Bounded: each due entry is handled once per call; entries not due
        are not looked at.

        DragonFly: ``nd6_timer``.
        """
        stats = self._stats
        solicits: list[Solicit] = []
        failed: list[tuple[bytes, tuple[object, ...]]] = []
        unreachable: list[bytes] = []
        collected: list[bytes] = []
        # Every new deadline below is now + a positive constant, so it lands
        # behind the due entries; range(len(...)) bounds each loop anyway.
        table = self._incomplete
        for _ in range(len(table)):
            entry = next(iter(table.values()))
            if entry.deadline > now:
                break
            assert entry.solicit is not None and entry.pending is not None
            if entry.sent < MAX_MULTICAST_SOLICIT:
                entry.sent += 1
                self._move(entry, _INCOMPLETE, now + self.retrans_timer)
                solicits.append(entry.solicit)
                stats["multicast_solicits"] += 1
            else:
                self._delete(entry)
                failed.append((entry.ip, tuple(entry.pending)))
                stats["failed"] += 1
        table = self._probe
        for _ in range(len(table)):
            entry = next(iter(table.values()))
            if entry.deadline > now:
                break
            assert entry.solicit is not None
            if entry.sent < MAX_UNICAST_SOLICIT:
                entry.sent += 1
                self._move(entry, _PROBE, now + self.retrans_timer)
                solicits.append(entry.solicit)
                stats["unicast_solicits"] += 1
            else:
                self._delete(entry)
                unreachable.append(entry.ip)
                stats["unreachable"] += 1
        table = self._delay
        for _ in range(len(table)):
            entry = next(iter(table.values()))
            if entry.deadline > now:
                break
            entry.sent = 1
            entry.solicit = Solicit(entry.ip, entry.ip, entry.mac)
            self._move(entry, _PROBE, now + self.retrans_timer)
            solicits.append(entry.solicit)
            stats["unicast_solicits"] += 1
        table = self._reachable
        for _ in range(len(table)):
            entry = next(iter(table.values()))
            if entry.deadline > now:
                break
            self._move(entry, _STALE, now + self.gc_stale_time)
        table = self._stale
        for _ in range(len(table)):
            entry = next(iter(table.values()))
            if entry.deadline > now:
                break
            self._delete(entry)
            collected.append(entry.ip)
            stats["collected"] += 1
        if not (solicits or failed or unreachable or collected):
            return _NOTHING_DUE
        return Nd6Expiry(tuple(solicits), tuple(failed), tuple(unreachable), tuple(collected))

    def next_deadline(self) -> float | None:
        """The earliest time :meth:`expire` has work, or ``None`` if never
        (no dynamic entries: every dynamic entry has a deadline)."""
        deadline = None
        for table in (self._incomplete, self._probe, self._delay, self._reachable, self._stale):
            if table:
                first = next(iter(table.values())).deadline
                if deadline is None or first < deadline:
                    deadline = first
        return deadline

    ####  Router Advertisement parameters (RFC 4861 section 6.3.4)

    def set_base_reachable_time(self, seconds: float, now: float) -> None:
        """Take an RA's Reachable Time as BaseReachableTime; if it differs,
        draw ReachableTime again (REACHABLE entries keep at most the new
        ReachableTime from ``now``, rule 7).

        Raises:
            ValueError: ``seconds`` is not positive (an RA's 0 means
                "unspecified": the glue must not call this for it).
        """
        if not seconds > 0:
            raise ValueError(f"BaseReachableTime must be positive, got {seconds!r}")
        if seconds != self.reachable_time:
            object.__setattr__(self, "reachable_time", seconds)
            self._redraw(now)

    def set_retrans_timer(self, seconds: float, now: float) -> None:
        """Take an RA's Retrans Timer as RetransTimer; pending
        solicitations come no later than ``seconds`` from ``now`` (rule 7).

        Raises:
            ValueError: ``seconds`` is not positive (an RA's 0 means
                "unspecified").
        """
        if not seconds > 0:
            raise ValueError(f"RetransTimer must be positive, got {seconds!r}")
        if seconds != self.retrans_timer:
            object.__setattr__(self, "retrans_timer", seconds)
            self._cap(self._incomplete, now + seconds)
            self._cap(self._probe, now + seconds)

    ####  Administration

    def add_static(self, ip: bytes, mac: bytes, *, is_router: bool = False) -> tuple[object, ...]:
        """Add (or replace) a permanent entry, as ``ndp -s`` does.

        A dynamic entry for ``ip`` is replaced.

        Returns:
            The packets that were waiting for ``ip``, now for the glue to
            send to ``mac`` (empty if none).

        Raises:
            ValueError: ``ip`` is not a 16-byte unicast address, or ``mac``
                not a 6-byte unicast MAC.
        """
        _check_ip(ip)
        if not _is_unicast_mac(mac):
            raise ValueError(f"a static entry needs a 6-byte unicast MAC, got {bytes(mac).hex(':')}")
        ip = bytes(ip)
        packets: tuple[object, ...] = ()
        old = self._entries.get(ip)
        if old is not None and old.state is not _PERMANENT:
            del self._tables[old.state][ip]
            if old.pending:
                packets = tuple(old.pending)
        entry = _Entry(ip, _PERMANENT, _INF, is_router=is_router)
        entry.set_mac(bytes(mac))
        self._entries[ip] = entry
        return packets

    def remove(self, ip: bytes) -> bool:
        """Delete the entry for ``ip``, static or not (``ndp -d``).

        Packets waiting for it are dropped and counted in
        ``dropped_removed``.

        Returns:
            Whether there was an entry.

        Raises:
            ValueError: as :meth:`lookup`.
        """
        entry = self._entries.pop(ip, None)
        if entry is None:
            _check_ip(ip)
            return False
        if entry.state is not _PERMANENT:
            del self._tables[entry.state][ip]
        if entry.pending:
            self._stats["dropped_removed"] += len(entry.pending)
        return True

    def entries(self) -> list[Nd6EntryRow]:
        """The table, sorted by address (``ndp -an``)."""
        rows = [
            Nd6EntryRow(
                e.ip,
                e.mac,
                e.state,
                e.is_router,
                None if e.state is _PERMANENT else e.deadline,
                len(e.pending) if e.pending else 0,
            )
            for e in self._entries.values()
        ]
        rows.sort(key=lambda row: row.ip)
        return rows

    def statistics(self) -> Nd6Statistics:
        """The counters, as a frozen :class:`Nd6Statistics`."""
        dynamic = self._dynamic_count()
        return Nd6Statistics(entries=dynamic, permanent=len(self._entries) - dynamic, **self._stats)

    ####  Internals

    def _draw(self) -> float:
        assert self.rng is not None
        return self.reachable_time * self.rng.uniform(MIN_RANDOM_FACTOR, MAX_RANDOM_FACTOR)

    def _redraw(self, now: float) -> None:
        self._reachable_time = self._draw()
        self._redraw_at = now + RECOMPUTE_REACHABLE_INTERVAL
        self._cap(self._reachable, now + self._reachable_time)

    @staticmethod
    def _cap(table: OrderedDict[bytes, _Entry], limit: float) -> None:
        # Rule 7: min() with a constant keeps the table's order, and every
        # deadline given later (>= limit) goes behind.
        for entry in table.values():
            if entry.deadline > limit:
                entry.deadline = limit

    def _dynamic_count(self) -> int:
        return (
            len(self._incomplete) + len(self._reachable) + len(self._stale) + len(self._delay) + len(self._probe)
        )

    def _move(self, entry: _Entry, state: NdState, deadline: float) -> None:
        # Put a dynamic entry at the end of state's table; the caller passes
        # now + that state's constant, so the table stays in deadline order.
        ip = entry.ip
        if entry.state is state:
            self._tables[state].move_to_end(ip)
        else:
            del self._tables[entry.state][ip]
            entry.state = state
            self._tables[state][ip] = entry
        entry.deadline = deadline

    def _to_reachable(self, entry: _Entry, now: float) -> None:
        if self._redraw_at is None:
            self._redraw_at = now + RECOMPUTE_REACHABLE_INTERVAL
        elif now >= self._redraw_at:
            self._redraw(now)
        self._move(entry, _REACHABLE, now + self._reachable_time)

    def _delete(self, entry: _Entry) -> None:
        del self._tables[entry.state][entry.ip]
        del self._entries[entry.ip]

    def _complete(
        self, entry: _Entry, mac: bytes, state: NdState, router: bool | None, now: float
    ) -> Nd6Input:
        # An INCOMPLETE entry learns its MAC: release the packets.
        pending = entry.pending
        assert pending is not None
        entry.pending = None
        entry.solicit = None
        entry.sent = 0
        entry.set_mac(mac)
        self._stats["resolved"] += 1
        if state is _REACHABLE:
            self._to_reachable(entry, now)
        else:
            # STALE (Appendix C), and the queued packets are sent to it at
            # once, which makes it DELAY (7.3.3).
            # DragonFly: nd6_cache_lladdr and nd6_na_input pass ln_hold to
            # nd6_output, which does this step.
            self._move(entry, _DELAY, now + DELAY_FIRST_PROBE_TIME)
        released = tuple((mac, packet) for packet in pending)
        lost = router is not None and self._set_router(entry, router)
        return Nd6Input(released=released, router_lost=lost)

    def _set_router(self, entry: _Entry, router: bool) -> bool:
        # Returns whether IsRouter fell from True to False.
        lost = entry.is_router and not router
        entry.is_router = router
        if lost:
            self._stats["routers_lost"] += 1
        return lost

    def _make_room(self) -> tuple[object, ...] | None:
        # Called before creating a dynamic entry (rule 6). Returns the
        # packets of an evicted INCOMPLETE entry, or None: every entry is in
        # use, create nothing.
        if self._dynamic_count() < self.max_entries:
            return ()
        stats = self._stats
        if self._stale:
            _, entry = self._stale.popitem(last=False)
            del self._entries[entry.ip]
            stats["evicted"] += 1
            return ()
        if self._incomplete:
            _, entry = self._incomplete.popitem(last=False)
            del self._entries[entry.ip]
            assert entry.pending is not None
            stats["evicted"] += 1
            stats["dropped_evicted"] += len(entry.pending)
            return tuple(entry.pending)
        return None

    def _ignore(self, reason: str) -> Nd6Input:
        self._stats["ignored"] += 1
        return _IGNORED[reason]
