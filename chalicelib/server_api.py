"""The server API: the ``server_api`` function a team's own services invoke with the AWS SDK.

The event names a method and its parameters, the answer is its result or an
error, and nothing raises out of it::

    {"method": "publish", "params": {"room": "lobby", "data": {...}, "store": true}}
    {"result": {"delivered": 3, "queued": 0, "seq": 18, "epoch": "5c1e0b7a9d2f4e61"}}
    {"error": {"code": "bad_request", "message": "'room' must be ..."}}

Codes: ``unknown_method``, ``bad_request`` (a parameter missing, of the wrong
type or unknown), ``not_found`` (a connection that is not registered) and
``internal`` (the table or the management API failed, or a publish with the
same idempotency key is still running: try again). :data:`METHODS` is the one
table of methods: each names its parser, which reads the parameters through
:class:`Params` (a name no parser reads is refused), and its handler, which
returns the result. Moderation is :mod:`chalicelib.moderation`'s, publishing
:mod:`chalicelib.publish`'s; what is left here is reading and counting. No
method scans the table: ``rooms`` and ``info`` read GSI2, the sparse index of
connections (``Registry.connection_summaries``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from chalicelib import protocol
from chalicelib.actions import present
from chalicelib.cleanup import Cleanup
from chalicelib.entry import Call
from chalicelib.invocation import Deadline
from chalicelib.moderation import Moderation
from chalicelib.outbox import Outbox
from chalicelib.protocol import (
    BAD_REQUEST,
    DEFAULT_HISTORY_PAGE,
    HISTORY_PAGE_LIMIT,
    INTERNAL,
    MAX_SEQ,
    ROOM_PATTERN,
    Fields,
    Presence,
    ProtocolError,
)
from chalicelib.publish import (
    DEFAULT_TYPE,
    Audience,
    Publication,
    Publisher,
    PublishError,
    PublishPending,
)
from chalicelib.registry import Registry
from chalicelib.settings import Settings
from chalicelib.streams import NO_HISTORY, Stream, Streams

logger = logging.getLogger("switchboard.server_api")

UNKNOWN_METHOD = "unknown_method"
NOT_FOUND = "not_found"
MAX_BROADCAST_ROOMS = 100
MAX_KEY_LENGTH = 128
MAX_REASON_LENGTH = 256
MAX_CONNECTION_ID_LENGTH = 128
DEFAULT_ROOMS_PAGE = 1000
MAX_ROOMS_PAGE = 10_000
DISCONNECT_REASON = "disconnected by the server"
UNSUBSCRIBE_REASON = "unsubscribed by the server"


class ApiError(Exception):
    """A call answered with an error instead of a result."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ServerDeps:
    """What the methods use, the same for every call of a container."""

    settings: Settings
    registry: Registry
    streams: Streams | None
    publisher: Publisher
    moderation: Moderation
    cleanup: Cleanup
    outbox: Callable[[Deadline], Outbox]
    clock: Callable[[], float] = time.time


@dataclass
class Context:
    """One call being carried out."""

    deps: ServerDeps
    deadline: Deadline

    @cached_property
    def outbox(self) -> Outbox:
        return self.deps.outbox(self.deadline)


# -- parameters -------------------------------------------------------------------------


