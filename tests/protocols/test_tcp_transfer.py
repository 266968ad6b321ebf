"""Two TCP machines back to back through a lossy, duplicating, reordering link in virtual time."""

from __future__ import annotations

import hashlib
import random

import pytest

from trionet.protocols.tcp_connection import TcpConfig, TcpEvent, TcpState

from tcp_pair import Pair

MB = random.Random(1).randbytes(1 << 20)
DIGEST = hashlib.sha256(MB).hexdigest()


def _transfer(pair: Pair, data: bytes, *, both: bool = False, max_time: float = 5000) -> None:
    pair.to_send["a"] += data
    pair.close_when_sent["a"] = True
    if both:
        pair.to_send["b"] += data[::-1]
    pair.close_when_sent["b"] = True
    pair.run(
        until=lambda: pair.b is not None and pair.a.state is pair.b.state is TcpState.CLOSED,
        max_time=max_time,
    )


@pytest.mark.parametrize(
    ("loss", "dup", "reorder", "seed"),
    [(0.0, 0.0, 0.0, 0), (0.01, 0.01, 0.05, 1), (0.03, 0.02, 0.2, 2), (0.08, 0.05, 0.3, 3)],
)
def test_one_megabyte_arrives_intact_and_both_sides_close(loss: float, dup: float, reorder: float, seed: int) -> None:
    pair = Pair(TcpConfig(msl=1.0), TcpConfig(msl=1.0), loss=loss, dup=dup, reorder=reorder, seed=seed)
    _transfer(pair, MB)
    assert hashlib.sha256(pair.received["b"]).hexdigest() == DIGEST
    assert pair.a.state is pair.b.state is TcpState.CLOSED
    assert pair.a.error is None and pair.b.error is None
    assert pair.events["a"][-1] is TcpEvent.CLOSED and pair.events["b"][-1] is TcpEvent.CLOSED
    stats_a, stats_b = pair.a.statistics(), pair.b.statistics()
    assert stats_a.bytes_sent == len(MB) and stats_b.bytes_received == len(MB)
    if loss:
        assert stats_a.retransmits > 0


def test_both_directions_at_once_with_loss() -> None:
    pair = Pair(TcpConfig(msl=1.0), TcpConfig(msl=1.0), loss=0.02, reorder=0.1, dup=0.01, seed=7)
    data = MB[: 300_000]
    _transfer(pair, data, both=True)
    assert pair.received["b"] == data and pair.received["a"] == data[::-1]
    assert pair.a.state is pair.b.state is TcpState.CLOSED


@pytest.mark.parametrize(
    "config",
    [
        TcpConfig(timestamps=False, sack=False, window_scaling=False, msl=1.0),
        TcpConfig(nodelay=True, delayed_ack=0, msl=1.0),
        TcpConfig(recv_buffer=3000, send_buffer=2000, mss=536, msl=1.0),
    ],
    ids=["no-options", "nodelay", "tiny-buffers"],
)
def test_transfer_with_other_configurations(config: TcpConfig) -> None:
    pair = Pair(config, config, loss=0.02, reorder=0.1, seed=5)
    data = MB[:200_000]
    _transfer(pair, data)
    assert pair.received["b"] == data
    assert pair.a.state is pair.b.state is TcpState.CLOSED


def test_a_slow_reader_closes_the_window_and_the_sender_waits() -> None:
    pair = Pair(TcpConfig(), TcpConfig(recv_buffer=10000))
    pair.auto_read["b"] = False
    pair.to_send["a"] += MB[:100_000]
    pair.run(until=lambda: pair.b is not None and pair.b.readable == 10000, max_time=100)
    pair.run_for(30)  # nothing moves but probes
    assert pair.b.readable == 10000 and pair.a.snd_wnd == 0
    assert pair.a.statistics().window_probes > 0
    assert pair.a.state is TcpState.ESTABLISHED
    pair.auto_read["b"] = True
    pair.run(until=lambda: len(pair.received["b"]) == 100_000, max_time=200)
    assert pair.received["b"] == MB[:100_000]


def test_a_dead_peer_times_the_sender_out() -> None:
    pair = Pair(TcpConfig(max_retries=5), TcpConfig())
    pair.run(until=lambda: pair.b is not None and pair.b.state is TcpState.ESTABLISHED)
    pair.drop = lambda name, h, p: True  # the link goes down
    pair.to_send["a"] += b"into the void"
    pair.run(until=lambda: pair.a.state is TcpState.CLOSED, max_time=1000)
    assert TcpEvent.TIMEOUT in pair.events["a"]
    assert pair.a.statistics().timeouts == 5
