"""``Switch``: a learning Ethernet bridge over any number of endpoints.

``switch.add_port(endpoint)`` makes the switch the endpoint's receiver; every
frame arriving on a port is handled at once, inside that receive call
(DragonFly's ``bridge_input`` / ``bridge_forward``, without spanning tree,
VLANs or filters).

Theory of operation
===================

For a frame arriving on port *p*:

1. ``rx`` of *p* counts it. A frame shorter than the 14-byte Ethernet header
   is dropped (``runts``).
2. A unicast source address is learned for *p*, stamped with
   :func:`trio.current_time`: a new address becomes an entry (``learned``);
   a known one is refreshed, and moved to *p* if it was on another port
   (``moved``). If the table holds ``max_entries``, expired entries are
   removed first (``aged``); if none has expired, the address is not learned
   (``table_full``) and the frame is still forwarded. A multicast source (an
   invalid frame) is not learned, and is forwarded all the same.
3. A broadcast or multicast destination, or a unicast one with no live entry,
   is flooded to every port but *p* (``flooded``, once per frame).
4. A unicast destination learned on another port is sent there
   (``forwarded``); one learned on *p* itself is dropped (``filtered``: the
   far side already has it).
5. Each transmission counts ``tx`` on the egress port, or ``tx_refused`` if
   that endpoint refused the frame (for example oversized for its MTU).

So ``sum(rx) == runts + flooded + forwarded + filtered`` over the ports,
as long as none was removed (a removed port takes its counters with it).

Aging is lazy: an entry older than ``aging`` seconds (since last refreshed)
is removed when a lookup meets it or when the table is full; no timer, no
task. The table is kept in refresh order, so removing expired entries scans
only those plus one.

**No spanning tree.** Forwarding is synchronous inside the receive callback,
and a loop of switches floods broadcasts forever (a broadcast storm), as
bridges without STP do. Over links with a delay the storm goes on in time
(and shows in these counters); over links without one it would go on
without time passing, so in-memory wires cut a frame after
:data:`~trionet.wires.MAX_INSTANT_HOPS` hops in one instant (counted in the
wire's ``loop_drops``, or the endpoint's ``tx_drops`` for
:func:`~trionet.wires.memory_pair`). Build trees.

Bounds: at most ``max_entries`` table entries; one frame causes at most one
transmission per port. Nothing awaits and nothing raises for a frame.
Cancellation: nothing to cancel (no tasks). Determinism: no randomness;
behaviour depends only on the frames, their order and
:func:`trio.current_time`.

DragonFly: ``sys/net/bridge/if_bridge.c`` (``bridge_input``,
``bridge_forward``, ``bridge_broadcast``, ``bridge_rtupdate``,
``bridge_rtage``).
"""

from __future__ import annotations

import math

import attrs
import trio

from ._endpoint import ETHER_HDR_LEN, WireEndpoint

__all__ = ["MacTableRow", "Switch", "SwitchPortStatistics", "SwitchStatistics"]


@attrs.frozen
class SwitchPortStatistics:
    """Counters of one switch port.

    Attributes:
        port: the port number.
        name: the endpoint's name.
        rx: frames that arrived on the port.
        tx: frames the port's endpoint accepted.
        tx_refused: frames the port's endpoint refused.
    """

    port: int
    name: str
    rx: int
    tx: int
    tx_refused: int


@attrs.frozen
class SwitchStatistics:
    """Counters of a :class:`Switch`.

    ``sum(p.rx for p in ports) == runts + flooded + forwarded + filtered``
    as long as no port was removed.

    Attributes:
        forwarded: frames sent to the one port their destination was learned on.
        flooded: frames sent to every other port (broadcast, multicast,
            unknown destination).
        filtered: frames dropped because the destination is on the ingress port.
        learned: addresses entered into the table.
        moved: known addresses seen on another port (entry moved).
        aged: entries removed because they expired.
        runts: frames shorter than the Ethernet header (dropped).
        table_full: source addresses not learned because the table was full.
        entries: entries in the table now (some may have expired unnoticed).
        ports: per-port counters, by port number.
    """

    forwarded: int
    flooded: int
    filtered: int
    learned: int
    moved: int
    aged: int
    runts: int
    table_full: int
    entries: int
    ports: tuple[SwitchPortStatistics, ...]


@attrs.frozen
class MacTableRow:
    """One live entry of :meth:`Switch.mac_table`.

    Attributes:
        mac: the address, ``"02:00:00:00:00:01"``.
        port: the port it was learned on.
        age: seconds since it was last seen.
    """

    mac: str
    port: int
    age: float


class _Port:
    # One port: its endpoint, its counters, and the receiver it installs.
    __slots__ = ("endpoint", "number", "rx", "switch", "tx", "tx_refused")

    def __init__(self, switch: Switch, number: int, endpoint: WireEndpoint) -> None:
        self.switch = switch
        self.number = number
        self.endpoint = endpoint
        self.rx = 0
        self.tx = 0
        self.tx_refused = 0

    def receive(self, frame: bytes) -> None:
        self.switch._input(self, frame)

    def transmit(self, frame: bytes) -> None:
        if self.endpoint.send(frame):
            self.tx += 1
        else:
            self.tx_refused += 1


