"""Switch: learning, flooding, forwarding, filtering, aging in virtual time,
a full table, moved addresses, runts, and three vnics on three hosts."""

from __future__ import annotations

import attrs
import pytest
import trio
import trio.testing
from trio.testing import wait_all_tasks_blocked

import trionet
from trionet import Ifnet
from trionet.drivers.vnic import Vnic
from trionet.lowlevel import Mbuf, ifq_dispatch
from trionet.wires import MemoryEndpoint, memory_pair
from trionet.wires import MacTableRow, Switch, SwitchStatistics

PROTO = 0x88B5
BROADCAST = b"\xff" * 6
MULTICAST = bytes.fromhex("01005e000001")


def mac(n: int) -> bytes:
    return bytes.fromhex("0200000000") + bytes((n,))


def frame(dst: bytes, src: bytes, seq: int = 0, size: int = 60) -> bytes:
    return dst + src + PROTO.to_bytes(2, "big") + seq.to_bytes(4, "big") + bytes(size - 18)


@attrs.define
class Station:
    """A test station on a switch port: send with ``ep.send``, read ``got``."""

    ep: MemoryEndpoint
    port: int
    got: list[bytes]

    def send(self, dst: bytes, src: bytes, seq: int = 0) -> None:
        assert self.ep.send(frame(dst, src, seq))

    def take(self) -> list[tuple[bytes, bytes]]:
        """(dst, src) of each frame received since the last take."""
        out = [(f[:6], f[6:12]) for f in self.got]
        self.got.clear()
        return out


def stations(switch: Switch, n: int, *, mtu: int = 1500) -> list[Station]:
    result = []
    for i in range(n):
        near, far = memory_pair(f"s{i}", mtu=mtu)
        got: list[bytes] = []
        near.set_receiver(got.append)
        result.append(Station(near, switch.add_port(far), got))
    return result


def books_balance(s: SwitchStatistics) -> bool:
    return sum(p.rx for p in s.ports) == s.runts + s.flooded + s.forwarded + s.filtered


async def test_learns_floods_unknown_then_forwards_to_the_learned_port_only() -> None:
    sw = Switch("sw0")
    s1, s2, s3 = stations(sw, 3)
    assert (s1.port, s2.port, s3.port) == (1, 2, 3)
    s1.send(mac(2), mac(1))  # B unknown: flooded
    assert s1.take() == [] and s2.take() == [(mac(2), mac(1))] and s3.take() == [(mac(2), mac(1))]
    s2.send(mac(1), mac(2))  # A known on port 1: forwarded there only
    assert s1.take() == [(mac(1), mac(2))] and s3.take() == []
    s1.send(mac(2), mac(1))  # B now known on port 2
    assert s2.take() == [(mac(2), mac(1))] and s3.take() == []
    assert [(r.mac, r.port) for r in sw.mac_table()] == [("02:00:00:00:00:01", 1), ("02:00:00:00:00:02", 2)]
    s = sw.statistics()
    assert (s.flooded, s.forwarded, s.filtered, s.learned, s.moved) == (1, 2, 0, 2, 0)
    assert [(p.port, p.rx, p.tx, p.tx_refused) for p in s.ports] == [(1, 2, 1, 0), (2, 1, 2, 0), (3, 0, 1, 0)]
    assert books_balance(s)


async def test_broadcast_and_multicast_are_always_flooded() -> None:
    sw = Switch("sw0")
    s1, s2, s3 = stations(sw, 3)
    s2.send(mac(1), mac(2))
    s3.send(mac(1), mac(3))
    s1.send(BROADCAST, mac(1))
    s1.send(MULTICAST, mac(1))
    assert s2.take()[-2:] == [(BROADCAST, mac(1)), (MULTICAST, mac(1))]
    assert s3.take()[-2:] == [(BROADCAST, mac(1)), (MULTICAST, mac(1))]
    assert s1.take() == [(mac(1), mac(2)), (mac(1), mac(3))]
    s2.send(mac(9), MULTICAST)  # a multicast source is never learned
    assert sw.statistics().flooded == 5
    assert all(r.mac != MULTICAST.hex(":") for r in sw.mac_table())


async def test_a_destination_on_the_ingress_port_is_filtered() -> None:
    sw = Switch("sw0")
    s1, s2 = stations(sw, 2)
    s1.send(BROADCAST, mac(1))  # mac 1 and mac 5 both behind port 1 (a hub there)
    s1.send(BROADCAST, mac(5))
    s2.take()
    s1.send(mac(5), mac(1))
    assert s2.take() == [] and s1.take() == []
    s = sw.statistics()
    assert s.filtered == 1 and books_balance(s)


