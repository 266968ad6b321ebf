"""Pluggable TCP congestion control: NewReno (RFC 5681) and CUBIC (RFC 9438).

Theory of operation
===================

The connection machine (:mod:`.tcp_connection`) owns *loss recovery*: it
counts duplicate ACKs, retransmits, runs NewReno fast recovery (RFC 6582:
window inflation by one SMSS per duplicate ACK, partial-ACK deflation,
leaving recovery on a full ACK) or, with SACK, RFC 6675 recovery (a
scoreboard and ``pipe``), and the retransmission timer. A
:class:`CongestionControl` owns the *congestion window policy*:

1. ``cwnd`` and ``ssthresh`` are plain attributes in bytes, read by the
   machine to limit what is in flight. During fast recovery the machine
   writes ``cwnd`` itself (NewReno: ``ssthresh + 3 * smss``, inflation,
   deflation, and ``min(ssthresh, flight + smss)`` on leaving; SACK:
   ``ssthresh`` on entry, left alone until the end); outside recovery only
   the algorithm changes it.
2. :meth:`~CongestionControl.on_ack` is called for every ACK that
   acknowledges new data *outside* recovery: slow start below ``ssthresh``,
   congestion avoidance above.
3. :meth:`~CongestionControl.on_congestion` is called once when loss
   recovery starts (three duplicate ACKs, or with SACK RFC 6675's IsLost):
   the multiplicative decrease (it sets ``ssthresh``).
4. :meth:`~CongestionControl.on_timeout` is called when the retransmission
   timer expires: ``ssthresh`` from the flight size, ``cwnd`` one segment
   (the loss window, RFC 5681 3.1).
5. :meth:`~CongestionControl.on_recovery_exit` when a full ACK ends fast
   recovery.

Every method is O(1). Time comes in as ``now``; nothing here keeps a clock.

To add an algorithm, subclass :class:`CongestionControl` and pass the class
(or any callable taking ``smss``) as ``TcpConfig.congestion_control``.

Not implemented: HyStart (CUBIC's slow-start exit, RFC 9406), congestion
window validation after idle (RFC 7661) and restart after idle (RFC 5681
4.1), ECN (RFC 3168).

DragonFly: ``sys/netinet/tcp_input.c`` (``tcp_newreno_partial_ack``,
``tcp_congestion_exp``) keeps NewReno inline; FreeBSD's ``cc(4)`` framework
(``cc_newreno.c``, ``cc_cubic.c``) is the prior art for the split.
"""

from __future__ import annotations

__all__ = ["CongestionControl", "Cubic", "NewReno", "initial_window"]

#: An ssthresh that never limits: RFC 5681 3.1 "arbitrarily high".
INFINITE_SSTHRESH = 1 << 62


def initial_window(smss: int) -> int:
    """RFC 5681 3.1's initial window: 4, 3 or 2 segments by segment size, in bytes.

    (RFC 6928's ten segments is experimental; a caller wanting it can set
    ``cwnd`` after construction.)
    """
    if smss > 2190:
        return 2 * smss
    if smss > 1095:
        return 3 * smss
    return 4 * smss


