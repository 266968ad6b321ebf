"""lo: the loopback interface.

Everything sent on ``lo`` comes back in on ``lo``: ``start`` drains the send
queue and hands each frame to ``ifp.input``, which queues it to the protocol
thread its flow hashes to. So loopback traffic takes the same path as any
other (send queue, ``start``, netisr), without an interrupt.

Frames are Ethernet frames with zero addresses (as Linux frames its
loopback), so there is one input routine for every interface.

Serializer rule: ``start`` runs with the interface serializer held, like every
entry point; ``ifp.input`` only queues, so calling it there cannot deadlock.

DragonFly: ``sys/net/if_loop.c`` (``looutput``, ``if_simloop``).
"""

from __future__ import annotations

from trionet import IfCap, IfFlags, Ifnet, LinkState
from trionet.lowlevel import Driver

__all__ = ["Loopback"]

#: DragonFly's LOMTU.
LOMTU = 16384


class Loopback(Driver):
    """The loopback driver: ``await host.if_attach(Loopback())`` makes ``lo0``."""

    name_prefix = "lo"
    uses_intr = False
    max_mtu = 65535 - 14

    async def attach(self, ifp: Ifnet) -> None:
        ifp.mtu = LOMTU
        ifp.flags |= IfFlags.LOOPBACK | IfFlags.MULTICAST
        # Nothing leaves memory: checksums are never needed (BSD's lo has
        # RXCSUM and TXCSUM on too).
        ifp.capabilities = ifp.capenable = IfCap.RXCSUM | IfCap.TXCSUM
        ifp.link_state = LinkState.UP
        ifp.snd.maxlen = 1024

    def start(self) -> None:
        """Turn every queued frame around into input. Serializer held."""
        ifp = self.ifp
        ifp.serializer.assert_serialized()
        data = ifp.data
        snd = ifp.snd
        while (frame := snd.dequeue()) is not None:
            data.opackets += 1
            data.ipackets += 1
            data.ibytes += len(frame)
            ifp.input(frame)
