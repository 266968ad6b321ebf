"""Faithfulness checks 2, 3 and 5 of reference/dragonfly.md section 9, on the bare Serializer.

DragonFly: ``sys/kern/lwkt_serialize.c`` (section 1 of the reference).
"""

import inspect

import pytest
import trio
import trio.testing

import trionet
from trionet import KernelPanic, Serializer

####################################################################
# Check 2: non-recursion and INVARIANTS
####################################################################


def test_kernel_panic_is_not_a_trionet_error() -> None:
    """Check 2: a KernelPanic cannot be swallowed by ``except TrionetError``."""
    assert not issubclass(KernelPanic, trionet.TrionetError)
    assert issubclass(KernelPanic, Exception)


async def test_recursive_enter_panics_with_invariants() -> None:
    """Check 2: with invariants, a second enter by the holding task raises KernelPanic."""
    s = Serializer("s", invariants=True)
    await s.enter()
    with pytest.raises(KernelPanic, match="recursive enter"):
        await s.enter()
    # The panic did not disturb the holder's ownership.
    s.assert_serialized()
    assert s.statistics().owner is trio.lowlevel.current_task()
    assert s.statistics().enter_cnt == 1
    s.exit()
    assert s.statistics().held is False


async def test_recursive_async_with_panics_with_invariants() -> None:
    """Check 2: nesting ``async with`` on one serializer raises KernelPanic and
    the outer block still releases it."""
    s = Serializer("s", invariants=True)
    with pytest.raises(KernelPanic, match="recursive enter"):
        async with s:
            async with s:
                pytest.fail("recursive enter succeeded")  # pragma: no cover
    stats = s.statistics()
    assert (stats.held, stats.owner, stats.waiters) == (False, None, 0)


async def test_recursive_try_enter_panics_with_invariants() -> None:
    """Check 2: with invariants, try_enter by the holder is a recursion too."""
    s = Serializer("s", invariants=True)
    assert s.try_enter()
    with pytest.raises(KernelPanic, match="recursive try_enter"):
        s.try_enter()
    s.exit()


async def test_exit_by_non_owner_panics_with_invariants() -> None:
    """Check 2: with invariants, exit by a task that does not hold it raises
    KernelPanic and leaves the holder holding it."""
    s = Serializer("s", invariants=True)
    holder_in = trio.Event()
    release = trio.Event()

    async def holder() -> None:
        async with s:
            holder_in.set()
            await release.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(holder)
        await holder_in.wait()
        with pytest.raises(KernelPanic, match="does not hold it"):
            s.exit()
        stats = s.statistics()
        assert stats.held is True
        assert stats.owner is not None
        assert stats.owner is not trio.lowlevel.current_task()
        release.set()
    assert s.statistics().held is False


async def test_exit_of_free_serializer_panics_with_invariants() -> None:
    """Check 2: with invariants, exit while nobody holds it raises KernelPanic."""
    s = Serializer("s", invariants=True)
    with pytest.raises(KernelPanic):
        s.exit()
    assert s.statistics().held is False


async def test_assert_serialized_is_exact_with_invariants() -> None:
    """Check 2: assert_serialized passes only for the holder; assert_not_serialized
    only for everyone else."""
    s = Serializer("s", invariants=True)
    with pytest.raises(KernelPanic, match="not held by this task"):
        s.assert_serialized()  # free
    s.assert_not_serialized()
    assert s.is_serialized() is False

    seen: list[str] = []
    holder_in = trio.Event()
    release = trio.Event()

    async def holder() -> None:
        async with s:
            s.assert_serialized()
            assert s.is_serialized() is True
            with pytest.raises(KernelPanic, match="is held by this task"):
                s.assert_not_serialized()
            seen.append("holder ok")
            holder_in.set()
            await release.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(holder)
        await holder_in.wait()
        # Held, but by another task.
        with pytest.raises(KernelPanic, match="not held by this task"):
            s.assert_serialized()
        s.assert_not_serialized()
        assert s.is_serialized() is False
        release.set()
    assert seen == ["holder ok"]


