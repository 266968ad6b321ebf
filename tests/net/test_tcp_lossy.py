"""10 MB over a bad link, in virtual time: every byte arrives, in order, for
each congestion control."""

from __future__ import annotations

import hashlib
import random

import pytest
import trio
import trio.testing

import trionet

pytestmark = pytest.mark.trio

SIZE = 10 * 1000 * 1000


@pytest.mark.parametrize("algorithm", ["newreno", "cubic"])
async def test_10mb_over_a_lossy_duplicating_reordering_corrupting_link(
    autojump_clock: trio.testing.MockClock, algorithm: str
) -> None:
    payload = random.Random(7).randbytes(SIZE)
    async with trionet.open_network(seed=3) as net:
        a = await net.add_host("a")
        b = await net.add_host("b")
        link = await net.link(
            a, b, delay=0.005, loss=0.10, duplicate=0.05, reorder=0.05, corrupt=0.01
        )
        a.ifconfig(link.ends[0].name, "10.0.0.1/24")
        b.ifconfig(link.ends[1].name, "10.0.0.2/24")
        for host in (a, b):
            host.sysctl("net.inet.tcp.cc.algorithm", algorithm)
        (listener,) = await b.open_tcp_listeners(80)
        digest = hashlib.sha256()
        received = 0

        async def sink() -> None:
            nonlocal received
            stream = await listener.accept()
            while chunk := await stream.receive_some():
                digest.update(chunk)
                received += len(chunk)
            await stream.aclose()

        with trio.fail_after(3600):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sink)
                client = await a.open_tcp_stream("10.0.0.2", 80)
                view = memoryview(payload)
                for off in range(0, SIZE, 1 << 20):
                    await client.send_all(view[off : off + (1 << 20)])
                await client.send_eof()
                assert await client.receive_some() == b""
                await client.aclose()
        stats = client.statistics()

    assert received == SIZE
    assert digest.hexdigest() == hashlib.sha256(payload).hexdigest()
    # The impairments really were there, both ways, and recovery really ran.
    for fault in link.faults:
        f = fault.statistics()
        assert f.lost and f.duplicated and f.corrupted and f.reordered, f
    assert stats.fast_retransmits > 0 and stats.timeouts > 0, stats
    assert stats.bytes_retransmitted > SIZE // 20, stats
