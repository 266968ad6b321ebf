"""The DHCP client's state machine (RFC 2131 sections 3.1, 3.2, 4.1 and
4.4), sans-IO: it gets a lease, keeps it, and gives it back.

:class:`DhcpClient` never sends, sleeps, reads a clock or draws randomness
of its own. Every method takes ``now`` (seconds, never decreasing), random
numbers come from the ``random.Random`` it was given, and each method
returns a list of actions for the glue to carry out in order:
:class:`Send` a message, :class:`Configure` an interface with a lease, or
:class:`Unconfigure` it. The glue owns one timer: when ``now`` reaches
:meth:`DhcpClient.next_deadline`, it calls :meth:`DhcpClient.timeout`.
Messages are :class:`.dhcp.DhcpMessage` values (the codec is
:mod:`.dhcp`); addresses are 4-byte ``bytes``.

Theory of operation
===================

1. :meth:`~DhcpClient.start` enters INIT and broadcasts a DHCPDISCOVER
   (SELECTING); given a ``requested`` address it enters INIT-REBOOT instead
   and broadcasts a DHCPREQUEST for it, with option 50 and no server
   identifier (REBOOTING, section 3.2). Each exchange draws a new ``xid``.
2. Client messages carry option 53, the client identifier (61) and host
   name (12) if configured, and DISCOVER and REQUEST also a parameter
   request list (55: 1, 3, 6, 15, 26, 51, 54, 58, 59) and a maximum message
   size of 1500 (57). Until it has an address the client sets the
   BROADCAST flag (with ``broadcast_flag``, the default), since a stack
   without an address cannot take a unicast reply (4.1).
3. A reply is accepted only if it is a BOOTREPLY with the current ``xid``
   and our ``chaddr``; anything else, and any message the state does not
   expect (``unexpected_<type>``), is counted in :attr:`DhcpClient.drops`
   and changes nothing.
4. SELECTING takes the first OFFER with a usable ``yiaddr`` (not 0.0.0.0,
   multicast or broadcast) and a server identifier, and broadcasts a
   DHCPREQUEST with the same ``xid``, ``ciaddr`` 0, option 50 = the
   offered address and option 54 = that server (REQUESTING). Later offers
   are counted (``extra_offer``) and ignored: there is one pending exchange.
5. Retransmission (4.1): after the n-th transmission the client waits
   ``min(4 * 2**(n-1), 64) + uniform(-1, 1)`` seconds. DISCOVER is resent
   forever (the wait stays at 64 +- 1 s). A REQUEST in REQUESTING or
   REBOOTING is resent 4 times; when the wait after the fifth runs out the
   client goes back to INIT and broadcasts a DISCOVER at once.
6. An ACK in REQUESTING or REBOOTING binds (BOUND) and returns
   :class:`Configure`. Lease times count from the first transmission of the
   REQUEST the ACK answers (4.4.1). T1 is option 58 or half the lease, T2
   option 59 or 7/8 of it, clamped so that ``T1 <= T2 <= lease``. An ACK
   without a lease time (51), without a server identifier (54) where none
   is known, with a bad ``yiaddr`` or with a malformed option the lease
   uses is dropped.
7. A NAK in REQUESTING (from the server we chose), REBOOTING, RENEWING or
   REBINDING returns to INIT, with :class:`Unconfigure` if an address was
   configured, and a DISCOVER after a delay of 1 s, doubled by each NAK
   in a row up to 64 s (reset by an ACK), so a server that refuses
   everything does not make the client spin.
8. At T1, BOUND becomes RENEWING: a DHCPREQUEST with ``ciaddr`` = our
   address and neither option 50 nor 54, unicast to the server, resent
   after half the time left until T2 but at least 60 s later (4.4.5), and
   never later than T2. At T2, REBINDING: the same, broadcast, until the
   lease expires. At expiry: :class:`Unconfigure`, INIT and a DISCOVER.
   An ACK in RENEWING or REBINDING extends the lease: BOUND and
   :class:`Configure` again (the glue updates what it set); if the address
   changed, :class:`Unconfigure` of the old lease comes first.
9. :meth:`~DhcpClient.decline` (the glue found the address in use, e.g. by
   ARP): :class:`Unconfigure`, a broadcast DHCPDECLINE, and a new DISCOVER
   10 s later (3.1 step 5). :meth:`~DhcpClient.release`: a DHCPRELEASE
   unicast to the server, :class:`Unconfigure`, and the client stops.
10. A lease time of 0xFFFFFFFF is infinite: the lease's ``t1``, ``t2`` and
    ``expires`` are ``math.inf``, and while BOUND
    :meth:`~DhcpClient.next_deadline` is a far finite time (0xFFFFFFFF s
    after the lease began) at which :meth:`~DhcpClient.timeout` only
    re-arms it that far again.

Hence :class:`Configure` and :class:`Unconfigure` alternate: Unconfigure
always names the lease configured last, and a Configure while configured
(an extension) is for the same address. After :meth:`~DhcpClient.timeout`
has handled a due deadline, :meth:`~DhcpClient.next_deadline` is later than
``now``: the glue's timer cannot spin.

Without a subnet mask option the prefix length is the address's classful
default (/8 below 128.0.0.0, /16 below 192.0.0.0, /24 above): an old rule,
but a guess the address itself supports, where a fixed /24 is arbitrary.
A mask that is not contiguous counts ``bad_subnet_mask`` and is replaced
the same way; an MTU below 68 counts ``bad_mtu`` and is ignored.

Bounds: one pending exchange, no lists; every call is O(number of options).

Not done: DHCPINFORM, DHCPv6, relay agents, choosing among several offers,
the ARP check itself (the glue does it and calls :meth:`decline`), the
random 1-10 s delay before the first DISCOVER (the glue may wait before
:meth:`start`), keeping a lease across a failed INIT-REBOOT (3.2 allows
it), a minimum lease time (dhcpcd enforces 20 s; here the server's word
stands), and option overload beyond what the codec decodes.

DragonFly: the client is ``dhclient(8)`` (``sbin/dhclient/dhclient.c``:
``state_reboot``, ``state_init``, ``state_selecting``, ``state_requesting``,
``dhcpack``, ``dhcpnak``, ``state_bound``, ``send_discover``,
``send_request``, ``send_decline``). Compare: dhcpcd's growing delay after
a NAK (rule 7). Divergence: lease times count from the first transmission
of the REQUEST, as 4.4.1 says, not from the ACK's arrival.
"""

