"""Recording a run for its report (``trionet.recording``): links over time,
TCP from the inside (segments, ACKs, cwnd, retransmissions equal to the
connection's own counter), the ladder of the first connection, bounds, and
what is left when the block ends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

import trionet


@asynccontextmanager
async def _lossy(loss: float = 0.05) -> AsyncIterator[dict[str, Any]]:
    async with trionet.open_network(seed=3) as net:
        a, b = await net.add_host("a"), await net.add_host("b")
        link = await net.link(a, b, delay=0.005, loss=loss, bandwidth=20e6)
        a.ifconfig(link.ends[0].name, "10.0.0.1/24")
        b.ifconfig(link.ends[1].name, "10.0.0.2/24")
        yield {"net": net, "a": a, "b": b, "link": link}


async def _transfer(n: dict[str, Any], size: int) -> trionet.TcpStream:
    got = bytearray()

    async def sink(stream: trionet.TcpStream) -> None:
        async with stream:
            async for chunk in stream:
                got.extend(chunk)

    async with trio.open_nursery() as nursery:
        await nursery.start(n["b"].serve_tcp, sink, 5001)
        stream = await n["a"].open_tcp_stream("10.0.0.2", 5001)
        await stream.send_all(bytes(size))
        await stream.send_eof()
        with trio.fail_after(120):
            while len(got) < size:
                await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    return stream


async def test_a_lossy_transfer_is_recorded_with_its_retransmissions(autojump_clock: trio.testing.MockClock) -> None:
    async with _lossy() as n:
        async with trionet.recording(n["net"]) as rec:
            stream = await _transfer(n, 400_000)
        assert n["a"].inet.tcp.probe is None and n["b"].inet.tcp.probe is None  # detached
        record = rec.to_record(title="lossy")
    json.dumps(record)  # plain values only
    (conn,) = [c for c in record["tcp"] if c["host"] == "a"]
    assert conn["local"].startswith("10.0.0.1:") and conn["remote"] == "10.0.0.2:5001"
    retransmits = stream.statistics().retransmits
    assert retransmits > 0
    assert conn["retransmits"] == retransmits
    assert conn["retransmits_marked"] == retransmits == sum(s["retransmit"] for s in conn["segments"])
    first = next(s for s in conn["segments"] if s["len"])
    assert first["seq"] == 0 and not first["retransmit"]
    assert max(s["seq"] + s["len"] for s in conn["segments"]) == 400_000
    assert max(a["ack"] for a in conn["acks"]) == 400_001  # the FIN too
    assert any(a["sack"] for a in conn["acks"])  # losses draw SACK blocks
    samples = conn["samples"]
    assert len(samples["t"]) == len(samples["cwnd"]) > 10
    established = [c is not None for c in samples["cwnd"]].index(True)  # None until the handshake is done
    assert all(c is not None for c in samples["cwnd"][established:])
    assert samples["t"] == sorted(samples["t"])
    # The link: bytes each way, drops equal to what the fault injector lost.
    (link,) = record["links"]
    series = link["series"]
    assert (link["a"], link["b"], link["loss"], link["delay"]) == ("a", "b", 0.05, 0.005)
    assert sum(series["a_to_b_bytes"]) == link["bytes"]["a_to_b"] > 400_000
    lost = n["link"].faults[0].statistics().lost
    assert sum(series["a_to_b_drops"]) == link["drops"]["a_to_b"] == lost > 0
    assert len(series["t"]) == len(series["a_queue"]) == len(series["b_to_a_drops"])
    # The ladder: the handshake first, relative sequence numbers.
    ladder = record["ladder"]
    assert ladder["endpoints"] == ["a", "b"]
    events = ladder["events"]
    kinds = [e["label"].split()[0] for e in events]
    # (With this seed the ARP request is lost: the first SYN waits a second
    # for ARP, is sent again meanwhile, and both arrive together.)
    assert kinds[0] == "SYN" and events[0]["label"].startswith("SYN seq=0 ")
    synack = kinds.index("SYN,ACK")
    assert events[synack]["label"].startswith("SYN,ACK seq=0 ack=1 ")
    assert "ACK" in kinds[synack:]
    assert all(e["t_recv"] is None or e["t_recv"] > e["t_send"] for e in ladder["events"])
    assert len(ladder["events"]) == 40
    assert "$ netstat -an -p tcp" in record["views"]["a"]


async def test_a_lost_segment_shows_in_the_ladder(autojump_clock: trio.testing.MockClock) -> None:
    # Heavy loss: some of the first 40 segments never arrive.
    async with _lossy(loss=0.15) as n:
        async with trionet.recording(n["net"]) as rec:
            await _transfer(n, 30_000)
        record = rec.to_record()
    events = record["ladder"]["events"]
    lost = [e for e in events if e["lost"]]
    assert lost and all(e["t_recv"] is None for e in lost)
    assert not all(e["lost"] for e in events)


async def test_samples_stay_within_their_bound(autojump_clock: trio.testing.MockClock) -> None:
    async with _lossy(loss=0.0) as n:
        async with trionet.recording(n["net"], interval=0.01, max_points=50) as rec:
            await trio.sleep(20)  # 2000 intervals of 10 ms
        assert rec.interval > 0.01
    (link,) = rec.to_record()["links"]
    assert 50 <= len(link["series"]["t"]) < 100
    assert link["series"]["t"] == sorted(link["series"]["t"])


async def test_a_cancelled_block_stops_the_recording(autojump_clock: trio.testing.MockClock) -> None:
    async with _lossy(loss=0.0) as n:
        with trio.move_on_after(1):
            async with trionet.recording(n["net"]) as rec:
                await trio.sleep_forever()
        assert rec.end is not None and n["a"].inet.tcp.probe is None
        assert rec.to_record()["duration"] == pytest.approx(1.0)


async def test_a_report_is_drawn_after_the_network_is_gone(autojump_clock: trio.testing.MockClock, tmp_path: Any) -> None:
    pytest.importorskip("matplotlib")
    pytest.importorskip("networkx")
    async with _lossy() as n:
        async with trionet.recording(n["net"]) as rec:
            await _transfer(n, 100_000)
    # The hosts are shut down; what the recording kept is enough.
    path = rec.write_report(tmp_path / "out", title="after the network")
    html = path.read_text()
    assert path.name == "index.html" and "after the network" in html
    assert 'id="topology"' in html and 'id="ladder"' in html and "tcp-" in html
