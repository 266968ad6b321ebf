"""The DHCP client machine, driven by a fake server made of DhcpMessage values
and by time as numbers; scapy decodes what it sends and encodes what it
receives; Hypothesis throws random replies and delays at it."""

from __future__ import annotations

import copy
import math
import random

import attrs
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from trionet.protocols.dhcp import (
    BOOTREPLY,
    BOOTREQUEST,
    FLAG_BROADCAST,
    DhcpMessage,
    MessageType,
    Option,
    encode_addresses,
    encode_u16,
    encode_u32,
)
from trionet.protocols.dhcp_client import (
    BROADCAST,
    DECLINE_DELAY,
    INFINITE_LEASE,
    PARAMETER_REQUEST_LIST,
    ClientState,
    Configure,
    DhcpClient,
    DhcpClientStatistics,
    DhcpLease,
    Send,
    Unconfigure,
)
from trionet.protocols.errors import LocalProtocolError

MAC = bytes.fromhex("020000000001")
OTHER_MAC = bytes.fromhex("020000000002")
CLIENT_ID = b"\x01" + MAC
SERVER = bytes([192, 0, 2, 1])
SERVER_2 = bytes([192, 0, 2, 2])
ADDR = bytes([192, 0, 2, 10])
ADDR_2 = bytes([192, 0, 2, 11])
ZERO = bytes(4)
SEED = 7
LEASE = 3600


def client(seed: int = SEED, **kw: object) -> DhcpClient:
    kw.setdefault("client_id", CLIENT_ID)
    kw.setdefault("hostname", "host1")
    return DhcpClient(MAC, random.Random(seed), **kw)  # type: ignore[arg-type]


def reply(
    to: DhcpMessage,
    kind: MessageType,
    *options: tuple[int, bytes],
    yiaddr: bytes = ADDR,
    server: bytes | None = SERVER,
    **fields: object,
) -> DhcpMessage:
    """A server's answer to ``to``: same xid and chaddr, the message type,
    the server identifier (unless ``server`` is None), then ``options``."""
    opts: list[tuple[int, bytes]] = [(Option.MESSAGE_TYPE, bytes([kind]))]
    if server is not None:
        opts.append((Option.SERVER_ID, server))
    opts += options
    values: dict[str, object] = dict(op=BOOTREPLY, xid=to.xid, chaddr=to.chaddr, yiaddr=yiaddr, options=opts)
    values.update(fields)
    return DhcpMessage(**values)  # type: ignore[arg-type]


def offer(to: DhcpMessage, **kw: object) -> DhcpMessage:
    lease_time = (Option.LEASE_TIME, encode_u32(LEASE))
    return reply(to, MessageType.OFFER, lease_time, **kw)  # type: ignore[arg-type]


def ack(to: DhcpMessage, *options: tuple[int, bytes], lease: int = LEASE, **kw: object) -> DhcpMessage:
    lease_time = (Option.LEASE_TIME, encode_u32(lease))
    return reply(to, MessageType.ACK, lease_time, *options, **kw)  # type: ignore[arg-type]


def nak(to: DhcpMessage, **kw: object) -> DhcpMessage:
    kw.setdefault("yiaddr", ZERO)
    return reply(to, MessageType.NAK, **kw)  # type: ignore[arg-type]


FULL_ACK_OPTIONS = (
    (Option.SUBNET_MASK, bytes([255, 255, 255, 128])),
    (Option.ROUTER, encode_addresses([SERVER, SERVER_2])),
    (Option.DNS, encode_addresses([bytes([192, 0, 2, 53])])),
    (Option.DOMAIN, b"example.org"),
    (Option.MTU, encode_u16(1400)),
)


def only_send(actions: list) -> Send:
    assert len(actions) == 1 and isinstance(actions[0], Send), actions
    return actions[0]


def opt(msg: DhcpMessage, code: int) -> bytes | None:
    return msg.option(code)


def bound(*options: tuple[int, bytes], **kw: object) -> tuple[DhcpClient, DhcpLease]:
    """A new client taken through DORA: DISCOVER at 0, REQUEST at 0.5, and
    an ACK with ``options`` (and ``ack``'s keywords) at 0.6."""
    c = client()
    discover = only_send(c.start(0.0)).message
    request = only_send(c.receive(offer(discover), 0.5)).message
    actions = c.receive(ack(request, *options, **kw), 0.6)  # type: ignore[arg-type]
    assert [type(a) for a in actions] == [Configure]
    assert c.lease is not None
    return c, c.lease


#### DORA


