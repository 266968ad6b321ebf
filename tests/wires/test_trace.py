"""Tracer: one structlog event per frame, both directions, never a crash."""

from __future__ import annotations

import structlog
from structlog.testing import capture_logs

from trionet.wires import memory_pair
from trionet.wires import Tracer, TracerStatistics

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("0200000000ff")


def frame(dst: bytes, src: bytes, ethertype: int, size: int = 60) -> bytes:
    return dst + src + ethertype.to_bytes(2, "big") + bytes(size - 14)


async def test_one_event_per_frame_in_each_direction() -> None:
    near, far = memory_pair()
    got: list[bytes] = []
    far.set_receiver(got.append)
    tracer = Tracer(near, name="eth0-wire")
    up: list[bytes] = []
    tracer.set_receiver(up.append)
    with capture_logs() as logs:
        assert tracer.send(frame(MAC_B, MAC_A, 0x0800, 98))
        far.send(frame(b"\xff" * 6, MAC_B, 0x0806))
    assert logs == [
        {
            "event": "frame",
            "log_level": "debug",
            "wire": "eth0-wire",
            "direction": "tx",
            "len": 98,
            "dst": "02:00:00:00:00:ff",
            "src": "02:00:00:00:00:01",
            "ethertype": "0x0800",
        },
        {
            "event": "frame",
            "log_level": "debug",
            "wire": "eth0-wire",
            "direction": "rx",
            "len": 60,
            "dst": "ff:ff:ff:ff:ff:ff",
            "src": "02:00:00:00:00:ff",
            "ethertype": "0x0806",
        },
    ]
    assert got == [frame(MAC_B, MAC_A, 0x0800, 98)] and up == [frame(b"\xff" * 6, MAC_B, 0x0806)]
    s = tracer.statistics()
    assert isinstance(s, TracerStatistics)
    assert (s.traced, s.malformed, s.tx_frames, s.rx_frames) == (2, 0, 1, 1)


async def test_a_short_frame_is_logged_as_malformed_and_passed_on() -> None:
    near, far = memory_pair()
    got: list[bytes] = []
    far.set_receiver(got.append)
    tracer = Tracer(near)
    with capture_logs() as logs:
        assert tracer.send(b"\x01\x02\x03")
        far.send(b"")
    assert [(e["direction"], e["len"], e.get("malformed"), "src" in e) for e in logs] == [
        ("tx", 3, True, False),
        ("rx", 0, True, False),
    ]
    assert all(e["wire"] == "wire.a" for e in logs)
    assert got == [b"\x01\x02\x03"]
    assert tracer.statistics().malformed == 2
    assert tracer.statistics().rx_drops == 1  # no receiver installed above


async def test_a_given_logger_is_used_with_its_own_context() -> None:
    near, far = memory_pair()
    far.set_receiver(lambda f: None)
    tracer = Tracer(near, logger=structlog.get_logger("custom").bind(host="h1"))
    with capture_logs() as logs:
        tracer.send(frame(MAC_B, MAC_A, 0x86DD))
    assert len(logs) == 1
    assert logs[0]["host"] == "h1" and logs[0]["wire"] == "wire.a"
    assert logs[0]["ethertype"] == "0x86dd"
