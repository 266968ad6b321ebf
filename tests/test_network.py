"""open_network: hosts, links and switches in one block."""

from __future__ import annotations

import pathlib

import pytest
import trio
import trio.testing

import trionet
from trionet import IfFlags
from trionet.lowlevel import ifq_dispatch
from trionet.testing import linux_peer_unavailable

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


async def test_switch_topology_floods_then_forwards(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=3) as net:
        hosts = [await net.add_host(f"h{i}", ncpus=1) for i in range(3)]
        sw = net.add_switch("sw0")
        links = [await net.link(h, sw, delay=0.001) for h in hosts]
        ifps = [link.ends[0] for link in links]
        seen: dict[str, list[int]] = {h.name: [] for h in hosts}
        for h in hosts:
            h.netisr_register(
                PROTO, lambda m, name=h.name: seen[name].append(int.from_bytes(m.data[:4], "big"))
            )
        # h0 -> broadcast: everyone else hears it; h0's MAC is learned.
        ifq_dispatch(ifps[0], frame(b"\xff" * 6, ifps[0].lladdr, 1))
        await trio.sleep(0.1)
        assert seen == {"h0": [], "h1": [1], "h2": [1]}
        # h1 -> h0 unicast: forwarded to h0's port only.
        ifq_dispatch(ifps[1], frame(ifps[0].lladdr, ifps[1].lladdr, 2))
        await trio.sleep(0.1)
        assert seen == {"h0": [2], "h1": [1], "h2": [1]}
        stats = sw.statistics()
        assert stats.flooded == 1 and stats.forwarded == 1
        assert {row.port for row in sw.mac_table()} == {links[0].ends[1], links[1].ends[1]}