def test_discover_offer_request_ack() -> None:
    c = client()
    replay = random.Random(SEED)
    assert c.state is ClientState.INIT and c.next_deadline() == math.inf
    send = only_send(c.start(100.0))
    d = send.message
    assert c.state is ClientState.SELECTING
    assert (send.dst, send.src) == (BROADCAST, ZERO)
    assert d.op == BOOTREQUEST and d.xid == replay.getrandbits(32) and d.chaddr == MAC
    assert d.flags == FLAG_BROADCAST and d.broadcast and d.ciaddr == ZERO
    assert d.message_type is MessageType.DISCOVER
    assert opt(d, Option.CLIENT_ID) == CLIENT_ID and opt(d, Option.HOSTNAME) == b"host1"
    assert opt(d, Option.PARAMETER_LIST) == bytes([1, 3, 6, 15, 26, 51, 54, 58, 59]) == PARAMETER_REQUEST_LIST
    assert opt(d, Option.MAX_MESSAGE_SIZE) == encode_u16(1500)
    assert opt(d, Option.REQUESTED_IP) is None and opt(d, Option.SERVER_ID) is None

    send = only_send(c.receive(offer(d).emit(), 101.0))  # as bytes
    r = send.message
    assert c.state is ClientState.REQUESTING
    assert (send.dst, send.src) == (BROADCAST, ZERO)
    assert r.message_type is MessageType.REQUEST and r.xid == d.xid and r.ciaddr == ZERO
    assert r.flags == FLAG_BROADCAST
    assert opt(r, Option.REQUESTED_IP) == ADDR and opt(r, Option.SERVER_ID) == SERVER
    assert opt(r, Option.CLIENT_ID) == CLIENT_ID and opt(r, Option.PARAMETER_LIST) == PARAMETER_REQUEST_LIST

    actions = c.receive(ack(r, *FULL_ACK_OPTIONS), 101.5)
    lease = DhcpLease(
        address=ADDR,
        prefixlen=25,
        routers=(SERVER, SERVER_2),
        dns=(bytes([192, 0, 2, 53]),),
        domain="example.org",
        mtu=1400,
        server_id=SERVER,
        lease_time=LEASE,
        t1=101.0 + LEASE / 2,  # from the REQUEST's transmission, not the ACK's arrival
        t2=101.0 + LEASE * 7 / 8,
        expires=101.0 + LEASE,
        acquired=101.0,
    )
    assert actions == [Configure(lease)]
    assert c.state is ClientState.BOUND and c.lease == lease
    assert c.next_deadline() == lease.t1
    assert c.statistics() == DhcpClientStatistics(discovers=1, requests=1, offers=1, acks=1, bound=1)
    assert not c.drops


def test_minimal_ack_uses_classful_prefix_and_no_options() -> None:
    for address, plen in ((bytes([10, 1, 2, 3]), 8), (bytes([172, 16, 0, 5]), 16), (ADDR, 24)):
        c = client(client_id=None, hostname=None)
        d = only_send(c.start(0.0)).message
        assert opt(d, Option.CLIENT_ID) is None and opt(d, Option.HOSTNAME) is None
        r = only_send(c.receive(offer(d, yiaddr=address), 1.0)).message
        [configure] = c.receive(ack(r, yiaddr=address), 1.0)
        assert isinstance(configure, Configure)
        lease = configure.lease
        assert (lease.address, lease.prefixlen) == (address, plen)
        assert (lease.routers, lease.dns, lease.domain, lease.mtu) == ((), (), None, None)


def test_bad_mask_and_mtu_are_ignored_and_counted() -> None:
    _, lease = bound((Option.SUBNET_MASK, bytes([255, 0, 255, 0])), (Option.MTU, encode_u16(67)))
    assert lease.prefixlen == 24 and lease.mtu is None
    c, lease = bound((Option.SUBNET_MASK, ZERO))
    assert lease.prefixlen == 24 and c.drops["bad_subnet_mask"] == 1


def test_t1_t2_from_options_clamped_to_the_lease() -> None:
    _, lease = bound((Option.RENEWAL_TIME, encode_u32(100)), (Option.REBINDING_TIME, encode_u32(200)))
    assert (lease.t1, lease.t2, lease.expires) == (100.5, 200.5, 0.5 + LEASE)
    # T1 above T2 is cut to T2; T2 above the lease to the lease.
    _, lease = bound((Option.RENEWAL_TIME, encode_u32(500)), (Option.REBINDING_TIME, encode_u32(300)))
    assert lease.t1 == lease.t2 == 300.5
    _, lease = bound((Option.REBINDING_TIME, encode_u32(LEASE * 2)))
    assert lease.t2 == lease.expires == 0.5 + LEASE and lease.t1 == 0.5 + LEASE / 2


