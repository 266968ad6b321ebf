"""LWKT message ports and the service loop of a protocol thread.

Theory of operation
===================

A :class:`MsgPort` belongs to one service thread (``netisr N``, ``ifnet N``,
``softclock N``). Other tasks hand it work without waiting for it; the thread
drains its port in batches, fires its callouts and runs its rollups. Two kinds
of work go through a port:

- **packets**, queued by :meth:`MsgPort.put_packet` as a ``(handler, pkt)``
  pair: the cheap per-packet path of ``netisr_queue``. Packets are the only
  thing that can flood a port, so they alone are bounded by ``maxlen``; a full
  port drops the packet and counts it (``drops``).
- **messages**, :class:`NetMsg` objects sent with :meth:`MsgPort.sendmsg` or
  :meth:`MsgPort.domsg`. A message can be in flight only once (it must be
  *done* to be sent: ``MSGF_DONE``), so the number of queued messages is
  bounded by the number of message objects their senders own. That is also
  what coalesces ``schednetisr`` and ``if_start`` requests: the sender sends
  its one message only if it is done.

Rules:

1. Senders never block: :meth:`~MsgPort.put_packet` and
   :meth:`~MsgPort.sendmsg` are plain functions. Only :meth:`~MsgPort.domsg`
   awaits, for the reply.
2. The service loop dispatches at most ``batch`` items (``net.netisr.batch``,
   512 by default), then runs the rollups, then checkpoints if more work is
   waiting (else it parks), so a busy port cannot starve the rest of the host
   and an idle one costs one wake-up per batch.
3. A message handler returns its result, or calls :meth:`NetMsg.reply` itself
   to reply early (``if_start_dispatch`` does, so it can be re-sent while it
   still runs). The loop replies on the handler's behalf otherwise.
4. A :class:`~trionet.TrionetError` raised by the handler of a ``domsg`` is
   the reply (the errno DragonFly would return) and is raised in the waiting
   task. Any other exception is a bug and crashes the thread, and with it the
   host.
5. ``domsg`` aimed at the calling thread's own port runs the handler inline,
   as DragonFly's ``netmsg_put_port`` does, instead of deadlocking.

DragonFly: ``sys/kern/lwkt_msgport.c``, ``netmsg_service_loop`` in
``sys/net/netisr.c``.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs
import trio
from trio.lowlevel import Abort, ParkingLot, Task, current_task, reschedule

from .._exceptions import KernelPanic, TrionetError
from . import _ktrace
from ._callout import TimerHeap
from ._kthread import KThread
from ._sysctl import SysctlNode

__all__ = ["MsgPort", "MsgPortStatistics", "NetMsg", "msgport_service_loop"]

MsgHandler = Callable[["NetMsg"], Any]


@attrs.define(eq=False, repr=False)
class NetMsg:
    """A message for a port's thread: ``handler(msg)`` runs there.

    Args:
        handler: called on the port's thread with the message; may be async.
            Its return value is the reply's result.

    Attributes:
        done: MSGF_DONE: not in flight, may be sent.
        result: the last reply's result.
        error: the :class:`~trionet.TrionetError` the last reply carried, if any.
        arg: free for the sender (a packet, a socket, a request record).

    DragonFly: ``struct lwkt_msg`` / ``struct netmsg``.
    """

    handler: MsgHandler
    arg: Any = None
    done: bool = attrs.field(default=True, init=False)
    result: Any = attrs.field(default=None, init=False)
    error: BaseException | None = attrs.field(default=None, init=False)
    _seq: int = attrs.field(default=0, init=False)
    _sync: bool = attrs.field(default=False, init=False)
    _waiter: Task | None = attrs.field(default=None, init=False)

    def __repr__(self) -> str:
        state = "done" if self.done else "in flight"
        return f"<NetMsg {getattr(self.handler, '__qualname__', self.handler)} {state}>"

    def reply(self, result: Any = None) -> None:
        """Reply: mark the message done and wake a ``domsg`` waiter.

        DragonFly: ``lwkt_replymsg``.
        """
        self.result = result
        self.done = True
        if self._waiter is not None:
            task, self._waiter = self._waiter, None
            reschedule(task)


@attrs.frozen
class MsgPortStatistics:
    """A snapshot of a :class:`MsgPort`.

    Attributes:
        name: the owning thread's name.
        depth: items queued now.
        maxlen: the packet limit.
        packets: packets accepted.
        messages: messages accepted.
        aborted: of those, messages a cancelled ``domsg`` took back before
            they ran.
        direct: packets the thread handled directly after polling a device
            (not queued, so not in ``packets``).
        drops: packets dropped because the port was full.
        batches: batches the thread dispatched.
    """

    name: str
    depth: int
    maxlen: int
    packets: int
    messages: int
    aborted: int
    direct: int
    drops: int
    batches: int


@attrs.define(eq=False, repr=False)
class MsgPort:
    """The bounded input port of one service thread.

    Args:
        thread: the owning thread.
        maxlen: the sysctl node that bounds queued packets.
    """

    thread: KThread
    maxlen: SysctlNode
    _queue: deque[Any] = attrs.field(factory=deque, init=False)
    _lot: ParkingLot = attrs.field(factory=ParkingLot, init=False)
    _sleeping: bool = attrs.field(default=False, init=False)  # the thread is parked on _lot
    _packets: int = attrs.field(default=0, init=False)
    _messages: int = attrs.field(default=0, init=False)
    _aborted: int = attrs.field(default=0, init=False)
    _direct: int = attrs.field(default=0, init=False)
    #: While the owning thread polls a device: the packets for this very
    #: thread, handled right after the poll instead of queued (see
    #: :meth:`direct_begin`).
    chain: list[tuple[Callable[[Any], object], Any]] | None = attrs.field(default=None, init=False)
    _drops: int = attrs.field(default=0, init=False)
    _batches: int = attrs.field(default=0, init=False)

    def __repr__(self) -> str:
        return f"<MsgPort {self.thread.name!r} depth={len(self._queue)}>"

    def __len__(self) -> int:
        return len(self._queue)

    def wakeup(self) -> None:
        """Wake the owning thread if it sleeps (new work, or a callout due:
        the host's hardclock calls it)."""
        if self._sleeping:
            self._lot.unpark_all()

    def put_packet(self, handler: Callable[[Any], object], pkt: Any) -> bool:
        """Queue ``handler(pkt)`` for the thread; never blocks.

        Returns:
            False if the port already holds ``maxlen`` items: the packet is
            dropped and counted in ``drops``.
        """
        queue = self._queue
        if len(queue) >= self.maxlen.value:  # type: ignore[operator]
            self._drops += 1
            return False
        if _ktrace.ACTIVE is not None:
            queue.append(_ktrace.ACTIVE.packet_queued(handler, pkt))  # with a flow id
        else:
            queue.append((handler, pkt))
        self._packets += 1
        if self._sleeping:  # a flag: cheaper than asking the lot
            self._lot.unpark_all()
        return True

    def direct_begin(self) -> None:
        """Start collecting packets for this thread instead of queuing them.

        Called by the owning thread before it polls a device (with the
        device's serializer held): a packet the device hands up whose flow
        hashes to this thread joins the chain while nothing is queued before
        it, and :meth:`direct_end` handles the chain once the serializer is
        released. DragonFly: direct dispatch in netisr context.
        """
        self.chain = []

    def direct_end(self) -> None:
        """Handle the packets collected since :meth:`direct_begin`, in order."""
        chain, self.chain = self.chain, None
        if chain:
            self._direct += len(chain)
            for handler, pkt in chain:
                handler(pkt)

    def put_or_chain(self, handler: Callable[[Any], object], pkt: Any) -> bool:
        """:meth:`put_packet`, unless the owning thread is polling into a
        chain and nothing is queued: then the packet joins the chain."""
        chain = self.chain
        queue = self._queue
        if chain is not None and not queue and self.thread.task is current_task():
            chain.append((handler, pkt))
            return True
        # put_packet, inline (per packet):
        if len(queue) >= self.maxlen.value:  # type: ignore[operator]
            self._drops += 1
            return False
        if _ktrace.ACTIVE is not None:
            queue.append(_ktrace.ACTIVE.packet_queued(handler, pkt))  # with a flow id
        else:
            queue.append((handler, pkt))
        self._packets += 1
        if self._sleeping:
            self._lot.unpark_all()
        return True

    def sendmsg(self, msg: NetMsg) -> None:
        """Queue ``msg`` for the thread without waiting (``lwkt_sendmsg``).

        Raises:
            KernelPanic: if the message is still in flight (not done).
        """
        if not msg.done:
            raise KernelPanic(f"{msg!r} sent while still in flight")
        msg.done = False
        msg.error = None
        msg._sync = False
        msg._seq += 1
        if _ktrace.ACTIVE is not None:
            _ktrace.ACTIVE.msg_sent(msg)
        self._queue.append(msg)
        self._messages += 1
        if self._sleeping:
            self._lot.unpark_all()

    async def domsg(self, msg: NetMsg) -> Any:
        """Send ``msg`` and wait for its reply; return the reply's result.

        Runs the handler inline when called from the port's own thread.

        Cancellation: the message either ran or it did not, and the caller
        knows which. If ``Cancelled`` arrives while the message still waits
        in the port, it is taken out (DragonFly's ``lwkt_abortmsg``): it
        never runs, and ``Cancelled`` is raised. Once its handler has
        started, the cancel waits for the reply: ``domsg`` returns the
        result (or raises the handler's error), and the cancel is delivered
        at the caller's next checkpoint.

        Raises:
            TrionetError: the error the handler replied with.

        DragonFly: ``lwkt_domsg``.
        """
        if self.thread.task is current_task():
            await trio.lowlevel.checkpoint_if_cancelled()
            if not msg.done:
                raise KernelPanic(f"{msg!r} sent while still in flight")
            msg.done = False
            msg.error = None
            msg._sync = True
            msg._seq += 1
            await _dispatch(msg)
            await trio.lowlevel.cancel_shielded_checkpoint()
        else:
            self.sendmsg(msg)
            msg._sync = True
            msg._waiter = current_task()
            queue = self._queue

            def abort(_: Any) -> Abort:
                try:
                    queue.remove(msg)  # by identity: NetMsg has eq=False
                except ValueError:
                    return Abort.FAILED  # running: its reply reschedules us
                self._aborted += 1
                msg._waiter = None
                msg.done = True
                return Abort.SUCCEEDED

            await trio.lowlevel.wait_task_rescheduled(abort)
        if msg.error is not None:
            raise msg.error
        return msg.result

    async def _wait(self) -> None:
        # Sleep until new work arrives or a callout of the thread is due (the
        # host's hardclock wakes us then: no deadline of our own).
        self._sleeping = True
        try:
            await self._lot.park()
        finally:
            self._sleeping = False

    def statistics(self) -> MsgPortStatistics:
        """Return a :class:`MsgPortStatistics` snapshot."""
        return MsgPortStatistics(
            name=self.thread.name,
            depth=len(self._queue),
            maxlen=self.maxlen.value,  # type: ignore[arg-type]
            packets=self._packets,
            messages=self._messages,
            aborted=self._aborted,
            direct=self._direct,
            drops=self._drops,
            batches=self._batches,
        )


async def _dispatch(msg: NetMsg) -> None:
    seq = msg._seq
    sync = msg._sync
    try:
        result = msg.handler(msg)
        if inspect.isawaitable(result):
            result = await result
    except TrionetError as exc:
        if not sync or msg._seq != seq or msg.done:
            raise
        msg.error = exc
        msg.reply(None)
        return
    if msg._seq == seq and not msg.done:
        msg.reply(result)


async def msgport_service_loop(
    thread: KThread,
    port: MsgPort,
    timers: TimerHeap,
    batch: SysctlNode,
    rollups: list[Callable[[], object]],
) -> None:
    """The body of a service thread: callouts, then a batch, then rollups.

    Never returns; the host's nursery cancels it. Each batch handles at most
    ``batch.value`` items and is followed by the rollups and a checkpoint.

    DragonFly: ``netmsg_service_loop``.
    """
    queue = port._queue
    heap = timers._heap
    while True:
        if heap and heap[0][0] <= trio.current_time():
            if _ktrace.ACTIVE is not None:
                await _ktrace.ACTIVE.callouts(timers, trio.current_time())
            else:
                await timers.run_expired(trio.current_time())
        if not queue:
            thread.state, thread.wchan = "S", "msgport"
            await port._wait()
            thread.state, thread.wchan = "R", ""
            continue
        limit: int = batch.value  # type: ignore[assignment]
        port._batches += 1
        if _ktrace.ACTIVE is not None:
            # The same batch, each item in a span (its twin: keep in step).
            await _ktrace.ACTIVE.service_batch(queue, limit, _dispatch, rollups)
        else:
            n = 0
            while queue and n < limit:
                n += 1
                item = queue.popleft()
                if item.__class__ is tuple:
                    item[0](item[1])  # (handler, pkt), or (handler, pkt, flow id) if traced
                else:
                    await _dispatch(item)
            for rollup in rollups:
                rollup()
        if queue:
            # More work came in: let the rest of the host run first (rule 2).
            # Otherwise the park at the top is this batch's yield.
            await trio.lowlevel.checkpoint()

