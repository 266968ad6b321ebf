"""Kernel threads: Trio tasks registered with their host, and ``ps``.

A :class:`KThread` is the host's record of one of its tasks: its name
(``"ithread 5"``, ``"netisr 1"``), the CPU it stands for, what it is doing
(``state`` and ``wchan``) and how many Giant counts it wants (``mpcount``).
The task itself runs in the host's nursery.

``ps`` flag ``M`` follows the 2005 mail: a thread marked ``M`` runs without the
Big Giant Lock (``mpcount == 0``).

DragonFly: ``struct thread`` (``td_mpcount``, ``td_wmesg``), ``lwkt_create``,
``bin/ps``.
"""

from __future__ import annotations

import attrs
import trio
from trio.lowlevel import Task

__all__ = ["KThread", "PsRow", "format_ps"]


@attrs.define(eq=False)
class KThread:
    """One kernel thread of a host.

    Attributes:
        name: the thread name ``ps`` shows.
        cpu: the CPU index this thread stands for.
        tid: a small number, unique in its host (``ps``'s PID column).
        state: ``"R"`` while it works, ``"S"`` while it sleeps waiting for work,
            ``"Z"`` once it has ended.
        wchan: what a sleeping thread waits on (``"intr"``, ``"msgport"``,
            ``"livelk"``, ``"mplock"``), as ``ps -l`` shows.
        mpcount: Giant counts the thread wants (``td_mpcount``); 0 means it
            runs MPSAFE and ``ps`` shows ``M``.
        task: the Trio task, set when it first runs.
    """

    name: str
    cpu: int
    tid: int
    state: str = "R"
    wchan: str = ""
    mpcount: int = 0
    task: Task | None = None
    cancel_scope: trio.CancelScope = attrs.field(factory=trio.CancelScope, repr=False)

    def cancel(self) -> None:
        """Ask the thread to end: cancel its task (at its next checkpoint).

        Only threads made with ``kthread_create`` may be cancelled by their
        owner; the host's own service threads end with the host.
        """
        self.cancel_scope.cancel()

    @property
    def flags(self) -> str:
        """``ps`` flags: ``M`` when the thread runs without Giant."""
        return "M" if self.mpcount == 0 else ""


@attrs.frozen
class PsRow:
    """One row of :meth:`Host.ps() <trionet.Host.ps>`."""

    pid: int
    name: str
    cpu: int
    state: str
    flags: str
    wchan: str


def format_ps(rows: list[PsRow]) -> str:
    """Format ``ps`` rows in the layout of ``ps axl`` (the columns we model)."""
    lines = [f"{'PID':>5} {'CPU':>3} {'WCHAN':<8} {'STAT':<4} COMMAND"]
    for r in rows:
        lines.append(
            f"{r.pid:>5} {r.cpu:>3} {r.wchan or '-':<8} {r.state + r.flags:<4} {r.name}"
        )
    return "\n".join(lines) + "\n"
