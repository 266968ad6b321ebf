"""Neighbor Discovery messages for IPv6 (RFC 4861 sections 4 and 6-8): values, parse, emit.

Five ICMPv6 messages (types 133 to 137) and the options the stack uses, as
frozen values. :func:`parse_nd` turns an :class:`~.icmpv6.Icmp6Message`
already checked by :meth:`~.icmpv6.Icmp6Message.parse` (length, checksum)
into one of them, applying RFC 4861's validity checks (6.1.1, 6.1.2, 7.1.1,
7.1.2, 8.1) in this order, each raising :class:`~.errors.RemoteProtocolError`:

1. The IPv6 hop limit is 255, i.e. the packet was not forwarded by a router
   (``"bad_hop_limit"``).
2. The ICMPv6 code is 0 (``"bad_code"``).
3. The message is at least as long as its type's fixed part: 8 bytes for a
   Router Solicitation, 16 for an Advertisement, 24 for a Neighbor
   Solicitation or Advertisement, 40 for a Redirect (``"short_message"``).
4. The options: each has a non-zero length (``"bad_option_length"``) and
   ends within the message (``"short_option"``).
5. Per type:

   - Router Solicitation from :: carries no source link-layer address
     option (``"bad_rs"``).
   - Router Advertisement comes from a link-local source
     (``"ra_not_link_local"``).
   - Neighbor Solicitation, Advertisement and Redirect have a target that is
     not multicast (``"multicast_target"``).
   - Neighbor Solicitation from :: (a Duplicate Address Detection probe)
     carries no source link-layer address option and goes to a
     solicited-node group (``"bad_dad_probe"``).
   - Neighbor Advertisement to a multicast destination has the Solicited
     flag clear (``"solicited_to_multicast"``).
   - Redirect comes from a link-local source (``"redirect_not_link_local"``),
     its destination is not multicast, and its target is link-local or equal
     to the destination (``"bad_redirect"``).

Checks left to the caller: that an RA or Redirect comes from a router we use,
and everything about what the message means (RFC 4861 6.3.4, 7.2.5, 8.3 and
RFC 4862), which belongs to ``nd6`` and ``addrconf6``.

Options kept, per message (RFC 4861 4.6: any other option is ignored,
whether unknown or just not meant for the message, and so is a second copy
of a single option): source link-layer address (type 1) in RS, RA and NS;
target link-layer address (type 2) in NA and Redirect; MTU (type 5) and
Prefix Information (type 3, repeatable) in RA. Link-layer addresses are
Ethernet's 6 bytes: an address option of another length (another link
type) is ignored, as are a Prefix Information option whose length is not 4
or whose prefix length exceeds 128 and an MTU option whose length is not 1.
The Redirected Header option (type 4) is skipped.

:meth:`emit` on each message computes the checksum and refuses (with
:class:`~.errors.LocalProtocolError`) what :func:`parse_nd` would reject,
so anything we send, we would accept.

Bounds: parse allocates the message value and one :class:`PrefixInfo` per
Prefix Information option, at most one per 32 bytes of message.

DragonFly: ``sys/netinet6/nd6_nbr.c`` (``nd6_ns_input``, ``nd6_na_input``),
``sys/netinet6/nd6_rtr.c`` (``nd6_rs_input``, ``nd6_ra_input``),
``sys/netinet6/nd6.c`` (``nd6_options``), ``icmp6_redirect_input`` in
``sys/netinet6/icmp6.c``.
"""

from __future__ import annotations

import ipaddress
import struct

import attrs

from .errors import LocalProtocolError, RemoteProtocolError
from .icmpv6 import (
    ND_NEIGHBOR_ADVERT,
    ND_NEIGHBOR_SOLICIT,
    ND_REDIRECT,
    ND_ROUTER_ADVERT,
    ND_ROUTER_SOLICIT,
    Icmp6Message,
)