def test_first_offer_wins_and_later_ones_are_counted() -> None:
    c = client()
    d = only_send(c.start(0.0)).message
    r = only_send(c.receive(offer(d, server=SERVER_2, yiaddr=ADDR_2), 1.0)).message
    assert opt(r, Option.SERVER_ID) == SERVER_2 and opt(r, Option.REQUESTED_IP) == ADDR_2
    assert c.receive(offer(d), 1.1) == []
    assert c.drops == {"extra_offer": 1}
    # An ACK from the server we did not choose is not ours to take.
    assert c.receive(ack(r), 1.2) == []
    assert c.drops["ack_wrong_server"] == 1 and c.state is ClientState.REQUESTING
    [configure] = c.receive(ack(r, server=SERVER_2, yiaddr=ADDR_2), 1.3)
    assert configure.lease.address == ADDR_2


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (dict(yiaddr=ZERO), "bad_offer"),
        (dict(yiaddr=BROADCAST), "bad_offer"),
        (dict(yiaddr=bytes([224, 0, 0, 1])), "bad_offer"),
        (dict(server=None), "bad_offer"),
        (dict(xid=12345), "wrong_xid"),
        (dict(chaddr=OTHER_MAC), "not_for_us"),
        (dict(op=BOOTREQUEST), "not_reply"),
        (dict(options=()), "no_message_type"),
    ],
)
def test_bad_offers_are_dropped_and_counted(change: dict, reason: str) -> None:
    c = client()
    d = only_send(c.start(0.0)).message
    server = change.pop("server", SERVER)
    msg = offer(d, server=server, **change)
    assert c.receive(msg, 1.0) == []
    assert c.receive(msg.emit(), 1.0) == []
    assert c.drops == {reason: 2} and c.state is ClientState.SELECTING
    assert c.statistics().dropped == 2


def test_garbage_and_unexpected_messages_are_counted() -> None:
    c = client()
    d = only_send(c.start(0.0)).message
    assert c.receive(b"\x02" * 20, 0.1) == []
    assert c.receive(ack(d), 0.2) == []  # an ACK in SELECTING
    assert c.receive(nak(d), 0.3) == []
    assert c.receive(reply(d, MessageType.DISCOVER), 0.4) == []
    assert c.drops == {"short_message": 1, "unexpected_ack": 1, "unexpected_nak": 1, "unexpected_discover": 1}
    c, lease = bound()
    r_xid = c.statistics()
    assert c.receive(offer(DhcpMessage(op=1, xid=0, chaddr=MAC)), 5.0) == []
    assert c.drops == {"wrong_xid": 1}
    assert c.statistics() == attrs.evolve(r_xid, dropped=1)


@pytest.mark.parametrize(
    ("options", "kw", "with_lease_time"),
    [
        ((), dict(server=None), True),  # no server identifier, none known
        ((), dict(yiaddr=ZERO), True),
        ((), {}, False),
        (((Option.ROUTER, b"\x01\x02\x03"),), {}, True),  # an option the lease uses, malformed
        (((Option.MTU, b"\x05"),), {}, True),
    ],
)
def test_bad_acks_are_dropped(options: tuple, kw: dict, with_lease_time: bool) -> None:
    c = client()
    d = only_send(c.start(0.0)).message
    r = only_send(c.receive(offer(d), 1.0)).message
    if with_lease_time:
        msg = ack(r, *options, **kw)
    else:
        msg = reply(r, MessageType.ACK, *options, **kw)
    assert c.receive(msg, 1.5) == []
    assert c.state is ClientState.REQUESTING and c.lease is None
    assert sum(c.drops.values()) == 1 and set(c.drops) <= {"bad_ack", "bad_option"}


#### Retransmission (RFC 2131 4.1)


def test_discover_backoff_is_4_8_16_32_64_forever_with_jitter() -> None:
    c = client()
    replay = random.Random(SEED)
    xid = replay.getrandbits(32)
    now = 10.0
    only_send(c.start(now))
    for base in (4, 8, 16, 32, 64, 64, 64, 64):
        jitter = replay.uniform(-1, 1)
        assert -1 <= jitter <= 1
        assert c.next_deadline() == now + base + jitter
        assert c.timeout(c.next_deadline() - 0.01) == []  # not yet
        now = c.next_deadline()
        send = only_send(c.timeout(now))
        assert send.message.message_type is MessageType.DISCOVER and send.message.xid == xid
        assert send.message.secs == int(now - 10.0)
    assert c.state is ClientState.SELECTING and c.statistics().discovers == 9


