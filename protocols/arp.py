"""ARP for IPv4 over Ethernet (RFC 826), and a sans-IO ARP cache.

Packets
=======

:meth:`ArpPacket.parse` accepts only Ethernet/IPv4 ARP (hardware type 1,
protocol 0x0800, address lengths 6 and 4); anything else is
``"unsupported"``. It checks, before reading each field: 8 bytes of fixed
header (``"short_header"``), the four type/length fields (``"unsupported"``),
then 28 bytes in all (``"short_header"``). Bytes after the 28 (Ethernet's
minimum-frame padding) are allowed and returned as the payload view. The
opcode is not checked: any value parses, :class:`ArpCache` decides.

Theory of operation of the cache
================================

:class:`ArpCache` maps IPv4 addresses to MACs. It never sends, sleeps or
reads a clock: every method takes ``now`` and returns what the glue must do
(send a request, a reply, the packets that waited; count what was dropped).

1. An entry is INCOMPLETE (a request is out, packets wait for the answer),
   REACHABLE (learned, until ``now + reachable``) or static (added by the
   administrator, never aged, never overwritten by the network).
2. :meth:`~ArpCache.resolve` on an unknown address creates an INCOMPLETE
   entry holding the packet and tells the glue to send a request; further
   resolves only queue, at most ``max_pending`` packets per address (the
   oldest is pushed out and returned as ``dropped``).
3. :meth:`~ArpCache.input` applies RFC 826's merge rule: a packet whose
   sender is in the table updates the entry (completing an INCOMPLETE one and
   releasing its packets, in order); a new entry is created only if the
   packet is for one of our addresses. A request for one of our addresses
   draws a reply. Packets from one of our own addresses (a duplicate
   address), from our own MAC, or with a group sender MAC are ignored with a
   reason.
4. :meth:`~ArpCache.expire` re-requests INCOMPLETE entries every
   ``retransmit`` seconds, gives up after ``max_requests`` requests (the
   waiting packets are returned, for the glue to count or answer with ICMP
   host unreachable), and removes REACHABLE entries ``reachable`` seconds
   after they were last confirmed. :meth:`~ArpCache.next_deadline` says when
   to call it next.
5. At most ``max_entries`` dynamic entries exist; creating one more evicts
   first the least recently confirmed REACHABLE entry (it loses nothing but a
   future re-request), else the oldest INCOMPLETE one (its waiting packets
   are returned as ``evicted``). Static entries do not count against the
   bound: the administrator, not the network, adds them.

``now`` must never decrease. Both dynamic tables are kept in deadline order
(every deadline is ``now`` plus a constant), so ``next_deadline`` is O(1) and
``expire`` does work only for what is due.

DragonFly: ``sys/netinet/if_ether.c`` (``arpresolve``, ``in_arpinput``,
``arptimer``, ``arprequest``). Divergence: DragonFly keeps ARP entries in the
routing table and holds one packet per entry (``la_hold``); here the cache is
its own table and holds up to ``max_pending`` packets, like FreeBSD's
``net.link.ether.inet.maxhold``.
"""

from __future__ import annotations

import struct
from collections import OrderedDict, deque

import attrs

from .errors import RemoteProtocolError
from .ethernet import ETHER_ADDR_LEN, ETHERTYPE_IP

__all__ = [
    "ARPOP_REPLY",
    "ARPOP_REQUEST",
    "ArpCache",
    "ArpEntryRow",
    "ArpInput",
    "ArpPacket",
    "ArpStatistics",
    "Expiry",
    "Resolution",
]

ARPHRD_ETHER = 1
ARPOP_REQUEST = 1
ARPOP_REPLY = 2

_FIXED = struct.Struct("!HHBBH")
_PACKET = struct.Struct("!HHBBH6s4s6s4s")
_ETHER_IP = (ARPHRD_ETHER, ETHERTYPE_IP, ETHER_ADDR_LEN, 4)
_ZERO_MAC = bytes(ETHER_ADDR_LEN)
_ZERO_IP = bytes(4)


def _fmt_mac(mac: bytes) -> str:
    return mac.hex(":")


def _fmt_ip(ip: bytes) -> str:
    return ".".join(map(str, ip))


