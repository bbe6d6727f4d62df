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
import time
from collections.abc import Callable, Mapping, Sequence

from chalicelib.invocation import Deadline
from chalicelib.registry import Departure, Registry

logger = logging.getLogger("switchboard.cleanup")

Announce = Callable[[Sequence[Departure], Deadline], None]
"""Tells each room's watchers who left it (:meth:`chalicelib.presence.Announcer.departures`)."""


ATTEMPTS = 5
"""Tries of one removal: every step is idempotent, so a removal that failed half-way
(throttled, a timeout) is simply done again, while the deadline allows."""
RETRY_DELAY_SECONDS = 0.05
"""The first pause between tries; it doubles (0.75 s in all, at most)."""


class Cleanup:
    def __init__(
        self,
        registry: Registry,
        announce: Announce,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._registry = registry
        self._announce = announce
        self._sleep = sleep

    def forget(
        self,
        gone: Sequence[str],
        deadline: Deadline,
        room: str | None = None,
        owners: Mapping[str, str] | None = None,
    ) -> bool:
        """Remove connections that are gone; False when the removal failed (logged).

        ``room`` names the room an audience was read from, so that memberships
        of these connections in it are deleted too, whatever their items say.
        ``owners`` names the user of connections found in a user's presence in
        ``room`` after their own items were gone, so they leave it too.

        A removal that fails is tried again (up to :data:`ATTEMPTS` times while
        the deadline allows). What a last failure leaves behind is found again:
        by the next post (410), by a ``presence`` read (which checks every
        listed connection's item) and by its TTL.
        """
        if not gone:
            return True
        for attempt in range(1, ATTEMPTS + 1):
            try:
                departures = self._registry.remove_connections(
                    gone, rooms=() if room is None else (room,), owners=owners
                )
            except Exception:
                delay = RETRY_DELAY_SECONDS * 2 ** (attempt - 1)
                if attempt < ATTEMPTS and delay < deadline.remaining():
                    logger.warning("cleanup of %d gone connections failed; retrying", len(gone))
                    self._sleep(delay)
                    continue
                logger.exception(
                    "cleanup of %d gone connections failed; TTL will reclaim them", len(gone)
                )
                return False
            self._announce(departures, deadline)
            return True
        return False
