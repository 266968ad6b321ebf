"""The out-of-order queue of a TCP receiver, and the SACK blocks it reports.

Theory of operation
===================

A :class:`ReassemblyQueue` holds the data a connection received above
``rcv_nxt``, until the gap below it is filled (RFC 9293 3.10.7.4, seventh
step), and chooses the SACK blocks that describe it (RFC 2018 4). The
connection (:mod:`.tcp_connection`) trims every segment to its window and
to the peer's FIN first, and keeps in-order data out of here: that goes
straight to the receive buffer, and then :meth:`~ReassemblyQueue.pull`
moves whatever it made contiguous.

1. Data is held in *blocks* ``[start, bytearray]``: sorted by ``start``,
   disjoint and not touching (one byte at least between two blocks), none
   empty. Sequence numbers are unwrapped ints, as in the connection.
2. Overlap: a segment that overlaps or touches blocks is merged with them
   into one block; where it overlaps, the bytes already held win over the
   new copy (a retransmission carries the same bytes; if a peer sends
   different ones, the first copy stays, as BSD's ``tcp_reass`` keeps it).
   The common case, a segment extending the last block it touches at its
   end, appends without copying the block.
3. Bound: at most ``max_blocks`` blocks (``TcpConfig.max_ooo_blocks``). A
   segment that would start a new block when that many are held is dropped
   and counted (:attr:`~ReassemblyQueue.dropped`); one merging into held
   blocks is always taken, since it cannot add a block. Bytes are bounded
   by the connection, which accepts data only within the window it
   advertised, never more than its free buffer space.
4. :meth:`~ReassemblyQueue.pull` appends to the receive buffer the bytes of
   every block reaching ``rcv_nxt``, from ``rcv_nxt`` on (bytes below it,
   already delivered from an in-order segment, are discarded: the in-order
   copy wins), and returns the new ``rcv_nxt``.
5. SACK blocks (RFC 2018 4): the block holding the start of the most recent
   segment first, then those holding the starts of the segments reported
   before it (newest first, at most :data:`.tcp.MAX_SACK_BLOCKS`
   remembered, forgotten once delivered), then any others, lowest first;
   each block once, at most ``limit`` of them.

Work: an insertion is O(blocks) plus copying its bytes (and the held ones
it merges with, if it does not just extend a block); a pull O(blocks
delivered) plus their bytes; SACK blocks O(MAX_SACK_BLOCKS * blocks).

DragonFly: ``sys/netinet/tcp_input.c`` (``tcp_reass``), and the SACK
report of ``tcp_sack.c``.
"""

from __future__ import annotations

from .tcp import MAX_SACK_BLOCKS, SEQ_MASK

__all__ = ["ReassemblyQueue"]


class ReassemblyQueue:
    """Out-of-order data above ``rcv_nxt``, in at most ``max_blocks`` blocks.

    Attributes:
        blocks: the held data, ``[start, bytearray]`` lists, lowest first
            (read-only to others; the connection tests it for emptiness on
            its per-segment path).
        segments: segments queued (``ooo_segments`` in the statistics).
        dropped: segments dropped at the block limit (``ooo_dropped``).
    """

    __slots__ = ("_recent", "blocks", "dropped", "segments")

    def __init__(self) -> None:
        self.blocks: list[list] = []
        self._recent: list[int] = []  # starts of recent segments, newest first
        self.segments = 0
        self.dropped = 0

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return sum(len(b) for _, b in self.blocks)

    def insert(self, s: int, data: memoryview | bytes, max_blocks: int) -> None:
        """Hold ``data`` (non-empty) received at ``s``, above ``rcv_nxt``.

        Dropped (and counted) if it would be a block of its own beyond
        ``max_blocks``.
        """
        blocks = self.blocks
        e = s + len(data)
        i = 0
        while i < len(blocks) and blocks[i][0] + len(blocks[i][1]) < s:
            i += 1
        j = i
        while j < len(blocks) and blocks[j][0] <= e:
            j += 1
        if i == j:
            if len(blocks) >= max_blocks:
                self.dropped += 1
                return
            blocks.insert(i, [s, bytearray(data)])
        else:
            first_start = blocks[i][0]
            last_start, last = blocks[j - 1]
            last_end = last_start + len(last)
            if j - i == 1 and s >= first_start:
                if e > last_end:  # extends the block at its end: the common case
                    last += data[last_end - s :]
            else:
                start = min(s, first_start)
                buf = bytearray(max(e, last_end) - start)
                buf[s - start : e - start] = data
                for bs, b in blocks[i:j]:  # held bytes win over new copies
                    buf[bs - start : bs - start + len(b)] = b
                blocks[i:j] = [[start, buf]]
        self.segments += 1
        recent = self._recent
        if s in recent:
            recent.remove(s)
        recent.insert(0, s)
        del recent[MAX_SACK_BLOCKS:]

    def pull(self, rcv_nxt: int, rcvbuf: bytearray) -> int:
        """Append what now follows ``rcv_nxt`` to ``rcvbuf``; return the new ``rcv_nxt``."""
        blocks = self.blocks
        while blocks and blocks[0][0] <= rcv_nxt:
            start, buf = blocks.pop(0)
            end = start + len(buf)
            if end > rcv_nxt:
                rcvbuf += memoryview(buf)[rcv_nxt - start :]
                rcv_nxt = end
        self._recent = [s for s in self._recent if s >= rcv_nxt]
        return rcv_nxt

    def sack_blocks(self, limit: int) -> tuple[tuple[int, int], ...]:
        """Up to ``limit`` SACK blocks (32-bit edges) in RFC 2018's order (the module docstring, point 5)."""
        blocks = self.blocks
        out: list[tuple[int, int]] = []
        for s in self._recent:
            for start, buf in blocks:
                if start <= s < start + len(buf):
                    block = (start & SEQ_MASK, (start + len(buf)) & SEQ_MASK)
                    if block not in out:
                        out.append(block)
                    break
        for start, buf in blocks:  # then any others, lowest first
            block = (start & SEQ_MASK, (start + len(buf)) & SEQ_MASK)
            if block not in out:
                out.append(block)
        return tuple(out[:limit])

    def clear(self) -> None:
        """Forget everything held (the connection was dropped)."""
        self.blocks.clear()
        self._recent.clear()
