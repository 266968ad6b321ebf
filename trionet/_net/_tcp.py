"""TCP glue: the connection table, input, the SYN cache and cookies, timers,
output, and ICMP errors.

Theory of operation
===================

The protocol is the sans-IO machine :class:`~trionet.protocols.tcp_connection.TcpConnection`;
this module gives it addresses, a thread, a clock and a wire.

1. **Ownership.** Every connection (a :class:`TcpPcb`) belongs to the netisr
   thread its 4-tuple hashes to (:func:`~trionet.protocols.flowhash.tuple_hash`
   modulo ``ncpus``), the thread IP input already sends its segments to. Only
   that thread changes the machine: segments, its callout, and the socket's
   requests, which arrive as messages posted without a reply
   (:meth:`TcpPcb.post`, :meth:`TcpPcb.kick`); the socket's task itself only
   appends to the send buffer and takes from the receive buffer (BSD's
   ``so_snd``/``so_rcv``). With ``invariants`` on, :attr:`TcpPcb.conn`
   raises :class:`~trionet.KernelPanic` in any other task.
   A datagram reassembled from fragments reaches TCP on ``netisr 0``; input
   re-queues it to its owner.
2. **Input** (:meth:`Tcp.input`): parse and verify (a bad segment is a drop
   counted under its reason), then the connection with the exact 4-tuple,
   else a listener on the destination address or on 0.0.0.0, else a RST
   (RFC 9293 3.10.7.1) counted ``noport``. A SYN for a connection in
   TIME_WAIT with a higher sequence number ends it and goes to the listener
   (RFC 9293 3.10.7.4 note, as BSD).
3. **Listening.** A SYN to a listener makes a connection in SYN_RECEIVED, a
   SYN cache entry, while fewer than ``net.inet.tcp.syncache.limit`` exist
   on the host; when the cache is full it is answered with a SYN cookie
   (``net.inet.tcp.syncookies``) and nothing is kept: the ACK that
   completes the handshake proves itself and builds the connection (without
   window scaling, SACK and timestamps, which a cookie cannot carry). Entries
   retransmit their SYN-ACK 3 times and then go, so a SYN flood costs at most
   ``limit`` entries. An established connection joins the listener's accept
   queue; when the queue holds ``backlog`` connections, SYNs are dropped and
   the ACKs that would complete a handshake too (counted
   ``listen_overflow``): the peer retransmits, as on Linux.
4. **Output.** A connection's addresses, interface and next hop are
   chosen once, when it is made (:meth:`Ip.route <trionet._net._ip.Ip.route>`,
   BSD ``in_pcbladdr``; its MSS comes from that interface's MTU), and its
   segments go out through its route cache (:attr:`TcpPcb.ro`, BSD
   ``inp_route``), looked up again only after a route or address change.
   With ``net.inet.tcp.path_mtu_discovery`` (1, read when a connection is
   made) every segment carries DF (RFC 1191). An output error
   (``ENOBUFS``...) is counted (``output_errors``) and the segment is lost;
   retransmission recovers. ``EMSGSIZE`` (the route now leads through an
   interface with a smaller MTU) also lowers the MSS to fit it, as below.
5. **ICMP errors** (:meth:`Tcp.ctlinput`, TCP's entry in IP's protocol
   switch; BSD ``tcp_ctlinput``). ICMP input runs on ``netisr 0``; an error
   whose quote names a connection (its 4-tuple) is passed to the thread that
   owns it, which first checks that the quoted sequence number is in
   ``snd_una..snd_max`` (data sent and not yet acknowledged): anything else
   is ignored and counted (``icmp_out_of_window``), so a blind attacker
   must guess the window (RFC 5927 4.1). Then, by type and code (the table
   :data:`ICMP_ERRORS`; RFC 1122 4.2.3.9, RFC 5461):

   - port or protocol unreachable in SYN_SENT is a hard error: the connect
     fails with ``ECONNREFUSED`` at once (``icmp_aborts``), as a RST would;
   - "fragmentation needed" (path MTU discovery, RFC 1191) lowers the
     connection's MSS to the next-hop MTU less 40 and sends everything
     unacknowledged again in segments of that size
     (:meth:`~trionet.protocols.tcp_connection.TcpConnection.lower_mss`;
     ``mtu_resent``); an ICMP message never raises the MSS;
   - everything else (and port unreachable after SYN_SENT) is a soft error
     (``icmp_soft_errors``): remembered, and reported instead of
     ``ETIMEDOUT`` if the connection times out before the data outstanding
     then is acknowledged (BSD ``t_softerror``);
   - source quench (RFC 6633) and redirect are ignored (not claimed).
6. **Timers.** One :class:`~trionet.lowlevel.Callout` per connection on its
   owning thread follows the machine's next deadline.
7. **Closing.** When the application closes its socket the connection is
   *orphaned*: it finishes its close on its own; data arriving for it after
   that is answered with a RST (BSD), unread data at close time resets the
   connection at once (RFC 2525 2.17), and FIN_WAIT_2 lasts at most
   ``net.inet.tcp.finwait2_timeout``. A connection that reaches CLOSED
   leaves the table and frees its port.

Sysctls (the host's): ``net.inet.tcp.sendspace``/``recvspace`` (buffer
bytes), ``net.inet.tcp.msl`` (ms; TIME_WAIT is 2 MSL), ``.delayed_ack``,
``.path_mtu_discovery`` (DF on segments, for new connections),
``.sack.enable``, ``.rfc1323`` (window scaling and timestamps),
``.cc.algorithm`` (``newreno`` or ``cubic``), ``.rexmit_min`` (ms, the RTO
floor), ``.syncookies``, ``.syncache.limit``, ``.finwait2_timeout`` (ms),
``.keepidle``/``.keepintvl`` (ms), ``.keepcnt``, ``.always_keepalive``, and
``kern.ipc.somaxconn`` (the largest backlog).

Bounds: connections are bounded by ephemeral ports and listeners' backlogs;
the SYN cache by its limit; each connection's buffers by its send and
receive space.

*Divergence:* DragonFly keeps a connection table and a SYN cache per CPU;
here there is one of each per host (one Trio thread needs no locks), and the
SYN cache limit is host-wide. A path MTU learned from ICMP belongs to the
connection that learned it: it is not kept in the route for later
connections to the same destination (BSD keeps it in the host route's
``rmx_mtu``), so each connection through a smaller link pays one lost
segment and one round trip to learn it.

DragonFly: ``sys/netinet/tcp_input.c`` (``tcp_input``), ``tcp_syncache.c``,
``tcp_usrreq.c``, ``tcp_subr.c`` (``tcp_respond``, ``tcp_ctlinput``,
``tcp_notify``, ``tcp_mtudisc``), ``tcp_output.c``, ``in_pcb.c``
(``in_pcbladdr``).
"""

