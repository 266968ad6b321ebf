"""Faithfulness checks 4, 5, 16, 17 and 18 of reference/dragonfly.md section 9:
interrupt threads, the handler bit, Giant and IRQ sharing.

DragonFly: ``sys/kern/kern_intr.c`` v1.42 (section 4 of the reference).
"""

import structlog.testing
import trio
import trio.testing

import trionet
from trionet import Host

IRQ = 5


def ps_row(host: Host, name: str) -> trionet.PsRow:
    (row,) = [r for r in host.ps() if r.name == name]
    return row


def total(host: Host, irq: int) -> int:
    (row,) = [r for r in host.vmstat_i() if r.irq == irq]
    return row.total


async def interrupt(host: Host, irq: int, times: int = 1) -> None:
    """Assert ``irq`` and let its ithread finish, ``times`` times."""
    for _ in range(times):
        host.intr.sched_ithd(irq)
        await trio.testing.wait_all_tasks_blocked()


####################################################################
# Check 4: handler_disable blocks new handler runs
####################################################################


async def test_disabled_handler_is_counted_but_never_runs_until_enabled() -> None:
    """Check 4: after handler_disable (taken while holding the serializer),
    sched_ithd still counts every interrupt but the body never runs until
    handler_enable."""
    async with trionet.open_host("h", ncpus=2) as host:
        ser = host.serializer("em0")
        ran: list[int] = []

        async def intr() -> None:
            ser.assert_serialized()
            ran.append(total(host, IRQ))

        host.intr.register(IRQ, intr, name="em0", serializer=ser)
        await interrupt(host, IRQ)
        assert ran == [1]

        async with ser:
            ser.handler_disable()
        await interrupt(host, IRQ, times=3)
        assert total(host, IRQ) == 4
        assert ran == [1]
        assert host.intr.stray(IRQ) == 0

        ser.handler_enable()
        await trio.testing.wait_all_tasks_blocked()
        assert ran == [1]  # enabling alone does not replay the lost interrupts
        await interrupt(host, IRQ)
        assert ran == [1, 5]
        assert total(host, IRQ) == 5


async def test_cookie_calls_counts_only_handler_runs() -> None:
    """Check 4: ``IntrCookie.calls`` ("how many times the handler ran") does
    not count interrupts whose handler was disabled and did not run."""
    async with trionet.open_host("h", ncpus=2) as host:
        ser = host.serializer("em0")
        ran: list[int] = []

        async def intr() -> None:
            ran.append(1)

        cookie = host.intr.register(IRQ, intr, name="em0", serializer=ser)
        await interrupt(host, IRQ)
        ser.handler_disable()
        await interrupt(host, IRQ, times=2)
        assert total(host, IRQ) == 3
        assert len(ran) == 1
        assert cookie.calls == len(ran)


####################################################################
# Check 5: re-check after enter, through a real ithread
####################################################################


async def test_ithread_parked_behind_disabling_holder_does_not_run_handler() -> None:
    """Check 5: an ithread parked in handler_call behind a holder that disables
    the handler before exit does not run the handler after it wakes."""
    async with trionet.open_host("h", ncpus=2) as host:
        ser = host.serializer("em0")
        ran: list[str] = []

        async def intr() -> None:
            ran.append("intr")

        host.intr.register(IRQ, intr, name="em0", serializer=ser)
        await ser.enter()
        host.intr.sched_ithd(IRQ)
        await trio.testing.wait_all_tasks_blocked()
        assert ser.statistics().waiters == 1  # the ithread sleeps on it
        ser.handler_disable()
        ser.exit()
        await trio.testing.wait_all_tasks_blocked()
        assert ran == []
        stats = ser.statistics()
        assert (stats.held, stats.waiters) == (False, 0)
        assert total(host, IRQ) == 1
        ser.handler_enable()
        await interrupt(host, IRQ)
        assert ran == ["intr"]


####################################################################
# Check 16: kern.intr_mpsafe=0
####################################################################


