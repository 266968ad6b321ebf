"""Two TcpConnections joined by a fake link in virtual time (h11's ConnectionPair idea).

Every segment goes through ``TcpHeader.emit`` and ``TcpHeader.parse`` (so the
checksum and option code is on the path), then through a seeded link that may
lose, duplicate and reorder it. No Trio: ``now`` is a float the loop advances
to the next delivery or deadline.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable

from trionet.protocols.tcp import TcpHeader
from trionet.protocols.tcp_connection import (
    TcpConfig,
    TcpConnection,
    TcpEvent,
    TcpOutput,
    is_connection_request,
)

ADDR_A = bytes([198, 18, 0, 1])
ADDR_B = bytes([198, 18, 0, 2])
PORT_A = 40000
PORT_B = 80

Filter = Callable[[str, TcpHeader, bytes], bool]


class Pair:
    """``a`` connects actively to ``b``, which is created from ``a``'s SYN (passive).

    Args:
        loss, dup, reorder: probabilities per segment.
        delay: one-way delay in seconds; a reordered segment gets up to
            three times more.
        drop: called with (sender name, header, payload); True drops it (scripted loss).
        simultaneous: create ``b`` at once and have both connect (simultaneous open).
    """

    def __init__(
        self,
        config_a: TcpConfig | None = None,
        config_b: TcpConfig | None = None,
        *,
        loss: float = 0.0,
        dup: float = 0.0,
        reorder: float = 0.0,
        delay: float = 0.01,
        seed: int = 0,
        iss_a: int = 1000,
        iss_b: int = 900000,
        drop: Filter | None = None,
        simultaneous: bool = False,
    ) -> None:
        self.config_b = config_b
        self.iss_b = iss_b
        self.loss, self.dup, self.reorder, self.delay = loss, dup, reorder, delay
        self.rng = random.Random(seed)
        self.drop = drop
        self.now = 0.0
        self._queue: list[tuple[float, int, str, bytes]] = []
        self._count = 0
        self.events: dict[str, list[TcpEvent]] = {"a": [], "b": []}
        self.received: dict[str, bytearray] = {"a": bytearray(), "b": bytearray()}
        self.to_send: dict[str, bytearray] = {"a": bytearray(), "b": bytearray()}
        self.close_when_sent: dict[str, bool] = {"a": False, "b": False}
        self.auto_read = {"a": True, "b": True}
        self.sent_log: list[tuple[float, str, TcpHeader, int]] = []
        self.a = TcpConnection(PORT_A, PORT_B, iss=iss_a, config=config_a, ts_offset=12345)
        self.b: TcpConnection | None = None
        if simultaneous:
            self.b = TcpConnection(PORT_B, PORT_A, iss=iss_b, config=config_b, ts_offset=777)
            self.handle("a", self.a.connect(self.now))
            self.handle("b", self.b.connect(self.now))
        else:
            self.handle("a", self.a.connect(self.now))

    def conn(self, name: str) -> TcpConnection | None:
        return self.a if name == "a" else self.b

    def handle(self, name: str, out: TcpOutput) -> TcpOutput:
        conn = self.conn(name)
        assert conn is not None
        assert out.deadline == conn.next_deadline()
        self.events[name].extend(out.events)
        for header, payload in out.segments:
            self.transmit(name, header, payload)
        return out

    def transmit(self, name: str, header: TcpHeader, payload: bytes) -> None:
        src, dst = (ADDR_A, ADDR_B) if name == "a" else (ADDR_B, ADDR_A)
        wire = header.emit(payload, src, dst)
        self.sent_log.append((self.now, name, header, len(payload)))
        if self.drop is not None and self.drop(name, header, payload):
            return
        rng = self.rng
        if self.loss and rng.random() < self.loss:
            return
        t = self.now + self.delay
        if self.reorder and rng.random() < self.reorder:
            t += rng.uniform(0, 3 * self.delay)
        self._push(t, "b" if name == "a" else "a", wire)
        if self.dup and rng.random() < self.dup:
            self._push(t + rng.uniform(0, self.delay), "b" if name == "a" else "a", wire)

    def _push(self, t: float, dest: str, wire: bytes) -> None:
        self._count += 1
        heapq.heappush(self._queue, (t, self._count, dest, wire))

    def deliver(self, dest: str, wire: bytes) -> None:
        src, dst = (ADDR_A, ADDR_B) if dest == "b" else (ADDR_B, ADDR_A)
        header, payload = TcpHeader.parse(wire, src, dst)
        conn = self.conn(dest)
        if conn is None:
            if not is_connection_request(header):
                return
            self.b = conn = TcpConnection(PORT_B, PORT_A, iss=self.iss_b, config=self.config_b, ts_offset=777)
            self.handle("b", conn.accept(header, payload, self.now))
            return
        self.handle(dest, conn.receive(header, bytes(payload), self.now))

    def pump(self) -> None:
        """The applications: send what is queued, read what arrived, close when done."""
        for name in ("a", "b"):
            conn = self.conn(name)
            if conn is None:
                continue
            pending = self.to_send[name]
            while pending and conn.send_space and conn.state.name in ("ESTABLISHED", "CLOSE_WAIT", "SYN_SENT", "SYN_RECEIVED"):
                out = self.handle(name, conn.send(bytes(pending[:65536]), self.now))
                del pending[: out.accepted]
                if not out.accepted:
                    break
            if not pending and self.close_when_sent[name]:
                self.close_when_sent[name] = False
                self.handle(name, conn.close(self.now))
            while self.auto_read[name] and conn.readable:
                self.received[name] += self.handle(name, conn.read(1 << 20, self.now)).data

    def step(self) -> bool:
        """Advance to the next delivery or deadline and run it; False if nothing is left."""
        self.pump()
        times = []
        if self._queue:
            times.append(self._queue[0][0])
        for name in ("a", "b"):
            conn = self.conn(name)
            if conn is not None and conn.next_deadline() is not None:
                times.append(conn.next_deadline())
        if not times:
            return False
        t = min(times)
        self.now = max(self.now, t)
        if self._queue and self._queue[0][0] <= self.now:
            _, _, dest, wire = heapq.heappop(self._queue)
            self.deliver(dest, wire)
        else:
            for name in ("a", "b"):
                conn = self.conn(name)
                if conn is not None:
                    d = conn.next_deadline()
                    if d is not None and d <= self.now:
                        self.handle(name, conn.on_timer(self.now))
        self.pump()
        return True

    def run(self, until: Callable[[], bool] | None = None, max_time: float = 1000.0, max_steps: int = 10**6) -> None:
        for _ in range(max_steps):
            if until is not None and until():
                return
            if self.now > max_time or not self.step():
                return
        raise AssertionError("too many steps")

    def run_for(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            times = [self._queue[0][0]] if self._queue else []
            for name in ("a", "b"):
                conn = self.conn(name)
                if conn is not None and conn.next_deadline() is not None:
                    times.append(conn.next_deadline())
            if not times or min(times) > end:
                self.now = end
                return
            self.step()
