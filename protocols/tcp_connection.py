"""A sans-IO TCP connection (RFC 9293), with RFC 6298, 5681, 6582, 6675, 7323, 2018 and 5961.

Theory of operation
===================

A :class:`TcpConnection` is one connection's TCB and nothing else: it never
sends, sleeps or reads a clock. The glue calls one of its methods with
``now`` and gets a :class:`TcpOutput`: segments to send (headers with their
payloads; the glue emits them with :meth:`.tcp.TcpHeader.emit` and the
addresses it knows), :class:`TcpEvent` values, data read, and the next
deadline, at or after which it calls :meth:`TcpConnection.on_timer`.

1. Opening. :meth:`~TcpConnection.connect` is an active open (SYN_SENT);
   :meth:`~TcpConnection.accept` a passive open from a listener's SYN
   (SYN_RECEIVED; the LISTEN state belongs to the listener in the glue).
   A SYN received in SYN_SENT without ACK is a simultaneous open: both sides
   pass through SYN_RECEIVED. The ISN is the caller's (RFC 6528:
   :func:`.tcp.isn_rfc6528`); so is the timestamp clock offset.
2. Sequence numbers are kept *unwrapped* inside the machine: Python ints
   that keep growing past 2**32, so comparisons are plain ``<``. A received
   32-bit number is unwrapped against a reference known to be within 2**31
   of it (``snd_una`` for ACKs, ``rcv_nxt`` for sequence numbers) and sent
   as ``x & 0xFFFFFFFF``. Properties such as :attr:`~TcpConnection.snd_una`
   give the 32-bit wire values.
3. Input follows RFC 9293 3.10.7 step by step: (PAWS) sequence check, RST,
   SYN, ACK, text, FIN. RSTs and SYNs follow RFC 5961: a RST is accepted only
   at exactly ``rcv_nxt``, one elsewhere in the window and any SYN in a
   synchronized state (but the duplicate below) draw a challenge ACK (at
   most ``challenge_ack_limit`` a second); ACKs older than ``snd_una`` by
   more than the largest window the peer advertised draw one too. The plain
   ACK that answers a segment failing the sequence or PAWS check, or an ACK
   of data not yet sent, goes out at most once per ``oow_ack_interval``
   (0.5 s, Linux's ``tcp_invalid_ratelimit``), so two ends desynchronized
   by a blind injection cannot trade ACKs forever. A SYN at the peer's ISN
   is a duplicate of the one we know, not a new one, and is stripped (BSD),
   which is how crossed SYN-ACKs of a simultaneous open become plain ACKs.
   Its sequence number is old, though, and a segment that passes the
   sequence check but starts below ``rcv_nxt`` (its SYN, or data) is
   acknowledged at once, outside both limits (BSD ``TF_ACKNOW``): the peer
   sent it again because it did not get our ACK. That is what completes a
   handshake whose final ACK was lost: the peer in SYN_RECEIVED sends its
   SYN-ACK again, and our answer is the only thing that can establish it
   when we have nothing to send (the server speaks first: SMTP, SSH). No
   loop can follow, since that ACK is acceptable to the peer, which does
   not answer it.
4. Output is one routine (BSD ``tcp_output``), run at the end of every
   call: it sends what the windows, Nagle and SWS avoidance allow, a FIN
   after the last byte once :meth:`~TcpConnection.close` was called, and an
   ACK if one is owed; with :attr:`~TcpConnection.tso_max`, super-segments
   (:mod:`.tcp_output`, which has the rules).
5. Timers are absolute deadlines: retransmission (RFC 6298, with Karn's
   rule and backoff, :mod:`.tcp_rtt`), persist, delayed ACK, TIME_WAIT, the
   user timeout (RFC 5482) and keepalive (:mod:`.tcp_timers`).
6. Loss recovery: NewReno (RFC 5681, 6582) without SACK, RFC 6675 with it,
   the window policy a pluggable :class:`.tcp_cc.CongestionControl`
   (:mod:`.tcp_recovery`); the SACK scoreboard with IsLost, SetPipe and
   NextSeg is :mod:`.tcp_sack_scoreboard`.
7. Receiving: in-order data goes to a receive buffer the application drains
   with :meth:`~TcpConnection.read`; out-of-order data waits in a
   :class:`.tcp_reassembly.ReassemblyQueue`, which also orders the SACK
   blocks. ACKs are delayed up to ``delayed_ack`` seconds, except for every
   second full-sized segment, out-of-order and gap-filling segments, and
   FINs (RFC 5681 4.2, RFC 9293 3.8.6.3). The window never shrinks and grows
   only by at least ``min(mss, recv_buffer / 2)`` (receiver SWS avoidance).

The parts: :class:`TcpConnection` keeps the state, the user calls, the input
steps in RFC 9293's order and the state changes; it inherits the sender's
ACK handling (:class:`.tcp_recovery.TcpLossRecovery`), the timers
(:class:`.tcp_timers.TcpTimers`) and the output routine
(:class:`.tcp_output.TcpSegmentOutput`), base classes without state of
their own, so a segment's path is as many calls deep as in one class; and it
owns a :class:`.tcp_rtt.RttEstimator`, a
:class:`.tcp_sack_scoreboard.SackScoreboard` and a
:class:`.tcp_reassembly.ReassemblyQueue`, each with its invariants and
model-based tests. The values it takes and returns are in :mod:`.tcp_values`.

Bounds: the receive buffer and out-of-order data together hold at most
``recv_buffer`` bytes (data is accepted only inside the advertised window,
which never exceeds the free space), in at most ``max_ooo_blocks`` blocks;
the send buffer holds at most ``send_buffer`` bytes (:meth:`send` takes what
fits and says how much); the SACK scoreboard holds at most
:data:`MAX_SACK_RANGES` (32) merged ranges. One call returns at most one
window's worth of segments (``min(snd_wnd, cwnd)``, or ``cwnd - pipe`` in
SACK recovery, bounded by ``send_buffer``) plus one retransmission on
entering recovery or on a partial ACK, plus one ACK or keepalive probe.
Work per segment is O(SACK blocks + out-of-order blocks touched +
scoreboard ranges) apart from copying its bytes.

Every method is total over its documented inputs: :meth:`receive` never
raises for any header :meth:`.tcp.TcpHeader.parse` can return, whatever the
state; misuse by the caller raises :class:`LocalProtocolError` or
``ValueError``.

Implemented and tested: everything above. Not implemented:

- D-SACK (RFC 2883): none is sent, and received ones are ignored (no
  undoing of spurious retransmissions). RFC 6675's rescue retransmission
  (NextSeg rule 4), and detecting the loss of a retransmission (only the
  RTO notices it; RACK does).
- Limited transmit (RFC 3042), RACK-TLP (RFC 8985), F-RTO/Eifel, ECN
  (RFC 3168), TCP Fast Open, urgent data (the urgent pointer is ignored and
  the data delivered inline, as RFC 6093 recommends), the 24-day PAWS
  idle rule (RFC 7323 5.5), and data carried on SYN segments (it is not
  acknowledged, so the peer sends it again). Path MTU discovery is the
  glue's (it sets DF and reads ICMP); the machine only lowers its segment
  size when told (:meth:`~TcpConnection.lower_mss`), never raises it again
  (no RFC 1191 section 6.3 probing after 10 minutes).
- A non-RST segment without timestamps on a connection that negotiated them
  is accepted (Divergence: RFC 7323 3.2 says SHOULD drop; Linux accepts).
- A RST in TIME_WAIT is ignored (RFC 1337), not obeyed (RFC 9293).

DragonFly: ``sys/netinet/tcp_input.c`` (``tcp_input``), ``tcp_usrreq.c``
(the user calls), ``tcp_subr.c`` (``tcp_drop``, ``tcp_close``); the parts
name theirs.
"""