from __future__ import annotations

import errno
import os
from collections import Counter, deque
from typing import TYPE_CHECKING, Any

import attrs
import structlog
import trio
from trio.lowlevel import ParkingLot, current_task

from .._exceptions import KernelPanic, NetError
from .._kern._msgport import NetMsg
from ..protocols import icmp as icmp_proto
from ..protocols import icmpv6 as icmp6_proto
from ..protocols.errors import RemoteProtocolError
from ..protocols.flowhash import tuple_hash
from ..protocols.tcp import (
    SEQ_MASK,
    TcpFlags,
    TcpHeader,
    TcpOptions,
    isn_rfc6528,
    reset_for,
    syncookie,
    syncookie_check,
)
from ..protocols.tcp_cc import Cubic, NewReno
from ..protocols.tcp_connection import (
    TcpConfig,
    TcpConnection,
    TcpEvent,
    TcpOutput,
    TcpState,
    is_connection_request,
)

from ._if import IfCap
from ._inaddr import inet_ntop
from ._layer import ProtoLayer
from ._ports import EphemeralPorts
from ._route import RouteCache

if TYPE_CHECKING:
    from ._if import Ifnet
    from ._ip import Ip
    from ._ip6 import Ip6

__all__ = ["NetstatRow", "Tcp", "TcpLayerStatistics", "TcpListen", "TcpPcb", "format_netstat"]

log = structlog.get_logger(__name__)

IPPROTO_TCP = 6
ANY = bytes(4)
ANY6 = bytes(16)
CONGESTION_CONTROLS = {"newreno": NewReno, "cubic": Cubic}
#: The most payload a TSO super-segment carries: one IPv4 datagram's worth,
#: headers with the largest TCP options included.
TSO_MAX = 65535 - 20 - 60
_TSO_TXCSUM = int(IfCap.TSO | IfCap.TXCSUM)
#: SYN-ACK retransmissions of a SYN cache entry (BSD ``SYNCACHE_MAXREXMTS``).
SYNCACHE_RETRIES = 3

_SYN = int(TcpFlags.SYN)
_ACK = int(TcpFlags.ACK)
_RST = int(TcpFlags.RST)
_FIN = int(TcpFlags.FIN)
_S = TcpState

#: The MSS of a connection whose peer we have no route to (RFC 9293 3.7.1's
#: default, from the minimum IPv4 MTU a host must accept).
DEFAULT_MTU = 576
#: IPv4 and TCP headers without options: MSS = MTU - 40.
TCPIP_HDR_LEN = 40

#: ICMP errors that concern a connection (RFC 1122 4.2.3.9, RFC 5461; BSD
#: ``inetctlerrmap``): ``(type, code)`` (code None: any code of the type) ->
#: ``(errno, hard)``. A hard error aborts a connection in SYN_SENT; every
#: other one is soft. "Fragmentation needed" is path MTU discovery, handled
#: apart; types missing here (source quench, redirect) are not TCP's.
ICMP_ERRORS: dict[tuple[int, int | None], tuple[int, bool]] = {
    (icmp_proto.DEST_UNREACH, icmp_proto.UNREACH_PROTO): (errno.ECONNREFUSED, True),
    (icmp_proto.DEST_UNREACH, icmp_proto.UNREACH_PORT): (errno.ECONNREFUSED, True),
    (icmp_proto.DEST_UNREACH, None): (errno.EHOSTUNREACH, False),
    (icmp_proto.TIME_EXCEEDED, None): (errno.EHOSTUNREACH, False),
    (icmp_proto.PARAM_PROBLEM, None): (errno.ENOPROTOOPT, False),
}

#: ICMPv6 errors as the ICMP ones :data:`ICMP_ERRORS` maps (RFC 4443's
#: codes to RFC 792's: port unreachable is hard, the other unreachables,
#: time exceeded and parameter problems soft).
ICMP6_AS_ICMP: dict[tuple[int, int | None], tuple[int, int]] = {
    (icmp6_proto.DST_UNREACH, icmp6_proto.UNREACH_NOPORT): (icmp_proto.DEST_UNREACH, icmp_proto.UNREACH_PORT),
    (icmp6_proto.DST_UNREACH, None): (icmp_proto.DEST_UNREACH, 1),  # host unreachable
    (icmp6_proto.TIME_EXCEEDED, None): (icmp_proto.TIME_EXCEEDED, 0),
    (icmp6_proto.PARAM_PROB, None): (icmp_proto.PARAM_PROBLEM, 0),
}


def fold_address(addr: bytes) -> int:
    """An address as the integer the flow hash takes: a 4-byte one as is, a
    16-byte one folded to 32 bits by XOR of its words (as
    ``protocols.flowhash.ipv6_flow_hash`` does, so a connection lives on the
    protocol thread its packets hash to)."""
    value = int.from_bytes(addr, "big")
    if len(addr) == 16:
        value = (value >> 96) ^ (value >> 64) ^ (value >> 32) ^ value
        value &= 0xFFFFFFFF
    return value


@attrs.frozen
class NetstatRow:
    """One line of ``netstat -an -p tcp``.

    Attributes:
        recv_q: bytes received and not yet read; ``send_q``: bytes not yet
            acknowledged (sent or not).
        local, foreign: ``(address, port)``; ``("0.0.0.0", 0)`` is ``*``.
        state: the RFC 9293 state name (``LISTEN`` for a listener).
    """

    recv_q: int
    send_q: int
    local: tuple[str, int]
    foreign: tuple[str, int]
    state: str


