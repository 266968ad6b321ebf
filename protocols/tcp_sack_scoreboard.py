"""The TCP sender's SACK scoreboard (RFC 6675, with RFC 2018 blocks).

Theory of operation
===================

A :class:`SackScoreboard` holds what the peer said it received above the
cumulative ACK, and answers RFC 6675's questions about the sequence space
``snd_una..snd_max`` the connection (:mod:`.tcp_connection`) passes in: which
octets are lost (IsLost), how many are in the network (SetPipe), and what to
retransmit next (NextSeg rules 1 and 3). It sends nothing and keeps no
timer; the connection decides when to enter and leave loss recovery and
retransmits what :meth:`~SackScoreboard.next_hole` names.

1. The scoreboard is a list of SACKed ``[start, end)`` ranges (unwrapped
   sequence numbers, as in the connection): sorted, disjoint, not touching,
   none empty, all within ``snd_una..snd_max``. A received block is
   :meth:`merged <SackScoreboard.update>` only within ``max(ack,
   snd_una)..snd_max``: one that is empty, reaches beyond what was sent, or
   lies wholly below the cumulative ACK (a D-SACK, RFC 2883, or an old
   report) is ignored and counted; one straddling the ACK is cut to it.
   :meth:`~SackScoreboard.update` says whether any octet was newly SACKed,
   which makes the ACK a duplicate ACK in RFC 6675's sense.
2. Bound: at most :data:`MAX_SACK_RANGES` ranges (8 full SACK options'
   worth). Beyond, the *highest* range is forgotten and counted
   (:attr:`~SackScoreboard.ranges_dropped`): the lower ones locate the holes
   to fill first, and the receiver reports its newest (usually highest)
   block again in every ACK, so forgetting only costs ``pipe`` being
   overestimated (conservative) or a needless retransmission. (DragonFly
   keeps 8 and refuses new ones when full.)
3. An ACK of new data :meth:`prunes <SackScoreboard.prune>` the ranges below
   it. A retransmission timeout :meth:`clears <SackScoreboard.clear>` them
   (RFC 6675 5.1: the receiver may have reneged), as Linux and BSD in effect
   do; the ACKs that follow rebuild it.
4. IsLost(x) (:meth:`~SackScoreboard.lost_boundary`): :data:`DUPTHRESH`
   discontiguous SACKed ranges above x, or more than ``(DupThresh - 1) *
   SMSS`` SACKed bytes above x. Both only fall as x grows and un-SACKed
   octets lie between ranges, so one boundary answers for every octet:
   un-SACKed octets below it are lost. (DragonFly declares loss at ``>= 3 *
   maxseg`` SACKed bytes.)
5. SetPipe() (:meth:`~SackScoreboard.pipe`), by ranges: each un-SACKed octet
   counts once if not lost and once if retransmitted in this recovery, which
   is below HighRxt (:attr:`~SackScoreboard.high_rxt`, exclusive; the
   connection advances it past each hole it retransmits). Outside recovery
   nothing counts as retransmitted.
6. NextSeg() (:meth:`~SackScoreboard.next_hole`): the lowest un-SACKed range
   at or above HighRxt with SACKed data above it, which for rule 1 must also
   be lost; rule 3 takes it lost or not. Rule 2 (new data) is the
   connection's ordinary output; rule 4 (the rescue retransmission) is not
   implemented.

Work: every operation is O(ranges) (so O(:data:`MAX_SACK_RANGES`)), an
update O(blocks * ranges).

DragonFly: ``sys/netinet/tcp_sack.c`` (``tcp_sack_update_scoreboard``,
``update_lostseq``, ``tcp_sack_compute_pipe``, ``tcp_sack_nextseg``: the
same design, SACKed blocks and a "lost below" point).
"""

from __future__ import annotations

from collections.abc import Iterator

from .tcp import MAX_SACK_BLOCKS, SEQ_MASK, seq_diff

__all__ = ["DUPTHRESH", "MAX_SACK_RANGES", "SackScoreboard"]

#: RFC 6675's DupThresh: duplicate ACKs, or SACKed ranges above a hole, that
#: declare it lost (with more than ``(DupThresh - 1) * SMSS`` SACKed bytes).
DUPTHRESH = 3
#: The most merged SACKed ranges the sender's scoreboard keeps (8 full SACK
#: options' worth); beyond, the highest range is forgotten (counted).
MAX_SACK_RANGES = 8 * MAX_SACK_BLOCKS