@attrs.frozen
class ArpPacket:
    """An Ethernet/IPv4 ARP packet.

    Attributes:
        op: the opcode (:data:`ARPOP_REQUEST`, :data:`ARPOP_REPLY`, or
            anything else a peer sent).
        sha, spa: sender MAC (6 bytes) and IPv4 address (4 bytes).
        tha, tpa: target MAC and IPv4 address.
    """

    op: int
    sha: bytes = attrs.field(repr=_fmt_mac)
    spa: bytes = attrs.field(repr=_fmt_ip)
    tha: bytes = attrs.field(repr=_fmt_mac)
    tpa: bytes = attrs.field(repr=_fmt_ip)

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> tuple[ArpPacket, memoryview]:
        """Parse the ARP packet at the start of ``data`` (an Ethernet payload).

        Returns:
            The packet and a view of what follows its 28 bytes (padding).

        Raises:
            RemoteProtocolError: ``"short_header"`` or ``"unsupported"``.
        """
        n = len(data)
        if n < 8:
            raise RemoteProtocolError("short_header", f"{n} bytes, need 8")
        htype, ptype, hlen, plen, _ = _FIXED.unpack_from(data)
        if (htype, ptype, hlen, plen) != _ETHER_IP:
            raise RemoteProtocolError(
                "unsupported", f"hardware {htype}/{hlen}, protocol {ptype:#x}/{plen}"
            )
        if n < 28:
            raise RemoteProtocolError("short_header", f"{n} bytes, need 28")
        _, _, _, _, op, sha, spa, tha, tpa = _PACKET.unpack_from(data)
        return cls(op, sha, spa, tha, tpa), memoryview(data)[28:]

    def emit(self) -> bytes:
        """The 28-byte packet (unpadded; see :mod:`.ethernet` on padding).

        Raises:
            ValueError: an address has the wrong length or ``op`` is out of range.
        """
        if len(self.sha) != 6 or len(self.tha) != 6 or len(self.spa) != 4 or len(self.tpa) != 4:
            raise ValueError(f"ARP addresses must be 6-byte MACs and 4-byte IPv4 addresses: {self!r}")
        if not 0 <= self.op <= 0xFFFF:
            raise ValueError(f"op must be 0..65535, got {self.op}")
        return _PACKET.pack(*_ETHER_IP, self.op, self.sha, self.spa, self.tha, self.tpa)


#### Results of the cache's methods


@attrs.frozen
class Resolution:
    """What :meth:`ArpCache.resolve` asks of the glue.

    Attributes:
        mac: the destination MAC: send the packet now. ``None``: the packet
            waits in the cache.
        request: send an ARP request for the address now.
        dropped: a waiting packet pushed out of the full per-address queue
            (the oldest), for the glue to count; ``None`` if none.
        evicted: packets that waited for another address whose entry was
            evicted to make room, for the glue to count.
    """

    mac: bytes | None = None
    request: bool = False
    dropped: object | None = None
    evicted: tuple[object, ...] = ()


@attrs.frozen
class ArpInput:
    """What :meth:`ArpCache.input` asks of the glue.

    Attributes:
        reply: an ARP reply to send to the requester (to ``reply.tha``).
        released: ``(mac, packets)`` pairs whose resolution completed: send
            the packets, in order, to ``mac``.
        learned: the sender's address was entered in or refreshed in the
            table.
        conflict: the sender claims one of our addresses (a duplicate address
            on the link); the packet was ignored.
        ignored: why the packet was ignored (``"conflict"``, ``"own_mac"``,
            ``"group_sender"``, ``"bad_op"``), or ``None``.
        evicted: packets that waited for an entry evicted to make room, for
            the glue to count.
    """

    reply: ArpPacket | None = None
    released: tuple[tuple[bytes, tuple[object, ...]], ...] = ()
    learned: bool = False
    conflict: bool = False
    ignored: str | None = None
    evicted: tuple[object, ...] = ()


@attrs.frozen
class Expiry:
    """What :meth:`ArpCache.expire` asks of the glue.

    Attributes:
        requests: addresses to send an ARP request for again, now.
        failed: ``(address, packets)`` given up after ``max_requests``
            requests; the packets are dropped (count them, or answer with
            ICMP host unreachable).
    """

    requests: tuple[bytes, ...] = ()
    failed: tuple[tuple[bytes, tuple[object, ...]], ...] = ()


@attrs.frozen
class ArpEntryRow:
    """One row of :meth:`ArpCache.entries` (``arp -an``).

    Attributes:
        ip: the IPv4 address.
        mac: its MAC, or ``None`` while incomplete.
        state: ``"incomplete"``, ``"reachable"`` or ``"static"``.
        expires: when a reachable entry ages out, or when an incomplete one is
            re-requested or given up; ``None`` for static entries.
    """

    ip: bytes = attrs.field(repr=_fmt_ip)
    mac: bytes | None = attrs.field(repr=lambda m: "None" if m is None else _fmt_mac(m))
    state: str
    expires: float | None