@attrs.frozen(kw_only=True)
class TcpLayerStatistics:
    """A host's TCP counters (``netstat -s -p tcp``; each connection's own
    are :meth:`TcpStream.statistics <trionet.TcpStream.statistics>`).

    Attributes:
        segments_received, segments_sent: all segments through TCP input
            and output.
        connects, accepts: active opens, and connections that joined a
            listener's accept queue.
        syncache_added: SYN cache entries made; ``cookies_sent``,
            ``cookies_accepted``: SYN cookies answered and proven.
        rsts_sent: RSTs answering segments for no connection.
        orphan_resets: connections reset for data after their socket closed.
        finwait2_timeouts: orphans that gave up waiting in FIN_WAIT_2.
        time_wait_reused: TIME_WAIT connections ended by a new SYN.
        requeued: segments passed on to the netisr thread that owns them.
        output_errors: segments IP output refused (lost; retransmission
            recovers).
        icmp_aborts: connection attempts ended by an ICMP port or protocol
            unreachable (a hard error in SYN_SENT).
        icmp_soft_errors: ICMP errors remembered as a connection's soft
            error.
        icmp_out_of_window: ICMP errors about a connection ignored because
            the quoted sequence number was not in ``snd_una..snd_max``
            (RFC 5927; Linux ``OutOfWindowIcmps``).
        mtu_resent: times a connection lowered its MSS (ICMP fragmentation
            needed, or ``EMSGSIZE`` from its own interface) and sent its
            unacknowledged data again (BSD ``tcps_mturesent``).
        drops: reason -> count, for every segment not delivered: the header
            checks' reasons, ``noport``, ``not_unicast``, ``listen_rst``,
            ``listen_ack``, ``listen_nosyn``, ``listen_overflow``,
            ``syncache_overflow``, ``bad_cookie``, ``netisr_full`` (also
            ICMP errors that could not be passed to a connection's thread).
        connections: connections in the table now; ``syncache``: of those,
            SYN cache entries.
    """

    segments_received: int = 0
    segments_sent: int = 0
    connects: int = 0
    accepts: int = 0
    syncache_added: int = 0
    cookies_sent: int = 0
    cookies_accepted: int = 0
    rsts_sent: int = 0
    orphan_resets: int = 0
    finwait2_timeouts: int = 0
    time_wait_reused: int = 0
    requeued: int = 0
    output_errors: int = 0
    icmp_aborts: int = 0
    icmp_soft_errors: int = 0
    icmp_out_of_window: int = 0
    mtu_resent: int = 0
    drops: dict[str, int] = attrs.Factory(dict)
    connections: int = 0
    syncache: int = 0


def _endpoint(addr: tuple[str, int]) -> str:
    host, port = addr
    return f"{'*' if host == '0.0.0.0' else host}.{'*' if port == 0 else port}"


def format_netstat(rows: list[NetstatRow]) -> str:
    """Format rows as ``netstat -an -p tcp`` does."""
    lines = [
        "Active Internet connections (including servers)",
        f"{'Proto':<5} {'Recv-Q':>6} {'Send-Q':>6} {'Local Address':<22} {'Foreign Address':<22} (state)",
    ]
    for r in rows:
        lines.append(
            f"{'tcp4':<5} {r.recv_q:>6} {r.send_q:>6} {_endpoint(r.local):<22} "
            f"{_endpoint(r.foreign):<22} {r.state}"
        )
    return "\n".join(lines)


def _call_handler(msg: NetMsg) -> Any:
    pcb, fn, args = msg.arg
    return fn(pcb, *args)


def _usrreq_handler(msg: NetMsg) -> None:
    # The socket appended to the send buffer or read from the receive buffer.
    pcb: TcpPcb = msg.arg
    if not pcb.detached:
        pcb.run(pcb.conn.output(trio.current_time()))


class TcpPcb:
    """One connection's glue: its addresses, owning thread, callout, socket
    buffers and the state its socket waits on.

    Attributes:
        cpu: the netisr thread that owns the connection.
        sndbuf, rcvbuf: the machine's socket buffers
            (:attr:`~trionet.protocols.tcp_connection.TcpConnection.send_buffer`,
            ``recv_buffer``), which the socket's task appends to and reads
            from directly, then calls :meth:`kick`.
        lot: tasks of the socket park here; :meth:`wake` unparks them
            whenever the machine reports an event (data, space, EOF, reset,
            connected, closed).
        error: the errno that ended the connection (reset, timeout), if any.
        soft_error: the errno of the last ICMP soft error, reported instead
            of ``ETIMEDOUT`` if the connection times out before the data
            outstanding then is acknowledged.
        ro: the connection's route cache (BSD ``inp_route``).
        df: its segments carry Don't Fragment (path MTU discovery).
        orphan: the application closed its socket.
    """

    def __init__(
        self, tcp: Tcp, laddr: bytes, lport: int, faddr: bytes, fport: int, conn: TcpConnection
    ) -> None:
        host = tcp.host
        self.tcp = tcp
        self.laddr, self.lport, self.faddr, self.fport = laddr, lport, faddr, fport
        self.key = (laddr, lport, faddr, fport)
        self.cpu = tuple_hash(fold_address(laddr), lport, fold_address(faddr), fport) % host.ncpus
        self.port = host.port("netisr", self.cpu)
        self.callout = host.callout(self.cpu, thread="netisr")
        self._conn = conn
        self._check = host.invariants
        self.sndbuf = conn.send_buffer
        self.rcvbuf = conn.recv_buffer
        self._usrreq = NetMsg(_usrreq_handler, self)
        self.listener: TcpListen | None = None  # while a SYN cache entry
        self.lot = ParkingLot()
        self.connected = False
        self.error: int | None = None
        self.soft_error: int | None = None
        self._soft_error_una = 0
        self.ro = RouteCache()
        # TSO when the route's interface segments in hardware: super-segments
        # of up to TSO_MAX bytes (a later route change to an interface
        # without it costs a software cut in IP output, nothing more).
        try:
            # (route, not route_cached: a probe for TSO, not a packet, so a
            # failure here is not a drop)
            ifp, _, _ = tcp.ip_for(faddr).route(faddr, src=laddr)
        except NetError:
            pass
        else:
            if len(faddr) == 4 and int(ifp.capenable) & _TSO_TXCSUM == _TSO_TXCSUM:
                conn.tso_max = TSO_MAX  # (no TSO for IPv6 yet)
        self.df = bool(host.sysctls.get("net.inet.tcp.path_mtu_discovery"))
        self._mtu_posted = False
        self.orphan = False
        self.detached = False
        self._fw2_deadline: float | None = None

    def __repr__(self) -> str:
        return (
            f"<TcpPcb {inet_ntop(self.laddr)}:{self.lport} {inet_ntop(self.faddr)}:{self.fport} "
            f"{self._conn.state.name} netisr {self.cpu}>"
        )

    @property
    def conn(self) -> TcpConnection:
        """The machine; only its owning thread may touch it.

        Raises:
            KernelPanic: under ``invariants``, from any other task.
        """
        if self._check and current_task() is not self.port.thread.task:
            raise KernelPanic(f"{self!r} touched outside netisr {self.cpu}")
        return self._conn

    def peek(self) -> TcpConnection:
        """The machine for read-only views (state, ``netstat``, statistics) from any task."""
        return self._conn

    def post(self, fn: Any, *args: Any) -> None:
        """Queue ``fn(pcb, *args)`` on the owning thread without waiting
        (DragonFly's asynchronous ``netmsg_pru_*``: the socket does not wait
        for a reply)."""
        self.port.sendmsg(NetMsg(_call_handler, (self, fn, args)))

    def kick(self) -> None:
        """Tell the owning thread that the socket changed a buffer, so it
        sends the new data or a window update. Requests coalesce: one
        message is in flight at most (DragonFly: ``so_pru_send_async``,
        ``so_pru_rcvd_async``)."""
        msg = self._usrreq
        if msg.done:
            self.port.sendmsg(msg)

    def wake(self) -> None:
        """Unpark the socket's tasks: something they may wait for happened."""
        if self.lot:
            self.lot.unpark_all()

    # On the owning thread ------------------------------------------------

    def run(self, out: TcpOutput) -> None:
        """Carry out what the machine returned: send, handle events, re-arm."""
        tcp = self.tcp
        if tcp.probe is not None:
            tcp.probe.tcp_run(self, out)
        for header, payload in out.segments:
            tcp.pcb_output(self, header, payload)
        if out.events:
            for event in out.events:
                if event is TcpEvent.CONNECTED:
                    self.connected = True
                    if self.listener is not None:
                        tcp._syncache_established(self)
                elif event is TcpEvent.DATA:
                    if self.orphan:
                        # Data for a socket nobody can read any more (BSD
                        # tcp_input: SS_NOFDREF): reset.
                        tcp.stats["orphan_resets"] += 1
                        self.run(self._conn.abort(trio.current_time()))
                        return
                elif event is TcpEvent.RESET or event is TcpEvent.TIMEOUT:
                    self.error = self._conn.error
                    if event is TcpEvent.TIMEOUT and self.soft_error is not None:
                        if self._conn.snd_una == self._soft_error_una:
                            self.error = self.soft_error  # BSD: t_softerror
                elif event is TcpEvent.CLOSED:
                    tcp._detach(self)
            self.wake()
        if self.detached:
            self.callout.stop()
            return
        deadline = out.deadline
        if self.orphan and self._conn.state is _S.FIN_WAIT_2:
            if self._fw2_deadline is None:
                self._fw2_deadline = trio.current_time() + tcp.sysctl_ms("net.inet.tcp.finwait2_timeout")
            if deadline is None or self._fw2_deadline < deadline:
                deadline = self._fw2_deadline
        self.callout.follow(deadline, self._timer)

    def _timer(self) -> None:
        now = trio.current_time()
        conn = self.conn
        if self._fw2_deadline is not None and now >= self._fw2_deadline and conn.state is _S.FIN_WAIT_2:
            self.tcp.stats["finwait2_timeouts"] += 1
            self.run(conn.abort(now))
            return
        self.run(conn.on_timer(now))

    def segment(self, header: TcpHeader, payload: memoryview) -> None:
        """A segment for this connection (on the owning thread)."""
        conn = self.conn
        listener = self.listener
        if listener is not None and header.flags & _ACK and conn.state is _S.SYN_RECEIVED:
            if len(listener.queue) >= listener.backlog:
                self.tcp.drops["listen_overflow"] += 1
                return
        self.run(conn.receive(header, payload, trio.current_time()))


