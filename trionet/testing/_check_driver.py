"""``check_driver``: the conformance suite a driver author runs on their driver.

Usage, in the driver's own test suite (pytest-trio)::

    from trionet.testing import check_driver

    async def test_my_nic_conforms():
        report = await check_driver(lambda endpoint: MyNic(endpoint))
        assert not report.skipped

``make_driver(endpoint)`` returns a fresh, unattached driver; ``endpoint`` is
one end of an in-memory wire whose other end the suite watches (a driver
without a wire may ignore it). The suite attaches the driver to a host of its
own and checks, in order:

0. ``start``, ``intr``, ``poll`` and ``watchdog`` are plain functions, not
   ``async``: they run under the serializer and must never sleep (DragonFly's
   ``if_start``, interrupt handler, ``if_poll`` and ``if_watchdog``), and the
   stack calls ``start`` inline from ``ifq_dispatch``;
1. ``attach`` leaves the interface down and not RUNNING;
2. ``ifconfig up`` reaches ``init``, which sets RUNNING and not OACTIVE;
3. frames sent with ``ifq_dispatch`` reach ``start`` and are counted in
   ``opackets``; a LOOPBACK interface hands them back up, any other driver
   must put them on its endpoint (the far end sees them in order), and a
   frame from the far end is counted in ``ipackets`` and handed up;
4. ``SIOCSIFMTU`` and ``SIOCADDMULTI`` reach ``ioctl``;
5. OACTIVE stops ``start`` until TX completion (only if the driver offers
   ``hold_tx_completions()`` and ``release_tx_completions()``, the fault hooks
   of :class:`~trionet.drivers.vnic.Vnic`; otherwise reported as skipped);
6. ``ifconfig down`` reaches ``stop``, which clears RUNNING and OACTIVE;
7. detach while an interrupt handler is inside waits for it, and no handler
   runs afterwards (drivers with ``uses_intr``; the handler in flight is one
   the suite hooks to the driver's IRQ and serializer, which awaits inside,
   since the driver's own ``intr`` cannot);
8. throughout: every entry point (``init``, ``stop``, ``start``, ``ioctl``,
   ``intr``, ``watchdog``, ``poll``, ``set_filter``) ran with the interface
   serializer held by the calling task, and ``start`` never ran while
   OACTIVE was set.

To watch the entry points, the suite replaces them on the driver *instance*
with tracing wrappers before attaching it (so a driver with ``__slots__`` and
no ``__dict__`` cannot be checked). The host runs with invariants on. The
suite waits with ``trio.testing.wait_all_tasks_blocked``, never with sleeps,
so it runs under any clock; every loop in it is bounded.
"""

from __future__ import annotations

import errno
import inspect
from collections.abc import Callable
from typing import Any

import attrs
import trio
from trio.testing import wait_all_tasks_blocked

import trionet
from trionet import IfFlags, IfIoctl, Ifnet
from trionet.lowlevel import Driver, WireEndpoint, ifq_dispatch
from trionet.wires import memory_pair

__all__ = ["DriverCheckError", "DriverCheckReport", "check_driver"]

ENTRY_POINTS = ("init", "stop", "start", "ioctl", "intr", "watchdog", "poll", "set_filter")
#: The entry points that never sleep in DragonFly: plain functions here.
PLAIN_ENTRY_POINTS = ("start", "intr", "poll", "watchdog")

#: A local experimental EtherType (IEEE 802 "Local Experimental Ethertype 1").
CHECK_ETHERTYPE = 0x88B5


class DriverCheckError(AssertionError):
    """A driver failed a conformance check; the message says which and why."""


@attrs.frozen
class DriverCheckReport:
    """What :func:`check_driver` verified.

    Attributes:
        passed: the checks that held, in order.
        skipped: ``(check, reason)`` for checks the driver gave no way to run.
        calls: entry point name -> how many times the framework called it.
    """

    passed: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]
    calls: dict[str, int]


