"""Presence events: the only code that tells a room's watchers who came and who went.

Watchers are the room's member connections holding the ``presence``
permission, read once for all the changes of one event. Best effort, like every
notice: the change itself is stored already, a failure is logged, and the
``presence`` action stays the authoritative answer. ``join`` events come from
the ``joinRoom`` action; ``leave`` events from ``leaveRoom`` and from
:class:`chalicelib.cleanup.Cleanup`, the one way connections leave.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

from chalicelib import protocol
from chalicelib.clock import iso8601
from chalicelib.invocation import Deadline
from chalicelib.outbox import Outbox
from chalicelib.registry import Departure, Registry

logger = logging.getLogger("switchboard.presence")


class Announcer:
    def __init__(self, registry: Registry, outbox: Callable[[Deadline], Outbox]) -> None:
        self._registry = registry
        self._outbox = outbox

    def announce(
        self,
        room: str,
        changes: Iterable[tuple[str, str]],
        deadline: Deadline,
        actor: str | None = None,
    ) -> None:
        """Post (userId, ``join``/``leave``) events to the room's watchers but ``actor``.

        ``actor`` is the connection whose own ``joinRoom`` caused the event: it
        learns it from its ack.
        """
        events = list(changes)
        if not events:
            return
        try:
            watchers = [
                m.connection_id for m in self._registry.room_members(room).live
                if m.presence and m.connection_id != actor
            ]
            at = iso8601()
            for user_id, event in events:
                frame = protocol.presence(room, user_id, event, at)
                outbox = self._outbox(deadline)  # each event is an audience of its own
                gone = set(outbox.deliver(watchers, frame, room=room).gone)
                watchers = [cid for cid in watchers if cid not in gone]
        except Exception:
            logger.exception("presence events for room %s were not delivered", room)

    def departures(self, departures: Sequence[Departure], deadline: Deadline) -> None:
        """Announce every user whose last connection left a room, room by room."""
        by_room: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for departure in departures:
            by_room[departure.room].append((departure.user_id, protocol.PRESENCE_LEAVE))
        for room, changes in by_room.items():
            self.announce(room, changes, deadline)
