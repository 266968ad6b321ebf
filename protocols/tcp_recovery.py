"""What an ACK does to a TCP sender: RTT, send buffer, congestion window, loss recovery.

Theory of operation
===================

:class:`TcpLossRecovery` is a base class of
:class:`.tcp_connection.TcpConnection` holding the sender's side of the ACK
step (RFC 9293 3.10.7.4, fifth step): the connection's input checks an ACK
and calls :meth:`~TcpLossRecovery._ack_received` for one acknowledging new
data, :meth:`~TcpLossRecovery._dup_ack` for a duplicate (RFC 5681's
definition) and :meth:`~TcpLossRecovery._sack_dup_ack` for one bringing
newly SACKed data. It has no state of its own (the fields are the
connection's, set in its ``__init__``).

1. An ACK of new data takes an RTT sample (:mod:`.tcp_rtt`: an echoed
   timestamp, or the timed segment), releases the acknowledged bytes from
   the send buffer (``WRITABLE``), prunes the SACK scoreboard, clears the
   backoff and rearms the retransmission timer; outside recovery it lets the
   congestion control grow ``cwnd`` (an ACK of a TSO super-segment counts
   as the ACKs of the segments it is cut into).
2. Loss recovery without SACK: three duplicate ACKs (RFC 5681 3.2) trigger
   a fast retransmit and NewReno fast recovery (RFC 6582): inflate by one
   SMSS per further duplicate, retransmit at each partial ACK and deflate,
   leave on an ACK covering ``recover``. The window *policy* (slow start,
   congestion avoidance, the decrease) is a pluggable
   :class:`.tcp_cc.CongestionControl`: NewReno by default,
   :class:`.tcp_cc.Cubic` available.
3. Loss recovery with SACK (RFC 6675, when both sides agreed to RFC 2018),
   with the scoreboard of :mod:`.tcp_sack_scoreboard`: an ACK bringing
   newly SACKed data is a duplicate ACK (RFC 6675's definition; a peer that
   sends no blocks has RFC 5681's counted). Recovery starts at the third, or
   earlier once IsLost(snd_una); not before the cumulative ACK passed the
   last RecoveryPoint. On entry ``cwnd = ssthresh`` (the algorithm's
   decrease) and the first hole is retransmitted; then the output routine
   (:mod:`.tcp_output`) sends by NextSeg while ``cwnd - pipe >= SMSS``. A
   partial ACK with nothing SACKed up to RecoveryPoint retransmits its first
   segment (Divergence: NewReno's rule, where RFC 6675 would wait for the
   RTO). Recovery ends on an ACK covering RecoveryPoint (``recover``);
   ``cwnd`` stays at ``ssthresh``. A timeout (:mod:`.tcp_timers`) ends
   recovery and clears the scoreboard.

Bounds: one ACK causes at most one retransmission here (on entering
recovery or on a partial ACK); the output routine sends the rest.

DragonFly: ``sys/netinet/tcp_input.c`` (``tcp_input``'s ACK processing,
its NewReno and SACK partial-ACK handling).
"""

from __future__ import annotations

from .tcp import SEQ_MASK, TcpHeader
from .tcp_cc import CongestionControl
from .tcp_sack_scoreboard import DUPTHRESH
from .tcp_values import TcpEvent

__all__ = ["TcpLossRecovery"]