async def test_impaired_link_counts_match_the_injectors(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trionet.open_network(seed=11) as net:
        h1 = await net.add_host("h1", ncpus=1)
        h2 = await net.add_host("h2", ncpus=1)
        link = await net.link(h1, h2, delay=0.001, loss=0.1, duplicate=0.05, reorder=0.05)
        ifa, ifb = link.ends
        got: list[int] = []
        h2.netisr_register(PROTO, lambda m: got.append(int.from_bytes(m.data[:4], "big")))
        sent = 0
        with trio.fail_after(100):
            while sent < 2000:
                # Paced by time (start runs inline, so the send queue does
                # not fill): the far vnic's RX ring must not overflow.
                if len(ifa.snd) < ifa.snd.maxlen and sent % 64 != 63:
                    ifq_dispatch(ifa, frame(ifb.lladdr, ifa.lladdr, sent))
                    sent += 1
                else:
                    if sent % 64 == 63:
                        ifq_dispatch(ifa, frame(ifb.lladdr, ifa.lladdr, sent))
                        sent += 1
                    await trio.sleep(0.001)
            await trio.sleep(1)
        fa = link.faults[0].statistics()
        assert fa.offered == 2000
        assert fa.lost > 0 and fa.duplicated > 0 and fa.reordered > 0
        expected = fa.offered - fa.lost + fa.duplicated
        assert len(got) == expected
        assert ifb.statistics().ipackets == expected
        assert sorted(set(got)) != list(range(2000))  # some really were lost
        assert got != sorted(got)  # and some really were reordered
        link.set_impairments(loss=1.0)
        before = len(got)
        ifq_dispatch(ifa, frame(ifb.lladdr, ifa.lladdr, 5000))
        await trio.sleep(1)
        assert len(got) == before


def _faulty_run(path: str, seed: int) -> None:
    async def main() -> None:
        async with trionet.open_network(seed=seed) as net:
            h1 = await net.add_host("h1", ncpus=1)
            h2 = await net.add_host("h2", ncpus=1)
            link = await net.link(
                h1, h2, delay=0.002, jitter=0.001, loss=0.1, duplicate=0.05, reorder=0.05,
                corrupt=0.02, pcap=path,
            )
            ifa, ifb = link.ends
            for i in range(300):
                ifq_dispatch(ifa, frame(ifb.lladdr, ifa.lladdr, i))
                ifq_dispatch(ifb, frame(ifa.lladdr, ifb.lladdr, 1000 + i))
                await trio.sleep(0.0005)
            await trio.sleep(1)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_same_seed_same_topology_gives_identical_pcap(tmp_path: pathlib.Path) -> None:
    paths = [str(tmp_path / f"run{i}.pcap") for i in range(3)]
    _faulty_run(paths[0], seed=5)
    _faulty_run(paths[1], seed=5)
    _faulty_run(paths[2], seed=6)
    data = [pathlib.Path(p).read_bytes() for p in paths]
    assert len(data[0]) > 24 + 300 * 16
    assert data[0] == data[1]
    assert data[0] != data[2]


async def _addressed(net: trionet.Network, **link: object) -> tuple[trionet.Host, trionet.Host, trionet.Link]:
    h1 = await net.add_host("h1")
    h2 = await net.add_host("h2")
    ln = await net.link(h1, h2, **link)
    h1.ifconfig(ln.ends[0].name, "10.0.0.1/24")
    h2.ifconfig(ln.ends[1].name, "10.0.0.2/24")
    return h1, h2, ln


async def test_carrier_down_and_up_while_running(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=1) as net:
        h1, h2, ln = await _addressed(net, delay=0.001)
        assert (await h1.ping("10.0.0.2", count=1)).received == 1
        ln.set_up(False)
        await trio.sleep(2)  # the vnic polls its link state at 1 Hz
        assert ln.ends[0].link_state is trionet.LinkState.DOWN
        assert (await h1.ping("10.0.0.2", count=2)).received == 0
        ln.set_up(True)
        await trio.sleep(2)
        assert ln.ends[0].link_state is trionet.LinkState.UP
        assert (await h1.ping("10.0.0.2", count=1)).received == 1


async def test_a_partition_keeps_the_carrier(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=1) as net:
        h1, h2, ln = await _addressed(net, delay=0.001, loss=0.0)
        ln.partition(True)
        await trio.sleep(2)
        assert ln.ends[0].link_state is trionet.LinkState.UP
        assert (await h1.ping("10.0.0.2", count=2)).received == 0
        assert ln.faults[0].statistics().partition_dropped >= 2
        ln.partition(False)
        # Let ARP give up on the requests it sent into the partition (its
        # third one may still be pending), as BSD's would.
        await trio.sleep(2)
        assert (await h1.ping("10.0.0.2", count=1)).received == 1


async def test_links_and_hosts_come_and_go(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=1) as net:
        h1, h2, ln = await _addressed(net, delay=0.001)
        await net.remove_link(ln)
        assert net.links == [] and [i.name for i in h1.ifnets()] == ["lo0"]
        assert h1.netstat_r() == [r for r in h1.netstat_r() if not r.destination.startswith("10.")]
        again = await net.link(h1, h2, delay=0.001)
        h1.ifconfig(again.ends[0].name, "10.0.0.1/24")
        h2.ifconfig(again.ends[1].name, "10.0.0.2/24")
        assert (await h1.ping("10.0.0.2", count=1)).received == 1
        await net.remove_host("h2")
        assert list(net.hosts) == ["h1"] and net.links == []
        assert [i.name for i in h1.ifnets()] == ["lo0"]
        h3 = await net.add_host("h2")  # the name is free again
        assert h3 is net.hosts["h2"]
        with pytest.raises(ValueError):
            await net.remove_host("nope")


async def test_udp_links_carry_real_datagrams_on_loopback() -> None:
    # Real time: the frames cross the kernel's UDP on 127.0.0.1.
    with trio.fail_after(20):
        async with trionet.open_network(seed=1) as net:
            h1, h2, ln = await _addressed(net, kind="udp")
            assert ln.kind == "udp"
            assert all(w.local_address[0] == "127.0.0.1" for w in ln.wire)
            assert (await h1.ping("10.0.0.2", count=2, interval=0.05)).received == 2
            ln.partition(True)
            assert (await h1.ping("10.0.0.2", count=1, timeout=0.2)).received == 0
            ln.partition(False)
            assert (await h1.ping("10.0.0.2", count=1)).received == 1
            with pytest.raises(ValueError, match="udp link"):
                await net.link(h1, h2, kind="udp", delay=0.1)
            with pytest.raises(ValueError, match="kind"):
                await net.link(h1, h2, kind="carrier-pigeon")



@pytest.mark.skipif(linux_peer_unavailable() is not None, reason=str(linux_peer_unavailable()))
async def test_a_tap_link_reaches_the_kernel_in_a_namespace() -> None:
    import os

    ns = f"trionet-net-{os.getpid()}"
    await trio.run_process(["ip", "netns", "add", ns])
    try:
        await trio.run_process(
            ["ip", "netns", "exec", ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6"]
        )
        with trio.fail_after(20):
            async with trionet.open_network(seed=1) as net:
                h1 = await net.add_host("h1")
                ln = await net.tap_link(h1, netns=ns, address="198.18.7.2/24")
                assert ln.kind == "tap" and isinstance(ln.ends[1], str)
                h1.ifconfig(ln.ends[0].name, "198.18.7.1/24")
                result = await h1.ping("198.18.7.2", count=2, interval=0.1)
                assert result.received == 2
                await net.remove_link(ln)
                shown = await trio.run_process(["ip", "-n", ns, "-o", "link"], capture_stdout=True)
                assert ln.ends[1] not in shown.stdout.decode()
    finally:
        await trio.run_process(["ip", "netns", "delete", ns], check=False)


async def test_hosts_and_links_go_in_any_order_from_any_task(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=1) as net:
        a, b, c = [await net.add_host(n) for n in "abc"]
        ab = await net.link(a, b)
        bc = await net.link(b, c, loss=0.0)
        await net.remove_host("a")  # the oldest host and the oldest link first
        assert list(net.hosts) == ["b", "c"] and net.links == [bc]
        await net.remove_link(bc)
        assert ab not in net.links
        async with trio.open_nursery() as nursery:  # from another task
            nursery.start_soon(net.add_host, "d")
        assert list(net.hosts) == ["b", "c", "d"]
        await net.link(net.hosts["d"], c)


async def test_half_links_join_two_networks_over_loopback_udp() -> None:
    # Each network holds one side of link "h1-h2", as two processes of a
    # split topology do; the halves meet over 127.0.0.1 (real time).
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s1, socket.socket(
        socket.AF_INET, socket.SOCK_DGRAM
    ) as s2:
        s1.bind(("127.0.0.1", 0))
        s2.bind(("127.0.0.1", 0))
        ports = (s1.getsockname()[1], s2.getsockname()[1])
    with trio.fail_after(20):
        async with trionet.open_network(seed=3) as n1, trionet.open_network(seed=3) as n2:
            h1, h2 = await n1.add_host("h1"), await n2.add_host("h2")
            l1 = await n1.half_link(h1, label="h1-h2", side=0, local_port=ports[0], peer_port=ports[1])
            l2 = await n2.half_link(h2, label="h1-h2", side=1, local_port=ports[1], peer_port=ports[0])
            assert l1.ends[1] is None and l2.ends[0] is None and l1 in n1.links
            h1.ifconfig(l1.ends[0].name, "10.0.0.1/24")
            h2.ifconfig(l2.ends[1].name, "10.0.0.2/24")
            assert (await h1.ping("10.0.0.2", count=2, interval=0.05)).received == 2
            l1.partition(True)
            assert (await h1.ping("10.0.0.2", count=1, timeout=0.2)).received == 0
            l1.partition(False)
            await n1.remove_link(l1)
            assert n1.links == [] and [i.name for i in h1.ifnets()] == ["lo0"]
