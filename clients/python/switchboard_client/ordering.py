"""Ordering and recovery of one message stream: the only code that knows the rules of
``seq`` and ``epoch``.

A stream is one room's messages, or the user's personal stream of direct
messages. The server numbers each stream's messages ``seq`` 1, 2, 3... within
an ``epoch`` (a new epoch means the stream's history started over). A
:class:`Stream` turns what arrives — live messages, replays, history pages, the
acks of ``joinRoom``/``resume`` and of the client's own sends — into the
messages the application sees: each exactly once, in ``seq`` order, or a
``failed`` recovery when some can no longer be had.

The rules:

* While a ``joinRoom``/``resume`` is pending (:meth:`Stream.begin`), everything
  that arrives is held; its ack (:meth:`Stream.settle`) releases the replays
  (marked ``replayed``) before the live messages that raced them. A ``seq`` the
  replay skipped is a gap like any other: a message numbered before the join
  but stored after the replay read still comes live, after the ack.
* A message whose ``seq`` is at or below the position, or already held, is a
  duplicate and is dropped.
* A message ahead of a missing ``seq`` is held. The client waits a short while
  (the missing one may be in flight: concurrent senders, or this client's own
  send whose ack has not come), then fetches the gap with ``history``
  (:meth:`Stream.start_fill`, :meth:`Stream.fill`) and releases everything in
  order. A ``seq`` still missing then was taken by a send that failed: it is
  skipped.
* A recovery the server declined (``recovered: false``) in the same epoch is
  filled from ``history`` as well; only when history no longer reaches back to
  the position (or the epoch changed) does the recovery fail. After a failure
  the application gets only messages after the new position, which the
  failure reports, so it can reload up to it with ``history``.
* Frames without ``seq`` (history off, an older server) are released as they
  come: nothing can be ordered or recovered.

Nothing here does I/O or keeps time: the client drives it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Frame = dict[str, Any]


@dataclass(frozen=True)
class Position:
    """Where a stream is: every message up to ``seq`` in ``epoch`` was accounted for."""

    epoch: str
    seq: int

    def as_since(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "seq": self.seq}

    @staticmethod
    def of(frame: Frame) -> Position | None:
        """The position a frame (message or ack) carries, if it carries a valid one."""
        seq, epoch = frame.get("seq"), frame.get("epoch")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            return None
        if not isinstance(epoch, str):
            return None
        return Position(epoch, seq)


@dataclass
class Settled:
    """What a settle or fill gives the client to act on."""

    released: list[Frame] = field(default_factory=list)
    """Messages for the application, in order."""
    failed: bool = False
    """The recovery failed: messages up to :attr:`Stream.position` may be missing."""
    fill_to: int | None = None
    """Fetch the messages after the position up to this ``seq`` with ``history``, then call
    :meth:`Stream.fill`."""


@dataclass
class _Item:
    """A held message, or a marker (``frame`` is ``None``) for one of the client's own sends."""

    position: Position
    frame: Frame | None
    replayed: bool = False

    @property
    def seq(self) -> int:
        return self.position.seq


