"""Message ports: bounded packets, messages, domsg, batches."""

import errno

import pytest
import trio
import trio.testing

import trionet
from trionet import KernelPanic, NetError
from trionet.lowlevel import NetMsg


async def test_a_full_port_drops_and_counts_packets() -> None:
    async with trionet.open_host("h", ncpus=1) as host:
        host.sysctl("net.netisr.maxqlen", 10)
        got: list[int] = []
        host.netisr_register(1, got.append)
        accepted = [host.netisr_queue(1, i) for i in range(15)]
        assert accepted == [True] * 10 + [False] * 5
        await host.netmsg_service_sync()
        assert got == list(range(10))
        stats = host.netisr_statistics().ports[0]
        assert (stats.packets, stats.drops, stats.depth, stats.maxlen) == (10, 5, 0, 10)


async def test_unregistered_protocol_is_a_counted_drop() -> None:
    async with trionet.open_host("h") as host:
        assert host.netisr_queue(99, b"x") is False
        assert host.netisr_statistics().unregistered == 1


async def test_register_rejects_duplicates_and_non_callables() -> None:
    async with trionet.open_host("h") as host:
        host.netisr_register(1, print)
        with pytest.raises(ValueError, match="already registered"):
            host.netisr_register(1, print)
        with pytest.raises(TypeError, match="callable"):
            host.netisr_register(2, None)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="no sched_handler"):
            host.schednetisr(1)


async def test_domsg_returns_the_result_and_raises_the_replied_error() -> None:
    async with trionet.open_host("h") as host:
        port = host.port("ifnet", 1)
        thread = next(t for t in host.threads() if t.name == "ifnet 1")
        ran_on = []

        async def handler(msg: NetMsg) -> int:
            ran_on.append(trio.lowlevel.current_task())
            await trio.lowlevel.checkpoint()
            return msg.arg * 2

        msg = NetMsg(handler, 21)
        assert await port.domsg(msg) == 42
        assert msg.done and ran_on == [thread.task]

        def failing(msg: NetMsg) -> None:
            raise NetError(errno.EADDRINUSE)

        with pytest.raises(NetError) as info:
            await port.domsg(NetMsg(failing))
        assert info.value.errno == errno.EADDRINUSE
        # The thread survived the error and still serves.
        assert await port.domsg(NetMsg(lambda m: "alive")) == "alive"


async def test_a_message_in_flight_cannot_be_sent_again() -> None:
    async with trionet.open_host("h") as host:
        msg = NetMsg(lambda m: None)
        port = host.port("netisr", 0)
        port.sendmsg(msg)
        assert not msg.done
        with pytest.raises(KernelPanic, match="in flight"):
            port.sendmsg(msg)
        await host.netmsg_service_sync()
        assert msg.done


async def test_an_early_reply_lets_the_message_be_resent_while_it_runs() -> None:
    async with trionet.open_host("h") as host:
        port = host.port("ifnet", 0)
        runs = []

        async def handler(msg: NetMsg) -> None:
            msg.reply()  # like if_start_dispatch: reply first, then work
            runs.append(len(runs))
            if len(runs) == 1:
                port.sendmsg(msg)  # re-sent while the first run goes on
            await trio.lowlevel.checkpoint()

        msg = NetMsg(handler)
        port.sendmsg(msg)
        await host.netmsg_service_sync()
        assert runs == [0, 1]
        assert msg.done


async def test_a_domsg_cancelled_while_queued_is_taken_back_and_never_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trionet.open_host("h") as host:
        port = host.port("softclock", 0)
        ran = []

        async def slow(msg: NetMsg) -> None:
            await trio.sleep(10)
            ran.append("slow")

        def quick(msg: NetMsg) -> str:
            ran.append("quick")
            return "answer"

        port.sendmsg(NetMsg(slow))  # keeps the thread busy for 10 s
        msg = NetMsg(quick)
        with trio.move_on_after(1) as scope:
            await port.domsg(msg)
        assert scope.cancelled_caught
        assert msg.done and len(port) == 0
        await trio.sleep(20)
        assert ran == ["slow"]
        assert port.statistics().aborted == 1
        assert await port.domsg(msg) == "answer"  # done, so it may be sent again


async def test_a_domsg_cancelled_while_running_returns_its_reply(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Once the handler started, the caller gets its result, not Cancelled:
    the cancel arrives at the caller's next checkpoint instead, so the caller
    always knows whether the message ran."""
    async with trionet.open_host("h") as host:
        port = host.port("softclock", 0)

        async def slow(msg: NetMsg) -> str:
            await trio.sleep(10)
            return "late"

        msg = NetMsg(slow)
        record = []
        with trio.move_on_after(1) as scope:
            record.append(await port.domsg(msg))
            record.append(trio.current_time())
            await trio.lowlevel.checkpoint()  # the pending cancel lands here
            record.append("not reached")
        assert record == ["late", 10]
        assert scope.cancelled_caught and msg.done
        assert port.statistics().aborted == 0


async def test_a_crashing_handler_crashes_the_host() -> None:
    def boom(pkt: object) -> None:
        raise ZeroDivisionError

    with pytest.RaisesGroup(ZeroDivisionError, flatten_subgroups=True):
        async with trionet.open_host("h") as host:
            host.netisr_register(1, boom)
            host.netisr_queue(1, b"")
            await trio.sleep_forever()