async def test_entries_age_out_in_virtual_time(autojump_clock: trio.testing.MockClock) -> None:
    sw = Switch("sw0", aging=10.0)
    s1, s2, s3 = stations(sw, 3)
    s1.send(BROADCAST, mac(1))
    await trio.sleep(9.5)
    assert sw.mac_table() == [MacTableRow("02:00:00:00:00:01", 1, pytest.approx(9.5))]
    s2.send(mac(1), mac(2))  # still known: forwarded
    assert s3.take() == [(BROADCAST, mac(1))]
    await trio.sleep(1)  # mac 1 is 10.5 s old now
    assert [r.mac for r in sw.mac_table()] == ["02:00:00:00:00:02"]
    s2.send(mac(1), mac(2))  # expired: flooded again
    assert s3.take() == [(mac(1), mac(2))]
    assert s1.take() == [(mac(1), mac(2))] * 2  # forwarded, then flooded
    s = sw.statistics()
    assert s.aged == 1 and s.forwarded == 1 and s.flooded == 2
    s1.send(mac(2), mac(1))  # re-learned, and a refresh keeps it alive
    for _ in range(3):
        await trio.sleep(6)
        s1.send(mac(2), mac(1))
    s2.take()
    s3.send(mac(1), mac(3))
    assert s1.take() == [(mac(1), mac(3))] and s2.take() == []
    assert sw.statistics().learned == 4


