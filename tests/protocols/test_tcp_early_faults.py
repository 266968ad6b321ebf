"""The first segments of a connection lost, duplicated and reordered, in both directions.

Two machines joined by a scripted link (a :class:`tcp_pair.Pair` whose
first ten segments each way meet a fate Hypothesis chooses: dropped,
delivered late by up to four seconds, or delivered twice; every later
segment crosses in 10 ms) run a short exchange, the server speaking first
(SMTP, SSH, FTP banners) or the client, and close. Whatever the fates, the
connection opens, every byte arrives in order and both ends close cleanly.

The handshake is where a lost segment can leave no timer running to repair
it: a client whose final ACK is lost is ESTABLISHED and has nothing to
send, and only the server's retransmitted SYN-ACK, answered, recovers
(issue 13). Both ends may also connect at once (simultaneous open), where
each SYN-ACK repeats a SYN the other end already knows.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trionet.protocols.tcp import TcpFlags, TcpHeader
from trionet.protocols.tcp_connection import TcpConfig, TcpEvent, TcpState

from tcp_pair import ADDR_A, ADDR_B, Pair

#: What happens to one segment: the extra delays (beyond the link's 10 ms)
#: of the copies delivered. () is a loss, two entries a duplicate; delays of
#: a few milliseconds reorder neighbours, longer ones deliver the segment
#: after its retransmission (or after the connection moved on).
Fate = tuple[float, ...]
FAULTY = 10  # segments each way whose fate is scripted
DELAYS = (0.0, 0.004, 0.03, 0.7, 1.5, 4.0)
MSL = 60.0

SYN, ACK = TcpFlags.SYN, TcpFlags.ACK

DELIVER: Fate = (0.0,)
LOSE: Fate = ()

BANNER = bytes(range(256)) * 5  # 1280 bytes: three segments of 500
REQUEST = b"HELO trionet\r\n" * 50  # 700
RESPONSE = bytes(reversed(range(256))) * 9  # 2304


class ScriptedPair(Pair):
    """A :class:`Pair` whose first segments from each side meet the given fates."""

    def __init__(self, fates: dict[str, Sequence[Fate]], *args: object, **kwargs: object) -> None:
        self.fates = {name: list(f) for name, f in fates.items()}
        self.applied: dict[str, list[tuple[int, Fate]]] = {"a": [], "b": []}
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def transmit(self, name: str, header: TcpHeader, payload: bytes) -> None:
        fates = self.fates[name]
        if not fates:
            super().transmit(name, header, payload)
            return
        fate = fates.pop(0)
        self.applied[name].append((int(header.flags), fate))
        src, dst = (ADDR_A, ADDR_B) if name == "a" else (ADDR_B, ADDR_A)
        wire = header.emit(payload, src, dst)
        self.sent_log.append((self.now, name, header, len(payload)))
        for extra in fate:
            self._push(self.now + self.delay + extra, "b" if name == "a" else "a", wire)


@attrs.define
class App:
    """One side's application: says its lines in turn, then closes (half-closes).

    Attributes:
        sends: (bytes to have received first, what to send then), in order.
        close_at: bytes to have received before closing once everything is
            sent; None: wait for the peer's EOF instead.
    """

    sends: list[tuple[int, bytes]]
    close_at: int | None = None
    closed: bool = False


def exchange(pair: Pair, apps: dict[str, App]) -> None:
    """Run ``apps`` over ``pair`` until both machines are CLOSED (or time runs out)."""

    def drive() -> bool:
        for name, app in apps.items():
            conn = pair.conn(name)
            # Like accept() and connect() returning: nothing is sent before CONNECTED.
            if conn is None or TcpEvent.CONNECTED not in pair.events[name]:
                continue
            got = len(pair.received[name])
            while app.sends and got >= app.sends[0][0]:
                pair.to_send[name] += app.sends.pop(0)[1]
            eof = TcpEvent.EOF in pair.events[name]
            if not app.sends and not app.closed and (eof if app.close_at is None else got >= app.close_at):
                app.closed = True
                pair.close_when_sent[name] = True
        return pair.b is not None and pair.a.state is pair.b.state is TcpState.CLOSED

    pair.run(until=drive, max_time=3000)


def server_first() -> tuple[dict[str, App], bytes, bytes]:
    """A banner, a request, a response; the server closes (SMTP's QUIT, shortened)."""
    apps = {
        "b": App(sends=[(0, BANNER), (len(REQUEST), RESPONSE)], close_at=len(REQUEST)),
        "a": App(sends=[(len(BANNER), REQUEST)]),
    }
    return apps, REQUEST, BANNER + RESPONSE


def client_first() -> tuple[dict[str, App], bytes, bytes]:
    """A request and a half-close, then the response (HTTP/1.0 style)."""
    apps = {
        "a": App(sends=[(0, REQUEST)], close_at=0),
        "b": App(sends=[(len(REQUEST), RESPONSE)]),
    }
    return apps, REQUEST, RESPONSE


EXCHANGES = {"server_first": server_first, "client_first": client_first}

fate = st.one_of(
    st.just(DELIVER),
    st.just(LOSE),
    st.tuples(st.sampled_from(DELAYS)),
    st.tuples(st.sampled_from(DELAYS), st.sampled_from(DELAYS)),
)
fates = st.lists(fate, min_size=FAULTY, max_size=FAULTY)
configs = st.builds(
    lambda rfc1323, sack, delack: TcpConfig(
        mss=500,
        window_scaling=rfc1323,
        timestamps=rfc1323,
        sack=sack,
        delayed_ack=delack,
        # TIME_WAIT (2 MSL) outlasts the longest retransmission interval
        # (max_rto, 60 s), or a peer whose FINs keep being lost may find
        # us gone and be reset (legitimately, but not what this tests).
        msl=MSL,
        # Ten SYNs (or SYN-ACKs) in a row may be lost: one more gets through.
        max_syn_retries=FAULTY + 2,
    ),
    st.booleans(),
    st.booleans(),
    st.sampled_from([0.0, 0.2]),
)

#: The faults of issue 13: the client's second segment, its ACK of the
#: SYN-ACK, lost (so the server must learn of it from the ACK answering its
#: retransmitted SYN-ACK); and with the server's second segment, that first
#: retransmission, lost too.
ALL_DELIVERED = [DELIVER] * FAULTY
FINAL_ACK_LOST = [DELIVER, LOSE] + [DELIVER] * (FAULTY - 2)
SYN_ACK_RETRANSMISSION_LOST = [DELIVER, LOSE] + [DELIVER] * (FAULTY - 2)
PLAIN = TcpConfig(msl=MSL)


def run_exchange(
    kind: str, fates_a: list[Fate], fates_b: list[Fate], config: TcpConfig, *, simultaneous: bool = False
) -> ScriptedPair:
    apps, to_b, to_a = EXCHANGES[kind]()
    pair = ScriptedPair({"a": fates_a, "b": fates_b}, config, config, simultaneous=simultaneous)
    exchange(pair, apps)
    where = f"fates applied {pair.applied}, now {pair.now}"
    assert pair.b is not None, where
    assert TcpEvent.CONNECTED in pair.events["a"] and TcpEvent.CONNECTED in pair.events["b"], where
    assert bytes(pair.received["b"]) == to_b, where
    assert bytes(pair.received["a"]) == to_a, where
    assert pair.a.state is pair.b.state is TcpState.CLOSED, where
    assert pair.a.error is None and pair.b.error is None, where
    return pair


@settings(max_examples=300, derandomize=True)
@given(
    kind=st.sampled_from(sorted(EXCHANGES)),
    fates_a=fates,
    fates_b=fates,
    config=configs,
    simultaneous=st.booleans(),
)
@example(kind="server_first", fates_a=FINAL_ACK_LOST, fates_b=ALL_DELIVERED, config=PLAIN, simultaneous=False)
@example(kind="client_first", fates_a=FINAL_ACK_LOST, fates_b=ALL_DELIVERED, config=PLAIN, simultaneous=False)
@example(
    kind="server_first",
    fates_a=FINAL_ACK_LOST,
    fates_b=SYN_ACK_RETRANSMISSION_LOST,
    config=PLAIN,
    simultaneous=False,
)
def test_a_connection_completes_whatever_happens_to_its_first_segments(
    kind: str, fates_a: list[Fate], fates_b: list[Fate], config: TcpConfig, simultaneous: bool
) -> None:
    # simultaneous: both ends connect (crossed SYNs, then crossed SYN-ACKs,
    # each a duplicate of the SYN the other already knows).
    run_exchange(kind, fates_a, fates_b, config, simultaneous=simultaneous)


def test_the_lost_final_ack_is_recovered_by_acking_the_syn_ack_sent_again() -> None:
    pair = run_exchange("server_first", FINAL_ACK_LOST, ALL_DELIVERED, PLAIN)
    sent = [(round(t, 2), name, h.flags) for t, name, h, _ in pair.sent_log[:5]]
    assert sent == [
        (0.0, "a", SYN),
        (0.01, "b", SYN | ACK),
        (0.02, "a", ACK),  # lost
        (1.01, "b", SYN | ACK),  # the server's retransmission timer (1 s)...
        (1.02, "a", ACK),  # ...and the client's answer, which establishes it
    ]
    assert pair.a.statistics().oow_acks_suppressed == 0
