"""The network interface: :class:`Ifnet`, its flags, counters and ioctl commands.

An :class:`Ifnet` is what the stack knows of one interface (``struct ifnet``):
its name and index, :class:`IfFlags`, MTU, link-layer address, link state,
send queue (:class:`~trionet.lowlevel.IfAltq`), counters, and the
**interface serializer**. The serializer is shared by the driver's interrupt
handler and every entry point the framework calls (``init``, ``stop``,
``start``, ``ioctl``, ``watchdog``, ``poll``), so one serializer covers the
whole interrupt path.

Who changes what:

- ``UP`` is administrative: only :func:`~trionet.Host.ifioctl` (``SIOCSIFFLAGS``)
  sets or clears it.
- ``RUNNING`` is set by the driver's ``init`` and cleared by its ``stop``.
- ``OACTIVE`` is set by the driver's ``start`` when its TX ring is full and
  cleared by its TX completion, which then restarts output (``if_devstart``).
- ``PROMISC`` and ``ALLMULTI`` follow reference counts (``ifpromisc``,
  ``if_allmulti``); a user's ``PROMISC`` request is remembered as ``PPROMISC``.
- ``POLLING`` is set and cleared by the polling registration.

:data:`IFF_CANTCHANGE` lists the bits ``SIOCSIFFLAGS`` keeps as they are.

Counters are plain attributes of :class:`IfData` (``ifp.data``), bumped on the
per-packet path; :meth:`Ifnet.statistics` returns a frozen snapshot.

DragonFly: ``sys/net/if_var.h`` (``struct ifnet``, ``struct if_data``),
``sys/net/if.h`` (``IFF_*``).
"""

from __future__ import annotations

import enum
import ipaddress
from typing import TYPE_CHECKING, Any

import attrs

from .._kern._msgport import NetMsg
from .._kern._serializer import Serializer
from ._ifq import IfAltq

if TYPE_CHECKING:
    from .._kern._intr import IntrCookie
    from ._driver import Driver
    from ._host import Host

__all__ = [
    "IFF_CANTCHANGE",
    "IfCap",
    "IfData",
    "IfFlags",
    "IfIoctl",
    "IfStatistics",
    "Ifnet",
    "InAddr",
    "LinkState",
    "PollCmd",
]


class IfFlags(enum.IntFlag):
    """Interface flags (``IFF_*``), with DragonFly's bit values."""

    UP = 0x1
    BROADCAST = 0x2
    DEBUG = 0x4
    LOOPBACK = 0x8
    POINTOPOINT = 0x10
    SMART = 0x20
    RUNNING = 0x40
    NOARP = 0x80
    PROMISC = 0x100
    ALLMULTI = 0x200
    OACTIVE = 0x400
    SIMPLEX = 0x800
    MULTICAST = 0x8000
    POLLING = 0x10000
    PPROMISC = 0x20000


#: Bits that ``SIOCSIFFLAGS`` never changes: the driver and the stack own them.
#: (``POLLING`` and ``PROMISC`` may be requested through ``SIOCSIFFLAGS``, but
#: the request goes through polling registration and ``ifpromisc``.)
IFF_CANTCHANGE = (
    IfFlags.BROADCAST
    | IfFlags.POINTOPOINT
    | IfFlags.LOOPBACK
    | IfFlags.RUNNING
    | IfFlags.OACTIVE
    | IfFlags.SIMPLEX
    | IfFlags.MULTICAST
    | IfFlags.ALLMULTI
    | IfFlags.SMART
    | IfFlags.PROMISC
    | IfFlags.POLLING
    | IfFlags.PPROMISC
)


class IfCap(enum.IntFlag):
    """Interface capabilities (``IFCAP_*``): what the hardware can do for
    the stack (``ifp.capabilities``) and what is switched on
    (``ifp.capenable``, ``SIOCSIFCAP``, ``ifconfig -txcsum``).

    - ``RXCSUM``: the card verifies TCP and UDP checksums on receive.
    - ``TXCSUM``: the card fills them in on transmit, so the stack leaves
      them to it (:mod:`trionet.protocols.offload`).
    - ``TSO``: the card cuts TCP super-segments of up to 64 KiB into
      MSS-sized segments, so TCP hands it those (needs ``TXCSUM``).
    - ``LRO``: the card hands up such super-segments whole, as it received
      them from a TSO card over an in-memory link (virtio-net between
      guests), instead of cut up.
    """

    RXCSUM = 0x1
    TXCSUM = 0x2
    TSO = 0x100
    LRO = 0x400


class LinkState(enum.Enum):
    """``if_link_state``."""

    UNKNOWN = 0
    DOWN = 2
    UP = 4


