"""A DNS server and a stub resolver on a host, over the stack's UDP and TCP.

Theory of operation
===================

The codec is :mod:`trionet.protocols.dns` (sans-IO); this module is its glue.
:class:`DnsZone` is a value: names under one origin and their IPv4
addresses. :class:`DnsServer` answers from it (:meth:`DnsServer.answer` is
a pure function of the query's bytes; :meth:`DnsServer.serve` does the I/O
on UDP and TCP port 53 of every address of its host). :func:`resolve` is
the stub resolver a host with :attr:`Host.resolver <trionet.Host.resolver>`
uses: UDP with retries, TCP when the answer comes back truncated.

Server rules:

1. Authority. The server is authoritative (AA) for the zone's origin and
   everything under it, and for ``in-addr.arpa`` (PTR from the zone's own
   addresses). A name under either that the zone lacks is NXDOMAIN, with
   the zone's SOA in the authority section (RFC 2308 3); a name that exists
   asked for another type (AAAA, MX...) is NOERROR with no answer and the
   SOA (NODATA, RFC 2308 2.2). A name outside both is REFUSED: the server
   does no recursion (RA clear), and claiming NXDOMAIN for a name it is not
   authoritative for would be a lie a resolver caches (RFC 2308 5); BIND
   with ``recursion no`` answers REFUSED too.
2. Questions: exactly one, opcode QUERY, class IN (or ANY); otherwise
   FORMERR (not one question), NOTIMP (another opcode) or REFUSED (another
   class). Bytes :meth:`~trionet.protocols.dns.Message.parse` refuses get
   :func:`~trionet.protocols.dns.formerr_response`; a response, or fewer
   than 12 bytes, gets nothing: a counted drop (answering responses is how
   two servers loop).
3. UDP answers are cut to 512 bytes (:data:`~trionet.protocols.dns.UDP_LIMIT`,
   no EDNS) with TC set when an answer went; the same query over TCP gets
   the whole answer (RFC 1035 4.2.1, RFC 7766). Over TCP each connection is
   read with a :class:`~trionet.protocols.dns.TcpDeframer` and answered in
   order; a framing error closes it (a counted drop), and so does
   :data:`TCP_IDLE_TIMEOUT` seconds of silence. At most 64 connections are
   served at once; more wait in the listen queue.
4. Bad input is data: it is counted and the server goes on.

Resolver rules:

5. :func:`resolve` sends one A query over UDP from a fresh ephemeral port
   with a random id (the host's seeded generator), waits ``timeout``
   seconds of Trio time for a response with that id and question, from the
   server's address and port (anything else is ignored), and tries again
   ``attempts`` times in all (glibc's ``resolv.conf`` defaults: 5 s, 2
   attempts). A response with TC set is asked again over TCP.
6. Errors are :class:`socket.gaierror`: NXDOMAIN or NODATA is
   ``EAI_NONAME``; no answer in time, SERVFAIL or REFUSED, or a server
   that cannot be reached is ``EAI_AGAIN``; anything else (FORMERR, a
   malformed response over TCP) is ``EAI_FAIL``.

DragonFly: the kernel has no DNS; the resolver is libc's
``lib/libc/net/res_send.c`` (``res_send``: UDP, then TCP on TC) and
``getaddrinfo.c``; the server is BIND's ``named`` in user space.
Divergence: no cache, no EDNS, no search list; one server per host.
"""

from __future__ import annotations

import ipaddress
import random
import socket as _stdlib_socket
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import structlog
import trio

from ..protocols import dns
from ..protocols.errors import RemoteProtocolError

if TYPE_CHECKING:
    from ._host import Host
    from ._tcp_socket import TcpStream

__all__ = ["DnsServer", "DnsServerStatistics", "DnsZone", "resolve", "resolve_ptr"]

log = structlog.get_logger(__name__)

_IN_ADDR_ARPA = dns.Name.from_text("in-addr.arpa")
#: Seconds a resolver waits for each UDP answer, and the UDP attempts
#: (glibc's RES_TIMEOUT and RES_DFLRETRY).
RESOLVER_TIMEOUT = 5.0
RESOLVER_ATTEMPTS = 2
#: Bytes of a TCP query the server accepts (a query is one question).
_MAX_TCP_QUERY = 512
#: Concurrent TCP connections the server serves; more wait in the backlog.
_MAX_TCP_CONNECTIONS = 64
#: Seconds a TCP connection may stay silent before the server closes it
#: (RFC 7766 6.2.3 recommends a few seconds; BIND's default is 30).
TCP_IDLE_TIMEOUT = 10.0


