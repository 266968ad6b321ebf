"""MemoryWire: a link or hub in Trio time."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from trio.testing import wait_all_tasks_blocked

import trionet
from trionet.drivers.vnic import Vnic
from trionet.lowlevel import ifq_dispatch
from trionet.wires import MemoryWire


def frame(seq: int, size: int = 100) -> bytes:
    return b"\xff" * 6 + b"\x02" + bytes(5) + b"\x88\xb5" + seq.to_bytes(4, "big") + bytes(size - 18)


async def test_point_to_point_without_delay_delivers_in_order_inside_send() -> None:
    async with MemoryWire() as wire:
        a, b = wire.endpoint(), wire.endpoint()
        got: list[bytes] = []
        b.set_receiver(got.append)
        a.set_receiver(got.append)
        for i in range(10):
            assert a.send(frame(i))
            assert got[-1] == frame(i)  # no delay: delivered by send itself
        assert got == [frame(i) for i in range(10)]
        assert b.statistics().rx_frames == 10 and a.statistics().tx_frames == 10
        assert wire.statistics().delivered == 10 and wire.statistics().in_flight == 0
        with pytest.raises(ValueError):
            wire.endpoint()


async def test_with_a_delay_the_wires_task_delivers(autojump_clock: trio.testing.MockClock) -> None:
    async with MemoryWire(delay=0.001) as wire:
        a, b = wire.endpoint(), wire.endpoint()
        got: list[bytes] = []
        b.set_receiver(got.append)
        for i in range(10):
            assert a.send(frame(i))
        assert got == []  # in flight
        await trio.sleep(0.002)
        assert got == [frame(i) for i in range(10)]


async def test_a_frame_sent_back_from_inside_a_delivery_is_deferred_not_recursed() -> None:
    """A receiver that answers on the same wire from inside its delivery (a
    bridge does) does not recurse: the answer goes to the wire's task."""
    async with MemoryWire() as wire:
        a, b = wire.endpoint(), wire.endpoint()
        got: list[bytes] = []
        a.set_receiver(got.append)
        b.set_receiver(lambda f: b.send(b"re:" + f))
        assert a.send(frame(1))
        assert got == [] and wire.statistics().in_flight == 1
        await wait_all_tasks_blocked()
        assert got == [b"re:" + frame(1)]


async def test_serialisation_and_propagation_delay(autojump_clock: trio.testing.MockClock) -> None:
    async with MemoryWire(bandwidth=8000, delay=0.25) as wire:
        a, b = wire.endpoint(), wire.endpoint()
        arrivals: list[float] = []
        b.set_receiver(lambda f: arrivals.append(trio.current_time()))
        t0 = trio.current_time()
        for i in range(3):
            assert a.send(frame(i))  # 100 bytes = 800 bits = 0.1 s at 8 kbit/s
        await trio.sleep(2)
        assert [round(t - t0, 6) for t in arrivals] == [0.35, 0.45, 0.55]


async def test_full_transmit_queue_refuses_and_counts(autojump_clock: trio.testing.MockClock) -> None:
    async with MemoryWire(bandwidth=8000, queue_len=4) as wire:
        a, b = wire.endpoint(), wire.endpoint()
        got: list[bytes] = []
        b.set_receiver(got.append)
        results = [a.send(frame(i)) for i in range(7)]
        assert results == [True] * 4 + [False] * 3
        assert wire.statistics().queue_drops == 3
        assert a.statistics().tx_drops == 3
        await trio.sleep(0.15)  # one frame has left the queue
        assert a.send(frame(7))
        await trio.sleep(1)
        assert [int.from_bytes(f[14:18], "big") for f in got] == [0, 1, 2, 3, 7]


async def test_oversize_link_down_closed_and_no_receiver(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wire = MemoryWire(mtu=100, delay=1.0)
    a, b = wire.endpoint(), wire.endpoint()
    assert not a.send(frame(0))  # not open yet
    async with wire:
        assert not a.send(frame(1, size=200))
        assert wire.statistics().oversize == 1
        assert a.send(frame(2))  # b has no receiver
        await trio.sleep(2)
        assert b.statistics().rx_drops == 1
        got: list[bytes] = []
        b.set_receiver(got.append)
        assert a.send(frame(3))
        wire.set_link(False)  # cut while the frame is in flight
        assert not a.link_up
        assert not a.send(frame(4))
        await trio.sleep(2)
        assert got == []
        wire.set_link(True)
        assert a.send(frame(5))
    # Left with one frame in flight: discarded and counted.
    assert wire.statistics().link_drops == 4
    assert wire.statistics().in_flight == 0


async def test_hub_repeats_to_every_other_endpoint() -> None:
    async with MemoryWire(hub=True) as hub:
        eps = [hub.endpoint() for _ in range(4)]
        seen: dict[int, list[bytes]] = {i: [] for i in range(4)}
        for i, ep in enumerate(eps):
            ep.set_receiver(seen[i].append)
        eps[2].send(frame(9))
        await wait_all_tasks_blocked()
        assert {i: len(v) for i, v in seen.items()} == {0: 1, 1: 1, 2: 0, 3: 1}
        assert hub.statistics().delivered == 3


async def test_two_vnics_over_a_slow_long_link(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_host("h1") as h1, trionet.open_host("h2") as h2:
        async with MemoryWire(bandwidth=10e6, delay=0.005, queue_len=1000) as wire:
            ifa = await h1.if_attach(Vnic(wire.endpoint()))
            ifb = await h2.if_attach(Vnic(wire.endpoint()))
            await h1.ifup(ifa)
            await h2.ifup(ifb)
            got: list[tuple[int, float]] = []
            h2.netisr_register(
                0x88B5, lambda m: got.append((int.from_bytes(m.data[:4], "big"), trio.current_time()))
            )
            t0 = trio.current_time()
            sent = 0
            with trio.fail_after(60):  # virtual seconds: bounds the loops
                while sent < 500:
                    if len(ifa.snd) < ifa.snd.maxlen:
                        ifq_dispatch(ifa, ifb.lladdr + frame(sent)[6:])
                        sent += 1
                    else:
                        await trio.sleep(0.001)
                while len(got) < 500:
                    await trio.sleep(0.01)
        assert [s for s, _ in got] == list(range(500))
        # 500 frames of 100 bytes at 10 Mbit/s take at least 40 ms, plus 5 ms.
        assert got[-1][1] - t0 == pytest.approx(0.045)
        stats = ifa.statistics()
        assert stats.opackets == 500 and stats.oerrors == 0


async def test_body_exception_comes_out_unwrapped() -> None:
    wire = MemoryWire()
    with pytest.raises(KeyError):
        async with wire:
            raise KeyError("x")
    assert not wire.endpoint().send(frame(0))  # closed