async def test_recursive_enter_hangs_without_invariants(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Check 2: without invariants a second enter by the holder deadlocks
    (``fail_after`` fires) instead of panicking, as in a kernel built
    without INVARIANTS."""
    s = Serializer("x", invariants=False)
    await s.enter()
    start = trio.current_time()
    with pytest.raises(trio.TooSlowError):
        with trio.fail_after(10):
            await s.enter()
    assert trio.current_time() - start == pytest.approx(10)
    with trio.move_on_after(3) as cs:
        async with s:
            pytest.fail("recursive enter succeeded")  # pragma: no cover
    assert cs.cancelled_caught
    stats = s.statistics()
    # Still held by the first enter, nobody left sleeping, owner never recorded.
    assert (stats.held, stats.owner, stats.waiters, stats.enter_cnt) == (True, None, 0, 1)
    s.exit()
    assert s.statistics().held is False


async def test_asserts_never_raise_and_owner_unset_without_invariants() -> None:
    """Check 2: without invariants asserts are no-ops, ``owner`` stays None and
    an exit by a non-holder does not panic."""
    s = Serializer("x", invariants=False)
    s.assert_serialized()  # free, yet no panic
    s.assert_not_serialized()
    holder_in = trio.Event()
    release = trio.Event()
    owners: list[object] = []

    async def holder() -> None:
        async with s:
            s.assert_serialized()
            s.assert_not_serialized()  # held by this very task: still no panic
            owners.append(s.statistics().owner)
            holder_in.set()
            await release.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(holder)
        await holder_in.wait()
        s.assert_serialized()  # held by another task: no panic
        s.assert_not_serialized()
        assert s.statistics().held is True
        assert s.statistics().owner is None
        release.set()
    assert owners == [None]
    assert s.try_enter() is True
    assert s.statistics().owner is None
    s.exit()

    # An exit by a task that does not hold it is not checked either.
    await s.enter()

    async def stranger() -> None:
        s.exit()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stranger)
    assert s.statistics().held is False


async def test_host_serializer_follows_host_invariants() -> None:
    """Check 2: ``host.serializer()`` takes its INVARIANTS from the host."""
    async with trionet.open_host("h", ncpus=2) as host:
        s = host.serializer("em0")
        await s.enter()
        with pytest.raises(KernelPanic):
            await s.enter()
        s.exit()
    async with trionet.open_host("h", ncpus=2, invariants=False) as host:
        s = host.serializer("em0")
        async with s:
            assert s.statistics().owner is None
            s.assert_not_serialized()


####################################################################
# Check 3: try semantics
####################################################################


async def test_try_enter_never_awaits_nor_checkpoints() -> None:
    """Check 3: try_enter is a plain function that never parks or checkpoints,
    and returns False while another task holds the serializer."""
    assert not inspect.iscoroutinefunction(Serializer.try_enter)
    for invariants in (True, False):
        s = Serializer("s", invariants=invariants)
        with trio.testing.assert_no_checkpoints():
            assert s.try_enter() is True
            s.exit()
        holder_in = trio.Event()
        release = trio.Event()

        async def holder(s: Serializer = s) -> None:
            async with s:
                holder_in.set()
                await release.wait()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(holder)
            await holder_in.wait()
            with trio.testing.assert_no_checkpoints():
                results = [s.try_enter() for _ in range(3)]
            assert results == [False, False, False]
            stats = s.statistics()
            assert (stats.waiters, stats.sleep_cnt) == (0, 0)
            release.set()
        stats = s.statistics()
        assert (stats.try_cnt, stats.tryfail_cnt) == (4, 3)
        with trio.testing.assert_no_checkpoints():
            assert s.try_enter() is True
        s.exit()


async def test_handler_try_returns_false_when_disabled_and_never_runs() -> None:
    """Check 3: handler_try returns False while the handler is disabled and
    does not call the function."""
    s = Serializer("s")
    ran: list[int] = []
    s.handler_disable()
    with trio.testing.assert_no_checkpoints():
        assert s.handler_try(ran.append, 1) is False
    assert ran == []
    assert s.statistics().held is False
    s.handler_enable()
    with trio.testing.assert_no_checkpoints():
        assert s.handler_try(ran.append, 2) is True
    assert ran == [2]
    assert s.statistics().held is False


async def test_handler_try_returns_false_when_busy_and_never_runs() -> None:
    """Check 3: handler_try returns False while another task holds the
    serializer, without waiting and without calling the function."""
    s = Serializer("s")
    ran: list[int] = []
    holder_in = trio.Event()
    release = trio.Event()

    async def holder() -> None:
        async with s:
            holder_in.set()
            await release.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(holder)
        await holder_in.wait()
        with trio.testing.assert_no_checkpoints():
            assert s.handler_try(ran.append, 1) is False
        assert ran == []
        assert s.statistics().waiters == 0
        release.set()
    assert ran == []


async def test_handler_try_runs_function_under_serializer_when_free() -> None:
    """Check 3: when free and enabled, handler_try runs the function while
    holding the serializer, returns True and releases it."""
    s = Serializer("s")
    inside: list[bool] = []

    def fn(tag: str) -> str:
        s.assert_serialized()
        inside.append(s.statistics().held)
        return tag

    with trio.testing.assert_no_checkpoints():
        assert s.handler_try(fn, "x") is True
    assert inside == [True]
    stats = s.statistics()
    assert (stats.held, stats.owner) == (False, None)


async def test_handler_try_rejects_async_function_and_stays_free() -> None:
    """Check 3: handler_try with an async function raises TypeError, never
    runs its body (and leaks no un-awaited coroutine) and leaves the serializer free."""
    s = Serializer("s")
    ran: list[str] = []

    async def afn() -> None:
        ran.append("body")  # pragma: no cover

    with pytest.raises(TypeError, match="handler_call"):
        s.handler_try(afn)
    assert ran == []
    stats = s.statistics()
    assert (stats.held, stats.owner) == (False, None)
    assert s.try_enter() is True
    s.exit()


async def test_handler_try_releases_when_function_raises() -> None:
    """Check 3: handler_try releases the serializer however the function ends."""
    s = Serializer("s")

    def boom() -> None:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        s.handler_try(boom)
    assert s.statistics().held is False


####################################################################
# Check 5: re-check of the handler bit after enter
####################################################################


@pytest.mark.parametrize("fifo", [False, True])
async def test_handler_call_parked_behind_disabling_holder_does_not_run(fifo: bool) -> None:
    """Check 5: a handler_call waiting behind a holder that disables the
    handler before exiting wakes, re-checks the bit and does not run."""
    s = Serializer("s", fifo=fifo)
    ran: list[str] = []
    results: list[bool] = []

    async def handler() -> None:
        ran.append("handler")  # pragma: no cover

    async def caller() -> None:
        results.append(await s.handler_call(handler))

    async with trio.open_nursery() as nursery:
        await s.enter()
        nursery.start_soon(caller)
        await trio.testing.wait_all_tasks_blocked()
        assert s.statistics().waiters == 1
        s.handler_disable()
        s.exit()
    assert results == [False]
    assert ran == []
    stats = s.statistics()
    assert (stats.held, stats.waiters, stats.handler_disabled) == (False, 0, True)
    # The caller did enter (and leave) the serializer to re-check.
    assert stats.enter_cnt == 2
    s.handler_enable()
    ran_after: list[str] = []

    async def handler2() -> None:
        s.assert_serialized()
        ran_after.append("handler")

    assert await s.handler_call(handler2) is True
    assert ran_after == ["handler"]