def test_request_is_resent_four_times_then_back_to_init() -> None:
    c = client()
    replay = random.Random(SEED)
    xid = replay.getrandbits(32)
    d = only_send(c.start(0.0)).message
    replay.uniform(-1, 1)  # the DISCOVER's wait
    now = 2.0
    only_send(c.receive(offer(d), now))
    first = now
    for base in (4, 8, 16, 32):
        assert c.next_deadline() == now + base + replay.uniform(-1, 1)
        now = c.next_deadline()
        r = only_send(c.timeout(now)).message
        assert r.message_type is MessageType.REQUEST and r.xid == xid
        assert opt(r, Option.REQUESTED_IP) == ADDR and opt(r, Option.SERVER_ID) == SERVER
    assert c.next_deadline() == now + 64 + replay.uniform(-1, 1)
    # An ACK to the last retransmission counts the lease from the first one.
    late = copy.deepcopy(c)
    [configure] = late.receive(ack(r), now + 1)
    assert configure.lease.acquired == first
    now = c.next_deadline()
    send = only_send(c.timeout(now))
    assert send.message.message_type is MessageType.DISCOVER
    assert send.message.xid == replay.getrandbits(32) != xid
    assert c.state is ClientState.SELECTING
    assert c.statistics() == DhcpClientStatistics(discovers=2, requests=5, offers=1, abandoned=1)


#### Renewing, rebinding, expiry (RFC 2131 4.4.5)


def test_renew_at_t1_unicast_to_the_server_then_rebind_at_t2_broadcast() -> None:
    c, lease = bound((Option.RENEWAL_TIME, encode_u32(1000)), (Option.REBINDING_TIME, encode_u32(1100)))
    old_xid = c.timeout(lease.t1 - 1) or None
    assert old_xid is None and c.state is ClientState.BOUND
    send = only_send(c.timeout(lease.t1))
    r = send.message
    assert c.state is ClientState.RENEWING
    assert (send.dst, send.src) == (SERVER, ADDR)
    assert r.message_type is MessageType.REQUEST and r.ciaddr == ADDR and r.flags == 0
    assert opt(r, Option.REQUESTED_IP) is None and opt(r, Option.SERVER_ID) is None
    assert opt(r, Option.CLIENT_ID) == CLIENT_ID
    # 100 s left to T2: half is 50, but never less than 60 s; and never past T2.
    assert c.next_deadline() == lease.t1 + 60
    send = only_send(c.timeout(lease.t1 + 60))
    assert send.dst == SERVER and send.message.xid == r.xid
    assert c.next_deadline() == lease.t2
    send = only_send(c.timeout(lease.t2))
    b = send.message
    assert c.state is ClientState.REBINDING
    assert (send.dst, send.src) == (BROADCAST, ADDR)
    assert b.ciaddr == ADDR and b.flags == 0 and b.xid != r.xid
    assert opt(b, Option.REQUESTED_IP) is None and opt(b, Option.SERVER_ID) is None
    left = lease.expires - lease.t2
    assert c.next_deadline() == lease.t2 + left / 2
    assert c.lease == lease  # still configured
    # An answer to the renewal is too late now: another exchange.
    assert c.receive(ack(r), lease.t2 + 1) == []
    assert c.drops == {"wrong_xid": 1}


def test_renewal_ack_extends_the_lease() -> None:
    c, lease = bound()
    r = only_send(c.timeout(lease.t1)).message
    assert c.next_deadline() == lease.t1 + (lease.t2 - lease.t1) / 2
    now = lease.t1 + 3
    actions = c.receive(ack(r, lease=7200), now)
    t1, t2, expires = lease.t1 + 3600, lease.t1 + 6300, lease.t1 + 7200
    new = DhcpLease(ADDR, 24, (), (), None, None, SERVER, 7200, t1, t2, expires, lease.t1)
    assert actions == [Configure(new)]
    assert c.state is ClientState.BOUND and c.next_deadline() == new.t1
    stats = c.statistics()
    assert (stats.bound, stats.extended, stats.acks) == (1, 1, 2)


def test_rebinding_ack_from_another_server_with_another_address() -> None:
    c, lease = bound()
    only_send(c.timeout(lease.t1))
    b = only_send(c.timeout(lease.t2)).message
    actions = c.receive(ack(b, server=SERVER_2, yiaddr=ADDR_2), lease.t2 + 1)
    assert [type(a) for a in actions] == [Unconfigure, Configure]
    assert actions[0] == Unconfigure(lease)
    assert actions[1].lease.address == ADDR_2 and actions[1].lease.server_id == SERVER_2
    assert actions[1].lease.acquired == lease.t2
    # The next renewal goes to the new server.
    send = only_send(c.timeout(actions[1].lease.t1))
    assert (send.dst, send.src) == (SERVER_2, ADDR_2)


