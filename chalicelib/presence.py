"""Presence events: the only code that tells a room's watchers who came and who went.

Watchers are the room's member connections holding the ``presence``
permission. What they are told depends on the room's size, which the room's
count (kept by :mod:`chalicelib.registry` with every change) says without
reading the room:

* while the room has at most ``PRESENCE_EVENTS_MAX_MEMBERS`` users, each user
  who arrives or leaves is one ``presence`` event (``join``/``leave``) to every
  watcher, found with one Query of the room's users;
* above it, per-user events would cost N posts per change and N² for a room
  filling up, so watchers get ``occupancy`` frames instead — the room's users
  and connections — at most once per ``OCCUPANCY_INTERVAL_SECONDS`` while the
  count changes. The first change after a quiet interval is sent at once; a
  change inside the interval is sent when it ends, by the one invocation that
  noted it, with the counts of that moment. Either is posted after the
  invocation answered its own caller (:func:`chalicelib.invocation.later`),
  so a joiner gets its ack first.

Best effort, like every notice: the change itself is stored already, a
failure is logged, and the ``presence`` action stays the authoritative answer.
``join`` events come from the ``joinRoom`` action; ``leave`` events from
``leaveRoom`` and from :class:`chalicelib.cleanup.Cleanup`, the one way
connections leave.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

from chalicelib import invocation, protocol
from chalicelib.clock import iso8601
from chalicelib.invocation import Deadline
from chalicelib.outbox import Outbox
from chalicelib.registry import Departure, Registry, RoomCount

logger = logging.getLogger("switchboard.presence")

STALE_INTERVALS = 3
"""A change noted as waiting this many intervals ago was abandoned (its invocation ended
first): the next change takes it over."""


class Announcer:
    def __init__(
        self,
        registry: Registry,
        outbox: Callable[[Deadline], Outbox],
        max_members: int = 100,
        interval: float = 2.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._registry = registry
        self._outbox = outbox
        self._max_members = max_members
        self._interval = interval
        self._clock = clock
        self._sleep = sleep

    def announce(
        self,
        room: str,
        changes: Iterable[tuple[str, str]],
        deadline: Deadline,
        actor: str | None = None,
        count: RoomCount | None = None,
    ) -> None:
        """Tell the room's watchers that these users (``join``/``leave``) came or went.

        ``count`` is the room's count after the changes (None: unknown, treated
        as small). ``actor`` is the connection whose own ``joinRoom`` caused the
        event: it learns it from its ack, so it gets no per-user event.
        """
        events = list(changes)
        if not events:
            return
        try:
            if count is not None and count.users > self._max_members:
                self._occupancy(room, count, deadline)
            elif count is None or count.users > _arriving(events):
                self._per_user(room, events, deadline, actor)
            # else nobody but the users who came is in the room: nobody to tell
        except Exception:
            logger.exception("presence events for room %s were not delivered", room)

    def departures(self, departures: Sequence[Departure], deadline: Deadline) -> None:
        """Announce every user whose last connection left a room, room by room."""
        by_room: dict[str, list[tuple[str, str]]] = defaultdict(list)
        counts: dict[str, RoomCount | None] = {}
        for departure in departures:
            by_room[departure.room].append((departure.user_id, protocol.PRESENCE_LEAVE))
            counts[departure.room] = departure.count
        for room, changes in by_room.items():
            self.announce(room, changes, deadline, count=counts[room])

    def _per_user(
        self, room: str, events: list[tuple[str, str]], deadline: Deadline, actor: str | None
    ) -> None:
        watchers = [cid for cid in self._registry.room_watchers(room) if cid != actor]
        at = iso8601()
        for user_id, event in events:
            frame = protocol.presence(room, user_id, event, at)
            outbox = self._outbox(deadline)  # each event is an audience of its own
            gone = set(outbox.deliver(watchers, frame, room=room).gone)
            watchers = [cid for cid in watchers if cid not in gone]

    def _occupancy(self, room: str, count: RoomCount, deadline: Deadline) -> None:
        """Send the room's occupancy now if the interval allows, else once it ends."""
        now = self._clock()
        if now >= count.occupancy_at + self._interval:
            claimed = self._registry.claim_occupancy(room, now, self._interval)
            if claimed is not None:  # sent once the caller has its answer
                invocation.later(lambda: self._send_occupancy(room, claimed, deadline))
                return
        if count.occupancy_due > now - STALE_INTERVALS * self._interval:
            return  # another invocation sends it when the interval ends
        if self._registry.mark_occupancy_due(room, now, now - STALE_INTERVALS * self._interval):
            ends = count.occupancy_at + self._interval
            due = ends if ends > now else now + self._interval
            invocation.later(lambda: self._trailing(room, due, deadline))

    def _trailing(self, room: str, due: float, deadline: Deadline) -> None:
        """At the interval's end, send the counts of that moment (unless someone just did)."""
        wait = due - self._clock()
        if wait >= deadline.remaining():
            return  # the note goes stale and the next change takes it over
        if wait > 0:
            self._sleep(wait)
        claimed = self._registry.claim_occupancy(room, self._clock(), self._interval)
        if claimed is not None:
            self._send_occupancy(room, claimed, deadline)

    def _send_occupancy(self, room: str, count: RoomCount, deadline: Deadline) -> None:
        watchers = self._registry.room_watchers(room)
        frame = protocol.occupancy(room, count.users, count.connections)
        self._outbox(deadline).deliver(watchers, frame, room=room)


def _arriving(events: list[tuple[str, str]]) -> int:
    return sum(event == protocol.PRESENCE_JOIN for _, event in events)
