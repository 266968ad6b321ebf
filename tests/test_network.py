"""open_network: hosts, links and switches in one block."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import trionet
from trionet import IfFlags
from trionet.lowlevel import ifq_dispatch

PROTO = 0x88B5


def frame(dst: bytes, src: bytes, seq: int) -> bytes:
    return dst + src + PROTO.to_bytes(2, "big") + seq.to_bytes(4, "big") + bytes(42)


async def test_two_hosts_linked_exchange_frames(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=7) as net:
        h1 = await net.add_host("h1")
        h2 = await net.add_host("h2", ncpus=1)
        link = await net.link(h1, h2, delay=0.002, bandwidth=1e9)
        ifa, ifb = link.ends
        assert isinstance(ifa, trionet.Ifnet) and isinstance(ifb, trionet.Ifnet)
        assert ifa.flags & IfFlags.RUNNING and ifb.flags & IfFlags.RUNNING
        assert [i.name for i in h1.ifnets()] == ["lo0", "vnic0"]
        got: list[int] = []
        h2.netisr_register(PROTO, lambda m: got.append(int.from_bytes(m.data[:4], "big")))
        for i in range(50):
            ifq_dispatch(ifa, frame(ifb.lladdr, ifa.lladdr, i))
        with trio.fail_after(10):
            while len(got) < 50:
                await trio.sleep(0.001)
        assert got == list(range(50))
        link.partition(True)
        ifq_dispatch(ifa, frame(ifb.lladdr, ifa.lladdr, 99))
        await trio.sleep(1)
        assert got[-1] == 49
        assert link.wire.statistics().link_drops >= 1
        link.partition(False)
        with pytest.raises(ValueError):
            link.set_impairments(loss=0.5)  # made without impairments


async def test_leaving_the_block_stops_every_task() -> None:
    before = len(trio.lowlevel.current_root_task().child_nurseries[0].child_tasks)
    async with trionet.open_network(seed=1) as net:
        h1 = await net.add_host("h1")
        h2 = await net.add_host("h2")
        await net.link(h1, h2)
        assert len(h1.ps()) > 0
    after = len(trio.lowlevel.current_root_task().child_nurseries[0].child_tasks)
    assert after == before


async def test_bad_use_is_refused() -> None:
    async with trionet.open_network(seed=1) as net:
        h1 = await net.add_host("h1")
        with pytest.raises(ValueError):
            await net.add_host("h1")
        async with trionet.open_network(seed=2) as other:
            h9 = await other.add_host("h9")
            with pytest.raises(ValueError):
                await net.link(h1, h9)
        h2 = await net.add_host("h2")
        with pytest.raises(ValueError):
            await net.link(h1, h2, lossy=0.1)
    with pytest.raises(TypeError):
        async with trionet.open_network(seed="x"):  # type: ignore[arg-type]
            pass


def test_seeds_derive_stably() -> None:
    from trionet._network import derive_seed

    assert derive_seed(1, "a-b/0") == derive_seed(1, "a-b/0")
    assert derive_seed(1, "a-b/0") != derive_seed(1, "a-b/1")
    assert derive_seed(1, "a-b/0") != derive_seed(2, "a-b/0")
    assert derive_seed(1, "x") == 0xa3e6766a50ef562a  # pinned: stable across processes