class Switch:
    """A learning bridge; see the module docstring for the rules.

    Args:
        name: the switch's name.
        aging: seconds an address stays learned after it was last seen.
        max_entries: the table's size.

    Raises:
        ValueError: for an empty name, a non-positive or infinite aging time,
            or a non-positive table size.
    """

    def __init__(self, name: str, *, aging: float = 300.0, max_entries: int = 1024) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty str, not {name!r}")
        if isinstance(aging, bool) or not isinstance(aging, (int, float)) or not 0 < aging < math.inf:
            raise ValueError(f"aging must be a positive finite number of seconds, not {aging!r}")
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries must be a positive int, not {max_entries!r}")
        self.name = name
        self.aging = float(aging)
        self.max_entries = max_entries
        self._ports: dict[int, _Port] = {}
        self._port_list: tuple[_Port, ...] = ()
        self._next_port = 1
        # mac -> (port number, last seen); insertion order is refresh order.
        self._table: dict[bytes, tuple[int, float]] = {}
        self._forwarded = self._flooded = self._filtered = 0
        self._learned = self._moved = self._aged = self._runts = self._table_full = 0

    def __repr__(self) -> str:
        return f"<Switch {self.name!r} ports={len(self._ports)} entries={len(self._table)}>"

    ####################################################################
    # ports
    ####################################################################

    def add_port(self, endpoint: WireEndpoint) -> int:
        """Attach ``endpoint`` as a new port and become its receiver.

        Returns:
            The port number (1, 2, ...; never reused).

        Raises:
            ValueError: if the endpoint is already a port of this switch.
        """
        for port in self._port_list:
            if port.endpoint is endpoint:
                raise ValueError(f"{endpoint!r} is already port {port.number} of {self.name}")
        number = self._next_port
        self._next_port += 1
        port = _Port(self, number, endpoint)
        self._ports[number] = port
        self._port_list = tuple(self._ports.values())
        endpoint.set_receiver(port.receive)
        return number

    def remove_port(self, number: int) -> None:
        """Detach port ``number``: uninstall the receiver, forget its addresses.

        Raises:
            ValueError: if there is no such port.
        """
        port = self._ports.pop(number, None)
        if port is None:
            raise ValueError(f"{self.name} has no port {number!r}")
        self._port_list = tuple(self._ports.values())
        port.endpoint.set_receiver(None)
        table = self._table
        for mac in [mac for mac, (p, _) in table.items() if p == number]:
            del table[mac]

    def ports(self) -> dict[int, WireEndpoint]:
        """Port number -> endpoint, for the ports attached now."""
        return {n: p.endpoint for n, p in self._ports.items()}

    ####################################################################
    # the per-frame path
    ####################################################################

    def _input(self, port: _Port, frame: bytes) -> None:
        port.rx += 1
        if len(frame) < ETHER_HDR_LEN:
            self._runts += 1
            return
        now = trio.current_time()
        if not frame[6] & 1:
            self._learn(bytes(frame[6:12]), port.number, now)
        if frame[0] & 1:
            self._flood(port, frame)
            return
        table = self._table
        dst = bytes(frame[0:6])
        entry = table.get(dst)
        if entry is not None and now - entry[1] >= self.aging:
            del table[dst]
            self._aged += 1
            entry = None
        if entry is None:
            self._flood(port, frame)
            return
        if entry[0] == port.number:
            self._filtered += 1
            return
        self._forwarded += 1
        self._ports[entry[0]].transmit(frame)

    def _flood(self, ingress: _Port, frame: bytes) -> None:
        self._flooded += 1
        for port in self._port_list:
            if port is not ingress:
                port.transmit(frame)

    def _learn(self, src: bytes, number: int, now: float) -> None:
        table = self._table
        entry = table.get(src)
        if entry is not None:
            old, seen = entry
            if now - seen >= self.aging:
                del table[src]
                self._aged += 1
            else:
                if old != number:
                    self._moved += 1
                elif seen == now:
                    return
                # Re-insert at the end: the dict stays in refresh order.
                del table[src]
                table[src] = (number, now)
                return
        if len(table) >= self.max_entries:
            self._expire(now)
            if len(table) >= self.max_entries:
                self._table_full += 1
                return
        table[src] = (number, now)
        self._learned += 1

    def _expire(self, now: float) -> None:
        # Oldest first: stop at the first entry that is still alive.
        table = self._table
        aging = self.aging
        dead = []
        for mac, (_, seen) in table.items():
            if now - seen < aging:
                break
            dead.append(mac)
        for mac in dead:
            del table[mac]
        self._aged += len(dead)

    ####################################################################
    # views
    ####################################################################

    def mac_table(self) -> list[MacTableRow]:
        """The live entries, sorted by port and address (expired ones are
        left out, not removed)."""
        now = trio.current_time()
        rows = [
            MacTableRow(mac.hex(":"), port, now - seen)
            for mac, (port, seen) in self._table.items()
            if now - seen < self.aging
        ]
        rows.sort(key=lambda r: (r.port, r.mac))
        return rows

    def statistics(self) -> SwitchStatistics:
        """The switch's counters (see :class:`SwitchStatistics`)."""
        return SwitchStatistics(
            forwarded=self._forwarded,
            flooded=self._flooded,
            filtered=self._filtered,
            learned=self._learned,
            moved=self._moved,
            aged=self._aged,
            runts=self._runts,
            table_full=self._table_full,
            entries=len(self._table),
            ports=tuple(
                SwitchPortStatistics(p.number, p.endpoint.name, p.rx, p.tx, p.tx_refused)
                for p in self._port_list
            ),
        )
