"""``open_network``: the one way to build a topology of hosts, links and switches.

::

    async with trionet.open_network(seed=1) as net:
        h1 = await net.add_host("h1")
        h2 = await net.add_host("h2")
        sw = net.add_switch("sw0")
        link = await net.link(h1, sw, delay=0.001, loss=0.01)
        await net.link(h2, sw)
        ...
        link.partition(True)   # change an impairment while running

Rules:

- One block owns everything: hosts (each with its kernel threads), wires and
  fault injectors are each held open by a task of the network's nursery, so
  leaving the block, by any exit, tears the whole topology down (in reverse
  order of creation, within :data:`TEARDOWN_TIMEOUT`; then whatever is left
  is cancelled).
- Every random choice derives from the network's ``seed`` (fault injectors
  get seeds derived from the seed and the link's name), so a run is
  reproducible from (seed, topology), and byte for byte under
  ``trio.testing.MockClock``.
- Hosts and links can also go while running (:meth:`Network.remove_link`,
  :meth:`Network.remove_host`), in any order: since each resource lives in
  its own task, no nursery is ever exited out of order, and every method
  may be called from any task of the program.
- ``net.link(a, b, ...)`` puts a vnic on each host side (a switch side gets a
  port) over a :class:`~trionet.wires.MemoryWire` (``kind="memory"``), or
  over two :class:`~trionet.wires.UdpWire` on 127.0.0.1 (``kind="udp"``);
  ``net.tap_link(host)`` joins a host to the Linux kernel through a TAP
  device, and ``net.half_link(...)`` is one side of a link whose other side
  runs in another process (a split topology). ``link.set_up(False)`` drops the carrier, ``link.partition(True)``
  loses frames silently, ``link.set_impairments(...)`` changes the faults;
  impairments (loss,
  duplication, reordering, corruption, jitter, rate) wrap each side's
  endpoint in a :class:`~trionet.wires.FaultInjector`, so they apply in both
  directions, each side with its own seed.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio

from ._net._host import Host, open_host
from ._net._if import IfIoctl, Ifnet
from ._net._trio_socket import TrioResolver, TrioSocketFactory
from ._nursery import service_nursery
from .wires import MemoryWire

__all__ = ["Link", "Network", "open_network"]

#: Keyword arguments of :meth:`Network.link` that make a FaultInjector.
IMPAIRMENTS = ("loss", "duplicate", "reorder", "corrupt", "jitter", "rate")


#: Seconds (of Trio time) an orderly teardown may take before the rest is cancelled.
TEARDOWN_TIMEOUT = 60.0


class _Held:
    """An async context manager kept open by a task of the network's nursery."""

    def __init__(self) -> None:
        self.stop = trio.Event()
        self.done = trio.Event()


async def _hold_task(
    cm: AbstractAsyncContextManager[Any], held: _Held, *, task_status: Any = trio.TASK_STATUS_IGNORED
) -> None:
    try:
        async with cm as value:
            task_status.started(value)
            await held.stop.wait()
    finally:
        held.done.set()