__all__ = [
    "ND_OPT_MTU",
    "ND_OPT_PREFIX_INFORMATION",
    "ND_OPT_REDIRECTED_HEADER",
    "ND_OPT_SOURCE_LINKADDR",
    "ND_OPT_TARGET_LINKADDR",
    "NdMessage",
    "NeighborAdvert",
    "NeighborSolicit",
    "PrefixInfo",
    "Redirect",
    "RouterAdvert",
    "RouterSolicit",
    "parse_nd",
]

# Option types, BSD names (netinet/icmp6.h).
ND_OPT_SOURCE_LINKADDR = 1
ND_OPT_TARGET_LINKADDR = 2
ND_OPT_PREFIX_INFORMATION = 3
ND_OPT_REDIRECTED_HEADER = 4
ND_OPT_MTU = 5

_UNSPECIFIED = bytes(16)
# ff02::1:ff00:0/104, the solicited-node groups (RFC 4291 2.7.1).
_SOLICITED_NODE_PREFIX = bytes.fromhex("ff02" "0000" "0000" "0000" "0000" "0001" "ff")

_U32 = struct.Struct("!I")
_PREFIX = struct.Struct("!BBBBIII16s")  # type, length, prefix length, flags, valid, preferred, reserved, prefix
_PREFIX_L = 0x80
_PREFIX_A = 0x40
_RA_M = 0x80
_RA_O = 0x40
_NA_R = 0x80000000
_NA_S = 0x40000000
_NA_O = 0x20000000


def _fmt6(addr: bytes) -> str:
    # Lenient for repr: a malformed value must still print.
    return str(ipaddress.IPv6Address(addr)) if len(addr) == 16 else repr(addr)


def _fmt_lladdr(addr: bytes | None) -> str:
    if addr is None:
        return "None"
    return ":".join(f"{b:02x}" for b in addr) if len(addr) == 6 else repr(addr)


# The address tests take any bytes without raising: parse_nd must not crash
# on a caller's malformed address either.


def _is_link_local(addr: bytes) -> bool:
    # fe80::/10 (RFC 4291 2.5.6).
    return len(addr) == 16 and addr[0] == 0xFE and addr[1] & 0xC0 == 0x80


def _is_multicast(addr: bytes) -> bool:
    return addr[:1] == b"\xff"


def _is_solicited_node(addr: bytes) -> bool:
    return addr[:13] == _SOLICITED_NODE_PREFIX


def _check_addr(name: str, addr: bytes) -> None:
    if type(addr) is not bytes or len(addr) != 16:
        raise ValueError(f"{name} must be a 16-byte IPv6 address, got {addr!r}")


def _check_lladdr(name: str, addr: bytes | None) -> None:
    if addr is not None and (type(addr) is not bytes or len(addr) != 6):
        raise ValueError(f"{name} must be a 6-byte Ethernet address or None, got {addr!r}")


def _lladdr_option(type_: int, addr: bytes | None) -> bytes:
    return b"" if addr is None else bytes((type_, 1)) + addr


def _mask(prefix: bytes, length: int) -> bytes:
    if length >= 128:
        return prefix
    bits = int.from_bytes(prefix, "big") >> (128 - length) << (128 - length)
    return bits.to_bytes(16, "big")


####################################################################
# Options
####################################################################


@attrs.frozen
class PrefixInfo:
    """A Prefix Information option (RFC 4861 4.6.2), as Router Advertisements carry it.

    The bits of ``prefix`` after ``prefix_len`` are zero in a parsed value
    (the receiver ignores them) and are sent as zero by :meth:`emit` (the
    sender must clear them).

    Attributes:
        prefix: the 16-byte prefix.
        prefix_len: its length in bits, 0..128.
        on_link: the L flag: the prefix is on this link.
        autonomous: the A flag: usable for stateless address configuration
            (RFC 4862).
        valid_lifetime, preferred_lifetime: seconds, 0..2**32-1
            (0xFFFFFFFF is infinity). Their consistency (preferred at most
            valid) is the address configuration's question (RFC 4862
            5.5.3(c)), not checked here.
    """

    prefix: bytes = attrs.field(repr=_fmt6)
    prefix_len: int
    on_link: bool = True
    autonomous: bool = True
    valid_lifetime: int = 2592000
    preferred_lifetime: int = 604800

    def emit(self) -> bytes:
        """The 32-byte option.

        Raises:
            ValueError: a field is out of range.
        """
        _check_addr("prefix", self.prefix)
        plen = self.prefix_len
        if not 0 <= plen <= 128:
            raise ValueError(f"prefix_len must be 0..128, got {plen}")
        flags = (_PREFIX_L if self.on_link else 0) | (_PREFIX_A if self.autonomous else 0)
        try:
            return _PREFIX.pack(
                ND_OPT_PREFIX_INFORMATION, 4, plen, flags, self.valid_lifetime,
                self.preferred_lifetime, 0, _mask(self.prefix, plen),
            )
        except struct.error as exc:
            raise ValueError(f"prefix option field out of range: {exc}") from None


