"""The Giant lock: recursive per task, FIFO handoff."""

import pytest
import trio
import trio.testing

from trionet.lowlevel import Giant


async def test_giant_is_recursive_per_task() -> None:
    giant = Giant()
    assert not giant.held_by()
    async with giant:
        async with giant:
            assert giant.count == 2
            assert giant.held_by()
        assert giant.held_by()
    assert giant.owner is None and giant.count == 0


async def test_giant_excludes_other_tasks_and_hands_off_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    giant = Giant()
    record = []

    async def worker(i: int) -> None:
        async with giant:
            record.append(("in", i))
            await trio.sleep(1)
            record.append(("out", i))

    async with trio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(worker, i)
            await trio.testing.wait_all_tasks_blocked()
    assert record == [("in", 0), ("out", 0), ("in", 1), ("out", 1), ("in", 2), ("out", 2)]


async def test_release_by_a_non_holder_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="does not hold"):
        Giant().release()


async def test_cancelled_waiter_does_not_get_giant() -> None:
    giant = Giant()
    await giant.acquire()
    got = []

    async def waiter() -> None:
        await giant.acquire()
        got.append(True)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    giant.release()
    assert got == []
    assert giant.owner is None and giant.count == 0
