"""A DHCP server (RFC 2131 sections 4.1 and 4.3), sans-IO.

Theory of operation
===================

:class:`DhcpServer` hands out IPv4 addresses from one :class:`DhcpPool`
per interface (or per relayed network). It never sends, sleeps or reads a
clock: :meth:`~DhcpServer.handle` takes a received UDP payload, the time
``now`` and the arrival interface's name, and returns the :class:`Reply`
to send (a message, its destination address and port, and whether it must
go to a MAC without ARP) or ``None``, counting why in ``drops``. The glue
owns the socket on port 67 and calls :meth:`~DhcpServer.expire` at
:meth:`~DhcpServer.next_deadline` (or just before each ``handle``, which
calls it too).

1. Pool. A message with ``giaddr`` set came through a relay agent: its pool
   is the one whose network holds ``giaddr`` (RFC 2131 4.3.1). Otherwise it
   is the pool of the arrival interface. No pool: dropped (``"no_pool"``).
2. What is answered. Only BOOTREQUESTs (``"not_request"``) with a DHCP
   message type (plain BOOTP: ``"bootp"``; an unknown type:
   ``"unknown_type"``; OFFER, ACK or NAK from a client: ``"not_request"``)
   and a hardware address (``"no_chaddr"``). A malformed option the server
   needs (a requested address or server id that is not 4 bytes) drops the
   message as ``"bad_option"``.
3. Identity. A client is its client identifier (option 61) if it sends
   one, else its ``(htype, chaddr)`` (RFC 2131 4.2). Static bindings are
   looked up by ``chaddr``.
4. DISCOVER (4.3.1) offers, in order: the client's static address; its
   current or previous address (bound, offered, expired or released, while
   no other client took it); the requested address (option 50) if it is in
   the dynamic range and free; an address never handed out, lowest first;
   the address free longest. None: ``"pool_exhausted"``. A static address
   its client declined is not offered before the hold ends
   (``"static_declined"``). The offer reserves
   the address for ``offer_hold`` seconds. The network and broadcast
   addresses, the server's own address, the routers and every static
   address are never handed out dynamically.
5. REQUEST (4.3.2), by the client's state:

   - SELECTING (option 54 present): another server's id means the client
     chose another offer; ours is forgotten (``"other_server"``). Ours:
     ACK if the requested address is the one offered to this client (or
     still recorded for it and free), else NAK.
   - INIT-REBOOT (no 54, option 50, ``ciaddr`` 0): NAK if the address is not
     on the pool's network or is held by another client; ACK if it is this
     client's binding (or its static address); otherwise silence
     (``"unknown_client"``): the server has no record of it. Neither 54,
     50 nor ``ciaddr``: dropped (``"no_requested_ip"``).
   - RENEWING/REBINDING (``ciaddr`` set): ACK extending the lease if it is
     this client's; NAK if another client holds it or it is not on the
     network; silence (``"unknown_client"``) if there is no record, since
     another server may own that lease.

6. DECLINE (4.3.3) marks the address ``"declined"`` for ``decline_hold``
   seconds (someone else answers ARP for it) and unties it from the client.
   RELEASE (4.3.4) ends the lease (``"released"``); the address stays the
   client's previous one until someone else needs it. Both ignore messages
   for another server (``"other_server"``) and addresses that are not this
   client's (``"unknown_lease"``).
7. INFORM (4.3.5) is answered with the configuration options, no address
   and no lease time, to ``ciaddr`` (``"no_ciaddr"`` without one).
8. Options in OFFER and ACK: 53, 54, 51 (``lease_time``), 58 (T1, half of
   it), 59 (T2, seven eighths), 1, 3, 6, 15, 26 when configured, 66 and 67
   when configured and asked for (option 55), the client identifier echoed
   (RFC 6842) and the relay agent information (82) echoed unchanged (RFC
   3046 2.2). ``siaddr`` is ``next_server``, ``file`` is ``boot_file``. A
   NAK carries 53, 54, 61 and 82 only.
9. Destination (4.1): through a relay, ``giaddr`` port 67 (a NAK gets the
   broadcast flag, so the relay broadcasts it); else a NAK to
   255.255.255.255; else ``ciaddr`` if set; else 255.255.255.255 if the
   client set the broadcast flag; else ``yiaddr``, to be delivered to
   ``chaddr`` without ARP (:attr:`Reply.lladdr`). Clients port 68.
10. Time. Offers, bindings and declines end at their ``expires``;
    :meth:`~DhcpServer.expire` turns them ``"expired"`` and returns dynamic
    addresses to the free list. ``now`` must never decrease.

Bounds: the lease table is keyed by address and gets an entry only when an
address is offered, and only addresses of a pool's dynamic range or static
bindings are offered; so it holds at most the sum over pools of
``last - first + 1`` plus the static addresses, whatever clients send. A
DISCOVER flood from random MACs fills the range and is then counted as
``"pool_exhausted"``; each offer is held ``offer_hold`` seconds only. The
client index and the free list are bounded by the table; the timer heap is
compacted when it holds more than twice the table.

Not done: lease persistence across restarts, conflict detection by ping
before offering, the client's requested lease time (option 51 in a
request; the pool's is always used), option 57 (the glue emits the reply;
replies here are small), authoritative-ness knobs, failover, BOOTP clients.

Divergence: RFC 2131's table 3 gives a reply's ``hops`` as 0; here it is
copied from the request (the project's specification for this module);
relay agents do not read it in replies.

Compare: DragonFly has no DHCP server in base; ISC dhcpd
(``server/dhcp.c``: ``dhcpdiscover``, ``dhcprequest``, ``dhcprelease``,
``dhcpdecline``, ``dhcpinform``) makes the same decisions.
"""

