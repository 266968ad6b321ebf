"""The interface send queue (``struct ifaltq``) and its queueing disciplines.

Theory of operation
===================

An :class:`IfAltq` is ``ifp.snd``: the bounded queue between the output path
(``ifq_dispatch``) and the driver's ``start``. From the outside in it has:

- the queue proper: the total limit ``maxlen``, the counters, the *prepend
  slot* (``altq_prepended``: packets the driver took but could not send) and
  the *poll slot* (the packet :meth:`IfAltq.poll` returned);
- an optional :class:`TokenBucket` regulator (``altq_tbr``) that rate-limits
  dequeues;
- a *discipline* that chooses the order: :class:`FIFO` (``ifq_set_classic``,
  the default), :class:`PRIQ` (strict priority) or :class:`FAIRQ` (Dillon's
  fair queue). Any object following the :class:`Discipline` protocol works.

Rules:

1. Every operation is a plain function: the queue sits on the per-packet path,
   so it never blocks and never checkpoints. Callers hold the interface
   serializer (DragonFly's 2006 rule for ``ifq_var.h``); the queue does not
   check it.
2. Bounded: :meth:`~IfAltq.enqueue` refuses a packet when the queue already
   holds ``maxlen`` packets in total, or when the discipline's own limit
   (``qlimit``) refuses it. A refused packet is a **drop**: ``enqueue``
   returns False and ``drops`` counts it; the caller (``ifq_dispatch``)
   reports ``ENOBUFS`` and logs. ``enqueue`` never raises on a full queue.
3. :meth:`~IfAltq.prepend` is not bounded: the packet was admitted and counted
   once already. So the length exceeds ``maxlen`` only through ``prepend``, or
   after ``maxlen`` was lowered below the current length (nothing queued is
   dropped then; enqueues are refused until the queue drains).
4. POLL/REMOVE: :meth:`~IfAltq.poll` (``ALTDQ_POLL``) moves the next packet
   out of the discipline into the poll slot, and :meth:`~IfAltq.dequeue`
   (``ALTDQ_REMOVE``) empties that slot first. A dequeue right after a poll
   therefore returns the very same object whatever was enqueued in between
   (a higher-priority packet in PRIQ, say), for every discipline, including
   ones written outside this module. Prepended packets come out before the
   polled one, and several prepends come out last-in first-out
   (``IF_PREPEND``). Divergence: DragonFly keeps the poll cache inside each
   discipline (``pif_poll_cache``); here a polled packet has already left its
   class, so class statistics count it as dequeued while the queue's do not.
5. :meth:`~IfAltq.purge` (``ALTRQ_PURGE``) discards everything (prepended,
   polled and queued) and counts it in ``purged``, never in ``drops``: it is
   the interface going down, not congestion.
6. With a token bucket, POLL and REMOVE return None while the bucket holds no
   tokens (``tokens <= 0``); REMOVE charges ``len(pkt)`` bytes. A REMOVE after
   a POLL skips the check (``tbr_lastop``), and prepended packets skip the
   regulator altogether (they were charged when first dequeued).
7. The books balance: ``len == enqueued + prepended - dequeued - purged``.

Packets are bytes-like objects (``len(pkt)`` is their size) and never None;
None is the "nothing to dequeue" answer.

FAIRQ here keeps Dillon's structure (priority classes, power-of-two buckets
per class keyed by the flow hash, round robin over the first packet of each
active bucket, lazy removal of empty buckets, a per-bucket ``qlimit``) and
omits his limits: there is no per-class bandwidth limit (``cl_bandwidth``, the
``hit_limit`` fall-through to lower classes) and no ``hogs`` burst allowance
(``cl_hogs_m1``), so the highest non-empty class always wins and the round
robin always advances. RED/RIO droppers, CBQ and HFSC are not modelled.

DragonFly: ``sys/net/if_altq.h``, ``sys/net/ifq_var.h``,
``sys/net/altq/altq_subr.c`` (``tbr_dequeue``), ``altq_priq.c``,
``altq_fairq.c``.
"""

from __future__ import annotations