from __future__ import annotations

import collections
import enum
import ipaddress
import math
import random

import attrs

from .dhcp import (
    BOOTREPLY,
    BOOTREQUEST,
    FLAG_BROADCAST,
    DhcpMessage,
    MessageType,
    Option,
    addresses,
    decode_text,
    decode_u16,
    encode_u16,
    u32,
)
from .errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "BROADCAST",
    "DECLINE_DELAY",
    "INFINITE_LEASE",
    "MAX_REQUEST_RETRANSMISSIONS",
    "PARAMETER_REQUEST_LIST",
    "Action",
    "ClientState",
    "Configure",
    "DhcpClient",
    "DhcpClientStatistics",
    "DhcpLease",
    "Send",
    "Unconfigure",
    "classful_prefixlen",
]

#### Constants

#: The limited broadcast address, where messages go before a server is known.
BROADCAST = b"\xff\xff\xff\xff"
UNSPECIFIED = bytes(4)

#: A lease time of all ones means forever (RFC 2131 section 3.3).
INFINITE_LEASE = 0xFFFFFFFF

#: Retransmissions of a REQUEST in REQUESTING or REBOOTING before INIT.
MAX_REQUEST_RETRANSMISSIONS = 4

#: Seconds from DHCPDECLINE to the next DHCPDISCOVER (RFC 2131 3.1 step 5).
DECLINE_DELAY = 10.0