def test_renewal_ack_without_server_id_keeps_the_known_one() -> None:
    c, lease = bound()
    r = only_send(c.timeout(lease.t1)).message
    [configure] = c.receive(ack(r, server=None), lease.t1 + 1)
    assert configure.lease.server_id == SERVER


def test_expiry_unconfigures_and_starts_over() -> None:
    c, lease = bound()
    only_send(c.timeout(lease.t1))
    only_send(c.timeout(lease.t2))
    deadlines = []
    while c.state is ClientState.REBINDING:
        now = c.next_deadline()
        deadlines.append(now)
        actions = c.timeout(now)
    assert deadlines[-1] == lease.expires
    assert all(b - a >= 60 or b == lease.expires for a, b in zip(deadlines, deadlines[1:]))
    assert actions[0] == Unconfigure(lease)
    assert actions[1].message.message_type is MessageType.DISCOVER and actions[1].message.ciaddr == ZERO
    assert (actions[1].dst, actions[1].src) == (BROADCAST, ZERO)
    assert c.state is ClientState.SELECTING and c.lease is None
    assert c.statistics().expired == 1


def test_a_late_timeout_skips_to_what_is_due() -> None:
    c, lease = bound()
    send = only_send(c.timeout(lease.t2 + 1))  # slept through T1
    assert c.state is ClientState.REBINDING and send.dst == BROADCAST
    c, lease = bound()
    actions = c.timeout(lease.expires + 1)
    assert actions[0] == Unconfigure(lease) and c.state is ClientState.SELECTING


def test_infinite_lease_has_no_timers_but_a_far_deadline() -> None:
    c, lease = bound(lease=INFINITE_LEASE)
    assert lease.t1 == lease.t2 == lease.expires == math.inf
    far = lease.acquired + INFINITE_LEASE
    assert c.next_deadline() == far
    assert c.timeout(far) == [] and c.state is ClientState.BOUND
    assert c.next_deadline() == far + INFINITE_LEASE


#### NAK


def test_nak_in_requesting_restarts_after_a_growing_delay() -> None:
    c = client()
    d = only_send(c.start(0.0)).message
    r = only_send(c.receive(offer(d), 1.0)).message
    assert c.receive(nak(r, server=SERVER_2), 2.0) == []  # not the server we chose
    assert c.drops == {"nak_wrong_server": 1} and c.state is ClientState.REQUESTING
    assert c.receive(nak(r), 2.0) == []
    assert c.state is ClientState.INIT and c.next_deadline() == 3.0
    d = only_send(c.timeout(3.0)).message
    assert d.message_type is MessageType.DISCOVER and c.state is ClientState.SELECTING
    r = only_send(c.receive(offer(d), 4.0)).message
    assert c.receive(nak(r), 5.0) == []
    assert c.next_deadline() == 7.0  # two NAKs in a row: 2 s
    for delay in (4, 8, 16, 32, 64, 64):
        now = c.next_deadline()
        d = only_send(c.timeout(now)).message
        r = only_send(c.receive(offer(d), now)).message
        assert c.receive(nak(r), now) == []
        assert c.next_deadline() == now + delay
    assert c.statistics().naks == 8 and c.lease is None


def test_nak_while_renewing_unconfigures() -> None:
    c, lease = bound()
    r = only_send(c.timeout(lease.t1)).message
    assert c.receive(nak(r, server=SERVER_2), lease.t1 + 1) == [Unconfigure(lease)]  # any server
    assert c.state is ClientState.INIT and c.lease is None
    assert c.next_deadline() == lease.t1 + 2  # the NAK count was reset by the ACK
    assert c.receive(ack(r), lease.t1 + 1.5) == []
    assert c.drops == {"unexpected_ack": 1}


#### INIT-REBOOT (RFC 2131 3.2)


def test_init_reboot_ack() -> None:
    c = client(requested=ADDR_2)
    send = only_send(c.start(5.0))
    r = send.message
    assert c.state is ClientState.REBOOTING
    assert (send.dst, send.src) == (BROADCAST, ZERO)
    assert r.message_type is MessageType.REQUEST and r.ciaddr == ZERO and r.flags == FLAG_BROADCAST
    assert opt(r, Option.REQUESTED_IP) == ADDR_2 and opt(r, Option.SERVER_ID) is None
    [configure] = c.receive(ack(r, yiaddr=ADDR_2), 5.5)
    assert configure.lease.address == ADDR_2 and configure.lease.acquired == 5.0
    assert c.state is ClientState.BOUND


