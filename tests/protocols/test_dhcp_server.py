"""The DHCP server: DORA, renew, rebind, release, decline, INIT-REBOOT,
static bindings, exhaustion, relays, reply destinations, options (read back
with scapy too), random event sequences against a model of the ACKs, and a
DISCOVER flood."""

from __future__ import annotations

import ipaddress
import random
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP

from trionet.protocols.dhcp import (
    BOOTREPLY,
    BOOTREQUEST,
    FLAG_BROADCAST,
    DhcpMessage,
    MessageType,
    Option,
    addresses,
    decode_u32,
    text,
    u32,
)
from trionet.protocols.dhcp_server import DhcpPool, DhcpServer, DhcpServerStatistics, Lease, Reply


def ip(s: str) -> bytes:
    return ipaddress.IPv4Address(s).packed


MAC_A = bytes.fromhex("02000000000a")
MAC_B = bytes.fromhex("02000000000b")
MAC_C = bytes.fromhex("02000000000c")
MAC_S = bytes.fromhex("0200000000ff")  # has a static binding
SERVER = ip("10.0.0.1")
OTHER_SERVER = ip("10.0.0.2")
BROADCAST = ip("255.255.255.255")
NET = ipaddress.IPv4Network("10.0.0.0/24")


def make_pool(**kwargs: Any) -> DhcpPool:
    fields: dict[str, Any] = dict(
        interface="em0",
        server_id=SERVER,
        network=NET,
        first=ip("10.0.0.100"),
        last=ip("10.0.0.102"),
        routers=(SERVER,),
        dns=(ip("10.0.0.53"), ip("9.9.9.9")),
        domain="example.org",
        lease_time=3600,
        mtu=1400,
        static={MAC_S: ip("10.0.0.200")},
    )
    fields.update(kwargs)
    return DhcpPool(**fields)


RELAYED = DhcpPool(
    interface="relay:192.168.7",
    server_id=SERVER,
    network=ipaddress.IPv4Network("192.168.7.0/24"),
    first=ip("192.168.7.10"),
    last=ip("192.168.7.19"),
    routers=(ip("192.168.7.1"),),
)


def request(
    mtype: MessageType | None,
    mac: bytes = MAC_A,
    *,
    xid: int = 7,
    requested: bytes | None = None,
    server_id: bytes | None = None,
    options: tuple[tuple[int, bytes], ...] = (),
    **fields: Any,
) -> bytes:
    """A client message, emitted."""
    opts: list[tuple[int, bytes]] = []
    if mtype is not None:
        opts.append((Option.MESSAGE_TYPE, bytes((mtype,))))
    if requested is not None:
        opts.append((Option.REQUESTED_IP, requested))
    if server_id is not None:
        opts.append((Option.SERVER_ID, server_id))
    opts += options
    return DhcpMessage(op=fields.pop("op", BOOTREQUEST), xid=xid, chaddr=mac, options=tuple(opts), **fields).emit()


class Harness:
    """A server and a clock."""

    def __init__(self, *pools: DhcpPool, **kwargs: Any) -> None:
        self.server = DhcpServer(pools or (make_pool(),), **kwargs)
        self.now = 1000.0

    def send(self, data: bytes, interface: str = "em0") -> Reply | None:
        return self.server.handle(data, self.now, interface)

    def dora(self, mac: bytes = MAC_A, **kwargs: Any) -> Reply:
        offer = self.send(request(MessageType.DISCOVER, mac, **kwargs))
        assert offer is not None and offer.message.message_type is MessageType.OFFER
        kwargs.pop("requested", None)
        ack = self.send(
            request(MessageType.REQUEST, mac, requested=offer.message.yiaddr, server_id=SERVER, **kwargs)
        )
        assert ack is not None and ack.message.message_type is MessageType.ACK
        assert ack.message.yiaddr == offer.message.yiaddr
        return ack

    def lease(self, addr: bytes) -> Lease:
        (row,) = [row for row in self.server.leases(self.now) if row.address == addr]
        return row


