"""``ifconfig`` and ``netstat -i`` rows, and their BSD text layouts."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

import attrs

from ._if import IfCap, IfFlags, In6Flags, LinkState, format_flags

if TYPE_CHECKING:
    from ._if import Ifnet

__all__ = [
    "IfconfigRow",
    "NetstatIRow",
    "format_ifconfig",
    "format_netstat_i",
    "ifconfig_row",
    "netstat_i_row",
]


@attrs.frozen
class IfconfigRow:
    """One interface as ``ifconfig`` shows it."""

    name: str
    index: int
    flags: IfFlags
    mtu: int
    lladdr: bytes
    link_state: LinkState
    irq: int | None
    cpu: int
    sndq_len: int
    sndq_maxlen: int
    inet: tuple[str, ...] = ()
    capenable: IfCap = IfCap(0)
    #: IPv6 addresses as ``"fe80::1/64"``, with their state flags
    #: (``"tentative"``, ``"duplicated"``, ``"deprecated"``, ``"autoconf"``).
    inet6: tuple[tuple[str, tuple[str, ...]], ...] = ()


@attrs.frozen
class NetstatIRow:
    """One interface as ``netstat -i`` shows it (link-level row)."""

    name: str
    mtu: int
    network: str
    address: str
    ipackets: int
    ierrors: int
    iqdrops: int
    opackets: int
    oerrors: int
    oqdrops: int
    collisions: int


def _mac(lladdr: bytes) -> str:
    return lladdr.hex(":") if lladdr else ""


def ifconfig_row(ifp: Ifnet) -> IfconfigRow:
    """The :class:`IfconfigRow` of ``ifp`` now."""
    return IfconfigRow(
        ifp.name,
        ifp.index,
        ifp.flags,
        ifp.mtu,
        ifp.lladdr,
        ifp.link_state,
        ifp.irq,
        ifp.cpuid,
        len(ifp.snd),
        ifp.snd.maxlen,
        tuple(str(a) for a in ifp.addrs),
        IfCap(ifp.capenable),
        tuple((str(a), _in6_flag_names(a.flags)) for a in ifp.addrs6),
    )


def _in6_flag_names(flags: In6Flags) -> tuple[str, ...]:
    return tuple(f.name.lower() for f in In6Flags if f in flags and f.name)  # type: ignore[union-attr]


def netstat_i_row(ifp: Ifnet) -> NetstatIRow:
    """The :class:`NetstatIRow` of ``ifp`` now."""
    d = ifp.data
    return NetstatIRow(
        ifp.name,
        ifp.mtu,
        f"<Link#{ifp.index}>",
        _mac(ifp.lladdr),
        d.ipackets,
        d.ierrors,
        d.iqdrops,
        d.opackets,
        d.oerrors,
        d.oqdrops,
        d.collisions,
    )


_STATUS = {LinkState.UP: "active", LinkState.DOWN: "no carrier", LinkState.UNKNOWN: "unknown"}


def format_ifconfig(rows: list[IfconfigRow]) -> str:
    """Format rows as ``ifconfig -a`` prints them::

        vnic0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> mtu 1500
                ether 02:00:00:00:00:01
                status: active
    """
    lines = []
    for r in rows:
        lines.append(f"{r.name}: flags={int(r.flags):x}<{format_flags(r.flags)}> mtu {r.mtu}")
        if r.capenable:
            names = ",".join(c.name for c in IfCap if c in r.capenable and c.name)  # type: ignore[misc]
            lines.append(f"\toptions={int(r.capenable):x}<{names}>")
        for inet in r.inet:
            net = ipaddress.IPv4Interface(inet)
            lines.append(
                f"\tinet {net.ip} netmask 0x{int(net.netmask):08x} "
                f"broadcast {net.network.broadcast_address}"
            )
        for inet6, flags in r.inet6:
            net6 = ipaddress.IPv6Interface(inet6)
            scope = f"%{r.name}" if net6.ip.is_link_local else ""
            extra = "".join(f" {f}" for f in flags)
            lines.append(f"\tinet6 {net6.ip}{scope} prefixlen {net6.network.prefixlen}{extra}")
        if r.lladdr:
            lines.append(f"\tether {_mac(r.lladdr)}")
        lines.append(f"\tstatus: {_STATUS[r.link_state]}")
        irq = "none" if r.irq is None else str(r.irq)
        lines.append(f"\tirq {irq} cpu {r.cpu} sndq {r.sndq_len}/{r.sndq_maxlen}")
    return "\n".join(lines) + "\n" if lines else ""


def format_netstat_i(rows: list[NetstatIRow]) -> str:
    """Format rows in the layout of ``netstat -i -d``."""
    head = (
        f"{'Name':<6} {'Mtu':>5} {'Network':<13} {'Address':<17} {'Ipkts':>9} {'Ierrs':>5} "
        f"{'Idrop':>5} {'Opkts':>9} {'Oerrs':>5} {'Odrop':>5} {'Coll':>5}"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r.name:<6} {r.mtu:>5} {r.network:<13} {r.address:<17} {r.ipackets:>9} "
            f"{r.ierrors:>5} {r.iqdrops:>5} {r.opackets:>9} {r.oerrors:>5} {r.oqdrops:>5} "
            f"{r.collisions:>5}"
        )
    return "\n".join(lines) + "\n"