class _Read(dict[str, Any]):
    """The params, remembering every name a parser asked for."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)


class Params(Fields):
    """Typed access to a call's params (``bad_request`` on misuse), the protocol's and more."""

    def __init__(self, params: Mapping[str, Any], max_text_bytes: int) -> None:
        self._read = _Read(params)
        super().__init__(self._read, max_text_bytes)

    def unknown(self) -> list[str]:
        """Params no parser asked for."""
        return sorted(set(self._read) - self._read.asked)

    def given(self, name: str) -> bool:
        return self.value(name) is not None

    def one_of(self, *names: str) -> str:
        """The one of ``names`` that is given (exactly one must be)."""
        named = [name for name in names if self.given(name)]
        if len(named) != 1:
            raise ProtocolError(BAD_REQUEST, f"name exactly one of {', '.join(map(repr, names))}")
        return named[0]

    def flag(self, name: str, default: bool) -> bool:
        value = self.value(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ProtocolError(BAD_REQUEST, f"'{name}' must be true or false")
        return value

    def json(self, name: str) -> Any:
        value = self.value(name)
        if value is None:
            raise ProtocolError(BAD_REQUEST, f"'{name}' is required (any JSON value but null)")
        return value

    def bounded_string(self, name: str, limit: int) -> str:
        value = self.string(name)
        if not 1 <= len(value) <= limit:
            raise ProtocolError(BAD_REQUEST, f"'{name}' must be 1-{limit} characters")
        return value

    def optional_string(self, name: str, limit: int, default: str | None = None) -> str | None:
        return self.bounded_string(name, limit) if self.given(name) else default

    def rooms(self, name: str) -> list[str]:
        value = self.value(name)
        if (
            not isinstance(value, list)
            or not 1 <= len(value) <= MAX_BROADCAST_ROOMS
            or not all(isinstance(room, str) and ROOM_PATTERN.fullmatch(room) for room in value)
            or len(set(value)) != len(value)
        ):
            raise ProtocolError(
                BAD_REQUEST,
                f"'{name}' must be a list of 1-{MAX_BROADCAST_ROOMS} distinct room names",
            )
        return list(value)


# -- methods ---------------------------------------------------------------------------------


def _publication(params: Params, audience: Audience) -> Publication:
    return Publication(
        audience=audience,
        data=params.json("data"),
        type=params.optional_string("type", 64, DEFAULT_TYPE) or DEFAULT_TYPE,
        store=params.flag("store", False),
        idempotency_key=params.optional_string("idempotencyKey", MAX_KEY_LENGTH),
    )


def _audience(params: Params) -> Audience:
    named = params.one_of("room", "userId", "all")
    if named == "room":
        return Audience(room=params.room())
    if named == "userId":
        return Audience(user_id=params.user_id("userId"))
    if params.value("all") is not True:
        raise ProtocolError(BAD_REQUEST, "'all' must be true")
    return Audience()


def parse_publish(params: Params) -> Publication:
    return _publication(params, _audience(params))


def publish(ctx: Context, publication: Publication) -> dict[str, Any]:
    return ctx.deps.publisher.publish(publication, ctx.outbox)


@dataclass(frozen=True)
class Broadcast:
    publications: list[Publication]

    @staticmethod
    def parse(params: Params) -> Broadcast:
        rooms = params.rooms("rooms")
        return Broadcast([_publication(params, Audience(room=room)) for room in rooms])


def broadcast(ctx: Context, command: Broadcast) -> dict[str, Any]:
    """Every room's publish, one answer each; a room that failed says so and the rest go on."""
    publisher = ctx.deps.publisher
    for publication in command.publications:
        publisher.checked_entry(publication)  # refuse the whole call before publishing anything
    answers: list[dict[str, Any]] = []
    for publication in command.publications:
        room = publication.audience.room
        try:
            answers.append({"room": room, **publisher.publish(publication, ctx.outbox)})
        except PublishPending as error:
            answers.append({"room": room, "error": _error(INTERNAL, str(error))})
        except Exception:
            logger.exception("broadcast to room %s failed", room)
            answers.append({"room": room, "error": _error(INTERNAL, _FAILED)})
    return {"rooms": answers}


@dataclass(frozen=True)
class UserRoom:
    user_id: str
    room: str
    reason: str = UNSUBSCRIBE_REASON

    @staticmethod
    def parse(params: Params) -> UserRoom:
        return UserRoom(params.user_id("userId"), params.room())

    @staticmethod
    def parse_with_reason(params: Params) -> UserRoom:
        reason = params.optional_string("reason", MAX_REASON_LENGTH, UNSUBSCRIBE_REASON)
        return UserRoom(params.user_id("userId"), params.room(), reason or UNSUBSCRIBE_REASON)


def subscribe(ctx: Context, command: UserRoom) -> dict[str, Any]:
    return {"connections": ctx.deps.moderation.subscribe(command.user_id, command.room,
                                                         ctx.outbox)}


def unsubscribe(ctx: Context, command: UserRoom) -> dict[str, Any]:
    return {"connections": ctx.deps.moderation.unsubscribe(
        command.user_id, command.room, command.reason, ctx.outbox)}


@dataclass(frozen=True)
class Disconnect:
    user_id: str | None
    connection_id: str | None
    reason: str
    reconnect: bool

    @staticmethod
    def parse(params: Params) -> Disconnect:
        named = params.one_of("userId", "connectionId")
        return Disconnect(
            params.user_id("userId") if named == "userId" else None,
            params.bounded_string("connectionId", MAX_CONNECTION_ID_LENGTH)
            if named == "connectionId" else None,
            params.optional_string("reason", MAX_REASON_LENGTH, DISCONNECT_REASON)
            or DISCONNECT_REASON,
            params.flag("reconnect", True),
        )


