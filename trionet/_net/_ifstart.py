"""Kicking a driver's ``start`` without contention: ``ifq_dispatch`` and ``if_devstart``.

The send queue's ``started`` flag is the **if_start interlock**: whoever sets
it owns the job of running ``start`` until the queue is empty or the driver
cannot take more. Everyone else only enqueues, so any number of concurrent
senders cause at most one ``start`` at a time and at most one ``if_start``
message in flight per CPU.

- :func:`ifq_dispatch` (the stack's transmit call, a plain function): enqueue
  (a full queue is ``oqdrops`` plus ``NetError(ENOBUFS)``), count ``obytes``
  and ``omcasts``; if it took the interlock, try the serializer: if it is
  free, run ``start`` right here, in the sending thread (DragonFly's
  default); if it is busy (the interrupt handler holds it, say), do not
  wait: send the interface's ``if_start`` message to ``ifnet {ifp.cpuid}``
  instead. Either way, afterwards the interlock is released (not running,
  OACTIVE, queue empty, or the token bucket says wait) or the start is
  scheduled again on the ifnet thread.
- :func:`if_start_dispatch` runs there: it replies at once (so a later
  request may be sent again), enters the serializer (waiting is that
  thread's job), calls ``start`` if the interface is RUNNING and not
  OACTIVE, and then releases the interlock or schedules itself again.
- :func:`if_devstart` is the driver's call, with the serializer already held
  (from its interrupt handler after TX completion, or its watchdog).

When ``start`` sets OACTIVE, the interlock is released and the driver's TX
completion is responsible for restarting output with :func:`if_devstart`.

``net.link.generic.ifq_dispatch_schedonly=1`` makes :func:`ifq_dispatch`
never call ``start`` itself and always schedule the ifnet thread (DragonFly's
sysctl of that name): many packets queued in one batch are then drained by
one ``start``, at the price of a task hand-over per batch.

DragonFly: ``sys/net/if.c`` (``ifq_dispatch``, ``if_start_dispatch``,
``if_start_schedule``, ``if_start_need_schedule``, ``if_devstart``).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .._exceptions import NetError
from .._kern._msgport import NetMsg
from ..protocols.ethernet import ETHER_HDR_LEN
from ._if import IfFlags

if TYPE_CHECKING:
    from ._if import Ifnet

__all__ = ["if_devstart", "if_start_dispatch", "if_start_schedule", "ifq_dispatch"]

#: The sysctl that turns the inline start off.
SCHEDONLY = "net.link.generic.ifq_dispatch_schedonly"

_RUNNING = int(IfFlags.RUNNING)
_OACTIVE = int(IfFlags.OACTIVE)
_UP = int(IfFlags.UP)
_UP_RUNNING = _UP | _RUNNING
_RUNNING_OACTIVE = _RUNNING | _OACTIVE


def ifq_dispatch(ifp: Ifnet, frame: bytes | bytearray | memoryview, prio: int = 0, flow: int = 0) -> None:
    """Queue ``frame`` for transmission on ``ifp`` and make sure ``start`` runs.

    A plain function that never blocks and never waits for the serializer:
    it runs ``start`` inline if the serializer is free (unless
    ``net.link.generic.ifq_dispatch_schedonly`` is 1), and otherwise leaves
    it to the ``ifnet`` thread. Call it *without* the interface serializer
    held (a driver holding it uses ``if_devstart``).

    Args:
        frame: the complete link-layer frame.
        prio: the priority class, for PRIQ and FAIRQ send queues.
        flow: the flow hash, for FAIRQ's buckets.

    Raises:
        NetError: ``ENOBUFS`` when the send queue is full (counted in
            ``oqdrops``); ``ENETDOWN`` when the interface is not UP and
            RUNNING, and ``EINVAL`` for a frame shorter than an Ethernet
            header (both counted in ``oerrors``).
        KernelPanic: with invariants, if the caller holds the serializer.

    DragonFly: ``ifq_dispatch``.
    """
    serializer = ifp.serializer
    serializer.assert_not_serialized()
    data = ifp.data
    # int(): an IfFlags & is Python code; the bits as an int are C (hot path).
    if int(ifp.flags) & _UP_RUNNING != _UP_RUNNING:
        data.oerrors += 1
        raise NetError(errno.ENETDOWN, f"{ifp.name} is not up and running")
    if len(frame) < ETHER_HDR_LEN:
        data.oerrors += 1
        raise NetError(errno.EINVAL, f"{ifp.name}: a frame needs at least {ETHER_HDR_LEN} bytes")
    snd = ifp.snd
    if not snd.enqueue(frame, prio, flow):
        data.oqdrops += 1
        raise NetError(errno.ENOBUFS, f"{ifp.name}: send queue full")
    data.obytes += len(frame)
    if frame[0] & 1:
        data.omcasts += 1
    if snd.started:
        return  # someone owns the start; this request coalesces into theirs
    snd.started = True
    if ifp.schedonly.value or not serializer.try_enter():
        if_start_schedule(ifp)  # busy: the ifnet thread waits for it, not us
        return
    try:
        if int(ifp.flags) & _RUNNING_OACTIVE == _RUNNING:
            ifp.driver.start()
    finally:
        serializer.exit()
    # _need_schedule, inline (per packet): the queue is normally empty now
    # (its count read directly; poll() then asks the token bucket).
    if int(ifp.flags) & _RUNNING_OACTIVE != _RUNNING or not snd._len or snd.poll() is None:
        snd.started = False
    else:
        if_start_schedule(ifp)


def if_start_schedule(ifp: Ifnet) -> None:
    """Send ``ifp``'s ``if_start`` message to ``ifnet {ifp.cpuid}`` unless in flight.

    DragonFly: ``if_start_schedule``.
    """
    msg = ifp._start_msgs[ifp.cpuid]
    if msg.done:
        ifp.host.port("ifnet", ifp.cpuid).sendmsg(msg)


def _need_schedule(ifp: Ifnet) -> bool:
    # After a start: keep the interlock and go again only if there is more to
    # send that the driver can take now. DragonFly: if_start_need_schedule.
    snd = ifp.snd
    if int(ifp.flags) & _RUNNING_OACTIVE != _RUNNING or snd.poll() is None:
        snd.started = False
        return False
    return True


async def if_start_dispatch(msg: NetMsg) -> None:
    """The ``if_start`` message's handler, on ``ifnet {ifp.cpuid}``.

    Replies first, then runs ``start`` with the serializer held (waiting for
    it here is fine: this thread exists to absorb that wait).
    """
    ifp: Ifnet = msg.arg
    msg.reply()
    if not int(ifp.flags) & _UP or not ifp.attached:
        ifp.snd.started = False
        return
    serializer = ifp.serializer
    await serializer.enter()
    try:
        if int(ifp.flags) & _RUNNING_OACTIVE == _RUNNING:
            ifp.driver.start()
    finally:
        serializer.exit()
    if _need_schedule(ifp):
        if_start_schedule(ifp)


def if_devstart(ifp: Ifnet) -> None:
    """Run ``start`` now, from a driver that holds the serializer.

    Does nothing if someone already owns the start interlock (their start
    will see the queue) or the queue is empty. Drivers call it after TX
    completion cleared OACTIVE, and after a re-init. A plain function.

    Raises:
        KernelPanic: with invariants, if the serializer is not held.

    DragonFly: ``if_devstart``.
    """
    ifp.serializer.assert_serialized()
    snd = ifp.snd
    if snd.started or snd.is_empty():
        return
    snd.started = True
    if int(ifp.flags) & _RUNNING_OACTIVE == _RUNNING:
        ifp.driver.start()
    if _need_schedule(ifp):
        if_start_schedule(ifp)