async def test_an_expired_source_is_learned_afresh_not_moved(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sw = Switch("sw0", aging=10.0)
    s1, s2 = stations(sw, 2)
    s1.send(BROADCAST, mac(1))
    await trio.sleep(10)
    s2.send(BROADCAST, mac(1))  # the old entry expired: a new one, on port 2
    s = sw.statistics()
    assert (s.learned, s.aged, s.moved) == (2, 1, 0)
    assert sw.mac_table() == [MacTableRow("02:00:00:00:00:01", 2, 0.0)]


async def test_a_full_table_ages_out_first_then_stops_learning(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sw = Switch("sw0", aging=10.0, max_entries=2)
    s1, s2, s3 = stations(sw, 3)
    s1.send(BROADCAST, mac(1))
    await trio.sleep(5)
    s2.send(BROADCAST, mac(2))
    s3.send(BROADCAST, mac(3))  # full, nothing expired: not learned
    s = sw.statistics()
    assert s.table_full == 1 and s.entries == 2 and s.learned == 2
    s1.take()
    s2.send(mac(3), mac(2))  # unknown: flooded
    assert s1.take() == [(mac(3), mac(2))]
    await trio.sleep(5)  # mac 1 expires
    s3.send(BROADCAST, mac(3))  # the expired entry goes, mac 3 is learned
    assert [(r.mac, r.port) for r in sw.mac_table()] == [("02:00:00:00:00:02", 2), ("02:00:00:00:00:03", 3)]
    s = sw.statistics()
    assert (s.table_full, s.aged, s.learned, s.entries) == (1, 1, 3, 2)
    assert books_balance(s)


async def test_an_address_seen_on_another_port_moves() -> None:
    sw = Switch("sw0")
    s1, s2, s3 = stations(sw, 3)
    s1.send(BROADCAST, mac(7))
    s2.send(BROADCAST, mac(7))  # the station moved to port 2
    s3.send(mac(7), mac(3))
    assert s2.take()[-1] == (mac(7), mac(3)) and s1.take() == [(BROADCAST, mac(7))]
    s = sw.statistics()
    assert s.moved == 1 and s.learned == 2
    assert [(r.mac, r.port) for r in sw.mac_table()] == [("02:00:00:00:00:07", 2), ("02:00:00:00:00:03", 3)]


async def test_runts_are_counted_and_dropped() -> None:
    sw = Switch("sw0")
    s1, s2 = stations(sw, 2)
    assert s1.ep.send(BROADCAST + mac(1))  # 12 bytes
    assert s1.ep.send(b"")
    assert s2.take() == []
    s = sw.statistics()
    assert s.runts == 2 and s.learned == 0 and books_balance(s)


async def test_refused_frames_and_removed_ports() -> None:
    sw = Switch("sw0")
    big, small = stations(sw, 1)[0], stations(sw, 1, mtu=100)[0]
    assert big.ep.send(frame(BROADCAST, mac(1), size=200))
    assert small.got == []
    ports = {p.port: p for p in sw.statistics().ports}
    assert ports[small.port].tx_refused == 1 and ports[small.port].tx == 0
    small.send(BROADCAST, mac(2))
    assert len(sw.mac_table()) == 2
    sw.remove_port(small.port)
    assert [r.port for r in sw.mac_table()] == [big.port]
    assert list(sw.ports()) == [big.port]
    big.send(mac(2), mac(1))  # mac 2 forgotten: flooded to nobody
    assert sw.statistics().flooded == 3
    with pytest.raises(ValueError, match="no port"):
        sw.remove_port(small.port)
    with pytest.raises(ValueError, match="already"):
        sw.add_port(big.ep.peer)  # type: ignore[arg-type]
    assert sw.add_port(memory_pair()[0]) == 3  # numbers are not reused


async def test_bad_arguments() -> None:
    for kwargs in ({"aging": 0}, {"aging": float("inf")}, {"max_entries": 0}, {"max_entries": 1.5}):
        with pytest.raises(ValueError):
            Switch("sw", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Switch("")


async def test_three_vnics_on_three_hosts_through_a_switch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sw = Switch("sw0")
    async with (
        trionet.open_host("h1") as h1,
        trionet.open_host("h2") as h2,
        trionet.open_host("h3") as h3,
    ):
        hosts = (h1, h2, h3)
        ifps: list[Ifnet] = []
        vnics: list[Vnic] = []
        got: list[list[tuple[int, int]]] = [[], [], []]
        for i, host in enumerate(hosts):
            near, far = memory_pair(f"h{i + 1}")
            sw.add_port(far)
            vnic = Vnic(near)
            ifp = await host.if_attach(vnic)
            await host.ifup(ifp)
            ifps.append(ifp)
            vnics.append(vnic)

            def sink(m: Mbuf, into: list[tuple[int, int]] = got[i]) -> None:
                into.append((m.src[-1], int.from_bytes(m.data[:4], "big")))

            host.netisr_register(PROTO, sink)
        # Each host says hello to everyone, then sends 50 frames to each other host.
        for ifp in ifps:
            ifq_dispatch(ifp, frame(BROADCAST, ifp.lladdr, 0))
        await wait_all_tasks_blocked()
        for seq in range(1, 51):
            for src in ifps:
                for dst in ifps:
                    if dst is not src:
                        ifq_dispatch(src, frame(dst.lladdr, src.lladdr, seq))
            await wait_all_tasks_blocked()
        for i in range(3):
            for j in range(3):
                if i != j:
                    from_j = [seq for last, seq in got[i] if last == ifps[j].lladdr[-1]]
                    assert from_j == list(range(51))
        s = sw.statistics()
        assert s.flooded == 3 and s.forwarded == 300 and s.learned == 3
        assert books_balance(s)
        for ifp, vnic in zip(ifps, vnics, strict=True):
            st = ifp.statistics()
            assert st.opackets == 101 and st.ipackets == 102
            assert vnic.statistics().rx_filtered == 0  # nothing flooded after learning
        assert sorted(r.mac for r in sw.mac_table()) == sorted(ifp.lladdr.hex(":") for ifp in ifps)


####################################################################
# Loops (no spanning tree)
####################################################################


async def test_a_loop_of_zero_delay_links_cuts_the_storm_and_time_moves_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Two switches joined by two links without delay: one broadcast
    circulates both ways without time passing; each copy is cut after
    MAX_INSTANT_HOPS wires, counted, and then the clock moves again."""
    from trionet.wires import MAX_INSTANT_HOPS, MemoryWire

    s1, s2 = Switch("s1"), Switch("s2")
    async with MemoryWire(name="l1") as l1, MemoryWire(name="l2") as l2:
        for wire in (l1, l2):
            s1.add_port(wire.endpoint())
            s2.add_port(wire.endpoint())
        (h1,) = stations(s1, 1)
        (h2,) = stations(s2, 1)
        with trio.fail_after(10):  # virtual seconds: before, the clock never moved
            h1.send(BROADCAST, mac(1))
            await trio.sleep(1)
        drops = l1.statistics().loop_drops + l2.statistics().loop_drops
        assert drops == 2  # one copy each way round the loop
        # h1's own wire is hop 1; each copy then crossed the loop's wires at
        # hops 2..MAX (each crossing flooded by the switch behind it), and a
        # host heard it after each crossing but the last (one hop too many).
        assert len(h2.take()) + len(h1.take()) == 2 * (MAX_INSTANT_HOPS - 2)
        flooded = s1.statistics().flooded + s2.statistics().flooded
        assert flooded == 1 + 2 * (MAX_INSTANT_HOPS - 1)


async def test_a_loop_of_memory_pairs_is_cut_too_without_recursing_forever() -> None:
    from trionet.wires import MAX_INSTANT_HOPS

    s1, s2 = Switch("s1"), Switch("s2")
    for _ in range(2):
        a, b = memory_pair("loop")
        s1.add_port(a)
        s2.add_port(b)
    (h1,) = stations(s1, 1)
    (h2,) = stations(s2, 1)
    h1.send(BROADCAST, mac(1))  # returns: no RecursionError
    got = len(h1.take()) + len(h2.take())
    assert 0 < got < 2 * MAX_INSTANT_HOPS
