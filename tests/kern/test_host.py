"""open_host: threads, teardown, ps, sysctl."""

import errno

import pytest
import trio
import trio.lowlevel
import trio.testing

import trionet
from trionet import NetError


def _live_tasks() -> set[trio.lowlevel.Task]:
    found = set()
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        found.add(task)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return found


async def _noop() -> None:
    pass


async def test_leaving_open_host_ends_every_thread() -> None:
    async with trionet.open_host("h", ncpus=3) as host:
        host.intr.register(3, _noop, name="x")
        host.intr.sched_ithd(3)
        await trio.testing.wait_all_tasks_blocked()
        tasks = [t.task for t in host.threads()]
        assert len(tasks) == 3 * 3 + 1
        assert all(t in _live_tasks() for t in tasks)
    assert not _live_tasks() & set(tasks)
    assert host.threads() == []


async def test_leaving_open_host_by_exception_ends_every_thread() -> None:
    with pytest.raises(KeyError):
        async with trionet.open_host("h") as host:
            await trio.testing.wait_all_tasks_blocked()
            tasks = {t.task for t in host.threads()}
            raise KeyError("out")
    assert not _live_tasks() & tasks


async def test_a_shut_down_host_takes_no_new_threads() -> None:
    async with trionet.open_host("h") as host:
        pass
    with pytest.raises(trio.ClosedResourceError):
        host.intr.register(1, _noop, name="late")


async def test_ps_lists_every_kernel_thread() -> None:
    async with trionet.open_host("h", ncpus=2) as host:
        host.intr.register(9, _noop, name="em0")
        await trio.testing.wait_all_tasks_blocked()
        rows = host.ps()
        names = [r.name for r in rows]
        assert names == [
            "netisr 0", "netisr 1", "ifnet 0", "ifnet 1",
            "softclock 0", "softclock 1", "ithread 9",
        ]
        assert [r.cpu for r in rows] == [0, 1, 0, 1, 0, 1, 1]
        assert len({r.pid for r in rows}) == len(rows)
        assert all(r.state == "S" for r in rows)
        assert rows[-1].wchan == "intr"
        text = trionet.format_ps(rows)
        assert text.splitlines()[0].split() == ["PID", "CPU", "WCHAN", "STAT", "COMMAND"]
        assert text.splitlines()[-1].split()[-3:] == ["SM", "ithread", "9"]


@pytest.mark.parametrize("ncpus", [0, -1, 1.5, True, "2"])
async def test_open_host_rejects_bad_ncpus(ncpus: object) -> None:
    with pytest.raises(ValueError, match="ncpus"):
        async with trionet.open_host("h", ncpus=ncpus):  # type: ignore[arg-type]
            pass


async def test_sysctl_reads_writes_and_returns_the_old_value() -> None:
    async with trionet.open_host("h", ncpus=4, invariants=False) as host:
        assert host.sysctl("kern.ncpus") == 4
        assert host.sysctl("kern.invariants") == 0
        assert host.sysctl("kern.intr_mpsafe") == 1
        assert host.sysctl("kern.intr_mpsafe", 0) == 1
        assert host.sysctl("kern.intr_mpsafe") == 0
        assert host.sysctl("kern.hostname") == "h"
        assert host.sysctl("net.netisr.batch") == 512
        assert host.sysctl("kern.livelock_limit") == 50000
        assert host.sysctl("kern.livelock_lowater") == 20000


async def test_sysctl_errors_are_clear() -> None:
    async with trionet.open_host("h") as host:
        with pytest.raises(NetError, match="unknown sysctl 'kern.nope'") as info:
            host.sysctl("kern.nope")
        assert info.value.errno == errno.ENOENT
        with pytest.raises(NetError, match="read-only") as info:
            host.sysctl("kern.ncpus", 8)
        assert info.value.errno == errno.EPERM
        with pytest.raises(TypeError, match="takes an int, not str"):
            host.sysctl("kern.intr_mpsafe", "1")
        with pytest.raises(ValueError, match="above 1"):
            host.sysctl("kern.intr_mpsafe", 2)
        with pytest.raises(ValueError, match="below 1"):
            host.sysctl("net.netisr.batch", 0)
        with pytest.raises(TypeError, match="takes a str"):
            host.sysctl("kern.hostname", 5)
        with pytest.raises(NetError, match="read-only"):
            host.sysctl("hw.intrnames", "x")
        # A rejected write changed nothing.
        assert host.sysctl("kern.intr_mpsafe") == 1
        assert host.sysctl("net.netisr.batch") == 512


async def test_sysctl_rows_format_like_sysctl_a() -> None:
    async with trionet.open_host("h") as host:
        text = trionet.format_sysctl(host.sysctls.rows("kern."))
        assert "kern.intr_mpsafe: 1\n" in text
        assert all(line.startswith("kern.") for line in text.splitlines())
        assert text.splitlines() == sorted(text.splitlines())


def test_sysctl_declarations_are_checked() -> None:
    from trionet._kern._sysctl import SysctlTable

    table = SysctlTable()
    table.add("a.b", int, 1, min=0)
    with pytest.raises(ValueError, match="already declared"):
        table.add("a.b", int, 1)
    with pytest.raises(ValueError, match="dotted"):
        table.add("nodots", int, 1)
    with pytest.raises(ValueError, match="below 0"):
        table.add("a.c", int, -1, min=0)
    with pytest.raises(ValueError, match="int or str"):
        table.add("a.d", float, 1.0)


async def test_serializer_factory_follows_host_invariants() -> None:
    async with trionet.open_host("h", invariants=False) as host:
        assert host.serializer("em0").invariants is False
    async with trionet.open_host("h") as host:
        s = host.serializer("em0", fifo=True)
        assert (s.name, s.invariants, s.fifo) == ("em0", True, True)
