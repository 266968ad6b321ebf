"""The timers of a TCP connection (BSD ``tcp_timer.c``), and keepalive.

Theory of operation
===================

:class:`TcpTimers` is a base class of :class:`.tcp_connection.TcpConnection`
holding its timer handling; it has no state of its own (the fields are the
connection's, set in its ``__init__``). No timer is a task or a callout:
each is an absolute deadline (``None`` = stopped), the earliest of them is
:meth:`~TcpTimers.next_deadline`, which every output carries, and the glue
calls :meth:`~TcpTimers.on_timer` at or after it; that runs every timer due.

1. Retransmission (RFC 6298, with :mod:`.tcp_rtt`): armed at ``now + rto``
   when something is sent while it is stopped, rearmed by an ACK of new data
   (in NewReno recovery, by the first partial ACK only), stopped when
   everything is acknowledged. On expiry: give up
   after ``max_retries`` (``max_syn_retries`` for SYN and SYN-ACK) with
   ``ETIMEDOUT``; else count it, tell the congestion control (the first
   timeout of a series only; later ones set ``cwnd`` to one SMSS), leave loss
   recovery, clear the SACK scoreboard (RFC 6675 5.1: the receiver may have
   reneged), double the RTO (Karn) and go back to ``snd_una`` (go-back-N; in
   the SYN states, the SYN again).
2. Persist (zero-window probes): when data waits and no retransmission will
   come, a segment at ``snd_una - 1`` that the peer must ACK; or, with a
   small non-zero window that SWS avoidance would not fill, a forced send.
   Its interval backs off from the RTO, within ``[min_rto, max_rto]``.
3. Delayed ACK: its expiry makes an ACK owed; TIME_WAIT (2 MSL): its expiry
   closes the connection.
4. User timeout (RFC 5482): data unacknowledged for ``user_timeout``
   seconds drops the connection with ``ETIMEDOUT``.
5. Keepalive (off unless ``keepalive`` or :meth:`~TcpTimers.set_keepalive`;
   RFC 1122 4.2.3.6, BSD ``tcp_timer_keep``): in ESTABLISHED, CLOSE_WAIT
   and FIN_WAIT_2, after ``keepidle`` seconds without receiving any
   segment, a probe at ``snd_una - 1`` without data (the peer must ACK it),
   another every ``keepintvl``, and after ``keepcnt`` unanswered probes a
   drop with ``ETIMEDOUT``, ``keepidle + keepcnt * keepintvl`` after the last
   segment received. Any received segment restarts the idle period. The
   deadline is derived from the configuration at each look, so a
   configuration replaced by the caller takes effect.

Bounds: one :meth:`~TcpTimers.on_timer` call sends at most one probe (window
or keepalive) besides what the output routine sends.

DragonFly: ``sys/netinet/tcp_timer.c`` (``tcp_timer_rexmt``,
``tcp_timer_persist``, ``tcp_timer_keep``, ``tcp_timer_2msl``,
``tcp_timer_delack``).
"""

from __future__ import annotations

import errno

import attrs

from .tcp import TcpFlags
from .tcp_values import KEEPALIVE_STATES, TcpEvent, TcpOutput, TcpState

__all__ = ["TcpTimers"]

_ACK = int(TcpFlags.ACK)
_S = TcpState


