"""netisr: per-CPU protocol threads fed by ``netisr_queue``.

A host runs ``ncpus`` threads ``netisr 0`` .. ``netisr N-1``, each a service
loop over its own :class:`~trionet.lowlevel.MsgPort` (see
:mod:`trionet._kern._msgport`). A protocol registers a handler and a
``cpufn``; :meth:`Netisr.queue` asks the ``cpufn`` for the packet's flow hash
and queues the packet to ``netisr (hash % ncpus)``, so every packet of one flow
is handled by one thread, in order. Protocols without a ``cpufn`` go to CPU 0.

Rules:

1. ``queue`` never blocks: a full port drops the packet and counts it; a
   packet for an unregistered protocol is dropped and counted in
   ``unregistered``.
2. Handlers are plain functions: they run in a batch on the protocol thread
   and must not block. Work that must wait is a message, or a callout.
3. ``schednetisr`` sends the protocol's one scheduling message to CPU 0 only
   when it is not already in flight, so repeated calls coalesce.
4. Rollups run after every batch on every netisr thread (``tcp_willblock``
   flushes delayed ACKs there).
5. ``service_sync`` sends a sync message through every netisr and ifnet port
   and waits for all replies: when it returns, every packet queued before the
   call has been handled.
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


@attrs.define(eq=False)
class Netisr:
    """The protocol threads' registry of one host (used through ``Host``)."""

    ports: list[MsgPort]
    sync_ports: list[MsgPort]
    rollups: list[Callable[[], object]]
    _protos: dict[int, _Proto] = attrs.field(factory=dict, init=False)
    _unregistered: int = attrs.field(default=0, init=False)
    _sched: int = attrs.field(default=0, init=False)
    _sched_coalesced: int = attrs.field(default=0, init=False)

    def register(
        self,
        proto: int,
        handler: Callable[[Any], object],
        cpufn: Callable[[Any], int] | None = None,
        *,
        sched_handler: Callable[[], object] | None = None,
    ) -> None:
        if proto in self._protos:
            raise ValueError(f"netisr protocol {proto} is already registered")
        if not callable(handler):
            raise TypeError(f"netisr handler must be callable, not {handler!r}")
        msg = None
        if sched_handler is not None:
            msg = NetMsg(lambda _msg: sched_handler())
        self._protos[proto] = _Proto(handler, cpufn, msg)

    def register_rollup(self, fn: Callable[[], object]) -> None:
        self.rollups.append(fn)

    def registered(self, proto: int) -> bool:
        return proto in self._protos

    def queue(self, proto: int, pkt: Any) -> bool:
        p = self._protos.get(proto)
        if p is None:
            self._unregistered += 1
            return False
        ports = self.ports
        if p.cpufn is None:
            return ports[0].put_packet(p.handler, pkt)
        return ports[p.cpufn(pkt) % len(ports)].put_packet(p.handler, pkt)

    def enqueue(self, proto: int, pkt: Any) -> int:
        # queue() with DragonFly's return values and no counting, for input
        # paths that count in their own interface counters: 0 queued,
        # ENOBUFS port full (the port counts the drop), EIO no protocol.
        p = self._protos.get(proto)
        if p is None:
            return errno.EIO
        ports = self.ports
        # One CPU: no hash to compute.
        port = ports[0] if p.cpufn is None or len(ports) == 1 else ports[p.cpufn(pkt) % len(ports)]
        return 0 if port.put_or_chain(p.handler, pkt) else errno.ENOBUFS

    def sched(self, proto: int) -> bool:
        p = self._protos.get(proto)
        if p is None or p.sched_msg is None:
            raise ValueError(f"netisr protocol {proto} has no sched_handler")
        self._sched += 1
        if not p.sched_msg.done:
            self._sched_coalesced += 1
            return False
        self.ports[0].sendmsg(p.sched_msg)
        return True

    async def service_sync(self) -> None:
        # domsg each port in turn: a port is FIFO, so its reply means that
        # everything queued there before it has run. Called from one of these
        # threads, its own port runs the message inline (it cannot wait for
        # itself), so only the other ports are synced.
        for port in self.sync_ports:
            await port.domsg(NetMsg(_noop))

    def statistics(self) -> NetisrStatistics:
        return NetisrStatistics(
            ports=tuple(p.statistics() for p in self.ports),
            unregistered=self._unregistered,
            sched=self._sched,
            sched_coalesced=self._sched_coalesced,
        )


def _noop(msg: NetMsg) -> None:
    return None
