"""netisr: per-CPU protocol threads fed by ``netisr_queue``.

A host runs ``ncpus`` threads ``netisr 0`` .. ``netisr N-1``, each a service
loop over its own :class:`~trionet.lowlevel.MsgPort` (see
:mod:`trionet._kern._msgport`). A protocol registers a handler and a
``cpufn``; ``netisr_queue`` asks the ``cpufn`` for the packet's flow hash
and queues the packet to ``netisr (hash % ncpus)``, so every packet of one flow
is handled by one thread, in order. Protocols without a ``cpufn`` go to CPU 0.

One public surface: the host's methods (``host.netisr_register``,
``host.netisr_queue``, ``host.schednetisr``...), named after DragonFly's
free functions. They are written once, in :class:`Netisr`, which ``Kernel``
inherits; there is no netisr object of its own to call.

Rules:

1. ``netisr_queue`` never blocks: a full port drops the packet and counts
   it; a packet for an unregistered protocol is dropped and counted in
   ``unregistered``.
2. Handlers are plain functions: they run in a batch on the protocol thread
   and must not block. Work that must wait is a message, or a callout.
3. ``schednetisr`` sends the protocol's one scheduling message to CPU 0 only
   when it is not already in flight, so repeated calls coalesce.
4. Rollups run after every batch on every netisr thread (``tcp_willblock``
   flushes delayed ACKs there).
5. ``netmsg_service_sync`` sends a sync message through every netisr and
   ifnet port and waits for all replies: when it returns, every packet queued
   before the call has been handled.
6. Direct dispatch: a packet that a netisr thread itself hands up while
   polling a device (``IfFlags.POLLING``), and whose flow hashes to that
   same thread, is not queued when nothing waits before it: it joins the
   poll's chain and is handled as soon as the device's serializer is
   released, in order (:meth:`MsgPort.direct_begin
   <trionet.lowlevel.MsgPort.direct_begin>`).

DragonFly: ``sys/net/netisr.c`` (``netisr_register``, ``netisr_queue``,
``schednetisr``, ``netisr_register_rollup``, ``netmsg_service_sync``).
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

import attrs

from ._msgport import MsgPort, MsgPortStatistics, NetMsg

__all__ = ["Netisr", "NetisrStatistics"]


@attrs.frozen
class NetisrStatistics:
    """Counters of a host's netisr threads.

    Attributes:
        ports: one :class:`~trionet.lowlevel.MsgPortStatistics` per CPU.
        unregistered: packets dropped because no protocol was registered.
        sched: ``schednetisr`` calls; ``sched_coalesced``: of those, how many
            found the message already in flight.
    """

    ports: tuple[MsgPortStatistics, ...]
    unregistered: int
    sched: int
    sched_coalesced: int


@attrs.define(eq=False)
class _Proto:
    handler: Callable[[Any], object]
    cpufn: Callable[[Any], int] | None
    sched_msg: NetMsg | None


@attrs.define(eq=False, repr=False)
class Netisr:
    """The netisr half of a :class:`~trionet._kern._host.Kernel`.

    The public surface is the methods below, called on the host
    (``host.netisr_queue(...)``): their names are DragonFly's free functions
    (STYLE section 2), so a grep leads to ``sys/net/netisr.c``. They are
    defined once, here, and a ``Kernel`` has them by inheriting this class;
    there is no separate netisr object to reach through, and no delegating
    copy of the signatures. The kernel fills in the ports
    (:meth:`_netisr_init`) once its service threads exist.
    """

    _netisr_ports: list[MsgPort] = attrs.field(init=False)
    _netisr_sync_ports: list[MsgPort] = attrs.field(init=False)
    _netisr_rollups: list[Callable[[], object]] = attrs.field(init=False)
    _netisr_protos: dict[int, _Proto] = attrs.field(factory=dict, init=False)
    _netisr_unregistered: int = attrs.field(default=0, init=False)
    _netisr_sched: int = attrs.field(default=0, init=False)
    _netisr_sched_coalesced: int = attrs.field(default=0, init=False)

    def _netisr_init(
        self,
        ports: list[MsgPort],
        sync_ports: list[MsgPort],
        rollups: list[Callable[[], object]],
    ) -> None:
        # ports: the netisr threads' ports, by CPU; sync_ports: every port
        # netmsg_service_sync goes through; rollups: the list the netisr
        # service loops run after each batch.
        self._netisr_ports = ports
        self._netisr_sync_ports = sync_ports
        self._netisr_rollups = rollups

    def _check_open(self) -> None:
        raise NotImplementedError  # the Kernel's

    def netisr_register(
        self,
        proto: int,
        handler: Callable[[Any], object],
        cpufn: Callable[[Any], int] | None = None,
        *,
        sched_handler: Callable[[], object] | None = None,
    ) -> None:
        """Register protocol ``proto``: packets go to ``handler(pkt)`` on a netisr.

        Args:
            handler: a plain function run on the protocol thread for each packet.
            cpufn: returns the packet's flow hash (a non-negative int); the
                packet goes to ``netisr (hash % ncpus)``. None sends every
                packet to CPU 0.
            sched_handler: what :meth:`schednetisr` runs on CPU 0.

        Raises:
            ValueError: if ``proto`` is already registered.
            TypeError: if ``handler`` is not callable.

        DragonFly: ``netisr_register``.
        """
        if proto in self._netisr_protos:
            raise ValueError(f"netisr protocol {proto} is already registered")
        if not callable(handler):
            raise TypeError(f"netisr handler must be callable, not {handler!r}")
        msg = None
        if sched_handler is not None:
            msg = NetMsg(lambda _msg: sched_handler())
        self._netisr_protos[proto] = _Proto(handler, cpufn, msg)

    def netisr_register_rollup(self, fn: Callable[[], object]) -> None:
        """Run ``fn()`` on every netisr thread after each batch.

        DragonFly: ``netisr_register_rollup``.
        """
        self._netisr_rollups.append(fn)

    def netisr_registered(self, proto: int) -> bool:
        """Whether protocol ``proto`` has a netisr handler."""
        return proto in self._netisr_protos

    def netisr_queue(self, proto: int, pkt: Any) -> bool:
        """Queue ``pkt`` to the protocol thread its flow hashes to. Never blocks.

        Returns:
            False if the packet was dropped (port full, or ``proto`` not
            registered); the drop is counted in :meth:`netisr_statistics`.

        DragonFly: ``netisr_queue``.
        """
        p = self._netisr_protos.get(proto)
        if p is None:
            self._netisr_unregistered += 1
            return False
        ports = self._netisr_ports
        if p.cpufn is None:
            return ports[0].put_packet(p.handler, pkt)
        return ports[p.cpufn(pkt) % len(ports)].put_packet(p.handler, pkt)

    def netisr_enqueue(self, proto: int, pkt: Any) -> int:
        """:meth:`netisr_queue` for input paths that keep their own counters.

        Returns:
            0 if queued, ``errno.ENOBUFS`` if the port was full (counted in
            the port's ``drops``), ``errno.EIO`` if ``proto`` is not
            registered (not counted here: the caller counts ``noproto``).

        DragonFly: ``netisr_queue``'s return value.
        """
        p = self._netisr_protos.get(proto)
        if p is None:
            return errno.EIO
        ports = self._netisr_ports
        # One CPU: no hash to compute.
        port = ports[0] if p.cpufn is None or len(ports) == 1 else ports[p.cpufn(pkt) % len(ports)]
        return 0 if port.put_or_chain(p.handler, pkt) else errno.ENOBUFS

    def schednetisr(self, proto: int) -> bool:
        """Ask ``netisr 0`` to run ``proto``'s ``sched_handler``; coalesces.

        Returns:
            False if a request was already in flight (this one merged into it).

        Raises:
            ValueError: if ``proto`` has no ``sched_handler``.

        DragonFly: ``schednetisr``.
        """
        p = self._netisr_protos.get(proto)
        if p is None or p.sched_msg is None:
            raise ValueError(f"netisr protocol {proto} has no sched_handler")
        self._netisr_sched += 1
        if not p.sched_msg.done:
            self._netisr_sched_coalesced += 1
            return False
        self._netisr_ports[0].sendmsg(p.sched_msg)
        return True

    async def netmsg_service_sync(self) -> None:
        """Wait until every packet and message queued to the netisr and ifnet
        threads before this call has been handled.

        Raises:
            trio.ClosedResourceError: if the host is shut down (its threads
                are gone, so this would wait forever).

        DragonFly: ``netmsg_service_sync``.
        """
        self._check_open()
        # domsg each port in turn: a port is FIFO, so its reply means that
        # everything queued there before it has run. Called from one of these
        # threads, its own port runs the message inline (it cannot wait for
        # itself), so only the other ports are synced.
        for port in self._netisr_sync_ports:
            await port.domsg(NetMsg(_noop))

    def netisr_statistics(self) -> NetisrStatistics:
        """Counters of the netisr threads and ports."""
        return NetisrStatistics(
            ports=tuple(p.statistics() for p in self._netisr_ports),
            unregistered=self._netisr_unregistered,
            sched=self._netisr_sched,
            sched_coalesced=self._netisr_sched_coalesced,
        )


def _noop(msg: NetMsg) -> None:
    return None