@attrs.frozen
class _Options:
    source_lladdr: bytes | None = None
    target_lladdr: bytes | None = None
    mtu: int | None = None
    prefixes: tuple[PrefixInfo, ...] = ()


_NO_OPTIONS = _Options()


def _parse_options(data: memoryview, want_prefixes: bool) -> _Options:
    """The options in ``data`` (RFC 4861 4.6), checked and filtered as the
    module docstring says. Every option is at least 8 bytes, so the loop
    runs at most ``len(data) / 8`` times."""
    n = len(data)
    if not n:
        return _NO_OPTIONS
    slla = tlla = mtu = None
    prefixes = []
    off = 0
    while off < n:
        if off + 2 > n:
            raise RemoteProtocolError("short_option", f"{n - off} bytes left at offset {off}")
        type_ = data[off]
        size = data[off + 1] * 8
        if not size:
            raise RemoteProtocolError("bad_option_length", f"option {type_} at offset {off} has length 0")
        end = off + size
        if end > n:
            raise RemoteProtocolError("short_option", f"option {type_} at offset {off} needs {size} bytes, {n - off} left")
        if size == 8:
            if type_ == ND_OPT_SOURCE_LINKADDR:
                if slla is None:
                    slla = bytes(data[off + 2 : end])
            elif type_ == ND_OPT_TARGET_LINKADDR:
                if tlla is None:
                    tlla = bytes(data[off + 2 : end])
            elif type_ == ND_OPT_MTU and mtu is None:
                mtu = _U32.unpack_from(data, off + 4)[0]
        elif size == 32 and type_ == ND_OPT_PREFIX_INFORMATION and want_prefixes:
            _, _, plen, flags, valid, preferred, _, prefix = _PREFIX.unpack_from(data, off)
            if plen <= 128:
                prefixes.append(
                    PrefixInfo(
                        _mask(prefix, plen), plen, bool(flags & _PREFIX_L), bool(flags & _PREFIX_A),
                        valid, preferred,
                    )
                )
        off = end
    return _Options(slla, tlla, mtu, tuple(prefixes))


####################################################################
# Messages
####################################################################


@attrs.frozen
class RouterSolicit:
    """A Router Solicitation (RFC 4861 4.1).

    Attributes:
        source_lladdr: the sender's link-layer address, or ``None`` (it must
            be ``None`` when the source is ::).
    """

    source_lladdr: bytes | None = attrs.field(default=None, repr=_fmt_lladdr)

    def emit(self, src: bytes, dst: bytes) -> bytes:
        """The whole ICMPv6 message, checksum computed for ``src`` -> ``dst``.

        Raises:
            ValueError: a malformed field or address.
            LocalProtocolError: a source link-layer address from ::.
        """
        _check_lladdr("source_lladdr", self.source_lladdr)
        _check_addr("src", src)
        if src == _UNSPECIFIED and self.source_lladdr is not None:
            raise LocalProtocolError("a Router Solicitation from :: must not carry a source link-layer address")
        # The 4 reserved bytes are Icmp6Message.data; the options are the body.
        body = _lladdr_option(ND_OPT_SOURCE_LINKADDR, self.source_lladdr)
        return Icmp6Message(ND_ROUTER_SOLICIT, 0, 0).emit(src, dst, body)