class Stream:
    """One stream's position, held messages and counters."""

    def __init__(self, position: Position | None = None) -> None:
        self.position = position
        self.syncing = False
        """A ``joinRoom``/``resume`` is pending: everything is held until its ack."""
        self.filling_to: int | None = None
        """A ``history`` fetch up to this ``seq`` is pending: everything is held until it ends."""
        self.duplicates = 0
        self.skipped = 0
        self.replayed = 0
        self._since: Position | None = None
        self._synced = position is not None
        self._early: list[_Item] = []
        self._unordered: list[Frame] = []
        self._held: dict[int, _Item] = {}

    # -- what arrives ------------------------------------------------------------

    def begin(self) -> Position | None:
        """A ``joinRoom``/``resume`` is being sent; returns the ``since`` to send with it."""
        self.syncing = True
        self.filling_to = None
        self._since = self.position
        self._early.extend(self._held.values())
        self._held.clear()
        return self._since

    def forget(self) -> None:
        """Drop the position (the server refused to recover from it): the next sync fails."""
        self.position = None

    def receive(self, frame: Frame) -> list[Frame]:
        """A message frame arrived; returns what the application may see now."""
        position = Position.of(frame)
        if position is None or position.seq < 1:
            if self.holding:
                self._unordered.append(frame)
                return []
            return [frame]
        return self._arrive(_Item(position, frame))

    def seen(self, frame: Frame) -> list[Frame]:
        """The ack of this client's own send carries the ``seq`` the message took."""
        position = Position.of(frame)
        if position is None or position.seq < 1:
            return []
        return self._arrive(_Item(position, None))

    @property
    def holding(self) -> bool:
        return self.syncing or self.filling_to is not None

    def _arrive(self, item: _Item) -> list[Frame]:
        if self.holding:
            self._early.append(item)
            return []
        return self._accept(item)

    # -- acks of joinRoom / resume --------------------------------------------------

    def settle(self, ack: Frame) -> Settled:
        """The ``joinRoom``/``resume`` ack arrived: release what was held, or ask for a fill."""
        since, resync = self._since, self._synced
        self.syncing = False
        self._synced = True
        early, self._early = self._early, []
        released, self._unordered = self._unordered, []
        at = Position.of(ack)
        if at is None:  # history is off, or an older server: nothing can be ordered
            self.position = None
            early.sort(key=lambda item: item.seq)
            released += [item.frame for item in early if item.frame is not None]
            return Settled(released, failed=resync)
        if since is None:
            if resync:  # the stream had no position to recover from: report, reload from here
                return self._restart(at, early, released)
            # A first join: what arrived before the ack was delivered live; keep it.
            return Settled(released + self._release_upto(at, early, recovery=False))
        if since.epoch == at.epoch and (ack.get("recovered") is True or at.seq <= since.seq):
            # Up to the ack's seq, what came was replayed. A seq it skipped may still come
            # live (numbered before the join, stored after the replay read): a gap, not a hole.
            for item in early:
                item.replayed = item.seq <= at.seq
            return Settled(released + self._accept_all(early))
        if since.epoch == at.epoch:
            self.filling_to = at.seq
            self._early = early
            self._unordered = released
            return Settled(fill_to=at.seq)
        return self._restart(at, early, released)

    # -- history fills ----------------------------------------------------------------

    def start_fill(self) -> int | None:
        """Held messages wait for a missing ``seq``: hold all, return the ``seq`` to fill up to."""
        if self.holding or not self._held or self.position is None:
            return None
        self.filling_to = max(self._held)
        self._early = list(self._held.values())
        self._held.clear()
        return self.filling_to

    def fill(self, frames: list[Frame], complete: bool) -> Settled:
        """``history`` returned ``frames``; ``complete`` when they reach back to the position.

        A live gap's fill is always complete: a ``seq`` still missing is skipped.
        """
        upto, self.filling_to = self.filling_to, None
        early, self._early = self._early, []
        released, self._unordered = self._unordered, []
        if upto is None or self.position is None:
            return Settled(released + self._accept_all(early))
        at = Position(self.position.epoch, upto)
        if not complete:
            return self._restart(at, early, released)
        fetched = [
            _Item(position, frame, replayed=True)
            for frame in frames
            if (position := Position.of(frame)) is not None and position.epoch == at.epoch
        ]
        return Settled(released + self._release_upto(at, early + fetched, recovery=True))

    def covers(self, oldest: int | None) -> bool:
        """Whether history whose oldest message is ``oldest`` reaches back to the position."""
        if self.position is None or self.filling_to is None:
            return False
        if self.filling_to <= self.position.seq:
            return True
        return oldest is not None and oldest <= self.position.seq + 1

    @property
    def has_gap(self) -> bool:
        """Messages are held, waiting for a ``seq`` that has not come."""
        return not self.holding and bool(self._held)

    # -- internals ------------------------------------------------------------------

    def _release_upto(self, at: Position, items: list[_Item], recovery: bool) -> list[Frame]:
        """Release items up to ``at`` in ``seq`` order, then accept the rest as live.

        In a recovery (replays, a fill) every ``seq`` up to ``at`` that did not come was
        taken by a failed send and is skipped.
        """
        start = self.position.seq if self.position and self.position.epoch == at.epoch else 0
        below = sorted(
            (i for i in items if i.position.epoch == at.epoch and i.seq <= at.seq),
            key=lambda i: (i.seq, i.frame is not None),
        )
        released: list[Frame] = []
        last = start
        for item in below:
            if item.seq <= last:
                self.duplicates += item.frame is not None
                continue
            last = item.seq
            if item.frame is not None:
                released.append(self._mark(item))
        if recovery:
            self.skipped += max(at.seq - start, 0) - len(
                {i.seq for i in below if i.seq > start}
            )
        self.position = Position(at.epoch, max(at.seq, last))
        rest = [i for i in items if not (i.position.epoch == at.epoch and i.seq <= at.seq)]
        return released + self._accept_all(rest)

    def _restart(self, at: Position, items: list[_Item], released: list[Frame]) -> Settled:
        """Recovery failed: continue after ``at``; what came up to it is left to a reload."""
        self.position = at
        rest = [i for i in items if not (i.position.epoch == at.epoch and i.seq <= at.seq)]
        return Settled(released + self._accept_all(rest), failed=True)

    def _accept_all(self, items: list[_Item]) -> list[Frame]:
        released: list[Frame] = []
        for item in sorted(items, key=lambda i: i.seq):
            released += self._accept(item)
        return released

    def _accept(self, item: _Item) -> list[Frame]:
        """Live ordering: release in ``seq`` order, hold ahead of a gap, drop duplicates."""
        if self.position is None:
            self.position = item.position
            return [] if item.frame is None else [self._mark(item)]
        released: list[Frame] = []
        if item.position.epoch != self.position.epoch:
            # The stream's history started over: finish the old epoch, start the new at 0.
            released += self._flush()
            self.position = Position(item.position.epoch, 0)
        if item.seq <= self.position.seq or item.seq in self._held:
            self.duplicates += item.frame is not None
            return released
        self._held[item.seq] = item
        while (nxt := self._held.pop(self.position.seq + 1, None)) is not None:
            self.position = nxt.position
            if nxt.frame is not None:
                released.append(self._mark(nxt))
        return released

    def _flush(self) -> list[Frame]:
        """Release everything held, in order, skipping the holes."""
        released: list[Frame] = []
        for seq in sorted(self._held):
            item = self._held.pop(seq)
            assert self.position is not None
            self.skipped += seq - self.position.seq - 1
            self.position = item.position
            if item.frame is not None:
                released.append(self._mark(item))
        return released

    def _mark(self, item: _Item) -> Frame:
        assert item.frame is not None
        if item.replayed:
            self.replayed += 1
            return {**item.frame, "replayed": True}
        return item.frame