def test_init_reboot_nak_and_silence_go_to_init() -> None:
    c = client(requested=ADDR_2)
    r = only_send(c.start(0.0)).message
    assert c.receive(nak(r, server=None), 0.5) == []
    assert c.state is ClientState.INIT
    assert only_send(c.timeout(c.next_deadline())).message.message_type is MessageType.DISCOVER

    c = client(requested=ADDR_2)
    only_send(c.start(0.0))
    for _ in range(4):
        r = only_send(c.timeout(c.next_deadline())).message
        assert r.message_type is MessageType.REQUEST and opt(r, Option.REQUESTED_IP) == ADDR_2
    assert c.state is ClientState.REBOOTING
    send = only_send(c.timeout(c.next_deadline()))
    assert send.message.message_type is MessageType.DISCOVER and c.state is ClientState.SELECTING


#### Release and decline


def test_release_unicasts_then_unconfigures_and_stops() -> None:
    c, lease = bound()
    actions = c.release(50.0)
    assert [type(a) for a in actions] == [Send, Unconfigure]
    send = actions[0]
    m = send.message
    assert (send.dst, send.src) == (SERVER, ADDR)
    assert m.message_type is MessageType.RELEASE and m.ciaddr == ADDR and m.flags == 0
    assert opt(m, Option.SERVER_ID) == SERVER and opt(m, Option.REQUESTED_IP) is None
    assert opt(m, Option.CLIENT_ID) == CLIENT_ID
    assert actions[1] == Unconfigure(lease)
    assert not c.started and c.lease is None and c.next_deadline() == math.inf
    assert c.timeout(1e9) == []
    assert c.receive(ack(m), 51.0) == [] and c.drops == {"not_started": 1}
    assert c.release(52.0) == []
    assert c.statistics().releases == 1
    # It may start again.
    assert only_send(c.start(60.0)).message.message_type is MessageType.DISCOVER


def test_release_without_a_lease_just_stops_and_start_twice_is_misuse() -> None:
    c = client()
    only_send(c.start(0.0))
    with pytest.raises(LocalProtocolError, match="already started"):
        c.start(1.0)
    assert c.release(1.0) == [] and not c.started


def test_decline_unconfigures_broadcasts_and_waits_ten_seconds() -> None:
    c, lease = bound()
    actions = c.decline(2.0)
    assert [type(a) for a in actions] == [Unconfigure, Send]
    assert actions[0] == Unconfigure(lease)
    send = actions[1]
    m = send.message
    assert (send.dst, send.src) == (BROADCAST, ZERO)
    assert m.message_type is MessageType.DECLINE and m.ciaddr == ZERO
    assert opt(m, Option.REQUESTED_IP) == ADDR and opt(m, Option.SERVER_ID) == SERVER
    assert c.state is ClientState.INIT and c.lease is None
    assert c.next_deadline() == 2.0 + DECLINE_DELAY
    assert c.timeout(11.9) == []
    assert only_send(c.timeout(12.0)).message.message_type is MessageType.DISCOVER
    with pytest.raises(LocalProtocolError, match="no DHCP lease"):
        c.decline(13.0)


def test_bad_arguments() -> None:
    rng = random.Random(0)
    for kw in (dict(client_id=b"x"), dict(hostname=""), dict(hostname="hé"), dict(requested=ZERO)):
        with pytest.raises(ValueError):
            DhcpClient(MAC, rng, **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="chaddr"):
        DhcpClient(b"", rng)


def test_broadcast_flag_off() -> None:
    c = client(broadcast_flag=False)
    d = only_send(c.start(0.0)).message
    assert d.flags == 0
    assert only_send(c.receive(offer(d), 1.0)).message.flags == 0


#### scapy, both directions


def _scapy_options(data: bytes) -> tuple[object, dict[str, object]]:
    from scapy.all import BOOTP, DHCP

    pkt = BOOTP(data)
    options = {o[0]: o[1] if len(o) == 2 else o[1:] for o in pkt[DHCP].options if isinstance(o, tuple)}
    return pkt, options