from __future__ import annotations

import errno

import attrs

from .tcp import SEQ_MASK, TcpFlags, TcpHeader, seq_diff, seq_lt
from .errors import LocalProtocolError
from .tcp_cc import CongestionControl
from .tcp_output import TcpSegmentOutput
from .tcp_reassembly import ReassemblyQueue
from .tcp_recovery import TcpLossRecovery
from .tcp_rtt import RttEstimator
from .tcp_sack_scoreboard import DUPTHRESH, MAX_SACK_RANGES, SackScoreboard
from .tcp_timers import TcpTimers
from .tcp_values import (
    CLOSE_NEXT as _CLOSE_NEXT,
    DEFAULT_MSS,
    FIN_ACKED_NEXT as _FIN_ACKED_NEXT,
    FIN_NEXT as _FIN_NEXT,
    MIN_MSS,
    RECEIVING as _RECEIVING,
    SENDING as _SENDING,
    SYNCHRONIZED as _SYNCHRONIZED,
    TcpConfig,
    TcpEvent,
    TcpOutput,
    TcpProbe,
    TcpState,
    TcpStatistics,
)

__all__ = [
    "DUPTHRESH",
    "MAX_SACK_RANGES",
    "MIN_MSS",
    "LocalProtocolError",
    "TcpConfig",
    "TcpConnection",
    "TcpEvent",
    "TcpOutput",
    "TcpProbe",
    "TcpState",
    "TcpStatistics",
    "is_connection_request",
]

