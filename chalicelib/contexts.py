"""What team code runs with: the only code behind :class:`chalicelib.extend.Context` and
:class:`chalicelib.extend.Backend`.

:func:`handler_of` turns a declared action into a handler of the action table:
it checks the membership the declaration asks for, runs the team's function
with a :class:`HandlerContext` of its own — narrow: the caller, the room, and
delivery to rooms and users through the request's outbox — and renders its
answer. :class:`Backends` opens a :class:`RoomBackend` for an authenticated
REST caller, which delivers the same way outside a WebSocket handler (the
management endpoint resolved as ``push`` resolves it).

Frames team code posts are JSON objects with a ``type`` of 1-64 characters
and no ``id`` (what answers carry); they must fit one post. Messages it stores
are checked as ``sendToRoom``'s are (``MAX_TEXT_BYTES``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from chalicelib import endpoint, protocol
from chalicelib.clock import iso8601
from chalicelib.delivery import Delivery
from chalicelib.extend import (
    Answer,
    Backend,
    Declaration,
    Refused,
    Stored,
    Unauthorized,
)
from chalicelib.identity import AuthenticationError, TokenVerifier
from chalicelib.invocation import Deadline
from chalicelib.outbox import Outbox
from chalicelib.protocol import (
    BAD_REQUEST,
    NOT_FOUND,
    ROOM_PATTERN,
    TOO_LARGE,
    Message,
    ProtocolError,
)
from chalicelib.registry import Registry
from chalicelib.revocations import Revocations
from chalicelib.streams import NO_HISTORY, Stream, Streams

_T = TypeVar("_T")

if TYPE_CHECKING:
    from chalicelib.action_context import ActionContext as Request

MAX_TYPE_LENGTH = 64
MAX_ANNOTATION_LENGTH = 64
RESERVED_ACK_FIELDS = frozenset({"type", "action", "id"})

Values = dict[str, Any]
TableHandler = Callable[["Request", Values], str]


def handler_of(declaration: Declaration) -> TableHandler:
    """The action table's handler for a declared action."""

    def handle(request: Request, values: Values) -> str:
        room = values.get(declaration.room_field) if declaration.room_field else None
        if declaration.member:
            request.require_member(room)
        context = HandlerContext(request, room)
        answer = declaration.handler(context, **values)
        return context.render(answer if answer is not None else context.ack())

    return handle


class HandlerContext:
    """:class:`chalicelib.extend.Context` over one request."""

    def __init__(self, request: Request, room: str | None) -> None:
        self._request = request
        self._room = room

    @property
    def user_id(self) -> str:
        return self._request.connection.user_id

    @property
    def connection_id(self) -> str:
        return self._request.connection.connection_id

    @property
    def roles(self) -> tuple[str, ...]:
        return self._request.connection.roles

    @property
    def rooms(self) -> frozenset[str]:
        return self._request.connection.rooms

    @property
    def room(self) -> str | None:
        return self._room

    @property
    def request_id(self) -> str | None:
        return self._request.request.request_id

    def may(self, permission: str, room: str | None = None) -> bool:
        return self._request.may(permission, self._in(room))

    def publish(self, frame: Mapping[str, Any], room: str | None = None,
                *, echo: bool = False) -> int:
        room = self._in(room)
        text = rendered(frame)
        targets = (
            self._request.deps.registry.room_connections(room) if echo
            else self._request.others_in(room)
        )
        return self._request.deliver(targets, text, room=room).delivered

    def deliver(self, frame: Mapping[str, Any], *, user: str) -> int:
        text = rendered(frame)
        targets = self._request.deps.registry.user_connections(user)
        return self._request.deliver(targets, text).delivered

    def store(self, room: str | None = None, *, text: str | None = None,
              kind: str | None = None, data: Any = None, reply_to: int | None = None) -> Stored:
        room = self._in(room)
        message = entry(self.user_id, room, text, kind, data, reply_to,
                        self._request.deps.settings.max_text_bytes)
        streams = self._request.deps.streams
        if streams is not None:
            message = streams.append(Stream.of_room(room), message)
        targets = self._request.others_in(room)
        delivered = self._request.deliver(targets, protocol.message(message), room=room)
        return Stored(message, delivered.delivered)

    def get(self, seq: int, room: str | None = None, *, epoch: str | None = None
            ) -> Message | None:
        return kept(self._request.deps.streams, self._in(room), seq, epoch)

    def annotate(self, seq: int, name: str, value: str, room: str | None = None, *,
                 remove: bool = False, epoch: str | None = None) -> Message:
        room = self._in(room)
        streams = self._request.deps.streams
        if streams is None:
            raise Refused(BAD_REQUEST, NO_HISTORY)
        _check_annotation(name, value)
        annotated = streams.annotate(
            Stream.of_room(room), seq, (name, value), self.user_id, remove=remove, epoch=epoch
        )
        if annotated is None:
            raise Refused(NOT_FOUND, f"room {room!r} keeps no message {seq}")
        return annotated

    def ack(self, **fields: Any) -> Answer:
        clash = RESERVED_ACK_FIELDS & set(fields)
        if clash:
            raise TypeError(f"an ack's {sorted(clash)} are the server's")
        return Answer(fields)

    def reply(self, frame: Mapping[str, Any]) -> Answer:
        _check_frame(frame)
        return Answer(dict(frame), is_ack=False)

    def render(self, answer: Answer) -> str:
        request_id = self.request_id
        if not answer.is_ack:
            return protocol.reply(answer.fields, request_id)
        frame: dict[str, Any] = {"type": "ack", "action": self._request.request.action}
        queued = self._request.report.queued
        frame.update(answer.fields)
        if queued:
            frame["queued"] = queued
        return protocol.reply(frame, request_id)

    def _in(self, room: str | None) -> str:
        chosen = room if room is not None else self._room
        if chosen is None:
            raise TypeError("this action declares no 'room' field: name the room")
        return checked_room(chosen)