def test_scapy_decodes_every_message_the_client_sends() -> None:
    c = client(requested=ADDR)
    r = only_send(c.start(0.0)).message
    c.receive(nak(r), 0.1)
    d = only_send(c.timeout(c.next_deadline())).message
    r2 = only_send(c.receive(offer(d), 2.0)).message
    c.receive(ack(r2), 2.0)
    renew = only_send(c.timeout(c.lease.t1)).message
    decline = c.decline(c.lease.t1 + 1)[1].message
    c2, _ = bound()
    release = c2.release(10.0)[0].message
    params = list(PARAMETER_REQUEST_LIST)

    pkt, o = _scapy_options(r.emit())
    assert o["message-type"] == 3 and o["requested_addr"] == "192.0.2.10" and "server_id" not in o
    assert int(pkt.flags) == 0x8000 and pkt.ciaddr == "0.0.0.0" and pkt.xid == r.xid
    pkt, o = _scapy_options(d.emit())
    assert o["message-type"] == 1 and o["param_req_list"] == params and o["client_id"] == CLIENT_ID
    assert o["hostname"] == b"host1" and o["max_dhcp_size"] == 1500 and int(pkt.flags) == 0x8000
    assert pkt.chaddr[:6] == MAC and pkt.op == 1
    pkt, o = _scapy_options(r2.emit())
    assert o["message-type"] == 3 and o["requested_addr"] == "192.0.2.10" and o["server_id"] == "192.0.2.1"
    assert o["param_req_list"] == params and o["client_id"] == CLIENT_ID and int(pkt.flags) == 0x8000
    pkt, o = _scapy_options(renew.emit())
    assert o["message-type"] == 3 and "requested_addr" not in o and "server_id" not in o
    assert pkt.ciaddr == "192.0.2.10" and int(pkt.flags) == 0
    pkt, o = _scapy_options(decline.emit())
    assert o["message-type"] == 4 and o["requested_addr"] == "192.0.2.10" and o["server_id"] == "192.0.2.1"
    pkt, o = _scapy_options(release.emit())
    assert o["message-type"] == 7 and o["server_id"] == "192.0.2.1" and pkt.ciaddr == "192.0.2.10"


def test_scapy_built_offer_and_ack_bind_the_client() -> None:
    from scapy.all import BOOTP, DHCP

    def server_reply(to: DhcpMessage, kind: str) -> bytes:
        pkt = BOOTP(op=2, xid=to.xid, chaddr=to.chaddr, yiaddr="192.0.2.10", flags=to.flags) / DHCP(
            options=[
                ("message-type", kind),
                ("server_id", "192.0.2.1"),
                ("lease_time", 600),
                ("renewal_time", 200),
                ("rebinding_time", 500),
                ("subnet_mask", "255.255.255.0"),
                ("router", "192.0.2.1"),
                ("name_server", "192.0.2.53", "192.0.2.54"),
                ("domain", b"example.org"),
                ("interface-mtu", 1400),
                "end",
            ]
        )
        return bytes(pkt)

    c = client()
    d = only_send(c.start(0.0)).message
    r = only_send(c.receive(server_reply(d, "offer"), 1.0)).message
    [configure] = c.receive(server_reply(r, "ack"), 1.5)
    lease = configure.lease
    assert (lease.address, lease.prefixlen, lease.mtu, lease.domain) == (ADDR, 24, 1400, "example.org")
    assert lease.dns == (bytes([192, 0, 2, 53]), bytes([192, 0, 2, 54])) and lease.routers == (SERVER,)
    assert (lease.t1, lease.t2, lease.expires) == (201.0, 501.0, 601.0)


#### Hypothesis: random replies and delays


def _fuzz_reply(c: DhcpClient, last: DhcpMessage | None, draw: st.DrawFn) -> DhcpMessage | bytes:
    """Garbage, or a reply to ``last`` that is mostly right (so the client
    gets bound, renews and rebinds) with a fault now and then."""

    def mostly(good: object, *bad: object) -> object:
        return good if draw(st.integers(0, 5)) else draw(st.sampled_from(bad))

    if last is None or draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=400))
    expected = MessageType.OFFER if c.state is ClientState.SELECTING else MessageType.ACK
    kind = draw(st.sampled_from([expected] * 4 + [MessageType.NAK, draw(st.sampled_from(MessageType))]))
    options: list[tuple[int, bytes]] = []
    if mostly(True, False):
        lease = draw(st.sampled_from([0, 1, 59, 600, 3600, INFINITE_LEASE]))
        options.append((Option.LEASE_TIME, encode_u32(lease)))
    for code in (Option.RENEWAL_TIME, Option.REBINDING_TIME):
        if draw(st.integers(0, 3)) == 0:
            options.append((code, encode_u32(draw(st.integers(0, 0xFFFFFFFF)))))
    if draw(st.integers(0, 3)) == 0:
        code = draw(st.sampled_from([Option.SUBNET_MASK, Option.ROUTER, Option.MTU, Option.DOMAIN]))
        options.append((code, draw(st.binary(max_size=9))))
    msg = reply(
        last,
        kind,  # type: ignore[arg-type]
        *options,
        yiaddr=mostly(ADDR, ADDR_2, ZERO, BROADCAST),  # type: ignore[arg-type]
        server=mostly(SERVER, SERVER_2, None, b"\x01\x02"),  # type: ignore[arg-type]
        xid=mostly(last.xid, 0, last.xid ^ 1),
        chaddr=mostly(MAC, OTHER_MAC, b""),
    )
    if draw(st.booleans()):
        data = bytearray(msg.emit())
        if draw(st.booleans()):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
        return bytes(data)
    return msg