import errno
import math
import operator
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import attrs
import trio

from .._exceptions import NetError

__all__ = [
    "FAIRQ",
    "FIFO",
    "PRIQ",
    "ClassStatistics",
    "Discipline",
    "IfAltq",
    "IfqStatistics",
    "TokenBucket",
]

# A packet: bytes, bytearray or memoryview in practice; anything with len().
Packet = Any

#: ``IFQ_MAXLEN`` in 2005-2010 ``if.h``.
IFQ_MAXLEN = 50


################################################################
# Statistics
################################################################


@attrs.frozen
class ClassStatistics:
    """A snapshot of one class of a :class:`PRIQ` or :class:`FAIRQ`.

    Attributes:
        prio: the class's priority (its index; higher is served first).
        len: packets queued in the class now.
        enqueued: packets the class accepted.
        dequeued: packets taken out of the class (a polled packet counts as
            taken: it waits in the queue's poll slot).
        drops: packets the class's ``qlimit`` refused. Packets refused by the
            queue's total ``maxlen`` never reach a class and are counted only
            in :attr:`IfqStatistics.drops`.

    DragonFly: ``struct priq_classstats`` / ``struct fairq_classstats``.
    """

    prio: int
    len: int
    enqueued: int
    dequeued: int
    drops: int


@attrs.frozen
class IfqStatistics:
    """A snapshot of an :class:`IfAltq`, returned by :meth:`IfAltq.statistics`.

    Attributes:
        len: packets queued now (prepend and poll slots included).
        maxlen: the total limit.
        enqueued: packets accepted by :meth:`~IfAltq.enqueue`.
        dequeued: packets returned by :meth:`~IfAltq.dequeue` (a packet that
            was prepended and dequeued again counts twice).
        drops: packets :meth:`~IfAltq.enqueue` refused (full queue or class
            limit).
        purged: packets discarded by :meth:`~IfAltq.purge`; not drops.
        prepended: packets put back by :meth:`~IfAltq.prepend`.
        discipline: the discipline's name (``"fifo"``, ``"priq"``, ``"fairq"``).
        classes: per-class snapshots, by ascending priority; empty for FIFO.

    ``len == enqueued + prepended - dequeued - purged`` always holds.
    """

    len: int
    maxlen: int
    enqueued: int
    dequeued: int
    drops: int
    purged: int
    prepended: int
    discipline: str
    classes: tuple[ClassStatistics, ...]


################################################################
# Disciplines
################################################################


class Discipline(Protocol):
    """What :class:`IfAltq` needs from a queueing discipline.

    A discipline only orders packets and applies its own per-class limits; the
    queue does the rest (the total ``maxlen``, POLL/REMOVE, prepend, the token
    bucket, the totals). So a discipline needs no ``peek``: the queue
    implements POLL by moving the packet :meth:`dequeue` returns into its poll
    slot. An instance serves one queue at a time, and is attached only while
    empty.

    DragonFly: the ``altq_enqueue``/``altq_dequeue``/``altq_request`` method
    pointers of ``struct ifaltq``.
    """

    #: Short lower-case name shown in :attr:`IfqStatistics.discipline`.
    name: ClassVar[str]

    def enqueue(self, pkt: Packet, prio: int, flow: int) -> bool:
        """Queue ``pkt``; return False (and count it) if a class limit refuses it."""
        ...

    def dequeue(self) -> Packet | None:
        """Remove and return the next packet, or None if empty."""
        ...

    def purge(self) -> int:
        """Discard every packet; return how many."""
        ...

    def __len__(self) -> int:
        """Packets queued."""
        ...

    def class_statistics(self) -> tuple[ClassStatistics, ...]:
        """Per-class snapshots by ascending priority; ``()`` if classless."""
        ...


# Validation happens in __attrs_post_init__, not in attrs validators or
# converters: a class with either gets a generated Python __setattr__, which
# would make every counter increment on the per-packet path several times
# slower.


def _check_size(name: str, value: Any, *, optional: bool = False) -> None:
    # A count of packets, classes or buckets: an int >= 1 (or None if optional).
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