@attrs.frozen(kw_only=True)
class RouterAdvert:
    """A Router Advertisement (RFC 4861 4.2).

    Attributes:
        cur_hop_limit: the hop limit hosts should use, 0 (unspecified)..255.
        managed: the M flag (addresses by DHCPv6).
        other: the O flag (other configuration by DHCPv6).
        router_lifetime: seconds this router is a default router, 0..65535
            (0: not a default router).
        reachable_time: milliseconds, 0 (unspecified)..2**32-1.
        retrans_timer: milliseconds between Neighbor Solicitations, 0
            (unspecified)..2**32-1.
        source_lladdr: the router's link-layer address, or ``None``.
        mtu: the link MTU from an MTU option, or ``None``.
        prefixes: the Prefix Information options, in order.
    """

    cur_hop_limit: int = 64
    managed: bool = False
    other: bool = False
    router_lifetime: int = 1800
    reachable_time: int = 0
    retrans_timer: int = 0
    source_lladdr: bytes | None = attrs.field(default=None, repr=_fmt_lladdr)
    mtu: int | None = None
    prefixes: tuple[PrefixInfo, ...] = attrs.field(default=(), converter=tuple)

    def emit(self, src: bytes, dst: bytes) -> bytes:
        """The whole ICMPv6 message, checksum computed for ``src`` -> ``dst``.

        Options are sent in the order source link-layer address, MTU,
        prefixes.

        Raises:
            ValueError: a malformed field or address.
            LocalProtocolError: ``src`` is not link-local.
        """
        _check_lladdr("source_lladdr", self.source_lladdr)
        _check_addr("src", src)
        if not _is_link_local(src):
            raise LocalProtocolError("a Router Advertisement must come from a link-local address")
        chlim, lifetime = self.cur_hop_limit, self.router_lifetime
        if not (0 <= chlim <= 255 and 0 <= lifetime <= 0xFFFF):
            raise ValueError(f"cur_hop_limit must be 0..255 and router_lifetime 0..65535: {self!r}")
        flags = (_RA_M if self.managed else 0) | (_RA_O if self.other else 0)
        parts = [_lladdr_option(ND_OPT_SOURCE_LINKADDR, self.source_lladdr)]
        try:
            parts.insert(0, struct.pack("!II", self.reachable_time, self.retrans_timer))
            if self.mtu is not None:
                parts.append(struct.pack("!BBHI", ND_OPT_MTU, 1, 0, self.mtu))
        except struct.error as exc:
            raise ValueError(f"field out of range: {exc}") from None
        parts.extend(p.emit() for p in self.prefixes)
        data = chlim << 24 | flags << 16 | lifetime
        return Icmp6Message(ND_ROUTER_ADVERT, 0, data).emit(src, dst, b"".join(parts))


@attrs.frozen
class NeighborSolicit:
    """A Neighbor Solicitation (RFC 4861 4.3).

    Attributes:
        target: the address being resolved or probed (16 bytes).
        source_lladdr: the sender's link-layer address, or ``None`` (it must
            be ``None`` in a Duplicate Address Detection probe from ::).
    """

    target: bytes = attrs.field(repr=_fmt6)
    source_lladdr: bytes | None = attrs.field(default=None, repr=_fmt_lladdr)

    def emit(self, src: bytes, dst: bytes) -> bytes:
        """The whole ICMPv6 message, checksum computed for ``src`` -> ``dst``.

        Raises:
            ValueError: a malformed field or address.
            LocalProtocolError: a multicast target, or a probe from :: with a
                source link-layer address or to other than a solicited-node
                group.
        """
        _check_addr("target", self.target)
        _check_lladdr("source_lladdr", self.source_lladdr)
        _check_addr("src", src)
        _check_addr("dst", dst)
        if _is_multicast(self.target):
            raise LocalProtocolError("a Neighbor Solicitation's target must not be multicast")
        if src == _UNSPECIFIED and (self.source_lladdr is not None or not _is_solicited_node(dst)):
            raise LocalProtocolError(
                "a probe from :: goes to a solicited-node group without a source link-layer address"
            )
        body = self.target + _lladdr_option(ND_OPT_SOURCE_LINKADDR, self.source_lladdr)
        return Icmp6Message(ND_NEIGHBOR_SOLICIT, 0, 0).emit(src, dst, body)