class TcpLossRecovery:
    """The sender's ACK handling of :class:`.tcp_connection.TcpConnection` (a base class without state)."""

    @property
    def cwnd(self) -> int | None:
        return self._cc.cwnd if self._cc is not None else None

    @property
    def ssthresh(self) -> int | None:
        return self._cc.ssthresh if self._cc is not None else None

    @property
    def congestion_control(self) -> CongestionControl | None:
        return self._cc

    @property
    def in_recovery(self) -> bool:
        return self._in_recovery

    @property
    def sacked_ranges(self) -> tuple[tuple[int, int], ...]:
        """The sender's scoreboard: ``(left, right)`` SACKed ranges above ``snd_una`` (32-bit), lowest first."""
        return tuple((s & SEQ_MASK, e & SEQ_MASK) for s, e in self._sacks.ranges)

    @property
    def pipe(self) -> int:
        """RFC 6675 SetPipe(): bytes estimated in the network (with SACK; else the flight size)."""
        if not self._sack_ok:
            return self._snd_max - self._snd_una
        return self._sacks.pipe(self._snd_una, self._snd_max, self.smss, self._in_recovery)

    def _ack_received(self, ack: int, h: TcpHeader) -> None:
        """``ack`` acknowledges new data (snd_una < ack <= snd_max)."""
        now = self._now
        snd_una = self._snd_una
        acked = ack - snd_una
        flight = self._snd_max - snd_una
        # RTT (RFC 6298 with RFC 7323 timestamps, or one timed segment: Karn).
        ts = h.options.timestamps
        if self._ts_ok and ts is not None and ts[1]:
            rtt = (self._ts_now() - ts[1]) & SEQ_MASK
            if rtt < 0x80000000:
                self._rtt.sample(rtt / 1000, self.config)
        else:
            timer = self._rtt
            if timer.timed_seq is not None and ack > timer.timed_seq:
                timer.sample(now - timer.timed_at, self.config)
                timer.timed_seq = None
        # Release acknowledged bytes (the SYN and FIN take no buffer space).
        data_end = self._sb_base + len(self._sndbuf)
        acked_end = min(ack, data_end)
        data_acked = 0
        if acked_end > self._sb_base:
            data_acked = acked_end - self._sb_base
            del self._sndbuf[:data_acked]
            self._sb_base = acked_end
            self._events.append(TcpEvent.WRITABLE)
        self._snd_una = ack
        if self._snd_nxt < ack:
            self._snd_nxt = ack
        sacks = self._sacks
        if sacks.ranges:
            sacks.prune(ack)
        self._rtt.backoffs = 0
        self._stall_since = now if self._snd_max > ack else None
        cc = self._cc
        partial = False
        if cc is not None:
            if self._in_recovery:
                smss = self.smss
                if ack >= self._recover:
                    # Full ACK (RFC 6582 3.2 step 3, option 1). With SACK,
                    # cwnd stays at ssthresh, set on entry (RFC 6675 (A)),
                    # and pipe kept the flight within it: no burst follows.
                    if not self._sack_ok:
                        cc.cwnd = min(cc.ssthresh, max(self._snd_max - ack, smss) + smss)
                    self._in_recovery = False
                    self._dupacks = 0
                    cc.on_recovery_exit(now)
                elif self._sack_ok:
                    # RFC 6675 (B), (C): _output sends what the scoreboard
                    # and pipe allow; no deflation.
                    sacked = sacks.ranges
                    if ack >= sacks.high_rxt and (not sacked or sacked[0][0] >= self._recover):
                        # Divergence: nothing SACKed between this partial ACK
                        # and RecoveryPoint, so no hole can ever look lost
                        # (IsLost) and RFC 6675 would wait for the RTO (or a
                        # rule-4 rescue). The data there was sent an RTT ago:
                        # retransmit its first segment as NewReno does
                        # (RFC 6582 3.2 step 4), once.
                        n = self._retransmit_at(ack, sacked[0][0] if sacked else None)
                        sacks.high_rxt = ack + n
                else:
                    # Partial ACK: retransmit the next hole, deflate.
                    partial = True
                    self._retransmit_at(ack)
                    cc.cwnd = max(cc.cwnd - acked + (smss if acked >= smss else 0), smss)
            else:
                self._dupacks = 0
                if data_acked:
                    if self.tso_max and data_acked > self.smss:
                        # A super-segment stands for the segments it is cut into.
                        segments = -(-data_acked // self.smss)
                        cc.on_ack(data_acked, flight, now, self._rtt.srtt, segments)
                    else:
                        cc.on_ack(data_acked, flight, now, self._rtt.srtt)
        if self._snd_max == ack:
            self._t_rexmt = None
        elif not partial or not self._partial_seen:
            self._t_rexmt = now + self._rtt.rto
        if partial:
            self._partial_seen = True

    def _dup_ack(self, with_sack: bool) -> None:
        """A duplicate ACK by RFC 5681's definition; ``with_sack``: it carried SACK blocks."""
        self._stats["dup_acks"] += 1
        cc = self._cc
        if cc is None:
            return
        if self._sack_ok:
            # RFC 6675 counts ACKs bringing new SACK information instead
            # (_sack_dup_ack), which a duplicated ACK never does. A peer that
            # agreed to SACK but sends no blocks still has its duplicate
            # ACKs counted, so that it gets a fast retransmit.
            if not with_sack:
                self._sack_dup_ack()
            return
        self._dupacks += 1
        if self._in_recovery:
            cc.cwnd += self.smss
        elif self._dupacks == DUPTHRESH and self._snd_una > self._recover:
            self._enter_recovery()

    def _sack_dup_ack(self) -> None:
        """RFC 6675 5: a duplicate ACK outside recovery; enter it at DupThresh or if IsLost(snd_una)."""
        if self._cc is None or self._in_recovery:
            return
        self._dupacks += 1
        # Not before the cumulative ACK reached RecoveryPoint, the last
        # octet sent when the last recovery or timeout began (RFC 6675 5.1:
        # "HighACK is greater than or equal to" it). ``_recover`` is one past
        # it, so this is ``>=`` where NewReno's "covers more than recover"
        # (RFC 6582 3.2 step 2, BSD) is ``>``: a new segment lost just
        # after a recovery gets a fast retransmit, not a timeout.
        if (
            (self._dupacks >= DUPTHRESH or self._sacks.lost_boundary(self._snd_una, self.smss) > self._snd_una)
            and self._snd_una >= self._recover and self._snd_max > self._snd_una
        ):
            self._enter_recovery()

    def _enter_recovery(self) -> None:
        """Fast retransmit and enter loss recovery (RFC 5681 3.2, RFC 6582 3.2 step 2, RFC 6675 5 step 4)."""
        cc = self._cc
        assert cc is not None
        self._stats["fast_retransmits"] += 1
        self._recover = self._snd_max  # RecoveryPoint
        cc.on_congestion(self._snd_max - self._snd_una, self._now)
        self._in_recovery = True
        self._partial_seen = False
        self._rtt.timed_seq = None
        if self._sack_ok:
            self._stats["sack_recoveries"] += 1
            cc.cwnd = cc.ssthresh  # (4.2); no inflation: pipe counts instead
            self._snd_nxt = self._snd_max  # holes are chosen from the scoreboard now
            # (4.3) the first hole, whatever pipe says; HighRxt past it.
            self._sacks.high_rxt = self._snd_una
            sacks = self._sacks
            for start, end, _ in sacks.holes(self._snd_una, self._snd_max):
                sacks.high_rxt = start + self._retransmit_at(start, end)
                break
        else:
            self._retransmit_at(self._snd_una)
            cc.cwnd = cc.ssthresh + 3 * self.smss
        self._t_rexmt = self._now + self._rtt.rto
