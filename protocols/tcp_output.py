"""The output half of a TCP connection: building and sending segments (BSD ``tcp_output``).

Theory of operation
===================

:class:`TcpSegmentOutput` is a base class of
:class:`.tcp_connection.TcpConnection` holding its output routine; it has no
state of its own (the fields are the connection's, set in its
``__init__``), so the per-segment path stays one call deep, as it was
before the split.

1. Output is one routine, :meth:`~TcpSegmentOutput._output` (BSD
   ``tcp_output``), called at the end of every entry point: it sends what
   the send window (``min(snd_wnd, cwnd)``), Nagle (off with ``nodelay``)
   and sender-side SWS avoidance allow, a FIN after the last byte once
   ``close()`` was called, and a pure ACK if one is owed and nothing else
   carried it. In SYN_SENT and SYN_RECEIVED it sends the SYN (or SYN-ACK)
   instead; in TIME_WAIT only owed ACKs.
2. Every segment carries the current ACK, window (receiver SWS avoidance:
   it grows only by at least ``min(mss, recv_buffer / 2)`` and never
   shrinks), timestamps and SACK blocks (:mod:`.tcp_reassembly` chooses
   them). Sending an ACK clears what was owed: the delayed-ACK timer and the
   count of unacknowledged segments.
3. After a timeout the output goes back to ``snd_una`` (go-back-N), skipping
   ranges the peer SACKed since (:mod:`.tcp_sack_scoreboard`). In SACK
   recovery (RFC 6675 NextSeg) it sends lost holes first (rule 1), then new
   data (rule 2), then holes not yet deemed lost (rule 3), each while
   ``cwnd - pipe >= SMSS``; rule 4 (rescue) is not implemented.
4. TSO: with ``tso_max`` set (the glue's interface segments in hardware),
   new data goes out in super-segments of up to that many bytes, which the
   card cuts into ``smss``-sized segments with the same header (only
   outside loss recovery, and only when the timestamps are the sole option).
5. Path MTU: :meth:`~TcpSegmentOutput.lower_mss` lowers the segment size
   when the glue says the path MTU dropped (BSD ``tcp_mtudisc``) and sends
   everything unacknowledged again from ``snd_una`` in the new size.
6. Rate limits: an ACK answering a segment that fails the sequence or PAWS
   check, or acknowledges data not yet sent, is owed at most once per
   ``oow_ack_interval``; challenge ACKs (RFC 5961) at most
   ``challenge_ack_limit`` a second. Over the limit, nothing is owed, and
   the suppression is counted.
7. The persist timer runs when something waits to be sent and no
   retransmission will come (a zero or too small window).

Bounds: one call sends at most one window's worth of segments
(``min(snd_wnd, cwnd)``, or ``cwnd - pipe`` in SACK recovery, bounded by
``send_buffer``), plus one ACK; a retransmission is one segment.
:meth:`~TcpSegmentOutput._flush` hands them to the glue and empties the
lists.

DragonFly: ``sys/netinet/tcp_output.c`` (``tcp_output``), ``tcp_subr.c``
(``tcp_respond``), ``tcp_sack.c`` (``tcp_sack_nextseg``).
"""

from __future__ import annotations

from .tcp import MAX_SACK_BLOCKS, NO_OPTIONS, SEQ_MASK, TcpFlags, TcpHeader, TcpOptions
from .tcp_values import MIN_MSS, RECEIVING, SYNCHRONIZED, TcpOutput, TcpState

__all__ = ["TcpSegmentOutput"]

_TS_OPTION_LEN = 12  # NOP NOP kind len tsval tsecr
# The flag bits as ints: per segment, an int's & is C, an IntFlag's Python.
_SYN = int(TcpFlags.SYN)
_ACK = int(TcpFlags.ACK)
_FIN = int(TcpFlags.FIN)
_RST = int(TcpFlags.RST)
_PSH = int(TcpFlags.PSH)
_S = TcpState


