"""Faithfulness check 19 of reference/dragonfly.md section 9: the interrupt
livelock limiter, in virtual time.

DragonFly: ``ithread_handler`` livelock state machine, ``sys/kern/kern_intr.c``
(section 4 of the reference).
"""

import structlog.testing
import trio
import trio.testing

import trionet
from trionet import Host, IntrState

IRQ = 3
LIMIT = 1000
LOWATER = 500
STORM_PERIOD = 2e-4  # 5000 interrupts/s, five times the limit


async def _setup(host: Host) -> list[float]:
    host.sysctl("kern.livelock_limit", LIMIT)
    host.sysctl("kern.livelock_lowater", LOWATER)
    runs: list[float] = []
    ser = host.serializer("em0")

    async def intr() -> None:
        ser.assert_serialized()
        runs.append(trio.current_time())

    host.intr.register(IRQ, intr, name="em0", serializer=ser)
    return runs


async def _storm_until_livelocked(host: Host, max_n: int = 5000) -> float:
    """Interrupt every STORM_PERIOD until the IRQ is livelocked; return the time."""
    for _ in range(max_n):
        host.intr.sched_ithd(IRQ)
        await trio.sleep(STORM_PERIOD)
        if host.intr.state(IRQ) is IntrState.LIVELOCKED:
            return trio.current_time()
    raise AssertionError(f"not livelocked after {max_n} interrupts at {1 / STORM_PERIOD:.0f} Hz")


async def _wait_normal(host: Host, timeout: float) -> float:
    """Poll the IRQ state every 10 ms until NORMAL; return the time."""
    with trio.fail_after(timeout):
        while host.intr.state(IRQ) is not IntrState.NORMAL:
            await trio.sleep(0.01)
    return trio.current_time()


async def test_interrupt_storm_engages_limiter_caps_rate_and_recovers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Check 19: more than kern.livelock_limit interrupts/s switch the IRQ to
    LIVELOCKED (``livelock_entered`` logged); while livelocked the handler
    runs at the limiter frequency whatever the interrupt rate; after the storm
    the rate must stay below kern.livelock_lowater for a full second before the
    IRQ is NORMAL again (``livelock_removed`` logged)."""
    async with trionet.open_host("h", ncpus=2) as host:
        runs = await _setup(host)
        assert host.intr.state(IRQ) is IntrState.NORMAL
        with structlog.testing.capture_logs() as logs:
            t0 = trio.current_time()
            entered_at = await _storm_until_livelocked(host)
            # 5000/s reaches a running rate of 1000/s after about 0.22 s.
            assert entered_at - t0 < 0.3
            # Before the limiter engaged every interrupt ran the handler.
            assert len(runs) >= 0.95 * (entered_at - t0) / STORM_PERIOD

            # Keep storming for 1.5 more seconds.
            asserted = 0
            while trio.current_time() < entered_at + 1.5:
                host.intr.sched_ithd(IRQ)
                asserted += 1
                await trio.sleep(STORM_PERIOD)
                assert host.intr.state(IRQ) is IntrState.LIVELOCKED
            storm_end = trio.current_time()
            assert asserted > 7_000

            # Over a one-second window the handler ran about LIMIT times, not 5000.
            window = [t for t in runs if entered_at + 0.25 <= t < entered_at + 1.25]
            assert 0.95 * LIMIT <= len(window) <= 1.05 * LIMIT

            t_normal = await _wait_normal(host, timeout=10)
            # Nothing ran after the storm but (at most) its last pending interrupt.
            assert len([t for t in runs if t > storm_end]) <= 1
        # The rate decays below LOWATER only after a while, then must stay there 1 s.
        assert t_normal - storm_end >= 1.0
        assert t_normal - storm_end <= 2.5

        entered = [e for e in logs if e["event"] == "livelock_entered"]
        removed = [e for e in logs if e["event"] == "livelock_removed"]
        assert len(entered) == 1
        assert (entered[0]["irq"], entered[0]["limit"], entered[0]["log_level"]) == (
            IRQ,
            LIMIT,
            "warning",
        )
        assert entered[0]["rate"] >= LIMIT
        assert len(removed) == 1
        assert removed[0]["irq"] == IRQ

        # NORMAL again: an interrupt runs the handler at once, no limiter tick needed.
        before = len(runs)
        now = trio.current_time()
        host.intr.sched_ithd(IRQ)
        await trio.testing.wait_all_tasks_blocked()
        assert len(runs) == before + 1
        assert runs[-1] == now


async def test_livelock_persists_while_rate_stays_above_lowater(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Check 19: a livelocked IRQ stays LIVELOCKED while interrupts keep coming
    above kern.livelock_lowater (though below the limit), and is released only
    after a full second below it; the idle ithread waits on the limiter."""
    async with trionet.open_host("h", ncpus=2) as host:
        runs = await _setup(host)
        await _storm_until_livelocked(host)
        # 700/s: under LIMIT, over LOWATER, for 3 s.
        start = trio.current_time()
        while trio.current_time() < start + 3.0:
            host.intr.sched_ithd(IRQ)
            await trio.sleep(1 / 700)
            assert host.intr.state(IRQ) is IntrState.LIVELOCKED
        n = len([t for t in runs if start + 1.0 <= t < start + 2.0])
        assert 650 <= n <= 750  # every interrupt ran, on the next limiter tick
        quiet = trio.current_time()
        (row,) = [r for r in host.ps() if r.name == f"ithread {IRQ}"]
        assert (row.state, row.wchan) == ("S", "livelk")
        t_normal = await _wait_normal(host, timeout=10)
        assert t_normal - quiet >= 1.0
        await trio.testing.wait_all_tasks_blocked()
        (row,) = [r for r in host.ps() if r.name == f"ithread {IRQ}"]
        assert (row.state, row.wchan) == ("S", "intr")