async def test_intr_mpsafe_0_every_ithread_run_holds_giant() -> None:
    """Check 16: with kern.intr_mpsafe=0 every run of an (MPSAFE) handler holds
    Giant, and ps shows no 'M' for its ithread."""
    async with trionet.open_host("h", ncpus=2) as host:
        host.sysctl("kern.intr_mpsafe", 0)
        ser = host.serializer("em0")
        held: list[bool] = []

        async def intr() -> None:
            held.append(host.giant.held_by())
            await trio.lowlevel.checkpoint()
            held.append(host.giant.held_by())

        host.intr.register(IRQ, intr, name="em0", serializer=ser, mpsafe=True)
        await interrupt(host, IRQ, times=4)
        assert held == [True] * 8
        assert ps_row(host, f"ithread {IRQ}").flags == ""
        assert host.giant.owner is None  # released after every run
        # A second IRQ with no serializer at all behaves the same.
        held2: list[bool] = []

        async def bare() -> None:
            held2.append(host.giant.held_by())

        host.intr.register(IRQ + 1, bare, name="bare", mpsafe=True)
        await interrupt(host, IRQ + 1, times=2)
        assert held2 == [True, True]
        assert ps_row(host, f"ithread {IRQ + 1}").flags == ""


####################################################################
# Check 17: kern.intr_mpsafe=1
####################################################################


async def test_intr_mpsafe_1_mpsafe_chain_runs_without_giant() -> None:
    """Check 17: with kern.intr_mpsafe=1 an MPSAFE-only chain runs without
    Giant and ps shows 'M' for its ithread."""
    async with trionet.open_host("h", ncpus=2) as host:
        host.sysctl("kern.intr_mpsafe", 1)
        held: list[bool] = []

        async def intr() -> None:
            held.append(host.giant.held_by())

        host.intr.register(IRQ, intr, name="em0", serializer=host.serializer("em0"))
        await interrupt(host, IRQ, times=3)
        assert held == [False, False, False]
        assert host.giant.owner is None
        assert ps_row(host, f"ithread {IRQ}").flags == "M"


async def test_non_mpsafe_sharer_makes_whole_chain_take_giant() -> None:
    """Check 17: one non-MPSAFE sharer makes every handler of the chain run
    under Giant; unregistering it clears that again."""
    async with trionet.open_host("h", ncpus=2) as host:
        host.sysctl("kern.intr_mpsafe", 1)
        record: list[tuple[str, bool]] = []

        async def a() -> None:
            record.append(("a", host.giant.held_by()))

        async def b() -> None:
            record.append(("b", host.giant.held_by()))

        host.intr.register(IRQ, a, name="a", serializer=host.serializer("a"))
        await interrupt(host, IRQ)
        assert record == [("a", False)]
        assert ps_row(host, f"ithread {IRQ}").flags == "M"

        record.clear()
        cookie_b = host.intr.register(
            IRQ, b, name="b", serializer=host.serializer("b"), mpsafe=False
        )
        await interrupt(host, IRQ, times=2)
        assert record == [("a", True), ("b", True)] * 2
        assert ps_row(host, f"ithread {IRQ}").flags == ""

        record.clear()
        host.intr.unregister(cookie_b)
        await interrupt(host, IRQ)
        assert record == [("a", False)]
        assert ps_row(host, f"ithread {IRQ}").flags == "M"
        assert host.giant.owner is None


async def test_intr_mpsafe_toggle_takes_effect_at_next_interrupt_not_mid_chain() -> None:
    """Check 17: a kern.intr_mpsafe change made by the first handler of a chain
    does not change Giant for the rest of that chain; the next interrupt
    follows the new value. Both directions."""
    async with trionet.open_host("h", ncpus=2) as host:
        host.sysctl("kern.intr_mpsafe", 1)
        record: list[tuple[str, bool]] = []
        flip_to: list[int] = []

        async def a() -> None:
            record.append(("a", host.giant.held_by()))
            if flip_to:
                host.sysctl("kern.intr_mpsafe", flip_to.pop())

        async def b() -> None:
            record.append(("b", host.giant.held_by()))

        host.intr.register(IRQ, a, name="a", serializer=host.serializer("a"))
        host.intr.register(IRQ, b, name="b", serializer=host.serializer("b"))

        flip_to.append(0)
        await interrupt(host, IRQ)
        assert record == [("a", False), ("b", False)]
        assert host.sysctl("kern.intr_mpsafe") == 0
        await interrupt(host, IRQ)
        assert record[2:] == [("a", True), ("b", True)]
        assert ps_row(host, f"ithread {IRQ}").flags == ""

        flip_to.append(1)
        await interrupt(host, IRQ)
        assert record[4:] == [("a", True), ("b", True)]
        await interrupt(host, IRQ)
        assert record[6:] == [("a", False), ("b", False)]
        assert ps_row(host, f"ithread {IRQ}").flags == "M"
        assert host.giant.owner is None