class _Owned:
    """What one host or link owns, released in reverse order."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._items: list[_Held | Callable[[], object]] = []

    async def enter(self, cm: AbstractAsyncContextManager[Any]) -> Any:
        held = _Held()
        value = await self._nursery.start(_hold_task, cm, held)
        self._items.append(held)
        return value

    def callback(self, fn: Callable[[], object]) -> None:
        self._items.append(fn)

    async def aclose(self) -> None:
        while self._items:
            item = self._items.pop()
            if isinstance(item, _Held):
                item.stop.set()
                await item.done.wait()
            else:
                item()


def derive_seed(seed: int, label: str) -> int:
    """A 64-bit seed derived from ``seed`` and ``label`` (stable across runs
    and processes, unlike ``hash()``)."""
    digest = hashlib.blake2b(f"{seed}/{label}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@attrs.define(eq=False)
class Link:
    """A link made by :meth:`Network.link`.

    Attributes:
        name: ``"{a}-{b}"`` (with a suffix if the pair is linked twice).
        wire: what carries the frames, by ``kind``: ``"memory"``, the
            :class:`~trionet.wires.MemoryWire` (both endpoints are its);
            ``"udp"``, the pair of :class:`~trionet.wires.UdpWire` on
            127.0.0.1 (side ``a``'s first), or, for a half link of a split
            run (:meth:`Network.half_link`), this side's one UdpWire;
            ``"tap"``, the :class:`~trionet.wires.TapWire` (the kernel's end
            is its device, named in ``ends[1]``). Read the wire's own
            statistics here; a side's injector and capture are in
            ``faults`` and ``endpoints``.
        ends: for each side, the host's :class:`~trionet.Ifnet` or the
            switch's port number.
        endpoints: for each side, the endpoint the driver or switch uses
            (the fault injector or capture when there is one).
        faults: for each side, its :class:`~trionet.wires.FaultInjector`,
            or None without impairments.
        kind: ``"memory"``, ``"udp"`` or ``"tap"``.
    """

    name: str
    wire: Any  # memory: the MemoryWire; udp: the UdpWire pair (a half link: its one); tap: the TapWire
    ends: tuple[Ifnet | int, Ifnet | int | str]
    endpoints: tuple[Any, Any]
    faults: tuple[Any, Any]
    kind: str = "memory"
    _owned: _Owned | None = attrs.field(default=None, repr=False)
    _nodes: tuple[Any, Any] = attrs.field(default=(None, None), repr=False)

    def partition(self, on: bool) -> None:
        """Cut the link silently (``on=True``) or heal it: frames are lost,
        in flight too. With fault injectors (impairments given, and every
        udp link) the carrier stays up, as in a real partition; a memory
        link without them drops its carrier instead (see :meth:`set_up`)."""
        if any(injector is not None for injector in self.faults):
            for injector in self.faults:
                if injector is not None:
                    injector.partitioned = bool(on)
        elif self.kind == "memory":
            self.wire.set_link(not on)
        else:
            raise ValueError(f"link {self.name} ({self.kind}) cannot be partitioned")

    def set_up(self, on: bool) -> None:
        """Carrier up or down (``ifconfig`` shows it; vnics poll it at 1 Hz).
        A udp link has no carrier to lose: it is partitioned instead."""
        if self.kind == "memory":
            self.wire.set_link(bool(on))
        else:
            self.partition(not on)

    def set_impairments(self, **changes: float) -> None:
        """Change impairments of both sides while running (e.g. ``loss=0.2``).

        Raises:
            ValueError: if the link was made without impairments, or for an
                unknown name.
        """
        if all(injector is None for injector in self.faults):
            raise ValueError(f"link {self.name} has no fault injector; give impairments to link()")
        for name in changes:
            if name not in IMPAIRMENTS:
                raise ValueError(f"unknown impairment {name!r}; known: {', '.join(IMPAIRMENTS)}")
        for injector in self.faults:
            if injector is not None:
                for name, value in changes.items():
                    setattr(injector, name, value)


class Network:
    """A topology under construction and running. Made by :func:`open_network`.

    Attributes:
        seed: the seed every random choice derives from.
        hosts: name -> :class:`~trionet.Host`.
        switches: name -> :class:`~trionet.wires.Switch`.
        links: the links, in order.
        pcap_dir: when set (a directory), every later :meth:`link` made
            without ``pcap=`` records to ``{pcap_dir}/{link name}.pcap``:
            the hook the pytest plugin's ``--trionet-pcap`` uses.
        etc_hosts: name -> IPv4 address, ``/etc/hosts`` for every host of
            the network (looked up before the host names; see
            :meth:`resolve`).

    Once :func:`open_network` has exited, adding or removing anything raises
    :exc:`trio.ClosedResourceError`, and so does every call that acts on
    one of its hosts (see :class:`~trionet.Host`).
    """

    def __init__(self, seed: int, nursery: trio.Nursery, invariants: bool) -> None:
        self.seed = seed
        self.hosts: dict[str, Host] = {}
        self.switches: dict[str, Any] = {}
        self.links: list[Link] = []
        self._nursery = nursery
        self.pcap_dir: Path | None = None
        self._owned: list[_Owned] = []  # in creation order
        self._host_owned: dict[str, _Owned] = {}
        self._invariants = invariants
        self._closed = False
        self.etc_hosts: dict[str, str] = {}
        self._installed: tuple[Any, Any, Any, Any] | None = None

    def __repr__(self) -> str:
        return f"<Network seed={self.seed} hosts={len(self.hosts)} links={len(self.links)}>"

    def rng(self, label: str) -> random.Random:
        """A :class:`random.Random` for ``label``, derived from the network's seed."""
        return random.Random(derive_seed(self.seed, label))

    def resolve(self, name: str) -> str | None:
        """The IPv4 address ``name`` stands for in this network, or ``None``.

        :attr:`etc_hosts` first, then ``localhost`` (127.0.0.1), then a
        host's name: its first address outside 127/8 (in the order
        ``ifconfig`` set them). Names compare case-insensitively.
        """
        key = name.rstrip(".").lower()
        for entry, address in self.etc_hosts.items():
            if entry.lower() == key:
                return address
        if key == "localhost":
            return "127.0.0.1"
        for host_name, host in self.hosts.items():
            if host_name.lower() == key:
                for addr in host.inet.local_addrs:
                    if len(addr) == 4 and addr[0] != 127:  # (IPv6 ones share the table)
                        return ".".join(map(str, addr))
                return None
        return None

    def _reverse(self, address: str) -> str | None:
        for entry, addr in self.etc_hosts.items():
            if addr == address:
                return entry
        for host_name, host in self.hosts.items():
            if any(".".join(map(str, a)) == address for a in host.inet.local_addrs if len(a) == 4 and a[0] != 127):
                return host_name
        return None

    def install_trio_sockets(self, *, passthrough: bool = False) -> None:
        """Make ``trio.socket`` (and so ``trio.open_tcp_stream``,
        ``trio.serve_tcp``, ``getaddrinfo``...) use this network for the rest
        of the run, or until the network shuts down (then the previous
        factory and resolver come back).

        Which host a call uses is the task's :meth:`Host.as_current
        <trionet.Host.as_current>`. Names resolve through :meth:`resolve`
        (unknown: ``socket.gaierror(EAI_NONAME)``; numeric addresses never
        reach it).

        Args:
            passthrough: outside any ``as_current()``, let socket calls and
                lookups reach the real kernel; by default they raise
                :class:`RuntimeError`, so a test cannot leak to the real
                network by mistake.

        Raises:
            RuntimeError: already installed by this network.
            trio.ClosedResourceError: the network is shut down.
        """
        self._check_open()
        if self._installed is not None:
            raise RuntimeError("this network's trio sockets are installed already")
        factory = TrioSocketFactory(passthrough=passthrough)
        resolver = TrioResolver(self.resolve, self._reverse, passthrough=passthrough)
        old_factory = trio.socket.set_custom_socket_factory(factory)
        old_resolver = trio.socket.set_custom_hostname_resolver(resolver)
        self._installed = (factory, resolver, old_factory, old_resolver)

    def _uninstall_trio_sockets(self) -> None:
        if self._installed is None:
            return
        factory, resolver, old_factory, old_resolver = self._installed
        self._installed = None
        # Only if nobody replaced ours meanwhile.
        current = trio.socket.set_custom_socket_factory(old_factory)
        if current is not factory:
            trio.socket.set_custom_socket_factory(current)
        current = trio.socket.set_custom_hostname_resolver(old_resolver)
        if current is not resolver:
            trio.socket.set_custom_hostname_resolver(current)

    def _check_open(self) -> None:
        # Every method that builds or removes (add_*, *link, remove_*)
        # passes here, through _check_name or _own or directly.
        if self._closed:
            raise trio.ClosedResourceError("the network is shut down (its open_network block has exited)")

    def _check_name(self, name: str) -> None:
        self._check_open()
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty str, not {name!r}")
        if name in self.hosts or name in self.switches:
            raise ValueError(f"{name!r} is already in the network")

    async def add_host(
        self, name: str, *, ncpus: int = 2, loopback: bool = True
    ) -> Host:
        """Start a host called ``name`` (with ``lo0`` up, 127.0.0.1/8, unless ``loopback=False``)."""
        self._check_name(name)
        owned = self._own()
        host = await owned.enter(open_host(name, ncpus=ncpus, invariants=self._invariants))
        self._host_owned[name] = owned
        self.hosts[name] = host
        # RFC 6528 ISNs and SYN cookies: keyed from the seed, so a run replays.
        host.inet.tcp.secret = self.rng(f"{name}/tcp").randbytes(32)
        if loopback:
            from .drivers.lo import Loopback

            lo = await host.if_attach(Loopback())
            await host.ifup(lo)
            host.ifconfig(lo.name, "127.0.0.1/8")
        return host

    def add_switch(self, name: str, **options: Any) -> Any:
        """Add a learning :class:`~trionet.wires.Switch` (options go to it)."""
        from .wires import Switch

        self._check_name(name)
        switch = Switch(name, **options)
        self.switches[name] = switch
        return switch

    async def link(
        self,
        a: Host | Any,
        b: Host | Any,
        *,
        kind: str = "memory",
        mtu: int = 1500,
        bandwidth: float | None = None,
        delay: float = 0.0,
        queue_len: int = 1000,
        pcap: str | Path | None = None,
        **impairments: float,
    ) -> Link:
        """Join ``a`` and ``b`` (hosts or switches) with a wire.

        A host side gets a new vnic, brought up; a switch side gets a port.

        Args:
            kind: ``"memory"`` (a :class:`~trionet.wires.MemoryWire`, in
                Trio time) or ``"udp"`` (two :class:`~trionet.wires.UdpWire`
                on 127.0.0.1 pointed at each other: real datagrams through
                the kernel, so real time; no ``bandwidth``, ``delay`` or
                ``queue_len``). For the Linux kernel as the far end see
                :meth:`tap_link`.
            mtu, bandwidth, delay, queue_len: the wire's (see
                :class:`~trionet.wires.MemoryWire`); a host's interface gets
                the same MTU (a vnic takes up to 65535).
            pcap: record the frames crossing the wire at side ``a`` (both
                directions, after ``a``'s faults) to this libpcap file.
            impairments: ``loss``, ``duplicate``, ``reorder``, ``corrupt``
                (probabilities), ``jitter`` (seconds), ``rate`` (bytes/s):
                applied to frames sent by either side.

        Raises:
            ValueError: for an unknown impairment or a node not in this
                network.
        """
        for name in impairments:
            if name not in IMPAIRMENTS:
                raise ValueError(f"unknown impairment {name!r}; known: {', '.join(IMPAIRMENTS)}")
        if kind not in ("memory", "udp"):
            raise ValueError(f"kind must be 'memory' or 'udp' (tap: use tap_link()), not {kind!r}")
        if kind == "udp" and (bandwidth is not None or delay or queue_len != 1000):
            raise ValueError("a udp link has no bandwidth, delay or queue_len (use jitter or rate)")
        names = (self._node_name(a), self._node_name(b))
        base = f"{names[0]}-{names[1]}"
        label = base
        n = 1
        while any(link.name == label for link in self.links):
            n += 1
            label = f"{base}#{n}"
        if pcap is None and self.pcap_dir is not None:
            Path(self.pcap_dir).mkdir(parents=True, exist_ok=True)
            pcap = Path(self.pcap_dir) / f"{label}.pcap"
        stack = self._own()
        wire: Any
        if kind == "memory":
            wire = await stack.enter(
                MemoryWire(name=label, mtu=mtu, bandwidth=bandwidth, delay=delay, queue_len=queue_len)
            )
            raw = [wire.endpoint(f"{label}.{names[side]}") for side in (0, 1)]
        else:
            from .wires import open_udp_wire_pair

            wire = await stack.enter(open_udp_wire_pair(mtu=mtu, name=label))
            raw = list(wire)
            impairments.setdefault("loss", 0.0)  # injectors, so it can be partitioned
        endpoints: list[Any] = []
        faults: list[Any] = []
        ends: list[Ifnet | int] = []
        for side, node in enumerate((a, b)):
            ep, injector = await self._wrap(stack, raw[side], label, side, pcap, impairments)
            endpoints.append(ep)
            faults.append(injector)
        for node, ep in zip((a, b), endpoints, strict=True):
            ends.append(await self._plug(node, ep, mtu))
        link = Link(
            label,
            wire,
            (ends[0], ends[1]),
            (endpoints[0], endpoints[1]),
            (faults[0], faults[1]),
            kind,
            stack,
            (a, b),
        )
        self.links.append(link)
        return link

    async def tap_link(
        self,
        host: Host,
        *,
        device: str | None = None,
        mtu: int = 1500,
        netns: str | None = None,
        address: str | None = None,
    ) -> Link:
        """Join ``host`` to the Linux kernel through a TAP device (root only).

        The host gets a vnic on a :class:`~trionet.wires.TapWire`; the
        kernel's end is the device, which is moved into network namespace
        ``netns`` if given (it must exist) and given ``address``
        (``"10.0.0.2/24"``) and brought up. The device goes when the link or
        the network does. ``ends[1]`` is the device name.

        Raises:
            NetError: no permission or no ``/dev/net/tun`` (from TapWire).
            RuntimeError: an ``ip`` command failed (its message included).
        """
        from .wires import TapWire

        name = self._node_name(host)
        label = f"{name}-kernel"
        n = 1
        while any(link.name == label for link in self.links):
            n += 1
            label = f"{name}-kernel#{n}"
        stack = self._own()
        wire = await stack.enter(TapWire(device or "tntap%d", mtu=mtu))
        ifname = wire.ifname
        ns = ["-n", netns] if netns else []
        commands = []
        if netns:
            commands.append(["ip", "link", "set", "dev", ifname, "netns", netns])
        if address:
            commands.append(["ip", *ns, "addr", "add", address, "dev", ifname])
        commands.append(["ip", *ns, "link", "set", "dev", ifname, "up"])
        for argv in commands:
            done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
            if done.returncode:
                await self._disown(stack)
                raise RuntimeError(f"{' '.join(argv)}: {done.stderr.decode().strip()}")
        ifp = await self._plug(host, wire, mtu)
        link = Link(label, wire, (ifp, ifname), (wire, None), (None, None), "tap", stack, (host, None))
        self.links.append(link)
        return link

    async def half_link(
        self,
        node: Host | Any,
        *,
        label: str,
        side: int,
        local_port: int,
        peer_port: int,
        mtu: int = 1500,
        delay: float = 0.0,
        pcap: str | Path | None = None,
        **impairments: float,
    ) -> Link:
        """Side ``side`` of link ``label`` whose other side is in another
        process: a :class:`~trionet.wires.UdpWire` on 127.0.0.1 bound to
        ``local_port`` and sending to ``peer_port``, always behind a fault
        injector (so it can be partitioned; ``delay`` is the injector's),
        seeded as that side of ``label`` is in one process. ``ends`` and
        ``faults`` hold this side at index ``side`` and None at the other.
        """
        from .wires import UdpWire

        name = self._node_name(node)
        stack = self._own()
        wire = await stack.enter(
            UdpWire(("127.0.0.1", peer_port), local=("127.0.0.1", local_port), mtu=mtu, name=f"{label}.{name}")
        )
        ep, injector = await self._wrap(stack, wire, label, side, pcap, {"delay": delay, **impairments})
        end = await self._plug(node, ep, mtu)
        pair: list[Any] = [None, None]
        ends, endpoints, faults, nodes = list(pair), list(pair), list(pair), list(pair)
        ends[side], endpoints[side], faults[side], nodes[side] = end, ep, injector, node
        link = Link(
            label, wire, tuple(ends), tuple(endpoints), tuple(faults), "udp", stack, tuple(nodes)  # type: ignore[arg-type]
        )
        self.links.append(link)
        return link

    async def _wrap(
        self, owned: _Owned, ep: Any, label: str, side: int, pcap: str | Path | None, impairments: dict[str, float]
    ) -> tuple[Any, Any]:
        # Side ``side`` of link ``label``: ``ep`` behind a capture (side a,
        # next to the wire: it shows what crossed it, after this side's
        # faults, losses absent and duplicates present) and a fault injector
        # seeded from the network's seed and the link's name.
        if pcap is not None and side == 0:
            from .wires import PcapTap

            tap = PcapTap(ep, pcap)
            owned.callback(tap.close)
            ep = tap
        injector = None
        if impairments:
            from .wires import FaultInjector

            injector = FaultInjector(ep, seed=derive_seed(self.seed, f"{label}/{side}"), **impairments)
            ep = await owned.enter(injector)
        return ep, injector

    async def _plug(self, node: Host | Any, ep: Any, mtu: int) -> Any:
        # A host gets a vnic at the link's MTU (a vnic attaches at
        # min(1500, wire MTU), like a NIC), brought up; a switch a port.
        if not isinstance(node, Host):
            return node.add_port(ep)
        from .drivers.vnic import Vnic

        ifp = await node.if_attach(Vnic(ep))
        if ifp.mtu != mtu:
            await node.ifioctl(ifp, IfIoctl.SIOCSIFMTU, mtu)
        await node.ifup(ifp)
        return ifp

    async def remove_link(self, link: Link) -> None:
        """Take a link away: its vnics are detached (their addresses and
        routes go with them), switch ports removed, the wire closed."""
        self._check_open()
        if link not in self.links:
            raise ValueError(f"{link!r} is not a link of this network")
        self.links.remove(link)
        for node, end in zip(link._nodes, link.ends, strict=True):
            if isinstance(node, Host) and isinstance(end, Ifnet):
                if end.attached and not end.in_detach:
                    await node.if_detach(end)
            elif node is not None and isinstance(end, int):
                node.remove_port(end)
        if link._owned is not None:
            await self._disown(link._owned)

    async def remove_host(self, name: str) -> None:
        """Stop host ``name`` and remove its links first. Its
        :class:`~trionet.Host` object stays readable; what acts on it
        raises :exc:`trio.ClosedResourceError`."""
        self._check_open()
        host = self.hosts.get(name)
        if host is None:
            raise ValueError(f"no host {name!r} in the network")
        for link in [ln for ln in self.links if host in ln._nodes]:
            await self.remove_link(link)
        del self.hosts[name]
        await self._disown(self._host_owned.pop(name))

    def _own(self) -> _Owned:
        self._check_open()
        owned = _Owned(self._nursery)
        self._owned.append(owned)
        return owned

    async def _disown(self, owned: _Owned) -> None:
        self._owned.remove(owned)
        await owned.aclose()

    def _node_name(self, node: Any) -> str:
        if isinstance(node, Host):
            if self.hosts.get(node.name) is not node:
                raise ValueError(f"{node!r} is not a host of this network")
            return node.name
        name = getattr(node, "name", None)
        if name is None or self.switches.get(name) is not node:
            raise ValueError(f"{node!r} is not a host or switch of this network")
        return str(name)


@asynccontextmanager
async def open_network(
    *, seed: int = 0, invariants: bool = True, trio_sockets: bool = False
) -> AsyncIterator[Network]:
    """Build and run a topology; leaving the block tears all of it down.

    Args:
        seed: every random choice in the network derives from it.
        invariants: run every host with kernel assertions on.
        trio_sockets: call :meth:`Network.install_trio_sockets` (without
            passthrough) for the network's lifetime.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, not {seed!r}")
    # service_nursery: the body's own exception comes out, not a group.
    async with service_nursery() as nursery:
        net = Network(seed, nursery, invariants)
        if trio_sockets:
            net.install_trio_sockets()
        try:
            yield net
        finally:
            net._uninstall_trio_sockets()
            net._closed = True
            with trio.move_on_after(TEARDOWN_TIMEOUT) as scope:
                scope.shield = True
                while net._owned:
                    await net._owned.pop().aclose()
