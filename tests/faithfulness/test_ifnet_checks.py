"""Faithfulness checks 1, 6, 7, 8, 9, 10, 12, 13, 14, 15, 20, 21 and 24 of
reference/dragonfly.md section 9: interfaces, drivers and the serializer
that covers the whole interrupt path.

The driver under test is ``vnic`` (or a subclass that records what happens);
its far end is an in-memory endpoint the test drives.

DragonFly: ``sys/net/if.c``, ``sys/net/if_ethersubr.c``, ``sys/kern/kern_poll.c``
and ``sys/dev/netif/em/if_em.c`` v1.80 (sections 2, 3, 6 and 7 of the
reference).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
import trio
import trio.testing
from trio.lowlevel import current_task
from trio.testing import wait_all_tasks_blocked

import trionet
from trionet import Host, IfFlags, IfIoctl, Ifnet
from trionet.drivers.vnic import Vnic
from trionet.lowlevel import Mbuf, PollCmd, ifq_dispatch
from trionet.wires import MemoryEndpoint, memory_pair

PROTO = 0x88B5
BCAST = b"\xff" * 6


def frame(dst: bytes, seq: int, src: bytes = b"\x02\x00\x00\x00\x00\x99") -> bytes:
    return dst + src + PROTO.to_bytes(2, "big") + seq.to_bytes(4, "big") + bytes(42)


def seq_of(m: Mbuf) -> int:
    return int.from_bytes(m.data[:4], "big")


class ProbeVnic(Vnic):
    """A vnic whose entry points, and its timer, pass through an occupancy
    probe and record who called them. The async ones (init, stop, ioctl,
    the timer) take a seeded random number of checkpoints inside, which
    widens the windows in which another holder could slip in; the plain
    ones (start, intr, poll, watchdog) cannot yield at all."""

    def __init__(self, endpoint: MemoryEndpoint, rng: random.Random | None = None, **kw: object):
        super().__init__(endpoint, **kw)  # type: ignore[arg-type]
        self.rng = rng
        self.inside: list[tuple[str, object]] = []
        self.overlaps: list[tuple[str, ...]] = []
        self.unserialized: list[str] = []
        self.calls: dict[str, int] = {}
        self.callers: dict[str, list[str]] = {}
        # For each call, the entry points its task was already inside.
        self.within: dict[str, list[tuple[str, ...]]] = {}

    def _enter_probe(self, name: str) -> tuple[str, object]:
        if not self.ifp.serializer.is_serialized():
            self.unserialized.append(name)
        self.calls[name] = self.calls.get(name, 0) + 1
        self.callers.setdefault(name, []).append(current_task().name)
        # Nested calls by one task (ioctl -> init) are one holder; two
        # different tasks inside at once is an overlap.
        me = current_task()
        self.within.setdefault(name, []).append(tuple(n for n, t in self.inside if t is me))
        entry = (name, me)
        self.inside.append(entry)
        if any(task is not me for _, task in self.inside):
            self.overlaps.append(tuple(n for n, _ in self.inside))
        return entry

    def _probe_sync(self, name: str, body: Callable[[], object]) -> object:
        entry = self._enter_probe(name)
        try:
            return body()
        finally:
            self.inside.remove(entry)

    async def _probe(self, name: str, body: Callable[[], object]) -> object:
        entry = self._enter_probe(name)
        try:
            if self.rng is not None:
                for _ in range(self.rng.randrange(3)):
                    await trio.lowlevel.checkpoint()
            result = body()
            if hasattr(result, "__await__"):
                result = await result  # type: ignore[misc]
            if self.rng is not None:
                for _ in range(self.rng.randrange(3)):
                    await trio.lowlevel.checkpoint()
            return result
        finally:
            self.inside.remove(entry)

    async def init(self) -> None:
        await self._probe("init", super().init)

    async def stop(self) -> None:
        await self._probe("stop", super().stop)

    def start(self) -> None:
        self._probe_sync("start", super().start)

    def intr(self) -> None:
        self._probe_sync("intr", super().intr)

    async def ioctl(self, cmd: IfIoctl, arg: object) -> None:
        await self._probe("ioctl", lambda: super(ProbeVnic, self).ioctl(cmd, arg))

    def watchdog(self) -> None:
        self._probe_sync("watchdog", super().watchdog)

    def poll(self, cmd: PollCmd, count: int) -> None:
        self._probe_sync(f"poll {cmd.name}", lambda: super(ProbeVnic, self).poll(cmd, count))

    async def _tick(self) -> None:
        # The driver timer enters the serializer itself (check 15).
        ifp = self.ifp
        async with ifp.serializer:
            await self._probe("timer", lambda: None)
        await super()._tick()


class GatedInterrupt:
    """A second handler on the interface's IRQ and serializer that awaits a
    gate inside: while it waits, "the interrupt" holds the serializer (a
    driver's own ``intr`` is a plain function and cannot wait)."""

    def __init__(self, host: Host, ifp: Ifnet) -> None:
        assert ifp.irq is not None
        self.host, self.ifp = host, ifp
        self.entered = trio.Event()
        self.gate = trio.Event()
        self.cookie = host.intr.register(ifp.irq, self._handler, name="gated", serializer=ifp.serializer)

    async def _handler(self) -> None:
        self.entered.set()
        await self.gate.wait()

    async def hold(self) -> None:
        """Raise the IRQ and return once the handler holds the serializer."""
        assert self.ifp.irq is not None
        self.host.intr.sched_ithd(self.ifp.irq)
        await self.entered.wait()

    def release(self) -> None:
        self.gate.set()
        self.host.intr.unregister(self.cookie)


async def pair(
    host: Host, peer_rx: list[bytes] | None = None, **kw: object
) -> tuple[Ifnet, ProbeVnic, MemoryEndpoint]:
    """An up ProbeVnic on ``host`` and the far end of its wire."""
    a, b = memory_pair()
    if peer_rx is not None:
        b.set_receiver(peer_rx.append)
    driver = ProbeVnic(a, **kw)
    ifp = await host.if_attach(driver)
    await host.ifup(ifp)
    return ifp, driver, b


####################################################################
# Check 1 (and 15): exclusion on one ifnet
####################################################################


@pytest.mark.parametrize("seed", range(6))
async def test_entry_points_handler_and_timer_never_overlap(
    seed: int, autojump_clock: trio.testing.MockClock
) -> None:
    """Check 1 and 15: under randomized checkpoints and many tasks (senders,
    the far end, ioctls, a held TX engine that triggers the watchdog, the
    1 Hz driver timer), the interrupt handler, start, ioctl, init, stop, the
    watchdog and the timer callout are never inside at the same time, and
    each holds the interface serializer."""
    rng = random.Random(seed)
    async with trionet.open_host("h", ncpus=2) as host:
        peer_rx: list[bytes] = []
        ifp, drv, far = await pair(host, peer_rx, rng=rng, tx_ring=8)
        host.netisr_register(PROTO, lambda m: None)

        async def sender(n: int) -> None:
            for i in range(n):
                try:
                    ifq_dispatch(ifp, frame(BCAST, i))
                except trionet.NetError:
                    pass
                await trio.sleep(rng.random() * 0.01)

        async def far_end(n: int) -> None:
            for i in range(n):
                far.send(frame(ifp.lladdr, i))
                await trio.sleep(rng.random() * 0.01)

        async def ioctls(n: int) -> None:
            group = b"\x01\x00\x5e\x00\x00\x07"
            for _ in range(n):
                choice = rng.randrange(4)
                if choice == 0:
                    await host.ifioctl(ifp, IfIoctl.SIOCADDMULTI, group)
                    await host.ifioctl(ifp, IfIoctl.SIOCDELMULTI, group)
                elif choice == 1:
                    await host.ifpromisc(ifp, True)
                    await host.ifpromisc(ifp, False)
                elif choice == 2:
                    await host.ifioctl(ifp, IfIoctl.SIOCSIFMTU, rng.choice([1400, 1500]))
                else:
                    await host.ifdown(ifp)
                    await host.ifup(ifp)
                await trio.sleep(rng.random() * 0.05)

        async def hang_tx() -> None:
            # A TX engine that stops for longer than the watchdog allows.
            await trio.sleep(0.5)
            drv.hold_tx_completions()
            await trio.sleep(7)
            drv.release_tx_completions()

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(sender, 60)
            nursery.start_soon(far_end, 100)
            nursery.start_soon(ioctls, 20)
            nursery.start_soon(hang_tx)
        await trio.sleep(3)

        assert drv.overlaps == []
        assert drv.unserialized == []
        for name in ("init", "stop", "start", "intr", "ioctl", "timer"):
            assert drv.calls.get(name, 0) > 0, name
        # The timer is a softclock callout that took the serializer itself.
        assert set(drv.callers["timer"]) == {f"softclock {ifp.cpuid}"}


####################################################################
# Check 6: detach waits for an in-flight handler
####################################################################


async def test_detach_waits_for_handler_in_flight() -> None:
    """Check 6: a handler that awaits inside holds the serializer; detach's
    enter returns only after it exits; afterwards no handler runs and the
    interrupt record is gone (the IRQ is stray)."""
    async with trionet.open_host("h") as host:
        ifp, drv, far = await pair(host)
        irq = ifp.irq
        assert irq is not None
        gated = GatedInterrupt(host, ifp)
        await gated.hold()
        done = trio.Event()
        order: list[str] = []

        async def detach() -> None:
            await host.if_detach(ifp)
            order.append("detached")
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(detach)
            await wait_all_tasks_blocked()
            assert not done.is_set()
            assert drv.calls.get("stop", 0) == 0  # detach's stop waits too
            order.append("handler released")
            gated.release()
        assert order == ["handler released", "detached"]
        assert drv.calls["stop"] == 1
        intrs = drv.calls["intr"]
        assert host.intr.names(irq) == f"irq{irq}"  # no handler left
        host.intr.sched_ithd(irq)
        far.send(frame(ifp.lladdr, 2))
        await wait_all_tasks_blocked()
        assert drv.calls["intr"] == intrs
        assert host.intr.stray(irq) == 1


####################################################################
# Check 7: if_down syncs the stack
####################################################################


async def test_if_down_returns_after_queued_packets_are_processed() -> None:
    """Check 7: packets that refer to the ifp and sit in the netisr queues are
    all handled before ``if_down`` (ifconfig down) returns; the same holds for
    ``if_detach``."""
    async with trionet.open_host("h", ncpus=2) as host:
        host.sysctl("net.netisr.batch", 1)  # one packet per batch: many yields
        seen: list[int] = []
        host.netisr_register(PROTO, lambda m: seen.append(seq_of(m)), lambda m: seq_of(m))
        ifp, drv, far = await pair(host)
        for i in range(100):
            ifp.input(frame(ifp.lladdr, i))
        assert seen == []
        await host.ifdown(ifp)
        assert sorted(seen) == list(range(100))

        for i in range(100, 150):
            ifp.input(frame(ifp.lladdr, i))
        await host.if_detach(ifp)
        assert sorted(seen) == list(range(150))


####################################################################
# Check 8: OACTIVE stops if_start
####################################################################


@pytest.mark.parametrize("intr_fast", [False, True], ids=["ithread", "fast"])
async def test_oactive_stops_start_until_tx_completion(intr_fast: bool) -> None:
    """Check 8: a full TX ring sets OACTIVE; further ifq_dispatch calls
    enqueue but do not call start; TX completion clears OACTIVE and the
    interrupt path's if_devstart drains the queue (in the ithread, or, for a
    FAST interrupt, in the task that raised the TX completion)."""
    async with trionet.open_host("h") as host:
        peer_rx: list[bytes] = []
        ifp, drv, far = await pair(host, peer_rx, tx_ring=4, sndq_maxlen=20, intr_fast=intr_fast)
        drv.hold_tx_completions()
        for i in range(4):
            ifq_dispatch(ifp, frame(BCAST, i))
        await wait_all_tasks_blocked()
        assert drv.statistics().tx_free == 0
        assert not ifp.flags & IfFlags.OACTIVE  # the ring filled exactly
        ifq_dispatch(ifp, frame(BCAST, 4))
        await wait_all_tasks_blocked()
        assert ifp.flags & IfFlags.OACTIVE
        starts = drv.calls["start"]
        for i in range(5, 12):
            ifq_dispatch(ifp, frame(BCAST, i))
            await wait_all_tasks_blocked()
        assert drv.calls["start"] == starts
        assert len(ifp.snd) == 8
        assert peer_rx == []

        drv.release_tx_completions()
        await wait_all_tasks_blocked()
        assert not ifp.flags & IfFlags.OACTIVE
        assert ifp.snd.is_empty()
        assert [int.from_bytes(f[14:18], "big") for f in peer_rx] == list(range(12))
        assert ifp.statistics().opackets == 12
        # The restart came from the interrupt handler (if_devstart)...
        assert ("intr",) in drv.within["start"][starts:]
        # ...run by the ithread, or at once by the releasing task.
        runner = current_task().name if intr_fast else f"ithread {ifp.irq}"
        assert set(drv.callers["start"][starts:]) == {runner}
        assert host.intr.fast(ifp.irq) > 0 if intr_fast else host.intr.fast(ifp.irq) == 0


####################################################################
# Check 9: start coalescing
####################################################################


async def test_concurrent_dispatches_coalesce_into_one_start() -> None:
    """Check 9: many ifq_dispatch calls while ``started`` is set cause one
    if_start message in flight and one start at a time; ``started`` returns
    to False once the queue is empty, and when OACTIVE blocks.

    With the serializer free, each dispatch runs start inline and releases
    the interlock at once; the coalescing shows while the serializer is busy
    (the interrupt holds it), and always with ``ifq_dispatch_schedonly``."""
    async with trionet.open_host("h", ncpus=2) as host:
        ifp, drv, far = await pair(host, tx_ring=256, sndq_maxlen=200)
        port = host.port("ifnet", ifp.cpuid)
        before = port.statistics().messages
        for i in range(10):
            ifq_dispatch(ifp, frame(BCAST, i))
            assert not ifp.snd.started
        assert drv.calls["start"] == 10 and port.statistics().messages == before
        assert set(drv.callers["start"]) == {current_task().name}

        gated = GatedInterrupt(host, ifp)
        await gated.hold()
        starts = drv.calls["start"]
        for i in range(100):
            ifq_dispatch(ifp, frame(BCAST, i))
        assert ifp.snd.started
        assert port.statistics().messages == before + 1
        gated.release()
        await wait_all_tasks_blocked()
        assert drv.overlaps == []
        assert drv.calls["start"] == starts + 1
        assert not ifp.snd.started
        assert ifp.statistics().opackets == 110

        host.sysctl("net.link.generic.ifq_dispatch_schedonly", 1)
        starts = drv.calls["start"]
        for i in range(100):
            ifq_dispatch(ifp, frame(BCAST, i))
        assert ifp.snd.started
        assert port.statistics().messages == before + 2
        await wait_all_tasks_blocked()
        assert drv.calls["start"] == starts + 1
        assert not ifp.snd.started

        # Many tasks at once.
        async def burst(base: int) -> None:
            for i in range(20):
                ifq_dispatch(ifp, frame(BCAST, base + i))
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            for t in range(5):
                nursery.start_soon(burst, 1000 * t)
        await wait_all_tasks_blocked()
        assert drv.overlaps == []
        assert not ifp.snd.started
        assert ifp.statistics().opackets == 310

        # OACTIVE blocks: the interlock is released, not kept.
        host.sysctl("net.link.generic.ifq_dispatch_schedonly", 0)
        drv.hold_tx_completions()
        for i in range(260):
            if len(ifp.snd) < 200:
                ifq_dispatch(ifp, frame(BCAST, i))
            await wait_all_tasks_blocked()
        assert ifp.flags & IfFlags.OACTIVE
        assert not ifp.snd.started
        drv.release_tx_completions()


####################################################################
# Check 10: contention -> schedule, not block
####################################################################


@pytest.mark.parametrize("schedonly", [0, 1])
async def test_busy_serializer_schedules_start_on_ifnet_thread(schedonly: int) -> None:
    """Check 10: while the interrupt handler holds the serializer,
    ifq_dispatch returns at once (it is a plain function: it cannot wait)
    and start later runs on ``ifnet {ifp.cpuid}``; with the serializer free
    it runs start inline, in the sending task, unless
    ``net.link.generic.ifq_dispatch_schedonly`` is 1."""
    async with trionet.open_host("h", ncpus=2) as host:
        host.sysctl("net.link.generic.ifq_dispatch_schedonly", schedonly)
        peer_rx: list[bytes] = []
        ifp, drv, far = await pair(host, peer_rx)
        gated = GatedInterrupt(host, ifp)
        await gated.hold()
        starts = drv.calls.get("start", 0)
        ifq_dispatch(ifp, frame(BCAST, 7))
        await wait_all_tasks_blocked()
        assert drv.calls.get("start", 0) == starts  # the ifnet thread waits
        assert ifp.serializer.statistics().sleep_cnt >= 1
        gated.release()
        await wait_all_tasks_blocked()
        assert drv.callers["start"][starts:] == [f"ifnet {ifp.cpuid}"]
        assert len(peer_rx) == 1

        ifq_dispatch(ifp, frame(BCAST, 8))  # the serializer is free now
        await wait_all_tasks_blocked()
        expected = f"ifnet {ifp.cpuid}" if schedonly else current_task().name
        assert drv.callers["start"][starts + 1 :] == [expected]
        assert len(peer_rx) == 2


####################################################################
# Check 12: ioctl serialization and IFF_CANTCHANGE
####################################################################


async def test_ioctls_reach_driver_serialized_and_cantchange_bits_stay() -> None:
    """Check 12: SIOCSIFFLAGS, SIOCSIFMTU and SIOCADDMULTI reach the driver
    with the serializer held (the driver asserts it), and SIOCSIFFLAGS cannot
    change RUNNING, OACTIVE or the other IFF_CANTCHANGE bits."""
    async with trionet.open_host("h") as host:
        ifp, drv, far = await pair(host)
        calls = drv.calls["ioctl"]
        await host.ifioctl(ifp, IfIoctl.SIOCSIFMTU, 1400)
        await host.ifioctl(ifp, IfIoctl.SIOCADDMULTI, b"\x01\x00\x5e\x00\x00\x01")
        await host.ifioctl(ifp, IfIoctl.SIOCSIFFLAGS, ifp.flags)
        assert drv.calls["ioctl"] == calls + 3
        assert drv.unserialized == []
        assert ifp.mtu == 1400

        before = ifp.flags
        assert before & IfFlags.RUNNING
        await host.ifioctl(ifp, IfIoctl.SIOCSIFFLAGS, IfFlags.UP | IfFlags.OACTIVE)
        assert ifp.flags == before  # RUNNING kept, OACTIVE not set, BROADCAST... kept
        assert trionet.lowlevel.IFF_CANTCHANGE & IfFlags.RUNNING
        assert trionet.lowlevel.IFF_CANTCHANGE & IfFlags.OACTIVE


####################################################################
# Check 13: flag transitions, purge on down, reference counts
####################################################################


async def test_up_down_edges_purge_and_refcounted_promisc_allmulti() -> None:
    """Check 13: up calls init which sets RUNNING; down purges if_snd and stop
    clears RUNNING|OACTIVE; PROMISC and ALLMULTI follow reference counts and
    the driver hears only the edges."""
    async with trionet.open_host("h") as host:
        a, far = memory_pair()
        drv = ProbeVnic(a, tx_ring=2, sndq_maxlen=10)
        ifp = await host.if_attach(drv)
        assert not ifp.flags & IfFlags.RUNNING
        await host.ifup(ifp)
        assert ifp.flags & (IfFlags.UP | IfFlags.RUNNING) == IfFlags.UP | IfFlags.RUNNING
        drv.hold_tx_completions()
        for i in range(8):
            ifq_dispatch(ifp, frame(BCAST, i))
            await wait_all_tasks_blocked()
        assert ifp.flags & IfFlags.OACTIVE
        assert len(ifp.snd) == 6  # two frames went into the two descriptors
        await host.ifdown(ifp)
        assert ifp.snd.is_empty()
        assert ifp.snd.statistics().purged == 6
        assert not ifp.flags & (IfFlags.UP | IfFlags.RUNNING | IfFlags.OACTIVE)

        await host.ifup(ifp)
        calls = drv.calls["ioctl"]
        await host.ifpromisc(ifp, True)
        await host.ifpromisc(ifp, True)
        assert ifp.flags & IfFlags.PROMISC and ifp.pcount == 2
        await host.ifpromisc(ifp, False)
        assert ifp.flags & IfFlags.PROMISC
        await host.ifpromisc(ifp, False)
        assert not ifp.flags & IfFlags.PROMISC
        assert drv.calls["ioctl"] == calls + 2  # the two edges only
        with pytest.raises(trionet.NetError):
            await host.ifpromisc(ifp, False)

        await host.if_allmulti(ifp, True)
        await host.if_allmulti(ifp, True)
        await host.if_allmulti(ifp, False)
        assert ifp.flags & IfFlags.ALLMULTI
        await host.if_allmulti(ifp, False)
        assert not ifp.flags & IfFlags.ALLMULTI
        assert drv.calls["ioctl"] == calls + 4


async def test_promisc_and_multicast_program_the_receive_filter() -> None:
    """Check 13 (effect): the vnic's filter follows PROMISC and the group list."""
    async with trionet.open_host("h") as host:
        seen: list[int] = []
        host.netisr_register(PROTO, lambda m: seen.append(seq_of(m)))
        ifp, drv, far = await pair(host)
        other = b"\x02\x00\x00\x00\x00\x42"
        group = b"\x01\x00\x5e\x00\x00\x09"
        far.send(frame(other, 1))
        far.send(frame(group, 2))
        await wait_all_tasks_blocked()
        assert seen == [] and drv.statistics().rx_filtered == 2
        await host.ifioctl(ifp, IfIoctl.SIOCADDMULTI, group)
        far.send(frame(group, 3))
        await host.ifpromisc(ifp, True)
        far.send(frame(other, 4))  # reaches the stack, which drops it
        await wait_all_tasks_blocked()
        assert seen == [3]
        assert ifp.statistics().inotforus == 1
        assert ifp.statistics().imcasts == 1


####################################################################
# Check 14: the watchdog
####################################################################


async def test_lost_tx_completion_reaches_watchdog_and_reinit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Check 14: a TX completion that never comes lets ifp.timer run out;
    the watchdog (under try_enter) counts an output error and re-inits,
    after which the interface sends again."""
    async with trionet.open_host("h") as host:
        peer_rx: list[bytes] = []
        ifp, drv, far = await pair(host, peer_rx, tx_ring=4)
        drv.hold_tx_completions()
        t0 = trio.current_time()
        ifq_dispatch(ifp, frame(BCAST, 0))
        await wait_all_tasks_blocked()
        assert ifp.timer == 5
        resets = drv.statistics().resets
        while drv.calls.get("watchdog", 0) == 0:
            await trio.sleep(0.25)
            assert trio.current_time() - t0 < 10
        assert 4.0 <= trio.current_time() - t0 <= 6.0
        stats = ifp.statistics()
        # One for the timeout, one for the frame the reset discarded.
        assert stats.oerrors == 2
        assert drv.statistics().resets == resets + 1  # the re-init's reset
        assert ifp.flags & IfFlags.RUNNING
        ifq_dispatch(ifp, frame(BCAST, 1))
        await wait_all_tasks_blocked()
        assert [int.from_bytes(f[14:18], "big") for f in peer_rx] == [1]
        assert ifp.timer == 0


async def test_busy_watchdog_is_retried_one_second_later(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Check 14: when the serializer is busy at the second ifp.timer reaches
    0, the timer is put back and the watchdog runs one second later."""
    async with trionet.open_host("h") as host:
        ifp, drv, far = await pair(host)
        async with ifp.serializer:
            ifp.timer = 1
            busy = host.watchdog_busy
            while host.watchdog_busy == busy:
                await trio.sleep(0.001)
            failed_at = trio.current_time()
            assert ifp.timer == 1
            assert drv.calls.get("watchdog", 0) == 0
        ran_at: list[float] = []
        while not drv.calls.get("watchdog"):
            await trio.sleep(0.001)
        ran_at.append(trio.current_time())
        assert ran_at[0] - failed_at == pytest.approx(1.0, abs=0.002)


####################################################################
# Check 20: interrupt enable/disable order
####################################################################


class OrderVnic(Vnic):
    """Records, at each hardware mask change, whether the serializer's
    handler was enabled at that moment."""

    def __init__(self, endpoint: MemoryEndpoint) -> None:
        super().__init__(endpoint)
        self.events: list[tuple[str, bool]] = []

    def intr_mask(self) -> None:
        self.events.append(("mask", self.ifp.serializer.handler_enabled))
        super().intr_mask()

    def intr_unmask(self) -> None:
        self.events.append(("unmask", self.ifp.serializer.handler_enabled))
        super().intr_unmask()


async def test_handler_enabled_before_unmask_and_disabled_after_mask() -> None:
    """Check 20: enable_intr runs handler_enable before the hardware unmask;
    disable_intr masks the hardware before handler_disable."""
    async with trionet.open_host("h") as host:
        a, far = memory_pair()
        drv = OrderVnic(a)
        ifp = await host.if_attach(drv)
        await host.ifup(ifp)
        await host.ifdown(ifp)
        assert ("unmask", True) in drv.events and ("mask", True) in drv.events
        assert ("unmask", False) not in drv.events
        # Every mask after the handler was first enabled saw it still enabled.
        first_unmask = drv.events.index(("unmask", True))
        assert all(enabled for what, enabled in drv.events[first_unmask:] if what == "mask")
        assert not ifp.serializer.handler_enabled


####################################################################
# Check 21: polling
####################################################################


async def test_polling_masks_interrupt_skips_busy_and_restores(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Check 21: setting POLLING calls poll(REGISTER) with the serializer held
    and leaves the interrupt masked; frames then arrive by polling with no
    interrupt handler run; a busy serializer makes the clock skip the poll;
    clearing POLLING restores interrupts."""
    async with trionet.open_host("h") as host:
        seen: list[int] = []
        host.netisr_register(PROTO, lambda m: seen.append(seq_of(m)))
        ifp, drv, far = await pair(host)
        await host.ifioctl(ifp, IfIoctl.SIOCSIFFLAGS, ifp.flags | IfFlags.POLLING)
        assert ifp.flags & IfFlags.POLLING
        assert drv.calls["poll POLL_REGISTER"] == 1
        assert drv.unserialized == []
        assert drv.statistics().intr_masked and not ifp.serializer.handler_enabled
        intrs = drv.calls.get("intr", 0)
        for i in range(10):
            far.send(frame(ifp.lladdr, i))
        await trio.sleep(0.01)
        assert seen == list(range(10))
        assert drv.calls.get("intr", 0) == intrs
        assert drv.calls.get("poll POLL_ONLY", 0) > 0

        (ctx,) = host.poll_statistics()
        async with ifp.serializer:
            polls = sum(v for k, v in drv.calls.items() if k.startswith("poll POLL_"))
            far.send(frame(ifp.lladdr, 10))
            await trio.sleep(0.01)  # 20 ticks at 2000 Hz
            assert sum(v for k, v in drv.calls.items() if k.startswith("poll POLL_")) == polls
        (ctx2,) = host.poll_statistics()
        assert ctx2.busy_skips >= ctx.busy_skips + 15
        await trio.sleep(0.01)
        assert seen[-1] == 10

        await host.ifioctl(ifp, IfIoctl.SIOCSIFFLAGS, ifp.flags & ~IfFlags.POLLING)
        assert drv.calls["poll POLL_DEREGISTER"] == 1
        assert not drv.statistics().intr_masked and ifp.serializer.handler_enabled
        far.send(frame(ifp.lladdr, 11))
        await wait_all_tasks_blocked()
        assert seen[-1] == 11
        assert drv.calls["intr"] > intrs
        assert host.poll_statistics()[0].interfaces == ()


####################################################################
# Check 24: input under the serializer is safe
####################################################################


async def test_echo_from_input_under_serializer_never_deadlocks() -> None:
    """Check 24: the driver calls ifp.input with its serializer held; a
    protocol that transmits straight back on the same ifnet does so from its
    own thread, so nothing deadlocks and every frame is echoed."""
    async with trionet.open_host("h", ncpus=2) as host:
        peer_rx: list[bytes] = []
        ifp, drv, far = await pair(host, peer_rx)

        def echo(m: Mbuf) -> None:
            ifq_dispatch(m.rcvif, m.src + m.rcvif.lladdr + PROTO.to_bytes(2, "big") + bytes(m.data))

        host.netisr_register(PROTO, echo)
        with trio.fail_after(10):
            for i in range(200):
                far.send(frame(ifp.lladdr, i))
                if i % 50 == 49:
                    await wait_all_tasks_blocked()
            await wait_all_tasks_blocked()
        assert sorted(int.from_bytes(f[14:18], "big") for f in peer_rx) == list(range(200))
        assert drv.overlaps == []


async def test_polling_hands_packets_for_its_own_netisr_up_directly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Check 21 (polling in netisr context): the poll runs on ``netisr
    {cpu}``; a packet whose flow hashes to that same thread is handled right
    after the poll (direct dispatch, counted ``direct``), not queued again,
    and in order; one for another thread is queued to it as usual."""
    async with trionet.open_host("h", ncpus=2) as host:
        seen: list[tuple[int, str]] = []
        host.netisr_register(
            PROTO, lambda m: seen.append((seq_of(m), current_task().name)), lambda m: seq_of(m) % 2
        )
        ifp, drv, far = await pair(host)
        await host.ifioctl(ifp, IfIoctl.SIOCSIFFLAGS, ifp.flags | IfFlags.POLLING)
        own = ifp.cpuid
        before = [p.packets for p in host.netisr_statistics().ports]
        for i in range(20):
            far.send(frame(ifp.lladdr, i))
        await trio.sleep(0.01)
        assert sorted(s for s, _ in seen) == list(range(20))
        mine = [s for s, t in seen if s % 2 == own]
        assert mine == sorted(mine) and len(mine) == 10
        assert {t for s, t in seen} == {"netisr 0", "netisr 1"}
        ports = host.netisr_statistics().ports
        assert ports[own].direct == 10 and ports[own].packets == before[own]
        assert ports[1 - own].direct == 0 and ports[1 - own].packets == before[1 - own] + 10