#: What DISCOVER and REQUEST ask for: mask, routers, DNS, domain, MTU,
#: lease time, server identifier, T1, T2.
PARAMETER_REQUEST_LIST = bytes(
    [
        Option.SUBNET_MASK,
        Option.ROUTER,
        Option.DNS,
        Option.DOMAIN,
        Option.MTU,
        Option.LEASE_TIME,
        Option.SERVER_ID,
        Option.RENEWAL_TIME,
        Option.REBINDING_TIME,
    ]
)

MAX_MESSAGE_SIZE = 1500  # option 57: what we can take (an Ethernet MTU)
FIRST_BACKOFF = 4.0  # RFC 2131 4.1
MAX_BACKOFF = 64.0
JITTER = 1.0  # +- uniform
MIN_RENEW_WAIT = 60.0  # RFC 2131 4.4.5
FIRST_NAK_DELAY = 1.0  # rule 7
MAX_NAK_DELAY = 64.0
MIN_MTU = 68  # RFC 2132 5.1
_U16 = 0xFFFF


def _fmt_addr(addr: bytes) -> str:
    if len(addr) == 4:
        return str(ipaddress.IPv4Address(addr))
    return addr.hex() or "b''"


def _fmt_addrs(addrs: tuple[bytes, ...]) -> str:
    return "(" + ", ".join(_fmt_addr(a) for a in addrs) + ")"


def _usable(addr: bytes) -> bool:
    """An address a server may hand out: not 0.0.0.0, multicast or broadcast."""
    return len(addr) == 4 and addr != UNSPECIFIED and addr != BROADCAST and addr[0] & 0xF0 != 0xE0


def classful_prefixlen(addr: bytes) -> int:
    """The prefix length of ``addr``'s class: 8 (A), 16 (B), else 24."""
    if addr[0] < 128:
        return 8
    if addr[0] < 192:
        return 16
    return 24


def _mask_prefixlen(mask: bytes) -> int | None:
    """The prefix length of a contiguous, non-zero netmask, else ``None``."""
    if len(mask) != 4:
        return None
    hostbits = ~int.from_bytes(mask, "big") & 0xFFFFFFFF
    if hostbits & (hostbits + 1) or hostbits == 0xFFFFFFFF:
        return None
    return 32 - hostbits.bit_length()


#### Values


class ClientState(enum.Enum):
    """The states of RFC 2131 figure 5."""

    INIT = "init"
    SELECTING = "selecting"
    REQUESTING = "requesting"
    BOUND = "bound"
    RENEWING = "renewing"
    REBINDING = "rebinding"
    INIT_REBOOT = "init_reboot"
    REBOOTING = "rebooting"


@attrs.frozen
class DhcpLease:
    """An address and its configuration, as an ACK gave them.

    Attributes:
        address: ours (``yiaddr``).
        prefixlen: from the subnet mask (option 1), or the address's
            classful default without a valid one.
        routers: option 3, in the server's order of preference.
        dns: option 6.
        domain: option 15, or ``None``.
        mtu: option 26 (at least 68), or ``None``.
        server_id: the server that granted the lease (option 54).
        lease_time: seconds (0xFFFFFFFF: infinite).
        acquired: when the lease began: the first transmission of the
            REQUEST the ACK answered.
        t1, t2, expires: absolute times of renewing, rebinding and expiry
            (``math.inf`` for an infinite lease).
    """

    address: bytes = attrs.field(repr=_fmt_addr)
    prefixlen: int
    routers: tuple[bytes, ...] = attrs.field(repr=_fmt_addrs)
    dns: tuple[bytes, ...] = attrs.field(repr=_fmt_addrs)
    domain: str | None
    mtu: int | None
    server_id: bytes = attrs.field(repr=_fmt_addr)
    lease_time: int
    t1: float
    t2: float
    expires: float
    acquired: float