from __future__ import annotations

import heapq
import ipaddress
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence

import attrs

from .dhcp import (
    BOOTREPLY,
    BOOTREQUEST,
    CLIENT_PORT,
    FLAG_BROADCAST,
    SERVER_PORT,
    DhcpMessage,
    MessageType,
    Option,
    decode_text,
    encode_addresses,
    encode_text,
    encode_u16,
    encode_u32,
)
from .errors import RemoteProtocolError

__all__ = ["DhcpPool", "DhcpServer", "DhcpServerStatistics", "Lease", "Reply"]

_ZERO = bytes(4)
_BROADCAST = b"\xff\xff\xff\xff"
_TIMED = frozenset({"offered", "bound", "declined"})
_HELD = _TIMED  # states in which an address belongs to its client


def _fmt_ip(addr: bytes | None) -> str:
    if addr is None:
        return "None"
    return str(ipaddress.IPv4Address(bytes(addr))) if len(addr) == 4 else bytes(addr).hex()


def _fmt_mac(mac: bytes | None) -> str:
    return "None" if mac is None else bytes(mac).hex(":")


def _int(addr: bytes) -> int:
    return int.from_bytes(addr, "big")


@attrs.frozen(kw_only=True)
class DhcpPool:
    """The configuration of the server on one network.

    Attributes:
        interface: the arrival interface's name, as the glue passes it to
            :meth:`DhcpServer.handle`; a pool that only relays reach may use
            any unique name.
        server_id: the server's address on that interface (option 54, the
            address clients and relays send to).
        network: the clients' network (mask: option 1; relay pool choice).
        first, last: the dynamic range, inclusive, inside ``network``.
        routers, dns: options 3 and 6, in preference order.
        domain: option 15.
        lease_time: seconds, option 51; T1 and T2 derive from it.
        mtu: option 26.
        next_server: ``siaddr``, the TFTP server (and option 66 as text,
            if asked for); ``None``: 0.0.0.0.
        boot_file: the ``file`` field (and option 67, if asked for).
        static: MAC -> fixed address; inside ``network``, in or out of the
            dynamic range; never given to another client.
    """

    interface: str
    server_id: bytes = attrs.field(repr=_fmt_ip)
    network: ipaddress.IPv4Network
    first: bytes = attrs.field(repr=_fmt_ip)
    last: bytes = attrs.field(repr=_fmt_ip)
    routers: tuple[bytes, ...] = attrs.field(default=(), converter=tuple)
    dns: tuple[bytes, ...] = attrs.field(default=(), converter=tuple)
    domain: str | None = None
    lease_time: int = 3600
    mtu: int | None = None
    next_server: bytes | None = attrs.field(default=None, repr=_fmt_ip)
    boot_file: str | None = None
    static: Mapping[bytes, bytes] = attrs.field(factory=dict, hash=False)

    def check(self) -> None:
        """Check the configuration (:class:`DhcpServer` calls it).

        Raises:
            ValueError: an address is not 4 bytes, the range or a static
                address is outside ``network``, ``first > last``, the lease
                time is not 1..2**32-2, the MTU not 68..65535, or the domain
                or boot file not 1..128 ASCII characters.
        """
        for name in ("server_id", "first", "last"):
            if len(getattr(self, name)) != 4:
                raise ValueError(f"{name} is a 4-byte IPv4 address")
        for addr in (*self.routers, *self.dns, *([self.next_server] if self.next_server else [])):
            if len(addr) != 4:
                raise ValueError("routers, dns and next_server are 4-byte IPv4 addresses")
        if not (self._inside(self.first) and self._inside(self.last)):
            raise ValueError(f"the range {_fmt_ip(self.first)}..{_fmt_ip(self.last)} is not inside {self.network}")
        if _int(self.first) > _int(self.last):
            raise ValueError("first must not be above last")
        for mac, addr in self.static.items():
            if len(addr) != 4 or not self._inside(addr):
                raise ValueError(f"the static address of {_fmt_mac(mac)} is not inside {self.network}")
        if not 0 < self.lease_time < 0xFFFFFFFF:
            raise ValueError("lease_time must be 1..4294967294 seconds (0xFFFFFFFF means infinite)")
        if self.mtu is not None and not 68 <= self.mtu <= 0xFFFF:
            raise ValueError("mtu must be 68..65535 (RFC 2132 5.1)")
        for name in ("domain", "boot_file"):
            value = getattr(self, name)
            if value is not None and (not value.isascii() or not 0 < len(value) <= 128):
                raise ValueError(f"{name} must be 1..128 ASCII characters")

    def __contains__(self, addr: bytes) -> bool:
        """``addr`` (4 bytes) is on ``network``."""
        return self._inside(addr)

    def _inside(self, addr: bytes) -> bool:
        net = self.network
        return len(addr) == 4 and _int(addr) & _int(net.netmask.packed) == _int(net.network_address.packed)

    def in_range(self, addr: bytes) -> bool:
        """``addr`` is in the dynamic range ``first..last``."""
        return len(addr) == 4 and _int(self.first) <= _int(addr) <= _int(self.last)


