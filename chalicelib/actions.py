"""What each client action does, given an authenticated connection: the action table.

:data:`ACTIONS` is the one table of actions. An entry names the action, the
parser of its fields (a command's ``parse``, built on
:class:`chalicelib.protocol.Fields`) and the handler that carries it out and
returns the frame answering the caller. Adding an action is one entry here:
the registry, the protocol plumbing and delivery need no edit.

The sender's identity always comes from the registry record of its
connection, never from the frame.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib import fanout, protocol
from chalicelib.clock import iso8601
from chalicelib.delivery import DeliveryReport
from chalicelib.invocation import Deadline
from chalicelib.protocol import (
    FORBIDDEN,
    BroadcastAll,
    JoinRoom,
    LeaveRoom,
    Parser,
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
    """One request being carried out: who asked, what, and what was delivered so far."""

    services: Services
    connection: Connection
    request: Request
    deadline: Deadline
    report: DeliveryReport = field(default_factory=DeliveryReport)
    audience: int = 0

    def deliver(
        self, connection_ids: list[str], frame: str, room: str | None = None
    ) -> DeliveryReport:
        """Fan a frame out to targets (through the queue for large audiences) and tally."""
        report = fanout.fan_out(
            self.services, connection_ids, frame, self.deadline, self.audience, room
        )
        self.audience += len(connection_ids)
        self.report = self.report + report
        return report

    def ack(self, delivered: int | None = None) -> str:
        return protocol.ack(
            self.request.action, self.request.request_id, delivered, self.report.queued
        )


Handler = Callable[[ActionContext, Any], str]


@dataclass(frozen=True)
class Action:
    """One client action: its name, how its fields parse, what carries it out."""

    name: str
    parse: Parser
    handler: Handler


def send_message(ctx: ActionContext, command: SendMessage) -> str:
    targets = ctx.services.registry.user_connections(command.target_user_id)
    frame = protocol.message(ctx.connection.user_id, command.text, iso8601())
    return ctx.ack(ctx.deliver(targets, frame).delivered)


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
    return ctx.ack(ctx.deliver(targets, frame, room=command.room).delivered)


def broadcast_all(ctx: ActionContext, command: BroadcastAll) -> str:
    if ADMIN_ROLE not in ctx.connection.roles:
        raise ProtocolError(FORBIDDEN, "broadcastAll needs a token with the 'admin' role")
    frame = protocol.broadcast(ctx.connection.user_id, command.text, iso8601())
    delivered = 0
    for page in ctx.services.registry.all_connection_pages():
        delivered += ctx.deliver(page, frame).delivered
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


ACTIONS: tuple[Action, ...] = (
    Action("sendMessage", SendMessage.parse, send_message),
    Action("joinRoom", JoinRoom.parse, join_room),
    Action("leaveRoom", LeaveRoom.parse, leave_room),
    Action("sendToRoom", SendToRoom.parse, send_to_room),
    Action("broadcastAll", BroadcastAll.parse, broadcast_all),
    Action("whoami", WhoAmI.parse, whoami),
    Action("ping", Ping.parse, ping),
)

_BY_NAME: Mapping[str, Action] = {action.name: action for action in ACTIONS}
PARSERS: Mapping[str, Parser] = {action.name: action.parse for action in ACTIONS}
"""Every action's parser by name, for :func:`chalicelib.protocol.parse_request`."""
ACTION_NAMES = tuple(_BY_NAME)


def perform(ctx: ActionContext) -> str:
    """Carry out the request's command and return the frame that answers it."""
    return _BY_NAME[ctx.request.action].handler(ctx, ctx.request.command)


def _excluding(connection_ids: Iterable[str], excluded: str) -> list[str]:
    return [cid for cid in connection_ids if cid != excluded]