@attrs.define(eq=False, repr=False)
class FIFO:
    """Drop-tail FIFO: the classic queue. ``prio`` and ``flow`` are ignored.

    It has no limit of its own: the queue's ``maxlen`` is the drop-tail
    limit. :class:`IfAltq` drives its deque directly (the per-packet fast
    path); the methods serve the generic path and direct use.

    DragonFly: ``ifq_set_classic`` / ``ifq_classic_enqueue`` (``if.c``).
    """

    name: ClassVar[str] = "fifo"
    _queue: deque[Packet] = attrs.field(factory=deque, init=False)

    def __repr__(self) -> str:
        return f"<FIFO len={len(self._queue)}>"

    def __len__(self) -> int:
        return len(self._queue)

    def enqueue(self, pkt: Packet, prio: int = 0, flow: int = 0) -> bool:
        """Append ``pkt``; always True."""
        self._queue.append(pkt)
        return True

    def dequeue(self) -> Packet | None:
        """Remove and return the oldest packet, or None."""
        queue = self._queue
        return queue.popleft() if queue else None

    def purge(self) -> int:
        """Discard every packet; return how many."""
        n = len(self._queue)
        self._queue.clear()
        return n

    def class_statistics(self) -> tuple[ClassStatistics, ...]:
        """Return ``()``: a FIFO has no classes."""
        return ()


@attrs.define(eq=False, repr=False)
class _PriorityClasses:
    # What PRIQ and FAIRQ share: ``nclasses`` classes served highest first,
    # their counters, purge and class_statistics. Two rules, in one place:
    #
    # 1. The clamp: a ``prio`` outside ``0..nclasses-1`` lands in the nearest
    #    class (:meth:`_clamp`). Each ``enqueue`` tests the range inline and
    #    calls ``_clamp`` only for a prio outside it, so an in-range packet
    #    pays no call for it.
    # 2. The active-class bitmap: bit p of ``_active`` is set while class p
    #    holds packets, so the class to serve is ``_active.bit_length() - 1``
    #    instead of a scan (DragonFly keeps ``pif_maxpri``). Each
    #    ``enqueue`` sets the bit and each ``dequeue`` finds the class and
    #    clears the bit when the class empties, inline (per packet: no call).
    #
    # A class is any object with len() and clear(), made by _new_class():
    # PRIQ's are deques, FAIRQ's are _FairqClass.

    _new_class: ClassVar[Callable[[], Any]]
    _repr_options: ClassVar[tuple[str, ...]]
    nclasses: int = 16
    _classes: list[Any] = attrs.field(init=False)
    _active: int = attrs.field(default=0, init=False)
    _len: int = attrs.field(default=0, init=False)
    _enqueued: list[int] = attrs.field(init=False)
    _dequeued: list[int] = attrs.field(init=False)
    _drops: list[int] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        _check_size("nclasses", self.nclasses)
        self._check_options()
        n = self.nclasses
        self._classes = [self._new_class() for _ in range(n)]
        self._enqueued = [0] * n
        self._dequeued = [0] * n
        self._drops = [0] * n

    def _check_options(self) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        options = "".join(f" {name}={getattr(self, name)}" for name in self._repr_options)
        return f"<{type(self).__name__}{options} len={self._len}>"

    def __len__(self) -> int:
        return self._len

    def _clamp(self, prio: int) -> int:
        # Rule 1, for a prio already known to be out of range.
        return 0 if prio < 0 else self.nclasses - 1

    def purge(self) -> int:
        """Discard every packet; return how many (not counted as drops)."""
        n = self._len
        for cl in self._classes:
            cl.clear()
        self._active = 0
        self._len = 0
        return n

    def class_statistics(self) -> tuple[ClassStatistics, ...]:
        """One :class:`ClassStatistics` per class, by ascending priority."""
        return tuple(
            ClassStatistics(
                prio=p,
                len=len(cl),
                enqueued=self._enqueued[p],
                dequeued=self._dequeued[p],
                drops=self._drops[p],
            )
            for p, cl in enumerate(self._classes)
        )