class TcpSegmentOutput:
    """The output routine of :class:`.tcp_connection.TcpConnection` (a base class without state)."""

    @property
    def smss(self) -> int:
        """Payload bytes in a full-sized segment we send (after the timestamps option)."""
        return min(self._peer_mss, self.config.mss) - (_TS_OPTION_LEN if self._ts_ok else 0)

    def _window_update(self) -> None:
        # Receiver SWS avoidance (RFC 9293 3.8.6.2.2): announce a window that
        # reading opened only when it grew by min(2 * mss, recv_buffer / 2).
        # Only what the window field can say counts, so with nothing read
        # since the last announcement this sends nothing.
        if self._state in RECEIVING and not self._eof:
            config = self.config
            space = min(config.recv_buffer - len(self._rcvbuf), 0xFFFF << self._rcv_scale)
            if space - (self._rcv_adv - self._rcv_nxt) >= min(2 * config.mss, config.recv_buffer // 2):
                self._ack_now = True
                self._output()

    def lower_mss(self, mss: int, now: float) -> TcpOutput:
        """Send no segment longer than ``mss`` bytes of TCP options and
        payload from now on: the path MTU dropped to ``mss + 40`` (path MTU
        discovery, RFC 1191; the glue calls it for an ICMP "fragmentation
        needed" it has matched to this connection).

        Only lowers: an ``mss`` not below the one in use, or a connection
        not synchronized, changes nothing (before the handshake the peer's
        MSS is not known yet, and a SYN is small). ``mss`` is raised to
        :data:`MIN_MSS`. When it lowers, everything sent and not yet
        acknowledged is sent again at once in segments of the new size,
        from ``snd_una`` (the segment that drew the ICMP was lost; BSD
        ``tcp_mtudisc``): a go-back-N that is not a congestion signal, so the
        window is kept; it ends any loss recovery, and, as after a timeout,
        duplicate ACKs for what is sent again start no new one until
        ``snd_una`` passes what was outstanding (RFC 6582's ``recover``).

        Returns:
            The output (the segments sent again).
        """
        self._now = now
        mss = max(mss, MIN_MSS)
        if self._state not in SYNCHRONIZED or mss >= min(self._peer_mss, self.config.mss):
            return self._flush()
        self._peer_mss = mss
        cc = self._cc
        if cc is not None:
            cc.smss = self.smss
        if self._snd_max > self._snd_una:
            self._in_recovery = False
            self._dupacks = 0
            self._recover = self._snd_max
            self._sacks.high_rxt = self._snd_una
            self._rtt.timed_seq = None  # Karn: what follows are retransmissions
            self._snd_nxt = self._snd_una
            self._output()
        return self._flush()

    # ACKs answering unacceptable segments and RFC 5961 challenge ACKs are
    # owed through these two, which limit their rate.


    def _oow_ack(self) -> None:
        # An ACK for an unacceptable segment, rate-limited (see
        # TcpConfig.oow_ack_interval; Linux tcp_oow_rate_limited).
        now = self._now
        last = self._last_oow_ack
        if last is not None and now - last < self.config.oow_ack_interval:
            self._stats["oow_acks_suppressed"] += 1
            return
        self._last_oow_ack = now
        self._ack_now = True

    def _challenge_ack(self) -> None:
        now = self._now
        if now - self._chack_second >= 1.0:
            self._chack_second = now
            self._chack_count = 0
        if self._chack_count < self.config.challenge_ack_limit:
            self._chack_count += 1
            self._stats["challenge_acks"] += 1
            self._ack_now = True
        else:
            self._stats["challenge_acks_suppressed"] += 1

    def _ts_now(self) -> int:
        return (int(self._now * 1000) + self._ts_offset) & SEQ_MASK

    def _sack_blocks(self) -> tuple[tuple[int, int], ...]:
        if not self._sack_ok or not self._ooo.blocks:
            return ()
        return self._ooo.sack_blocks(3 if self._ts_ok else MAX_SACK_BLOCKS)

    def _window_field(self) -> int:
        """The window to advertise now (scaled field value); moves ``_rcv_adv``."""
        config = self.config
        space = config.recv_buffer - len(self._rcvbuf)
        cur = max(self._rcv_adv - self._rcv_nxt, 0)
        win = space if space - cur >= min(config.recv_buffer // 2, config.mss) else cur
        scale = self._rcv_scale
        field = min(win >> scale, 0xFFFF)
        adv = self._rcv_nxt + (field << scale)
        if adv > self._rcv_adv:
            self._rcv_adv = adv
        return field

    def _emit(
        self,
        seq: int,
        flags: int,
        payload: bytes = b"",
        *,
        ack: int | None = None,
    ) -> None:
        """Append one segment; with ACK, it carries rcv_nxt, the window and our options (a RST: none)."""
        window = 0
        opts = None
        if flags & _RST:
            header = TcpHeader(
                self.local_port, self.remote_port, seq & SEQ_MASK, ack or 0, flags
            )
            self._segments.append((header, b""))
            self._stats["segments_sent"] += 1
            return
        if flags & _SYN:
            config = self.config
            window = min(config.recv_buffer, 0xFFFF)
            passive = self._state is _S.SYN_RECEIVED and self._opened_passively
            if passive:
                opts = TcpOptions(
                    mss=config.mss,
                    wscale=self._rcv_scale if self._wscale_ok else None,
                    sack_permitted=self._sack_ok,
                    timestamps=(self._ts_now(), self._ts_recent) if self._ts_ok else None,
                )
            else:
                opts = TcpOptions(
                    mss=config.mss,
                    wscale=self._rcv_scale if config.window_scaling else None,
                    sack_permitted=config.sack,
                    timestamps=(self._ts_now(), self._ts_recent if flags & _ACK else 0) if config.timestamps else None,
                )
        elif flags & _ACK:
            window = self._window_field()
            if self._ts_ok or self._sack_ok:
                opts = TcpOptions(
                    sack_blocks=self._sack_blocks(),
                    timestamps=(self._ts_now(), self._ts_recent) if self._ts_ok else None,
                )
        if flags & _ACK:
            if ack is None:
                ack = self._rcv_nxt & SEQ_MASK
                self._last_ack_sent = self._rcv_nxt
                self._ack_now = False
                self._t_delack = None
                self._rcv_unacked = 0
        elif ack is None:
            ack = 0
        header = TcpHeader(
            self.local_port, self.remote_port, seq & SEQ_MASK, ack, flags, window, 0,
            opts if opts is not None else NO_OPTIONS,
        )
        self._segments.append((header, payload))
        self._stats["segments_sent"] += 1

    def _send_rst(self, seq: int) -> None:
        self._emit(seq, _RST)

    def _data_options_len(self) -> int:
        n = _TS_OPTION_LEN if self._ts_ok else 0
        if self._sack_ok and self._ooo.blocks:
            n += 4 + 8 * len(self._sack_blocks())
        return n

    @property
    def _plain_options_len(self) -> int:
        # The options of a data segment without SACK blocks: what ``smss``
        # leaves room for.
        return _TS_OPTION_LEN if self._ts_ok else 0

    def _retransmit_at(self, seq: int, end: int | None = None) -> int:
        """Send one segment from ``seq`` (< snd_max, below ``end`` if given) again, window permitting or not.

        Returns:
            The sequence space it covers (payload, plus one for a FIN), 0 if
            nothing was sent.
        """
        data_end = self._sb_base + len(self._sndbuf)
        maxseg = min(self._peer_mss, self.config.mss) - self._data_options_len()
        length = max(0, min(data_end - seq, maxseg))
        if end is not None:
            length = max(0, min(length, end - seq))
        fin = (
            self._fin_queued and seq + length == data_end and self._snd_max > data_end
            and (end is None or end > data_end)
        )
        if not length and not fin:
            return 0
        off = seq - self._sb_base
        flags = _ACK | (_FIN if fin else 0) | (_PSH if length and seq + length == data_end else 0)
        self._emit(seq, flags, bytes(self._sndbuf[off : off + length]))
        self._stats["retransmits"] += 1
        self._stats["bytes_retransmitted"] += length
        return length + fin

    def _sack_retransmit(self, lost: bool, pipe: int) -> int:
        """Retransmit holes (rule 1 or 3) while ``cwnd - pipe >= SMSS``; returns the new pipe."""
        cc = self._cc
        assert cc is not None
        smss = self.smss
        sacks = self._sacks
        while cc.cwnd - pipe >= smss:
            hole = sacks.next_hole(lost, self._snd_una, self._snd_max, smss)
            if hole is None:
                break
            n = self._retransmit_at(*hole)
            if not n:
                break
            sacks.high_rxt = hole[0] + n
            pipe += n
        return pipe

    def _output(self, *, force: bool = False) -> None:
        st = self._state
        now = self._now
        if st is _S.SYN_SENT or st is _S.SYN_RECEIVED:
            if self._snd_nxt == self._iss:
                if self._snd_max > self._iss:
                    self._stats["retransmits"] += 1
                else:
                    self._rtt.timed_seq = self._iss
                    self._rtt.timed_at = now
                self._emit(self._iss, _SYN | _ACK if st is _S.SYN_RECEIVED else _SYN)
                self._snd_nxt = self._iss + 1
                self._snd_max = max(self._snd_max, self._snd_nxt)
                if self._t_rexmt is None:
                    self._t_rexmt = now + self._rtt.rto
                if self._stall_since is None:
                    self._stall_since = now
            elif self._ack_now and st is _S.SYN_RECEIVED:
                self._emit(self._snd_max, _ACK)
            self._ack_now = False
            return
        if st is _S.CLOSED:
            self._ack_now = False
            return
        if st is _S.TIME_WAIT:
            if self._ack_now:
                self._emit(self._snd_max, _ACK)
            return
        cc = self._cc
        assert cc is not None
        sndbuf = self._sndbuf
        sb_base = self._sb_base
        data_end = sb_base + len(sndbuf)
        fin_queued = self._fin_queued
        nodelay = self.config.nodelay
        sent = False
        # SACK-based recovery (RFC 6675 NextSeg): lost holes first (rule 1),
        # then new data (rule 2, the loop below), then holes not yet deemed
        # lost (rule 3), each while cwnd - pipe >= SMSS.
        sack_recovery = self._in_recovery and self._sack_ok
        smss = self.smss
        pipe = 0
        if sack_recovery:
            before = len(self._segments)
            pipe = self._sack_retransmit(True, self._sacks.pipe(self._snd_una, self._snd_max, smss, True))
            sent = len(self._segments) > before
        while True:
            nxt = self._snd_nxt
            end = data_end
            if nxt < self._snd_max and self._sacks.ranges:
                # Go-back-N after a timeout: skip what the peer SACKed since.
                for start, stop in self._sacks.ranges:
                    if stop <= nxt:
                        continue
                    if start > nxt:
                        end = min(end, start)
                        break
                    nxt = stop
                self._snd_nxt = nxt
            if nxt > data_end:
                break  # the FIN is out and nothing below it needs sending
            avail = end - nxt
            if sack_recovery:
                room = cc.cwnd - pipe
                usable = min(self._snd_una + self._snd_wnd - nxt, room) if room >= smss else 0
            else:
                usable = self._snd_una + min(self._snd_wnd, cc.cwnd) - nxt
            options_len = self._data_options_len()
            maxseg = min(self._peer_mss, self.config.mss) - options_len
            # TSO: the card cuts a super-segment into MSS-sized ones, so one
            # may carry up to tso_max bytes; only with the timestamps as its
            # only option (SACK blocks vary per segment), never in recovery.
            limit = maxseg
            if self.tso_max > maxseg and options_len == self._plain_options_len and not sack_recovery:
                limit = self.tso_max
            length = max(0, min(avail, usable, limit))
            fin = fin_queued and nxt + length == data_end
            if length:
                ok = (
                    length >= maxseg
                    or nxt < self._snd_max  # a retransmission (go-back-N)
                    or (length == avail and (nodelay or fin or self._snd_max == self._snd_una))
                    or (self._max_sndwnd and length >= self._max_sndwnd // 2)
                    or force
                )
            else:
                ok = fin
            if not ok:
                break
            flags = _ACK | (_FIN if fin else 0) | (_PSH if length and nxt + length == data_end else 0)
            off = nxt - sb_base
            self._emit(nxt, flags, bytes(sndbuf[off : off + length]))
            if nxt < self._snd_max:
                self._stats["retransmits"] += 1
                self._stats["bytes_retransmitted"] += min(length, self._snd_max - nxt)
            else:
                self._stats["bytes_sent"] += length
                if length and not self._ts_ok and self._rtt.timed_seq is None:
                    self._rtt.timed_seq = nxt
                    self._rtt.timed_at = now
            self._snd_nxt = nxt + length + fin
            if self._snd_nxt > self._snd_max:
                self._snd_max = self._snd_nxt
            pipe += length + fin
            if self._t_rexmt is None:
                self._t_rexmt = now + self._rtt.rto
            if self._stall_since is None:
                self._stall_since = now
            sent = True
            if fin or force:
                break
        if sack_recovery:
            before = len(self._segments)
            pipe = self._sack_retransmit(False, pipe)
            sent = sent or len(self._segments) > before
        if not sent and self._ack_now:
            self._emit(self._snd_max, _ACK)
        # Persist: something waits to be sent and no retransmission will come.
        waiting = self._snd_nxt < data_end or (fin_queued and self._snd_nxt == data_end)
        if self._t_rexmt is not None or not waiting:
            self._t_persist = None
            self._persist_shift = 0
        elif self._t_persist is None:
            self._t_persist = now + self._persist_interval()

    def _flush(self, *, data: bytes = b"", accepted: int = 0) -> TcpOutput:
        out = TcpOutput(tuple(self._segments), tuple(self._events), self.next_deadline(), data, accepted)
        self._segments.clear()
        self._events.clear()
        return out