def mtype(reply: Reply | None) -> MessageType | None:
    return None if reply is None else reply.message.message_type


#### The full exchange


def test_discover_offer_request_ack() -> None:
    h = Harness()
    offer = h.send(request(MessageType.DISCOVER, options=((Option.HOSTNAME, b"alice"),), xid=0xABCD))
    assert offer is not None
    m = offer.message
    assert m.op == BOOTREPLY and m.xid == 0xABCD and m.chaddr == MAC_A
    assert m.yiaddr == ip("10.0.0.100")  # lowest never-used address
    assert m.message_type is MessageType.OFFER
    assert (offer.dst, offer.port, offer.lladdr) == (m.yiaddr, 68, MAC_A)
    assert h.lease(m.yiaddr).state == "offered"
    assert h.lease(m.yiaddr).expires == h.now + 60.0

    h.now += 1
    ack = h.send(request(MessageType.REQUEST, requested=m.yiaddr, server_id=SERVER, xid=0xABCD))
    assert mtype(ack) is MessageType.ACK and ack is not None
    assert ack.message.yiaddr == m.yiaddr and (ack.dst, ack.lladdr) == (m.yiaddr, MAC_A)
    assert h.server.leases(h.now) == [
        Lease(m.yiaddr, MAC_A, None, "alice", "bound", h.now + 3600, "em0")
    ]
    assert h.server.statistics() == DhcpServerStatistics(offers=1, acks=1)
    assert h.server.next_deadline() == h.now + 3600


def test_offer_and_ack_options() -> None:
    h = Harness()
    ack = h.dora()
    for reply in (h.send(request(MessageType.DISCOVER)), ack):
        assert reply is not None
        m = reply.message
        assert m.option(Option.SERVER_ID) == SERVER
        assert u32(m, Option.LEASE_TIME) == 3600
        assert u32(m, Option.RENEWAL_TIME) == 1800
        assert u32(m, Option.REBINDING_TIME) == 3150
        assert m.option(Option.SUBNET_MASK) == ip("255.255.255.0")
        assert addresses(m, Option.ROUTER) == [SERVER]
        assert addresses(m, Option.DNS) == [ip("10.0.0.53"), ip("9.9.9.9")]
        assert text(m, Option.DOMAIN) == "example.org"
        assert m.option(Option.MTU) == b"\x05\x78"
        assert m.option(Option.TFTP_SERVER) is None and m.option(Option.BOOTFILE) is None
        assert m.option(Option.CLIENT_ID) is None and m.option(Option.RELAY_AGENT) is None
        assert m.siaddr == bytes(4) and m.file == b""


def test_options_read_with_scapy() -> None:
    h = Harness()
    offer = h.send(request(MessageType.DISCOVER))
    assert offer is not None
    pkt = BOOTP(offer.message.emit())
    assert pkt.op == 2 and pkt.yiaddr == "10.0.0.100" and pkt.chaddr[:6] == MAC_A
    options = {o[0]: o[1:] for o in pkt[DHCP].options if isinstance(o, tuple)}
    assert options == {
        "message-type": (2,),
        "server_id": ("10.0.0.1",),
        "lease_time": (3600,),
        "renewal_time": (1800,),
        "rebinding_time": (3150,),
        "subnet_mask": ("255.255.255.0",),
        "router": ("10.0.0.1",),
        "name_server": ("10.0.0.53", "9.9.9.9"),
        "domain": (b"example.org",),
        "interface-mtu": (1400,),
    }