@attrs.define(eq=False, repr=False)
class PRIQ(_PriorityClasses):
    """Strict priority: the highest non-empty class is always served first.

    Packets of one class leave in arrival order. ``prio`` is **clamped** into
    ``0..nclasses-1``: a negative value lands in class 0 and a value above the
    top in the top class. Clamping is monotonic, so a higher ``prio`` is still
    never served after a lower one; and ``enqueue`` sits on the per-packet
    path, where priorities often come from packet fields (802.1p, DSCP), and
    must not raise for data (DragonFly sends an unknown class to the default
    class rather than failing). A non-int ``prio`` raises :exc:`TypeError`.

    Args:
        nclasses: number of classes (``PRIQ_MAXPRI`` is 16).
        qlimit: per-class packet limit; None for none (the queue's ``maxlen``
            still bounds the total). DragonFly's default is 50.

    Raises:
        ValueError: if ``nclasses`` or ``qlimit`` is below 1.
        TypeError: if either is not an int.

    DragonFly: ``sys/net/altq/altq_priq.c``.
    """

    name: ClassVar[str] = "priq"
    _new_class: ClassVar[Callable[[], Any]] = deque
    _repr_options: ClassVar[tuple[str, ...]] = ("nclasses",)
    qlimit: int | None = None

    def _check_options(self) -> None:
        _check_size("qlimit", self.qlimit, optional=True)


    def enqueue(self, pkt: Packet, prio: int = 0, flow: int = 0) -> bool:
        """Append ``pkt`` to class ``prio`` (clamped); ``flow`` is ignored.

        Returns:
            False if the class already holds ``qlimit`` packets: the packet
            is dropped and counted in that class's ``drops``.
        """
        if not 0 <= prio < self.nclasses:
            prio = self._clamp(prio)
        queue = self._classes[prio]
        if self.qlimit is not None and len(queue) >= self.qlimit:
            self._drops[prio] += 1
            return False
        queue.append(pkt)
        self._active |= 1 << prio
        self._enqueued[prio] += 1
        self._len += 1
        return True

    def dequeue(self) -> Packet | None:
        """Remove and return the oldest packet of the highest non-empty class."""
        active = self._active
        if not active:
            return None
        prio = active.bit_length() - 1
        queue = self._classes[prio]
        pkt = queue.popleft()
        if not queue:
            self._active = active & ~(1 << prio)
        self._dequeued[prio] += 1
        self._len -= 1
        return pkt


@attrs.define(eq=False, repr=False)
class _FairqClass:
    # One priority class: buckets on a round-robin ring (fairq_class).
    # ``buckets`` holds exactly the in-use buckets (b->in_use), ``ring`` their
    # order with the head (cl_head) at index 0. Emptied buckets leave the ring
    # lazily, when the round robin reaches them (fairq_selectq).
    buckets: dict[int, deque[Packet]] = attrs.field(factory=dict)
    ring: deque[int] = attrs.field(factory=deque)
    len: int = 0

    def __len__(self) -> int:
        return self.len

    def clear(self) -> None:
        self.buckets.clear()
        self.ring.clear()
        self.len = 0


