"""Running a topology's scenario: its steps in order, one result each.

::

    topo = load_topology("router.toml")
    async with build_network(topo, seed=1) as built:
        results = await run_scenario(built, progress=print)
    for r in results:
        print(r.summary())

Rules:

1. Steps run in file order, each bounded by its ``timeout`` (Trio time, so
   under :class:`trio.testing.MockClock` a long timeout costs nothing).
2. A step that does not get what it expects (a ping without replies, a
   transfer whose digest differs, a timeout, an error such as
   ``ENETUNREACH``) is a result with ``ok=False`` and an ``error``; the
   next step runs anyway. Only bugs propagate.
3. A result's :attr:`~StepResult.outcome` holds what a rerun with the same
   seed must reproduce (counts, bytes, digests, ``ok``, ``error``), and its
   :attr:`~StepResult.timing` what depends on time (round trips, seconds,
   rates, retransmissions, which follow timers). Compare runs (one process
   against several, real time against virtual) on outcomes only.
4. The receiving side of ``udp_flood`` and ``tcp_transfer`` steps (a UDP
   sink, a TCP server that hashes what it reads and answers with the
   SHA-256 and the byte count) is started on its host for every such step
   before the first step runs, and stopped after the last. The server's
   answer travels back over the connection, so the sender checks the
   digest whether or not the server is in its process; a UDP sink in
   another process reports its count over TCP on the same port.
5. Split runs (``build_network(only_hosts=...)``): a step runs in the
   process of its actor (``from``, ``host``, or either end of ``link``;
   ``wait`` runs everywhere), and elsewhere gives a result with
   ``ran=False``. ``barrier(i)``, if given, is awaited before step ``i``
   and once more (``i == len(steps)``) before the services stop: a
   supervisor makes it a barrier across processes, so steps keep their
   order. Merge the results per index from the processes where they ran.
"""

from __future__ import annotations

import errno
import types
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import attrs
import structlog
import trio

from ._exceptions import TrionetError
from ._build import BuiltNetwork
from ._steps import STEP_KINDS, Step

__all__ = ["Progress", "StepResult", "StepRun", "run_scenario"]

log = structlog.get_logger(__name__)


