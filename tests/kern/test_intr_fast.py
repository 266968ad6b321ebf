"""FAST interrupts (INTR_FAST): the chain runs in the asserting task when it
can, and the ithread takes over whenever it cannot (rule 5 of
``trionet._kern._intr``).

DragonFly: ``ithread_fast_handler``, ``sys/kern/kern_intr.c``.
"""

import pytest
import trio
import trio.testing
from trio.lowlevel import current_task

import trionet
from trionet import Host, IntrState

IRQ = 5


def _fast_handler(host: Host, name: str = "em0") -> tuple[list[str], trionet.Serializer]:
    """Register a FAST handler on IRQ that records which task ran it."""
    ser = host.serializer(name)
    ran: list[str] = []

    def intr() -> None:
        ser.assert_serialized()
        ran.append(current_task().name)

    host.intr.register(IRQ, intr, name=name, serializer=ser, fast=True)
    return ran, ser


async def test_a_fast_interrupt_runs_at_once_in_the_asserting_task() -> None:
    async with trionet.open_host("h") as host:
        ran, _ = _fast_handler(host)
        me = current_task().name
        host.intr.sched_ithd(IRQ)
        # Ran before sched_ithd returned, without a checkpoint.
        assert ran == [me]
        host.intr.sched_ithd(IRQ)
        await trio.testing.wait_all_tasks_blocked()
        assert ran == [me, me]
        assert host.intr.fast(IRQ) == 2
        assert host.vmstat_i()[0].total == 2


async def test_a_busy_serializer_leaves_the_interrupt_to_the_ithread() -> None:
    async with trionet.open_host("h") as host:
        ran, ser = _fast_handler(host)
        async with ser:
            # Held by us: no recursion and no panic, the line stays pending.
            host.intr.sched_ithd(IRQ)
            host.intr.sched_ithd(IRQ)
            assert ran == []
        await trio.testing.wait_all_tasks_blocked()
        # The ithread ran the chain once for both assertions.
        assert ran == [f"ithread {IRQ}"]
        assert host.intr.fast(IRQ) == 0
        assert host.vmstat_i()[0].total == 2


async def test_a_handler_that_reasserts_its_own_line_goes_to_the_ithread() -> None:
    async with trionet.open_host("h") as host:
        ser = host.serializer("em0")
        ran: list[str] = []

        def intr() -> None:
            ran.append(current_task().name)
            if len(ran) == 1:
                host.intr.sched_ithd(IRQ)  # "more work left": raised again

        host.intr.register(IRQ, intr, name="em0", serializer=ser, fast=True)
        host.intr.sched_ithd(IRQ)
        assert ran == [current_task().name]
        await trio.testing.wait_all_tasks_blocked()
        assert ran == [current_task().name, f"ithread {IRQ}"]


@pytest.mark.parametrize("why", ["intr_mpsafe=0", "non-MPSAFE sharer", "non-FAST sharer"])
async def test_chains_that_cannot_run_fast_go_to_the_ithread(why: str) -> None:
    async with trionet.open_host("h") as host:
        ran, _ = _fast_handler(host)
        if why == "intr_mpsafe=0":
            host.sysctl("kern.intr_mpsafe", 0)
        else:
            other = host.serializer("other")
            host.intr.register(
                IRQ,
                lambda: ran.append("other"),
                name="other",
                serializer=other,
                mpsafe=why != "non-MPSAFE sharer",
                fast=False,
            )
        host.intr.sched_ithd(IRQ)
        assert ran == []
        await trio.testing.wait_all_tasks_blocked()
        assert ran[0] == f"ithread {IRQ}"
        assert host.intr.fast(IRQ) == 0


async def test_a_disabled_handler_is_skipped_on_the_fast_path() -> None:
    async with trionet.open_host("h") as host:
        ran, ser = _fast_handler(host)
        ser.handler_disable()
        host.intr.sched_ithd(IRQ)
        await trio.testing.wait_all_tasks_blocked()
        assert ran == []
        ser.handler_enable()
        host.intr.sched_ithd(IRQ)
        assert ran == [current_task().name]


async def test_a_fast_handler_must_be_a_plain_function() -> None:
    async with trionet.open_host("h") as host:

        async def intr() -> None:
            pass

        with pytest.raises(ValueError, match="plain function"):
            host.intr.register(IRQ, intr, name="em0", fast=True)


async def test_a_storm_of_fast_interrupts_still_engages_the_limiter(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Fast runs count toward the livelock rate: a storm well above
    kern.livelock_limit ends LIVELOCKED, and from then on only the limiter's
    ticks run the handler, in the ithread."""
    async with trionet.open_host("h") as host:
        host.sysctl("kern.livelock_limit", 1000)
        host.sysctl("kern.livelock_lowater", 500)
        ran, _ = _fast_handler(host)
        me = current_task().name
        for _ in range(5000):
            host.intr.sched_ithd(IRQ)
            await trio.sleep(2e-4)  # 5000 interrupts/s
            if host.intr.state(IRQ) is IntrState.LIVELOCKED:
                break
        assert host.intr.state(IRQ) is IntrState.LIVELOCKED
        assert set(ran) == {me}
        del ran[:]
        t0 = trio.current_time()
        while trio.current_time() < t0 + 0.5:
            host.intr.sched_ithd(IRQ)
            await trio.sleep(2e-4)
        # At most the limiter's 1000 Hz, never in our task.
        assert set(ran) == {f"ithread {IRQ}"}
        assert 400 <= len(ran) <= 510
        # Once the storm is over the IRQ recovers and runs fast again.
        await trio.sleep(3)
        assert host.intr.state(IRQ) is IntrState.NORMAL
        del ran[:]
        host.intr.sched_ithd(IRQ)
        assert ran == [me]