def test_boot_options_when_configured_and_asked_for() -> None:
    h = Harness(make_pool(next_server=ip("10.0.0.9"), boot_file="pxelinux.0"))
    plain = h.send(request(MessageType.DISCOVER))
    assert plain is not None
    assert plain.message.siaddr == ip("10.0.0.9") and plain.message.file == b"pxelinux.0"
    assert plain.message.option(Option.TFTP_SERVER) is None
    asked = h.send(request(MessageType.DISCOVER, options=((Option.PARAMETER_LIST, bytes([1, 3, 66, 67])),)))
    assert asked is not None
    assert text(asked.message, Option.TFTP_SERVER) == "10.0.0.9"
    assert text(asked.message, Option.BOOTFILE) == "pxelinux.0"
    pkt = BOOTP(asked.message.emit())
    assert pkt.siaddr == "10.0.0.9" and pkt.file.rstrip(b"\0") == b"pxelinux.0"


def test_client_identifier_is_the_identity_and_is_echoed() -> None:
    h = Harness()
    one = h.send(request(MessageType.DISCOVER, options=((Option.CLIENT_ID, b"\x01one"),)))
    two = h.send(request(MessageType.DISCOVER, options=((Option.CLIENT_ID, b"\x01two"),)))
    assert one is not None and two is not None
    assert one.message.yiaddr != two.message.yiaddr  # same MAC, two clients
    assert one.message.option(Option.CLIENT_ID) == b"\x01one"
    again = h.send(request(MessageType.DISCOVER, options=((Option.CLIENT_ID, b"\x01one"),)))
    assert again is not None and again.message.yiaddr == one.message.yiaddr
    assert h.lease(one.message.yiaddr).client_id == b"\x01one"


#### Renew, rebind, release, decline


def test_renew_and_rebind_extend_the_lease() -> None:
    h = Harness()
    addr = h.dora().message.yiaddr
    h.now += 1800  # T1: RENEWING, unicast to us
    ack = h.send(request(MessageType.REQUEST, ciaddr=addr, xid=8))
    assert mtype(ack) is MessageType.ACK and ack is not None
    assert (ack.dst, ack.port, ack.lladdr) == (addr, 68, None)
    assert ack.message.ciaddr == addr and ack.message.yiaddr == addr
    assert h.lease(addr).expires == h.now + 3600
    h.now += 3200  # past T2 of the new lease: REBINDING, broadcast
    ack = h.send(request(MessageType.REQUEST, ciaddr=addr, xid=9, flags=FLAG_BROADCAST))
    assert mtype(ack) is MessageType.ACK and ack is not None and ack.dst == addr
    assert h.lease(addr).state == "bound" and h.lease(addr).expires == h.now + 3600


def test_renew_of_someone_elses_address_is_naked_and_unknown_is_silent() -> None:
    h = Harness()
    addr = h.dora(MAC_A).message.yiaddr
    nak = h.send(request(MessageType.REQUEST, MAC_B, ciaddr=addr))
    assert mtype(nak) is MessageType.NAK and nak is not None
    assert (nak.dst, nak.port, nak.lladdr) == (BROADCAST, 68, None)
    assert nak.message.yiaddr == bytes(4) and nak.message.option(Option.LEASE_TIME) is None
    assert nak.message.option(Option.SERVER_ID) == SERVER
    assert mtype(h.send(request(MessageType.REQUEST, MAC_B, ciaddr=ip("192.168.1.5")))) is MessageType.NAK
    assert h.send(request(MessageType.REQUEST, MAC_B, ciaddr=ip("10.0.0.77"))) is None
    assert h.server.drops["unknown_client"] == 1
    assert h.lease(addr).state == "bound" and h.lease(addr).chaddr == MAC_A


def test_a_lease_expires() -> None:
    h = Harness()
    addr = h.dora().message.yiaddr
    h.now += 3600
    assert h.lease(addr).state == "expired"
    assert h.server.next_deadline() is None
    # The address is still this client's previous one.
    offer = h.send(request(MessageType.DISCOVER))
    assert offer is not None and offer.message.yiaddr == addr