####################################################################
# The zone
####################################################################


def _packed(name: str, addresses: Any) -> tuple[bytes, ...]:
    if isinstance(addresses, str) or not isinstance(addresses, Iterable):
        addresses = (addresses,)
    packed = tuple(ipaddress.IPv4Address(a).packed for a in addresses)
    if not packed:
        raise ValueError(f"{name!r} has no address")
    return packed


@attrs.frozen
class DnsZone:
    """Names and their IPv4 addresses, for :meth:`Host.serve_dns
    <trionet.Host.serve_dns>`.

    ``DnsZone({"www": "10.0.2.2", "ns1": ["10.0.0.53", "10.0.1.53"]},
    origin="lab")`` holds ``www.lab`` and ``ns1.lab``. A name ending in a
    dot is absolute (``"www.lab."``); any other is relative to ``origin``.

    Attributes:
        records: name -> an address or a list of addresses (dotted quads).
        origin: the zone's apex; the root (``"."``) by default, which makes
            the server authoritative for every name (useful for one-label
            host names, as ``/etc/hosts`` has them).
        ttl: the TTL of every answer, seconds.

    Raises:
        ValueError: a bad name or address, a name outside ``origin``, or a
            name listed twice (ignoring case).
        TypeError: ``records`` is not a mapping.
    """

    records: Mapping[str, Any] = attrs.field(repr=False)
    origin: str = "."
    ttl: int = 300
    _table: dict[dns.Name, tuple[bytes, ...]] = attrs.field(init=False, repr=False, eq=False)
    _reverse: dict[bytes, dns.Name] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        origin = dns.Name.from_text(self.origin)
        table: dict[dns.Name, tuple[bytes, ...]] = {}
        reverse: dict[bytes, dns.Name] = {}
        if not isinstance(self.records, Mapping):
            raise TypeError(f"records must be a mapping of name -> address(es), not {self.records!r}")
        for text, addresses in self.records.items():
            name = dns.Name.from_text(text)
            # Only a name written with the final dot is absolute.
            full = name if text.endswith(".") else dns.Name(name.labels + origin.labels)
            if not full.is_subdomain_of(origin):
                raise ValueError(f"{full} is outside the zone's origin {origin}")
            key = full.lower()
            if key in table:
                raise ValueError(f"{full} is listed twice")
            packed = table[key] = _packed(text, addresses)
            for address in packed:
                reverse.setdefault(address, full)
        object.__setattr__(self, "_table", table)
        object.__setattr__(self, "_reverse", reverse)

    @property
    def origin_name(self) -> dns.Name:
        """The origin as a :class:`~trionet.protocols.dns.Name`."""
        return dns.Name.from_text(self.origin)

    def addresses(self, name: dns.Name | str) -> tuple[str, ...] | None:
        """The addresses of ``name`` (absolute, any case), or ``None`` if
        the zone does not have it."""
        if isinstance(name, str):
            name = dns.Name.from_text(name)
        found = self._table.get(name.lower())
        return None if found is None else tuple(str(ipaddress.IPv4Address(a)) for a in found)

    def soa(self) -> dns.ResourceRecord:
        """The zone's SOA record (synthesised: primary ``ns.ORIGIN``)."""
        origin = self.origin_name
        soa = dns.SoaRdata(
            mname=dns.Name((b"ns", *origin.labels)),
            rname=dns.Name((b"hostmaster", *origin.labels)),
            serial=1,
            refresh=3600,
            retry=600,
            expire=86400,
            minimum=self.ttl,
        )
        return dns.ResourceRecord(origin, soa, ttl=self.ttl)


####################################################################
# The server
####################################################################


@attrs.frozen
class DnsServerStatistics:
    """A DNS server's counters.

    Attributes:
        queries: queries answered (UDP and TCP, any rcode).
        tcp_queries: of those, over TCP.
        answers: NOERROR responses with at least one answer record.
        nxdomain: NXDOMAIN responses.
        nodata: NOERROR responses without answers (the name has no record
            of that type).
        errors: responses with another rcode (FORMERR, NOTIMP, REFUSED).
        truncated: UDP responses sent with TC set.
        drops: input not answered: fewer than 12 bytes, a response, a TCP
            framing error or a connection closed mid-message.
    """

    queries: int
    tcp_queries: int
    answers: int
    nxdomain: int
    nodata: int
    errors: int
    truncated: int
    drops: int