@attrs.frozen
class ArpStatistics:
    """Counters of an :class:`ArpCache`, since it was made.

    Attributes:
        requests: requests the glue was told to send (first and repeated).
        replies_sent: replies returned by :meth:`ArpCache.input`.
        learned: entries created or completed from received packets.
        updated: entries whose MAC changed.
        expired: reachable entries aged out.
        failed: incomplete entries given up after ``max_requests``.
        evicted: dynamic entries evicted by the ``max_entries`` bound.
        pending_dropped: waiting packets dropped: pushed out of a full queue,
            or held by an evicted or removed entry (not those of ``failed``
            entries, which are returned).
        conflicts: packets from someone using one of our addresses.
        ignored: other packets ignored (own MAC, group sender MAC, unknown
            opcode, attempts to change a static entry).
    """

    requests: int = 0
    replies_sent: int = 0
    learned: int = 0
    updated: int = 0
    expired: int = 0
    failed: int = 0
    evicted: int = 0
    pending_dropped: int = 0
    conflicts: int = 0
    ignored: int = 0


#### The cache


@attrs.define(eq=False, slots=True)
class _Incomplete:
    deadline: float  # next re-request, or giving up
    sent: int  # requests sent so far
    pending: deque[object]


@attrs.define(eq=False, slots=True)
class _Reachable:
    mac: bytes
    expires: float


def _check_ip(ip: bytes) -> None:
    if len(ip) != 4:
        raise ValueError(f"an IPv4 address is 4 bytes, got {len(ip)}")


def _check_entry(ip: bytes, mac: bytes, kind: str) -> None:
    # An entry the caller makes (static or learned): an address and a unicast MAC.
    _check_ip(ip)
    if len(mac) != 6 or mac[0] & 1:
        raise ValueError(f"{kind} entry needs a 6-byte unicast MAC, got {mac.hex(':')}")