def test_release() -> None:
    h = Harness(make_pool(last=ip("10.0.0.100")))  # one address
    addr = h.dora(MAC_A).message.yiaddr
    assert h.send(request(MessageType.RELEASE, MAC_B, ciaddr=addr, server_id=SERVER)) is None
    assert h.server.drops["unknown_lease"] == 1 and h.lease(addr).state == "bound"
    assert h.send(request(MessageType.RELEASE, MAC_A, ciaddr=addr, server_id=OTHER_SERVER)) is None
    assert h.server.drops["other_server"] == 1 and h.lease(addr).state == "bound"
    assert h.send(request(MessageType.RELEASE, MAC_A, ciaddr=addr, server_id=SERVER)) is None
    assert h.lease(addr).state == "released" and h.server.statistics().releases == 1
    # Kept as A's previous address, until B needs it.
    offer = h.send(request(MessageType.DISCOVER, MAC_A))
    assert offer is not None and offer.message.yiaddr == addr
    h.now += 61
    assert h.dora(MAC_B).message.yiaddr == addr
    assert h.send(request(MessageType.DISCOVER, MAC_A)) is None
    assert h.server.drops["pool_exhausted"] == 1


def test_decline() -> None:
    h = Harness(decline_hold=600.0)
    addr = h.dora(MAC_A).message.yiaddr
    assert h.send(request(MessageType.DECLINE, MAC_B, requested=addr, server_id=SERVER)) is None
    assert h.server.drops["unknown_lease"] == 1
    assert h.send(request(MessageType.DECLINE, MAC_A, requested=addr, server_id=SERVER)) is None
    assert h.lease(addr).state == "declined" and h.server.statistics().declines == 1
    assert h.lease(addr).expires == h.now + 600
    other = h.send(request(MessageType.DISCOVER, MAC_A, requested=addr))
    assert other is not None and other.message.yiaddr not in (addr, bytes(4))
    h.now += 600
    assert h.lease(addr).state == "expired"
    assert h.dora(MAC_A).message.yiaddr == other.message.yiaddr  # its previous address
    assert h.dora(MAC_C).message.yiaddr == ip("10.0.0.102")  # never-used addresses come first
    assert h.dora(MAC_B).message.yiaddr == addr  # the declined one is back


#### SELECTING and INIT-REBOOT


def test_selecting_another_server_forgets_our_offer() -> None:
    h = Harness(make_pool(last=ip("10.0.0.100")))
    offer = h.send(request(MessageType.DISCOVER, MAC_A))
    assert offer is not None
    addr = offer.message.yiaddr
    assert h.send(request(MessageType.DISCOVER, MAC_B)) is None  # held for A
    assert h.send(request(MessageType.REQUEST, MAC_A, requested=ip("10.0.0.150"), server_id=OTHER_SERVER)) is None
    assert h.server.drops["other_server"] == 1
    assert h.lease(addr).state == "expired"
    assert h.dora(MAC_B).message.yiaddr == addr


def test_selecting_an_address_not_offered_is_naked() -> None:
    h = Harness()
    offer = h.send(request(MessageType.DISCOVER, MAC_A))
    assert offer is not None
    nak = h.send(request(MessageType.REQUEST, MAC_A, requested=ip("10.0.0.101"), server_id=SERVER))
    assert mtype(nak) is MessageType.NAK
    nak = h.send(request(MessageType.REQUEST, MAC_B, requested=offer.message.yiaddr, server_id=SERVER))
    assert mtype(nak) is MessageType.NAK
    assert h.server.statistics().naks == 2


def test_selecting_after_the_offer_lapsed_is_acked_if_still_free() -> None:
    h = Harness()
    offer = h.send(request(MessageType.DISCOVER))
    assert offer is not None
    h.now += 100
    assert h.lease(offer.message.yiaddr).state == "expired"
    ack = h.send(request(MessageType.REQUEST, requested=offer.message.yiaddr, server_id=SERVER))
    assert mtype(ack) is MessageType.ACK


