"""``Tracer``: one structlog event per frame crossing an endpoint.

``Tracer(endpoint)`` wraps an endpoint and is one; each frame that crosses
it, in either direction, is logged and then passed on unchanged.

Rules:

1. One ``debug`` event per frame, named ``"frame"``, on a logger bound with
   ``wire`` (the tracer's name), with keys ``direction`` (``"tx"`` for
   :meth:`Tracer.send`, ``"rx"`` for frames from the inner endpoint), ``len``
   (the frame's length), ``dst`` and ``src`` (``"02:00:00:00:00:01"``) and
   ``ethertype`` (``"0x0800"``: bytes 12-13 as they are; an 802.1Q frame
   shows ``"0x8100"``).
2. A frame shorter than the 14-byte Ethernet header is logged with
   ``malformed=True`` and ``len`` instead of the address keys, and is still
   passed on (the layer above decides what to do with it). The tracer never
   raises for a frame.
3. The event is emitted before the frame is passed on, so it precedes
   whatever the frame causes.

Cost: an emitted structlog event costs over one Trio checkpoint; a filtered
``debug`` call very little. The tracer is meant for debugging and tests
(``structlog.testing.capture_logs``), not for every frame of a benchmark.
Bounds and cancellation: no queue, nothing awaits. Determinism: the events
depend only on the frames.
"""

from __future__ import annotations

from typing import Any

import attrs
import structlog

from ._endpoint import ETHER_HDR_LEN, EndpointStatistics, EndpointWrapper, WireEndpoint

__all__ = ["Tracer", "TracerStatistics"]

log = structlog.get_logger(__name__)


@attrs.frozen
class TracerStatistics(EndpointStatistics):
    """Counters of a :class:`Tracer` (an
    :class:`~trionet.lowlevel.EndpointStatistics` with more fields).

    Attributes:
        traced: events emitted (one per frame, both directions).
        malformed: frames shorter than the Ethernet header.
    """

    traced: int
    malformed: int


class Tracer(EndpointWrapper):
    """Log one structlog event per frame crossing ``inner`` (both directions).

    See the module docstring for the event's keys.

    Args:
        inner: the endpoint to trace.
        name: the ``wire`` key; defaults to the inner endpoint's name.
        logger: a structlog logger (anything with ``bind`` and ``debug``);
            default this module's.
    """

    def __init__(
        self, inner: WireEndpoint, *, name: str | None = None, logger: Any | None = None
    ) -> None:
        super().__init__(inner, name)
        self._log = (logger if logger is not None else log).bind(wire=self.name)
        self._traced = 0
        self._malformed = 0

    def send(self, frame: bytes) -> bool:
        """Log ``frame`` as ``tx``, then pass it to the inner endpoint."""
        self._trace("tx", frame)
        return self.pass_down(frame)

    def inbound(self, frame: bytes) -> None:
        """Log ``frame`` as ``rx``, then deliver it."""
        self._trace("rx", frame)
        self.deliver(frame)

    def _trace(self, direction: str, frame: bytes) -> None:
        self._traced += 1
        n = len(frame)
        if n < ETHER_HDR_LEN:
            self._malformed += 1
            self._log.debug("frame", direction=direction, len=n, malformed=True)
            return
        self._log.debug(
            "frame",
            direction=direction,
            len=n,
            dst=bytes(frame[0:6]).hex(":"),
            src=bytes(frame[6:12]).hex(":"),
            ethertype=f"0x{frame[12]:02x}{frame[13]:02x}",
        )

    def statistics(self) -> TracerStatistics:
        """The tracer's counters (see :class:`TracerStatistics`)."""
        return TracerStatistics(
            **self._counts(),
            traced=self._traced,
            malformed=self._malformed,
        )