@attrs.define(eq=False, repr=False)
class FAIRQ(_PriorityClasses):
    """Fair queueing (Dillon 2008): strict priority between classes, round
    robin between flows inside a class.

    Each class has ``nbuckets`` buckets; a packet goes to bucket
    ``flow & (nbuckets - 1)`` of class ``prio`` (clamped as in :class:`PRIQ`),
    so ``flow`` should be a flow hash (``ipv4_flow_hash``; DragonFly uses the
    pf state hash). A bucket joins the tail of its class's ring when it gets
    its first packet. Dequeue serves the highest non-empty class and there
    takes the first packet of the bucket at the head of the ring, then
    advances the ring: two busy flows alternate, and a flow gets its turn
    however many packets another one queued. Flows that share a bucket share
    its FIFO.

    No per-class bandwidth limit and no ``hogs`` allowance (see the module
    docstring).

    Args:
        nclasses: number of priority classes (``FAIRQ_MAXPRI`` is 16).
        nbuckets: buckets per class, a power of two.
        qlimit: per-*bucket* packet limit, as in DragonFly (it sets
            ``qlimit`` on every bucket's queue); None for none.

    Raises:
        ValueError: if ``nbuckets`` is not a power of two, or a size is
            below 1.
        TypeError: if a size is not an int.

    DragonFly: ``sys/net/altq/altq_fairq.c``.
    """

    name: ClassVar[str] = "fairq"
    _new_class: ClassVar[Callable[[], Any]] = _FairqClass
    _repr_options: ClassVar[tuple[str, ...]] = ("nclasses", "nbuckets")
    nbuckets: int = 16
    qlimit: int | None = None

    def _check_options(self) -> None:
        _check_size("nbuckets", self.nbuckets)
        if self.nbuckets & (self.nbuckets - 1):
            raise ValueError(f"nbuckets must be a power of two (a hash mask), got {self.nbuckets}")
        _check_size("qlimit", self.qlimit, optional=True)


    def enqueue(self, pkt: Packet, prio: int = 0, flow: int = 0) -> bool:
        """Append ``pkt`` to bucket ``flow & (nbuckets - 1)`` of class ``prio``.

        Returns:
            False if that bucket already holds ``qlimit`` packets: the packet
            is dropped and counted in the class's ``drops``.

        DragonFly: ``fairq_enqueue``, ``fairq_addq``.
        """
        if not 0 <= prio < self.nclasses:
            prio = self._clamp(prio)
        cl = self._classes[prio]
        # Divergence: DragonFly appends an unhashed packet (hash 0) to the
        # tail bucket of the ring; here flow 0 is simply bucket 0.
        index = flow & (self.nbuckets - 1)
        bucket = cl.buckets.get(index)
        if bucket is None:
            bucket = cl.buckets[index] = deque()
            cl.ring.append(index)  # inserted before cl_head: the ring's tail
        if self.qlimit is not None and len(bucket) >= self.qlimit:
            self._drops[prio] += 1
            return False
        bucket.append(pkt)
        cl.len += 1
        self._active |= 1 << prio
        self._enqueued[prio] += 1
        self._len += 1
        return True

    def dequeue(self) -> Packet | None:
        """Remove and return the next packet: highest class, next bucket.

        DragonFly: ``fairq_dequeue``, ``fairq_getq``, ``fairq_selectq``.
        """
        active = self._active
        if not active:
            return None
        prio = active.bit_length() - 1
        cl = self._classes[prio]
        ring, buckets = cl.ring, cl.buckets
        while True:
            index = ring[0]
            bucket = buckets[index]
            if bucket:
                break
            ring.popleft()
            del buckets[index]
        ring.rotate(-1)  # advance the round robin: cl_head = b->next
        pkt = bucket.popleft()
        cl.len -= 1
        if not cl.len:
            self._active = active & ~(1 << prio)
        self._dequeued[prio] += 1
        self._len -= 1
        return pkt


################################################################
# Token bucket regulator
################################################################


def _default_depth(rate: float, mtu: int = 1500) -> int:
    # pfctl's tbrsize rule: a few MTUs, more for faster links (rate in bits/s).
    bits = rate * 8
    if bits <= 1_000_000:
        size = 1
    elif bits <= 10_000_000:
        size = 4
    elif bits <= 200_000_000:
        size = 8
    else:
        size = 24
    return min(size * mtu, 0xFFFF)