@attrs.frozen
class Reply:
    """What to send for a request.

    Attributes:
        message: the reply; the glue emits it (``message.emit()``) as the
            payload of a UDP datagram from the pool's ``server_id`` port 67.
        dst: the destination IPv4 address.
        port: the destination port: 67 (a relay agent) or 68 (a client).
        lladdr: when not ``None``, the client has no address yet and did
            not ask for broadcast: send the frame to this MAC, without ARP
            (RFC 2131 4.1; BSD does it with a temporary ARP entry).
    """

    message: DhcpMessage
    dst: bytes = attrs.field(repr=_fmt_ip)
    port: int
    lladdr: bytes | None = attrs.field(default=None, repr=_fmt_mac)


@attrs.frozen
class Lease:
    """One row of :meth:`DhcpServer.leases`.

    Attributes:
        address: the leased address.
        chaddr: the hardware address of the client that has (or last had) it.
        client_id: its option 61, if it sent one.
        hostname: its option 12, if it sent one.
        state: ``"offered"``, ``"bound"``, ``"released"``, ``"expired"`` or
            ``"declined"``.
        expires: when the offer, binding or decline hold ends; for
            ``"released"`` and ``"expired"``, when that happened.
        interface: the pool's interface name.
    """

    address: bytes = attrs.field(repr=_fmt_ip)
    chaddr: bytes = attrs.field(repr=_fmt_mac)
    client_id: bytes | None
    hostname: str | None
    state: str
    expires: float
    interface: str


@attrs.frozen
class DhcpServerStatistics:
    """Counters of a :class:`DhcpServer`, since it was made.

    Attributes:
        offers, acks, naks: replies of each type returned.
        informs: INFORMs answered (with an ACK, counted here, not in ``acks``).
        releases, declines: RELEASEs and DECLINEs applied.
        dropped: messages dropped, of any reason (``drops`` has them by reason).
    """

    offers: int = 0
    acks: int = 0
    naks: int = 0
    informs: int = 0
    releases: int = 0
    declines: int = 0
    dropped: int = 0


@attrs.define(eq=False)
class _Record:
    # One address's lease: the value of the table keyed by address.
    address: bytes
    pool: int
    client: tuple
    chaddr: bytes
    client_id: bytes | None
    hostname: str | None
    state: str
    expires: float


