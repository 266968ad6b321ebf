"""Unit tests of trionet.Serializer (the faithfulness checks live in tests/faithfulness)."""

import pytest
import trio
import trio.testing

import trionet
from trionet import KernelPanic, Serializer


async def test_async_with_holds_and_releases() -> None:
    s = Serializer("s")
    async with s:
        assert s.is_serialized()
        s.assert_serialized()
        assert s.statistics().held
    assert not s.is_serialized()
    s.assert_not_serialized()
    stats = s.statistics()
    assert (stats.held, stats.owner, stats.enter_cnt) == (False, None, 1)


async def test_enter_checkpoints_even_when_uncontended() -> None:
    s = Serializer("s")
    with pytest.raises(AssertionError):
        with trio.testing.assert_no_checkpoints():
            await s.enter()
    s.exit()
    with trio.testing.assert_checkpoints():
        async with s:
            pass


async def test_async_with_releases_on_exception() -> None:
    s = Serializer("s")
    with pytest.raises(ZeroDivisionError):
        async with s:
            1 / 0
    assert s.try_enter()
    s.exit()


async def test_cancelled_waiter_never_holds(autojump_clock: trio.testing.MockClock) -> None:
    for fifo in (False, True):
        s = Serializer("s", fifo=fifo)
        await s.enter()
        async with trio.open_nursery() as nursery:

            async def waiter(scope_box: list[trio.CancelScope]) -> None:
                with trio.CancelScope() as scope:
                    scope_box.append(scope)
                    await s.enter()
                    pytest.fail("a cancelled waiter got the serializer")

            box: list[trio.CancelScope] = []
            nursery.start_soon(waiter, box)
            await trio.testing.wait_all_tasks_blocked()
            assert s.statistics().waiters == 1
            box[0].cancel()
        assert s.statistics().waiters == 0
        s.exit()
        assert not s.statistics().held


async def test_cancel_inside_async_with_releases() -> None:
    s = Serializer("s")
    with trio.CancelScope() as scope:
        async with s:
            scope.cancel()
            await trio.sleep_forever()
    assert not s.statistics().held


async def test_cancelled_before_enter_takes_nothing() -> None:
    s = Serializer("s")
    with trio.CancelScope() as scope:
        scope.cancel()
        await s.enter()
    assert not s.statistics().held
    assert s.statistics().enter_cnt == 0


async def test_fifo_hands_over_in_arrival_order(autojump_clock: trio.testing.MockClock) -> None:
    s = Serializer("s", fifo=True)
    record = []

    async def worker(i: int) -> None:
        async with s:
            record.append(i)
            await trio.sleep(1)

    async with trio.open_nursery() as nursery:
        await s.enter()
        for i in range(5):
            nursery.start_soon(worker, i)
            await trio.testing.wait_all_tasks_blocked()
        s.exit()
        # A handoff: the serializer never looks free to a bystander.
        assert not s.try_enter()
    assert record == [0, 1, 2, 3, 4]
    assert s.statistics().sleep_cnt == 5


async def test_racing_exit_wakes_every_sleeper(autojump_clock: trio.testing.MockClock) -> None:
    s = Serializer("s")
    done = []

    async def worker(i: int) -> None:
        async with s:
            await trio.sleep(1)
            done.append(i)

    async with trio.open_nursery() as nursery:
        await s.enter()
        for i in range(3):
            nursery.start_soon(worker, i)
        await trio.testing.wait_all_tasks_blocked()
        assert s.statistics().waiters == 3
        s.exit()
        # Racing: the bit is clear at once and every sleeper was woken.
        assert s.statistics().waiters == 0
    assert sorted(done) == [0, 1, 2]
    # Losers of each race went back to sleep: more sleeps than sleepers.
    assert s.statistics().sleep_cnt > 3


async def test_handler_call_runs_under_the_serializer() -> None:
    s = Serializer("s")
    seen = []

    async def handler(x: int) -> None:
        s.assert_serialized()
        seen.append(x)

    assert await s.handler_call(handler, 7)
    assert seen == [7]
    s.handler_disable()
    assert not s.handler_enabled
    assert not await s.handler_call(handler, 8)
    s.handler_enable()
    assert await s.handler_call(handler, 9)
    assert seen == [7, 9]
    assert not s.statistics().held


async def test_handler_call_releases_when_the_handler_raises() -> None:
    s = Serializer("s")

    async def handler() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        await s.handler_call(handler)
    assert not s.statistics().held


async def test_statistics_counts_try_and_failures() -> None:
    s = Serializer("s")
    assert s.try_enter()
    s.exit()
    await s.enter()
    s.exit()
    assert s.try_enter()
    s.exit()
    stats = s.statistics()
    assert (stats.try_cnt, stats.tryfail_cnt, stats.enter_cnt) == (2, 0, 1)


async def test_try_enter_by_another_task_fails_while_held() -> None:
    s = Serializer("s")
    results = []

    async def other() -> None:
        results.append(s.try_enter())

    async with s:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(other)
    assert results == [False]
    assert s.statistics().tryfail_cnt == 1


async def test_recursive_try_enter_panics_under_invariants() -> None:
    s = Serializer("s")
    async with s:
        with pytest.raises(KernelPanic, match="recursive"):
            s.try_enter()


def test_exit_of_a_free_serializer_panics_under_invariants() -> None:
    async def main() -> None:
        with pytest.raises(KernelPanic, match="does not hold"):
            Serializer("s").exit()

    trio.run(main)


async def test_without_invariants_is_serialized_reports_any_holder() -> None:
    s = Serializer("s", invariants=False)
    assert not s.is_serialized()
    async with s:
        assert s.is_serialized()
        assert s.statistics().owner is None


def test_repr_names_the_state() -> None:
    assert repr(Serializer("em0")) == "<Serializer 'em0' free waiters=0>"


def test_serializer_is_exported_from_trionet() -> None:
    assert trionet.Serializer is Serializer
    assert Serializer.__module__ == "trionet"