def _frozen_dict(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return types.MappingProxyType(dict(value))


@attrs.frozen
class Progress:
    """A long step's progress: ``done`` of ``total`` ``unit`` (``"bytes"``, ``"datagrams"``)."""

    index: int
    step: str
    label: str
    done: int
    total: int
    unit: str


@attrs.frozen(kw_only=True)
class StepResult:
    """What one step did.

    Attributes:
        index: the step's position in the scenario.
        step: its kind (``"ping"``...).
        label: its name, or a description (``"ping h1 -> 10.0.3.2"``).
        outcome: deterministic results: counts, bytes, digests, plus
            ``ok`` and (when not ok) ``error``. Read-only.
        timing: what depends on time: ``seconds``, round trips,
            rates, retransmissions. Read-only.
        ran: False for a step that ran in another process (split runs).

    Equality compares everything but ``timing``, so two runs agree when
    their result lists are equal.
    """

    index: int
    step: str
    label: str
    outcome: Mapping[str, Any] = attrs.field(converter=_frozen_dict, factory=dict)
    timing: Mapping[str, Any] = attrs.field(converter=_frozen_dict, factory=dict, eq=False)
    ran: bool = True

    @property
    def ok(self) -> bool:
        return bool(self.outcome.get("ok", True))

    @property
    def error(self) -> str | None:
        return self.outcome.get("error")

    def to_json(self) -> dict[str, Any]:
        """Plain types only (dicts, lists, str, int, float, bool, None)."""
        return {
            "index": self.index,
            "step": self.step,
            "label": self.label,
            "ran": self.ran,
            "ok": self.ok,
            "outcome": _plain(self.outcome),
            "timing": _plain(self.timing),
        }

    def summary(self) -> str:
        """One line: ``[3] ping h1 -> 10.0.3.2: 3/3 replies, rtt 2.0/2.1/2.3 ms  ok``."""
        head = f"[{self.index}] {self.label}"
        if not self.ran:
            return f"{head}: (ran in another process)"
        kind = STEP_KINDS.get(self.step)
        detail = kind.detail(self.outcome, self.timing) if kind is not None else ""
        status = "ok" if self.ok else f"FAILED: {self.error}" if self.error else "FAILED"
        return f"{head}: {detail}  {status}" if detail else f"{head}  {status}"


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


ProgressFn = Callable[[Progress], object]
Barrier = Callable[[int], Awaitable[object]]


@attrs.define(eq=False)
class StepRun:
    """What a step's ``run`` and ``start_service`` get (rule 4 of :mod:`trionet._steps`).

    Attributes:
        built: the network the scenario runs on.
        progress: the ``progress`` callback of :func:`run_scenario`, or None.
        services: step index -> what the step's service left for its run
            (a ``udp_flood``'s sink socket).
    """

    built: BuiltNetwork
    progress: ProgressFn | None
    services: dict[int, Any] = attrs.field(factory=dict)

    def report(self, step: Step, done: int, total: int, unit: str) -> None:
        """Report ``done`` of ``total`` ``unit`` of a long step to ``progress``."""
        if self.progress is not None:
            self.progress(Progress(step.index, step.kind, step.label, done, total, unit))


async def run_scenario(
    built: BuiltNetwork,
    steps: Sequence[Step] | None = None,
    *,
    progress: ProgressFn | None = None,
    barrier: Barrier | None = None,
    on_result: Callable[[StepResult], object] | None = None,
) -> list[StepResult]:
    """Run ``steps`` (default: the topology's scenario) on ``built``.

    Args:
        progress: called with a :class:`Progress` as long steps
            (``tcp_transfer``, ``udp_flood``) advance: at the start, every
            5%, and at the end.
        barrier: awaited with each step's index before it runs, and with
            ``len(steps)`` at the end (see the module docstring).
        on_result: called with each step's result as soon as it is known.

    Returns:
        One :class:`StepResult` per step, in order.

    Cancellation: services stop; the results so far are lost, except those
    already given to ``on_result``.
    """
    if steps is None:
        steps = built.topology.scenario
    run = StepRun(built, progress)
    results: list[StepResult] = []
    async with trio.open_nursery() as services:
        for step in steps:
            await step.start_service(run, services)
        for step in steps:
            if barrier is not None:
                await barrier(step.index)
            actors = step.actors(built.topology)
            if actors and not actors & built.local:
                result = StepResult(index=step.index, step=step.kind, label=step.label, ran=False)
            else:
                result = await _run_step(run, step)
                log.info("step_finished", index=step.index, step=step.kind, ok=result.ok, error=result.error)
            results.append(result)
            if on_result is not None:
                on_result(result)
        if barrier is not None:
            await barrier(len(steps))
        services.cancel_scope.cancel()
    return results


async def _run_step(run: StepRun, step: Step) -> StepResult:
    outcome: dict[str, Any] = {}
    timing: dict[str, Any] = {}
    start = trio.current_time()
    success = False
    error: str | None = None
    try:
        with trio.move_on_after(step.timeout) as scope:
            success, error = await step.run(run, outcome, timing)
        if scope.cancelled_caught:
            success, error = False, f"timed out after {step.timeout:g} s"
    except (TrionetError, OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        success, error = False, _describe(exc)
    timing.setdefault("seconds", trio.current_time() - start)
    expect = getattr(step, "expect", "ok")
    ok = success if expect == "ok" else not success
    outcome["ok"] = ok
    if error is not None and (not ok or expect == "fail"):
        outcome["error"] = error
    elif not ok:
        outcome["error"] = "succeeded, but the step expects it to fail"
    return StepResult(index=step.index, step=step.kind, label=step.label, outcome=outcome, timing=timing)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        return f"{name}: {exc.strerror}"
    if isinstance(exc, trio.BrokenResourceError) and exc.__cause__ is not None:
        return f"connection broken: {_describe(exc.__cause__)}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
