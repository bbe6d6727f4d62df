"""What each client action does, given an authenticated connection.

Each action takes the caller's context and its parsed command and returns the
frame that answers the caller. The sender's identity always comes from the
registry record of its connection, never from the frame.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from chalicelib import fanout, protocol
from chalicelib.clock import iso8601
from chalicelib.delivery import Deadline, DeliveryReport, Outcome
from chalicelib.protocol import (
    FORBIDDEN,
    BroadcastAll,
    JoinRoom,
    LeaveRoom,
    Ping,
    ProtocolError,
    Request,
    SendMessage,
    SendToRoom,
    WhoAmI,
)
from chalicelib.registry import Connection
from chalicelib.runtime import Services

ADMIN_ROLE = "admin"


@dataclass
class ActionContext:
    services: Services
    connection: Connection
    request: Request
    deadline: Deadline
    report: DeliveryReport = field(default_factory=DeliveryReport)
    audience: int = 0

    def fan_out(self, connection_ids: list[str], frame: str) -> DeliveryReport:
        """Deliver to targets (through the queue for large audiences) and tally."""
        report = fanout.fan_out(
            self.services, connection_ids, frame, self.deadline, self.audience
        )
        self.audience += len(connection_ids)
        self.report = self.report + report
        return report

    def ack(self, delivered: int | None = None) -> str:
        return protocol.ack(
            self.request.action, self.request.request_id, delivered, self.report.queued
        )


def reply(services: Services, connection_id: str, frame: str, deadline: Deadline) -> None:
    """Answer the caller; a caller that has already gone is forgotten."""
    if services.delivery.send(connection_id, frame, deadline) is Outcome.GONE:
        services.registry.remove_connection(connection_id)


def send_message(ctx: ActionContext, command: SendMessage) -> str:
    targets = ctx.services.registry.user_connections(command.target_user_id)
    frame = protocol.message(ctx.connection.user_id, command.text, iso8601())
    return ctx.ack(ctx.fan_out(targets, frame).delivered)


def join_room(ctx: ActionContext, command: JoinRoom) -> str:
    rooms = ctx.connection.rooms
    limit = ctx.services.settings.max_rooms_per_connection
    if command.room not in rooms and len(rooms) >= limit:
        raise ProtocolError(
            protocol.BAD_REQUEST, f"a connection may be in at most {limit} rooms"
        )
    ctx.services.registry.join_room(ctx.connection, command.room)
    return ctx.ack()


def leave_room(ctx: ActionContext, command: LeaveRoom) -> str:
    ctx.services.registry.leave_room(ctx.connection, command.room)
    return ctx.ack()


def send_to_room(ctx: ActionContext, command: SendToRoom) -> str:
    if command.room not in ctx.connection.rooms:
        raise ProtocolError(FORBIDDEN, f"join room {command.room!r} before sending to it")
    members = ctx.services.registry.room_connections(command.room)
    targets = _excluding(members, ctx.connection.connection_id)
    frame = protocol.message(ctx.connection.user_id, command.text, iso8601(), command.room)
    report = ctx.fan_out(targets, frame)
    if report.gone:
        ctx.services.registry.remove_memberships(command.room, report.gone)
    return ctx.ack(report.delivered)


def broadcast_all(ctx: ActionContext, command: BroadcastAll) -> str:
    if ADMIN_ROLE not in ctx.connection.roles:
        raise ProtocolError(FORBIDDEN, "broadcastAll needs a token with the 'admin' role")
    frame = protocol.broadcast(ctx.connection.user_id, command.text, iso8601())
    delivered = 0
    for page in ctx.services.registry.all_connection_pages():
        delivered += ctx.fan_out(page, frame).delivered
    return ctx.ack(delivered)


def whoami(ctx: ActionContext, command: WhoAmI) -> str:
    connection = ctx.connection
    return protocol.whoami(
        connection.connection_id,
        connection.user_id,
        sorted(connection.rooms),
        ctx.request.request_id,
    )


def ping(ctx: ActionContext, command: Ping) -> str:
    return protocol.pong(ctx.request.request_id)


_ACTIONS: dict[type, Callable[[ActionContext, Any], str]] = {
    SendMessage: send_message,
    JoinRoom: join_room,
    LeaveRoom: leave_room,
    SendToRoom: send_to_room,
    BroadcastAll: broadcast_all,
    WhoAmI: whoami,
    Ping: ping,
}


def perform(ctx: ActionContext) -> str:
    """Carry out the request's command and return the frame that answers it."""
    command = ctx.request.command
    return _ACTIONS[type(command)](ctx, command)


def _excluding(connection_ids: Iterable[str], excluded: str) -> list[str]:
    return [cid for cid in connection_ids if cid != excluded]
