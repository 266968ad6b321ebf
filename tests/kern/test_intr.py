"""Interrupt registration, dispatch and views (faithfulness checks are elsewhere)."""

import pytest
import structlog.testing
import trio
import trio.testing

import trionet


async def test_sched_ithd_coalesces_while_the_chain_is_pending() -> None:
    async with trionet.open_host("h") as host:
        runs = []

        async def handler() -> None:
            runs.append(trio.current_time())

        host.intr.register(4, handler, name="em0")
        for _ in range(5):
            host.intr.sched_ithd(4)
        await trio.testing.wait_all_tasks_blocked()
        # Five assertions of the line before the ithread ran: one run, five counts.
        assert len(runs) == 1
        assert host.vmstat_i()[0].total == 5


async def test_handlers_get_their_args_and_run_in_registration_order() -> None:
    async with trionet.open_host("h") as host:
        record = []

        async def handler(tag: str) -> None:
            record.append(tag)

        host.intr.register(2, handler, "first", name="a")
        host.intr.register(2, handler, "second", name="b")
        host.intr.sched_ithd(2)
        await trio.testing.wait_all_tasks_blocked()
        assert record == ["first", "second"]


async def test_a_handler_unregistered_mid_chain_is_skipped() -> None:
    async with trionet.open_host("h") as host:
        record = []
        cookies = {}

        async def first() -> None:
            record.append("first")
            host.intr.unregister(cookies["second"])

        async def second() -> None:
            record.append("second")

        cookies["first"] = host.intr.register(6, first, name="a")
        cookies["second"] = host.intr.register(6, second, name="b")
        host.intr.sched_ithd(6)
        await trio.testing.wait_all_tasks_blocked()
        assert record == ["first"]
        assert host.vmstat_i()[0].name == "a"
        with pytest.raises(ValueError, match="not registered"):
            host.intr.unregister(cookies["second"])


async def test_registration_checks_its_arguments() -> None:
    async def handler() -> None:
        pass

    async with trionet.open_host("h") as host:
        with pytest.raises(ValueError, match="irq"):
            host.intr.register(-1, handler, name="x")
        with pytest.raises(TypeError, match="must be a function"):
            host.intr.register(1, None, name="x")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="ever registered"):
            host.intr.state(1)


async def test_stray_interrupts_are_counted_and_logged_sparsely() -> None:
    async with trionet.open_host("h") as host:
        with structlog.testing.capture_logs() as logs:
            for _ in range(100):
                host.intr.sched_ithd(11)
        assert host.intr.stray(11) == 100
        counts = [e["count"] for e in logs if e["event"] == "stray_interrupt"]
        assert counts == [1, 2, 4, 8, 16, 32, 64]
        assert host.vmstat_i() == []


async def test_vmstat_rate_is_per_second_of_uptime(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trionet.open_host("h") as host:
        async def handler() -> None:
            pass

        host.intr.register(3, handler, name="em0")
        for _ in range(50):
            host.intr.sched_ithd(3)
            await trio.sleep(0.1)
        (row,) = host.vmstat_i()
        assert (row.irq, row.name, row.total, row.rate) == (3, "em0", 50, 10)
        text = trionet.format_vmstat_i(host.vmstat_i())
        assert text.splitlines()[1].split() == ["irq3:", "em0", "50", "10"]
        assert text.splitlines()[-1].split() == ["Total", "50", "10"]
        assert host.sysctl("hw.intrnames") == "em0"
        assert host.sysctl("hw.intrcnt") == "50"


async def test_the_ithread_runs_on_the_cpu_of_its_irq() -> None:
    async with trionet.open_host("h", ncpus=4) as host:
        async def handler() -> None:
            pass

        host.intr.register(7, handler, name="x")
        (row,) = [r for r in host.ps() if r.name == "ithread 7"]
        assert row.cpu == 3
