"""Gone connections leave the registry here and only here, with one error policy.

Gone means a post answered 410, ``$disconnect`` came, or a read found the
record expired. :meth:`Cleanup.forget` deletes the connections and their
memberships, and the users whose last connection in a room this was are
announced as leaving it (the one place ``leave`` events come from). A failure
is logged and never fails the caller: the frame was already delivered to
everyone else, and an item left behind is found gone again by the next post
and expires with its TTL in any case.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from chalicelib.invocation import Deadline
from chalicelib.registry import Departure, Registry

logger = logging.getLogger("switchboard.cleanup")

Announce = Callable[[Sequence[Departure], Deadline], None]
"""Tells each room's watchers who left it (:meth:`chalicelib.presence.Announcer.departures`)."""


class Cleanup:
    def __init__(self, registry: Registry, announce: Announce) -> None:
        self._registry = registry
        self._announce = announce

    def forget(self, gone: Sequence[str], deadline: Deadline, room: str | None = None) -> bool:
        """Remove connections that are gone; False when the removal failed (logged).

        ``room`` names the room an audience was read from, so that memberships
        of these connections in it are deleted too, whatever their items say.
        """
        if not gone:
            return True
        try:
            departures = self._registry.remove_connections(
                gone, rooms=() if room is None else (room,)
            )
        except Exception:
            logger.exception(
                "cleanup of %d gone connections failed; TTL will reclaim them", len(gone)
            )
            return False
        self._announce(departures, deadline)
        return True
