"""Cancel an async call at each of its checkpoints in turn.

:func:`cancel_after` runs ``afn()`` in the calling task and cancels it when
the task has yielded to the scheduler ``k`` times inside it (``k == 0``:
cancelled before it starts, so its first cancel point raises). A Trio
instrument counts the task's steps, so the cancel lands exactly at the k-th
schedule point, whichever kind it is: a park (the call is cancelled there),
or a shielded checkpoint after the work (the call completes and the cancel is
left for later, which is what those checkpoints are for).

:func:`each_checkpoint` yields ``k = 0, 1, 2...`` until a run in which the
cancel no longer came before the call returned: by then every checkpoint of
the call has been tried.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import attrs
import trio

#: More checkpoints than any call under test takes; a loop past it is a bug.
MAX_CHECKPOINTS = 64


class _CancelAfterSteps(trio.abc.Instrument):
    def __init__(self, task: trio.lowlevel.Task, k: int, scope: trio.CancelScope) -> None:
        self.task, self.k, self.scope = task, k, scope
        self.steps = 0
        self.fired = k == 0

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.steps += 1
            if self.steps == self.k:
                self.fired = True
                self.scope.cancel()


@attrs.define
class Outcome:
    """What one run did: ``cancelled`` (the call raised ``Cancelled``),
    ``result`` (its return value otherwise) and ``reached`` (the cancel was
    requested before the call returned)."""

    cancelled: bool = False
    result: Any = None
    reached: bool = False


async def cancel_after(k: int, afn: Callable[[], Awaitable[Any]]) -> Outcome:
    """Run ``afn()``, cancelling it after the calling task's ``k``-th yield."""
    outcome = Outcome()
    with trio.CancelScope() as scope:
        inst = _CancelAfterSteps(trio.lowlevel.current_task(), k, scope)
        if k == 0:
            scope.cancel()
        trio.lowlevel.add_instrument(inst)
        try:
            outcome.result = await afn()
        finally:
            trio.lowlevel.remove_instrument(inst)
            outcome.reached = inst.fired
    outcome.cancelled = scope.cancelled_caught
    return outcome


def each_checkpoint() -> Iterator[tuple[int, Callable[[Outcome], None]]]:
    """``for k, done in each_checkpoint(): ...; done(outcome)``: stops after
    the first run whose call returned before the cancel was requested."""
    finished = False

    def done(outcome: Outcome) -> None:
        nonlocal finished
        finished = not outcome.reached and not outcome.cancelled

    for k in range(MAX_CHECKPOINTS):
        yield k, done
        if finished:
            return
    raise AssertionError(f"still not done after {MAX_CHECKPOINTS} checkpoints")
