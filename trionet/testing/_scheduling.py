"""Trio's deterministic scheduling, for runs that must replay exactly."""

from __future__ import annotations

import trio

__all__ = ["deterministic_scheduling"]


def deterministic_scheduling(seed: int) -> None:
    """Make Trio order the tasks that are ready at the same moment by
    ``seed`` instead of by a coin the OS seeded, for the rest of the process.

    Trio runs the tasks ready together in an order it randomises on purpose
    (each batch is shuffled or reversed), to shake out races. A socket call
    of trionet works on the socket buffers in the caller's task, so when an
    application task and a protocol thread are ready at the same virtual
    instant, which runs first can shift segment boundaries and timings.
    With this switch the order follows ``seed``, so a run in virtual time
    replays exactly: ``trionet run`` and ``trionet demo`` turn it on in
    virtual time, and the pytest plugin's fixtures with the test's seed.

    It sets Trio's private ``_ALLOW_DETERMINISTIC_SCHEDULING`` and seeds its
    ``_r``, the switch pytest-trio and Hypothesis use; a Trio release that
    renames them makes this a no-op (the run is then merely not replayable).
    """
    run = getattr(getattr(trio, "_core", None), "_run", None)
    r = getattr(run, "_r", None)
    if run is None or r is None or not hasattr(run, "_ALLOW_DETERMINISTIC_SCHEDULING"):
        return
    run._ALLOW_DETERMINISTIC_SCHEDULING = True
    r.seed(seed)
