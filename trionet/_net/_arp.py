"""ARP glue: resolution for Ethernet output, ARP input, the cache's timer.

The cache itself is the sans-IO machine ``trionet.protocols.arp.ArpCache``;
this module does what it returns: sends requests and replies, sends the
packets whose resolution completed, counts what it gives up on.

ARP only resolves: every frame, its own and the IPv4 packets it resolved
for, is built and queued by :func:`~trionet._net._ether.ether_output`.

- :meth:`Arp.output` resolves an IPv4 packet's next hop and hands the
  packet to ``ether_output``: broadcast and multicast destinations map to
  their MAC at once, and so does anything on a loopback interface (zero
  addresses); a unicast next hop is resolved through the cache (the packet
  waits in the cache's bounded pending queue while a request is out).
- :meth:`Arp.input` runs on ``netisr 0`` (ARP has no flow hash).
- One callout on ``netisr 0`` runs the cache's ``expire`` at its next
  deadline: re-requests, gives up (counting the packets that waited), ages
  entries out.

Rule: all of it is plain functions on the per-packet path; nothing awaits.
A full send queue (``ENOBUFS`` from ``ifq_dispatch``) is counted, not raised,
for packets sent on behalf of the cache (they have no caller to tell).

DragonFly: ``sys/netinet/if_ether.c`` (``arpresolve``, ``arpintr``,
``in_arpinput``, ``arptimer``); ``sys/net/if_ethersubr.c`` (``ether_output``
calls ``arpresolve`` for the destination MAC).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import structlog
import trio

from .._exceptions import NetError
from ..protocols.arp import ARPOP_REQUEST, ArpCache, ArpPacket
from ..protocols.ethernet import BROADCAST as ETHER_BROADCAST
from ..protocols.ethernet import ETHERTYPE_ARP, ETHERTYPE_IP
from ._ether import _ZERO_MAC, Mbuf, ether_output
from ._if import IfFlags, Ifnet
from ._layer import ProtoLayer

if TYPE_CHECKING:
    from ._host import Host

__all__ = ["Arp", "ArpLayerStatistics", "ArpRow", "format_arp"]

log = structlog.get_logger(__name__)

_LOOPBACK = int(IfFlags.LOOPBACK)
_BROADCAST_IP = b"\xff\xff\xff\xff"


@attrs.frozen
class ArpLayerStatistics:
    """A host's ARP counters (the table's own are ``cache.statistics()``).

    Attributes:
        received: ARP packets that reached input.
        drops: reason -> count: input (``short_header``, ``unsupported``,
            and the cache's ``bad_op``, ``own_mac``, ``group_sender``,
            ``conflict``) and output (``pending_full``, ``unresolved``,
            ``output_refused``).
    """

    received: int
    drops: dict[str, int]


class Arp(ProtoLayer):
    """A host's ARP: the cache, its timer, input and resolution."""

    def __init__(self, host: Host) -> None:
        super().__init__()
        self.host = host
        self.cache = ArpCache()
        self._received = 0
        self._callout = host.callout(0, thread="netisr")
        host.netisr_register(ETHERTYPE_ARP, self.input)

    def statistics(self) -> ArpLayerStatistics:
        """A snapshot of the counters."""
        return ArpLayerStatistics(self._received, self._drop_counts())

    # output ------------------------------------------------------------

    def output(self, ifp: Ifnet, nexthop: bytes, packet: bytes) -> None:
        """Resolve ``nexthop`` on ``ifp`` and send the IPv4 ``packet`` to it
        with :func:`~trionet._net._ether.ether_output`, now or once the
        cache has the MAC.

        Raises:
            NetError: from ``ether_output`` when the packet could be sent at
                once and the send queue refused it.

        DragonFly: ``arpresolve``.
        """
        mac = self.cache.lookup(nexthop)  # the common case: known
        if mac is not None:
            ether_output(ifp, mac, ETHERTYPE_IP, packet)
            return
        if int(ifp.flags) & _LOOPBACK:
            ether_output(ifp, _ZERO_MAC, ETHERTYPE_IP, packet)
            return
        if nexthop == _BROADCAST_IP or any(ia.broadcast == nexthop for ia in ifp.addrs):
            ether_output(ifp, ETHER_BROADCAST, ETHERTYPE_IP, packet)
            return
        if nexthop[0] & 0xF0 == 0xE0:
            mac = bytes((0x01, 0x00, 0x5E, nexthop[1] & 0x7F, nexthop[2], nexthop[3]))
            ether_output(ifp, mac, ETHERTYPE_IP, packet)
            return
        res = self.cache.resolve(nexthop, (ifp, packet), trio.current_time())
        if res.dropped is not None:
            self.drops["pending_full"] += 1
        if res.request:
            self._request(ifp, nexthop)
            self._arm()
        if res.mac is not None:
            ether_output(ifp, res.mac, ETHERTYPE_IP, packet)

    def _request(self, ifp: Ifnet, target: bytes) -> None:
        spa = self._source_for(ifp, target)
        pkt = ArpPacket(ARPOP_REQUEST, ifp.lladdr, spa, _ZERO_MAC, target)
        self._send(ifp, ETHER_BROADCAST, pkt)

    def announce(self, ifp: Ifnet, addr: bytes) -> None:
        """Send a gratuitous ARP for ``addr`` on ``ifp`` (an address was set)."""
        if ifp.flags & (IfFlags.UP | IfFlags.RUNNING) != IfFlags.UP | IfFlags.RUNNING:
            return
        if ifp.flags & IfFlags.LOOPBACK or not ifp.lladdr:
            return
        self._send(ifp, ETHER_BROADCAST, self.cache.gratuitous(addr, ifp.lladdr))

    def _source_for(self, ifp: Ifnet, target: bytes) -> bytes:
        t = int.from_bytes(target, "big")
        for ia in ifp.addrs:
            if t in range(int(ia.network.network_address), int(ia.network.broadcast_address) + 1):
                return ia.addr
        return ifp.addrs[0].addr if ifp.addrs else bytes(4)

    def _send(self, ifp: Ifnet, dst: bytes, pkt: ArpPacket) -> None:
        try:
            ether_output(ifp, dst, ETHERTYPE_ARP, pkt.emit())
        except NetError:
            self.drops["output_refused"] += 1

    def _send_released(self, mac: bytes, packets: tuple[object, ...]) -> None:
        for item in packets:
            ifp, packet = item  # type: ignore[misc]
            try:
                ether_output(ifp, mac, ETHERTYPE_IP, packet)
            except NetError:
                self.drops["output_refused"] += 1

    # input -------------------------------------------------------------

    def input(self, m: Mbuf) -> None:
        """An ARP packet from ``m.rcvif`` (netisr handler)."""
        ifp = m.rcvif
        self._received += 1
        parsed = self._parse(ArpPacket.parse, m.data)
        if parsed is None:
            return
        pkt, _ = parsed
        my_ips = frozenset(ia.addr for ia in ifp.addrs)
        result = self.cache.input(pkt, trio.current_time(), my_ips=my_ips, my_mac=ifp.lladdr)
        if result.ignored is not None:
            self.drops[result.ignored] += 1
        if result.conflict:
            log.warning("arp_address_conflict", host=self.host.name, ifname=ifp.name, mac=pkt.sha.hex(":"))
        if result.reply is not None:
            self._send(ifp, pkt.sha, result.reply)
        for mac, packets in result.released:
            self._send_released(mac, packets)
        self._arm()

    # timer -------------------------------------------------------------

    def _arm(self) -> None:
        self._callout.follow(self.cache.next_deadline(), self._expire)

    def _expire(self) -> None:
        exp = self.cache.expire(trio.current_time())
        for target in exp.requests:
            route = self.host.routes.lookup(target)
            if route is not None:
                self._request(route.ifp, target)
        for target, packets in exp.failed:
            self.drops["unresolved"] += len(packets)
            log.debug("arp_unresolved", host=self.host.name, target=target.hex(), packets=len(packets))
        self._arm()

    # static entries and the view ------------------------------------------

    def add_static(self, ip: bytes, mac: bytes) -> None:
        """A permanent entry (``arp -s``): never aged, never replaced by
        the network; packets that waited for ``ip`` go out to ``mac`` now.

        Raises:
            ValueError: ``mac`` is not a 6-byte unicast MAC.
        """
        waiting = self.cache.add_static(ip, mac)
        self._send_released(mac, waiting)
        self._arm()

    def learn(self, ip: bytes, mac: bytes) -> None:
        """A dynamic entry the caller vouches for (``ArpCache.learn``): a
        DHCP server unicasts an offer to a client that has no address yet
        (RFC 2131 section 4.1). Packets that waited for ``ip`` go out now."""
        self._send_released(mac, self.cache.learn(ip, mac, trio.current_time()))
        self._arm()

    def rows(self) -> list[ArpRow]:
        """``arp -an``: every entry, with the interface its address is on
        (by the route table: the cache is the host's, as DragonFly's ARP
        entries live in its one routing table)."""
        now = trio.current_time()
        rows = []
        for entry in self.cache.entries():
            route = self.host.routes.lookup(entry.ip)
            rows.append(
                ArpRow(
                    ".".join(map(str, entry.ip)),
                    entry.mac.hex(":") if entry.mac is not None else None,
                    route.ifp.name if route is not None else None,
                    entry.state == "static",
                    None if entry.expires is None else max(0.0, entry.expires - now),
                )
            )
        return rows


@attrs.frozen
class ArpRow:
    """One entry as ``arp -an`` shows it.

    Attributes:
        address: the IPv4 address.
        lladdr: its MAC (``None`` while a request is out: incomplete).
        netif: the interface its address is on (``None``: no route).
        permanent: a static entry (``host.arp_add``).
        expires: seconds until it ages out or is re-requested (``None``
            for a static entry).
    """

    address: str
    lladdr: str | None
    netif: str | None
    permanent: bool
    expires: float | None


def format_arp(rows: list[ArpRow]) -> str:
    """Format rows as BSD ``arp -an`` prints them::

        ? (10.0.0.2) at 02:00:00:00:00:02 on vnic0 permanent [ethernet]
    """
    lines = []
    for r in rows:
        at = r.lladdr if r.lladdr is not None else "(incomplete)"
        on = f" on {r.netif}" if r.netif is not None else ""
        if r.permanent:
            life = " permanent"
        elif r.expires is not None:
            life = f" expires in {r.expires:.0f} seconds"
        else:
            life = ""
        lines.append(f"? ({r.address}) at {at}{on}{life} [ethernet]")
    return "\n".join(lines) + "\n" if lines else ""
