"""What each client action does, given an authenticated connection: the action table.

:data:`ACTIONS` is the one table of actions. An entry names the action, the
parser of its fields (a command's ``parse``, built on
:class:`chalicelib.protocol.Fields`), the room permissions it needs and the
handler that carries it out and returns the frame answering the caller. The
dispatcher (:func:`perform`) checks the permissions once, before the handler,
in the room the command names (its ``room`` field unless the entry says
otherwise); a command that names no room needs none. Then the frame's rate
is judged (the entry's ``rate``, or the stage's default) and the handler runs.
A ``request`` is answered exactly once; a ``notice`` only when refused, or
when its frame has an ``id``.

The table is :data:`ACTIONS`, the built-ins whose handlers use the services
beneath, followed by every action declared through :mod:`chalicelib.extend` —
a team's own, in its own module, and built-ins such as ``typing``
(:mod:`chalicelib.indicators`) — which :func:`table` turns into entries.

The sender's identity and permissions always come from the registry record
of its connection, never from the frame.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib import (
    contexts,
    extend,
    fields,
    indicators,  # noqa: F401  (declares its actions through extend)
    protocol,
)
from chalicelib.action_context import ActionContext
from chalicelib.cleanup import Cleanup
from chalicelib.clock import iso8601
from chalicelib.invocation import Deadline
from chalicelib.permissions import (
    ADMIN_ROLE,
    HISTORY,
    JOIN,
    PRESENCE,
    PUBLISH,
)
from chalicelib.protocol import (
    BAD_REQUEST,
    FORBIDDEN,
    BroadcastAll,
    History,
    JoinRoom,
    LeaveRoom,
    Message,
    Parser,
    Ping,
    Position,
    Presence,
    ProtocolError,
    Refresh,
    Resume,
    SendMessage,
    SendToRoom,
    WhoAmI,
)
from chalicelib.ratelimit import Rate
from chalicelib.registry import Registry, RoomCount, TooManyRooms
from chalicelib.streams import NO_HISTORY, Stream

Handler = Callable[[ActionContext, Any], str]
Requirement = Callable[[Any], Iterable[str]]
"""The room permissions a command needs."""
RoomOf = Callable[[Any], "str | None"]
"""The room a command acts in, where its permissions are checked; None: no room."""


def requires(*permissions: str) -> Requirement:
    """The same permissions, whatever the command says."""
    return lambda command: permissions


def no_permission(command: Any) -> tuple[str, ...]:
    return ()


def named_room(command: Any) -> str | None:
    """The command's ``room`` field, the convention every room action follows."""
    room = getattr(command, "room", None)
    return room if isinstance(room, str) else None


@dataclass(frozen=True)
class Action:
    """One client action: its name, how its fields parse, what it needs, what carries it out."""

    name: str
    parse: Parser
    handler: Handler
    needs: Requirement = no_permission
    room: RoomOf = named_room
    kind: str = extend.REQUEST
    """``request``: answered exactly once; ``notice``: only when refused or asked (an ``id``)."""
    rate: Rate | None = None
    """Its limit, shared by every container; None: the stage's ``DEFAULT_ACTION_RATE``."""


# -- direct messages and the personal stream ---------------------------------------


def send_message(ctx: ActionContext, command: SendMessage) -> str:
    """Keep the message in the recipient's stream first, then deliver it to their devices."""
    message = protocol.storable(Message(ctx.connection.user_id, command.text, iso8601()))
    streams = ctx.deps.streams
    if streams is not None:
        message = streams.append(Stream.of_user(command.target_user_id), message)
    targets = ctx.deps.registry.user_connections(command.target_user_id)
    delivered = ctx.deliver(targets, protocol.message(message)).delivered
    return ctx.ack(delivered, stored=True if streams is not None else None)


def resume(ctx: ActionContext, command: Resume) -> str:
    position, recovered = _catch_up(ctx, Stream.of_user(ctx.connection.user_id), command.since)
    return ctx.ack(position=position, recovered=recovered)


# -- rooms ----------------------------------------------------------------------------


