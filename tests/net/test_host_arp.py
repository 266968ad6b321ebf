"""Static ARP entries (``arp -s``/``arp -d``) and the ``arp -an`` view."""

from __future__ import annotations

import errno

import pytest
import trio
import trio.testing

import trionet

pytestmark = pytest.mark.trio

A, B = "10.0.0.1", "10.0.0.2"


async def _pair(net: trionet.Network) -> tuple[trionet.Host, trionet.Host, str]:
    a = await net.add_host("a")
    b = await net.add_host("b")
    lk = await net.link(a, b, delay=0.001)
    a.ifconfig(lk.ends[0].name, f"{A}/24")
    b.ifconfig(lk.ends[1].name, f"{B}/24")
    return a, b, lk.ends[1].name


async def test_a_static_entry_is_used_and_never_replaced(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=1) as net:
        a, b, bname = await _pair(net)
        b_mac = b.ifconfig(bname).lladdr.hex(":")
        a.arp_add(B, b_mac, "vnic0")
        (row,) = a.arp()
        assert (row.address, row.lladdr, row.netif, row.permanent, row.expires) == (B, b_mac, "vnic0", True, None)
        assert trionet.format_arp([row]) == f"? ({B}) at {b_mac} on vnic0 permanent [ethernet]\n"
        requests = a.inet.arp.cache.statistics().requests
        assert (await a.ping(B, count=2, interval=0.1)).received == 2
        assert a.inet.arp.cache.statistics().requests == requests  # no request: the entry answered

        # A wrong static MAC stays, whatever b's ARP says: a's pings go nowhere.
        a.arp_add(B, "02:00:00:00:00:99")
        assert (await b.ping(A, count=1)).received == 0  # (b's request reached a, and its reply b)
        assert a.arp()[0].lladdr == "02:00:00:00:00:99"
        assert (await a.ping(B, count=1)).received == 0

        a.arp_delete(B)
        assert all(r.address != B or not r.permanent for r in a.arp())
        assert (await a.ping(B, count=1)).received == 1  # learned again
        (row,) = [r for r in a.arp() if r.address == B]
        assert (row.lladdr, row.permanent) == (b_mac, False) and row.expires is not None and row.expires > 0


async def test_arp_add_and_delete_refuse_bad_input(autojump_clock: trio.testing.MockClock) -> None:
    async with trionet.open_network(seed=2) as net:
        a, _, _ = await _pair(net)
        for bad in ("02:00:00:00:00", "zz:00:00:00:00:01", "01:00:5e:00:00:01", 5):
            with pytest.raises(ValueError, match="unicast MAC"):
                a.arp_add(B, bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            a.arp_add("10.0.0.300", "02:00:00:00:00:05")
        with pytest.raises(OSError) as info:
            a.arp_add("192.168.9.9", "02:00:00:00:00:05")
        assert info.value.errno == errno.ENETUNREACH
        with pytest.raises(OSError) as info:
            a.arp_add(B, "02:00:00:00:00:05", "lo0")
        assert info.value.errno == errno.ENETUNREACH
        with pytest.raises(OSError) as info:
            a.arp_delete("10.0.0.77")
        assert info.value.errno == errno.ESRCH
        assert a.arp() == []
