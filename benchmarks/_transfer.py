"""One bulk transfer over any pair of Trio streams, timed and checked: what
``bench_tcp.py`` and ``bench_sockets.py`` both measure.
"""

from __future__ import annotations

import time

import trio
import trio.testing

from _counting import Meter

__all__ = ["CHUNK", "DEADLINE", "bulk"]

CHUNK = 65536
#: No transfer or connection loop may run longer than this (seconds).
DEADLINE = 300


async def bulk(client: trio.abc.HalfCloseableStream, server: trio.abc.HalfCloseableStream,
               total: int, check: bytes | None = None, meter: Meter | None = None) -> float:
    """Seconds to move ``total`` bytes from ``client`` to ``server``.

    With ``check``, sends those bytes instead (any length) and verifies them.
    ``meter`` is started before the first ``send_all`` and stopped at the
    receiver's end of file.
    """
    meter = meter if meter is not None else Meter()
    chunk = bytes(CHUNK)
    got = 0
    received = bytearray()

    async def receiver() -> None:
        nonlocal got
        while True:
            data = await server.receive_some(CHUNK)
            if not data:
                return
            got += len(data)
            if check is not None:
                received.extend(data)

    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receiver)
            await trio.testing.wait_all_tasks_blocked()  # the receiver is waiting
            meter.start()
            t0 = time.perf_counter()
            if check is not None:
                for i in range(0, len(check), CHUNK):
                    await client.send_all(check[i : i + CHUNK])
            else:
                for _ in range(total // CHUNK):
                    await client.send_all(chunk)
                if total % CHUNK:
                    await client.send_all(chunk[: total % CHUNK])
            await client.send_eof()
    elapsed = time.perf_counter() - t0
    meter.stop()
    want = len(check) if check is not None else total
    if got != want:
        raise SystemExit(f"received {got} bytes, sent {want}")
    if check is not None and received != check:
        raise SystemExit("the bytes received differ from the bytes sent")
    return elapsed