@attrs.define(eq=False, repr=False)
class TokenBucket:
    """A token bucket regulator that rate-limits dequeues.

    The bucket starts full. It refills at ``rate`` bytes per second of
    ``clock()``, up to ``depth`` bytes; a dequeue is allowed while it holds
    any tokens (``tokens > 0``) and charges the packet's length, so the level
    may go negative and a large packet borrows from the future.

    Args:
        rate: bytes per second; positive and finite.
        depth: bucket size in bytes (the largest burst); at least 1.
        clock: returns the current time in seconds. Defaults to
            :func:`trio.current_time`, read lazily, so a bucket can be built
            outside :func:`trio.run`; inject a fake for tests.

    Raises:
        ValueError: for a non-positive rate or depth.

    .. attribute:: tokens

       The current level in bytes, as of the last refill.

    DragonFly: ``struct tb_regulator``, ``tbr_set``/``tbr_dequeue``
    (``sys/net/altq/altq_subr.c``).
    """

    rate: float
    depth: int
    clock: Callable[[], float] = attrs.field(default=trio.current_time, kw_only=True)
    tokens: float = attrs.field(init=False)
    _last: float | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"rate must be positive bytes per second, got {self.rate!r}")
        if not self.depth >= 1:
            raise ValueError(f"depth must be at least 1 byte, got {self.depth!r}")
        self.tokens = float(self.depth)

    def __repr__(self) -> str:
        return f"<TokenBucket rate={self.rate:g}B/s depth={self.depth} tokens={self.tokens:g}>"

    def _refill(self) -> float:
        now = self.clock()
        last = self._last
        if last is not None and now > last:
            tokens = self.tokens + (now - last) * self.rate
            self.tokens = tokens if tokens < self.depth else float(self.depth)
        # Divergence: DragonFly refills only when the level is <= 0 and then
        # credits the whole time since the last refill; here every look
        # refills, which is the same rate without the stale-timestamp bonus.
        self._last = now
        return now

    def has_tokens(self) -> bool:
        """Refill, then return whether a dequeue is allowed now (``tokens > 0``)."""
        self._refill()
        return self.tokens > 0

    def charge(self, nbytes: int) -> None:
        """Take ``nbytes`` tokens (a dequeued packet's length)."""
        if self._last is None:
            self._last = self.clock()
        self.tokens -= nbytes

    def next_time(self) -> float | None:
        """When a dequeue will next be allowed; None if it is allowed now.

        The time returned is when the level reaches one byte, not zero:
        ``tokens > 0`` is strict, so a caller that sleeps until exactly this
        time never finds the bucket still empty through rounding and spins.
        """
        now = self._refill()
        if self.tokens > 0:
            return None
        return now + (1.0 - self.tokens) / self.rate


################################################################
# The queue
################################################################