def test_init_reboot() -> None:
    h = Harness()
    addr = h.dora(MAC_A).message.yiaddr
    h.now += 100
    ack = h.send(request(MessageType.REQUEST, MAC_A, requested=addr))
    assert mtype(ack) is MessageType.ACK and ack is not None
    assert (ack.dst, ack.lladdr) == (addr, MAC_A)
    assert h.lease(addr).expires == h.now + 3600
    # Off the network: NAK. Bound to another: NAK. Unknown: silence.
    assert mtype(h.send(request(MessageType.REQUEST, MAC_A, requested=ip("172.16.0.9")))) is MessageType.NAK
    assert mtype(h.send(request(MessageType.REQUEST, MAC_B, requested=addr))) is MessageType.NAK
    assert h.send(request(MessageType.REQUEST, MAC_B, requested=ip("10.0.0.101"))) is None
    assert h.server.drops["unknown_client"] == 1
    assert h.send(request(MessageType.REQUEST, MAC_B)) is None
    assert h.server.drops["no_requested_ip"] == 1
    assert h.lease(addr).chaddr == MAC_A


#### Static bindings, exhaustion


def test_static_binding() -> None:
    h = Harness(make_pool(static={MAC_S: ip("10.0.0.200"), MAC_C: ip("10.0.0.101")}))
    assert h.dora(MAC_S).message.yiaddr == ip("10.0.0.200")  # outside the range
    # INIT-REBOOT of a static client the server has no lease for: ACK.
    h2 = Harness(make_pool())
    assert mtype(h2.send(request(MessageType.REQUEST, MAC_S, requested=ip("10.0.0.200")))) is MessageType.ACK
    assert mtype(h2.send(request(MessageType.REQUEST, MAC_S, requested=ip("10.0.0.100")))) is MessageType.NAK
    # 10.0.0.101 is C's even before C asks: A and B get .100 and .102, then the pool is empty.
    got = {h.dora(mac, requested=ip("10.0.0.101")).message.yiaddr for mac in (MAC_A, MAC_B)}
    assert got == {ip("10.0.0.100"), ip("10.0.0.102")}
    assert h.send(request(MessageType.DISCOVER, bytes.fromhex("020000000099"))) is None
    assert h.dora(MAC_C).message.yiaddr == ip("10.0.0.101")


def test_requested_address_in_discover() -> None:
    h = Harness()
    offer = h.send(request(MessageType.DISCOVER, MAC_A, requested=ip("10.0.0.102")))
    assert offer is not None and offer.message.yiaddr == ip("10.0.0.102")
    taken = h.send(request(MessageType.DISCOVER, MAC_B, requested=ip("10.0.0.102")))
    assert taken is not None and taken.message.yiaddr == ip("10.0.0.100")
    for bad in (ip("10.0.0.50"), ip("10.0.0.1"), ip("8.8.8.8")):
        other = h.send(request(MessageType.DISCOVER, MAC_C, requested=bad))
        assert other is not None and other.message.yiaddr == ip("10.0.0.101")


def test_exhaustion_and_recovery_after_offers_lapse() -> None:
    h = Harness()
    macs = [bytes([2, 0, 0, 0, 1, i]) for i in range(4)]
    offered = []
    for i, mac in enumerate(macs[:3]):
        h.now += 1
        reply = h.send(request(MessageType.DISCOVER, mac))
        assert reply is not None
        offered.append(reply.message.yiaddr)
    assert offered == [ip("10.0.0.100"), ip("10.0.0.101"), ip("10.0.0.102")]
    assert h.send(request(MessageType.DISCOVER, macs[3])) is None
    assert h.server.drops["pool_exhausted"] == 1
    assert h.server.next_deadline() == 1001 + 60
    h.now = 1061.5  # only the first offer has lapsed
    reply = h.send(request(MessageType.DISCOVER, macs[3]))
    assert reply is not None and reply.message.yiaddr == ip("10.0.0.100")
    h.now = 1100  # the other two lapsed: the one free longest goes first
    reply = h.send(request(MessageType.DISCOVER, bytes.fromhex("020000000777")))
    assert reply is not None and reply.message.yiaddr == ip("10.0.0.101")


#### Relays and destinations


