"""Kernel tracing: a timeline of the hosts' threads in Chrome's trace event format.

``with recording() as trace:`` makes the kernel record what its threads do
while the block runs; ``trace.write("run.json")`` (or ``trace.to_json()``)
gives a file that https://ui.perfetto.dev and ``chrome://tracing`` open.

Theory of operation
===================

One recording at a time is :data:`ACTIVE`. Every hook in the kernel is one
test of that module global (``if _ktrace.ACTIVE is not None:``) followed, only
when it is set, by a call into the recording; with no recording, the kernel
does no other work and makes no extra Python call (the benchmarks' ``calls``
column checks that).

What is where (the `trace event format`_):

- **Processes and threads.** One process per host (``pid`` in the order the
  hosts were created in the block, named by ``process_name``); one thread per
  kernel thread (``thread_name`` = the :class:`~trionet.lowlevel.KThread`'s
  name: ``ithread 16``, ``netisr 0``, ``ifnet 0``, ``softclock 0``), and one
  per other task that shows up in the trace (it takes a serializer or Giant,
  queues a packet, runs a FAST interrupt chain), named by its Trio task name:
  in its host's process if it runs in the host's nursery (``hardclock``),
  else in a process called ``tasks``.
- **Code spans** ("X" events) on the thread's track, nested as the code is:
  ``irq11: vnic0/vnic1`` (one run of an interrupt chain, named as ``vmstat
  -i`` names the IRQ, by the ithread or, ``args.fast``, by the task that
  asserted a FAST line) containing one span per handler run (the handler's
  ``name``: ``vnic0``); ``batch`` (one batch of a service thread: its items
  and rollups) containing one span per packet or message (the handler's
  qualified name: ``Ip.input``); ``callouts`` (the expired callouts a
  service thread fired); ``hold <serializer>``, ``hold Giant`` and, when the
  lock was busy, ``wait <serializer>`` / ``wait Giant`` before it.
- **Lock tracks.** Each serializer (and each host's Giant) also has a track
  of its own, a thread ``serializer <name>`` (``Giant``) in its host's
  process (``tasks`` for a serializer made outside a host's
  :meth:`~trionet.Host.serializer`), carrying its holds only: a lock is held
  by one task at a time, so the spans of one lock track never overlap.
- **Task steps.** With ``task_steps=True`` (the default) every Trio task step
  of a traced task is a ``run`` span on a second track just below the
  thread's, ``<name> (run)``, from a :class:`trio.abc.Instrument`: when the
  thread had the (one) CPU. Steps get a track of their own because they do
  not nest with the code spans: a hold begins in one step and ends in a later
  one (``enter`` checkpoints after taking the lock), and Perfetto drops
  slices that overlap on one track without nesting.
- **Interrupts** are instant events ``intr <irq>`` on the ithread's track,
  one per :meth:`~trionet.lowlevel.IntrController.sched_ithd` of a line with
  handlers.
- **Flows.** A packet queued to a port (``netisr_queue``) and a message sent
  to one (``sendmsg``, ``domsg``) are a flow arrow ("s" then "f", same
  ``id``, ``bp: "e"``) from the span that queued it to the span that handled
  it on the service thread. Flows with only one end in the trace (queued
  before the recording began, handled after it ended, or cut by the bound)
  are left out of :meth:`KernelTrace.to_json`.

Rules:

1. **The trace clock.** Timestamps are microseconds of Trio (virtual) time
   since the recording began, made monotonic: ``ts = max(virtual_us, last_ts
   + max(real_us_since_last_event, 1))``. Under
   :class:`~trio.testing.MockClock` a lot happens at one virtual instant (the
   clock does not move during computation), so work done at one instant is
   spread out by the real time it took: the clock never goes back and never
   stands still, so a span never overlaps one that ended before it began, and
   ``ts`` is strictly increasing per track. The cost is a drift: the trace
   runs ahead of virtual time by the computation done since the last virtual
   step forward (and it includes the recording's own cost), then snaps back
   onto virtual time at the next step beyond it. Values are written as whole
   microseconds (the clock advances by at least one per event, so they
   still increase strictly), which every reader converts to nanoseconds
   exactly, so nested spans stay nested.
2. **Bounded.** At most ``max_events`` events are kept (metadata, the
   process and thread names, are not counted); after that events are counted
   in ``otherData.dropped`` and thrown away. Tracks are bounded too
   (:data:`MAX_TRACKS`; tasks beyond it share one track ``other tasks``).
3. **Nothing outside the block.** Hooks test :data:`ACTIVE`; a span begun
   inside the block and ended after it (a lock still held, a batch still
   running) is not written.
4. **No change in behaviour.** Hooks only read kernel state, never change it,
   and never checkpoint: the traced service batch (:meth:`KernelTrace.service_batch`)
   and waits do exactly what the untraced code does, plus the recording.
   The traced batch is a twin of the loop in
   :func:`~trionet._kern._msgport.msgport_service_loop`; keep them in step.

Hosts created before the block are traced from the moment a hook first
names them (an interrupt) or :meth:`KernelTrace.add_host` is called; until
then their threads appear by task name under ``tasks``.

.. _trace event format:
   https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU

Prior art: Trio's :class:`trio.abc.Instrument` (the task steps); DragonFly's
``ktr(4)`` kernel trace buffer, bounded the same way (a ring there; here the
first ``max_events`` are kept, so a trace always shows how a run began).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import attrs
import trio
from trio.lowlevel import Task, current_root_task, current_task

__all__ = ["ACTIVE", "MAX_TRACKS", "KernelTrace", "recording"]

#: The recording in progress, or None. Hooks test it and do nothing else
#: when it is None.
ACTIVE: KernelTrace | None = None

#: Tracks (threads) a trace makes at most; tasks beyond share one track.
MAX_TRACKS = 10_000

_TASKS = "tasks"

# An event, kept as a tuple until to_json (a dict per event would cost four
# times the memory): (ph, cat, name, tid, ts, dur, args, flow id).
_Event = tuple[str, str, str, int, float, float, "dict[str, Any] | None", int]


def _handler_name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def _metadata(kind: str, pid: int, tid: int, **args: Any) -> dict[str, Any]:
    return {"ph": "M", "name": kind, "pid": pid, "tid": tid, "ts": 0, "args": args}


@attrs.define(eq=False, repr=False)
class KernelTrace:
    """A kernel timeline being recorded, or recorded: made by :func:`recording`.

    Args:
        max_events: events kept at most; later ones are counted as dropped.
        task_steps: record every Trio task step of a traced task as a ``run``
            span (on the ``<name> (run)`` track).

    Attributes:
        max_events: the bound.
        dropped: events counted but not kept, because of the bound.
    """

    max_events: int = 1_000_000
    task_steps: bool = True
    dropped: int = attrs.field(default=0, init=False)
    _events: list[_Event] = attrs.field(factory=list, init=False)
    _meta: list[dict[str, Any]] = attrs.field(factory=list, init=False)
    _recording: bool = attrs.field(default=False, init=False)
    # the trace clock (rule 1)
    _t0: float | None = attrs.field(default=None, init=False)
    _last: float = attrs.field(default=-1.0, init=False)
    _last_real: float = attrs.field(default=0.0, init=False)
    # processes and tracks
    _pids: int = attrs.field(default=0, init=False)
    _tids: int = attrs.field(default=0, init=False)
    _pid_of: dict[int, int] = attrs.field(factory=dict, init=False)
    _hosts: dict[Any, int] = attrs.field(factory=dict, init=False)
    _nurseries: dict[Any, int] = attrs.field(factory=dict, init=False)
    _tasks_pid: int = attrs.field(default=0, init=False)
    _tasks: dict[Task, int] = attrs.field(factory=dict, init=False)
    _kthreads: dict[Any, int] = attrs.field(factory=dict, init=False)
    _names: dict[int, str] = attrs.field(factory=dict, init=False)
    _step_tracks: dict[int, int] = attrs.field(factory=dict, init=False)
    _overflow: int = attrs.field(default=0, init=False)
    # locks: the host a lock belongs to, its (hold name, wait name, track)
    _lock_host: weakref.WeakKeyDictionary[Any, Any] = attrs.field(
        factory=weakref.WeakKeyDictionary, init=False
    )
    _locks: dict[Any, tuple[str, str, int]] = attrs.field(factory=dict, init=False)
    _holds: dict[Any, tuple[float, int]] = attrs.field(factory=dict, init=False)
    # task steps and flows
    _instrument: _StepInstrument | None = attrs.field(default=None, init=False)
    _instrumented_run: Task | None = attrs.field(default=None, init=False)
    _step_t0: dict[Task, float] = attrs.field(factory=dict, init=False)
    _flows: int = attrs.field(default=0, init=False)
    _msg_flows: dict[Any, int] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        if isinstance(self.max_events, bool) or not isinstance(self.max_events, int):
            raise TypeError(f"max_events must be an int, not {self.max_events!r}")
        if self.max_events < 0:
            raise ValueError(f"max_events must be >= 0, not {self.max_events!r}")

    def __repr__(self) -> str:
        state = "recording" if self._recording else "stopped"
        return f"<KernelTrace {state} events={len(self._events)} dropped={self.dropped}>"

    ####################################################################
    # the result
    ####################################################################

    @property
    def recording(self) -> bool:
        """Whether the recording is in progress (its block has not exited)."""
        return self._recording

    def __len__(self) -> int:
        """Events kept so far (metadata not counted)."""
        return len(self._events)

    def to_json(self) -> dict[str, Any]:
        """The trace as a Chrome trace event format object.

        Returns:
            ``{"traceEvents": [...], "displayTimeUnit": "ms", "otherData":
            {...}}``: the metadata events (process and thread names and
            sort order) first, then the recorded events in ``ts`` order.
            ``otherData`` holds ``dropped`` (events over the bound),
            ``max_events``, ``unmatched_flows`` (flow ends left out because
            the other end is not in the trace) and ``clock``.
        """
        body = sorted(self._events, key=lambda e: e[4])
        starts = {e[7] for e in body if e[0] == "s"}
        finishes = {e[7] for e in body if e[0] == "f"}
        pid_of = self._pid_of
        out: list[dict[str, Any]] = list(self._meta)
        unmatched = 0
        for ph, cat, name, tid, ts, dur, args, fid in body:
            ev: dict[str, Any] = {
                "ph": ph,
                "cat": cat,
                "name": name,
                "pid": pid_of[tid],
                "tid": tid,
                "ts": int(ts),
            }
            if ph == "X":
                ev["dur"] = int(ts + dur) - int(ts)
            elif ph == "i":
                ev["s"] = "t"
            elif ph == "s" or ph == "f":
                if fid not in starts or fid not in finishes:
                    unmatched += 1
                    continue
                ev["id"] = fid
                if ph == "f":
                    ev["bp"] = "e"
            if args:
                ev["args"] = args
            out.append(ev)
        return {
            "traceEvents": out,
            "displayTimeUnit": "ms",
            "otherData": {
                "producer": "trionet kernel trace",
                "clock": "Trio time in microseconds since the recording began, "
                "made monotonic by the real time spent at each virtual instant",
                "max_events": self.max_events,
                "dropped": self.dropped,
                "unmatched_flows": unmatched,
            },
        }

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_json` to ``path`` (the file Perfetto opens)."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_json(), f, separators=(",", ":"))

    ####################################################################
    # processes and tracks
    ####################################################################

    def add_host(self, host: Any) -> None:
        """Trace ``host`` as a process of its own (a no-op if it is already).

        Hosts created inside the recording's block are added by the kernel;
        call this for one made before the block, so its threads are named
        and placed in its process. Does nothing once the recording has ended.
        """
        if not self._recording or host in self._hosts:
            return
        pid = self._new_pid(host.name)
        self._hosts[host] = pid
        self._nurseries[host._nursery] = host
        self._lock_host[host.giant] = host
        for info in host.intr._infos.values():  # interfaces attached before
            for rec in info.records:
                if rec.serializer is not None:
                    self._lock_host.setdefault(rec.serializer, host)
        for thread in host.threads():
            self._kthread_track(host, thread)
        self._ensure_instrument()

    def _new_pid(self, name: str) -> int:
        self._pids += 1
        pid = self._pids
        self._meta.append(_metadata("process_name", pid, 0, name=name))
        self._meta.append(_metadata("process_sort_index", pid, 0, sort_index=pid))
        return pid

    def _new_track(self, pid: int, name: str, *, steps: bool = False) -> int:
        if self._tids >= MAX_TRACKS:
            if not self._overflow:
                self._overflow = self._new_track_unbounded(self._tasks_process(), "other tasks", False)
            return self._overflow
        return self._new_track_unbounded(pid, name, steps)

    def _new_track_unbounded(self, pid: int, name: str, steps: bool) -> int:
        self._tids += 1
        tid = self._tids
        if steps:
            # tid + 1 is kept for the track of its task steps, just below;
            # named when first used (_steps_track).
            self._tids += 1
            self._step_tracks[tid] = tid + 1
        self._pid_of[tid] = pid
        self._names[tid] = name
        self._name_track(pid, tid, name)
        return tid

    def _name_track(self, pid: int, tid: int, name: str) -> None:
        self._meta.append(_metadata("thread_name", pid, tid, name=name))
        self._meta.append(_metadata("thread_sort_index", pid, tid, sort_index=tid))

    def _steps_track(self, tid: int) -> int:
        steps = self._step_tracks.get(tid, tid)  # none kept (the overflow track): share
        if steps not in self._pid_of:
            pid = self._pid_of[steps] = self._pid_of[tid]
            self._name_track(pid, steps, f"{self._names[tid]} (run)")
        return steps

    def _tasks_process(self) -> int:
        if not self._tasks_pid:
            self._tasks_pid = self._new_pid(_TASKS)
        return self._tasks_pid

    def _kthread_track(self, host: Any, thread: Any) -> int:
        tid = self._kthreads.get(thread)
        if tid is None:
            if host not in self._hosts:
                self.add_host(host)  # names the host's live threads
                tid = self._kthreads.get(thread)
            if tid is None:
                tid = self._new_track(self._hosts[host], thread.name, steps=True)
                self._kthreads[thread] = tid
            if thread.task is not None:
                self._tasks[thread.task] = tid
        return tid

    def _task_track(self, task: Task) -> int:
        tid = self._tasks.get(task)
        if tid is None:
            nursery = task.parent_nursery
            host = self._nurseries.get(nursery) if nursery is not None else None
            pid = self._hosts[host] if host is not None else self._tasks_process()
            tid = self._tasks[task] = self._new_track(pid, task.name, steps=True)
        return tid

    def current_track(self) -> int:
        """The track of the calling task (made on first use)."""
        task = current_task()
        tid = self._tasks.get(task)
        return tid if tid is not None else self._task_track(task)

    def _lock(self, lock: Any) -> tuple[str, str, int]:
        entry = self._locks.get(lock)
        if entry is None:
            name = getattr(lock, "name", None)
            host = self._lock_host.get(lock)
            pid = self._hosts.get(host) if host is not None else None
            if pid is None:
                pid = self._tasks_process()
            if name is None:  # Giant has no name: there is one per host
                entry = ("hold Giant", "wait Giant", self._new_track(pid, "Giant"))
            else:
                entry = (f"hold {name}", f"wait {name}", self._new_track(pid, f"serializer {name}"))
            self._locks[lock] = entry
        return entry

    ####################################################################
    # the clock and the buffer
    ####################################################################

    def now(self) -> float:
        """The trace clock (rule 1 of the module docstring), in microseconds."""
        real = time.perf_counter()
        virtual = trio.current_time()
        if self._t0 is None:
            self._t0 = virtual
        virtual = (virtual - self._t0) * 1e6
        ts = self._last + max((real - self._last_real) * 1e6, 1.0)
        if virtual > ts:
            ts = virtual
        self._last = ts
        self._last_real = real
        return ts

    def _emit(self, event: _Event) -> None:
        if not self._recording:
            return
        if len(self._events) >= self.max_events:
            self.dropped += 1
            return
        self._events.append(event)

    def _span(self, tid: int, cat: str, name: str, t0: float, args: dict[str, Any] | None = None) -> None:
        if self._recording:
            self._emit(("X", cat, name, tid, t0, self.now() - t0, args, 0))

    ####################################################################
    # hooks: hosts, threads, locks
    ####################################################################

    def host_created(self, host: Any) -> None:
        """Hook: ``Kernel`` made ``host`` (its service threads exist, not yet running)."""
        self.add_host(host)

    def kthread_started(self, host: Any, thread: Any) -> None:
        """Hook: ``thread`` of ``host`` runs for the first time (``thread.task`` is set)."""
        self._tasks[thread.task] = self._kthread_track(host, thread)

    def serializer_created(self, serializer: Any, host: Any) -> None:
        """Hook: ``host.serializer()`` made ``serializer``: its track goes in ``host``'s process."""
        self._lock_host[serializer] = host

    def hold_begin(self, lock: Any) -> None:
        """Hook: the calling task now holds ``lock`` (a serializer, or Giant's first count)."""
        self._holds[lock] = (self.now(), self.current_track())

    def hold_end(self, lock: Any) -> None:
        """Hook: the holder releases ``lock``: its ``hold`` span, on the holder's
        track and on the lock's. A hold begun before the recording is not written."""
        begun = self._holds.pop(lock, None)
        if begun is None:
            return
        t0, tid = begun
        hold, _, lock_tid = self._lock(lock)
        dur = self.now() - t0
        self._emit(("X", "lock", hold, tid, t0, dur, None, 0))
        self._emit(("X", "lock", hold, lock_tid, t0, dur, None, 0))

    async def wait(self, lock: Any, sleep: Callable[[], Awaitable[object]]) -> None:
        """Hook: ``await sleep()`` (a lock's contended wait) with a ``wait`` span
        around it; when it returns the caller holds ``lock`` (its hold begins).
        If ``sleep`` raises (``Cancelled``), the span is written and the error
        propagates."""
        t0 = self.now()
        tid = self.current_track()
        try:
            await sleep()
        finally:
            self._span(tid, "lock", self._lock(lock)[1], t0)
        if self._recording:
            self.hold_begin(lock)

    ####################################################################
    # hooks: interrupts
    ####################################################################

    def intr(self, host: Any, thread: Any, irq: int) -> None:
        """Hook: ``sched_ithd(irq)``: an instant on the ithread's track."""
        tid = self._kthread_track(host, thread)
        self._emit(("i", "intr", f"intr {irq}", tid, self.now(), 0.0, None, 0))

    def handler_ran(self, rec: Any, t0: float) -> None:
        """Hook: an interrupt handler (``IntrCookie`` ``rec``) ran from ``t0`` until now."""
        self._span(self.current_track(), "intr", rec.name, t0)

    def chain_ran(self, host: Any, irq: int, t0: float, fast: bool) -> None:
        """Hook: the handler chain of ``irq`` ran from ``t0`` until now."""
        self._span(
            self.current_track(),
            "intr",
            f"irq{irq}: {host.intr.names(irq)}",
            t0,
            {"fast": True} if fast else None,
        )

    ####################################################################
    # hooks: message ports
    ####################################################################

    def packet_queued(self, handler: Callable[[Any], object], pkt: Any) -> tuple[Any, ...]:
        """Hook: a packet goes into a port: the "s" end of its flow, and the
        queue item to append, ``(handler, pkt, flow_id)`` (the loop calls
        ``item[0](item[1])`` either way)."""
        if not self._recording or len(self._events) >= self.max_events:
            return (handler, pkt)
        self._flows += 1
        fid = self._flows
        self._emit(("s", "packet", _handler_name(handler), self.current_track(), self.now(), 0.0, None, fid))
        return (handler, pkt, fid)

    def msg_sent(self, msg: Any) -> None:
        """Hook: ``sendmsg(msg)``: the "s" end of the message's flow."""
        if not self._recording or len(self._events) >= self.max_events:
            return
        self._flows += 1
        fid = self._msg_flows[msg] = self._flows
        self._emit(("s", "msg", _handler_name(msg.handler), self.current_track(), self.now(), 0.0, None, fid))

    async def service_batch(
        self,
        queue: Any,
        limit: int,
        dispatch: Callable[[Any], Awaitable[None]],
        rollups: list[Callable[[], object]],
    ) -> None:
        """The traced twin of one batch of ``msgport_service_loop``: the same
        items in the same order, each in a span with its flow's "f" end, then
        the rollups, all in a ``batch`` span."""
        tid = self.current_track()
        t_batch = self.now()
        n = 0
        while queue and n < limit:
            n += 1
            item = queue.popleft()
            t0 = self.now()
            if item.__class__ is tuple:
                handler = item[0]
                if len(item) == 3:
                    self._emit(("f", "packet", _handler_name(handler), tid, self.now(), 0.0, None, item[2]))
                handler(item[1])
            else:
                handler = item.handler
                fid = self._msg_flows.pop(item, 0)
                if fid:
                    self._emit(("f", "msg", _handler_name(handler), tid, self.now(), 0.0, None, fid))
                await dispatch(item)
            self._span(tid, "netisr", _handler_name(handler), t0)
        for rollup in rollups:
            rollup()
        self._span(tid, "netisr", "batch", t_batch, {"items": n})

    async def callouts(self, timers: Any, now: float) -> None:
        """Hook: ``timers.run_expired(now)`` in a ``callouts`` span."""
        t0 = self.now()
        tid = self.current_track()
        fired = timers.fired
        await timers.run_expired(now)
        self._span(tid, "callout", "callouts", t0, {"fired": timers.fired - fired})

    ####################################################################
    # task steps
    ####################################################################

    def _ensure_instrument(self) -> None:
        # One instrument per Trio run; a recording begun outside trio.run
        # installs it when the first host is made.
        if not self.task_steps or not self._recording:
            return
        try:
            root = current_root_task()
        except RuntimeError:
            return  # not in a run yet
        if root is None or root is self._instrumented_run:
            return
        self._instrument = _StepInstrument(self)
        trio.lowlevel.add_instrument(self._instrument)
        self._instrumented_run = root

    def _before_step(self, task: Task) -> None:
        if task not in self._tasks:
            nursery = task.parent_nursery
            host = self._nurseries.get(nursery) if nursery is not None else None
            if host is None:
                return  # not traced (yet)
            # A task of a host: one of its kernel threads taking its first
            # step (``thread.task`` is set during it), or another (hardclock).
            for thread in host.threads():
                if thread.task is None and thread.name == task.name:
                    self._tasks[task] = self._kthread_track(host, thread)
                    break
            else:
                self._task_track(task)
        self._step_t0[task] = self.now()

    def _after_step(self, task: Task) -> None:
        t0 = self._step_t0.pop(task, None)
        if t0 is not None:
            self._span(self._steps_track(self._tasks[task]), "sched", "run", t0)

    ####################################################################
    # start and stop
    ####################################################################

    def _start(self) -> None:
        self._recording = True
        self._last_real = time.perf_counter()
        self._ensure_instrument()

    def _stop(self) -> None:
        self._recording = False
        instrument, self._instrument = self._instrument, None
        if instrument is not None:
            with contextlib.suppress(RuntimeError, KeyError):
                trio.lowlevel.remove_instrument(instrument)
        # Unfinished business is not written (rule 3); let go of the objects.
        self._holds.clear()
        self._step_t0.clear()
        self._msg_flows.clear()
        self._tasks.clear()
        self._kthreads.clear()
        self._hosts.clear()
        self._nurseries.clear()
        self._locks.clear()