_MAX_WSCALE = 14  # RFC 7323 2.3
#: TcpStatistics fields counted by the parts, not in ``_stats``.
_PART_COUNTERS = frozenset(
    {"rtt_samples", "ooo_segments", "ooo_dropped", "sack_blocks_ignored", "sack_ranges_dropped"}
)

# The flag bits as ints: per segment, an int's & is C, an IntFlag's Python.
_SYN = int(TcpFlags.SYN)
_ACK = int(TcpFlags.ACK)
_FIN = int(TcpFlags.FIN)
_RST = int(TcpFlags.RST)
_S = TcpState


def is_connection_request(header: TcpHeader) -> bool:
    """Whether ``header`` may open a connection: SYN without ACK, RST or FIN."""
    return header.flags & (_SYN | _ACK | _RST | _FIN) == _SYN


def _scale_for(buffer: int) -> int:
    shift = 0
    while shift < _MAX_WSCALE and buffer >> shift > 0xFFFF:
        shift += 1
    return shift


####################################################################
# The machine
####################################################################


class TcpConnection(TcpLossRecovery, TcpTimers, TcpSegmentOutput):
    """One TCP connection's state machine: see the module's theory of operation.

    Args:
        local_port, remote_port: the ports (the addresses are the glue's).
        iss: our initial sequence number, 0..2**32-1.
        config: options.
        ts_offset: added to our millisecond timestamp clock (RFC 7323 5.4
            recommends a random per-connection offset).

    Not thread-safe: the glue calls it from the one protocol thread that
    owns the connection. ``now`` must never decrease between calls.
    """

    def __init__(
        self,
        local_port: int,
        remote_port: int,
        *,
        iss: int,
        config: TcpConfig | None = None,
        ts_offset: int = 0,
    ) -> None:
        if not (0 <= local_port <= 0xFFFF and 0 <= remote_port <= 0xFFFF):
            raise ValueError("ports must be 0..65535")
        if not 0 <= iss <= SEQ_MASK:
            raise ValueError(f"iss must be 0..2**32-1, got {iss}")
        self.config = config = config if config is not None else TcpConfig()
        self.local_port = local_port
        self.remote_port = remote_port
        self.error: int | None = None
        self._state = _S.CLOSED
        self._now = 0.0
        self._ts_offset = ts_offset
        # Send sequence space (unwrapped).
        self._iss = iss
        self._snd_una = self._snd_nxt = self._snd_max = iss
        self._snd_wnd = 0
        self._max_sndwnd = 0
        self._snd_wl1 = self._snd_wl2 = 0
        self._sndbuf = bytearray()
        self._sb_base = iss + 1  # sequence number of _sndbuf[0]
        self._fin_queued = False
        # Receive sequence space (unwrapped; meaningful once _irs is known).
        self._irs = 0
        self._rcv_nxt = 0
        self._rcv_adv = 0  # right edge of the window we advertised
        self._rcvbuf = bytearray()
        self._ooo = ReassemblyQueue()
        self._rcv_fin: int | None = None
        self._eof = False
        # Options.
        self._rcv_scale = _scale_for(config.recv_buffer) if config.window_scaling else 0
        self._snd_scale = 0
        self._wscale_ok = False
        self._opened_passively = False
        self._ts_ok = False
        self._ts_recent = 0
        self._last_ack_sent = 0
        self._sack_ok = False
        self._peer_mss = DEFAULT_MSS
        # Congestion control, created when the connection is established.
        self._cc: CongestionControl | None = None
        self._dupacks = 0
        self._in_recovery = False
        self._recover = iss
        self._partial_seen = False
        # RFC 6675 sender scoreboard and HighRxt.
        self._sacks = SackScoreboard(iss)
        # RTT estimation (RFC 6298).
        self._rtt = RttEstimator(config.initial_rto)
        self._syn_timed_out = False
        # Timers: absolute deadlines, None when stopped.
        self._t_rexmt: float | None = None
        self._t_persist: float | None = None
        self._persist_shift = 0
        self._t_delack: float | None = None
        self._t_2msl: float | None = None
        self._stall_since: float | None = None
        # Keepalive: the deadline is derived from these and the config
        # (_keep_deadline), so a config replaced by the caller takes effect.
        self._idle_since = 0.0  # last segment received (or establishment, set_keepalive)
        self._keep_probes = 0  # unanswered probes
        self._keep_last = 0.0  # when the last one was sent
        # ACK generation.
        self._ack_now = False
        self._rcv_unacked = 0
        self._rcv_mss = min(config.mss, DEFAULT_MSS)
        self._chack_second = -1.0
        self._last_oow_ack: float | None = None
        self._chack_count = 0
        #: TSO: the most payload one segment may carry when the glue's
        #: interface cuts super-segments into ``smss``-sized ones in
        #: hardware (0: off; set by the glue from the route's interface).
        self.tso_max = 0
        # Output of the current call.
        self._segments: list[tuple[TcpHeader, bytes]] = []
        self._events: list[TcpEvent] = []
        # The counters; the parts keep theirs (see statistics()).
        self._stats = dict.fromkeys(attrs.fields_dict(TcpStatistics).keys() - _PART_COUNTERS, 0)

    ####################################################################
    # Read-only views
    ####################################################################

    @property
    def state(self) -> TcpState:
        return self._state

    @property
    def snd_una(self) -> int:
        """The oldest unacknowledged sequence number (32-bit)."""
        return self._snd_una & SEQ_MASK

    @property
    def snd_nxt(self) -> int:
        """The next sequence number to send (32-bit)."""
        return self._snd_nxt & SEQ_MASK

    @property
    def snd_max(self) -> int:
        """One past the highest sequence number sent (32-bit)."""
        return self._snd_max & SEQ_MASK

    @property
    def rcv_nxt(self) -> int:
        """The next sequence number expected (32-bit)."""
        return self._rcv_nxt & SEQ_MASK

    @property
    def snd_wnd(self) -> int:
        """The peer's window in bytes (scaled)."""
        return self._snd_wnd

    @property
    def rcv_wnd(self) -> int:
        """The window we last advertised, in bytes from ``rcv_nxt``."""
        return self._rcv_adv - self._rcv_nxt

    @property
    def timestamps_enabled(self) -> bool:
        return self._ts_ok

    @property
    def sack_enabled(self) -> bool:
        return self._sack_ok

    @property
    def window_scales(self) -> tuple[int, int]:
        """``(send, receive)`` shifts in use."""
        return self._snd_scale, self._rcv_scale

    @property
    def readable(self) -> int:
        """Bytes :meth:`read` can return now."""
        return len(self._rcvbuf)

    @property
    def at_eof(self) -> bool:
        """The peer's FIN arrived and every byte before it was read."""
        return self._eof and not self._rcvbuf

    @property
    def send_space(self) -> int:
        """Bytes :meth:`send` would take now."""
        return self.config.send_buffer - len(self._sndbuf)

    @property
    def can_send(self) -> bool:
        """The application may still queue data (not closed, reset or
        half-closed with :meth:`close`)."""
        return self._state in _SENDING and not self._fin_queued

    @property
    def send_buffer(self) -> bytearray:
        """The send socket buffer (BSD ``so_snd``): bytes from ``snd_una``
        on, sent or not.

        The application's side may append to it between calls while
        :attr:`can_send`, up to ``config.send_buffer`` bytes in all, and
        then calls :meth:`output`; nothing else may change it. It is the
        same object for the connection's whole life.
        """
        return self._sndbuf

    @property
    def recv_buffer(self) -> bytearray:
        """The receive socket buffer (BSD ``so_rcv``): in-order data not
        yet read.

        The application's side may take bytes from its front between calls
        (``del buf[:n]``), and then calls :meth:`output` so a window
        update can go out; nothing else may change it. It is the same
        object for the connection's whole life.
        """
        return self._rcvbuf

    @property
    def unsent(self) -> int:
        """Bytes buffered and not yet sent once."""
        return max(0, self._sb_base + len(self._sndbuf) - self._snd_max)

    @property
    def buffered(self) -> int:
        """Bytes in the send buffer (sent but unacknowledged, and unsent)."""
        return len(self._sndbuf)

    @property
    def ooo_bytes(self) -> int:
        """Out-of-order bytes held for reassembly."""
        return self._ooo.nbytes

    def probe(self) -> TcpProbe:
        """The sender's state now, for tracing (a :class:`TcpProbe`)."""
        cc = self._cc
        return TcpProbe(
            iss=self._iss,
            irs=self._irs & SEQ_MASK,
            snd_una=self._snd_una & SEQ_MASK,
            snd_max=self._snd_max & SEQ_MASK,
            cwnd=None if cc is None else cc.cwnd,
            ssthresh=None if cc is None else cc.ssthresh,
            srtt=self._rtt.srtt,
            rto=self._rtt.rto,
            retransmits=self._stats["retransmits"],
        )

    def statistics(self) -> TcpStatistics:
        """A snapshot of the counters."""
        ooo, sacks = self._ooo, self._sacks
        return TcpStatistics(
            **self._stats,
            rtt_samples=self._rtt.samples,
            ooo_segments=ooo.segments,
            ooo_dropped=ooo.dropped,
            sack_blocks_ignored=sacks.blocks_ignored,
            sack_ranges_dropped=sacks.ranges_dropped,
        )

    ####################################################################
    # User calls (RFC 9293 3.10.1-3.10.5)
    ####################################################################

    def connect(self, now: float) -> TcpOutput:
        """Active open: send a SYN.

        Raises:
            LocalProtocolError: the connection was opened before.
        """
        self._now = now
        if self._state is not _S.CLOSED or self._snd_max != self._iss:
            raise LocalProtocolError("connect() on a connection that was already opened")
        self._state = _S.SYN_SENT
        self._output()
        return self._flush()

    def accept(self, header: TcpHeader, payload: bytes | bytearray | memoryview, now: float) -> TcpOutput:
        """Passive open from a listener's SYN: answer with a SYN-ACK.

        Data on the SYN is not accepted (not acknowledged; the peer sends it
        again after the handshake).

        Raises:
            ValueError: ``header`` is not a connection request
                (:func:`is_connection_request`).
            LocalProtocolError: the connection was opened before.
        """
        self._now = now
        if not is_connection_request(header):
            raise ValueError(f"accept() needs a SYN without ACK, RST or FIN, got {header.flags!r}")
        if self._state is not _S.CLOSED or self._snd_max != self._iss:
            raise LocalProtocolError("accept() on a connection that was already opened")
        self._stats["segments_received"] += 1
        self._learn_syn(header, offered=True)
        self._snd_wnd = header.window  # never scaled in a SYN (RFC 7323 2.2)
        self._max_sndwnd = header.window
        self._snd_wl1 = self._irs
        self._snd_wl2 = self._iss
        self._state = _S.SYN_RECEIVED
        self._output()
        return self._flush()

    def send(self, data: bytes | bytearray | memoryview, now: float) -> TcpOutput:
        """Queue ``data`` for sending; as much as fits in the send buffer.

        The same as appending to :attr:`send_buffer` and calling
        :meth:`output`.

        Returns:
            An output whose ``accepted`` says how many bytes were taken
            (0 when the buffer is full: wait for ``WRITABLE``).

        Raises:
            LocalProtocolError: the connection is not open for sending
                (closed, reset, or :meth:`close` was called).
        """
        self._now = now
        if not self.can_send:
            raise LocalProtocolError(f"cannot send in state {self._state.name}" + (" after close()" if self._fin_queued else ""))
        n = min(len(data), self.config.send_buffer - len(self._sndbuf))
        if n > 0:
            self._sndbuf += memoryview(data)[:n]
            self._output()
        return self._flush(accepted=n)

    def read(self, max_bytes: int, now: float) -> TcpOutput:
        """Take up to ``max_bytes`` of received data (``data`` in the output).

        The same as taking bytes from the front of :attr:`recv_buffer` and
        calling :meth:`output`, which sends a window update if reading opened
        the window enough (by at least ``min(2 * mss, recv_buffer / 2)``).

        Raises:
            ValueError: ``max_bytes`` is less than 1.
        """
        self._now = now
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        buf = self._rcvbuf
        data = bytes(buf[:max_bytes])
        del buf[:max_bytes]
        self._window_update()
        return self._flush(data=data)

    def output(self, now: float) -> TcpOutput:
        """Act on what the application did to the socket buffers between
        calls: send the data it appended to :attr:`send_buffer` (as far as
        the windows, Nagle and SWS avoidance allow), and a window update if
        taking bytes from :attr:`recv_buffer` opened the window enough.

        A no-op when there is nothing to do, in any state (BSD
        ``tcp_usr_send``'s and ``tcp_usr_rcvd``'s ``tcp_output``).
        """
        self._now = now
        if self._state in _SYNCHRONIZED:
            self._window_update()
            self._output()
        return self._flush()

    def close(self, now: float) -> TcpOutput:
        """Half-close: send a FIN after the queued data (``send_eof``).

        Reading goes on until the peer's FIN. Idempotent. Before the
        handshake completes the FIN waits for it (FIN_WAIT_1 follows
        ESTABLISHED at once), except in SYN_SENT with nothing queued, where
        the connection just ends. (Divergence: RFC 9293 3.10.4 deletes the
        TCB in SYN_SENT even with queued data; we send the data first, as
        for SYN_RECEIVED.)
        """
        self._now = now
        st = self._state
        if st is _S.SYN_SENT and not self._sndbuf:
            self._enter_closed()
        elif not self._fin_queued and (st in _CLOSE_NEXT or st in (_S.SYN_SENT, _S.SYN_RECEIVED)):
            self._fin_queued = True
            if st in _CLOSE_NEXT:
                self._state = _CLOSE_NEXT[st]
            self._output()
        return self._flush()

    def abort(self, now: float) -> TcpOutput:
        """Reset the connection: send a RST (if synchronized) and close at once.

        Buffered data is discarded. A no-op on a closed connection.
        """
        self._now = now
        st = self._state
        if st in (_S.SYN_RECEIVED, _S.ESTABLISHED, _S.FIN_WAIT_1, _S.FIN_WAIT_2, _S.CLOSE_WAIT):
            self._send_rst(self._snd_max & SEQ_MASK)
        if st is not _S.CLOSED:
            self._enter_closed()
        return self._flush()

    ####################################################################
    # Input (RFC 9293 3.10.7)
    ####################################################################

    def receive(self, header: TcpHeader, payload: bytes | bytearray | memoryview, now: float) -> TcpOutput:
        """Process one received segment (ports already matched by the glue).

        Never raises for a header :meth:`.tcp.TcpHeader.parse` returned:
        unacceptable segments are answered (ACK, challenge ACK or RST, as
        RFC 9293 and 5961 say), counted and dropped.
        """
        self._now = now
        self._stats["segments_received"] += 1
        st = self._state
        # Keepalive: anything from the peer shows it alive (BSD resets
        # t_rcvtime for every segment reaching the connection, acceptable or not).
        self._idle_since = now
        self._keep_probes = 0
        if st is _S.CLOSED:
            if not header.flags & _RST:
                # RFC 9293 3.10.7.1, as for a segment that found no connection.
                if header.flags & _ACK:
                    self._send_rst(header.ack)
                else:
                    seglen = len(payload) + bool(header.flags & _SYN) + bool(header.flags & _FIN)
                    self._emit(0, _RST | _ACK, ack=(header.seq + seglen) & SEQ_MASK)
        elif st is _S.SYN_SENT:
            self._syn_sent_input(header, payload)
        else:
            self._synchronized_input(header, payload)
        if self._state is not _S.CLOSED:
            self._output()
        return self._flush()

    def _syn_sent_input(self, h: TcpHeader, payload: bytes | bytearray | memoryview) -> None:
        flags = h.flags
        ack = None
        if flags & _ACK:
            ack = self._snd_una + seq_diff(h.ack, self._snd_una & SEQ_MASK)
            if ack <= self._iss or ack > self._snd_max:
                if not flags & _RST:
                    self._send_rst(h.ack)
                return
        if flags & _RST:
            if ack is not None:
                self._drop(errno.ECONNREFUSED, TcpEvent.RESET)
            return
        if not flags & _SYN:
            return
        self._learn_syn(h, offered=False)
        self._snd_wnd = self._max_sndwnd = h.window
        self._snd_wl1 = self._irs
        if ack is not None:
            self._snd_wl2 = ack
            self._ack_received(ack, h)
            self._establish()
            self._ack_now = True
        else:
            # Simultaneous open: send our SYN again, now with an ACK.
            self._snd_wl2 = self._iss
            self._state = _S.SYN_RECEIVED
            self._snd_nxt = self._iss
            self._t_rexmt = None

    def _synchronized_input(self, h: TcpHeader, payload: bytes | bytearray | memoryview) -> None:
        st = self._state
        flags = h.flags
        syn = bool(flags & _SYN)
        fin = bool(flags & _FIN)
        rst = bool(flags & _RST)
        rcv_nxt = self._rcv_nxt
        seq = rcv_nxt + seq_diff(h.seq, rcv_nxt & SEQ_MASK)
        dup_syn = syn and seq == self._irs
        if dup_syn:
            if st is _S.SYN_RECEIVED and not flags & (_ACK | _RST):
                # The peer's SYN again: our SYN-ACK was lost; send it again.
                self._snd_nxt = self._iss
                return
            # A duplicate of the SYN we know (crossed SYN-ACKs, a SYN-ACK
            # sent again because our ACK of it was lost): not a new SYN but
            # an old sequence number. Strip it (BSD tcp_input "drop SYN", part
            # of trimming todrop) and judge the rest; if that is acceptable,
            # the segment is acknowledged at once below, as one with old
            # data is (stripping must not hide that it started below rcv_nxt).
            syn = False
            seq += 1
        data = memoryview(payload)
        orig_seq = seq

        # First: PAWS (RFC 7323 5.3), then the sequence number check.
        ts = h.options.timestamps
        if self._ts_ok and ts is not None and not rst and seq_lt(ts[0], self._ts_recent):
            self._stats["paws_dropped"] += 1
            self._oow_ack()
            return
        wnd = self._rcv_adv - rcv_nxt
        seglen = len(data) + syn + fin
        if seglen == 0:
            ok = seq == rcv_nxt if wnd <= 0 else rcv_nxt <= seq < rcv_nxt + wnd
        elif wnd <= 0:
            # RFC 9293: with a zero window, still process the ACK (and RST)
            # of a segment at rcv_nxt; its data is trimmed below.
            ok = seq == rcv_nxt
        else:
            end = rcv_nxt + wnd
            ok = rcv_nxt <= seq < end or rcv_nxt <= seq + seglen - 1 < end
        if not ok:
            if not rst:
                self._stats["unacceptable"] += 1
                self._oow_ack()
                if st is _S.TIME_WAIT and fin:
                    self._t_2msl = self._now + 2 * self.config.msl
            return
        # Trim to the window. A segment that started below rcv_nxt (with
        # the duplicate SYN stripped above, or with old data) was sent again
        # because our ACK did not reach the peer: acknowledge at once (BSD
        # TF_ACKNOW), not rate-limited (rule 3). For a SYN-ACK sent again,
        # nothing else would ever tell the peer.
        if dup_syn:
            self._ack_now = True
        if seq < rcv_nxt:
            cut = rcv_nxt - seq
            if syn:
                syn = False
                cut -= 1
                seq += 1
            if cut > len(data):
                fin = False  # an old FIN
                cut = len(data)
            data = data[cut:]
            seq += cut
            self._ack_now = True
        if seq + len(data) > self._rcv_adv:
            data = data[: max(0, self._rcv_adv - seq)]
            fin = False
            self._ack_now = True

        # Second: RST (RFC 5961 3.2).
        if rst:
            if seq == rcv_nxt:
                if st is not _S.TIME_WAIT:  # RFC 1337
                    # The handshake never completed: "refused".
                    err = errno.ECONNREFUSED if st is _S.SYN_RECEIVED else errno.ECONNRESET
                    self._drop(err, TcpEvent.RESET)
            else:
                self._challenge_ack()
            return
        # Fourth: SYN (RFC 5961 4.2).
        if syn:
            self._challenge_ack()
            return
        # Fifth: ACK.
        if not flags & _ACK:
            return
        if ts is not None and self._ts_ok and orig_seq <= self._last_ack_sent:
            self._ts_recent = ts[0]  # RFC 7323 4.3 (PAWS passed: not older)
        ack = self._snd_una + seq_diff(h.ack, self._snd_una & SEQ_MASK)
        if st is _S.SYN_RECEIVED:
            if not self._snd_una < ack <= self._snd_max:
                self._send_rst(h.ack)
                return
            self._snd_wnd = h.window << self._snd_scale
            self._max_sndwnd = max(self._max_sndwnd, self._snd_wnd)
            self._snd_wl1, self._snd_wl2 = seq, ack
            self._establish()
        if not self._ack_input(ack, h, seq, len(data), fin):
            return
        # Sixth (URG) ignored; seventh: text; eighth: FIN.
        st = self._state
        if st not in _RECEIVING or self._eof:
            return
        if data:
            self._data_input(seq, data)
        if fin and self._rcv_fin is None and seq + len(data) >= self._rcv_nxt:
            self._rcv_fin = seq + len(data)
            self._ack_now = True
        if self._rcv_fin is not None and self._rcv_fin == self._rcv_nxt:
            self._fin_input()

    def _ack_input(self, ack: int, h: TcpHeader, seq: int, datalen: int, fin: bool) -> bool:
        """RFC 9293 3.10.7.4 fifth step for synchronized states; False: drop the segment."""
        snd_una = self._snd_una
        if ack > self._snd_max:
            self._oow_ack()
            return False
        if ack < snd_una - self._max_sndwnd:
            self._challenge_ack()  # RFC 5961 5.2
            return False
        window = h.window << self._snd_scale
        blocks = h.options.sack_blocks if self._sack_ok else ()
        newly_sacked = bool(blocks) and self._sacks.update(blocks, snd_una, ack, self._snd_max)
        if ack > snd_una:
            self._ack_received(ack, h)
        elif (
            ack == snd_una and datalen == 0 and not fin and window == self._snd_wnd
            and self._snd_max > snd_una and self._state is not _S.TIME_WAIT
        ):
            self._dup_ack(bool(blocks))
        elif not self._in_recovery and not self._sack_ok:
            self._dupacks = 0
        if newly_sacked:
            # RFC 6675 2: an ACK SACKing new data is a duplicate ACK "even if
            # it carries new data, changes the advertised window, or moves
            # the cumulative acknowledgment point".
            self._sack_dup_ack()
        # Window update (RFC 9293 3.10.7.4).
        if self._snd_wl1 < seq or (self._snd_wl1 == seq and self._snd_wl2 <= ack):
            self._snd_wnd = window
            self._snd_wl1, self._snd_wl2 = seq, ack
            if window > self._max_sndwnd:
                self._max_sndwnd = window
        # Our FIN acknowledged?
        st = self._state
        if self._fin_queued and self._snd_una > self._sb_base + len(self._sndbuf) and st in _FIN_ACKED_NEXT:
            nxt = _FIN_ACKED_NEXT[st]
            if nxt is _S.CLOSED:
                self._enter_closed()
                return False
            if nxt is _S.TIME_WAIT:
                self._enter_time_wait()
            else:
                self._state = nxt
        return True

    ####################################################################
    # Receiving data
    ####################################################################

    def _data_input(self, seq: int, data: memoryview) -> None:
        if self._rcv_fin is not None and seq + len(data) > self._rcv_fin:
            data = data[: max(0, self._rcv_fin - seq)]
        n = len(data)
        if not n:
            return
        if n > self._rcv_mss:
            self._rcv_mss = min(n, self.config.mss)
        if seq == self._rcv_nxt:
            ooo = self._ooo
            gap = bool(ooo.blocks)
            self._rcvbuf += data
            self._rcv_nxt += n
            delivered = n
            if gap:
                nxt = ooo.pull(self._rcv_nxt, self._rcvbuf)
                delivered += nxt - self._rcv_nxt
                self._rcv_nxt = nxt
                self._ack_now = True
            self._stats["bytes_received"] += delivered
            self._events.append(TcpEvent.DATA)
            self._rcv_unacked += n
            if self.config.delayed_ack == 0 or self._rcv_unacked >= 2 * self._rcv_mss:
                self._ack_now = True
            elif self._t_delack is None:
                self._t_delack = self._now + self.config.delayed_ack
        else:
            self._ooo.insert(seq, data, self.config.max_ooo_blocks)
            self._ack_now = True  # a duplicate ACK at once (RFC 5681 4.2)

    def _fin_input(self) -> None:
        self._rcv_nxt += 1
        self._eof = True
        self._ack_now = True
        self._events.append(TcpEvent.EOF)
        st = self._state
        if st in _FIN_NEXT:
            nxt = _FIN_NEXT[st]
            if nxt is _S.TIME_WAIT:
                self._enter_time_wait()
            else:
                self._state = nxt

    ####################################################################
    # State changes
    ####################################################################

    def _learn_syn(self, h: TcpHeader, *, offered: bool) -> None:
        """Take the peer's ISN and SYN options. ``offered``: we answer (passive)."""
        config = self.config
        opts = h.options
        self._opened_passively = offered
        self._irs = h.seq
        self._rcv_nxt = h.seq + 1
        mss = opts.mss if opts.mss is not None else DEFAULT_MSS
        self._peer_mss = max(mss, MIN_MSS)
        self._wscale_ok = config.window_scaling and opts.wscale is not None
        if self._wscale_ok:
            self._snd_scale = min(opts.wscale, _MAX_WSCALE)
        else:
            self._snd_scale = self._rcv_scale = 0
        self._sack_ok = config.sack and opts.sack_permitted
        if config.timestamps and opts.timestamps is not None:
            self._ts_ok = True
            self._ts_recent = opts.timestamps[0]
        # The window our SYN advertises (or advertised): unscaled, at most 65535.
        self._rcv_adv = self._rcv_nxt + min(config.recv_buffer, 0xFFFF)

    def _establish(self) -> None:
        self._state = _S.FIN_WAIT_1 if self._fin_queued else _S.ESTABLISHED
        self._cc = self.config.congestion_control(self.smss)
        rtt = self._rtt
        if self._syn_timed_out and rtt.srtt is None and rtt.rto < 3.0:
            rtt.rto = 3.0  # RFC 6298 5.7
        self._idle_since = self._now
        self._keep_probes = 0
        self._events.append(TcpEvent.CONNECTED)

    def _enter_time_wait(self) -> None:
        self._state = _S.TIME_WAIT
        self._t_rexmt = self._t_persist = self._t_delack = None
        self._stall_since = None
        self._t_2msl = self._now + 2 * self.config.msl

    def _enter_closed(self) -> None:
        self._state = _S.CLOSED
        self._t_rexmt = self._t_persist = self._t_delack = self._t_2msl = None
        self._sacks.clear()
        self._stall_since = None
        self._ack_now = False
        self._events.append(TcpEvent.CLOSED)

    def _drop(self, err: int, event: TcpEvent) -> None:
        """Abort with ``err``: RST to the peer if we timed out while synchronized (BSD tcp_drop)."""
        if event is TcpEvent.TIMEOUT and self._state not in (_S.SYN_SENT, _S.CLOSED):
            self._send_rst(self._snd_max & SEQ_MASK)
        self.error = err
        self._sndbuf.clear()
        self._rcvbuf.clear()
        self._ooo.clear()
        self._events.append(event)
        self._enter_closed()