def test_relayed_request_uses_the_giaddr_pool_and_goes_back_to_the_relay() -> None:
    h = Harness(make_pool(), RELAYED)
    agent = ((Option.RELAY_AGENT, b"\x01\x04port"),)
    offer = h.send(request(MessageType.DISCOVER, giaddr=ip("192.168.7.1"), hops=1, options=agent), "em0")
    assert offer is not None
    m = offer.message
    assert m.yiaddr == ip("192.168.7.10") and m.giaddr == ip("192.168.7.1") and m.hops == 1
    assert (offer.dst, offer.port, offer.lladdr) == (ip("192.168.7.1"), 67, None)
    assert m.option(Option.RELAY_AGENT) == b"\x01\x04port"
    assert addresses(m, Option.ROUTER) == [ip("192.168.7.1")]
    assert h.lease(m.yiaddr).interface == "relay:192.168.7"
    nak = h.send(request(MessageType.REQUEST, requested=ip("10.0.0.100"), giaddr=ip("192.168.7.1")))
    assert mtype(nak) is MessageType.NAK and nak is not None
    assert (nak.dst, nak.port) == (ip("192.168.7.1"), 67) and nak.message.broadcast
    assert h.send(request(MessageType.DISCOVER, giaddr=ip("172.16.0.1"))) is None
    assert h.server.drops["no_pool"] == 1


@pytest.mark.parametrize(
    ("fields", "dst", "lladdr"),
    [
        ({}, "10.0.0.100", MAC_A),
        ({"flags": FLAG_BROADCAST}, "255.255.255.255", None),
        ({"ciaddr": ip("10.0.0.100")}, "10.0.0.100", None),
        ({"giaddr": ip("10.0.0.254")}, "10.0.0.254", None),
    ],
)
def test_reply_destinations(fields: dict[str, Any], dst: str, lladdr: bytes | None) -> None:
    h = Harness()
    h.dora()
    ack = h.send(request(MessageType.REQUEST, requested=ip("10.0.0.100"), **fields))
    assert mtype(ack) is MessageType.ACK and ack is not None
    assert (ack.dst, ack.lladdr) == (ip(dst), lladdr)
    assert ack.port == (67 if "giaddr" in fields else 68)


def test_inform() -> None:
    h = Harness()
    ack = h.send(request(MessageType.INFORM, ciaddr=ip("10.0.0.50")))
    assert mtype(ack) is MessageType.ACK and ack is not None
    m = ack.message
    assert (ack.dst, ack.port, ack.lladdr) == (ip("10.0.0.50"), 68, None)
    assert m.yiaddr == bytes(4) and m.ciaddr == ip("10.0.0.50")
    assert m.option(Option.LEASE_TIME) is None and m.option(Option.RENEWAL_TIME) is None
    assert addresses(m, Option.DNS) == [ip("10.0.0.53"), ip("9.9.9.9")]
    assert h.server.leases(h.now) == [] and h.server.statistics().informs == 1
    assert h.send(request(MessageType.INFORM)) is None and h.server.drops["no_ciaddr"] == 1


def test_what_is_ignored() -> None:
    h = Harness()
    assert h.send(request(MessageType.DISCOVER, op=BOOTREPLY)) is None
    assert h.send(request(None)) is None  # plain BOOTP
    assert h.send(request(MessageType.DISCOVER, options=())[:240] + b"\x35\x01\x63\xff") is None
    assert h.send(request(MessageType.OFFER)) is None
    assert h.send(request(MessageType.DISCOVER), "em9") is None
    assert h.send(request(MessageType.DISCOVER, b"")) is None
    assert h.send(request(MessageType.DISCOVER, requested=b"\x01\x02")) is None
    assert h.send(b"\x01" * 100) is None
    assert h.send(bytes(300)) is None
    assert dict(h.server.drops) == {
        "not_request": 2,
        "bootp": 1,
        "unknown_type": 1,
        "no_pool": 1,
        "no_chaddr": 1,
        "bad_option": 1,
        "short_message": 1,
        "bad_op": 1,
    }
    assert h.server.statistics().dropped == 9
    assert h.server.leases(h.now) == []


