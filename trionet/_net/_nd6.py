"""Neighbour discovery glue (RFC 4861, RFC 4862, RFC 3810): next-hop
resolution, neighbour and router messages, duplicate address detection,
address autoconfiguration, router advertisements and multicast listener
reports.

The machines are sans-IO (``trionet.protocols``: ``nd6.NeighborCache``,
``addrconf6.Dad``/``HostAutoconf``/``RouterAdvertiser``,
``mld.MldListener``); this module does what they return, per interface
(:class:`_Nd6If`): sends solicitations, advertisements and reports, sends
the packets whose resolution completed, adds and removes the addresses and
routes that router advertisements give, and marks addresses tentative,
preferred or duplicated.

Rules:

1. :meth:`Nd6.output` is IPv6's link output (``nd6_output``): multicast
   next hops map to ``33:33:..`` at once, anything on a loopback interface to
   zero addresses, a unicast next hop goes through the interface's neighbour
   cache (the packet waits in its bounded hold queue while a solicitation is
   out).
2. Everything else runs on ``netisr 0``: ICMPv6 hands ND and MLD messages
   here (they hash to CPU 0), and one callout per interface runs the
   machines' ``expire`` at their earliest deadline.
3. An address set on a running interface (by hand, by SLAAC, or the
   link-local made at ``ifup``) starts TENTATIVE and probes with DAD
   (``net.inet6.ip6.dad_count`` solicitations, 0 for none); it is not used
   as a source nor answered for until DAD passes. A duplicate found marks it
   DUPLICATED (kept in the interface's list, as ``ifconfig`` shows it,
   never used), counted ``dad_duplicates`` and logged.
4. Joining a group (all-nodes, the solicited-node group of every address,
   all-routers on a router) programs the interface's multicast filter
   (``SIOCADDMULTI``, on a short-lived kernel thread, as DragonFly hands
   ioctls to a thread that may sleep) and sends MLDv2 reports; all-nodes is
   never reported. A DAD run starts only once the filter has its groups
   (RFC 4862 5.4.2), so that a defender's answer is heard; until then (a
   moment) a neighbour's solicitation for a new address may be missed and
   is retransmitted.
5. A host (``net.inet6.ip6.forwarding`` 0) with
   ``net.inet6.ip6.accept_rtadv`` 1 solicits routers at ``ifup`` and
   autoconfigures from advertisements: addresses (prefix + EUI-64
   interface identifier), the default route through the router (flag ``1``
   in ``netstat -rn``), on-link prefixes, and the link MTU. A router sends
   advertisements only on interfaces given a configuration
   (:meth:`Nd6.rtadvd`), answers solicitations, and never autoconfigures.

Every drop has a counter (``statistics().drops``).

*Divergence:* the Cur Hop Limit, Reachable Time and Retrans Timer of an
advertisement are parsed but not applied (``net.inet6.ip6.hlim`` and the
RFC 4861 defaults stay in force); redirects are counted and ignored.

DragonFly: ``sys/netinet6/nd6.c`` (``nd6_output``, ``nd6_timer``,
``nd6_cache_lladdr``), ``nd6_nbr.c`` (``nd6_ns_input``, ``nd6_na_input``,
``nd6_dad_*``), ``nd6_rtr.c`` (``nd6_ra_input``, ``prelist_update``),
``in6.c`` (``in6_update_ifa``), ``mld6.c``; ``usr.sbin/rtadvd``.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs
import structlog
import trio

from .._exceptions import NetError
from ..protocols import addrconf6, mld, ndp
from ..protocols.errors import RemoteProtocolError
from ..protocols.ethernet import ETHERTYPE_IPV6
from ..protocols.icmpv6 import DST_UNREACH, UNREACH_ADDR, Icmp6Message
from ..protocols.ipv6 import (
    ALL_MLDV2_ROUTERS,
    ALL_NODES,
    ALL_ROUTERS,
    IPPROTO_ICMPV6,
    UNSPECIFIED,
    IPv6Header,
    ip6_ntoa,
    is_link_local6,
    multicast_mac,
    router_alert_hop_by_hop,
    solicited_node_group,
)
from ..protocols.nd6 import NeighborCache
from ..protocols.offload import complete
from ._ether import _ZERO_MAC, Mbuf, ether_output
from ._if import IfFlags, IfIoctl, In6Addr, In6Flags
from ._layer import ProtoLayer
from ._route import Route

if TYPE_CHECKING:
    from ._host import Host
    from ._if import Ifnet
    from ._ip6 import Ip6

__all__ = ["Nd6", "Nd6LayerStatistics", "NdpRow"]

log = structlog.get_logger(__name__)

_LOOPBACK = int(IfFlags.LOOPBACK)
_ND_HOP_LIMIT = 255
_DEFAULT6 = ipaddress.IPv6Network("::/0")


@attrs.frozen
class Nd6LayerStatistics:
    """A host's neighbour discovery counters (each interface's cache has
    its own, in :meth:`Nd6.cache_statistics`).

    Attributes:
        received: ND and MLD messages that reached this layer.
        dad_duplicates: addresses DAD found in use by another node.
        drops: reason -> count: the parsers' reasons and ``pending_full``,
            ``unresolved``, ``output_refused``, ``ns_not_for_us``,
            ``na_for_own_address``, ``ra_ignored``, ``redirect_ignored``...
    """

    received: int
    dad_duplicates: int
    drops: dict[str, int]


@attrs.frozen
class NdpRow:
    """One neighbour as ``ndp -a`` shows it (``expires``: seconds left,
    ``None`` for a static entry)."""

    address: str
    lladdr: str
    netif: str
    state: str
    router: bool
    expires: float | None


@attrs.define(eq=False)
class _Nd6If:
    # One interface's neighbour discovery state (DragonFly: struct nd_ifinfo).
    ifp: Ifnet
    cache: NeighborCache
    mld: Any
    callout: Any
    dads: dict[bytes, Any] = attrs.field(factory=dict)
    autoconf: Any = None
    advertiser: Any = None
    linkmtu: int | None = None
    first_dad: bool = True
    # Filter ioctls not done yet, and the DAD runs that wait for them (RFC
    # 4862 5.4.2: join the groups before the first probe).
    filters_pending: int = 0
    dad_waiting: list[tuple[Any, float]] = attrs.field(factory=list)


class Nd6(ProtoLayer):
    """A host's neighbour discovery (see the module docstring)."""

    def __init__(self, host: Host, ip6: Ip6, local_addrs: dict[bytes, Ifnet], rng: random.Random) -> None:
        super().__init__()
        self.host = host
        self.ip6 = ip6
        self.local_addrs = local_addrs
        self._rng = rng
        self._ifs: dict[Ifnet, _Nd6If] = {}
        self._received = 0
        self._dad_duplicates = 0
        # interface -> group -> references (joins not yet left)
        self._group_refs: dict[Ifnet, dict[bytes, int]] = {}
        # interface -> its rtadvd configuration (kept across down and up)
        self._rtadvd: dict[Ifnet, Any] = {}

    def statistics(self) -> Nd6LayerStatistics:
        """A snapshot of the counters."""
        return Nd6LayerStatistics(self._received, self._dad_duplicates, self._drop_counts())

    def cache_statistics(self, ifp: Ifnet) -> Any:
        """``ifp``'s neighbour cache counters."""
        return self._if(ifp).cache.statistics()

    def _if(self, ifp: Ifnet) -> _Nd6If:
        st = self._ifs.get(ifp)
        if st is None:
            st = self._ifs[ifp] = _Nd6If(
                ifp,
                NeighborCache(rng=random.Random(self._rng.random())),
                mld.MldListener(random.Random(self._rng.random())),
                self.host.callout(0, thread="netisr"),
            )
        return st

    def link_mtu(self, ifp: Ifnet) -> int:
        """``ifp``'s IPv6 MTU: its MTU, or lower if a router advertised one."""
        st = self._ifs.get(ifp)
        if st is None or st.linkmtu is None:
            return ifp.mtu
        return min(ifp.mtu, st.linkmtu)

    ####################################################################
    # Output (rule 1)
    ####################################################################

    def output(self, ifp: Ifnet, nexthop: bytes, packet: bytes) -> None:
        """Resolve ``nexthop`` on ``ifp`` and send the IPv6 ``packet`` to it,
        now or once the neighbour cache has its MAC.

        Raises:
            NetError: from ``ether_output`` when the packet could be sent at
                once and the send queue refused it.

        DragonFly: ``nd6_output``.
        """
        if nexthop[0] == 0xFF:
            ether_output(ifp, multicast_mac(nexthop), ETHERTYPE_IPV6, packet)
            return
        if int(ifp.flags) & _LOOPBACK or not ifp.lladdr:
            ether_output(ifp, _ZERO_MAC, ETHERTYPE_IPV6, packet)
            return
        st = self._ifs.get(ifp) or self._if(ifp)
        res = st.cache.resolve(nexthop, packet, trio.current_time())
        if res.dropped:
            self.drops["pending_full"] += len(res.dropped)
        if res.evicted:
            self.drops["evicted"] += len(res.evicted)
        if res.solicit is not None:
            self._solicit(st, res.solicit)
            self._arm(st)
        if res.mac is not None:
            ether_output(ifp, res.mac, ETHERTYPE_IPV6, packet)

    def _send(self, ifp: Ifnet, mac: bytes, src: bytes, dst: bytes, message: bytes, hop_limit: int = _ND_HOP_LIMIT) -> None:
        packet = IPv6Header(src, dst, IPPROTO_ICMPV6, hop_limit=hop_limit).emit(message)
        try:
            ether_output(ifp, mac, ETHERTYPE_IPV6, packet)
        except NetError:
            self.drops["output_refused"] += 1

    def _link_local(self, ifp: Ifnet) -> bytes | None:
        for ia in ifp.addrs6:
            if ia.usable and is_link_local6(ia.addr):
                return ia.addr
        return None

    def _solicit(self, st: _Nd6If, solicit: Any) -> None:
        # An NS for a neighbour's address (resolution or a unicast probe).
        ifp = st.ifp
        src = self._link_local(ifp)
        if src is None:
            src = next((ia.addr for ia in ifp.addrs6 if ia.usable), None)
        if src is None:
            self.drops["no_source"] += 1
            return
        message = ndp.NeighborSolicit(solicit.target, source_lladdr=ifp.lladdr).emit(src, solicit.dst)
        self._send(ifp, solicit.dst_mac or multicast_mac(solicit.dst), src, solicit.dst, message)

    def _release(self, st: _Nd6If, released: Iterable[tuple[bytes, object]]) -> None:
        for mac, packet in released:
            try:
                ether_output(st.ifp, mac, ETHERTYPE_IPV6, packet)  # type: ignore[arg-type]
            except NetError:
                self.drops["output_refused"] += 1

    ####################################################################
    # Input (rule 2)
    ####################################################################

    def input(self, hdr: IPv6Header, msg: Icmp6Message, body: memoryview, m: Mbuf) -> None:
        """A neighbour discovery message (from ICMPv6 input)."""
        self._received += 1
        try:
            nd = ndp.parse_nd(msg, body, hop_limit=hdr.hop_limit, src=hdr.src, dst=hdr.dst)
        except RemoteProtocolError as exc:
            self.drops[exc.reason] += 1
            return
        st = self._if(m.rcvif)
        now = trio.current_time()
        if isinstance(nd, ndp.NeighborSolicit):
            self._ns_input(st, hdr, nd, m, now)
        elif isinstance(nd, ndp.NeighborAdvert):
            self._na_input(st, nd, now)
        elif isinstance(nd, ndp.RouterSolicit):
            if st.advertiser is None:
                self.drops["rs_not_router"] += 1
            else:
                st.advertiser.rs_received(now)
            if nd.source_lladdr is not None and hdr.src != UNSPECIFIED:
                self._lladdr(st, hdr.src, nd.source_lladdr, now)
        elif isinstance(nd, ndp.RouterAdvert):
            self._ra_input(st, hdr, nd, now)
        else:
            self.drops["redirect_ignored"] += 1
        self._arm(st)

    def _ns_input(self, st: _Nd6If, hdr: IPv6Header, ns: Any, m: Mbuf, now: float) -> None:
        ifp = st.ifp
        target = ns.target
        dad = st.dads.get(target)
        if dad is not None:
            # RFC 4862 5.4.3: another node's probe for our tentative address
            # is a duplicate; a solicitation from a unicast source is not.
            if hdr.src == UNSPECIFIED:
                own = m.src == ifp.lladdr
                if dad.ns_received(from_unspecified=True, own_probe=own):
                    self._duplicate(st, target)
                else:
                    self.drops["own_dad_probe"] += 1
            else:
                self.drops["ns_for_tentative"] += 1  # a resolution, not a probe: not answered
            return
        ia = next((a for a in ifp.addrs6 if a.addr == target and a.usable), None)
        if ia is None:
            self.drops["ns_not_for_us"] += 1
            return
        if hdr.src != UNSPECIFIED and ns.source_lladdr is not None:
            self._lladdr(st, hdr.src, ns.source_lladdr, now)
        router = self.host.sysctls.get("net.inet6.ip6.forwarding") == 1
        if hdr.src == UNSPECIFIED:
            dst, mac, solicited = ALL_NODES, multicast_mac(ALL_NODES), False
        else:
            dst, solicited = hdr.src, True
            mac = ns.source_lladdr or m.src
        message = ndp.NeighborAdvert(
            target, router=router, solicited=solicited, override=True, target_lladdr=ifp.lladdr
        ).emit(target, dst)
        self._send(ifp, mac, target, dst, message)

    def _na_input(self, st: _Nd6If, na: Any, now: float) -> None:
        target = na.target
        dad = st.dads.get(target)
        if dad is not None:
            if dad.na_received():
                self._duplicate(st, target)
            return
        if target in self.local_addrs:
            self.drops["na_for_own_address"] += 1
            log.warning("in6_address_conflict", host=self.host.name, ifname=st.ifp.name, addr=ip6_ntoa(target))
            return
        res = st.cache.na_input(
            target, tlla=na.target_lladdr, router=na.router, solicited=na.solicited, override=na.override, now=now
        )
        if res.reason is not None:
            self.drops[res.reason] += 1
        if res.evicted:
            self.drops["evicted"] += len(res.evicted)
        self._release(st, res.released)
        if res.router_lost:
            self._router_gone(st, target)

    def _lladdr(self, st: _Nd6If, ip: bytes, mac: bytes, now: float, *, is_router: bool | None = None) -> None:
        res = st.cache.lladdr_input(ip, mac, now, is_router=is_router)
        if res.reason is not None:
            self.drops[res.reason] += 1
        if res.evicted:
            self.drops["evicted"] += len(res.evicted)
        self._release(st, res.released)

    ####################################################################
    # Timers
    ####################################################################

    def _arm(self, st: _Nd6If) -> None:
        deadlines = [st.cache.next_deadline(), st.mld.next_deadline()]
        deadlines += [dad.next_deadline() for dad in st.dads.values()]
        if st.autoconf is not None:
            deadlines.append(st.autoconf.next_deadline())
        if st.advertiser is not None:
            deadlines.append(st.advertiser.next_deadline())
        due = [d for d in deadlines if d is not None]
        st.callout.follow(min(due) if due else None, self._expire, st)

    def _expire(self, st: _Nd6If) -> None:
        now = trio.current_time()
        ifp = st.ifp
        exp = st.cache.expire(now)
        for solicit in exp.solicits:
            self._solicit(st, solicit)
        for _target, packets in exp.failed:
            # RFC 4861 7.2.2: each waiting packet's source hears that the
            # address is unreachable (ICMPv6's own rules and rate apply).
            self.drops["unresolved"] += len(packets)
            for packet in packets:
                try:
                    hdr, _ = IPv6Header.parse(packet)  # type: ignore[arg-type]
                except RemoteProtocolError:
                    continue
                self.ip6.icmp6.error_about(
                    memoryview(complete(packet)), hdr, DST_UNREACH, UNREACH_ADDR  # type: ignore[arg-type]
                )
        for gone in exp.unreachable:
            self._router_gone(st, gone)
        for addr, dad in list(st.dads.items()):
            if dad.next_deadline() is None or dad.next_deadline() > now:
                continue
            step = dad.expire(now)
            if step.probe:
                group = solicited_node_group(addr)
                message = ndp.NeighborSolicit(addr).emit(UNSPECIFIED, group)
                self._send(ifp, multicast_mac(group), UNSPECIFIED, group, message)
            if step.done:
                self._dad_passed(st, addr)
        for report in st.mld.expire(now):
            self._report(ifp, report)
        if st.autoconf is not None:
            send_rs, changes = st.autoconf.expire(now)
            if send_rs:
                self._send_rs(st)
            self._apply(st, changes, now)
        if st.advertiser is not None:
            ra = st.advertiser.expire(now)
            if ra is not None:
                self._send_ra(st, ra)
        self._arm(st)

    ####################################################################
    # Addresses and DAD (rule 3)
    ####################################################################

    def start_dad(self, ifp: Ifnet, ia: In6Addr) -> None:
        """Probe ``ia`` (marked TENTATIVE by the caller) with DAD, or mark
        it usable at once when ``net.inet6.ip6.dad_count`` is 0 or the
        interface is a loopback one."""
        transmits = self.host.sysctls.get("net.inet6.ip6.dad_count")
        if int(ifp.flags) & _LOOPBACK or not ifp.lladdr:
            ia.flags &= ~In6Flags.TENTATIVE
            self.ip6.tentative.discard(ia.addr)
            return
        # Its solicited-node group, with or without DAD: neighbours resolve
        # the address by soliciting there.
        self.join(ifp, solicited_node_group(ia.addr))
        if not transmits:
            ia.flags &= ~In6Flags.TENTATIVE
            self.ip6.tentative.discard(ia.addr)
            return
        self.ip6.tentative.add(ia.addr)
        st = self._if(ifp)
        dad = addrconf6.Dad(ia.addr, transmits=transmits, retrans_timer=addrconf6.RETRANS_TIMER)
        # RFC 4862 5.4.2: the first probe after the interface came up waits
        # a random delay, so that hosts booting together do not collide.
        delay = self._rng.uniform(0, addrconf6.MAX_RTR_SOLICITATION_DELAY) if st.first_dad else 0.0
        st.first_dad = False
        st.dads[ia.addr] = dad
        if st.filters_pending:
            # RFC 4862 5.4.2: the groups first (all-nodes, to hear a
            # defender's advertisement; the solicited-node group, to hear
            # another node's probe): the probe waits for the filter.
            st.dad_waiting.append((dad, delay))
            return
        dad.start(trio.current_time(), delay)
        self._arm(st)

    def _dad_passed(self, st: _Nd6If, addr: bytes) -> None:
        st.dads.pop(addr, None)
        self.ip6.tentative.discard(addr)
        for ia in st.ifp.addrs6:
            if ia.addr == addr:
                ia.flags &= ~In6Flags.TENTATIVE
                self.host.routes6.invalidate()  # a usable source now
                log.info("in6_dad_done", host=self.host.name, ifname=st.ifp.name, addr=str(ia))
                return

    def _duplicate(self, st: _Nd6If, addr: bytes) -> None:
        st.dads.pop(addr, None)
        self.ip6.tentative.discard(addr)
        self._dad_duplicates += 1
        if st.autoconf is not None:
            st.autoconf.address_duplicated(addr)  # so later RAs do not make it again
        for ia in st.ifp.addrs6:
            if ia.addr == addr:
                ia.flags = (ia.flags & ~In6Flags.TENTATIVE) | In6Flags.DUPLICATED
                if self.local_addrs.get(addr) is st.ifp:
                    del self.local_addrs[addr]
                self.host.routes6.invalidate()
                log.warning("in6_dad_duplicate", host=self.host.name, ifname=st.ifp.name, addr=str(ia))
                return

    def forget(self, ifp: Ifnet, addr: bytes) -> None:
        """``addr`` left ``ifp``: stop its DAD and leave its solicited-node group."""
        st = self._ifs.get(ifp)
        if st is not None:
            st.dads.pop(addr, None)
        self.ip6.tentative.discard(addr)
        self.leave(ifp, solicited_node_group(addr))

    ####################################################################
    # Groups and MLD (rule 4)
    ####################################################################

    def join(self, ifp: Ifnet, group: bytes) -> None:
        """Join ``group`` on ``ifp``: reference-counted; the first join
        programs the filter and (except all-nodes) sends reports."""
        counts = self._group_refs.setdefault(ifp, {})
        n = counts.get(group, 0)
        counts[group] = n + 1
        if n:
            return
        self.ip6.groups.setdefault(ifp, set()).add(group)
        if not int(ifp.flags) & _LOOPBACK and ifp.lladdr:
            self._mcast_ioctl(ifp, IfIoctl.SIOCADDMULTI, multicast_mac(group))
        if group != ALL_NODES and not int(ifp.flags) & _LOOPBACK:
            st = self._if(ifp)
            for report in st.mld.join(group, trio.current_time()):
                self._report(ifp, report)
            self._arm(st)

    def leave(self, ifp: Ifnet, group: bytes) -> None:
        """Drop one reference to ``group`` on ``ifp``; the last leaves it."""
        counts = self._group_refs.get(ifp, {})
        n = counts.get(group, 0)
        if n > 1:
            counts[group] = n - 1
            return
        if n == 0:
            return
        del counts[group]
        self.ip6.groups.get(ifp, set()).discard(group)
        if not int(ifp.flags) & _LOOPBACK and ifp.lladdr:
            self._mcast_ioctl(ifp, IfIoctl.SIOCDELMULTI, multicast_mac(group))
        if group != ALL_NODES and not int(ifp.flags) & _LOOPBACK:
            st = self._if(ifp)
            for report in st.mld.leave(group, trio.current_time()):
                self._report(ifp, report)
            self._arm(st)

    def _mcast_ioctl(self, ifp: Ifnet, cmd: IfIoctl, mac: bytes) -> None:
        # The filter is the driver's, behind an ioctl that may sleep: a
        # short-lived kernel thread does it (several groups share a MAC
        # only by their low 32 bits; the ioctl counts references).
        host = self.host
        st = self._if(ifp)

        async def ioctl(thread: object) -> None:
            try:
                await host.ifioctl(ifp, cmd, mac)
            except (NetError, trio.ClosedResourceError):
                self.drops["filter_refused"] += 1
            finally:
                st.filters_pending -= 1
                if not st.filters_pending and st.dad_waiting:
                    # The filter has the groups: the waiting DAD runs start.
                    waiting, st.dad_waiting = st.dad_waiting, []
                    for dad, delay in waiting:
                        if st.dads.get(dad.addr) is dad:
                            dad.start(trio.current_time(), delay)
                    self._arm(st)

        try:
            host.kthread_create("in6_mcast", ioctl)
        except trio.ClosedResourceError:
            return
        st.filters_pending += 1

    def _report(self, ifp: Ifnet, report: Any) -> None:
        src = self._link_local(ifp) or UNSPECIFIED  # RFC 3590: :: before DAD ends
        message = report.emit(src, ALL_MLDV2_ROUTERS)
        packet = IPv6Header(src, ALL_MLDV2_ROUTERS, 0, hop_limit=1).emit(
            router_alert_hop_by_hop(IPPROTO_ICMPV6) + message
        )
        try:
            ether_output(ifp, multicast_mac(ALL_MLDV2_ROUTERS), ETHERTYPE_IPV6, packet)
        except NetError:
            self.drops["output_refused"] += 1

    def mld_input(self, hdr: IPv6Header, msg: Icmp6Message, body: memoryview, m: Mbuf) -> None:
        """An MLD message (from ICMPv6 input): queries schedule reports;
        other listeners' reports change nothing here (no report
        suppression in MLDv2)."""
        self._received += 1
        try:
            parsed = mld.parse_mld(msg, body, hop_limit=hdr.hop_limit, src=hdr.src)
        except RemoteProtocolError as exc:
            self.drops[exc.reason] += 1
            return
        if isinstance(parsed, mld.MldQuery):
            st = self._if(m.rcvif)
            st.mld.input(parsed, trio.current_time())
            self._arm(st)

    ####################################################################
    # Router discovery and autoconfiguration (rule 5)
    ####################################################################

    def if_up(self, ifp: Ifnet, iid: bytes | None) -> None:
        """``ifp`` came up: join all-nodes (and all-routers on a router), and
        on a host that accepts advertisements, start soliciting routers."""
        self.join(ifp, ALL_NODES)
        if int(ifp.flags) & _LOOPBACK or not ifp.lladdr:
            return
        st = self._if(ifp)
        st.first_dad = True
        sysctls = self.host.sysctls
        if sysctls.get("net.inet6.ip6.forwarding") == 1:
            self.join(ifp, ALL_ROUTERS)
        elif sysctls.get("net.inet6.ip6.accept_rtadv") == 1 and iid is not None and st.autoconf is None:
            st.autoconf = addrconf6.HostAutoconf(iid, rng=random.Random(self._rng.random()))
            st.autoconf.start(trio.current_time())
        if st.advertiser is None and ifp in self._rtadvd:
            st.advertiser = addrconf6.RouterAdvertiser(self._rtadvd[ifp], rng=random.Random(self._rng.random()))
            self.join(ifp, ALL_ROUTERS)
        if st.advertiser is not None:
            st.advertiser.start(trio.current_time())
        self._arm(st)

    def if_down(self, ifp: Ifnet, *, detached: bool = False) -> None:
        """``ifp`` went down (or away, ``detached``): forget its neighbours
        and machines, and take its groups out of its filter (not when it is
        going away: the filter goes with it). A ``rtadvd`` configuration is
        kept for the next ``ifup``."""
        st = self._ifs.pop(ifp, None)
        if st is not None:
            st.callout.follow(None, self._expire, st)
        refs = self._group_refs.pop(ifp, None) or {}
        self.ip6.groups.pop(ifp, None)
        if not detached and not int(ifp.flags) & _LOOPBACK and ifp.lladdr:
            for group in refs:
                self._mcast_ioctl(ifp, IfIoctl.SIOCDELMULTI, multicast_mac(group))
        if detached:
            self._rtadvd.pop(ifp, None)

    def rtadvd(self, ifp: Ifnet, config: Any) -> None:
        """Advertise on ``ifp`` with ``config`` (an
        ``addrconf6.RaConfig``): the router side of rule 5."""
        self._rtadvd[ifp] = config
        st = self._if(ifp)
        st.advertiser = addrconf6.RouterAdvertiser(config, rng=random.Random(self._rng.random()))
        self.join(ifp, ALL_ROUTERS)
        if ifp.flags & IfFlags.UP:
            st.advertiser.start(trio.current_time())
        self._arm(st)

    def _send_rs(self, st: _Nd6If) -> None:
        ifp = st.ifp
        src = self._link_local(ifp)
        message = ndp.RouterSolicit(source_lladdr=ifp.lladdr if src else None).emit(src or UNSPECIFIED, ALL_ROUTERS)
        self._send(ifp, multicast_mac(ALL_ROUTERS), src or UNSPECIFIED, ALL_ROUTERS, message)

    def _send_ra(self, st: _Nd6If, ra: Any) -> None:
        ifp = st.ifp
        src = self._link_local(ifp)
        if src is None:
            self.drops["ra_no_link_local"] += 1
            return
        message = ndp.RouterAdvert(
            cur_hop_limit=ra.cur_hop_limit,
            managed=ra.managed,
            other=ra.other,
            router_lifetime=ra.router_lifetime,
            reachable_time=ra.reachable_time,
            retrans_timer=ra.retrans_timer,
            source_lladdr=ifp.lladdr,
            mtu=ra.mtu,
            prefixes=tuple(ra.prefixes),
        ).emit(src, ALL_NODES)
        self._send(ifp, multicast_mac(ALL_NODES), src, ALL_NODES, message)

    def _ra_input(self, st: _Nd6If, hdr: IPv6Header, ra: Any, now: float) -> None:
        if ra.source_lladdr is not None:
            self._lladdr(st, hdr.src, ra.source_lladdr, now, is_router=True)
        if st.autoconf is None:
            self.drops["ra_ignored"] += 1
            return
        info = addrconf6.RouterAdvertInfo(
            src=hdr.src,
            router_lifetime=ra.router_lifetime,
            cur_hop_limit=ra.cur_hop_limit,
            reachable_time=ra.reachable_time,
            retrans_timer=ra.retrans_timer,
            mtu=ra.mtu,
            prefixes=ra.prefixes,  # (addrconf6.PrefixOption is ndp.PrefixInfo)
            managed=ra.managed,
            other=ra.other,
        )
        self._apply(st, st.autoconf.ra_input(info, now), now)

    def _apply(self, st: _Nd6If, changes: Any, now: float) -> None:
        ifp = st.ifp
        inet6 = self.host.inet6
        routes = self.host.routes6
        for addr, plen, valid_until, preferred_until in changes.new_addresses:
            if addr in self.local_addrs:
                continue
            try:
                inet6.in6_add(
                    ifp, addr, plen, flags=In6Flags.AUTOCONF, valid_until=valid_until,
                    preferred_until=preferred_until, connected_route=False,
                )
            except NetError:
                self.drops["autoconf_refused"] += 1
        for item in changes.updated_addresses:
            addr, _plen, valid_until, preferred_until = item
            for ia in ifp.addrs6:
                if ia.addr == addr:
                    ia.valid_until, ia.preferred_until = valid_until, preferred_until
                    if preferred_until > now:
                        ia.flags &= ~In6Flags.DEPRECATED
        for item in changes.deprecated_addresses:
            addr = item[0] if isinstance(item, tuple) else item
            for ia in ifp.addrs6:
                if ia.addr == addr:
                    ia.flags |= In6Flags.DEPRECATED
                    routes.invalidate()
        for item in changes.removed_addresses:
            addr = item[0] if isinstance(item, tuple) else item
            if any(ia.addr == addr for ia in ifp.addrs6):
                inet6.in6_delete(ifp, addr)
        for router in changes.new_routers:
            if not any(r.network == _DEFAULT6 for r in routes.routes()):
                routes.add(Route(_DEFAULT6, router, ifp, autoconf=True))
                log.info("in6_default_router", host=self.host.name, ifname=ifp.name, router=ip6_ntoa(router))
        for router in changes.removed_routers:
            self._router_gone(st, router)
        for item in changes.new_prefixes:
            prefix, plen = item[0], item[1]
            network = ipaddress.IPv6Network((prefix, plen))
            if not any(r.network == network for r in routes.routes()):
                routes.add(Route(network, None, ifp, autoconf=True))
        for item in changes.removed_prefixes:
            prefix, plen = item[0], item[1]
            network = ipaddress.IPv6Network((prefix, plen))
            for r in routes.routes():
                if r.network == network and r.autoconf and r.ifp is ifp:
                    routes.delete(network)
        if changes.mtu is not None and changes.mtu <= ifp.mtu:
            st.linkmtu = changes.mtu
            routes.invalidate()

    def _router_gone(self, st: _Nd6If, router: bytes) -> None:
        routes = self.host.routes6
        for r in routes.routes():
            if r.network == _DEFAULT6 and r.gateway == router and r.autoconf:
                routes.delete(_DEFAULT6)

    ####################################################################
    # Views
    ####################################################################

    def ndp_rows(self) -> list[NdpRow]:
        """``ndp -an``: every interface's neighbours."""
        rows = []
        now = trio.current_time()
        for ifp, st in self._ifs.items():
            for entry in st.cache.entries():
                rows.append(
                    NdpRow(
                        ip6_ntoa(entry.ip),
                        entry.mac.hex(":") if entry.mac else "(incomplete)",
                        ifp.name,
                        entry.state.name,
                        bool(entry.is_router),
                        None if entry.expires is None else entry.expires - now,
                    )
                )
        return rows

    def groups(self, ifp: Ifnet) -> list[str]:
        """The IPv6 groups ``ifp`` has joined."""
        return sorted(ip6_ntoa(g) for g in self.ip6.groups.get(ifp, ()))


def format_ndp(rows: list[NdpRow]) -> str:
    """Format rows as ``ndp -an`` prints them."""
    lines = [f"{'Neighbor':<32} {'Linklayer Address':<18} {'Netif':<8} {'Expire':>8} {'S':<11} Flags"]
    for r in rows:
        expire = "permanent" if r.expires is None else f"{max(0.0, r.expires):.0f}s"
        lines.append(
            f"{r.address:<32} {r.lladdr:<18} {r.netif:<8} {expire:>8} {r.state:<11} {'R' if r.router else ''}"
        )
    return "\n".join(lines) + "\n"