def disconnect(ctx: Context, command: Disconnect) -> dict[str, Any]:
    registry = ctx.deps.registry
    if command.connection_id is not None:
        if registry.get_connection(command.connection_id) is None:
            raise ApiError(NOT_FOUND, f"no connection {command.connection_id!r} is registered")
        targets = [command.connection_id]
    else:
        assert command.user_id is not None
        targets = registry.user_connections(command.user_id)
    closed = ctx.deps.moderation.disconnect(
        targets, command.reason, command.reconnect, ctx.outbox
    )
    return {"connections": closed.closed}


@dataclass(frozen=True)
class Revoke:
    user_id: str
    issued_before: int | None

    @staticmethod
    def parse(params: Params) -> Revoke:
        return Revoke(
            params.user_id("userId"), params.optional_integer("issuedBefore", 0, MAX_SEQ)
        )


def revoke(ctx: Context, command: Revoke) -> dict[str, Any]:
    issued_before = command.issued_before
    if issued_before is None:
        issued_before = int(ctx.deps.clock())
    revoked = ctx.deps.moderation.revoke(command.user_id, issued_before, ctx.outbox)
    return {"issuedBefore": revoked.issued_before, "connections": revoked.closed.closed}


@dataclass(frozen=True)
class Room:
    room: str

    @staticmethod
    def parse(params: Params) -> Room:
        return Room(params.room())


def presence(ctx: Context, command: Presence) -> dict[str, Any]:
    """A page of the room's members, as the ``presence`` action answers (connections found
    gone are forgotten); ``next`` is the ``after`` of the following page."""
    counts, next_after = present(ctx.deps.registry, ctx.deps.cleanup, command, ctx.deadline)
    answer: dict[str, Any] = {"room": command.room, "members": [
        {"userId": user_id, "connections": n} for user_id, n in counts
    ]}
    if next_after is not None:
        answer["next"] = next_after
    return answer


def presence_stats(ctx: Context, command: Room) -> dict[str, Any]:
    """The room's counts, as its count item keeps them (one read, whatever the room's size)."""
    count = ctx.deps.registry.room_count(command.room)
    return {"connections": count.connections, "users": count.users}


@dataclass(frozen=True)
class History:
    room: str | None
    user_id: str | None
    before_seq: int | None
    limit: int

    @staticmethod
    def parse(params: Params) -> History:
        named = params.one_of("room", "userId")
        limit = params.optional_integer("limit", 1, HISTORY_PAGE_LIMIT)
        return History(
            params.room() if named == "room" else None,
            params.user_id("userId") if named == "userId" else None,
            params.optional_integer("beforeSeq", 1, MAX_SEQ),
            DEFAULT_HISTORY_PAGE if limit is None else limit,
        )


def history(ctx: Context, command: History) -> dict[str, Any]:
    """A page of a room's stream or a user's personal one, as the ``history`` action answers."""
    streams = _streams(ctx)
    if command.room is not None:
        stream, named = Stream.of_room(command.room), {"room": command.room}
    else:
        assert command.user_id is not None
        stream, named = Stream.of_user(command.user_id), {"userId": command.user_id}
    page = streams.page(stream, command.before_seq, command.limit)
    return {**named, "epoch": page.epoch,
            "messages": [protocol.message_object(m) for m in page.messages],
            "hasMore": page.has_more}


def history_remove(ctx: Context, command: Room) -> dict[str, Any]:
    """Start the room's stream over: nothing kept so far is read again."""
    position = _streams(ctx).restart(Stream.of_room(command.room))
    return {"room": command.room, "epoch": position.epoch}


@dataclass(frozen=True)
class Rooms:
    prefix: str
    after: str | None
    limit: int

    @staticmethod
    def parse(params: Params) -> Rooms:
        limit = params.optional_integer("limit", 1, MAX_ROOMS_PAGE)
        return Rooms(
            params.optional_string("prefix", 64, "") or "",
            params.optional_string("after", 64),
            DEFAULT_ROOMS_PAGE if limit is None else limit,
        )