@attrs.define(eq=False, kw_only=True)
class ArpCache:
    """A bounded ARP table: see the module's theory of operation.

    Args:
        max_entries: the most dynamic (incomplete or reachable) entries.
        reachable: seconds a learned entry stays valid after the last packet
            that confirmed it (DragonFly's ``net.link.ether.inet.max_age``,
            1200).
        retransmit: seconds between requests for an unanswered address.
        max_requests: requests sent before giving up on an address.
        max_pending: packets held per unanswered address.

    Not thread-safe, like every machine in ``protocols/``: the glue calls it
    from one thread (``netisr 0``). All work per call is O(1), except
    :meth:`expire` (O(due entries)) and :meth:`entries` (O(table)).
    """

    max_entries: int = attrs.field(default=1024, validator=attrs.validators.ge(1))
    reachable: float = attrs.field(default=1200.0, validator=attrs.validators.gt(0))
    retransmit: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    max_requests: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    max_pending: int = attrs.field(default=16, validator=attrs.validators.ge(1))

    # Both dynamic tables are in deadline order (see the module docstring).
    _incomplete: OrderedDict[bytes, _Incomplete] = attrs.field(init=False, factory=OrderedDict)
    _reachable: OrderedDict[bytes, _Reachable] = attrs.field(init=False, factory=OrderedDict)
    _static: dict[bytes, bytes] = attrs.field(init=False, factory=dict)
    _stats: dict[str, int] = attrs.field(
        init=False, factory=lambda: dict.fromkeys(attrs.fields_dict(ArpStatistics), 0)
    )

    ####  Output path

    def lookup(self, ip: bytes) -> bytes | None:
        """The MAC to send to ``ip`` now, if the cache knows it: a static
        entry's or a reachable entry's (an address is never both:
        :meth:`add_static` replaces a dynamic entry, input never makes one
        for a static address); ``None``: call :meth:`resolve`.

        The per-packet fast path: no allocation, no clock, no side effects.
        A reachable entry is not checked against ``now``: the glue runs
        :meth:`expire` at :meth:`next_deadline`, so an entry outlives its
        expiry by a scheduling delay at most (BSD's ``arpresolve`` compares
        whole seconds); one past its age that :meth:`expire` has not removed
        yet is still returned.
        """
        entry = self._reachable.get(ip)
        if entry is not None:
            return entry.mac
        return self._static.get(ip)

    def resolve(self, ip: bytes, packet: object, now: float) -> Resolution:
        """Find the MAC for ``ip`` to send ``packet`` to.

        Returns:
            A :class:`Resolution`: ``mac`` set means send now; otherwise the
            cache holds ``packet`` until a reply arrives (``request`` says
            whether to send a request now: only for the first packet).

        DragonFly: ``arpresolve``.
        """
        mac = self._static.get(ip)
        if mac is not None:
            return Resolution(mac=mac)
        entry = self._reachable.get(ip)
        if entry is not None:
            if now < entry.expires:
                return Resolution(mac=entry.mac)
            # Aged out but expire() has not run yet: resolve afresh.
            del self._reachable[ip]
            self._stats["expired"] += 1
        waiting = self._incomplete.get(ip)
        if waiting is not None:
            dropped = None
            if len(waiting.pending) >= self.max_pending:
                dropped = waiting.pending.popleft()
                self._stats["pending_dropped"] += 1
            waiting.pending.append(packet)
            return Resolution(dropped=dropped)
        _check_ip(ip)
        evicted = self._make_room()
        self._incomplete[ip] = _Incomplete(now + self.retransmit, 1, deque((packet,)))
        self._stats["requests"] += 1
        return Resolution(request=True, evicted=evicted)

    ####  Input path

    def input(self, pkt: ArpPacket, now: float, *, my_ips: frozenset[bytes], my_mac: bytes) -> ArpInput:
        """Take a received ARP packet.

        Args:
            pkt: the packet, from :meth:`ArpPacket.parse`.
            now: the current time.
            my_ips: the receiving interface's IPv4 addresses.
            my_mac: the receiving interface's MAC (the sender of any reply).

        Returns:
            An :class:`ArpInput`: a reply to send, packets released by a
            completed resolution, and what was learned or ignored.

        DragonFly: ``in_arpinput``. Divergence: a packet with an opcode other
        than request or reply is ignored, not merged.
        """
        stats = self._stats
        sha, spa = pkt.sha, pkt.spa
        op = pkt.op
        if op != ARPOP_REQUEST and op != ARPOP_REPLY:
            stats["ignored"] += 1
            return ArpInput(ignored="bad_op")
        if sha == my_mac:
            # Our own packet, looped back by a hub or bridge.
            stats["ignored"] += 1
            return ArpInput(ignored="own_mac")
        if sha[0] & 1:
            # A group MAC as a sender is never legitimate; learning it would
            # turn unicast into a flood.
            stats["ignored"] += 1
            return ArpInput(ignored="group_sender")
        if spa in my_ips:
            stats["conflicts"] += 1
            return ArpInput(conflict=True, ignored="conflict")

        for_us = pkt.tpa in my_ips
        learned = False
        released: tuple[tuple[bytes, tuple[object, ...]], ...] = ()
        evicted: tuple[object, ...] = ()
        # RFC 826: merge into an existing entry; create one only if for us.
        # An ARP probe (RFC 5227, sender 0.0.0.0) teaches nothing.
        if spa != _ZERO_IP:
            if spa in self._static:
                if self._static[spa] != sha:
                    stats["ignored"] += 1  # does not get to change a static entry
            elif (entry := self._reachable.get(spa)) is not None:
                if entry.mac != sha:
                    entry.mac = sha
                    stats["updated"] += 1
                entry.expires = now + self.reachable
                self._reachable.move_to_end(spa)
                learned = True
            elif (waiting := self._incomplete.pop(spa, None)) is not None:
                self._reachable[spa] = _Reachable(sha, now + self.reachable)
                released = ((sha, tuple(waiting.pending)),)
                stats["learned"] += 1
                learned = True
            elif for_us:
                evicted = self._make_room()
                self._reachable[spa] = _Reachable(sha, now + self.reachable)
                stats["learned"] += 1
                learned = True

        reply = None
        if for_us and op == ARPOP_REQUEST:
            reply = ArpPacket(ARPOP_REPLY, my_mac, pkt.tpa, sha, spa)
            stats["replies_sent"] += 1
        return ArpInput(reply=reply, released=released, learned=learned, evicted=evicted)

    ####  Timers

    def expire(self, now: float) -> Expiry:
        """Do the work due at ``now``: re-requests, give-ups, aging.

        Returns:
            An :class:`Expiry`: addresses to request again and addresses
            given up with their packets.

        DragonFly: ``arptimer``.
        """
        stats = self._stats
        requests: list[bytes] = []
        failed: list[tuple[bytes, tuple[object, ...]]] = []
        incomplete = self._incomplete
        due = []
        for ip, waiting in incomplete.items():
            if waiting.deadline > now:
                break
            due.append(ip)
        for ip in due:
            waiting = incomplete[ip]
            if waiting.sent < self.max_requests:
                waiting.sent += 1
                waiting.deadline = now + self.retransmit
                incomplete.move_to_end(ip)
                requests.append(ip)
                stats["requests"] += 1
            else:
                del incomplete[ip]
                failed.append((ip, tuple(waiting.pending)))
                stats["failed"] += 1
        reachable = self._reachable
        while reachable:
            ip, entry = next(iter(reachable.items()))
            if entry.expires > now:
                break
            del reachable[ip]
            stats["expired"] += 1
        return Expiry(tuple(requests), tuple(failed))

    def next_deadline(self) -> float | None:
        """The earliest time :meth:`expire` has work, or ``None`` if never."""
        deadline = None
        if self._incomplete:
            deadline = next(iter(self._incomplete.values())).deadline
        if self._reachable:
            expires = next(iter(self._reachable.values())).expires
            if deadline is None or expires < deadline:
                deadline = expires
        return deadline

    ####  Administration

    def add_static(self, ip: bytes, mac: bytes) -> tuple[object, ...]:
        """Add (or replace) a permanent entry, as ``arp -s`` does.

        A dynamic entry for ``ip`` is replaced.

        Returns:
            The packets that were waiting for ``ip``, now to be sent to
            ``mac`` by the glue (empty if none).

        Raises:
            ValueError: ``ip`` is not 4 bytes, or ``mac`` not a 6-byte unicast
                MAC.
        """
        _check_entry(ip, mac, "a static")
        self._reachable.pop(ip, None)
        waiting = self._incomplete.pop(ip, None)
        self._static[ip] = bytes(mac)
        return () if waiting is None else tuple(waiting.pending)

    def learn(self, ip: bytes, mac: bytes, now: float) -> tuple[object, ...]:
        """Add or refresh a dynamic entry the caller vouches for, as if
        ``ip`` had answered from ``mac`` (a DHCP server reaching a client
        at the address it is offering, RFC 2131 section 4.1; Linux's
        ``arp -s ... temp``). It ages like any learned entry; a static entry
        for ``ip`` is left alone. A new entry may evict the oldest, as
        input's do.

        Returns:
            The packets that were waiting for ``ip``, now to be sent to
            ``mac`` by the glue (empty if none).

        Raises:
            ValueError: ``ip`` is not 4 bytes, or ``mac`` not a 6-byte unicast
                MAC.
        """
        _check_entry(ip, mac, "a learned")
        if ip in self._static:
            return ()
        entry = self._reachable.pop(ip, None)
        waiting = self._incomplete.pop(ip, None)
        if entry is None and waiting is None:
            self._make_room()
        self._reachable[ip] = _Reachable(bytes(mac), now + self.reachable)
        self._stats["learned"] += 1
        return () if waiting is None else tuple(waiting.pending)

    def remove(self, ip: bytes) -> bool:
        """Remove the entry for ``ip``, static or not (``arp -d``).

        Packets waiting for it are dropped and counted in ``pending_dropped``.

        Returns:
            Whether there was an entry.
        """
        if self._static.pop(ip, None) is not None or self._reachable.pop(ip, None) is not None:
            return True
        waiting = self._incomplete.pop(ip, None)
        if waiting is None:
            return False
        self._stats["pending_dropped"] += len(waiting.pending)
        return True

    def entries(self) -> list[ArpEntryRow]:
        """The table, sorted by address (``arp -an``)."""
        rows = [ArpEntryRow(ip, mac, "static", None) for ip, mac in self._static.items()]
        rows += [ArpEntryRow(ip, e.mac, "reachable", e.expires) for ip, e in self._reachable.items()]
        rows += [ArpEntryRow(ip, None, "incomplete", e.deadline) for ip, e in self._incomplete.items()]
        rows.sort(key=lambda row: row.ip)
        return rows

    def gratuitous(self, ip: bytes, mac: bytes) -> ArpPacket:
        """A gratuitous ARP request announcing that ``ip`` is at ``mac``.

        Sender and target address are both ``ip`` (RFC 5227 section 3, "ARP
        announcement"); the target MAC is zero. Send it to the broadcast
        address. Does not change the table.
        """
        _check_ip(ip)
        return ArpPacket(ARPOP_REQUEST, mac, ip, _ZERO_MAC, ip)

    def statistics(self) -> ArpStatistics:
        """The counters, as a frozen :class:`ArpStatistics`."""
        return ArpStatistics(**self._stats)

    ####  Internals

    def _make_room(self) -> tuple[object, ...]:
        # Called before creating a dynamic entry; returns the packets of an
        # evicted incomplete entry (counted as pending_dropped).
        if len(self._incomplete) + len(self._reachable) < self.max_entries:
            return ()
        self._stats["evicted"] += 1
        if self._reachable:
            self._reachable.popitem(last=False)
            return ()
        _, waiting = self._incomplete.popitem(last=False)
        self._stats["pending_dropped"] += len(waiting.pending)
        return tuple(waiting.pending)