####################################################################
# Check 18: sharing and stray interrupts
####################################################################


async def test_shared_irq_runs_both_handlers_each_under_its_own_serializer() -> None:
    """Check 18: two handlers on one IRQ both run on every sched_ithd, in
    registration order, each holding only its own serializer."""
    async with trionet.open_host("h", ncpus=2) as host:
        sa = host.serializer("a")
        sb = host.serializer("b")
        record: list[tuple[str, bool, bool]] = []

        async def a() -> None:
            sa.assert_serialized()
            sb.assert_not_serialized()
            record.append(("a", sa.is_serialized(), sb.statistics().held))

        async def b() -> None:
            sb.assert_serialized()
            sa.assert_not_serialized()
            record.append(("b", sb.is_serialized(), sa.statistics().held))

        ca = host.intr.register(IRQ, a, name="a", serializer=sa)
        cb = host.intr.register(IRQ, b, name="b", serializer=sb)
        await interrupt(host, IRQ, times=3)
        assert record == [("a", True, False), ("b", True, False)] * 3
        assert (ca.calls, cb.calls) == (3, 3)
        assert sa.statistics().held is False
        assert sb.statistics().held is False


async def test_shared_irq_is_one_vmstat_line_named_a_slash_b() -> None:
    """Check 18: vmstat -i has exactly one row for a shared IRQ, named "a/b",
    counting each sched_ithd once; hw.intrnames and hw.intrcnt agree."""
    async with trionet.open_host("h", ncpus=2) as host:

        async def nop() -> None:
            pass

        host.intr.register(IRQ, nop, name="a", serializer=host.serializer("a"))
        host.intr.register(IRQ, nop, name="b", serializer=host.serializer("b"))
        for _ in range(7):
            host.intr.sched_ithd(IRQ)
            host.intr.sched_ithd(IRQ)  # coalesces with the one before: still counted
            await trio.testing.wait_all_tasks_blocked()
        rows = [r for r in host.vmstat_i() if r.irq == IRQ]
        assert len(rows) == 1
        assert (rows[0].name, rows[0].total) == ("a/b", 14)
        assert len(host.vmstat_i()) == 1
        assert "a/b" in str(host.sysctl("hw.intrnames")).split(" ")
        assert host.sysctl("hw.intrnames") == "a/b"
        assert host.sysctl("hw.intrcnt") == "14"
        assert host.intr.names(IRQ) == "a/b"
        assert "irq5: a/b" in trionet.format_vmstat_i(host.vmstat_i())


async def test_stray_interrupt_only_counts_and_logs() -> None:
    """Check 18: an IRQ with no handler is stray: counted, logged at counts
    1, 2, 4..., and never crashes the host or makes an ithread."""
    async with trionet.open_host("h", ncpus=2) as host:
        threads_before = [t.name for t in host.threads()]
        with structlog.testing.capture_logs() as logs:
            for _ in range(5):
                host.intr.sched_ithd(42)
            await trio.testing.wait_all_tasks_blocked()
        assert host.intr.stray(42) == 5
        assert host.intr.stray(IRQ) == 0
        stray = [e for e in logs if e["event"] == "stray_interrupt"]
        assert [(e["irq"], e["count"]) for e in stray] == [(42, 1), (42, 2), (42, 4)]
        assert all(e["log_level"] == "warning" for e in stray)
        assert [t.name for t in host.threads()] == threads_before
        assert host.vmstat_i() == []
        assert host.intr.names(42) == "irq42"

        # The host still works: a real handler on another IRQ runs.
        ran: list[int] = []

        async def intr() -> None:
            ran.append(1)

        host.intr.register(IRQ, intr, name="em0")
        await interrupt(host, IRQ)
        assert ran == [1]


async def test_irq_whose_last_handler_left_is_stray_again() -> None:
    """Check 18: after the last handler of an IRQ is unregistered, interrupts
    on it are stray: counted, nothing runs."""
    async with trionet.open_host("h", ncpus=2) as host:
        ran: list[int] = []

        async def intr() -> None:
            ran.append(1)

        cookie = host.intr.register(IRQ, intr, name="em0")
        await interrupt(host, IRQ)
        host.intr.unregister(cookie)
        await interrupt(host, IRQ, times=2)
        assert ran == [1]
        assert host.intr.stray(IRQ) == 2
        assert host.intr.names(IRQ) == f"irq{IRQ}"