@attrs.frozen
class NeighborAdvert:
    """A Neighbor Advertisement (RFC 4861 4.4).

    Attributes:
        target: the address advertised (16 bytes).
        router: the R flag: the sender is a router.
        solicited: the S flag: an answer to a solicitation (never to a
            multicast destination).
        override: the O flag: replace a cached link-layer address.
        target_lladdr: the target's link-layer address, or ``None``.
    """

    target: bytes = attrs.field(repr=_fmt6)
    router: bool = False
    solicited: bool = False
    override: bool = True
    target_lladdr: bytes | None = attrs.field(default=None, repr=_fmt_lladdr)

    def emit(self, src: bytes, dst: bytes) -> bytes:
        """The whole ICMPv6 message, checksum computed for ``src`` -> ``dst``.

        Raises:
            ValueError: a malformed field or address.
            LocalProtocolError: a multicast target, or the Solicited flag to
                a multicast destination.
        """
        _check_addr("target", self.target)
        _check_lladdr("target_lladdr", self.target_lladdr)
        _check_addr("dst", dst)
        if _is_multicast(self.target):
            raise LocalProtocolError("a Neighbor Advertisement's target must not be multicast")
        if self.solicited and _is_multicast(dst):
            raise LocalProtocolError("a solicited Neighbor Advertisement must not go to a multicast address")
        data = (_NA_R if self.router else 0) | (_NA_S if self.solicited else 0) | (_NA_O if self.override else 0)
        body = self.target + _lladdr_option(ND_OPT_TARGET_LINKADDR, self.target_lladdr)
        return Icmp6Message(ND_NEIGHBOR_ADVERT, 0, data).emit(src, dst, body)


@attrs.frozen
class Redirect:
    """A Redirect (RFC 4861 4.5). The stack counts and ignores these.

    Attributes:
        target: the better first hop (link-local), or ``destination`` itself
            when the destination is on-link.
        destination: the destination being redirected.
        target_lladdr: the target's link-layer address, or ``None``.
    """

    target: bytes = attrs.field(repr=_fmt6)
    destination: bytes = attrs.field(repr=_fmt6)
    target_lladdr: bytes | None = attrs.field(default=None, repr=_fmt_lladdr)

    def emit(self, src: bytes, dst: bytes) -> bytes:
        """The whole ICMPv6 message (without a Redirected Header option),
        checksum computed for ``src`` -> ``dst``.

        Raises:
            ValueError: a malformed field or address.
            LocalProtocolError: what :func:`parse_nd` would reject.
        """
        _check_addr("target", self.target)
        _check_addr("destination", self.destination)
        _check_lladdr("target_lladdr", self.target_lladdr)
        _check_addr("src", src)
        reason = _redirect_fault(src, self.target, self.destination)
        if reason:
            raise LocalProtocolError(f"not a valid Redirect ({reason})")
        body = self.target + self.destination + _lladdr_option(ND_OPT_TARGET_LINKADDR, self.target_lladdr)
        return Icmp6Message(ND_REDIRECT, 0, 0).emit(src, dst, body)


def _redirect_fault(src: bytes, target: bytes, destination: bytes) -> str | None:
    if not _is_link_local(src):
        return "redirect_not_link_local"
    if _is_multicast(target):
        return "multicast_target"
    if _is_multicast(destination) or not (_is_link_local(target) or target == destination):
        return "bad_redirect"
    return None


NdMessage = RouterSolicit | RouterAdvert | NeighborSolicit | NeighborAdvert | Redirect
"""Any of the Neighbor Discovery messages :func:`parse_nd` returns."""