class IfIoctl(enum.Enum):
    """Interface ioctl commands (``SIOC*``) that reach a driver's ``ioctl``.

    The argument each takes:

    - ``SIOCSIFFLAGS``: the new :class:`IfFlags` (the driver reads
      ``ifp.flags``, which the stack has already updated).
    - ``SIOCSIFMTU``: the new MTU (an int); the driver checks and sets it.
    - ``SIOCADDMULTI`` / ``SIOCDELMULTI``: the 6-byte group address whose first
      reference was added or last reference removed (``ifp.multiaddrs`` is
      already updated).
    - ``SIOCSIFCAP``: the :class:`IfCap` bits to enable; the driver enables
      those it has (``capabilities``) in ``capenable``.
    """

    SIOCSIFFLAGS = "SIOCSIFFLAGS"
    SIOCSIFCAP = "SIOCSIFCAP"
    SIOCSIFMTU = "SIOCSIFMTU"
    SIOCADDMULTI = "SIOCADDMULTI"
    SIOCDELMULTI = "SIOCDELMULTI"


class PollCmd(enum.Enum):
    """The command a driver's ``poll`` receives (``enum poll_cmd``)."""

    POLL_ONLY = 0
    POLL_AND_CHECK_STATUS = 1
    POLL_REGISTER = 2
    POLL_DEREGISTER = 3


@attrs.frozen
class InAddr:
    """An IPv4 address on an interface (``struct in_ifaddr``).

    Attributes:
        addr: the 4-byte address.
        network: its subnet (``ipaddress.IPv4Network``).
        broadcast: the subnet's 4-byte broadcast address.
    """

    addr: bytes
    network: ipaddress.IPv4Network
    broadcast: bytes

    def __str__(self) -> str:
        return f"{ipaddress.IPv4Address(self.addr)}/{self.network.prefixlen}"


class In6Flags(enum.IntFlag):
    """``ia6_flags``: an IPv6 address's state (``ifconfig`` prints them)."""

    TENTATIVE = 0x02  #: DAD is running: not used as a source, not answered
    DUPLICATED = 0x04  #: DAD found another node with it: never used
    DEPRECATED = 0x10  #: its preferred lifetime ran out: kept, not chosen
    AUTOCONF = 0x40  #: made by SLAAC from a router advertisement


@attrs.define(eq=False)
class In6Addr:
    """An IPv6 address on an interface (``struct in6_ifaddr``).

    Mutable: DAD and router advertisements change ``flags`` and the
    lifetimes while it exists.

    Attributes:
        addr: the 16-byte address.
        prefixlen: its prefix length.
        flags: :class:`In6Flags`.
        valid_until, preferred_until: the Trio times its valid and preferred
            lifetimes end (``inf``: forever; a manual address's).
    """

    addr: bytes
    prefixlen: int
    flags: In6Flags = In6Flags(0)
    valid_until: float = float("inf")
    preferred_until: float = float("inf")

    @property
    def usable(self) -> bool:
        """Whether it may be a source or answer: not tentative nor duplicated."""
        return not self.flags & (In6Flags.TENTATIVE | In6Flags.DUPLICATED)

    def __str__(self) -> str:
        return f"{ipaddress.IPv6Address(self.addr)}/{self.prefixlen}"


@attrs.define(eq=False)
class IfData:
    """The live counters of an interface (``struct if_data``).

    Plain ints, bumped on the per-packet path by drivers and the stack:
    ``ifp.data.ipackets += 1``. Read them through :meth:`Ifnet.statistics`.

    Who counts what: the driver counts ``ipackets``/``ibytes`` as frames leave
    its RX ring, ``opackets`` at TX completion, ``ierrors``/``oerrors`` for
    frames it could not receive or send, ``iqdrops`` for frames its RX ring
    had no room for, and ``collisions``. The stack counts ``imcasts``,
    ``noproto`` (no protocol for the frame), ``iqdrops`` (the protocol
    thread's queue was full), ``inotforus`` (a unicast frame for another
    station, received only because the interface is promiscuous), and, in
    ``ifq_dispatch``, ``obytes``, ``omcasts`` and ``oqdrops``.
    """

    ipackets: int = 0
    ierrors: int = 0
    opackets: int = 0
    oerrors: int = 0
    ibytes: int = 0
    obytes: int = 0
    imcasts: int = 0
    omcasts: int = 0
    iqdrops: int = 0
    oqdrops: int = 0
    noproto: int = 0
    collisions: int = 0
    inotforus: int = 0


@attrs.frozen
class IfStatistics:
    """A snapshot of an interface's counters (see :class:`IfData`)."""

    ipackets: int
    ierrors: int
    opackets: int
    oerrors: int
    ibytes: int
    obytes: int
    imcasts: int
    omcasts: int
    iqdrops: int
    oqdrops: int
    noproto: int
    collisions: int
    inotforus: int