class _StepInstrument(trio.abc.Instrument):
    """Task steps of traced tasks, as ``run`` spans (``task_steps=True``)."""

    def __init__(self, trace: KernelTrace) -> None:
        self._trace = trace

    def before_task_step(self, task: Task) -> None:
        self._trace._before_step(task)

    def after_task_step(self, task: Task) -> None:
        self._trace._after_step(task)


@contextlib.contextmanager
def recording(*, max_events: int = 1_000_000, task_steps: bool = True) -> Iterator[KernelTrace]:
    """Record a kernel timeline while the block runs.

    Every host created in the block is traced (several hosts of one network
    each become a process of the trace); a host made before it is traced
    once :meth:`KernelTrace.add_host` names it. The block may enclose
    ``trio.run`` or run inside it. The trace is complete when the block
    exits; nothing that happens after is recorded, and a later recording
    starts empty.

    Args:
        max_events: events kept at most (metadata not counted); further ones
            are counted in ``otherData.dropped``. Memory is bounded by it,
            about 200 bytes an event.
        task_steps: also record every Trio task step of a traced task
            (``run`` spans, through a :class:`trio.abc.Instrument`).

    Raises:
        RuntimeError: if a recording is already in progress (one at a time).

    Example::

        with record_trace() as trace:
            trio.run(main)
        trace.write("run.json")  # open it in https://ui.perfetto.dev
    """
    global ACTIVE
    if ACTIVE is not None:
        raise RuntimeError("a kernel trace is already recording: one at a time")
    trace = KernelTrace(max_events=max_events, task_steps=task_steps)
    trace._start()
    ACTIVE = trace
    try:
        yield trace
    finally:
        ACTIVE = None
        trace._stop()