# -- REST routes ----------------------------------------------------------------------------


class Backends:
    """:class:`chalicelib.extend.Gate`: REST callers are let in with a token of the stage's."""

    def __init__(
        self,
        verifier: TokenVerifier,
        revocations: Revocations | None,
        registry: Registry,
        streams: Streams | None,
        delivery: Delivery,
        outbox: Callable[[Deadline], Outbox],
        configured_endpoint: str | None,
        max_text_bytes: int,
    ) -> None:
        self._verifier = verifier
        self._revocations = revocations
        self.registry = registry
        self.streams = streams
        self._delivery = delivery
        self._outbox = outbox
        self._endpoint = configured_endpoint
        self.max_text_bytes = max_text_bytes

    def open(self, token: str | None, deadline: Deadline) -> Backend:
        try:
            identity = self._verifier.verify(token)
        except AuthenticationError as error:
            raise Unauthorized(error.status, error.reason) from None
        # A token the server API revoked opens no socket, and no REST route either: one read.
        if self._revocations is not None and self._revocations.refuses(
            identity.user_id, identity.issued_at
        ):
            raise Unauthorized(403, "the token was revoked")
        return RoomBackend(self, identity.user_id, identity.roles, self._outbox(deadline))

    def post(self, outbox: Outbox, targets: Sequence[str], text: str, room: str | None) -> int:
        """Deliver outside a WebSocket handler: the endpoint first, as ``push`` does."""
        if not targets or not self._delivery.ensure_endpoint(
            endpoint.of_targets(self._endpoint, self.registry, targets)
        ):
            return 0
        return outbox.deliver(targets, text, room).delivered


class RoomBackend:
    """:class:`chalicelib.extend.Backend` for one authenticated REST request."""

    def __init__(self, backends: Backends, caller: str, roles: Sequence[str],
                 outbox: Outbox) -> None:
        self._backends = backends
        self._caller = caller
        self._roles = tuple(roles)
        self._outbox = outbox

    @property
    def caller(self) -> str:
        return self._caller

    @property
    def roles(self) -> tuple[str, ...]:
        return self._roles

    def publish(self, room: str, frame: Mapping[str, Any]) -> int:
        room = checked_room(room)
        targets = self._backends.registry.room_connections(room)
        return self._backends.post(self._outbox, targets, rendered(frame), room)

    def deliver(self, frame: Mapping[str, Any], *, user: str) -> int:
        targets = self._backends.registry.user_connections(user)
        return self._backends.post(self._outbox, targets, rendered(frame), None)

    def store(self, room: str, *, text: str | None = None, kind: str | None = None,
              data: Any = None, reply_to: int | None = None) -> Stored:
        room = checked_room(room)
        message = entry(self._caller, room, text, kind, data, reply_to,
                        self._backends.max_text_bytes)
        streams = self._backends.streams
        if streams is not None:
            message = streams.append(Stream.of_room(room), message)
        targets = self._backends.registry.room_connections(room)
        delivered = self._backends.post(self._outbox, targets, protocol.message(message), room)
        return Stored(message, delivered)

    def get(self, room: str, seq: int, *, epoch: str | None = None) -> Message | None:
        return kept(self._backends.streams, checked_room(room), seq, epoch)