_IFDATA_FIELDS = tuple(f.name for f in attrs.fields(IfData))


@attrs.define(eq=False, repr=False)
class Ifnet:
    """One network interface of a host. Made by ``host.if_attach``.

    Attributes:
        name: the interface name (``"vnic0"``).
        index: the interface index, from 1, unique in its host.
        host: the host it is attached to.
        driver: the :class:`~trionet.lowlevel.Driver` behind it.
        flags: :class:`IfFlags`.
        capabilities: the :class:`IfCap` offloads the driver offers;
            ``capenable``: those switched on (the stack reads it per packet).
        mtu: the largest payload a frame carries, in bytes.
        lladdr: the link-layer address (6 bytes for Ethernet, ``b""`` for
            loopback).
        link_state: :class:`LinkState`.
        baudrate: the nominal speed in bits per second (0 if unknown).
        serializer: the interface serializer (entry points run with it held).
        snd: the send queue.
        timer: the watchdog countdown in seconds (``if_timer``); 0 is off.
            The driver sets it when it hands frames to hardware; the host's
            1 Hz ``if_slowtimo`` counts it down and calls ``watchdog`` at 0.
        cpuid: the CPU of the interface's interrupt; deferred ``start`` runs
            on ``ifnet {cpuid}`` and polling on ``netisr {cpuid}``.
        irq: the interrupt line, or None for a driver without one.
        data: the live counters.
        pcount: promiscuous-mode references (``if_pcount``).
        amcount: all-multicast references (``if_amcount``).
        multiaddrs: multicast group address -> reference count.
        addrs: the IPv4 addresses (:class:`InAddr`), first is primary.
        addrs6: the IPv6 addresses (:class:`In6Addr`), the link-local first.
        in_detach: set while ``if_detach`` runs; ``ioctl`` refuses then.
        attached: True from attach until detach completes.

    Rule: read and change an interface's hardware state only with
    ``serializer`` held. The counters and ``snd`` are touched from the
    per-packet path, which in Trio never interleaves inside a plain function.
    """

    name: str
    index: int
    host: Host
    driver: Driver
    serializer: Serializer
    flags: IfFlags = IfFlags(0)
    capabilities: IfCap = IfCap(0)
    capenable: IfCap = IfCap(0)
    mtu: int = 1500
    lladdr: bytes = b""
    link_state: LinkState = LinkState.UNKNOWN
    baudrate: int = 0
    snd: IfAltq = attrs.field(factory=IfAltq)
    timer: int = 0
    cpuid: int = 0
    irq: int | None = None
    data: IfData = attrs.field(factory=IfData)
    pcount: int = 0
    amcount: int = 0
    multiaddrs: dict[bytes, int] = attrs.field(factory=dict)
    addrs: list[InAddr] = attrs.field(factory=list)
    addrs6: list[In6Addr] = attrs.field(factory=list)
    in_detach: bool = False
    attached: bool = False
    #: The interface's input routine (set at attach by the link type).
    input_fn: Any = attrs.field(default=None, repr=False)
    #: The host's ``netisr_enqueue``, bound at attach (per packet: one call less).
    netisr_enqueue: Any = attrs.field(default=None, repr=False)
    _intr_cookie: IntrCookie | None = attrs.field(default=None, repr=False)
    #: One coalescing ``if_start`` message per CPU (``if_start_nmsg``).
    _start_msgs: list[NetMsg] = attrs.field(factory=list, repr=False)
    #: ``net.link.generic.ifq_dispatch_schedonly``, read by ``ifq_dispatch``.
    schedonly: Any = attrs.field(default=None, repr=False)
    _poll_count: int = 0

    def __repr__(self) -> str:
        return f"<Ifnet {self.name} flags={format_flags(self.flags)}>"

    def input(self, frame: bytes | bytearray | memoryview) -> None:
        """Hand a received frame to the stack (the driver's upcall, ``if_input``).

        A plain function that never blocks: the frame is checked, counted and
        queued to the protocol thread its flow hashes to. Safe to call with
        the interface serializer held (drivers normally do), because it only
        queues. Bad frames are counted (``ierrors``, ``noproto``,
        ``iqdrops``), never raised.
        """
        self.input_fn(self, frame)

    def statistics(self) -> IfStatistics:
        """A frozen snapshot of the counters."""
        data = self.data
        return IfStatistics(*(getattr(data, name) for name in _IFDATA_FIELDS))


def format_flags(flags: IfFlags) -> str:
    """``UP,BROADCAST,RUNNING``: flag names in bit order, as ``ifconfig`` prints."""
    return ",".join(f.name for f in IfFlags if f in flags and f.name)  # type: ignore[misc]