def rooms(ctx: Context, command: Rooms) -> dict[str, Any]:
    """Rooms with at least one member, by name, from ``after`` on; a Scan of GSI2."""
    users: dict[str, set[str]] = defaultdict(set)
    connections: Counter[str] = Counter()
    for page in ctx.deps.registry.connection_summaries():
        for summary in page:
            for room in summary.rooms:
                if room.startswith(command.prefix) and (
                    command.after is None or room > command.after
                ):
                    users[room].add(summary.user_id)
                    connections[room] += 1
    names = sorted(users)
    return {
        "rooms": [{"room": room, "users": len(users[room]), "connections": connections[room]}
                  for room in names[:command.limit]],
        "hasMore": len(names) > command.limit,
    }


@dataclass(frozen=True)
class Nothing:
    @staticmethod
    def parse(params: Params) -> Nothing:
        return Nothing()


def info(ctx: Context, command: Nothing) -> dict[str, Any]:
    """How many connections, users and rooms with a member the stage has; a Scan of GSI2."""
    connections = 0
    users: set[str] = set()
    rooms_with_members: set[str] = set()
    for page in ctx.deps.registry.connection_summaries():
        for summary in page:
            connections += 1
            users.add(summary.user_id)
            rooms_with_members |= summary.rooms
    return {"connections": connections, "users": len(users), "rooms": len(rooms_with_members)}


def _streams(ctx: Context) -> Streams:
    if ctx.deps.streams is None:
        raise ApiError(BAD_REQUEST, NO_HISTORY)
    return ctx.deps.streams


Handler = Callable[[Context, Any], dict[str, Any]]


@dataclass(frozen=True)
class Method:
    name: str
    parse: Callable[[Params], Any]
    handler: Handler


METHODS: tuple[Method, ...] = (
    Method("publish", parse_publish, publish),
    Method("broadcast", Broadcast.parse, broadcast),
    Method("subscribe", UserRoom.parse, subscribe),
    Method("unsubscribe", UserRoom.parse_with_reason, unsubscribe),
    Method("disconnect", Disconnect.parse, disconnect),
    Method("revoke", Revoke.parse, revoke),
    Method("presence", Presence.parse, presence),
    Method("presenceStats", Room.parse, presence_stats),
    Method("history", History.parse, history),
    Method("historyRemove", Room.parse, history_remove),
    Method("rooms", Rooms.parse, rooms),
    Method("info", Nothing.parse, info),
)
_BY_NAME: Mapping[str, Method] = {method.name: method for method in METHODS}
METHOD_NAMES = tuple(_BY_NAME)

_FAILED = "the server could not carry this call out; try again"


def handle(event: Any, call: Call, deps: ServerDeps) -> dict[str, Any]:
    """Answer one call with its result or an error; never raises."""
    log = call.log
    try:
        method, given = _method(event)
        log.set(method=method.name)
        params = Params(given, deps.settings.max_text_bytes)
        command = method.parse(params)
        unknown = params.unknown()
        if unknown:
            raise ApiError(BAD_REQUEST, f"unknown parameter(s) {', '.join(map(repr, unknown))} "
                                        f"for {method.name}")
        result = method.handler(Context(deps, call.deadline), command)
    except ApiError as error:
        return _refused(log, error.code, error.message)
    except ProtocolError as error:
        return _refused(log, error.code, error.message)
    except PublishError as error:
        return _refused(log, BAD_REQUEST, str(error))
    except PublishPending as error:
        return _refused(log, INTERNAL, str(error))
    except Exception:
        logger.exception("server_api call failed")
        return _refused(log, INTERNAL, _FAILED)
    log.set(outcome="ok")
    return {"result": result}


def _method(event: Any) -> tuple[Method, dict[str, Any]]:
    if not isinstance(event, dict):
        raise ApiError(BAD_REQUEST, "the event must be a JSON object")
    name = event.get("method")
    if not isinstance(name, str):
        raise ApiError(BAD_REQUEST, "'method' must be a string")
    method = _BY_NAME.get(name)
    if method is None:
        raise ApiError(
            UNKNOWN_METHOD,
            f"unknown method {name[:64]!r}; expected one of {', '.join(METHOD_NAMES)}",
        )
    params = event.get("params", {})
    if not isinstance(params, dict):
        raise ApiError(BAD_REQUEST, "'params' must be a JSON object")
    unexpected = sorted(set(event) - {"method", "params"})
    if unexpected:
        raise ApiError(BAD_REQUEST, f"unknown field(s) {', '.join(map(repr, unexpected))}; "
                                    "the event is {\"method\", \"params\"}")
    return method, params


def _error(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def _refused(log: Any, code: str, message: str) -> dict[str, Any]:
    log.set(outcome="error", code=code)
    return {"error": _error(code, message)}