@attrs.define(eq=False, repr=False)
class IfAltq:
    """An interface send queue, ``ifp.snd``.

    Called with the interface serializer held; every method is a plain,
    non-blocking function (see the module docstring for the rules).

    Args:
        maxlen: the most packets the queue holds (``ifq_maxlen``); drivers
            usually set their TX ring size minus one.
        discipline: a :class:`Discipline`, by default a new :class:`FIFO`.

    Raises:
        ValueError: if ``maxlen`` is below 1, or the discipline is not empty.
        TypeError: if ``maxlen`` is not an int.

    .. attribute:: started

       The ``if_start`` interlock (``altq_started``): True while some task
       owns the job of running ``start`` for this queue. Initially False;
       only the start logic (``ifq_dispatch``, ``if_devstart``) reads or sets
       it, under the queue's lock.

    Statistics (:meth:`statistics`): ``len``, ``maxlen``, ``enqueued``,
    ``dequeued``, ``drops``, ``purged``, ``prepended``, ``discipline``,
    ``classes``.

    DragonFly: ``struct ifaltq`` (``sys/net/if_altq.h``), the accessors in
    ``sys/net/ifq_var.h``.
    """

    _maxlen: int = attrs.field(default=IFQ_MAXLEN)
    _disc: Discipline = attrs.field(default=None, alias="discipline")  # type: ignore[assignment]
    started: bool = attrs.field(default=False, init=False)
    # The FIFO's deque when the discipline is exactly FIFO: the fast path.
    _fifo: deque[Packet] | None = attrs.field(default=None, init=False)
    _tbr: TokenBucket | None = attrs.field(default=None, init=False)
    _prepended: deque[Packet] = attrs.field(factory=deque, init=False)
    _polled: Packet | None = attrs.field(default=None, init=False)
    _len: int = attrs.field(default=0, init=False)
    # ``enqueued`` is derived from the balance (rule 7) to keep the
    # per-packet path one increment shorter.
    _dequeued: int = attrs.field(default=0, init=False)
    _drops: int = attrs.field(default=0, init=False)
    _purged: int = attrs.field(default=0, init=False)
    _prepends: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        self.maxlen = self._maxlen  # the setter validates
        self.set_discipline(FIFO() if self._disc is None else self._disc)

    def __repr__(self) -> str:
        return f"<IfAltq {self._disc.name} len={self._len}/{self._maxlen}>"

    def __len__(self) -> int:
        return self._len

    def is_empty(self) -> bool:
        """Return whether no packet is queued (``ifq_is_empty``).

        A token bucket may still refuse to hand out a queued packet; use
        :meth:`poll` or :meth:`tbr_next_time` for "can a dequeue succeed".
        """
        return self._len == 0

    @property
    def maxlen(self) -> int:
        """The most packets :meth:`enqueue` admits (``ifq_set_maxlen``).

        Lowering it below the current length drops nothing: enqueues are
        refused until the queue drains below the new limit.

        Raises:
            ValueError: on assignment of a value below 1.
            TypeError: on assignment of a non-int.
        """
        return self._maxlen

    @maxlen.setter
    def maxlen(self, value: int) -> None:
        if isinstance(value, bool):
            raise TypeError("maxlen must be an int, not bool")
        value = operator.index(value)
        if value < 1:
            raise ValueError(f"maxlen must be at least 1, got {value}")
        self._maxlen = value

    @property
    def discipline(self) -> Discipline:
        """The attached discipline; change it with :meth:`set_discipline`."""
        return self._disc

    @property
    def tbr(self) -> TokenBucket | None:
        """The attached :class:`TokenBucket`, or None; see :meth:`set_tbr`."""
        return self._tbr

    def set_discipline(self, discipline: Discipline) -> None:
        """Attach ``discipline`` in place of the current one.

        Raises:
            NetError: ``EBUSY`` if the queue holds packets (purge it first).
            ValueError: if ``discipline`` itself holds packets.

        DragonFly: ``altq_attach`` (pf purges the queue first).
        """
        if self._len:
            raise NetError(errno.EBUSY, "queue not empty; purge it before changing discipline")
        if len(discipline):
            raise ValueError(f"{discipline!r} already holds packets")
        self._disc = discipline
        # The fast path drives a plain FIFO's deque directly (not a subclass's).
        fifo = discipline._queue if type(discipline) is FIFO else None  # type: ignore[attr-defined]
        self._fifo = fifo

    def set_tbr(
        self,
        rate: float | None,
        depth: int | None = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Attach a fresh, full :class:`TokenBucket`, or remove it with None.

        Args:
            rate: bytes per second, or None to remove the regulator.
            depth: bucket size in bytes. By default pfctl's rule for an
                MTU of 1500: 1, 4, 8 or 24 MTUs for links up to 1, 10, 200
                Mbit/s and above, at most 65535.
            clock: time source (default :func:`trio.current_time`).

        Raises:
            ValueError: for a non-positive rate or depth.

        DragonFly: ``tbr_set``.
        """
        if rate is None:
            self._tbr = None
            return
        if depth is None:
            depth = _default_depth(rate)
        if clock is None:
            self._tbr = TokenBucket(rate, depth)
        else:
            self._tbr = TokenBucket(rate, depth, clock=clock)

    def tbr_next_time(self) -> float | None:
        """When the token bucket next allows a dequeue, on its clock.

        Returns:
            None if there is no bucket or it allows a dequeue now; otherwise
            a time to retry at (see :meth:`TokenBucket.next_time`).
        """
        tbr = self._tbr
        return None if tbr is None else tbr.next_time()

    def enqueue(self, pkt: Packet, prio: int = 0, flow: int = 0) -> bool:
        """Queue ``pkt``; never blocks, never raises on a full queue.

        Args:
            pkt: the packet, a bytes-like object (not None).
            prio: its priority class, for PRIQ and FAIRQ.
            flow: its flow hash, for FAIRQ.

        Returns:
            True if queued. False if dropped: the queue already holds
            ``maxlen`` packets, or the discipline's ``qlimit`` refused it;
            the packet is counted in ``drops`` and the caller reports
            ``ENOBUFS``.

        DragonFly: ``ifq_enqueue`` (``altq_enqueue``).
        """
        if self._len >= self._maxlen:
            self._drops += 1
            return False
        fifo = self._fifo
        if fifo is not None:
            fifo.append(pkt)
        elif not self._disc.enqueue(pkt, prio, flow):
            self._drops += 1
            return False
        self._len += 1
        return True

    def dequeue(self) -> Packet | None:
        """Remove and return the next packet (``ALTDQ_REMOVE``), or None.

        Order: prepended packets, then the polled packet (so a dequeue right
        after :meth:`poll` returns the same object), then the discipline's
        choice. None when the queue is empty or the token bucket is out of
        tokens (a REMOVE after a POLL does not re-check the bucket).

        DragonFly: ``ifq_dequeue`` (``altq_dequeue``, ``tbr_dequeue``).
        """
        if self._prepended:
            self._len -= 1
            self._dequeued += 1
            return self._prepended.popleft()
        pkt = self._polled
        tbr = self._tbr
        if pkt is not None:
            self._polled = None
        else:
            if tbr is not None and not tbr.has_tokens():
                return None
            fifo = self._fifo
            if fifo is not None:
                if not fifo:
                    return None
                pkt = fifo.popleft()
            else:
                pkt = self._disc.dequeue()
                if pkt is None:
                    return None
        if tbr is not None:
            tbr.charge(len(pkt))
        self._len -= 1
        self._dequeued += 1
        return pkt

    def poll(self) -> Packet | None:
        """Return the packet :meth:`dequeue` would return, without taking it.

        The packet stays queued (it counts in ``len``); the next
        :meth:`dequeue` returns this very object even if packets are
        enqueued in between. None when empty or when the token bucket is
        out of tokens.

        DragonFly: ``ifq_poll`` (``ALTDQ_POLL``).
        """
        if self._prepended:
            return self._prepended[0]
        pkt = self._polled
        if pkt is not None:
            return pkt
        tbr = self._tbr
        if tbr is not None and not tbr.has_tokens():
            return None
        fifo = self._fifo
        if fifo is not None:
            if not fifo:
                return None
            pkt = fifo.popleft()
        else:
            pkt = self._disc.dequeue()
            if pkt is None:
                return None
        self._polled = pkt
        return pkt

    def prepend(self, pkt: Packet) -> None:
        """Put back a packet the driver dequeued but could not transmit.

        It comes out first on the next :meth:`poll`/:meth:`dequeue`, ahead
        of everything, the token bucket included. Not subject to ``maxlen``
        (it was admitted already), and never dropped.

        Raises:
            TypeError: if ``pkt`` is None.

        DragonFly: ``ifq_prepend`` (``altq_prepended``).
        """
        if pkt is None:
            raise TypeError("cannot prepend None: None means 'no packet'")
        self._prepended.appendleft(pkt)
        self._len += 1
        self._prepends += 1

    def purge(self) -> int:
        """Discard every queued packet (``ALTRQ_PURGE``); return how many.

        Purged packets count in ``purged``, not in ``drops``. ``started``
        is left alone.

        DragonFly: ``ifq_purge``.
        """
        n = len(self._prepended) + (self._polled is not None) + self._disc.purge()
        self._prepended.clear()
        self._polled = None
        self._len = 0
        self._purged += n
        return n

    def statistics(self) -> IfqStatistics:
        """Return an :class:`IfqStatistics` snapshot."""
        return IfqStatistics(
            len=self._len,
            maxlen=self._maxlen,
            enqueued=self._len + self._dequeued + self._purged - self._prepends,
            dequeued=self._dequeued,
            drops=self._drops,
            purged=self._purged,
            prepended=self._prepends,
            discipline=self._disc.name,
            classes=self._disc.class_statistics(),
        )