def join_room(ctx: ActionContext, command: JoinRoom) -> str:
    """Membership first, then the stream's position: no message falls between the two.

    A message stored before the membership was written is in the stream at or
    below the position read after it (replayed when ``since`` asks); one whose
    sender read the members after it is delivered live.
    """
    rooms = ctx.connection.rooms
    limit = ctx.deps.settings.max_rooms_per_connection
    if command.room not in rooms and len(rooms) >= limit:
        raise ProtocolError(BAD_REQUEST, f"a connection may be in at most {limit} rooms")
    try:  # the cap again, held by DynamoDB against concurrent joins on this connection
        change = ctx.deps.registry.join_room(
            ctx.connection, command.room, presence=ctx.may(PRESENCE, command.room),
            max_rooms=limit,
        )
    except TooManyRooms as refused:
        raise ProtocolError(BAD_REQUEST, str(refused)) from None
    if change.changed:
        _announce(ctx, command.room, protocol.PRESENCE_JOIN, change.count)
    position, recovered = _catch_up(ctx, Stream.of_room(command.room), command.since)
    return ctx.ack(room=command.room, position=position, recovered=recovered)


def leave_room(ctx: ActionContext, command: LeaveRoom) -> str:
    change = ctx.deps.registry.leave_room(ctx.connection, command.room)
    if change.changed:
        _announce(ctx, command.room, protocol.PRESENCE_LEAVE, change.count)
    return ctx.ack()


def send_to_room(ctx: ActionContext, command: SendToRoom) -> str:
    """Store the message (its ``seq``) before reading the members it goes to."""
    ctx.require_member(command.room)
    message = protocol.storable(
        Message(
            ctx.connection.user_id, command.text, iso8601(), command.room,
            reply_to=command.reply_to,
        )
    )
    streams = ctx.deps.streams
    if streams is not None:
        message = streams.append(Stream.of_room(command.room), message)
    targets = ctx.others_in(command.room)
    delivered = ctx.deliver(targets, protocol.message(message), room=command.room).delivered
    return ctx.ack(delivered, position=message.position)


def presence(ctx: ActionContext, command: Presence) -> str:
    """A page of who is in the room; connections found gone are forgotten (leaves announced).

    The one room read that repairs what it finds: an answer about presence must
    not list a user none of whose connections exists. Each connection the
    page's users list is checked against its own item (one batched read); those
    gone or expired leave through the cleanup. Reads for delivery never write.
    """
    counts, next_after = present(ctx.deps.registry, ctx.deps.cleanup, command, ctx.deadline)
    return protocol.members(ctx.request.request_id, command.room, counts, next_after)


def present(
    registry: Registry, cleanup: Cleanup, command: Presence, deadline: Deadline
) -> tuple[list[tuple[str, int]], str | None]:
    """A page of the room's users with their live connections, and the next page's ``after``;
    connections found gone are forgotten (the ``presence`` action's and the server API's)."""
    page = registry.presence_page(command.room, command.after, command.limit)
    listed = {cid: user_id for user_id, conns in page.users for cid in conns}
    live = registry.live_connections(listed)
    gone = [cid for cid in listed if cid not in live]
    cleanup.forget(gone, deadline, command.room, owners={cid: listed[cid] for cid in gone})
    counts = [
        (user_id, sum(cid in live for cid in conns)) for user_id, conns in page.users
    ]
    return [c for c in counts if c[1]], page.next_after


def history(ctx: ActionContext, command: History) -> str:
    """A page of a room's stream, or of the caller's own when no room is named."""
    streams = ctx.deps.streams
    if streams is None:
        raise ProtocolError(BAD_REQUEST, NO_HISTORY)
    stream = (
        Stream.of_user(ctx.connection.user_id) if command.room is None
        else Stream.of_room(command.room)
    )
    page = streams.page(stream, command.before_seq, command.limit)
    return protocol.history(
        ctx.request.request_id, command.room, page.epoch, page.messages, page.has_more
    )


# -- everyone ------------------------------------------------------------------------


def broadcast_all(ctx: ActionContext, command: BroadcastAll) -> str:
    if ADMIN_ROLE not in ctx.connection.roles:
        raise ProtocolError(FORBIDDEN, "broadcastAll needs a token with the 'admin' role")
    frame = protocol.fitting(
        protocol.broadcast(ctx.connection.user_id, command.text, iso8601()), "the broadcast"
    )
    delivered = 0
    for page in ctx.deps.registry.all_connection_pages():
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


def refresh(ctx: ActionContext, command: Refresh) -> str:
    """Replace the connection's token with a newer one of the same user; its ``exp`` counts."""
    lifetime = ctx.deps.lifetime
    if lifetime is None:
        raise ProtocolError(BAD_REQUEST, "this stage does not refresh tokens")
    return ctx.ack(expires_at=lifetime.refresh(ctx.connection, command.token))


def _join_needs(command: JoinRoom) -> tuple[str, ...]:
    return (JOIN, HISTORY) if command.since is not None else (JOIN,)