class SackScoreboard:
    """SACKed ranges above ``snd_una`` and HighRxt, for RFC 6675 loss recovery.

    Args:
        high_rxt: the initial HighRxt (the connection's ISS).

    Attributes:
        ranges: the SACKed ``[start, end]`` lists, lowest first (read-only to
            others; the connection reads them on its per-segment path to
            skip SACKed data when it goes back to ``snd_una``).
        high_rxt: RFC 6675 HighRxt, exclusive: in this recovery, everything
            below it was retransmitted (set by the connection).
        blocks_ignored: received blocks not used (``sack_blocks_ignored``
            in the statistics).
        ranges_dropped: ranges forgotten at the bound (``sack_ranges_dropped``).
    """

    __slots__ = ("blocks_ignored", "high_rxt", "ranges", "ranges_dropped")

    def __init__(self, high_rxt: int) -> None:
        self.ranges: list[list[int]] = []
        self.high_rxt = high_rxt
        self.blocks_ignored = 0
        self.ranges_dropped = 0

    def update(self, blocks: tuple[tuple[int, int], ...], una: int, ack: int, snd_max: int) -> bool:
        """RFC 6675 Update(): merge the received (32-bit) SACK ``blocks``.

        Returns:
            Whether any octet was newly SACKed.
        """
        ref = una & SEQ_MASK
        lo = max(ack, una)
        new = False
        for left, right in blocks:
            start = una + seq_diff(left, ref)
            end = una + seq_diff(right, ref)
            if not (start < end and lo < end <= snd_max):
                self.blocks_ignored += 1
                continue
            new = self._insert(max(start, lo), end) or new
        return new

    def _insert(self, start: int, end: int) -> bool:
        sb = self.ranges
        i = 0
        while i < len(sb) and sb[i][1] < start:
            i += 1
        j = i
        overlap = 0
        while j < len(sb) and sb[j][0] <= end:
            overlap += max(0, min(sb[j][1], end) - max(sb[j][0], start))
            j += 1
        if i == j:
            sb.insert(i, [start, end])
        else:
            sb[i:j] = [[min(start, sb[i][0]), max(end, sb[j - 1][1])]]
        if len(sb) > MAX_SACK_RANGES:
            sb.pop()  # the highest (see the module docstring, point 2)
            self.ranges_dropped += 1
        return end - start > overlap

    def prune(self, ack: int) -> None:
        """The cumulative ACK reached ``ack``: forget what lies below it."""
        sb = self.ranges
        while sb and sb[0][1] <= ack:
            sb.pop(0)
        if sb and sb[0][0] < ack:
            sb[0][0] = ack

    def clear(self) -> None:
        """Forget every range (a timeout: the receiver may have reneged)."""
        self.ranges.clear()

    def holes(self, una: int, snd_max: int) -> Iterator[tuple[int, int, bool]]:
        """The un-SACKed ranges in ``una..snd_max``, lowest first, each with "SACKed data lies above"."""
        prev = una
        for start, end in self.ranges:
            if start > prev:
                yield prev, start, True
            prev = max(prev, end)
        if prev < snd_max:
            yield prev, snd_max, False

    def lost_boundary(self, una: int, smss: int) -> int:
        """Un-SACKed octets below this are lost (RFC 6675 IsLost())."""
        limit = (DUPTHRESH - 1) * smss
        count = nbytes = 0
        for start, end in reversed(self.ranges):
            count += 1
            nbytes += end - start
            if count >= DUPTHRESH or nbytes > limit:
                return start
        return una

    def pipe(self, una: int, snd_max: int, smss: int, in_recovery: bool) -> int:
        """RFC 6675 SetPipe(): bytes estimated in the network."""
        lost = self.lost_boundary(una, smss)
        high_rxt = max(self.high_rxt, una) if in_recovery else una
        pipe = 0
        for start, end, _ in self.holes(una, snd_max):
            pipe += max(0, end - max(start, lost)) + max(0, min(end, high_rxt) - start)
        return pipe

    def next_hole(self, lost: bool, una: int, snd_max: int, smss: int) -> tuple[int, int] | None:
        """RFC 6675 NextSeg() rule 1 (``lost``) or rule 3: the range to retransmit from, or ``None``."""
        high_rxt = max(self.high_rxt, una)
        boundary = self.lost_boundary(una, smss) if lost else snd_max
        for start, end, sacked_above in self.holes(una, snd_max):
            if not sacked_above:
                break
            start = max(start, high_rxt)
            if start >= end:
                continue
            return (start, end) if start < boundary else None
        return None