# The shortest valid ICMPv6 message per type (header included), rule 3.
_MIN_LENGTH = {
    ND_ROUTER_SOLICIT: 8,
    ND_ROUTER_ADVERT: 16,
    ND_NEIGHBOR_SOLICIT: 24,
    ND_NEIGHBOR_ADVERT: 24,
    ND_REDIRECT: 40,
}


####################################################################
# Parsing
####################################################################


def parse_nd(msg: Icmp6Message, body: memoryview, *, hop_limit: int, src: bytes, dst: bytes) -> NdMessage:
    """The Neighbor Discovery message in ``msg`` and ``body``, validated (RFC 4861).

    Args:
        msg, body: what :meth:`~.icmpv6.Icmp6Message.parse` returned (the
            checksum is already verified).
        hop_limit: the IPv6 header's hop limit.
        src, dst: the IPv6 source and destination, 16 bytes each.

    Returns:
        A :class:`RouterSolicit`, :class:`RouterAdvert`,
        :class:`NeighborSolicit`, :class:`NeighborAdvert` or
        :class:`Redirect`.

    Raises:
        RemoteProtocolError: one of the reasons in the module docstring,
            checked in its order.
        ValueError: ``msg.type`` is not a Neighbor Discovery type (133 to
            137): the caller's bug.
    """
    type_ = msg.type
    minimum = _MIN_LENGTH.get(type_)
    if minimum is None:
        raise ValueError(f"ICMPv6 type {type_} is not a Neighbor Discovery message")
    if hop_limit != 255:
        raise RemoteProtocolError("bad_hop_limit", f"hop limit {hop_limit}, need 255")
    if msg.code:
        raise RemoteProtocolError("bad_code", f"code {msg.code}")
    n = 8 + len(body)
    if n < minimum:
        raise RemoteProtocolError("short_message", f"{n} bytes, type {type_} needs {minimum}")
    body = memoryview(body)
    opts = _parse_options(body[minimum - 8 :], type_ == ND_ROUTER_ADVERT)
    data = msg.data

    if type_ == ND_NEIGHBOR_SOLICIT:
        target = bytes(body[:16])
        if _is_multicast(target):
            raise RemoteProtocolError("multicast_target")
        if src == _UNSPECIFIED and (opts.source_lladdr is not None or not _is_solicited_node(dst)):
            raise RemoteProtocolError("bad_dad_probe")
        return NeighborSolicit(target, opts.source_lladdr)

    if type_ == ND_NEIGHBOR_ADVERT:
        target = bytes(body[:16])
        if _is_multicast(target):
            raise RemoteProtocolError("multicast_target")
        solicited = bool(data & _NA_S)
        if solicited and _is_multicast(dst):
            raise RemoteProtocolError("solicited_to_multicast")
        return NeighborAdvert(target, bool(data & _NA_R), solicited, bool(data & _NA_O), opts.target_lladdr)

    if type_ == ND_ROUTER_ADVERT:
        if not _is_link_local(src):
            raise RemoteProtocolError("ra_not_link_local")
        reachable, retrans = struct.unpack_from("!II", body)
        flags = data >> 16 & 0xFF
        return RouterAdvert(
            cur_hop_limit=data >> 24,
            managed=bool(flags & _RA_M),
            other=bool(flags & _RA_O),
            router_lifetime=data & 0xFFFF,
            reachable_time=reachable,
            retrans_timer=retrans,
            source_lladdr=opts.source_lladdr,
            mtu=opts.mtu,
            prefixes=opts.prefixes,
        )

    if type_ == ND_ROUTER_SOLICIT:
        if src == _UNSPECIFIED and opts.source_lladdr is not None:
            raise RemoteProtocolError("bad_rs")
        return RouterSolicit(opts.source_lladdr)

    # ND_REDIRECT
    target = bytes(body[:16])
    destination = bytes(body[16:32])
    reason = _redirect_fault(src, target, destination)
    if reason:
        raise RemoteProtocolError(reason)
    return Redirect(target, destination, opts.target_lladdr)