class TcpTimers:
    """The timers of :class:`.tcp_connection.TcpConnection` (a base class without state)."""

    @property
    def srtt(self) -> float | None:
        return self._rtt.srtt

    @property
    def rttvar(self) -> float:
        return self._rtt.rttvar

    @property
    def rto(self) -> float:
        """The current retransmission timeout, backoff included."""
        return self._rtt.rto

    @property
    def keepalive_probes_unanswered(self) -> int:
        """Keepalive probes sent since the last segment received."""
        return self._keep_probes

    def next_deadline(self) -> float | None:
        """When :meth:`on_timer` next has work, or ``None``."""
        best = None
        for t in (self._t_rexmt, self._t_persist, self._t_delack, self._t_2msl, self._keep_deadline()):
            if t is not None and (best is None or t < best):
                best = t
        ut = self.config.user_timeout
        if ut is not None and self._stall_since is not None:
            t = self._stall_since + ut
            if best is None or t < best:
                best = t
        return best

    def on_timer(self, now: float) -> TcpOutput:
        """Run every timer whose deadline is at or before ``now``.

        Safe to call at any time; it does nothing if nothing is due.
        """
        self._now = now
        if self._t_2msl is not None and now >= self._t_2msl:
            self._enter_closed()
            return self._flush()
        ut = self.config.user_timeout
        if ut is not None and self._stall_since is not None and now >= self._stall_since + ut:
            self._drop(errno.ETIMEDOUT, TcpEvent.TIMEOUT)
            return self._flush()
        keep = self._keep_deadline()
        if keep is not None and now >= keep:
            if self._keep_probes >= self.config.keepcnt:
                self._stats["keepalive_drops"] += 1
                self._drop(errno.ETIMEDOUT, TcpEvent.TIMEOUT)
                return self._flush()
            self._keepalive_probe()
        if self._t_rexmt is not None and now >= self._t_rexmt:
            self._t_rexmt = None
            self._rexmt_expired()
        if self._t_persist is not None and now >= self._t_persist:
            self._t_persist = None
            self._persist_expired()
        if self._t_delack is not None and now >= self._t_delack:
            self._t_delack = None
            self._ack_now = True
        self._output()
        return self._flush()

    def set_keepalive(
        self,
        on: bool,
        now: float,
        *,
        idle: float | None = None,
        interval: float | None = None,
        count: int | None = None,
    ) -> TcpOutput:
        """Turn keepalive on or off, and optionally change its timing (``SO_KEEPALIVE``,
        ``TCP_KEEPIDLE``, ``TCP_KEEPINTVL``, ``TCP_KEEPCNT``).

        Replaces :attr:`config` with a copy holding the new values. Turning it
        on (or changing it while on) starts the idle period afresh at ``now``
        and forgets unanswered probes, so the first probe comes ``idle``
        seconds later even if the connection was already idle longer (Linux
        ``tcp_set_keepalive`` likewise rearms the timer). Allowed in any
        state; probes are sent only in ESTABLISHED, CLOSE_WAIT and FIN_WAIT_2.

        (Replacing :attr:`config` directly works too, but then the idle
        period counts from the last segment received, as in BSD, so a probe
        or even the drop may be due at once; and the caller must re-read
        :meth:`next_deadline`, which this method's output carries.)

        Returns:
            An output with no segments; its ``deadline`` includes the change.

        Raises:
            ValueError: ``idle`` or ``interval`` not positive, ``count`` < 1.
        """
        self._now = now
        changes: dict[str, object] = {"keepalive": bool(on)}
        if idle is not None:
            changes["keepidle"] = idle
        if interval is not None:
            changes["keepintvl"] = interval
        if count is not None:
            changes["keepcnt"] = count
        self.config = attrs.evolve(self.config, **changes)  # the validators check the values
        if on:
            self._idle_since = now
            self._keep_probes = 0
        return self._flush()


    def _rexmt_expired(self) -> None:
        st = self._state
        limit = self.config.max_syn_retries if st in (_S.SYN_SENT, _S.SYN_RECEIVED) else self.config.max_retries
        if self._rtt.backoffs >= limit:
            self._drop(errno.ETIMEDOUT, TcpEvent.TIMEOUT)
            return
        self._stats["timeouts"] += 1
        if st in (_S.SYN_SENT, _S.SYN_RECEIVED):
            self._syn_timed_out = True
        cc = self._cc
        if cc is not None and self._snd_max > self._snd_una:
            if self._rtt.backoffs == 0:
                cc.on_timeout(self._snd_max - self._snd_una, self._now)
            else:
                cc.cwnd = self.smss  # ssthresh held (RFC 5681 3.1)
            self._in_recovery = False
            self._dupacks = 0
            self._recover = self._snd_max  # RFC 6582 4
        # RFC 6675 5.1: the receiver may have reneged; forget what it SACKed
        # (as Linux and BSD effectively do) and rebuild from the ACKs that
        # follow, which go-back-N then uses to skip what they SACK.
        self._sacks.clear()
        self._sacks.high_rxt = self._snd_una
        self._rtt.backoff(self.config)  # RFC 6298 5.5; Karn
        self._snd_nxt = self._snd_una  # go-back-N (SYN states: the SYN again)

    def _persist_interval(self) -> float:
        config = self.config
        return min(max(self._rtt.rto * (1 << self._persist_shift), config.min_rto), config.max_rto)

    def _persist_expired(self) -> None:
        if self._state in (_S.CLOSED, _S.TIME_WAIT):
            return
        if self._snd_wnd == 0:
            # A window probe: a segment the peer finds outside its window
            # and must answer with an ACK carrying its window (Linux's
            # tcp_xmit_probe_skb; BSD sends one byte of data instead).
            self._stats["window_probes"] += 1
            self._emit(self._snd_una - 1, _ACK)
        else:
            self._output(force=True)
        self._persist_shift = min(self._persist_shift + 1, 16)
        self._t_persist = self._now + self._persist_interval()

    def _keep_deadline(self) -> float | None:
        """The next keepalive probe, or the drop once ``keepcnt`` went unanswered."""
        config = self.config
        if not config.keepalive or self._state not in KEEPALIVE_STATES:
            return None
        if self._keep_probes:
            return self._keep_last + config.keepintvl
        return self._idle_since + config.keepidle

    def _keepalive_probe(self) -> None:
        # A segment one below snd_una with no data: old to the peer, which
        # must answer with an ACK (RFC 9293 3.8.4, RFC 1122 4.2.3.6; BSD
        # tcp_timer_keep sends it with tcp_respond). Sent whatever is in
        # flight, as BSD does (Linux skips probes while data is outstanding).
        self._stats["keepalive_probes"] += 1
        self._keep_probes += 1
        self._keep_last = self._now
        self._emit(self._snd_una - 1, _ACK)