class TcpListen:
    """A listening socket's protocol side (the LISTEN state).

    Attributes:
        queue: established connections waiting for ``accept`` (at most
            ``backlog``).
    """

    def __init__(self, tcp: Tcp, laddr: bytes, lport: int, backlog: int) -> None:
        self.tcp = tcp
        self.laddr, self.lport = laddr, lport
        self.backlog = backlog
        self.queue: deque[TcpPcb] = deque()
        self.lot = ParkingLot()
        self.closed = False
        self.entries: set[TcpPcb] = set()  # SYN cache entries
        #: Its keys in the listener table: (0.0.0.0, port) and, for a
        #: dual-stack listener, (::, port) too.
        self.keys: list[tuple[bytes, int]] = [(laddr, lport)]


class Tcp(ProtoLayer):
    """A host's TCP (``host.inet.tcp``): the connection table and input."""

    def __init__(self, ip: Ip, local_addrs: dict[bytes, Ifnet]) -> None:
        super().__init__()
        self.ip = ip
        self.host = host = ip.host
        self._local_addrs = local_addrs
        #: RFC 6528 key for ISNs and SYN cookies; a network sets it from its seed.
        self.secret = os.urandom(32)
        self.stats: Counter[str] = Counter()
        self._pcbs: dict[tuple[bytes, int, bytes, int], TcpPcb] = {}
        self._listeners: dict[tuple[bytes, int], TcpListen] = {}
        self._ports: Counter[int] = Counter()
        self._bound: Counter[tuple[bytes, int]] = Counter()  # bind() without listen/connect yet
        self._configs: dict[tuple[int, bool], TcpConfig] = {}
        self._config_generation = -1
        self._ephemeral_ports = EphemeralPorts()
        self.syncache = 0
        #: A tracer of segments and sender state (BSD ``TCPDEBUG``'s
        #: ``tcp_trace``), or None: ``probe.tcp_input(tcp, src, dst, header,
        #: length)`` for each segment TCP input gets, ``probe.tcp_run(pcb,
        #: out)`` for what each connection's machine returned (its segments
        #: about to leave). Set by a recording (``trionet.recording``); one
        #: attribute test per segment when None.
        self.probe: Any = None
        add = host.sysctls.add
        add("net.inet.tcp.sendspace", int, 256 * 1024, min=1, max=1 << 30, description="TCP send buffer, bytes")
        add("net.inet.tcp.recvspace", int, 256 * 1024, min=1, max=1 << 30, description="TCP receive buffer, bytes")
        add("net.inet.tcp.msl", int, 30000, min=0, description="Maximum segment lifetime (ms); TIME_WAIT is 2 MSL")
        add("net.inet.tcp.delayed_ack", int, 1, min=0, max=1, description="Delay ACKs (up to 200 ms)")
        add("net.inet.tcp.sack.enable", int, 1, min=0, max=1, description="Offer SACK (RFC 2018)")
        add("net.inet.tcp.rfc1323", int, 1, min=0, max=1, description="Offer window scaling and timestamps")
        add(
            "net.inet.tcp.cc.algorithm",
            str,
            "newreno",
            choices=tuple(CONGESTION_CONTROLS),
            description="Congestion control: newreno or cubic",
        )
        add("net.inet.tcp.rexmit_min", int, 1000, min=1, description="Minimum retransmission timeout (ms)")
        add("net.inet.tcp.syncookies", int, 1, min=0, max=1, description="Answer SYNs with cookies when the SYN cache is full")
        add("net.inet.tcp.syncache.limit", int, 1024, min=0, description="SYN cache entries per host")
        add("net.inet.tcp.finwait2_timeout", int, 60000, min=0, description="FIN_WAIT_2 of a closed socket (ms)")
        add("net.inet.tcp.keepidle", int, 7200000, min=1, description="Idle time before keepalive probes (ms)")
        add("net.inet.tcp.keepintvl", int, 75000, min=1, description="Between keepalive probes (ms)")
        add("net.inet.tcp.keepcnt", int, 8, min=1, description="Unanswered keepalive probes before dropping")
        add("net.inet.tcp.always_keepalive", int, 0, min=0, max=1, description="Keepalive on every connection")
        add("kern.ipc.somaxconn", int, 128, min=1, max=65535, description="Largest listen backlog")
        add(
            "net.inet.tcp.path_mtu_discovery",
            int,
            1,
            min=0,
            max=1,
            description="Send segments with DF and learn the path MTU from ICMP (new connections)",
        )
        ip.protocols[IPPROTO_TCP] = (self.input, self.ctlinput)
        self.ip6: Any = None  # set by attach6

    ####################################################################
    # Configuration
    ####################################################################

    def sysctl_ms(self, name: str) -> float:
        return self.host.sysctls.get(name) / 1000  # type: ignore[operator]

    def config(self, mtu: int, *, passive: bool = False) -> TcpConfig:
        """A connection's options from the sysctls and the MTU of its route's
        interface; ``TCP_NODELAY`` on, as Trio sets it on its own streams.

        Cached until a sysctl changes: building one runs attrs' validators.
        """
        sysctls = self.host.sysctls
        key = (mtu, passive)
        if self._config_generation != sysctls.generation:
            self._config_generation = sysctls.generation
            self._configs.clear()
        config = self._configs.get(key)
        if config is None:
            config = self._configs[key] = self._make_config(mtu, passive)
        return config

    def _make_config(self, mtu: int, passive: bool) -> TcpConfig:
        get = self.host.sysctls.get
        cc = CONGESTION_CONTROLS[get("net.inet.tcp.cc.algorithm")]  # type: ignore[index]
        rfc1323 = bool(get("net.inet.tcp.rfc1323"))
        min_rto = self.sysctl_ms("net.inet.tcp.rexmit_min")
        return TcpConfig(
            mss=max(64, min(mtu - TCPIP_HDR_LEN, 65495)),
            send_buffer=get("net.inet.tcp.sendspace"),  # type: ignore[arg-type]
            recv_buffer=get("net.inet.tcp.recvspace"),  # type: ignore[arg-type]
            window_scaling=rfc1323,
            timestamps=rfc1323,
            sack=bool(get("net.inet.tcp.sack.enable")),
            delayed_ack=0.2 if get("net.inet.tcp.delayed_ack") else 0.0,
            min_rto=min_rto,
            initial_rto=max(1.0, min_rto),
            max_rto=max(60.0, min_rto),
            msl=self.sysctl_ms("net.inet.tcp.msl"),
            max_syn_retries=SYNCACHE_RETRIES if passive else 6,
            congestion_control=cc,
            keepalive=bool(get("net.inet.tcp.always_keepalive")),
            keepidle=self.sysctl_ms("net.inet.tcp.keepidle"),
            keepintvl=self.sysctl_ms("net.inet.tcp.keepintvl"),
            keepcnt=get("net.inet.tcp.keepcnt"),  # type: ignore[arg-type]
            nodelay=True,
        )

    def _mtu_for(self, faddr: bytes, laddr: bytes) -> int:
        # The MTU of the interface a passive connection's segments leave by,
        # as an IPv4 MTU: less 20 for IPv6's larger header (see ip_mtu).
        try:
            return self.ip_mtu(faddr, self.ip_for(faddr).route(faddr, src=laddr)[0])
        except NetError:
            return DEFAULT_MTU

    def ip_for(self, addr: bytes) -> Any:
        """The IP layer for ``addr``'s family."""
        return self.ip6 if len(addr) == 16 else self.ip

    def ip_mtu(self, faddr: bytes, ifp: Ifnet) -> int:
        """``ifp``'s MTU as TCP counts it (it takes TCPIP_HDR_LEN, IPv4's
        40 bytes of headers, off): for IPv6, 20 less, so the MSS leaves room
        for the 40-byte IPv6 header, and the path MTU a Packet Too Big set."""
        if len(faddr) == 16:
            return self.ip6.path_mtu(faddr, ifp) - 20
        return ifp.mtu

    def attach6(self, ip6: Ip6, icmp6: Any) -> None:
        """Take IPv6 segments too (the IPv6 layer is made after this one)."""
        self.ip6 = ip6
        ip6.protocols[IPPROTO_TCP] = (self.input, self.ctlinput6)

    def _isn(self, laddr: bytes, lport: int, faddr: bytes, fport: int) -> tuple[int, int]:
        now = trio.current_time()
        iss = isn_rfc6528(self.secret, laddr, lport, faddr, fport, now)
        ts_offset = isn_rfc6528(self.secret, faddr, fport, laddr, lport, 0.0)
        return iss, ts_offset

    ####################################################################
    # The table
    ####################################################################

    def ephemeral(self) -> int:
        return self._ephemeral_ports.allocate(self._ports, errno.EADDRNOTAVAIL)

    def attach(self, pcb: TcpPcb) -> None:
        if pcb.key in self._pcbs:
            raise NetError(errno.EADDRINUSE, "a connection with that 4-tuple exists")
        self._pcbs[pcb.key] = pcb
        self._ports[pcb.lport] += 1

    def _detach(self, pcb: TcpPcb) -> None:
        if pcb.detached:
            return
        pcb.detached = True
        if self._pcbs.get(pcb.key) is pcb:
            del self._pcbs[pcb.key]
        self._ports[pcb.lport] -= 1
        if not self._ports[pcb.lport]:
            del self._ports[pcb.lport]
        if pcb.listener is not None:
            pcb.listener.entries.discard(pcb)
            pcb.listener = None
            self.syncache -= 1
        pcb.callout.stop()

    def bind(self, laddr: bytes, lport: int) -> int:
        """Reserve ``laddr:lport`` for a socket that will listen or connect
        (the socket layer's ``bind``); port 0 picks an ephemeral one.
        Returns the port. The reservation holds until :meth:`unbind`; a
        listener or connection made on it counts the port on its own.

        Raises:
            NetError: ``EADDRINUSE`` (a listener or another reservation on
                that port and address, or a wildcard), ``EADDRNOTAVAIL``
                (not this host's address).

        DragonFly: ``in_pcbbind`` (``sys/netinet/in_pcb.c``).
        """
        wild = ANY if len(laddr) == 4 else ANY6
        if laddr != wild and laddr not in self._local_addrs:
            raise NetError(errno.EADDRNOTAVAIL, f"{inet_ntop(laddr)} is not an address of this host")
        if lport == 0:
            lport = self.ephemeral()
        for (addr, port) in [*self._listeners, *self._bound]:
            if port == lport and len(addr) == len(laddr) and (addr == laddr or wild in (addr, laddr)):
                raise NetError(errno.EADDRINUSE, f"TCP port {lport} is in use")
        self._bound[(laddr, lport)] += 1
        self._ports[lport] += 1
        return lport

    def unbind(self, laddr: bytes, lport: int) -> None:
        """Release a reservation of :meth:`bind`."""
        key = (laddr, lport)
        if self._bound[key] <= 0:
            raise ValueError(f"{inet_ntop(laddr)}:{lport} is not reserved")
        self._bound[key] -= 1
        if not self._bound[key]:
            del self._bound[key]
        self._ports[lport] -= 1
        if not self._ports[lport]:
            del self._ports[lport]

    def listen(self, laddr: bytes, lport: int, backlog: int, *, dual: bool = False) -> TcpListen:
        """Open a listener (``bind`` + ``listen``); port 0 picks an ephemeral one.

        With ``dual`` (and ``laddr`` 0.0.0.0) it takes IPv6 connections to
        the port too, as an IPv6 socket bound to ``::`` without
        ``IPV6_V6ONLY`` does: ``open_tcp_listeners`` and ``serve_tcp``
        without a host listen on both families at once.

        Raises:
            NetError: ``EADDRINUSE``, ``EADDRNOTAVAIL`` (not this host's address).
        """
        wild = ANY if len(laddr) == 4 else ANY6
        if laddr != wild and laddr not in self._local_addrs:
            raise NetError(errno.EADDRNOTAVAIL, f"{inet_ntop(laddr)} is not an address of this host")
        if lport == 0:
            lport = self.ephemeral()
        keys = [(laddr, lport), (ANY6, lport)] if dual and laddr == ANY else [(laddr, lport)]
        for (addr, port) in self._listeners:
            # Each family has its own port space (IPV6_V6ONLY, BSD's default).
            for mine, _ in keys:
                wild = ANY if len(mine) == 4 else ANY6
                if port == lport and len(addr) == len(mine) and (addr == mine or wild in (addr, mine)):
                    raise NetError(errno.EADDRINUSE, f"TCP port {lport} is in use")
        somaxconn: int = self.host.sysctls.get("kern.ipc.somaxconn")  # type: ignore[assignment]
        lst = TcpListen(self, laddr, lport, max(1, min(backlog, somaxconn)))
        lst.keys = keys
        for key in keys:
            self._listeners[key] = lst
        self._ports[lport] += 1
        return lst

    def unlisten(self, lst: TcpListen) -> None:
        """Close a listener: queued and half-open connections are reset."""
        if lst.closed:
            return
        lst.closed = True
        for key in lst.keys:
            del self._listeners[key]
        self._ports[lst.lport] -= 1
        if not self._ports[lst.lport]:
            del self._ports[lst.lport]
        for pcb in [*lst.queue, *lst.entries]:
            pcb.orphan = True
            pcb.post(abort_pcb)
        lst.queue.clear()
        lst.lot.unpark_all()

    def netstat(self) -> list[NetstatRow]:
        """``netstat -an -p tcp``: listeners, then connections."""
        rows = [
            # One row per listener: a dual-stack one (both families) shows
            # as 0.0.0.0, as Linux shows its [::] socket once.
            NetstatRow(
                0, 0, (inet_ntop(lst.laddr), lst.lport), ("0.0.0.0" if len(lst.laddr) == 4 else "::", 0), "LISTEN"
            )
            for lst in dict.fromkeys(self._listeners.values())
        ]
        for pcb in self._pcbs.values():
            conn = pcb.peek()
            rows.append(
                NetstatRow(
                    conn.readable,
                    conn.buffered,
                    (inet_ntop(pcb.laddr), pcb.lport),
                    (inet_ntop(pcb.faddr), pcb.fport),
                    conn.state.name,
                )
            )
        return rows

    def statistics(self) -> TcpLayerStatistics:
        """A snapshot of the counters."""
        return TcpLayerStatistics(
            **self.stats, drops=self._drop_counts(), connections=len(self._pcbs), syncache=self.syncache
        )

    ####################################################################
    # Input
    ####################################################################

    def input(self, hdr: Any, payload: memoryview, m: Any) -> None:
        """An IPv4 datagram for TCP (netisr handler)."""
        self.stats["segments_received"] += 1
        src, dst = hdr.src, hdr.dst
        if dst not in self._local_addrs:
            self.drops["not_unicast"] += 1  # TCP is never broadcast
            return
        try:
            th, data = TcpHeader.parse(payload, src, dst, verify=not m.csum)
        except RemoteProtocolError as exc:
            self.drops[exc.reason] += 1
            return
        if len(dst) == 4:  # (inline for IPv4: two Python calls less per segment)
            cpu = tuple_hash(int.from_bytes(dst, "big"), th.dport, int.from_bytes(src, "big"), th.sport)
        else:
            cpu = tuple_hash(fold_address(dst), th.dport, fold_address(src), th.sport)
        port = self.host.port("netisr", cpu % self.host.ncpus)
        if port.thread.task is not current_task():
            # Reassembled on netisr 0: on to the owner (DragonFly re-dispatches
            # after ip_reass the same way).
            self.stats["requeued"] += 1
            if not port.put_packet(self._input_owned, (src, dst, th, bytes(data))):
                self.drops["netisr_full"] += 1
            return
        self._segment(src, dst, th, data)

    def _input_owned(self, item: tuple[bytes, bytes, TcpHeader, bytes]) -> None:
        src, dst, th, data = item
        self._segment(src, dst, th, memoryview(data))

    def _segment(self, src: bytes, dst: bytes, th: TcpHeader, data: memoryview) -> None:
        if self.probe is not None:
            self.probe.tcp_input(self, src, dst, th, len(data))
        pcb = self._pcbs.get((dst, th.dport, src, th.sport))
        if pcb is not None:
            conn = pcb.conn
            if (
                conn.state is _S.TIME_WAIT
                and is_connection_request(th)
                and ((th.seq - conn.rcv_nxt) & SEQ_MASK) - 1 < 0x7FFFFFFF
            ):
                # A new incarnation (RFC 9293 3.10.7.4 note; BSD tcp_input).
                self.stats["time_wait_reused"] += 1
                pcb.run(conn.abort(trio.current_time()))
                self._detach(pcb)
            else:
                pcb.segment(th, data)
                return
        lst = self._listeners.get((dst, th.dport)) or self._listeners.get(
            (ANY if len(dst) == 4 else ANY6, th.dport)
        )
        if lst is not None:
            self._listen_input(lst, src, dst, th, data)
            return
        self.drops["noport"] += 1
        self.respond_rst(src, dst, th, len(data))

    def _listen_input(self, lst: TcpListen, src: bytes, dst: bytes, th: TcpHeader, data: memoryview) -> None:
        flags = th.flags
        if flags & _RST:
            self.drops["listen_rst"] += 1
            return
        if flags & _ACK:
            if not flags & (_SYN | _FIN) and self.host.sysctls.get("net.inet.tcp.syncookies"):
                self._cookie_ack(lst, src, dst, th, data)
                return
            self.drops["listen_ack"] += 1
            self.respond_rst(src, dst, th, len(data))
            return
        if not is_connection_request(th):
            self.drops["listen_nosyn"] += 1
            return
        if len(lst.queue) >= lst.backlog:
            self.drops["listen_overflow"] += 1
            return
        limit: int = self.host.sysctls.get("net.inet.tcp.syncache.limit")  # type: ignore[assignment]
        now = trio.current_time()
        if self.syncache < limit:
            iss, ts_offset = self._isn(dst, th.dport, src, th.sport)
            conn = TcpConnection(
                th.dport,
                th.sport,
                iss=iss,
                config=self.config(self._mtu_for(src, dst), passive=True),
                ts_offset=ts_offset,
            )
            pcb = self._syncache_add(lst, src, dst, conn)
            self.stats["syncache_added"] += 1
            pcb.run(conn.accept(th, data, now))
        elif self.host.sysctls.get("net.inet.tcp.syncookies"):
            mss = th.options.mss or 536
            cookie = syncookie(self.secret, dst, th.dport, src, th.sport, th.seq, mss, now)
            recvspace: int = self.host.sysctls.get("net.inet.tcp.recvspace")  # type: ignore[assignment]
            synack = TcpHeader(
                th.dport,
                th.sport,
                cookie,
                (th.seq + 1) & SEQ_MASK,
                _SYN | _ACK,
                window=min(recvspace, 0xFFFF),
                options=TcpOptions(mss=max(64, min(self._mtu_for(src, dst) - TCPIP_HDR_LEN, 65495))),
            )
            self.stats["cookies_sent"] += 1
            self.output(dst, src, synack, b"")
        else:
            self.drops["syncache_overflow"] += 1

    def _cookie_ack(self, lst: TcpListen, src: bytes, dst: bytes, th: TcpHeader, data: memoryview) -> None:
        now = trio.current_time()
        irs = (th.seq - 1) & SEQ_MASK
        iss = (th.ack - 1) & SEQ_MASK
        mss = syncookie_check(self.secret, dst, th.dport, src, th.sport, irs, iss, now)
        if mss is None:
            self.drops["bad_cookie"] += 1
            self.respond_rst(src, dst, th, len(data))
            return
        if len(lst.queue) >= lst.backlog:
            self.drops["listen_overflow"] += 1
            return
        config = attrs.evolve(
            self.config(self._mtu_for(src, dst), passive=True),
            window_scaling=False,
            timestamps=False,
            sack=False,
        )
        conn = TcpConnection(th.dport, th.sport, iss=iss, config=config)
        pcb = self._syncache_add(lst, src, dst, conn)
        self.stats["cookies_accepted"] += 1
        # Replay the handshake the cookie stands for: the SYN (its SYN-ACK
        # already went out), then this ACK.
        syn = TcpHeader(th.sport, th.dport, irs, 0, _SYN, window=th.window, options=TcpOptions(mss=mss))
        conn.accept(syn, b"", now)
        pcb.run(conn.receive(th, data, now))

    def _syncache_add(self, lst: TcpListen, src: bytes, dst: bytes, conn: TcpConnection) -> TcpPcb:
        # A half-open connection of listener ``lst``: in the table, counted
        # against the SYN cache limit until it is established or gone.
        pcb = TcpPcb(self, dst, conn.local_port, src, conn.remote_port, conn)
        self.attach(pcb)
        pcb.listener = lst
        lst.entries.add(pcb)
        self.syncache += 1
        return pcb

    def _syncache_established(self, pcb: TcpPcb) -> None:
        lst = pcb.listener
        assert lst is not None
        lst.entries.discard(pcb)
        pcb.listener = None
        self.syncache -= 1
        if lst.closed:
            pcb.orphan = True
            pcb.post(abort_pcb)
            return
        lst.queue.append(pcb)
        self.stats["accepts"] += 1
        lst.lot.unpark_all()

    ####################################################################
    # Output
    ####################################################################

    def pcb_output(self, pcb: TcpPcb, header: TcpHeader, payload: bytes) -> None:
        """Send one of ``pcb``'s segments through its route cache (on the
        owning thread); an IP output error is counted, not raised.

        ``EMSGSIZE`` (DF, and the route's interface has a smaller MTU than
        the segment) also schedules :func:`_mtudisc_local` on the owning
        thread, once until it runs.
        """
        laddr, faddr = pcb.laddr, pcb.faddr
        segment = header.emit(payload, laddr, faddr, checksum=False)  # IP output's job
        smss = pcb._conn.smss
        tso = smss if len(payload) > smss else 0  # a super-segment (TSO)
        try:
            (self.ip6 if len(faddr) == 16 else self.ip).output(
                faddr, IPPROTO_TCP, segment, src=laddr, df=pcb.df, ro=pcb.ro, csum=True, tso=tso
            )
        except NetError as exc:
            self.stats["output_errors"] += 1
            log.debug("segment_dropped", host=self.host.name, errno=exc.errno)
            if exc.errno == errno.EMSGSIZE and not pcb._mtu_posted:
                pcb._mtu_posted = True
                pcb.post(_mtudisc_local)
            return
        self.stats["segments_sent"] += 1

    def output(self, laddr: bytes, faddr: bytes, header: TcpHeader, payload: bytes) -> None:
        """Send one segment that belongs to no connection (a RST, a SYN
        cookie's SYN-ACK); an IP output error is counted, not raised."""
        segment = header.emit(payload, laddr, faddr, checksum=False)  # IP output's job
        df = bool(self.host.sysctls.get("net.inet.tcp.path_mtu_discovery"))
        try:
            self.ip_for(faddr).output(faddr, IPPROTO_TCP, segment, src=laddr, df=df, csum=True)
        except NetError as exc:
            self.stats["output_errors"] += 1
            log.debug("segment_dropped", host=self.host.name, errno=exc.errno)
            return
        self.stats["segments_sent"] += 1

    def respond_rst(self, src: bytes, dst: bytes, th: TcpHeader, datalen: int) -> None:
        rst = reset_for(th, datalen)
        if rst is not None:
            self.stats["rsts_sent"] += 1
            self.output(dst, src, rst, b"")

    ####################################################################
    # ICMP errors
    ####################################################################

    def ctlinput(
        self, type_: int, code: int, src: bytes, dst: bytes, head: memoryview, mtu: int
    ) -> bool:
        """An ICMP error about a segment we sent from ``src`` to ``dst``
        (``head``: the first 8 bytes of its TCP header), from ICMP input on
        any thread. Passes it to the thread owning the connection it names
        (see the module's rule 5). Returns whether a connection matched.

        DragonFly: ``tcp_ctlinput`` (which likewise sends a message to the
        owning CPU).
        """
        if type_ == icmp_proto.DEST_UNREACH and code == icmp_proto.UNREACH_NEEDFRAG:
            if not mtu:
                return False
        elif (type_, code) not in ICMP_ERRORS and (type_, None) not in ICMP_ERRORS:
            return False  # source quench, redirect: not ours
        sport = (head[0] << 8) | head[1]
        dport = (head[2] << 8) | head[3]
        pcb = self._pcbs.get((src, sport, dst, dport))
        if pcb is None:
            return False
        seq = int.from_bytes(head[4:8], "big")
        item = (pcb, type_, code, seq, mtu)
        port = pcb.port
        if port.thread.task is current_task():
            self._ctlinput_owned(item)
        elif not port.put_packet(self._ctlinput_owned, item):
            self.drops["netisr_full"] += 1
        return True

    def ctlinput6(
        self, type_: int, code: int, src: bytes, dst: bytes, head: memoryview, mtu: int
    ) -> bool:
        """:meth:`ctlinput` for an ICMPv6 error: mapped to its ICMP
        counterpart (:data:`ICMP6_AS_ICMP`; a Packet Too Big is
        "fragmentation needed" with its MTU less 20, since TCP counts IPv4's
        header), then handled the same way."""
        if type_ == icmp6_proto.PACKET_TOO_BIG:
            if mtu < 1280:
                return False
            return self.ctlinput(icmp_proto.DEST_UNREACH, icmp_proto.UNREACH_NEEDFRAG, src, dst, head, mtu - 20)
        mapped = ICMP6_AS_ICMP.get((type_, code)) or ICMP6_AS_ICMP.get((type_, None))
        if mapped is None:
            return False
        return self.ctlinput(mapped[0], mapped[1], src, dst, head, 0)

    def _ctlinput_owned(self, item: tuple[TcpPcb, int, int, int, int]) -> None:
        pcb, type_, code, seq, mtu = item
        if pcb.detached:
            return
        conn = pcb.conn
        una = conn.snd_una
        if (seq - una) & SEQ_MASK >= (conn.snd_max - una) & SEQ_MASK:
            # Not about anything in flight: stale, or a blind forgery (RFC 5927 4.1).
            self.stats["icmp_out_of_window"] += 1
            return
        now = trio.current_time()
        if type_ == icmp_proto.DEST_UNREACH and code == icmp_proto.UNREACH_NEEDFRAG:
            if pcb.df:
                self._lower_mss(pcb, mtu, now)
            return
        err, hard = ICMP_ERRORS.get((type_, code)) or ICMP_ERRORS[type_, None]
        if hard and conn.state is _S.SYN_SENT:
            # RFC 1122 4.2.3.9: the peer has no such port; as a RST would.
            self.stats["icmp_aborts"] += 1
            pcb.error = err
            pcb.run(conn.abort(now))
            return
        self.stats["icmp_soft_errors"] += 1
        pcb.soft_error = err
        pcb._soft_error_una = una

    def _lower_mss(self, pcb: TcpPcb, mtu: int, now: float) -> None:
        # BSD tcp_mtudisc: a smaller MSS, and what was in flight again.
        conn = pcb.conn
        before = conn.smss
        out = conn.lower_mss(mtu - TCPIP_HDR_LEN, now)
        if conn.smss < before:
            self.stats["mtu_resent"] += 1
            log.debug("tcp_mss_lowered", host=self.host.name, mtu=mtu, smss=conn.smss)
        pcb.run(out)

    ####################################################################
    # Active open
    ####################################################################

    def connect_pcb(self, faddr: bytes, fport: int, laddr: bytes | None, lport: int) -> TcpPcb:
        """A new connection to ``faddr:fport`` in the table (not yet opened).

        The local address, when not given, and the MSS come from one route
        choice (:meth:`Ip.route <trionet._net._ip.Ip.route>`, BSD
        ``in_pcbladdr``).

        Raises:
            NetError: ``ENETUNREACH`` (no route), ``EADDRNOTAVAIL``, ``EADDRINUSE``.
        """
        if laddr == ANY or laddr == ANY6:
            laddr = None
        if laddr is not None and len(laddr) != len(faddr):
            raise NetError(
                errno.EAFNOSUPPORT, f"{inet_ntop(laddr)} and {inet_ntop(faddr)} are not of one family"
            )
        if laddr is not None and laddr not in self._local_addrs:
            raise NetError(errno.EADDRNOTAVAIL, f"{inet_ntop(laddr)} is not an address of this host")
        try:
            ifp, _, src = self.ip_for(faddr).route(faddr, src=laddr)
        except NetError:
            if laddr is None:
                raise
            # Bound to an address: the route may come later (BSD in_pcbladdr
            # looks it up only for an unbound socket); until then segments
            # are output errors, and the MSS is the default.
            mtu = DEFAULT_MTU
        else:
            laddr, mtu = src, self.ip_mtu(faddr, ifp)
        if lport == 0:
            lport = self.ephemeral()
        iss, ts_offset = self._isn(laddr, lport, faddr, fport)
        conn = TcpConnection(lport, fport, iss=iss, config=self.config(mtu), ts_offset=ts_offset)
        pcb = TcpPcb(self, laddr, lport, faddr, fport, conn)
        self.attach(pcb)
        self.stats["connects"] += 1
        return pcb


def _mtudisc_local(pcb: TcpPcb) -> None:
    """IP output refused a segment with ``EMSGSIZE``: fit the MSS to the
    interface the route now leads through (a handler for :meth:`TcpPcb.post`;
    BSD ``tcp_output`` calls ``tcp_mtudisc`` on ``EMSGSIZE``)."""
    pcb._mtu_posted = False
    if pcb.detached:
        return
    tcp = pcb.tcp
    try:
        ifp = tcp.ip_for(pcb.faddr).route_cached(pcb.ro, pcb.faddr, pcb.laddr)[0]
    except NetError:
        return
    tcp._lower_mss(pcb, tcp.ip_mtu(pcb.faddr, ifp), trio.current_time())


def abort_pcb(pcb: TcpPcb) -> None:
    """Reset ``pcb``'s connection; its socket is gone (a handler for :meth:`TcpPcb.post`)."""
    pcb.orphan = True
    if not pcb.detached:
        pcb.run(pcb.conn.abort(trio.current_time()))