@attrs.frozen
class Send:
    """Send ``message`` (``message.emit()``) from UDP port 68 to port 67.

    Attributes:
        message: the message.
        dst: :data:`BROADCAST`, or the server's address (RENEWING, RELEASE).
        src: the source address: 0.0.0.0 while the client has no address,
            else its address.
    """

    message: DhcpMessage
    dst: bytes = attrs.field(repr=_fmt_addr)
    src: bytes = attrs.field(repr=_fmt_addr)


@attrs.frozen
class Configure:
    """Give the interface ``lease``: its address and prefix, a default
    route through the first router, the resolvers, the MTU. Sent again for
    an extended lease with the same address: update what changed."""

    lease: DhcpLease


@attrs.frozen
class Unconfigure:
    """Take away what :class:`Configure` set for ``lease`` (expired, NAKed,
    declined or released)."""

    lease: DhcpLease


#: What the client's methods return, a list of, to be done in order.
Action = Send | Configure | Unconfigure


@attrs.frozen
class DhcpClientStatistics:
    """Counters of a :class:`DhcpClient`, since it was made.

    Attributes:
        discovers, requests, declines, releases: messages sent, with
            retransmissions.
        offers: offers taken (one per exchange).
        acks, naks: ACKs and NAKs accepted.
        bound: leases obtained in REQUESTING or REBOOTING.
        extended: leases extended in RENEWING or REBINDING.
        expired: leases that ran out.
        abandoned: REQUEST exchanges given up after their retransmissions.
        dropped: the sum of :attr:`DhcpClient.drops`' counts.
    """

    discovers: int = 0
    requests: int = 0
    declines: int = 0
    releases: int = 0
    offers: int = 0
    acks: int = 0
    naks: int = 0
    bound: int = 0
    extended: int = 0
    expired: int = 0
    abandoned: int = 0
    dropped: int = 0


#### The machine