@attrs.define(eq=False)
class _Tracer:
    # Wraps a driver's entry points to record calls and check the rules.
    driver: Driver
    calls: dict[str, int] = attrs.field(factory=dict)
    events: list[str] = attrs.field(factory=list)
    violations: list[str] = attrs.field(factory=list)

    def install(self) -> None:
        for name in ENTRY_POINTS:
            original = getattr(self.driver, name)
            try:
                setattr(self.driver, name, self._wrap(name, original))
            except AttributeError as exc:
                raise DriverCheckError(
                    f"cannot trace {type(self.driver).__name__}.{name}: {exc} "
                    "(check_driver needs instance attributes)"
                ) from None

    def _enter(self, name: str) -> None:
        ifp: Ifnet = self.driver.ifp
        self.calls[name] = self.calls.get(name, 0) + 1
        if not ifp.serializer.is_serialized():
            self.violations.append(f"{name}() was called without the interface serializer")
        if name == "start" and ifp.flags & IfFlags.OACTIVE:
            self.violations.append("start() was called while OACTIVE was set")
        self.events.append(f"{name}>")

    def _wrap(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(original):

            async def traced_async(*args: Any, **kwargs: Any) -> Any:
                self._enter(name)
                try:
                    return await original(*args, **kwargs)
                finally:
                    self.events.append(f"<{name}")

            traced_async.__name__ = name
            return traced_async

        def traced(*args: Any, **kwargs: Any) -> Any:
            self._enter(name)
            try:
                return original(*args, **kwargs)
            finally:
                self.events.append(f"<{name}")

        traced.__name__ = name
        return traced

    def count(self, name: str) -> int:
        return self.calls.get(name, 0)


def _frame(dst: bytes, src: bytes, seq: int) -> bytes:
    payload = seq.to_bytes(4, "big") + bytes(42)
    return dst + (src or bytes(6)) + CHECK_ETHERTYPE.to_bytes(2, "big") + payload


async def check_driver(
    make_driver: Callable[[WireEndpoint], Driver], *, frames: int = 16, ncpus: int = 2
) -> DriverCheckReport:
    """Run the conformance checks (see the module docstring) on a fresh driver.

    Args:
        make_driver: returns a new, unattached driver for a wire endpoint.
        frames: how many frames the traffic checks send (bounded, >= 1).
        ncpus: CPUs of the host the driver is attached to.

    Returns:
        a :class:`DriverCheckReport`.

    Raises:
        DriverCheckError: at the first check that fails.
    """
    if not 1 <= frames <= 10_000:
        raise ValueError(f"frames must be in 1..10000, not {frames!r}")
    passed: list[str] = []
    skipped: list[tuple[str, str]] = []

    def check(name: str, ok: bool, why: str) -> None:
        if not ok:
            raise DriverCheckError(f"{name}: {why}")
        passed.append(name)

    async with trionet.open_host("check", ncpus=ncpus) as host:
        near, far = memory_pair("check")
        far_rx: list[bytes] = []
        far.set_receiver(far_rx.append)
        driver = make_driver(near)
        if not isinstance(driver, Driver):
            raise DriverCheckError(f"make_driver returned {driver!r}, not a Driver")
        sleeping = [n for n in PLAIN_ENTRY_POINTS if inspect.iscoroutinefunction(getattr(driver, n))]
        check(
            "start, intr, poll and watchdog are plain functions",
            not sleeping,
            f"{', '.join(f'{n}()' for n in sleeping)} must be plain functions, not async: they run "
            "under the serializer and may not sleep (DragonFly's if_start, interrupt handler, "
            "if_poll and if_watchdog); the stack calls start() inline from ifq_dispatch",
        )
        tracer = _Tracer(driver)
        tracer.install()
        received: list[bytes] = []
        host.netisr_register(CHECK_ETHERTYPE, lambda m: received.append(bytes(m.data)))

        ifp = await host.if_attach(driver)
        check(
            "attach leaves the interface down",
            not ifp.flags & (IfFlags.UP | IfFlags.RUNNING),
            f"flags after attach are {ifp.flags!r}",
        )

        await host.ifup(ifp)
        await wait_all_tasks_blocked()
        check("init is called on up", tracer.count("init") >= 1, "ifconfig up did not call init()")
        check(
            "init sets RUNNING and clears OACTIVE",
            ifp.flags & (IfFlags.RUNNING | IfFlags.OACTIVE) == IfFlags.RUNNING,
            f"flags after init are {ifp.flags!r}",
        )

        # Traffic out: pace by the send queue so nothing is refused.
        dst = b"\xff" * 6
        sent = 0
        for _ in range(frames * 100):
            if sent == frames:
                break
            if len(ifp.snd) >= ifp.snd.maxlen:
                await wait_all_tasks_blocked()
                continue
            ifq_dispatch(ifp, _frame(dst, ifp.lladdr, sent))
            sent += 1
        await wait_all_tasks_blocked()
        check("ifq_dispatch reaches start", tracer.count("start") >= 1, "start() never ran")
        stats = ifp.statistics()
        check(
            "every sent frame is counted in opackets",
            stats.opackets + stats.oerrors == sent and stats.oerrors == 0,
            f"sent {sent}, opackets {stats.opackets}, oerrors {stats.oerrors}",
        )
        if ifp.flags & IfFlags.LOOPBACK:
            check(
                "loopback output comes back as input",
                len(received) == sent,
                f"sent {sent}, received {len(received)}",
            )
        else:
            check(
                "frames reach the wire in order",
                [f[14:18] for f in far_rx] == [i.to_bytes(4, "big") for i in range(sent)],
                f"the far end saw {len(far_rx)} of {sent} frames, or out of order",
            )
            before = ifp.statistics().ipackets
            far.send(_frame(ifp.lladdr or dst, b"\x02" + bytes(5), 7))
            await wait_all_tasks_blocked()
            check(
                "a frame from the wire is counted and handed up",
                ifp.statistics().ipackets == before + 1 and received[-1:] == [
                    (7).to_bytes(4, "big") + bytes(42)
                ],
                f"ipackets {before} -> {ifp.statistics().ipackets}",
            )

        # ioctls reach the driver.
        calls = tracer.count("ioctl")
        await host.ifioctl(ifp, IfIoctl.SIOCSIFMTU, min(ifp.mtu, driver.max_mtu))
        await host.ifioctl(ifp, IfIoctl.SIOCADDMULTI, b"\x01\x00\x5e\x00\x00\x01")
        check(
            "SIOCSIFMTU and SIOCADDMULTI reach ioctl",
            tracer.count("ioctl") == calls + 2,
            f"ioctl() ran {tracer.count('ioctl') - calls} times for 2 ioctls",
        )

        # OACTIVE stops start until TX completion.
        hold = getattr(driver, "hold_tx_completions", None)
        release = getattr(driver, "release_tx_completions", None)
        if hold is None or release is None:
            skipped.append(
                (
                    "OACTIVE stops start until TX completion",
                    "the driver has no hold_tx_completions()/release_tx_completions()",
                )
            )
        else:
            hold()
            for seq in range(10_000):
                if ifp.flags & IfFlags.OACTIVE:
                    break
                try:
                    ifq_dispatch(ifp, _frame(dst, ifp.lladdr, seq))
                except trionet.NetError as exc:
                    if exc.errno != errno.ENOBUFS:
                        raise
                await wait_all_tasks_blocked()
            check(
                "a full TX ring sets OACTIVE",
                bool(ifp.flags & IfFlags.OACTIVE),
                "OACTIVE never came on with TX completions held",
            )
            starts = tracer.count("start")
            for seq in range(3):
                try:
                    ifq_dispatch(ifp, _frame(dst, ifp.lladdr, seq))
                except trionet.NetError as exc:
                    if exc.errno != errno.ENOBUFS:
                        raise
                await wait_all_tasks_blocked()
            check(
                "start is not called while OACTIVE",
                tracer.count("start") == starts,
                f"start() ran {tracer.count('start') - starts} times while OACTIVE",
            )
            release()
            await wait_all_tasks_blocked()
            check(
                "TX completion clears OACTIVE and drains the queue",
                not ifp.flags & IfFlags.OACTIVE and ifp.snd.is_empty(),
                f"flags {ifp.flags!r}, {len(ifp.snd)} frames still queued",
            )

        await host.ifdown(ifp)
        await wait_all_tasks_blocked()
        check("stop is called on down", tracer.count("stop") >= 1, "ifconfig down did not call stop()")
        check(
            "stop clears RUNNING and OACTIVE",
            not ifp.flags & (IfFlags.RUNNING | IfFlags.OACTIVE),
            f"flags after stop are {ifp.flags!r}",
        )

        if not driver.uses_intr or ifp.irq is None:
            skipped.append(("detach waits for an interrupt in flight", "the driver has no interrupt"))
            await host.if_detach(ifp)
        else:
            await host.ifup(ifp)
            await wait_all_tasks_blocked()
            irq = ifp.irq
            intrs = tracer.count("intr")
            gate, inside = trio.Event(), trio.Event()

            async def in_flight() -> None:
                tracer.events.append("gated>")
                inside.set()
                await gate.wait()
                tracer.events.append("<gated")

            cookie = host.intr.register(irq, in_flight, name="check", serializer=ifp.serializer)
            host.intr.sched_ithd(irq)
            with trio.move_on_after(60) as scope:
                await inside.wait()
            check(
                "an interrupt reaches intr",
                not scope.cancelled_caught and tracer.count("intr") > intrs,
                "sched_ithd did not run intr() (is the handler enabled after init?)",
            )
            detached = trio.Event()

            async def detach() -> None:
                await host.if_detach(ifp)
                detached.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(detach)
                await wait_all_tasks_blocked()
                check(
                    "detach waits for the handler in flight",
                    not detached.is_set(),
                    "if_detach returned while an interrupt handler held the serializer",
                )
                gate.set()
            host.intr.unregister(cookie)
            events = tracer.events
            last_intr_exit = len(events) - 1 - events[::-1].index("<gated")
            last_stop = len(events) - 1 - events[::-1].index("stop>")
            check(
                "stop runs after the handler in flight has left",
                last_stop > last_intr_exit,
                f"event order: {events[-8:]}",
            )
            intrs = tracer.count("intr")
            host.intr.sched_ithd(irq)
            await wait_all_tasks_blocked()
            check(
                "no handler runs after detach",
                tracer.count("intr") == intrs and not ifp.attached,
                "intr() ran after if_detach returned",
            )

        check(
            "every entry point ran serialized",
            not tracer.violations,
            "; ".join(tracer.violations[:5]),
        )
    return DriverCheckReport(tuple(passed), tuple(skipped), dict(tracer.calls))