STEPS = ["advance"] * 3 + ["to_deadline"] * 4 + ["reply"] * 6 + ["decline", "release"]


@settings(max_examples=200, deadline=None)
@given(st.data(), st.integers(0, 2**32), st.booleans())
def test_random_replies_and_delays_keep_the_invariants(data: st.DataObject, seed: int, reboot: bool) -> None:
    c = client(seed, requested=ADDR if reboot else None)
    now = 0.0
    configured: DhcpLease | None = None
    last: DhcpMessage | None = None

    def check(actions: list) -> None:
        nonlocal configured, last
        for action in actions:
            if isinstance(action, Configure):
                assert configured is None or configured.address == action.lease.address
                configured = action.lease
            elif isinstance(action, Unconfigure):
                assert action.lease == configured
                configured = None
            else:
                assert isinstance(action, Send)
                m = action.message
                assert DhcpMessage.parse(m.emit()) == m
                assert m.op == BOOTREQUEST and m.chaddr == MAC
                assert action.dst in (BROADCAST, SERVER, SERVER_2)
                last = m
        assert isinstance(c.state, ClientState)
        assert c.lease == configured
        holding = c.state in (ClientState.BOUND, ClientState.RENEWING, ClientState.REBINDING)
        assert (c.lease is not None) == holding
        event(c.state.name)

    check(c.start(now))
    for _ in range(data.draw(st.integers(1, 50))):
        step = data.draw(st.sampled_from(STEPS))
        if step == "to_deadline" and c.next_deadline() - now < 1e5:  # the glue's timer fires
            now = max(now, c.next_deadline())
            check(c.timeout(now))
            assert c.next_deadline() > now
        elif step == "advance":
            now += data.draw(st.sampled_from([0.0, 0.5, 3.0, 5.0, 65.0, 1000.0]))
            if now >= c.next_deadline():
                check(c.timeout(now))
                assert c.next_deadline() > now
        elif step == "reply":
            check(c.receive(_fuzz_reply(c, last, data.draw), now))
        elif step == "decline" and c.lease is not None:
            check(c.decline(now))
        elif step == "release":
            check(c.release(now))
            check(c.start(now))
        assert c.next_deadline() != math.inf
        assert sum(c.drops.values()) == c.statistics().dropped


#### Against the server of protocols/dhcp_server.py (when it is there)


def test_the_real_exchange_with_dhcp_server() -> None:
    import ipaddress

    server_module = pytest.importorskip("trionet.protocols.dhcp_server")
    pool = server_module.DhcpPool(
        interface="eth0",
        server_id=SERVER,
        network=ipaddress.IPv4Network("192.0.2.0/24"),
        first=bytes([192, 0, 2, 100]),
        last=bytes([192, 0, 2, 199]),
        routers=(SERVER,),
        dns=(SERVER_2,),
        domain="example.org",
        lease_time=600,
        mtu=1400,
    )
    server = server_module.DhcpServer([pool])
    c = client()
    configured: list[DhcpLease] = []

    def run(actions: list, now: float) -> None:
        """Carry the client's messages to the server and its replies back,
        until nothing more is sent."""
        while actions:
            action = actions.pop(0)
            if isinstance(action, Configure):
                configured.append(action.lease)
            elif isinstance(action, Send):
                answer = server.handle(action.message.emit(), now, "eth0")
                if answer is not None:
                    actions += c.receive(answer.message.emit(), now)

    run(c.start(0.0), 0.0)
    assert c.state is ClientState.BOUND and len(configured) == 1
    lease = configured[0]
    assert bytes([192, 0, 2, 100]) <= lease.address <= bytes([192, 0, 2, 199])
    assert (lease.prefixlen, lease.routers, lease.dns) == (24, (SERVER,), (SERVER_2,))
    assert (lease.domain, lease.mtu) == ("example.org", 1400)
    assert (lease.server_id, lease.lease_time, lease.t1, lease.expires) == (SERVER, 600, 300.0, 600.0)
    run(c.timeout(lease.t1), lease.t1)  # renewed, unicast
    assert c.state is ClientState.BOUND and len(configured) == 2
    assert configured[1].address == lease.address and configured[1].expires == lease.t1 + 600
    run(c.release(400.0), 400.0)
    assert not c.started
    stats = server.statistics()
    assert (stats.offers, stats.acks, stats.releases) == (1, 2, 1)
    assert not c.drops
