"""Callouts fire on their owning thread, in Trio time, with no task per timer."""

from collections.abc import Callable

import pytest
import trio
import trio.lowlevel
import trio.testing

import trionet


async def test_callout_fires_once_on_its_thread_at_its_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trionet.open_host("h", ncpus=2) as host:
        record = []
        softclock1 = next(t for t in host.threads() if t.name == "softclock 1")
        c = host.callout(1)

        def fire(tag: str) -> None:
            record.append((tag, trio.current_time(), trio.lowlevel.current_task()))

        start = trio.current_time()
        c.reset(2.5, fire, "a")
        assert c.pending and c.deadline == start + 2.5
        await trio.sleep(10)
        assert [(tag, when - start) for tag, when, _ in record] == [("a", 2.5)]
        assert record[0][2] is softclock1.task
        assert not c.pending


async def test_reset_moves_and_stop_disarms(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_host("h") as host:
        record: list[float] = []
        start = trio.current_time()
        c = host.callout()
        c.reset(5, lambda: record.append(trio.current_time() - start))
        c.reset(1, lambda: record.append(trio.current_time() - start))
        await trio.sleep(10)
        assert record == [1]
        c.reset(1, record.append, -1.0)
        assert c.stop() is True
        assert c.stop() is False
        await trio.sleep(10)
        assert record == [1]


async def test_follow_tracks_a_machines_next_deadline(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_host("h") as host:
        fired: list[float] = []
        c = host.callout()
        start = trio.current_time()
        c.follow(start + 3, lambda: fired.append(trio.current_time() - start))
        c.follow(start + 2, lambda: fired.append(-1.0))  # moves it
        assert c.deadline == start + 2
        c.follow(start + 2, lambda: fired.append(-2.0))  # same deadline: left alone
        await trio.sleep(10)
        assert fired == [-1.0]
        c.follow(trio.current_time() + 1, fired.append, 0.0)
        c.follow(None, fired.append, 0.0)  # nothing due: disarmed
        assert not c.pending
        await trio.sleep(10)
        assert fired == [-1.0]


async def test_a_ticking_callout_rearms_itself_and_may_be_async(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trionet.open_host("h") as host:
        s = host.serializer("nge0")
        ticks: list[float] = []
        c = host.callout()
        start = trio.current_time()

        async def tick() -> None:
            async with s:  # timeouts serialize themselves
                ticks.append(trio.current_time() - start)
            if len(ticks) < 5:
                c.reset(1, tick)

        c.reset(1, tick)
        await trio.sleep(100)
        assert ticks == [1, 2, 3, 4, 5]


async def test_an_earlier_callout_wakes_a_sleeping_thread(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trionet.open_host("h") as host:
        record = []
        start = trio.current_time()
        late, early = host.callout(), host.callout()
        late.reset(100, record.append, "late")
        await trio.sleep(1)
        early.reset(1, lambda: record.append(("early", trio.current_time() - start)))
        await trio.sleep(5)
        assert record == [("early", 2)]


async def test_many_resets_keep_the_heap_bounded(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_host("h") as host:
        c = host.callout()
        for i in range(10_000):
            c.reset(1000 + i, lambda: None)
        timers = host._service("softclock", 0).timers
        assert len(timers) == 1
        assert len(timers._heap) < 200


async def test_bad_callout_arguments_are_rejected() -> None:
    async with trionet.open_host("h") as host:
        with pytest.raises(ValueError, match=">= 0"):
            host.callout().reset(-1, lambda: None)
        with pytest.raises(ValueError, match="cpu must be in 0..1"):
            host.callout(2)
        with pytest.raises(ValueError, match="thread must be one of"):
            host.callout(0, thread="bogus")
        assert host.callout(1, thread="netisr") is not None


async def test_a_thread_busy_past_a_deadline_fires_it_late_and_the_clock_waits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The hardclock wakes a thread whose callout is due; if the thread is
    busy (here inside an async callout that sleeps), the clock leaves its
    heap alone until the thread has caught up, instead of spinning at the
    deadline, which would stop virtual time and hang the busy callout."""
    async with trionet.open_host("h") as host:
        wakes = 0

        def guarded(wake: Callable[[], None]) -> Callable[[], None]:
            def wrapped() -> None:
                nonlocal wakes
                wakes += 1
                if wakes > 100:  # without the rule the clock spins: fail, not hang
                    raise RuntimeError("the hardclock spins")
                wake()

            return wrapped

        clock = host._hardclock
        clock.heaps[:] = [(timers, guarded(wake)) for timers, wake in clock.heaps]
        record = []
        start = trio.current_time()
        busy, late, other = host.callout(), host.callout(), host.callout(0, thread="netisr")

        async def work() -> None:
            record.append(("busy", trio.current_time() - start))
            await trio.sleep(5)

        busy.reset(1, work)
        late.reset(2, lambda: record.append(("late", trio.current_time() - start)))
        other.reset(3, lambda: record.append(("other", trio.current_time() - start)))
        with trio.fail_after(20):
            await trio.sleep(10)
        # Another thread's callout is on time; ours fires when the thread is free.
        assert record == [("busy", 1), ("other", 3), ("late", 6)]
        assert clock.ticks < 10 and wakes < 10
