"""The retransmission timeout of a TCP connection: RFC 6298 with Karn's rule.

Theory of operation
===================

An :class:`RttEstimator` holds one connection's round-trip estimate and
the retransmission timeout (RTO) derived from it. It keeps no timer and
reads no clock: the connection (:mod:`.tcp_connection`) measures, and arms
its retransmission deadline at ``now + rto``.

1. A measurement ``r`` (seconds) comes either from an echoed RFC 7323
   timestamp, on every ACK of new data, or from the one segment being
   timed (:attr:`~RttEstimator.timed_seq`, sent at
   :attr:`~RttEstimator.timed_at`), when an ACK covers it. The connection
   times a segment only without timestamps.
2. :meth:`~RttEstimator.sample` applies RFC 6298 2.2-2.4: the first sample
   sets ``SRTT = r``, ``RTTVAR = r / 2``; later ones ``RTTVAR = 3/4 RTTVAR
   + 1/4 |SRTT - r|`` (with the old SRTT), then ``SRTT = 7/8 SRTT + 1/8
   r``; always ``RTO = SRTT + max(G, 4 RTTVAR)``, clamped to
   ``[min_rto, max_rto]``. A sample undoes any backoff of the RTO (but not
   the count of timeouts, :attr:`~RttEstimator.backoffs`, which only an ACK
   of new data clears).
3. Karn's rule: a retransmitted segment's ACK says nothing about the RTT,
   so whoever retransmits forgets the timed segment (``timed_seq = None``):
   :meth:`~RttEstimator.backoff` does on a timeout, and the connection does
   on a fast retransmit or a path-MTU go-back-N. (Timestamps need no such
   rule: the echo names the transmission.)
4. :meth:`~RttEstimator.backoff` (RFC 6298 5.5) doubles the RTO up to
   ``max_rto`` and counts the timeout; the connection gives up after
   ``max_retries`` of them.

Invariants: ``srtt is None`` iff no sample was taken, and then ``rttvar ==
0``; ``rto`` lies in ``[min_rto, max_rto]`` of the configuration of the last
sample or backoff (or is the initial RTO before any); ``backoffs >= 0``.
Every operation is O(1).

The fields are plain attributes, read and written by the connection on its
per-segment path without a call; the methods are what the RFC specifies.

DragonFly: ``sys/netinet/tcp_input.c`` (``tcp_xmit_timer``), ``tcp_timer.c``
(``tcp_timer_rexmt``: ``t_rxtshift``, ``TCPT_RANGESET``).
"""

from __future__ import annotations

from .tcp_values import TcpConfig

__all__ = ["RttEstimator"]


class RttEstimator:
    """RFC 6298 SRTT, RTTVAR and RTO, the segment being timed, and the backoff.

    Args:
        initial_rto: the RTO before any sample (RFC 6298 2.1: 1 s).

    Attributes:
        srtt: the smoothed RTT in seconds, ``None`` before the first sample.
        rttvar: the RTT variation in seconds.
        rto: the retransmission timeout in seconds, backoff included.
        timed_seq: the (unwrapped) sequence number of the segment being
            timed, or ``None`` (Karn's rule clears it on retransmission).
        timed_at: when that segment was sent.
        backoffs: retransmission timeouts since the last ACK of new data
            (BSD ``t_rxtshift``).
        samples: measurements taken (``rtt_samples`` in the statistics).
    """

    __slots__ = ("backoffs", "rto", "rttvar", "samples", "srtt", "timed_at", "timed_seq")

    def __init__(self, initial_rto: float) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = initial_rto
        self.timed_seq: int | None = None
        self.timed_at = 0.0
        self.backoffs = 0
        self.samples = 0

    def sample(self, r: float, config: TcpConfig) -> None:
        """Take one RTT measurement of ``r`` seconds (RFC 6298 2.2-2.4).

        ``config`` gives ``min_rto``, ``max_rto`` and G
        (``clock_granularity``): the connection's current one, which its
        owner may replace.
        """
        self.samples += 1
        srtt = self.srtt
        if srtt is None:
            self.srtt = srtt = r
            self.rttvar = r / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(srtt - r)
            self.srtt = srtt = 0.875 * srtt + 0.125 * r
        rto = srtt + max(config.clock_granularity, 4 * self.rttvar)
        self.rto = min(max(rto, config.min_rto), config.max_rto)

    def backoff(self, config: TcpConfig) -> None:
        """A retransmission timeout: double the RTO (up to ``max_rto``),
        count it, and stop timing (Karn: what follows is retransmitted)."""
        self.backoffs += 1
        self.rto = min(self.rto * 2, config.max_rto)
        self.timed_seq = None
