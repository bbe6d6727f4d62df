"""What an action runs with: the container's :class:`ActionDeps` and the one request being
carried out, :class:`ActionContext` — the caller's connection, what it asked, where its frames
go and whether it may.

Kept apart from the action table (:mod:`chalicelib.actions`) so that the contexts team code
runs with (:mod:`chalicelib.contexts`) and the table both build on it, neither on the other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chalicelib import protocol
from chalicelib.cleanup import Cleanup
from chalicelib.delivery import DeliveryReport, Outcome
from chalicelib.invocation import Deadline
from chalicelib.lifetime import TokenLifetime
from chalicelib.outbox import Outbox
from chalicelib.permissions import RoomGrants, may
from chalicelib.presence import Announcer
from chalicelib.protocol import Message, Position, Request
from chalicelib.ratelimit import RateLimiter
from chalicelib.registry import Connection, Registry
from chalicelib.settings import Settings
from chalicelib.streams import Streams


@dataclass(frozen=True)
class ActionDeps:
    """What the actions use, the same for every frame of a container."""

    settings: Settings
    registry: Registry
    streams: Streams | None
    announcer: Announcer
    cleanup: Cleanup
    outbox: Callable[[Deadline], Outbox]
    """A request's :class:`~chalicelib.outbox.Outbox`, made for its deadline."""
    limiter: RateLimiter | None = None
    """Judges every frame's rate; ``None``: no limits."""
    lifetime: TokenLifetime | None = None
    """Connections' token lifetime (expiry and ``refresh``); ``None``: tokens never end one."""


@dataclass
class ActionContext:
    """One request being carried out: who asked, what, and what it delivered so far."""

    deps: ActionDeps
    connection: Connection
    request: Request
    outbox: Outbox

    @property
    def deadline(self) -> Deadline:
        return self.outbox.deadline

    @property
    def report(self) -> DeliveryReport:
        return self.outbox.report

    def may(self, permission: str, room: str) -> bool:
        """Whether the caller holds ``permission`` in ``room``: its token's, or the default."""
        return connection_may(self.connection, self.deps.settings, permission, room)

    def require_member(self, room: str | None) -> None:
        """Refuse (``forbidden``) an action in a room this connection has not joined."""
        if room not in self.connection.rooms:
            raise protocol.ProtocolError(
                protocol.FORBIDDEN, f"join room {room!r} before {self.request.action} in it"
            )

    def deliver(
        self, connection_ids: list[str], frame: str, room: str | None = None
    ) -> DeliveryReport:
        """Fan a frame out to targets (through the queue for large audiences) and tally."""
        return self.outbox.deliver(connection_ids, frame, room)

    def others_in(self, room: str) -> list[str]:
        """The room's live member connections but the caller's (one Query)."""
        me = self.connection.connection_id
        return [c for c in self.deps.registry.room_connections(room) if c != me]

    def replay(self, messages: Sequence[Message]) -> bool:
        """Post missed messages to the caller, in order; False when one did not arrive."""
        for message in messages:
            if self.deadline.remaining() <= 0:
                return False
            outcome = self.outbox.send(self.connection.connection_id, protocol.message(message))
            if outcome is not Outcome.DELIVERED:
                return False
        return True

    def ack(
        self,
        delivered: int | None = None,
        *,
        room: str | None = None,
        position: Position | None = None,
        recovered: bool | None = None,
        stored: bool | None = None,
        expires_at: int | None = None,
    ) -> str:
        return protocol.ack(
            self.request.action, self.request.request_id, delivered, self.report.queued,
            room=room, position=position, recovered=recovered, stored=stored,
            expires_at=expires_at,
        )


def connection_may(
    connection: Connection, settings: Settings, permission: str, room: str
) -> bool:
    """Whether a connection holds ``permission`` in ``room``: its token's or the default."""
    grants = connection.grants
    if grants is None:
        grants = RoomGrants.everywhere(settings.default_room_permissions)
    return may(connection.roles, grants, room, permission)
