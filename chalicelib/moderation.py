"""What a backend does to a user's live connections: subscribe, unsubscribe, disconnect, revoke.

Every live connection of the user is acted on, and each is told, as the
protocol documents it: ``{"type":"subscribed","room","seq","epoch"}``,
``{"type":"unsubscribed","room","reason"}`` or, before it is closed,
``{"type":"disconnect","reason","reconnect"}``. A subscribe or unsubscribe is
what the user's own ``joinRoom``/``leaveRoom`` would be — the same registry
writes, in the same order, and the same presence events — except that no room
permission is asked for: the backend decides. A user's connections are one
Query of GSI1 and their records one consistent ``BatchGetItem``.

A connection that is not live right now (a device reconnecting) is not told;
a client re-joins its rooms when it comes back, so a backend that wants a user
out of a room for good also stops granting it in the user's tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chalicelib import endpoint, protocol
from chalicelib.action_context import connection_may
from chalicelib.closing import Closed, Closer
from chalicelib.delivery import Delivery
from chalicelib.outbox import Outbox
from chalicelib.permissions import PRESENCE
from chalicelib.presence import Announcer
from chalicelib.registry import Connection, NotConnected, Registry, TooManyRooms
from chalicelib.revocations import Revocations, refuses
from chalicelib.settings import Settings
from chalicelib.streams import Stream, Streams

REVOKED_REASON = "token revoked"


@dataclass(frozen=True)
class Revoked:
    issued_before: int
    """The moment in force: tokens issued before it are refused."""
    closed: Closed


class Moderation:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        streams: Streams | None,
        announcer: Announcer,
        closer: Closer,
        revocations: Revocations,
        delivery: Delivery,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._streams = streams
        self._announcer = announcer
        self._closer = closer
        self._revocations = revocations
        self._delivery = delivery

    def subscribe(self, user_id: str, room: str, outbox: Outbox) -> int:
        """Join every live connection of the user to the room; returns how many joined.

        A connection already in ``MAX_ROOMS_PER_CONNECTION`` other rooms is left
        out (the cap is held by DynamoDB, as for ``joinRoom``). Memberships are
        written before the stream's position is read, so the position each
        ``subscribed`` frame carries misses nothing.
        """
        connections = self._live(user_id)
        if not connections:
            return 0
        joined: list[str] = []
        limit = self._settings.max_rooms_per_connection
        for connection in connections:
            presence = connection_may(connection, self._settings, PRESENCE, room)
            try:
                change = self._registry.join_room(connection, room, presence, max_rooms=limit)
            except (NotConnected, TooManyRooms):
                continue
            joined.append(connection.connection_id)
            if change.changed:
                self._announcer.announce(
                    room, [(user_id, protocol.PRESENCE_JOIN)], outbox.deadline,
                    actor=connection.connection_id, count=change.count,
                )
        if joined:
            position = (None if self._streams is None
                        else self._streams.position(Stream.of_room(room)))
            outbox.deliver(joined, protocol.subscribed(room, position), room)
        return len(joined)

    def unsubscribe(self, user_id: str, room: str, reason: str, outbox: Outbox) -> int:
        """Take every live connection of the user out of the room; returns how many left."""
        members = [c for c in self._live(user_id) if room in c.rooms]
        left: list[str] = []
        for connection in members:
            try:
                change = self._registry.leave_room(connection, room)
            except NotConnected:
                continue
            left.append(connection.connection_id)
            if change.changed:
                self._announcer.announce(
                    room, [(user_id, protocol.PRESENCE_LEAVE)], outbox.deadline,
                    count=change.count,
                )
        outbox.deliver(left, protocol.unsubscribed(room, reason), room)
        return len(left)

    def disconnect(
        self, connection_ids: Sequence[str], reason: str, reconnect: bool, outbox: Outbox
    ) -> Closed:
        """Tell each connection to go (and whether it may come back), then close it."""
        frame = protocol.disconnect(reason, reconnect)
        return self._closer.end(connection_ids, frame, outbox.deadline)

    def revoke(self, user_id: str, issued_before: int, outbox: Outbox) -> Revoked:
        """Refuse the user's tokens issued before ``issued_before`` from now on, and close
        the live connections that hold one (``reconnect: false``)."""
        in_force = self._revocations.revoke(user_id, issued_before)
        held = [
            c.connection_id for c in self._live(user_id) if refuses(in_force, c.issued_at)
        ]
        closed = self.disconnect(held, REVOKED_REASON, False, outbox)
        return Revoked(in_force, closed)

    def _live(self, user_id: str) -> list[Connection]:
        """The user's live connections, once the management endpoint is known for them."""
        connections = self._registry.get_connections(self._registry.user_connections(user_id))
        if not connections or not self._delivery.ensure_endpoint(
            endpoint.of_connection(self._settings.management_endpoint, connections[0])
        ):
            return []
        return connections