def test_bad_configurations() -> None:
    with pytest.raises(ValueError, match="not inside"):
        DhcpServer([make_pool(first=ip("10.0.1.1"))])
    with pytest.raises(ValueError, match="above"):
        DhcpServer([make_pool(first=ip("10.0.0.9"), last=ip("10.0.0.8"))])
    with pytest.raises(ValueError, match="static"):
        DhcpServer([make_pool(static={MAC_A: ip("10.9.9.9")})])
    with pytest.raises(ValueError, match="two pools"):
        DhcpServer([make_pool(), attrs.evolve(RELAYED, interface="em0")])
    with pytest.raises(ValueError, match="overlap"):
        DhcpServer([make_pool(), make_pool(interface="em1")])
    with pytest.raises(ValueError, match="lease_time"):
        DhcpServer([make_pool(lease_time=0)])
    with pytest.raises(ValueError, match="4-byte"):
        DhcpServer([make_pool(server_id=b"\x01")])


#### Random event sequences against a model of the ACKs

CLIENTS = [MAC_S] + [bytes([2, 0, 0, 0, 0, n]) for n in range(10, 20)]  # many: some are always new
ADDRS = [ip(f"10.0.0.{n}") for n in (100, 101, 102, 103, 200, 1)] + [ip("172.16.0.1")]
POOL_SIZE = 3 + 1  # the dynamic range and one static address