@attrs.define(eq=False)
class DhcpClient:
    """A DHCP client for one interface: see the module's theory of operation.

    Args:
        chaddr: the interface's hardware address (1 to 16 bytes).
        rng: the source of ``xid`` values (``rng.getrandbits(32)``, one per
            exchange) and of retransmission jitter (``rng.uniform(-1, 1)``,
            one per wait in SELECTING, REQUESTING and REBOOTING), drawn in
            that order.
        client_id: option 61 (2 to 255 bytes), if any.
        hostname: option 12 (ASCII, 1 to 255 characters), if any.
        requested: an address to ask for again (INIT-REBOOT), if any.
        broadcast_flag: ask servers to broadcast their replies until the
            client has an address.
        htype: the hardware type (1: Ethernet).

    Attributes:
        drops: received messages dropped or ignored, by reason:
            a parse error's reason, ``not_reply``, ``wrong_xid``,
            ``not_for_us``, ``no_message_type``, ``unexpected_<type>``,
            ``extra_offer``, ``bad_offer``, ``bad_ack``, ``bad_option``,
            ``nak_wrong_server``, ``ack_wrong_server``, ``not_started``
            (before :meth:`start` or after :meth:`release`); and options
            ignored in an accepted ACK: ``bad_subnet_mask``, ``bad_mtu``.

    Raises:
        ValueError: an argument is out of its range.
    """

    chaddr: bytes
    rng: random.Random = attrs.field(repr=False)
    client_id: bytes | None = attrs.field(default=None, kw_only=True)
    hostname: str | None = attrs.field(default=None, kw_only=True)
    requested: bytes | None = attrs.field(default=None, kw_only=True)
    broadcast_flag: bool = attrs.field(default=True, kw_only=True)
    htype: int = attrs.field(default=1, kw_only=True)

    drops: collections.Counter[str] = attrs.field(init=False, factory=collections.Counter)
    _state: ClientState = attrs.field(init=False, default=ClientState.INIT)
    _started: bool = attrs.field(init=False, default=False)
    _lease: DhcpLease | None = attrs.field(init=False, default=None)
    _deadline: float = attrs.field(init=False, default=math.inf)
    _xid: int = attrs.field(init=False, default=0)
    _exchange_start: float = attrs.field(init=False, default=0.0)  # for secs
    _request_start: float = attrs.field(init=False, default=0.0)  # the lease's start
    _sent: int = attrs.field(init=False, default=0)  # transmissions in this exchange
    _offered: bytes = attrs.field(init=False, default=UNSPECIFIED)  # REQUESTING's address
    _server: bytes = attrs.field(init=False, default=UNSPECIFIED)  # REQUESTING's server
    _naks: int = attrs.field(init=False, default=0)  # NAKs in a row
    _stats: dict[str, int] = attrs.field(
        init=False, factory=lambda: dict.fromkeys(attrs.fields_dict(DhcpClientStatistics), 0)
    )

    def __attrs_post_init__(self) -> None:
        if not 1 <= len(self.chaddr) <= 16:
            raise ValueError(f"chaddr must be 1 to 16 bytes, got {len(self.chaddr)}")
        if self.client_id is not None and not 2 <= len(self.client_id) <= 255:
            raise ValueError(f"client_id must be 2 to 255 bytes, got {len(self.client_id)}")
        if self.hostname is not None and not (
            self.hostname.isascii() and 1 <= len(self.hostname) <= 255
        ):
            raise ValueError(f"hostname must be 1 to 255 ASCII characters, got {self.hostname!r}")
        if self.requested is not None and not _usable(self.requested):
            raise ValueError(f"requested must be a unicast IPv4 address, got {self.requested!r}")
        if not 0 <= self.htype <= 255:
            raise ValueError(f"htype must be 0..255, got {self.htype}")

    ####  Views

    @property
    def state(self) -> ClientState:
        """Where the client stands (RFC 2131 figure 5)."""
        return self._state

    @property
    def lease(self) -> DhcpLease | None:
        """The lease configured now, or ``None``."""
        return self._lease

    @property
    def started(self) -> bool:
        """Between :meth:`start` and :meth:`release`."""
        return self._started

    def next_deadline(self) -> float:
        """When :meth:`timeout` has work next: finite while started (rule 10
        for an infinite lease), ``math.inf`` when not started."""
        return self._deadline  # math.inf when stopped: release() sets it

    def statistics(self) -> DhcpClientStatistics:
        """The counters, as a frozen :class:`DhcpClientStatistics`."""
        return DhcpClientStatistics(**{**self._stats, "dropped": sum(self.drops.values())})

    ####  Events

    def start(self, now: float) -> list[Action]:
        """Begin: broadcast a DISCOVER, or a REQUEST for ``requested``
        (rule 1).

        Raises:
            LocalProtocolError: already started.
        """
        if self._started:
            raise LocalProtocolError("the DHCP client is already started")
        self._started = True
        self._naks = 0
        if self.requested is None:
            return self._discover(now)
        self._state = ClientState.INIT_REBOOT
        self._new_exchange(now)
        self._state = ClientState.REBOOTING
        return [self._retransmit(now, self._request_message(now))]

    def timeout(self, now: float) -> list[Action]:
        """Do what is due at ``now``: retransmit, give up, renew, rebind,
        expire or restart. Before :meth:`next_deadline`, nothing."""
        if not self._started or now < self._deadline:
            return []
        state = self._state
        if state is ClientState.INIT:
            return self._discover(now)
        if state is ClientState.SELECTING:
            return [self._retransmit(now, self._discover_message(now))]
        if state in (ClientState.REQUESTING, ClientState.REBOOTING):
            if self._sent > MAX_REQUEST_RETRANSMISSIONS:
                self._stats["abandoned"] += 1
                return self._discover(now)
            return [self._retransmit(now, self._request_message(now))]
        return self._lease_timeout(now)

    def receive(self, data: bytes | DhcpMessage, now: float) -> list[Action]:
        """A UDP datagram for port 68 arrived (its bytes, or the message
        already parsed). Bad ones are counted in :attr:`drops`: this never
        raises for what a peer sent."""
        if not isinstance(data, DhcpMessage):
            try:
                data = DhcpMessage.parse(data)
            except RemoteProtocolError as exc:
                return self._drop(exc.reason)
        msg = data
        if not self._started:
            return self._drop("not_started")
        if msg.op != BOOTREPLY:
            return self._drop("not_reply")
        if msg.xid != self._xid:
            return self._drop("wrong_xid")
        if msg.chaddr[: len(self.chaddr)] != self.chaddr:
            return self._drop("not_for_us")
        kind = msg.message_type
        if kind is None:
            return self._drop("no_message_type")
        state = self._state
        try:
            if kind is MessageType.OFFER and state is ClientState.SELECTING:
                return self._offer(msg, now)
            if kind is MessageType.OFFER and state is ClientState.REQUESTING:
                return self._drop("extra_offer")
            if state in _WAITING_FOR_ACK:
                if kind is MessageType.ACK:
                    return self._ack(msg, now)
                if kind is MessageType.NAK:
                    return self._nak(msg, now)
        except RemoteProtocolError as exc:
            return self._drop(exc.reason)
        return self._drop(f"unexpected_{kind.name.lower()}")

    def release(self, now: float) -> list[Action]:
        """Give the lease back and stop: a DHCPRELEASE unicast to the
        server, then :class:`Unconfigure` (rule 9). Without a lease the
        client just stops. :meth:`start` may begin again."""
        actions: list[Action] = []
        lease = self._lease
        if self._started and lease is not None:
            self._xid = self.rng.getrandbits(32)
            options = [(Option.SERVER_ID, lease.server_id)] + self._id_options()
            msg = self._message(MessageType.RELEASE, now, ciaddr=lease.address, options=options)
            self._stats["releases"] += 1
            actions.append(Send(msg, lease.server_id, lease.address))
            actions.append(Unconfigure(lease))
        self._lease = None
        self._started = False
        self._state = ClientState.INIT
        self._deadline = math.inf
        return actions

    def decline(self, now: float) -> list[Action]:
        """The address of the lease is in use by someone else:
        :class:`Unconfigure`, a broadcast DHCPDECLINE, and a DISCOVER
        :data:`DECLINE_DELAY` seconds later (rule 9).

        Raises:
            LocalProtocolError: there is no lease to decline.
        """
        lease = self._lease
        if not self._started or lease is None:
            raise LocalProtocolError("no DHCP lease to decline")
        options = [
            (Option.REQUESTED_IP, lease.address),
            (Option.SERVER_ID, lease.server_id),
        ] + self._id_options()
        msg = self._message(MessageType.DECLINE, now, options=options)
        self._stats["declines"] += 1
        self._lease = None
        self._state = ClientState.INIT
        self._deadline = now + DECLINE_DELAY
        return [Unconfigure(lease), Send(msg, BROADCAST, UNSPECIFIED)]

    ####  Receiving

    def _drop(self, reason: str) -> list[Action]:
        self.drops[reason] += 1
        return []

    def _offer(self, msg: DhcpMessage, now: float) -> list[Action]:
        server = addresses(msg, Option.SERVER_ID)
        if not _usable(msg.yiaddr) or server is None or len(server) != 1:
            return self._drop("bad_offer")
        self._stats["offers"] += 1
        self._offered = msg.yiaddr
        self._server = server[0]
        self._state = ClientState.REQUESTING
        self._sent = 0
        self._request_start = now
        return [self._retransmit(now, self._request_message(now))]

    def _ack(self, msg: DhcpMessage, now: float) -> list[Action]:
        state = self._state
        old = self._lease
        known = old.server_id if old is not None else None
        server = addresses(msg, Option.SERVER_ID)
        if server is not None and len(server) != 1:
            raise RemoteProtocolError("bad_option")
        server_id = server[0] if server is not None else known
        lease_time = u32(msg, Option.LEASE_TIME)
        if server_id is None or lease_time is None or not _usable(msg.yiaddr):
            return self._drop("bad_ack")
        if state is ClientState.REQUESTING and server_id != self._server:
            return self._drop("ack_wrong_server")
        lease = self._make_lease(msg, server_id, lease_time, self._request_start)
        self._stats["acks"] += 1
        self._naks = 0
        actions: list[Action] = []
        if old is not None and old.address != lease.address:
            actions.append(Unconfigure(old))
        self._stats["extended" if state in _HOLDING else "bound"] += 1
        self._lease = lease
        self._state = ClientState.BOUND
        self._deadline = lease.t1 if lease.t1 != math.inf else lease.acquired + INFINITE_LEASE
        actions.append(Configure(lease))
        return actions

    def _make_lease(self, msg: DhcpMessage, server_id: bytes, lease_time: int, start: float) -> DhcpLease:
        address = msg.yiaddr
        prefixlen = classful_prefixlen(address)
        mask = msg.option(Option.SUBNET_MASK)
        if mask is not None:
            plen = _mask_prefixlen(mask)
            if plen is None:
                self.drops["bad_subnet_mask"] += 1
            else:
                prefixlen = plen
        mtu = None
        raw_mtu = msg.option(Option.MTU)
        if raw_mtu is not None:
            mtu = decode_u16(raw_mtu)
            if mtu < MIN_MTU:
                self.drops["bad_mtu"] += 1
                mtu = None
        raw_domain = msg.option(Option.DOMAIN)
        domain = decode_text(raw_domain) if raw_domain is not None else None
        if lease_time == INFINITE_LEASE:
            t1 = t2 = expires = math.inf
        else:
            renewal = u32(msg, Option.RENEWAL_TIME)
            rebinding = u32(msg, Option.REBINDING_TIME)
            t2_rel = min(rebinding if rebinding is not None else lease_time * 7 / 8, lease_time)
            t1_rel = min(renewal if renewal is not None else lease_time / 2, t2_rel)
            t1, t2, expires = start + t1_rel, start + t2_rel, start + lease_time
        return DhcpLease(
            address=address,
            prefixlen=prefixlen,
            routers=tuple(addresses(msg, Option.ROUTER) or ()),
            dns=tuple(addresses(msg, Option.DNS) or ()),
            domain=domain,
            mtu=mtu,
            server_id=server_id,
            lease_time=lease_time,
            t1=t1,
            t2=t2,
            expires=expires,
            acquired=start,
        )

    def _nak(self, msg: DhcpMessage, now: float) -> list[Action]:
        if self._state is ClientState.REQUESTING:
            server = addresses(msg, Option.SERVER_ID)
            if server is not None and server != [self._server]:
                return self._drop("nak_wrong_server")
        self._stats["naks"] += 1
        actions: list[Action] = []
        if self._lease is not None:
            actions.append(Unconfigure(self._lease))
            self._lease = None
        self._state = ClientState.INIT
        self._deadline = now + min(FIRST_NAK_DELAY * 2**self._naks, MAX_NAK_DELAY)
        self._naks = min(self._naks + 1, 16)
        return actions

    ####  Timers

    def _lease_timeout(self, now: float) -> list[Action]:
        lease = self._lease
        assert lease is not None  # BOUND, RENEWING and REBINDING hold one
        if now >= lease.expires:
            self._stats["expired"] += 1
            self._lease = None
            return [Unconfigure(lease), *self._discover(now)]
        if now >= lease.t2:
            if self._state is not ClientState.REBINDING:
                self._state = ClientState.REBINDING
                self._new_exchange(now)
            until = lease.expires
        elif now >= lease.t1:
            if self._state is not ClientState.RENEWING:
                self._state = ClientState.RENEWING
                self._new_exchange(now)
            until = lease.t2
        else:  # BOUND with an infinite lease (rule 10)
            self._deadline = now + INFINITE_LEASE
            return []
        self._deadline = min(now + max((until - now) / 2, MIN_RENEW_WAIT), until)
        return [self._request_message(now)]

    ####  Sending

    def _new_exchange(self, now: float) -> None:
        self._xid = self.rng.getrandbits(32)
        self._exchange_start = self._request_start = now
        self._sent = 0

    def _discover(self, now: float) -> list[Action]:
        self._state = ClientState.INIT
        self._new_exchange(now)
        self._state = ClientState.SELECTING
        return [self._retransmit(now, self._discover_message(now))]

    def _retransmit(self, now: float, send: Send) -> Send:
        """Count one more transmission and arm the back-off timer (rule 5)."""
        wait = min(FIRST_BACKOFF * 2**self._sent, MAX_BACKOFF)
        self._sent += 1
        self._deadline = now + wait + self.rng.uniform(-JITTER, JITTER)
        return send

    def _id_options(self) -> list[tuple[int, bytes]]:
        options: list[tuple[int, bytes]] = []
        if self.client_id is not None:
            options.append((Option.CLIENT_ID, self.client_id))
        return options

    def _common_options(self) -> list[tuple[int, bytes]]:
        options = self._id_options()
        if self.hostname is not None:
            options.append((Option.HOSTNAME, self.hostname.encode("ascii")))
        return options

    def _tail_options(self) -> list[tuple[int, bytes]]:
        return [
            (Option.PARAMETER_LIST, PARAMETER_REQUEST_LIST),
            (Option.MAX_MESSAGE_SIZE, encode_u16(MAX_MESSAGE_SIZE)),
        ]

    def _discover_message(self, now: float) -> Send:
        self._stats["discovers"] += 1
        options = self._common_options() + self._tail_options()
        msg = self._message(MessageType.DISCOVER, now, options=options, broadcast=True)
        return Send(msg, BROADCAST, UNSPECIFIED)

    def _request_message(self, now: float) -> Send:
        """The REQUEST of the current state (REQUESTING, REBOOTING,
        RENEWING or REBINDING: RFC 2131 4.3.2's four cases)."""
        self._stats["requests"] += 1
        state = self._state
        options = self._common_options()
        if state is ClientState.REQUESTING:
            options += [(Option.REQUESTED_IP, self._offered), (Option.SERVER_ID, self._server)]
        elif state is ClientState.REBOOTING:
            assert self.requested is not None
            options.append((Option.REQUESTED_IP, self.requested))
        options += self._tail_options()
        if state in _HOLDING:
            lease = self._lease
            assert lease is not None
            dst = lease.server_id if state is ClientState.RENEWING else BROADCAST
            msg = self._message(MessageType.REQUEST, now, ciaddr=lease.address, options=options)
            return Send(msg, dst, lease.address)
        msg = self._message(MessageType.REQUEST, now, options=options, broadcast=True)
        return Send(msg, BROADCAST, UNSPECIFIED)

    def _message(
        self,
        kind: MessageType,
        now: float,
        *,
        options: list[tuple[int, bytes]],
        ciaddr: bytes = UNSPECIFIED,
        broadcast: bool = False,
    ) -> DhcpMessage:
        secs = min(max(int(now - self._exchange_start), 0), _U16)
        return DhcpMessage(
            op=BOOTREQUEST,
            xid=self._xid,
            chaddr=self.chaddr,
            htype=self.htype,
            secs=secs,
            flags=FLAG_BROADCAST if broadcast and self.broadcast_flag else 0,
            ciaddr=ciaddr,
            options=((Option.MESSAGE_TYPE, bytes([kind])), *options),
        )


_WAITING_FOR_ACK = frozenset(
    {ClientState.REQUESTING, ClientState.REBOOTING, ClientState.RENEWING, ClientState.REBINDING}
)
# States that hold a configured lease while they ask for more time.
_HOLDING = frozenset({ClientState.RENEWING, ClientState.REBINDING})