class _Drop(Exception):
    # Internal: the message is dropped for ``reason``.
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _addr_option(msg: DhcpMessage, code: int) -> bytes | None:
    value = msg.option(code)
    if value is not None and len(value) != 4:
        raise _Drop("bad_option")
    return value


class DhcpServer:
    """The DHCP server of rules 1 to 10 in the module docstring.

    Args:
        pools: one per interface name (and per relayed network); their
            networks must not overlap.
        offer_hold: seconds an offered address stays reserved for the
            client's REQUEST.
        decline_hold: seconds a declined address stays out of use.

    Raises:
        ValueError: a pool is inconsistent (:meth:`DhcpPool.check`), two
            pools share an interface name, or two networks overlap.

    Attributes:
        drops: ``collections.Counter`` of dropped messages by reason (parse
            errors under the codec's reasons, then rules 1 to 7's).
    """

    def __init__(
        self, pools: Sequence[DhcpPool], *, offer_hold: float = 60.0, decline_hold: float = 600.0
    ) -> None:
        self._pools = list(pools)
        self._by_interface: dict[str, int] = {}
        for i, pool in enumerate(self._pools):
            pool.check()
            if pool.interface in self._by_interface:
                raise ValueError(f"two pools for interface {pool.interface!r}")
            for other in self._pools[:i]:
                if pool.network.overlaps(other.network):
                    raise ValueError(f"the pools' networks {pool.network} and {other.network} overlap")
            self._by_interface[pool.interface] = i
        self.offer_hold = offer_hold
        self.decline_hold = decline_hold
        self.drops: Counter[str] = Counter()
        self._stats: Counter[str] = Counter()
        self._leases: dict[bytes, _Record] = {}
        self._by_client: dict[tuple[int, tuple], bytes] = {}
        self._heap: list[tuple[float, bytes]] = []
        # Per pool: never-used cursor (an int address), free list (longest free first), reserved set.
        self._cursor = [_int(p.first) for p in self._pools]
        self._free: list[OrderedDict[bytes, None]] = [OrderedDict() for _ in self._pools]
        self._reserved: list[frozenset[bytes]] = [self._reserve(p) for p in self._pools]

    @staticmethod
    def _reserve(pool: DhcpPool) -> frozenset[bytes]:
        reserved = {pool.server_id, *pool.routers, *pool.static.values()}
        if pool.network.prefixlen < 31:
            reserved |= {pool.network.network_address.packed, pool.network.broadcast_address.packed}
        return frozenset(reserved)

    #### Entry points

    def handle(self, data: bytes | bytearray | memoryview, now: float, interface: str) -> Reply | None:
        """Parse and answer one message received on port 67.

        Args:
            data: the UDP payload.
            now: the current time; never less than in an earlier call.
            interface: the arrival interface's name (rule 1).

        Returns:
            The reply to send, or ``None`` (the reason counted in ``drops``).
            Never raises for any ``data``.
        """
        try:
            msg = DhcpMessage.parse(data)
        except RemoteProtocolError as exc:
            self._drop(exc.reason)
            return None
        return self.handle_message(msg, now, interface)

    def handle_message(self, msg: DhcpMessage, now: float, interface: str) -> Reply | None:
        """:meth:`handle` for a parsed message."""
        self.expire(now)
        try:
            return self._dispatch(msg, now, interface)
        except _Drop as drop:
            self._drop(drop.reason)
            return None

    def expire(self, now: float) -> None:
        """End the offers, bindings and decline holds due by ``now`` (rule 10)."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, addr = heapq.heappop(heap)
            rec = self._leases[addr]
            if rec.expires != when or rec.state not in _TIMED:
                continue  # superseded by a later deadline or a state change
            if rec.state == "declined":
                rec.chaddr, rec.client_id, rec.hostname, rec.client = b"", None, None, ()
            rec.state = "expired"
            self._make_free(rec)

    def next_deadline(self) -> float | None:
        """When :meth:`expire` has work next; ``None``: nothing is timed."""
        heap = self._heap
        while heap:
            when, addr = heap[0]
            rec = self._leases[addr]
            if rec.expires == when and rec.state in _TIMED:
                return when
            heapq.heappop(heap)
        return None

    def leases(self, now: float) -> list[Lease]:
        """Every address the server has handed out, sorted by address, as of
        ``now`` (calls :meth:`expire`). At most the bound in the module
        docstring."""
        self.expire(now)
        return [
            Lease(
                r.address, r.chaddr, r.client_id, r.hostname, r.state, r.expires, self._pools[r.pool].interface
            )
            for _, r in sorted(self._leases.items())
        ]

    def statistics(self) -> DhcpServerStatistics:
        """The counters, as a frozen :class:`DhcpServerStatistics`."""
        return DhcpServerStatistics(**self._stats, dropped=sum(self.drops.values()))

    #### Rules 1 to 3

    def _drop(self, reason: str) -> None:
        self.drops[reason] += 1

    def _dispatch(self, msg: DhcpMessage, now: float, interface: str) -> Reply | None:
        if msg.op != BOOTREQUEST:
            raise _Drop("not_request")
        mtype = msg.message_type
        if mtype is None:
            raise _Drop("bootp" if msg.option(Option.MESSAGE_TYPE) is None else "unknown_type")
        handler = _HANDLERS.get(mtype)
        if handler is None:
            raise _Drop("not_request")
        if not msg.chaddr:
            raise _Drop("no_chaddr")
        pi = self._pool_index(msg, interface)
        client_id = msg.option(Option.CLIENT_ID)
        client = ("id", client_id) if client_id is not None else ("hw", msg.htype, msg.chaddr)
        return handler(self, msg, now, pi, client)

    def _pool_index(self, msg: DhcpMessage, interface: str) -> int:
        if msg.giaddr != _ZERO:
            for i, pool in enumerate(self._pools):
                if msg.giaddr in pool:
                    return i
            raise _Drop("no_pool")
        pi = self._by_interface.get(interface)
        if pi is None:
            raise _Drop("no_pool")
        return pi

    #### The lease table

    def _record_of(self, pi: int, client: tuple) -> _Record | None:
        addr = self._by_client.get((pi, client))
        if addr is None:
            return None
        rec = self._leases[addr]
        return rec if rec.client == client and rec.pool == pi else None

    def _is_free_for(self, rec: _Record | None, client: tuple) -> bool:
        return rec is None or rec.client == client or rec.state not in _HELD

    def _make_free(self, rec: _Record) -> None:
        # A dynamic address whose lease ended joins the end of its pool's free list.
        pi = rec.pool
        if rec.address not in self._reserved[pi] and self._pools[pi].in_range(rec.address):
            self._free[pi][rec.address] = None

    def _set(self, rec: _Record, state: str, expires: float) -> None:
        rec.state, rec.expires = state, expires
        if state in _TIMED:
            heapq.heappush(self._heap, (expires, rec.address))
            if len(self._heap) > 2 * len(self._leases) + 64:
                self._heap = [(r.expires, a) for a, r in self._leases.items() if r.state in _TIMED]
                heapq.heapify(self._heap)

    def _assign(
        self, pi: int, addr: bytes, client: tuple, msg: DhcpMessage, state: str, now: float, hold: float
    ) -> _Record:
        rec = self._leases.get(addr)
        hostname_value = msg.option(Option.HOSTNAME)
        hostname = decode_text(hostname_value) if hostname_value is not None else None
        if rec is None:
            rec = _Record(addr, pi, client, msg.chaddr, msg.option(Option.CLIENT_ID), hostname, state, now)
            self._leases[addr] = rec
        else:
            if rec.client != client and self._by_client.get((pi, rec.client)) == addr:
                del self._by_client[(pi, rec.client)]
            rec.client, rec.chaddr, rec.client_id = client, msg.chaddr, msg.option(Option.CLIENT_ID)
            if hostname is not None:
                rec.hostname = hostname
        old = self._record_of(pi, client)
        if old is not None and old is not rec and old.state == "offered":
            self._set(old, "expired", now)  # the client moved on: its old offer goes back
            self._make_free(old)
        self._by_client[(pi, client)] = addr
        self._free[pi].pop(addr, None)
        self._set(rec, state, now + hold)
        return rec

    def _choose(self, pi: int, client: tuple, msg: DhcpMessage) -> bytes | None:
        # Rule 4, in order.
        pool = self._pools[pi]
        reserved = self._reserved[pi]
        static = pool.static.get(msg.chaddr)
        if static is not None:
            rec = self._leases.get(static)
            if rec is not None and rec.state == "declined":
                raise _Drop("static_declined")
            return static
        rec = self._record_of(pi, client)
        if rec is not None and rec.state != "declined":
            return rec.address
        requested = _addr_option(msg, Option.REQUESTED_IP)
        if (
            requested is not None
            and pool.in_range(requested)
            and requested not in reserved
            and self._is_free_for(self._leases.get(requested), client)
        ):
            return requested
        last = _int(pool.last)
        cursor = self._cursor[pi]
        while cursor <= last:
            addr = cursor.to_bytes(4, "big")
            cursor += 1
            if addr not in reserved and addr not in self._leases:
                self._cursor[pi] = cursor
                return addr
        self._cursor[pi] = cursor
        free = self._free[pi]
        if free:
            return next(iter(free))
        return None

    #### Rules 4 to 7: one handler per message type

    def _discover(self, msg: DhcpMessage, now: float, pi: int, client: tuple) -> Reply | None:
        addr = self._choose(pi, client, msg)
        if addr is None:
            raise _Drop("pool_exhausted")
        rec = self._leases.get(addr)
        if rec is not None and rec.client == client and rec.state == "bound" and rec.expires > now:
            pass  # offering the client its own binding: it stays bound
        else:
            self._assign(pi, addr, client, msg, "offered", now, self.offer_hold)
        self._stats["offers"] += 1
        return self._reply(msg, pi, MessageType.OFFER, addr)

    def _request(self, msg: DhcpMessage, now: float, pi: int, client: tuple) -> Reply | None:
        pool = self._pools[pi]
        server_id = _addr_option(msg, Option.SERVER_ID)
        requested = _addr_option(msg, Option.REQUESTED_IP)
        if server_id is not None:  # SELECTING
            rec = self._record_of(pi, client)
            if server_id != pool.server_id:
                if rec is not None and rec.state == "offered":
                    self._set(rec, "expired", now)
                    self._make_free(rec)
                raise _Drop("other_server")
            if requested is not None and rec is not None and rec.address == requested and rec.state != "declined":
                return self._ack(msg, now, pi, client, requested)
            return self._nak(msg, pi)
        if msg.ciaddr == _ZERO:  # INIT-REBOOT
            if requested is None:
                raise _Drop("no_requested_ip")
            return self._confirm(msg, now, pi, client, requested)
        return self._confirm(msg, now, pi, client, msg.ciaddr)  # RENEWING or REBINDING

    def _confirm(self, msg: DhcpMessage, now: float, pi: int, client: tuple, addr: bytes) -> Reply | None:
        # INIT-REBOOT, RENEWING, REBINDING: is ``addr`` this client's?
        pool = self._pools[pi]
        if addr not in pool:
            return self._nak(msg, pi)
        static = pool.static.get(msg.chaddr)
        if static is not None and static != addr:
            return self._nak(msg, pi)
        rec = self._leases.get(addr)
        if rec is not None and rec.client != client and rec.state in _HELD:
            return self._nak(msg, pi)
        if rec is not None and rec.client == client and rec.state != "declined":
            return self._ack(msg, now, pi, client, addr)
        if static == addr and (rec is None or rec.state not in _HELD):
            return self._ack(msg, now, pi, client, addr)
        raise _Drop("unknown_client")

    def _ack(self, msg: DhcpMessage, now: float, pi: int, client: tuple, addr: bytes) -> Reply:
        self._assign(pi, addr, client, msg, "bound", now, self._pools[pi].lease_time)
        self._stats["acks"] += 1
        return self._reply(msg, pi, MessageType.ACK, addr)

    def _nak(self, msg: DhcpMessage, pi: int) -> Reply:
        self._stats["naks"] += 1
        return self._reply(msg, pi, MessageType.NAK, _ZERO)

    def _owned(self, msg: DhcpMessage, pi: int, client: tuple, addr: bytes | None) -> _Record:
        server_id = _addr_option(msg, Option.SERVER_ID)
        if server_id is not None and server_id != self._pools[pi].server_id:
            raise _Drop("other_server")
        rec = self._leases.get(addr) if addr is not None else None
        if rec is None or rec.client != client or rec.pool != pi:
            raise _Drop("unknown_lease")
        return rec

    def _decline(self, msg: DhcpMessage, now: float, pi: int, client: tuple) -> Reply | None:
        rec = self._owned(msg, pi, client, _addr_option(msg, Option.REQUESTED_IP))
        if rec.state not in ("offered", "bound"):
            raise _Drop("unknown_lease")
        if self._by_client.get((pi, client)) == rec.address:
            del self._by_client[(pi, client)]
        rec.client = ("declined",)
        self._free[pi].pop(rec.address, None)
        self._set(rec, "declined", now + self.decline_hold)
        self._stats["declines"] += 1
        return None

    def _release(self, msg: DhcpMessage, now: float, pi: int, client: tuple) -> Reply | None:
        rec = self._owned(msg, pi, client, msg.ciaddr)
        if rec.state != "bound":
            raise _Drop("unknown_lease")
        self._set(rec, "released", now)
        self._make_free(rec)
        self._stats["releases"] += 1
        return None

    def _inform(self, msg: DhcpMessage, now: float, pi: int, client: tuple) -> Reply | None:
        if msg.ciaddr == _ZERO:
            raise _Drop("no_ciaddr")
        self._stats["informs"] += 1
        return self._reply(msg, pi, MessageType.ACK, _ZERO, lease=False)

    #### Rules 8 and 9: the reply

    def _reply(self, msg: DhcpMessage, pi: int, mtype: MessageType, yiaddr: bytes, lease: bool = True) -> Reply:
        pool = self._pools[pi]
        nak = mtype == MessageType.NAK
        options: list[tuple[int, bytes]] = [(Option.MESSAGE_TYPE, bytes((mtype,))), (Option.SERVER_ID, pool.server_id)]
        if not nak:
            if lease:
                t = pool.lease_time
                options += [
                    (Option.LEASE_TIME, encode_u32(t)),
                    (Option.RENEWAL_TIME, encode_u32(t // 2)),
                    (Option.REBINDING_TIME, encode_u32(t * 7 // 8)),
                ]
            options.append((Option.SUBNET_MASK, pool.network.netmask.packed))
            if pool.routers:
                options.append((Option.ROUTER, encode_addresses(pool.routers)))
            if pool.dns:
                options.append((Option.DNS, encode_addresses(pool.dns)))
            if pool.domain is not None:
                options.append((Option.DOMAIN, encode_text(pool.domain)))
            if pool.mtu is not None:
                options.append((Option.MTU, encode_u16(pool.mtu)))
            asked = msg.option(Option.PARAMETER_LIST) or b""
            if pool.next_server is not None and Option.TFTP_SERVER in asked:
                options.append((Option.TFTP_SERVER, encode_text(_fmt_ip(pool.next_server))))
            if pool.boot_file is not None and Option.BOOTFILE in asked:
                options.append((Option.BOOTFILE, encode_text(pool.boot_file)))
        for code in (Option.CLIENT_ID, Option.RELAY_AGENT):
            value = msg.option(code)
            if value is not None:
                options.append((code, value))
        relayed = msg.giaddr != _ZERO
        flags = msg.flags | (FLAG_BROADCAST if nak and relayed else 0)
        reply = DhcpMessage(
            op=BOOTREPLY,
            xid=msg.xid,
            chaddr=msg.chaddr,
            htype=msg.htype,
            hops=msg.hops,
            flags=flags,
            ciaddr=msg.ciaddr if mtype == MessageType.ACK else _ZERO,
            yiaddr=yiaddr,
            siaddr=(pool.next_server or _ZERO) if not nak else _ZERO,
            giaddr=msg.giaddr,
            file=encode_text(pool.boot_file)[:128] if pool.boot_file and not nak else b"",
            options=tuple((int(code), value) for code, value in options),
        )
        if relayed:
            return Reply(reply, msg.giaddr, SERVER_PORT)
        if nak:
            return Reply(reply, _BROADCAST, CLIENT_PORT)
        if msg.ciaddr != _ZERO:
            return Reply(reply, msg.ciaddr, CLIENT_PORT)
        if msg.broadcast or len(msg.chaddr) != 6:
            return Reply(reply, _BROADCAST, CLIENT_PORT)
        return Reply(reply, yiaddr, CLIENT_PORT, msg.chaddr)


_HANDLERS = {
    MessageType.DISCOVER: DhcpServer._discover,
    MessageType.REQUEST: DhcpServer._request,
    MessageType.DECLINE: DhcpServer._decline,
    MessageType.RELEASE: DhcpServer._release,
    MessageType.INFORM: DhcpServer._inform,
}