actions = st.tuples(
    st.sampled_from(["dora", "dora", "discover", "select", "reboot", "renew", "release", "decline", "inform"]),
    st.sampled_from(CLIENTS),
    st.sampled_from(CLIENTS),
    st.sampled_from(ADDRS),
    st.sampled_from([SERVER, SERVER, SERVER, OTHER_SERVER]),
    st.integers(0, 3).map(bool),  # mostly the address the client was given
)
events = st.lists(
    st.one_of(
        actions,
        actions,
        actions,
        actions,
        st.tuples(st.just("advance"), st.one_of(st.floats(0, 40), st.floats(0, 4000))),
        st.tuples(st.just("garbage"), st.binary(max_size=300)),
    ),
    min_size=10,
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(events)
def test_random_event_sequences_keep_the_invariants(seq: list[Any]) -> None:
    pool = make_pool()
    h = Harness(pool, offer_hold=30.0, decline_hold=100.0)
    bound: dict[bytes, tuple[bytes, float]] = {}  # what our ACKs promised: address -> (MAC, until)
    given: dict[bytes, bytes] = {}  # MAC -> the last address offered or acked to it

    def check(reply: Reply | None, mac: bytes, inform: bool = False) -> Reply | None:
        if reply is None:
            return None
        m = reply.message
        assert m.chaddr == mac and m.op == BOOTREPLY
        holder = bound.get(m.yiaddr)
        free = holder is None or holder[0] == mac or holder[1] <= h.now
        if m.message_type is MessageType.OFFER:
            assert free, "offered an address bound to another client"
            given[mac] = m.yiaddr
        if m.message_type is MessageType.ACK and not inform:
            assert free, "bound to two clients"
            assert decode_u32(m.option(Option.LEASE_TIME) or b"") == 3600
            bound[m.yiaddr] = (mac, h.now + 3600)
            given[mac] = m.yiaddr
        if m.yiaddr != bytes(4):
            assert m.yiaddr in pool and (pool.in_range(m.yiaddr) or m.yiaddr == ip("10.0.0.200"))
        return reply

    for event in seq:
        kind = event[0]
        if kind == "advance":
            h.now += event[1]
            continue
        if kind == "garbage":
            h.send(event[1])  # anything, as long as it does not raise
            continue
        _, mac, other_mac, other, sid, own = event
        if other_mac != mac:  # often another client's address
            other = given.get(other_mac, other)
        addr = given.get(mac, other) if own else other
        if kind in ("discover", "dora"):
            offer = check(h.send(request(MessageType.DISCOVER, mac, requested=None if own else other)), mac)
            if offer is not None and kind == "dora":
                check(h.send(request(MessageType.REQUEST, mac, requested=offer.message.yiaddr, server_id=sid)), mac)
        elif kind == "select":
            check(h.send(request(MessageType.REQUEST, mac, requested=addr, server_id=sid)), mac)
        elif kind == "reboot":
            check(h.send(request(MessageType.REQUEST, mac, requested=addr)), mac)
        elif kind == "renew":
            check(h.send(request(MessageType.REQUEST, mac, ciaddr=addr)), mac)
        elif kind == "release":
            before = h.server.statistics().releases
            assert h.send(request(MessageType.RELEASE, mac, ciaddr=addr, server_id=sid)) is None
            if h.server.statistics().releases > before:
                holder = bound.pop(addr)
                # Ours, or another client's whose lease had run out before
                # the address came to us.
                assert holder[0] == mac or holder[1] <= h.now
        elif kind == "decline":
            before = h.server.statistics().declines
            assert h.send(request(MessageType.DECLINE, mac, requested=addr, server_id=sid)) is None
            if h.server.statistics().declines > before and addr in bound:
                holder = bound.pop(addr)
                assert holder[0] == mac or holder[1] <= h.now
        else:
            check(h.send(request(MessageType.INFORM, mac, ciaddr=addr)), mac, inform=True)
        rows = h.server.leases(h.now)
        assert len(rows) <= POOL_SIZE
        for row in rows:
            assert row.address in pool
            if row.state in ("offered", "bound"):
                assert row.expires > h.now
                assert pool.in_range(row.address) or pool.static.get(row.chaddr) == row.address
        deadline = h.server.next_deadline()
        assert deadline is None or deadline > h.now


def test_a_discover_flood_stays_within_the_bound() -> None:
    pool = make_pool(first=ip("10.0.0.10"), last=ip("10.0.0.209"), static={})  # 200 addresses
    server = DhcpServer([pool])
    rng = random.Random(7)
    now = 0.0
    offered = 0
    for _ in range(10_000):
        mac = bytes([2]) + rng.randbytes(5)
        if server.handle(request(MessageType.DISCOVER, mac, xid=rng.getrandbits(32)), now, "em0"):
            offered += 1
        now += 0.001
    assert offered == 200
    assert len(server.leases(now)) == offered
    assert server.drops["pool_exhausted"] == 10_000 - offered
    assert len(server._by_client) <= offered and len(server._heap) <= 2 * offered + 64
    # A minute later the offers lapse and real clients get addresses again.
    assert server.handle(request(MessageType.DISCOVER, MAC_A), now + 60, "em0") is not None
    assert len(server.leases(now + 60)) == offered


def test_lease_rows_carry_the_client_id_and_host_name() -> None:
    h = Harness()
    h.dora(MAC_A, options=((Option.CLIENT_ID, b"\x01a"), (Option.HOSTNAME, b"box\0")))
    (row,) = h.server.leases(h.now)
    assert row == Lease(ip("10.0.0.100"), MAC_A, b"\x01a", "box", "bound", h.now + 3600, "em0")
    assert "10.0.0.100" in repr(row) and "02:00:00:00:00:0a" in repr(row)


def test_discover_from_a_bound_client_keeps_it_bound() -> None:
    h = Harness()
    addr = h.dora().message.yiaddr
    offer = h.send(request(MessageType.DISCOVER))
    assert offer is not None and offer.message.yiaddr == addr
    assert h.lease(addr).state == "bound"
    assert mtype(h.send(request(MessageType.REQUEST, requested=addr, server_id=SERVER))) is MessageType.ACK


def test_server_message_types_from_a_client_are_dropped() -> None:
    h = Harness()
    for t in (MessageType.OFFER, MessageType.ACK, MessageType.NAK):
        assert h.send(request(t)) is None
    assert h.server.drops["not_request"] == 3