# -- what both check ------------------------------------------------------------------------------


def rendered(frame: Mapping[str, Any]) -> str:
    """A frame team code posts, checked: a ``type``, no ``id``, small enough for one post."""
    _check_frame(frame)
    if "id" in frame:
        raise TypeError("a posted frame carries no 'id' (answers do)")
    return _refusing(lambda: protocol.fitting(protocol.notice(frame), "the frame"))


def entry(sender: str, room: str, text: str | None, kind: str | None, data: Any,
          reply_to: int | None, max_text_bytes: int) -> Message:
    """A room message to store, checked as ``sendToRoom``'s text is."""
    if text is None and data is None:
        raise TypeError("a stored message has a text, data, or both")
    if text is not None and not (isinstance(text, str) and text):
        raise Refused(BAD_REQUEST, "the message's text must be a non-empty string")
    if kind is not None and not (isinstance(kind, str) and 1 <= len(kind) <= MAX_TYPE_LENGTH):
        raise Refused(BAD_REQUEST, f"a message's kind is 1-{MAX_TYPE_LENGTH} characters")
    if reply_to is not None and (isinstance(reply_to, bool) or not (
        isinstance(reply_to, int) and 1 <= reply_to <= protocol.MAX_SEQ
    )):
        raise Refused(BAD_REQUEST, "replyTo is the seq of a message (an integer from 1)")
    # Valid Unicode before any size is measured: the size is of UTF-8 bytes.
    _refusing(lambda: protocol.check_data({"text": text, "kind": kind, "data": data}))
    size = len((text or "").encode("utf-8")) + protocol.json_bytes(data)
    if size > max_text_bytes:
        raise Refused(TOO_LARGE, f"the message is {size} bytes; the limit is {max_text_bytes}")
    message = Message(sender, text, iso8601(), room, kind=kind, data=data, reply_to=reply_to)
    # The one rendered-size rule: what is stored can be sent, replayed and listed.
    return _refusing(lambda: protocol.storable(message))


def _refusing(check: Callable[[], _T]) -> _T:
    """``check()``, its refusal raised as :class:`Refused` (which REST routes answer too)."""
    try:
        return check()
    except Refused:
        raise
    except ProtocolError as error:
        raise Refused(error.code, error.message) from None


def kept(streams: Streams | None, room: str, seq: int, epoch: str | None) -> Message | None:
    if streams is None:
        return None
    return streams.get(Stream.of_room(room), seq, epoch)


def checked_room(room: str) -> str:
    """A room team code names, judged as a frame's ``room`` is (refused ``bad_request``)."""
    return _refusing(lambda: protocol.check_room(room))


def _check_frame(frame: Mapping[str, Any]) -> None:
    kind = frame.get("type") if isinstance(frame, Mapping) else None
    if not (isinstance(kind, str) and 1 <= len(kind) <= MAX_TYPE_LENGTH):
        raise TypeError(f"a frame is a mapping with a 'type' of 1-{MAX_TYPE_LENGTH} characters")


def _check_annotation(name: str, value: str) -> None:
    if not (isinstance(name, str) and ROOM_PATTERN.fullmatch(name)):
        raise Refused(BAD_REQUEST, "an annotation's name is 1-64 letters, digits and _ . : -")
    if not (isinstance(value, str) and 1 <= len(value) <= MAX_ANNOTATION_LENGTH):
        raise Refused(BAD_REQUEST, f"an annotation's value is 1-{MAX_ANNOTATION_LENGTH} characters")
    _refusing(lambda: protocol.valid_unicode(value, "an annotation's value"))