class CongestionControl:
    """The interface between the connection machine and a congestion control algorithm.

    Args:
        smss: the sender maximum segment size in bytes (payload per full
            segment, after fixed options).

    Attributes:
        smss: as given.
        cwnd: the congestion window in bytes (starts at
            :func:`initial_window`).
        ssthresh: the slow-start threshold in bytes (starts "infinite").
        name: a short name for statistics (``"newreno"``, ``"cubic"``).
    """

    name = "base"

    def __init__(self, smss: int) -> None:
        if smss < 1:
            raise ValueError(f"smss must be positive, got {smss}")
        self.smss = smss
        self.cwnd = initial_window(smss)
        self.ssthresh = INFINITE_SSTHRESH

    def on_ack(
        self, acked: int, flight: int, now: float, srtt: float | None, segments: int = 1
    ) -> None:
        """New data acknowledged outside loss recovery: grow ``cwnd``.

        Args:
            acked: bytes newly acknowledged by this ACK.
            flight: bytes in flight before this ACK.
            now: the current time.
            srtt: the smoothed round-trip time, or ``None`` before a sample.
            segments: the segments this ACK stands for in slow start (more
                than one when it acknowledges a TSO super-segment, which
                stands for the MSS-sized segments it was cut into).
        """
        raise NotImplementedError

    def on_congestion(self, flight: int, now: float) -> None:
        """Loss recovery starts: set ``ssthresh`` (the machine then sets ``cwnd``)."""
        raise NotImplementedError

    def on_timeout(self, flight: int, now: float) -> None:
        """The retransmission timer expired: halve and fall back to one segment.

        RFC 5681 equation (4) and 3.1: ``ssthresh = max(flight / 2, 2 * smss)``
        (for the first timeout of a loss episode; the machine calls this on
        every one, as BSD does), ``cwnd = smss``.
        """
        self.ssthresh = max(flight // 2, 2 * self.smss)
        self.cwnd = self.smss

    def on_recovery_exit(self, now: float) -> None:
        """A full ACK ended fast recovery (``cwnd`` was already set by the machine)."""

    def _slow_start(self, acked: int, segments: int = 1) -> None:
        # RFC 5681 (2) with RFC 3465's L = 1 SMSS per segment the ACK stands
        # for: one, unless it acknowledges a TSO super-segment.
        self.cwnd += min(acked, segments * self.smss)


class NewReno(CongestionControl):
    """RFC 5681 slow start and congestion avoidance (with RFC 6582 recovery in the machine).

    Congestion avoidance counts acknowledged bytes (RFC 5681 3.1, the
    "bytes_acked" variant): ``cwnd`` grows by one SMSS per ``cwnd`` bytes
    acknowledged, i.e. about one segment per round trip.
    """

    name = "newreno"

    def __init__(self, smss: int) -> None:
        super().__init__(smss)
        self._bytes_acked = 0

    def on_ack(
        self, acked: int, flight: int, now: float, srtt: float | None, segments: int = 1
    ) -> None:
        if self.cwnd < self.ssthresh:
            self._slow_start(acked, segments)
            return
        self._bytes_acked += acked
        if self._bytes_acked >= self.cwnd:
            self._bytes_acked -= self.cwnd
            self.cwnd += self.smss

    def on_congestion(self, flight: int, now: float) -> None:
        # RFC 5681 (4).
        self.ssthresh = max(flight // 2, 2 * self.smss)
        self._bytes_acked = 0

    def on_timeout(self, flight: int, now: float) -> None:
        super().on_timeout(flight, now)
        self._bytes_acked = 0


class Cubic(CongestionControl):
    """CUBIC (RFC 9438), in segments internally, ``cwnd`` in bytes.

    Implemented: the cubic window function W_cubic(t) = C (t - K)^3 + W_max
    (section 4.2) with C = 0.4; beta = 0.7 multiplicative decrease
    (4.6); fast convergence (4.7); the Reno-friendly region with
    alpha = 3 (1 - beta) / (1 + beta) (4.3); the target clamped to
    [cwnd, 1.5 cwnd] one RTT ahead (4.4, 4.5); timeouts (4.8). Slow start is
    Reno's (no HyStart).
    """

    name = "cubic"
    C = 0.4
    BETA = 0.7
    ALPHA = 3 * (1 - BETA) / (1 + BETA)

    def __init__(self, smss: int, *, fast_convergence: bool = True) -> None:
        super().__init__(smss)
        self.fast_convergence = fast_convergence
        self.w_max: float | None = None  # segments; None before any congestion event
        self.k = 0.0
        self._epoch: float | None = None  # start of the current congestion-avoidance epoch
        self._cwnd_epoch = 0.0
        self._w_est = 0.0
        self._cwnd_seg = float(self.cwnd) / smss  # fractional growth kept here

    def w_cubic(self, t: float) -> float:
        """W_cubic(t) in segments, ``t`` seconds into the epoch (RFC 9438 eq. 1)."""
        w_max = self.w_max if self.w_max is not None else self._cwnd_epoch
        return self.C * (t - self.k) ** 3 + w_max

    def on_ack(
        self, acked: int, flight: int, now: float, srtt: float | None, segments: int = 1
    ) -> None:
        smss = self.smss
        if self.cwnd < self.ssthresh:
            self._slow_start(acked, segments)
            self._cwnd_seg = self.cwnd / smss
            return
        # The fractional window, unless someone (the machine, after recovery)
        # set cwnd since.
        if int(self._cwnd_seg * smss) != self.cwnd:
            self._cwnd_seg = self.cwnd / smss
        cwnd = self._cwnd_seg
        if self._epoch is None:
            self._epoch = now
            self._cwnd_epoch = cwnd
            self._w_est = cwnd
            if self.w_max is not None and self.w_max > cwnd:
                self.k = ((self.w_max - cwnd) / self.C) ** (1 / 3)
            else:
                # No loss yet, or already above W_max: start at the plateau.
                self.k = 0.0
                self.w_max = cwnd
        segments_acked = acked / smss
        t = now - self._epoch
        # RFC 9438 eq. 4: the Reno-friendly estimate.
        self._w_est += self.ALPHA * segments_acked / cwnd
        target = self.w_cubic(t + (srtt or 0.0))
        target = min(max(target, cwnd), 1.5 * cwnd)
        if self.w_cubic(t) < self._w_est:
            new = max(cwnd, self._w_est)
        else:
            new = cwnd + (target - cwnd) / cwnd * segments_acked
        self._cwnd_seg = new
        self.cwnd = max(int(new * smss), smss)

    def _reduce(self, flight: int) -> None:
        cwnd = self._cwnd_seg if int(self._cwnd_seg * self.smss) == self.cwnd else self.cwnd / self.smss
        if self.fast_convergence and self.w_max is not None and cwnd < self.w_max:
            self.w_max = cwnd * (1 + self.BETA) / 2
        else:
            self.w_max = cwnd
        self.ssthresh = max(int(flight * self.BETA), 2 * self.smss)
        self._epoch = None

    def on_congestion(self, flight: int, now: float) -> None:
        self._reduce(flight)

    def on_timeout(self, flight: int, now: float) -> None:
        self._reduce(flight)
        self.cwnd = self.smss
        self._cwnd_seg = 1.0

    def on_recovery_exit(self, now: float) -> None:
        self._cwnd_seg = self.cwnd / self.smss
