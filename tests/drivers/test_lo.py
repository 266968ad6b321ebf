"""The loopback driver: conformance, round trip, an echo chain, and ordering."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from trio.testing import wait_all_tasks_blocked

import trionet
from trionet import IfFlags, LinkState
from trionet.drivers.lo import Loopback
from trionet.lowlevel import Mbuf, ifq_dispatch
from trionet.testing import check_driver

PROTO = 0x88B5
ZERO = bytes(6)


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def frame(payload: bytes) -> bytes:
    return ZERO + ZERO + PROTO.to_bytes(2, "big") + payload


async def test_lo_passes_check_driver(autojump_clock: trio.abc.Clock) -> None:
    report = await check_driver(lambda ep: Loopback())
    assert [check for check, _ in report.skipped] == [
        "OACTIVE stops start until TX completion",
        "detach waits for an interrupt in flight",
    ]
    assert "loopback output comes back as input" in report.passed
    assert "every entry point ran serialized" in report.passed
    assert "frames reach the wire in order" not in report.passed
    assert report.calls.get("intr", 0) == 0
    assert report.calls["init"] >= 1 and report.calls["stop"] >= 1


async def test_lo_round_trip_and_counters(autojump_clock: trio.abc.Clock) -> None:
    async with trionet.open_host("h1") as host:
        got: list[Mbuf] = []
        host.netisr_register(PROTO, got.append)
        lo = await host.if_attach(Loopback())
        assert lo.name == "lo0"
        assert lo.mtu == 16384
        assert lo.link_state is LinkState.UP
        assert lo.lladdr == b""
        assert lo.irq is None
        assert lo.flags == IfFlags.LOOPBACK | IfFlags.MULTICAST
        await host.ifup(lo)
        assert lo.flags == IfFlags.UP | IfFlags.RUNNING | IfFlags.LOOPBACK | IfFlags.MULTICAST
        payload = b"hello, loopback" + bytes(31)
        ifq_dispatch(lo, frame(payload))
        await wait_all_tasks_blocked()
        assert len(got) == 1
        m = got[0]
        assert bytes(m.data) == payload
        assert m.rcvif is lo
        assert m.flags == 0
        assert m.src == ZERO and m.dst == ZERO
        stats = lo.statistics()
        assert (stats.ipackets, stats.opackets) == (1, 1)
        assert stats.ibytes == stats.obytes == 14 + len(payload)
        assert (stats.ierrors, stats.oerrors, stats.noproto, stats.imcasts, stats.omcasts) == (
            0, 0, 0, 0, 0,
        )
        assert len(lo.snd) == 0


async def test_lo_echo_chain_of_100_hops(autojump_clock: trio.abc.Clock) -> None:
    """A handler that sends every packet back out on lo0 (from the protocol
    thread) until its hop count runs out: 100 receptions, no deadlock."""
    async with trionet.open_host("h1") as host:
        lo = await host.if_attach(Loopback())
        hops: list[int] = []

        def echo(m: Mbuf) -> None:
            hop = int.from_bytes(m.data[:4], "big")
            hops.append(hop)
            if hop > 0:
                ifq_dispatch(lo, frame((hop - 1).to_bytes(4, "big") + bytes(42)))

        host.netisr_register(PROTO, echo)
        await host.ifup(lo)
        with trio.fail_after(10):
            ifq_dispatch(lo, frame((99).to_bytes(4, "big") + bytes(42)))
            for _ in range(200):
                await wait_all_tasks_blocked()
                if len(hops) == 100:
                    break
        assert hops == list(range(99, -1, -1))
        await wait_all_tasks_blocked()
        stats = lo.statistics()
        assert (stats.ipackets, stats.opackets) == (100, 100)
        assert stats.ibytes == stats.obytes == 100 * 60
        assert (stats.oqdrops, stats.iqdrops, stats.oerrors) == (0, 0, 0)
        assert len(hops) == 100


async def test_lo_many_frames_arrive_in_order_paced_by_the_send_queue(autojump_clock: trio.abc.Clock) -> None:
    """With ``ifq_dispatch_schedonly``, start runs on the ifnet thread, so a
    sender that never yields fills the 1024-frame send queue and must wait."""
    async with trionet.open_host("h1") as host:
        host.sysctl("net.link.generic.ifq_dispatch_schedonly", 1)
        seqs: list[int] = []
        host.netisr_register(PROTO, lambda m: seqs.append(int.from_bytes(m.data[:4], "big")))
        lo = await host.if_attach(Loopback())
        await host.ifup(lo)
        n = 3000  # more than the 1024-frame send queue, so the pacing matters
        assert lo.snd.maxlen == 1024
        sent = 0
        waits = 0
        for _ in range(n * 10):  # bounded
            if sent == n:
                break
            if len(lo.snd) >= lo.snd.maxlen:
                waits += 1
                await wait_all_tasks_blocked()
                continue
            ifq_dispatch(lo, frame(sent.to_bytes(4, "big") + bytes(42)))
            sent += 1
        assert sent == n
        assert waits >= 2
        await wait_all_tasks_blocked()
        assert seqs == list(range(n))


async def test_lo_many_frames_arrive_in_order_with_start_inline(autojump_clock: trio.abc.Clock) -> None:
    """By default ifq_dispatch runs start inline: the send queue stays empty
    and the frames wait in the netisr queue instead, which a sender paces by
    yielding now and then (a full netisr queue drops, counted)."""
    async with trionet.open_host("h1") as host:
        seqs: list[int] = []
        host.netisr_register(PROTO, lambda m: seqs.append(int.from_bytes(m.data[:4], "big")))
        lo = await host.if_attach(Loopback())
        await host.ifup(lo)
        n = 3000
        for i in range(n):
            ifq_dispatch(lo, frame(i.to_bytes(4, "big") + bytes(42)))
            assert len(lo.snd) == 0
            if i % 500 == 499:
                await wait_all_tasks_blocked()
        await wait_all_tasks_blocked()
        assert seqs == list(range(n))
        assert lo.statistics().iqdrops == 0
        stats = lo.statistics()
        assert (stats.ipackets, stats.opackets, stats.oqdrops, stats.iqdrops) == (n, n, 0, 0)
        assert stats.obytes == stats.ibytes == n * 60
        assert len(lo.snd) == 0