ACTIONS: tuple[Action, ...] = (
    Action("sendMessage", SendMessage.parse, send_message),
    Action("joinRoom", JoinRoom.parse, join_room, _join_needs),
    Action("leaveRoom", LeaveRoom.parse, leave_room),
    Action("sendToRoom", SendToRoom.parse, send_to_room, requires(PUBLISH)),
    Action("broadcastAll", BroadcastAll.parse, broadcast_all),
    Action("presence", Presence.parse, presence, requires(PRESENCE)),
    Action("history", History.parse, history, requires(HISTORY)),
    Action("resume", Resume.parse, resume),
    Action("whoami", WhoAmI.parse, whoami),
    Action("ping", Ping.parse, ping),
    Action("refresh", Refresh.parse, refresh),
)


def declared(declaration: extend.Declaration) -> Action:
    """The table entry of an action declared through :mod:`chalicelib.extend`."""
    room_field = declaration.room_field
    return Action(
        declaration.name,
        fields.parser(declaration.fields),
        contexts.handler_of(declaration),
        requires(*declaration.needs),
        (lambda values: values.get(room_field)) if room_field else (lambda values: None),
        declaration.kind,
        declaration.rate,
    )


_table: tuple[int, Mapping[str, Action]] = (-1, {})


def table() -> Mapping[str, Action]:
    """Every action by name: :data:`ACTIONS`, then those declared through :mod:`extend`."""
    global _table
    version, built = _table
    if version != extend.CATALOG.version:
        version, entries = extend.CATALOG.version, extend.CATALOG.declarations()
        built = {action.name: action for action in ACTIONS}
        for declaration in entries:
            if declaration.name in built:
                raise extend.ExtensionError(
                    f"{declaration.origin} declares {declaration.name!r}, a built-in action"
                )
            built[declaration.name] = declared(declaration)
        _table = (version, built)
    return built


class _Parsers(Mapping[str, Parser]):
    """Every action's parser by name, as the table has them now."""

    def __getitem__(self, name: str) -> Parser:
        return table()[name].parse

    def __iter__(self) -> Iterator[str]:
        return iter(table())

    def __len__(self) -> int:
        return len(table())


PARSERS: Mapping[str, Parser] = _Parsers()
"""Every action's parser by name, for :func:`chalicelib.protocol.parse_request`."""
ACTION_NAMES = tuple(table())
"""The built-in actions' names (a team's own are in :func:`table`)."""


def perform(ctx: ActionContext) -> str | None:
    """Check the request's permissions and rate, then carry it out; returns the frame
    answering it, or None for a notice that wants no answer."""
    action = table()[ctx.request.action]
    command = ctx.request.command
    room = action.room(command)
    if room is not None:
        for permission in action.needs(command):
            if not ctx.may(permission, room):
                raise ProtocolError(
                    FORBIDDEN,
                    f"{action.name} needs the '{permission}' permission for room '{room}'",
                )
    asked = action.kind == extend.REQUEST or ctx.request.request_id is not None
    _judge_rate(ctx, action, asked)
    answer = action.handler(ctx, command)
    return answer if asked else None


def _judge_rate(ctx: ActionContext, action: Action, asked: bool) -> None:
    """Refuse a frame over its action's limit: answered ``rate_limited`` when it asked for
    an answer, or when it is the first refusal of its window; otherwise dropped silently."""
    limiter = ctx.deps.limiter
    if limiter is None:
        return
    connection = ctx.connection
    verdict = limiter.admit(action.name, action.rate, connection.connection_id, connection.user_id)
    if verdict.admitted:
        return
    raise ProtocolError(
        protocol.RATE_LIMITED,
        f"{action.name} is limited to {verdict.rate}; try again in {verdict.retry_after_ms} ms",
        answered=asked or verdict.first,
        retryAfterMs=verdict.retry_after_ms,
    )


def _announce(ctx: ActionContext, room: str, event: str, count: RoomCount | None) -> None:
    ctx.deps.announcer.announce(
        room, [(ctx.connection.user_id, event)], ctx.deadline,
        actor=ctx.connection.connection_id, count=count,
    )


def _catch_up(
    ctx: ActionContext, stream: Stream, since: Position | None
) -> tuple[Position | None, bool | None]:
    """The stream's position, after replaying what ``since`` missed (then whether all was).

    ``recovered`` is None without ``since``. With history off there is no
    position, and nothing can be recovered.
    """
    streams = ctx.deps.streams
    if streams is None:
        return None, None if since is None else False
    if since is None:
        return streams.position(stream), None
    recovery = streams.recover(stream, since, ctx.deps.settings.recovery_max_messages)
    recovered = recovery.missed is not None and ctx.replay(recovery.missed)
    return recovery.position, recovered