@attrs.define(eq=False)
class DnsServer:
    """An authoritative DNS server for one zone on a host. Made by
    :meth:`Host.serve_dns <trionet.Host.serve_dns>` (which ``nursery.start``
    returns), or built and run with :meth:`serve`.

    Answers are the module docstring's rules 1 to 4.
    """

    host: Host
    zone: DnsZone
    port: int = dns.DNS_PORT
    _queries: int = attrs.field(default=0, init=False)
    _tcp_queries: int = attrs.field(default=0, init=False)
    _answers: int = attrs.field(default=0, init=False)
    _nxdomain: int = attrs.field(default=0, init=False)
    _nodata: int = attrs.field(default=0, init=False)
    _errors: int = attrs.field(default=0, init=False)
    _truncated: int = attrs.field(default=0, init=False)
    _drops: int = attrs.field(default=0, init=False)

    def statistics(self) -> DnsServerStatistics:
        """The counters so far."""
        return DnsServerStatistics(
            queries=self._queries,
            tcp_queries=self._tcp_queries,
            answers=self._answers,
            nxdomain=self._nxdomain,
            nodata=self._nodata,
            errors=self._errors,
            truncated=self._truncated,
            drops=self._drops,
        )

    def _drop(self, reason: str, transport: str) -> None:
        self._drops += 1
        log.debug("dns_query_dropped", host=self.host.name, reason=reason, transport=transport)

    def answer(self, data: bytes, *, transport: str = "udp") -> dns.Message | None:
        """The response to the query ``data`` (rules 1 and 2), counted;
        ``None`` when nothing must be sent (a counted drop)."""
        try:
            query = dns.Message.parse(data)
        except RemoteProtocolError as exc:
            response = dns.formerr_response(data)
            if response is None:
                self._drop(exc.reason, transport)
                return None
            log.debug("dns_formerr_sent", host=self.host.name, reason=exc.reason, transport=transport)
            return self._count(response)
        if query.qr:
            self._drop("response", transport)
            return None
        return self._count(self._respond(query))

    def _count(self, response: dns.Message) -> dns.Message:
        self._queries += 1
        if response.rcode == dns.Rcode.NOERROR:
            if response.answers:
                self._answers += 1
            else:
                self._nodata += 1
        elif response.rcode == dns.Rcode.NXDOMAIN:
            self._nxdomain += 1
        else:
            self._errors += 1
        return response

    def _respond(self, query: dns.Message) -> dns.Message:
        # Refusals of the whole message carry no question: copying many
        # long ones back could outgrow 512 bytes (emit would refuse).
        if query.opcode != dns.Opcode.QUERY:
            return attrs.evolve(dns.make_response(query, rcode=dns.Rcode.NOTIMP, aa=False), questions=())
        if len(query.questions) != 1:
            return attrs.evolve(dns.make_response(query, rcode=dns.Rcode.FORMERR, aa=False), questions=())
        question = query.questions[0]
        if question.qclass not in (dns.RRClass.IN, dns.RRClass.ANY):
            return dns.make_response(query, rcode=dns.Rcode.REFUSED, aa=False)
        name, qtype, zone = question.name, question.qtype, self.zone
        soa = (zone.soa(),)
        if name.is_subdomain_of(_IN_ADDR_ARPA):
            address = dns.reverse_name_to_address(name)
            target = None if address is None else zone._reverse.get(address)
            if target is None:
                return dns.make_response(query, rcode=dns.Rcode.NXDOMAIN, authorities=soa)
            if qtype not in (dns.RRType.PTR, dns.RRType.ANY):
                return dns.make_response(query, authorities=soa)
            record = dns.ResourceRecord(name, dns.PtrRdata(target), ttl=zone.ttl)
            return dns.make_response(query, answers=(record,))
        if not name.is_subdomain_of(zone.origin_name):
            return dns.make_response(query, rcode=dns.Rcode.REFUSED, aa=False)
        addresses = zone._table.get(name.lower())
        if addresses is None:
            if name.matches(zone.origin_name):
                return dns.make_response(query, authorities=soa)  # the apex exists
            return dns.make_response(query, rcode=dns.Rcode.NXDOMAIN, authorities=soa)
        if qtype not in (dns.RRType.A, dns.RRType.ANY):
            return dns.make_response(query, authorities=soa)
        records = [dns.ResourceRecord(name, dns.ARdata(a), ttl=zone.ttl) for a in addresses]
        return dns.make_response(query, answers=records)

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Answer on UDP and TCP :attr:`port` of every address of the host
        until cancelled; ``nursery.start`` returns once both are bound.

        Cancellation: the sockets and connections are closed; a query
        being answered may be lost (as one in flight on any server).

        Raises:
            OSError: ``EADDRINUSE`` (the port is taken).
            trio.ClosedResourceError: the host is shut down.
        """
        udp = self.host.udp_socket()
        with udp:
            udp.bind(("0.0.0.0", self.port))
            listeners = await self.host.open_tcp_listeners(self.port)
            async with trio.open_nursery() as nursery:
                try:
                    limiter = trio.Semaphore(_MAX_TCP_CONNECTIONS)
                    nursery.start_soon(self._serve_udp, udp)
                    for listener in listeners:
                        nursery.start_soon(self._accept_loop, listener, limiter, nursery)
                    log.info("dns_server_started", host=self.host.name, port=self.port)
                    task_status.started(self)
                    await trio.sleep_forever()
                finally:
                    for listener in listeners:
                        listener.close()

    async def _serve_udp(self, udp: Any) -> None:
        while True:
            data, peer = await udp.recvfrom()
            response = self.answer(data)
            if response is None:
                continue
            wire = response.emit(limit=dns.UDP_LIMIT)
            if wire[2] & 0x02 and not response.tc:
                self._truncated += 1
            try:
                await udp.sendto(wire, peer)
            except OSError as exc:  # no route back, ENOBUFS: lost, as a datagram may be
                self._drop("send_failed", "udp")
                log.debug("dns_response_lost", host=self.host.name, errno=exc.errno)

    async def _accept_loop(self, listener: Any, limiter: trio.Semaphore, nursery: trio.Nursery) -> None:
        while True:
            await limiter.acquire()
            try:
                stream = await listener.accept()
            except BaseException:
                limiter.release()
                raise
            nursery.start_soon(self._serve_tcp, stream, limiter)

    async def _serve_tcp(self, stream: TcpStream, limiter: trio.Semaphore) -> None:
        deframer = dns.TcpDeframer(max_size=_MAX_TCP_QUERY)
        try:
            async with stream:
                while True:
                    chunk = b""
                    with trio.move_on_after(TCP_IDLE_TIMEOUT):
                        chunk = await stream.receive_some()
                    if not chunk:  # EOF, or idle too long (RFC 7766 6.2.3)
                        deframer.eof()
                        return
                    for data in deframer.feed(chunk):
                        response = self.answer(data, transport="tcp")
                        if response is None:
                            continue
                        self._tcp_queries += 1
                        await stream.send_all(dns.tcp_frame(response.emit()))
        except RemoteProtocolError as exc:
            self._drop(exc.reason, "tcp")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._drop("connection_lost", "tcp")
        finally:
            limiter.release()


####################################################################
# The resolver
####################################################################


def _gaierror(code: int, text: str) -> _stdlib_socket.gaierror:
    return _stdlib_socket.gaierror(code, text)


def _rng(host: Host) -> random.Random:
    # One generator per host, seeded from its name (a str seed is hashed
    # with SHA-512: the same ids in every process and hash seed).
    if host._dns_rng is None:
        host._dns_rng = random.Random(f"{host.name}/dns")
    return host._dns_rng


def _matches(query: dns.Message, response: dns.Message) -> bool:
    return (
        response.qr
        and response.id == query.id
        and len(response.questions) == 1
        and response.questions[0].name.matches(query.questions[0].name)
        and response.questions[0].qtype == query.questions[0].qtype
    )


async def _ask_udp(host: Host, server: tuple[str, int], query: dns.Message, timeout: float) -> dns.Message | None:
    wire = query.emit()
    with host.udp_socket() as udp:
        try:
            await udp.sendto(wire, server)
        except OSError:
            await trio.sleep(timeout)  # no route: as a lost datagram, try again later
            return None
        with trio.move_on_after(timeout):
            while True:
                try:
                    data, peer = await udp.recvfrom()
                except OSError:  # ICMP port unreachable: nobody serves there
                    return None
                if peer != server:
                    continue
                try:
                    response = dns.Message.parse(data)
                except RemoteProtocolError:
                    continue
                if _matches(query, response):
                    return response
    return None


async def _ask_tcp(host: Host, server: tuple[str, int], query: dns.Message, timeout: float) -> dns.Message:
    with trio.fail_after(timeout * 2):
        stream = await host.open_tcp_stream(*server)
        async with stream:
            await stream.send_all(dns.tcp_frame(query.emit()))
            deframer = dns.TcpDeframer()
            while True:
                chunk = await stream.receive_some()
                if not chunk:
                    deframer.eof()
                    raise RemoteProtocolError("truncated_frame", "the server closed the connection")
                for data in deframer.feed(chunk):
                    response = dns.Message.parse(data)
                    if _matches(query, response):
                        return response


async def query(
    host: Host,
    name: str,
    qtype: int,
    *,
    server: str | None = None,
    timeout: float = RESOLVER_TIMEOUT,
    attempts: int = RESOLVER_ATTEMPTS,
) -> dns.Message:
    """Ask ``server`` (default ``host.resolver``) about ``name`` (rule 5)
    and return the response, whatever its rcode.

    Cancellation: the query's sockets are closed; nothing remains.

    Raises:
        socket.gaierror: ``EAI_AGAIN`` (no server, or no answer in time),
            ``EAI_FAIL`` (a malformed response over TCP), ``EAI_NONAME``
            (``name`` is not a legal domain name).
    """
    server = server if server is not None else host.resolver
    if server is None:
        raise _gaierror(_stdlib_socket.EAI_AGAIN, f"{host.name} has no resolver")
    try:
        message = dns.make_query(_rng(host).getrandbits(16), name, qtype)
    except ValueError as exc:
        raise _gaierror(_stdlib_socket.EAI_NONAME, str(exc)) from None
    address = (server, dns.DNS_PORT)
    for _ in range(attempts):
        response = await _ask_udp(host, address, message, timeout)
        if response is None:
            continue
        if not response.tc:
            return response
        try:
            return await _ask_tcp(host, address, message, timeout)
        except trio.TooSlowError:
            raise _gaierror(_stdlib_socket.EAI_AGAIN, "no answer over TCP in time") from None
        except RemoteProtocolError as exc:
            raise _gaierror(_stdlib_socket.EAI_FAIL, f"bad response over TCP: {exc.reason}") from None
        except (OSError, trio.BrokenResourceError) as exc:
            raise _gaierror(_stdlib_socket.EAI_AGAIN, f"TCP to {server}: {exc}") from None
    raise _gaierror(_stdlib_socket.EAI_AGAIN, f"no answer from {server} after {attempts} attempts")


def _check(response: dns.Message, name: str) -> None:
    rcode = response.rcode
    if rcode == dns.Rcode.NXDOMAIN:
        raise _gaierror(_stdlib_socket.EAI_NONAME, f"{name}: NXDOMAIN")
    if rcode in (dns.Rcode.SERVFAIL, dns.Rcode.REFUSED):
        raise _gaierror(_stdlib_socket.EAI_AGAIN, f"{name}: {dns.Rcode(rcode).name}")
    if rcode != dns.Rcode.NOERROR:
        raise _gaierror(_stdlib_socket.EAI_FAIL, f"{name}: rcode {rcode}")


async def resolve(host: Host, name: str, **options: Any) -> list[str]:
    """The IPv4 addresses of ``name`` from the host's resolver (rules 5
    and 6), in the server's order; options as :func:`query`.

    Raises:
        socket.gaierror: ``EAI_NONAME`` (NXDOMAIN, or no A record),
            ``EAI_AGAIN``, ``EAI_FAIL`` (rule 6).
    """
    response = await query(host, name, dns.RRType.A, **options)
    _check(response, name)
    want = dns.Name.from_text(name)
    found = [
        str(ipaddress.IPv4Address(r.rdata.address))
        for r in response.answers
        if isinstance(r.rdata, dns.ARdata) and r.name.matches(want)
    ]
    if not found:
        raise _gaierror(_stdlib_socket.EAI_NONAME, f"{name}: no address")
    return found


async def resolve_ptr(host: Host, address: str, **options: Any) -> str | None:
    """The name of ``address`` from a PTR query to the host's resolver, or
    ``None`` (NXDOMAIN or no PTR record). Errors as :func:`resolve`."""
    name = str(dns.reverse_name(address))
    response = await query(host, name, dns.RRType.PTR, **options)
    if response.rcode == dns.Rcode.NXDOMAIN:
        return None
    _check(response, name)
    for r in response.answers:
        if isinstance(r.rdata, dns.PtrRdata):
            return str(r.rdata.name)
    return None

