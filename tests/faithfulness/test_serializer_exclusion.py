"""Mutual exclusion of the Serializer under random interleavings (reference/dragonfly.md
section 1 "Guarantees", the serializer half of check 1 of section 9).

A sync Hypothesis test that runs its own ``trio.run`` under an autojumping
MockClock, since Hypothesis and pytest-trio's async tests do not mix.
"""

from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trionet import Serializer

# Sleeps in virtual time; 0 means a bare checkpoint.
GAPS = st.sampled_from([0.0, 0.0, 0.0005, 0.001, 0.003])

OPS = st.one_of(
    # async with serializer: k checkpoints (or sleeps) inside
    st.tuples(st.just("enter"), st.integers(0, 3), GAPS),
    # try_enter, and if it succeeded k checkpoints then exit
    st.tuples(st.just("try"), st.integers(0, 3), GAPS),
    # handler_call of an async handler with k checkpoints inside
    st.tuples(st.just("call"), st.integers(0, 3), GAPS),
    # async with under move_on_after(timeout): may be cancelled waiting or inside
    st.tuples(st.just("timed"), st.integers(0, 3), st.sampled_from([0.0005, 0.001, 0.002])),
)

SCENARIO = st.lists(
    st.tuples(st.lists(OPS, min_size=1, max_size=6), GAPS),  # (ops, gap between ops)
    min_size=2,
    max_size=6,
)


@attrs.define
class Probe:
    ser: Serializer
    occupancy: int = 0
    max_occupancy: int = 0
    violations: list[str] = attrs.field(factory=list)
    sections: int = 0
    entered: int = 0  # acquisitions through enter() (async with, handler_call)
    try_ok: int = 0
    try_fail: int = 0
    calls_ran: int = 0

    async def critical(self, k: int, gap: float, who: str) -> None:
        self.occupancy += 1
        self.max_occupancy = max(self.max_occupancy, self.occupancy)
        self.sections += 1
        try:
            self.check(who)
            for _ in range(k):
                await trio.sleep(gap)
                self.check(who)
        finally:
            self.occupancy -= 1

    def check(self, who: str) -> None:
        stats = self.ser.statistics()
        if self.occupancy != 1:
            self.violations.append(f"{who}: occupancy {self.occupancy}")
        if not stats.held:
            self.violations.append(f"{who}: inside while the serializer is free")
        if self.ser.invariants and stats.owner is not trio.lowlevel.current_task():
            self.violations.append(f"{who}: inside but owner is {stats.owner!r}")


async def _worker(
    probe: Probe, name: str, ops: list[tuple[str, int, float]], gap: float, iterations: int
) -> None:
    ser = probe.ser
    for _ in range(iterations):
        for op, k, arg in ops:
            await trio.sleep(gap)
            if op == "enter":
                async with ser:
                    probe.entered += 1
                    await probe.critical(k, arg, name)
            elif op == "try":
                if ser.try_enter():
                    probe.try_ok += 1
                    try:
                        await probe.critical(k, arg, name)
                    finally:
                        ser.exit()
                else:
                    probe.try_fail += 1
            elif op == "call":
                ran = await ser.handler_call(probe.critical, k, arg, name)
                if not ran:
                    probe.violations.append(f"{name}: enabled handler did not run")
                probe.entered += 1
                probe.calls_ran += 1
            else:
                with trio.move_on_after(arg):
                    async with ser:
                        probe.entered += 1
                        await probe.critical(k, 0.001, name)


async def _scenario(probe: Probe, scenario: list[Any], iterations: int) -> None:
    async with trio.open_nursery() as nursery:
        for i, (ops, gap) in enumerate(scenario):
            nursery.start_soon(_worker, probe, f"task{i}", ops, gap, iterations)


@pytest.mark.parametrize("fifo", [False, True], ids=["racing", "fifo"])
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario=SCENARIO, iterations=st.integers(1, 3), invariants=st.booleans())
def test_random_interleavings_never_admit_two_holders(
    fifo: bool, scenario: list[Any], iterations: int, invariants: bool
) -> None:
    """Section 1 / check 1: whatever mix of enter/exit, try_enter and
    handler_call 2-6 tasks perform, with checkpoints and sleeps inside and
    timeouts around, at most one task is ever inside; at the end the
    serializer is free with no sleepers, and the counters add up."""
    ser = Serializer("s", invariants=invariants, fifo=fifo)
    probe = Probe(ser)
    trio.run(
        _scenario,
        probe,
        scenario,
        iterations,
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    assert probe.violations == []
    assert probe.occupancy == 0
    assert probe.max_occupancy == (1 if probe.sections else 0)
    assert probe.sections == probe.entered + probe.try_ok
    stats = ser.statistics()
    assert (stats.held, stats.owner, stats.waiters) == (False, None, 0)
    assert stats.enter_cnt == probe.entered
    assert stats.try_cnt == probe.try_ok + probe.try_fail
    assert stats.tryfail_cnt == probe.try_fail
    n_try = sum(op == "try" for ops, _ in scenario for op, _, _ in ops) * iterations
    assert stats.try_cnt == n_try
    n_untimed = sum(op in ("enter", "call") for ops, _ in scenario for op, _, _ in ops)
    assert probe.entered >= n_untimed * iterations
