"""The wire protocol: the only code that knows the shape of frames.

Client frames are JSON objects routed on ``action``, the rule API Gateway's
``$request.body.action`` uses. Parsing turns text into a typed command or a
:class:`ProtocolError` that carries the error code and a message a person
understands; rendering turns results into the JSON text sent to clients.
Nothing here does I/O, so every rule is testable in isolation.

Which actions exist is the action table's business
(:data:`chalicelib.actions.ACTIONS`): each entry names a command's ``parse``
function, which reads the frame's fields through :class:`Fields`, and
:func:`parse_request` takes the table's parsers.

A :class:`Message` is one shape for a message wherever it goes: rendered by
:func:`message`, the same text is posted live, replayed after a reconnect and
listed in a ``history`` page; its :class:`Position` (``seq``, ``epoch``) is
its place in its stream.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_ID_LENGTH = 64
MAX_USER_ID_LENGTH = 128
ROOM_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_EPOCH_LENGTH = 64
MAX_SEQ = 2**53 - 1
"""The largest integer every JSON client reads exactly (JavaScript's safe integers)."""
HISTORY_PAGE_LIMIT = 100
DEFAULT_HISTORY_PAGE = 50
PRESENCE_PAGE_LIMIT = 100
"""Users per ``members`` page: 100 of the longest user ids (escapes included) fit a frame."""
MAX_FRAME_BYTES = 128 * 1024
"""API Gateway's largest message (a post over it is refused with 413): every frame is judged
on its rendered UTF-8 bytes, escapes included, against this."""

BAD_JSON = "bad_json"
BAD_REQUEST = "bad_request"
UNKNOWN_ACTION = "unknown_action"
FORBIDDEN = "forbidden"
TOO_LARGE = "too_large"
INTERNAL = "internal"
RATE_LIMITED = "rate_limited"
"""Over the action's rate limit; the error carries ``retryAfterMs``."""
NOT_FOUND = "not_found"
"""The message a frame names is not (or no longer) in its stream."""
TOKEN_EXPIRED = "token_expired"
"""The connection's token expired: the frame is refused and the connection closed."""


class ProtocolError(Exception):
    """A frame that gets an ``error`` answer instead of being carried out."""

    def __init__(
        self,
        code: str,
        message: str,
        request_id: str | None = None,
        *,
        answered: bool = True,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id
        self.answered = answered
        """False: the frame is refused without an answer (a notice over its limit, again)."""
        self.details = details
        """More fields of the error frame (``retryAfterMs``)."""


# -- parsing -------------------------------------------------------------------


class Fields:
    """Typed access to a frame's fields, raising ``bad_request`` on misuse."""

    def __init__(self, frame: dict[str, Any], max_text_bytes: int) -> None:
        self._frame = frame
        self._max_text_bytes = max_text_bytes

    def value(self, name: str) -> Any:
        """A field as the frame has it (None when absent), for readers of other types."""
        return self._frame.get(name)

    def string(self, name: str) -> str:
        value = self._frame.get(name)
        if value is None:
            raise ProtocolError(BAD_REQUEST, f"'{name}' is required")
        if not isinstance(value, str):
            raise ProtocolError(BAD_REQUEST, f"'{name}' must be a string")
        return valid_unicode(value, name)

    def text(self, name: str = "text") -> str:
        return check_text(self.string(name), self._max_text_bytes, name)

    def room(self, name: str = "room") -> str:
        return check_room(self.string(name), name)

    def user_id(self, name: str) -> str:
        return check_user_id(self.string(name), name)

    def optional_user_id(self, name: str) -> str | None:
        return None if self._frame.get(name) is None else self.user_id(name)

    def optional_room(self) -> str | None:
        return None if self._frame.get("room") is None else self.room()

    def optional_integer(self, name: str, low: int, high: int) -> int | None:
        value = self._frame.get(name)
        if value is None:
            return None
        if not _is_integer(value) or not low <= value <= high:
            raise ProtocolError(BAD_REQUEST, f"'{name}' must be an integer from {low} to {high}")
        return int(value)

    def since(self, name: str = "since") -> Position | None:
        """A stream position the client has seen: ``{"epoch": str, "seq": int >= 0}``."""
        value = self._frame.get(name)
        if value is None:
            return None
        if (
            not isinstance(value, dict)
            or set(value) != {"epoch", "seq"}
            or not isinstance(value["epoch"], str)
            or not 1 <= len(value["epoch"]) <= MAX_EPOCH_LENGTH
            or not _is_valid_unicode(value["epoch"])
            or not _is_integer(value["seq"])
            or not 0 <= value["seq"] <= MAX_SEQ
        ):
            raise ProtocolError(
                BAD_REQUEST,
                f"'{name}' must be {{\"epoch\": a string of 1-64 characters, "
                "\"seq\": an integer >= 0}, as a message or an ack gave them",
            )
        return Position(value["epoch"], int(value["seq"]))


# -- validators shared by every boundary ------------------------------------------------
#
# Frames (through :class:`Fields`), tokens at ``$connect`` and the functions other
# services invoke all judge identifiers, texts and data with these, so that
# nothing one boundary refuses can come in through another. JSON escapes can
# smuggle lone surrogates (``"\\ud800"`` is legal JSON), which no UTF-8 channel can
# carry: a value holding one would be stored, then break every frame it is in.


def valid_unicode(value: str, name: str) -> str:
    """``value`` unchanged, or ``bad_request`` when it holds an unpaired surrogate."""
    if not _is_valid_unicode(value):
        raise ProtocolError(
            BAD_REQUEST, f"'{name}' is not valid Unicode (it holds an unpaired surrogate)"
        )
    return value


def check_room(value: object, name: str = "room") -> str:
    """A room name: 1-64 characters of letters, digits and ``_ . : -``."""
    if not isinstance(value, str) or not ROOM_PATTERN.fullmatch(value):
        raise ProtocolError(
            BAD_REQUEST, f"'{name}' must be 1-64 characters of letters, digits and _ . : -"
        )
    return value


def check_user_id(value: object, name: str = "userId") -> str:
    """A user id: a string of 1-128 characters, valid Unicode."""
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_USER_ID_LENGTH:
        raise ProtocolError(BAD_REQUEST, f"'{name}' must be 1-128 characters")
    return valid_unicode(value, name)


def check_text(value: object, max_bytes: int, name: str = "text") -> str:
    """A non-empty string of valid Unicode of at most ``max_bytes`` UTF-8 bytes."""
    if not isinstance(value, str):
        raise ProtocolError(BAD_REQUEST, f"'{name}' must be a string")
    if not value:
        raise ProtocolError(BAD_REQUEST, f"'{name}' must not be empty")
    valid_unicode(value, name)
    size = len(value.encode("utf-8"))
    if size > max_bytes:
        raise ProtocolError(
            TOO_LARGE, f"'{name}' is {size} bytes; the limit is {max_bytes} bytes"
        )
    return value


def check_data(value: Any, name: str = "data") -> Any:
    """Any JSON value whose every string and key is valid Unicode; returned unchanged."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            valid_unicode(item, name)
        elif isinstance(item, dict):
            for key, inner in item.items():
                if not isinstance(key, str):
                    raise ProtocolError(BAD_REQUEST, f"'{name}' must be JSON: its keys strings")
                valid_unicode(key, name)
                pending.append(inner)
        elif isinstance(item, list):
            pending.extend(item)
    return value


def frame_bytes(frame: str) -> int:
    """A rendered frame's size as API Gateway counts it: UTF-8 bytes, escapes included."""
    return len(frame.encode("utf-8"))


def json_bytes(value: Any) -> int:
    """A JSON value's size as frames carry it: compact, UTF-8 bytes, escapes included."""
    return frame_bytes(_render(value))


def fitting(frame: str, what: str, limit: int = MAX_FRAME_BYTES) -> str:
    """The one rendered-size rule every sender applies: ``frame`` if it fits, else ``too_large``.

    ``what`` names the frame for the error ("the message", "the push frame", ...).
    A frame that cannot be encoded at all is the server's fault: ``internal``.
    """
    try:
        size = frame_bytes(frame)
    except UnicodeEncodeError:
        raise ProtocolError(INTERNAL, f"{what} holds text that is not valid Unicode") from None
    if size > limit:
        raise ProtocolError(
            TOO_LARGE,
            f"{what} would be {size} bytes as sent (escapes included); the limit is {limit}",
        )
    return frame


# -- stream positions and messages --------------------------------------------------


@dataclass(frozen=True)
class Position:
    """Where a stream (a room's, or a user's personal one) is: its epoch and its last seq.

    ``seq`` counts the stream's messages from 1; ``epoch`` changes whenever the
    stream starts over, so a position from another epoch says nothing.
    """

    epoch: str
    seq: int


MESSAGE = "message"
"""The frame type of a member's message, and the default type of a stored entry."""


@dataclass(frozen=True)
class Message:
    """One entry of a stream as clients see it: in a room, or direct (``room`` is None).

    A member's message is ``sender`` + ``text``. An entry may be structured as
    well: ``kind`` (an application's own kind of message, such as ``reaction``),
    ``data`` (any JSON value) and ``reply_to`` (the ``seq`` of the message it
    answers or annotates, in the same stream); a backend's stored publish has a
    frame ``type`` of its own (``push`` by default) and may have no sender or
    text. ``annotations`` summarises what annotates the entry (reactions), kept
    on the entry itself. ``position`` is the entry's place in its stream, when
    history is on.
    Rendered by :func:`message`, an entry is the same frame live, replayed and
    in a ``history`` page.
    """

    sender: str | None
    text: str | None
    sent_at: str
    room: str | None = None
    position: Position | None = None
    type: str = MESSAGE
    kind: str | None = None
    data: Any = None
    """A JSON value; ``None`` is no data (JSON ``null`` is not stored)."""
    reply_to: int | None = None
    annotations: Mapping[str, Mapping[str, int]] | None = None
    """The summary of what annotates the entry, per type and value: ``{"reaction": {"👍": 2}}``."""

    def at(self, room: str | None, position: Position) -> Message:
        """The same entry, placed in a stream."""
        return dataclasses.replace(self, room=room, position=position)


# -- commands --------------------------------------------------------------------


@dataclass(frozen=True)
class SendMessage:
    target_user_id: str
    text: str

    @staticmethod
    def parse(fields: Fields) -> SendMessage:
        return SendMessage(fields.user_id("targetUserId"), fields.text())


@dataclass(frozen=True)
class JoinRoom:
    room: str
    since: Position | None = None

    @staticmethod
    def parse(fields: Fields) -> JoinRoom:
        return JoinRoom(fields.room(), fields.since())


@dataclass(frozen=True)
class LeaveRoom:
    room: str

    @staticmethod
    def parse(fields: Fields) -> LeaveRoom:
        return LeaveRoom(fields.room())


@dataclass(frozen=True)
class SendToRoom:
    room: str
    text: str
    reply_to: int | None = None
    """The ``seq`` of the room's message this one answers (not checked: it may be gone)."""

    @staticmethod
    def parse(fields: Fields) -> SendToRoom:
        return SendToRoom(
            fields.room(), fields.text(), fields.optional_integer("replyTo", 1, MAX_SEQ)
        )


@dataclass(frozen=True)
class BroadcastAll:
    text: str

    @staticmethod
    def parse(fields: Fields) -> BroadcastAll:
        return BroadcastAll(fields.text())


@dataclass(frozen=True)
class WhoAmI:
    @staticmethod
    def parse(fields: Fields) -> WhoAmI:
        return WhoAmI()


@dataclass(frozen=True)
class Ping:
    @staticmethod
    def parse(fields: Fields) -> Ping:
        return Ping()


@dataclass(frozen=True)
class Presence:
    """A page of a room's members: up to ``limit`` users after the user id ``after``."""

    room: str
    limit: int = PRESENCE_PAGE_LIMIT
    after: str | None = None

    @staticmethod
    def parse(fields: Fields) -> Presence:
        limit = fields.optional_integer("limit", 1, PRESENCE_PAGE_LIMIT)
        return Presence(
            fields.room(),
            PRESENCE_PAGE_LIMIT if limit is None else limit,
            fields.optional_user_id("after"),
        )


@dataclass(frozen=True)
class History:
    """A page of a room's history, or of the caller's personal stream when ``room`` is None."""

    room: str | None
    before_seq: int | None = None
    limit: int = DEFAULT_HISTORY_PAGE

    @staticmethod
    def parse(fields: Fields) -> History:
        limit = fields.optional_integer("limit", 1, HISTORY_PAGE_LIMIT)
        return History(
            fields.optional_room(),
            fields.optional_integer("beforeSeq", 1, MAX_SEQ),
            DEFAULT_HISTORY_PAGE if limit is None else limit,
        )


@dataclass(frozen=True)
class Resume:
    since: Position | None = None

    @staticmethod
    def parse(fields: Fields) -> Resume:
        return Resume(fields.since())


@dataclass(frozen=True)
class Refresh:
    """A new token for the same user, to extend the connection past the current one's ``exp``."""

    token: str

    @staticmethod
    def parse(fields: Fields) -> Refresh:
        return Refresh(fields.string("token"))


Parser = Callable[[Fields], object]
"""Reads one action's fields into its command; raises :class:`ProtocolError`."""


@dataclass(frozen=True)
class Request:
    action: str
    command: object
    request_id: str | None


def parse_request(body: str, max_text_bytes: int, parsers: Mapping[str, Parser]) -> Request:
    """Turn one client frame into a command, or raise :class:`ProtocolError`.

    ``parsers`` maps each action name to its parser: the action table's.
    """
    frame = _decode_object(body)
    request_id = _request_id(frame)
    try:
        action = frame.get("action")
        if action is None:
            raise ProtocolError(BAD_REQUEST, "'action' is required")
        if not isinstance(action, str):
            raise ProtocolError(BAD_REQUEST, "'action' must be a string")
        parser = parsers.get(action)
        if parser is None:
            raise ProtocolError(
                UNKNOWN_ACTION,
                f"unknown action {action[:64]!r}; expected one of {', '.join(parsers)}",
            )
        return Request(action, parser(Fields(frame, max_text_bytes)), request_id)
    except ProtocolError as error:
        error.request_id = request_id
        raise


def _decode_object(body: str) -> dict[str, Any]:
    try:
        frame = json.loads(body, object_pairs_hook=_reject_duplicate_keys)
    except _DuplicateKey as error:
        raise ProtocolError(BAD_JSON, f"duplicate key {str(error)[:64]!r} in frame") from None
    except (ValueError, RecursionError):
        raise ProtocolError(BAD_JSON, "frame is not valid JSON") from None
    if not isinstance(frame, dict):
        raise ProtocolError(BAD_JSON, "frame must be a JSON object")
    return frame


class _DuplicateKey(ValueError):
    pass


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    frame: dict[str, Any] = {}
    for key, value in pairs:
        if key in frame:
            raise _DuplicateKey(key)
        frame[key] = value
    return frame


def _is_integer(value: object) -> bool:
    """A JSON integer (``true`` is not one, though Python's ``bool`` is an ``int``)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_valid_unicode(value: str) -> bool:
    """JSON escapes can smuggle lone surrogates, which no UTF-8 channel can carry."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _request_id(frame: dict[str, Any]) -> str | None:
    request_id = frame.get("id")
    if request_id is None:
        return None
    if (
        not isinstance(request_id, str)
        or len(request_id) > MAX_ID_LENGTH
        or not _is_valid_unicode(request_id)
    ):
        raise ProtocolError(BAD_REQUEST, "'id' must be a string of at most 64 characters")
    return request_id


# -- rendering -----------------------------------------------------------------


def _render(frame: Any) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def _with_id(frame: dict[str, Any], request_id: str | None) -> dict[str, Any]:
    if request_id is not None:
        frame["id"] = request_id
    return frame


def ack(
    action: str,
    request_id: str | None,
    delivered: int | None = None,
    queued: int = 0,
    *,
    room: str | None = None,
    position: Position | None = None,
    recovered: bool | None = None,
    stored: bool | None = None,
    expires_at: int | None = None,
) -> str:
    """``queued`` (only when non-zero) counts targets handed to the fan-out queue.

    ``position`` is a stream's (``epoch``, ``seq``): the stored message's for a
    send, the stream's current one for ``joinRoom`` and ``resume``.
    ``recovered`` answers a ``since``; ``stored`` says a direct message was kept;
    ``expires_at`` (epoch seconds) is when a refreshed connection's new token expires.
    """
    frame = _with_id({"type": "ack", "action": action}, request_id)
    if delivered is not None:
        frame["delivered"] = delivered
    if queued:
        frame["queued"] = queued
    if room is not None:
        frame["room"] = room
    if position is not None:
        frame.update(_position(position))
    if recovered is not None:
        frame["recovered"] = recovered
    if stored is not None:
        frame["stored"] = stored
    if expires_at is not None:
        frame["expiresAt"] = expires_at
    return _render(frame)


def error(code: str, message: str, request_id: str | None = None, **details: Any) -> str:
    """``details`` are more fields (``retryAfterMs`` of a ``rate_limited`` error)."""
    frame = {"type": "error", "code": code, "message": message, **details}
    return _render(_with_id(frame, request_id))


def reply(frame: Mapping[str, Any], request_id: str | None) -> str:
    """An application's own frame, as it gives it, answering the request ``request_id``."""
    return _render(_with_id(dict(frame), request_id))


def notice(frame: Mapping[str, Any]) -> str:
    """An application's own frame, as it gives it, to other connections (no ``id``)."""
    return _render(dict(frame))


def pong(request_id: str | None) -> str:
    return _render(_with_id({"type": "pong"}, request_id))


def whoami(
    connection_id: str, user_id: str, rooms: list[str], request_id: str | None
) -> str:
    frame = {"type": "whoami", "connectionId": connection_id, "userId": user_id, "rooms": rooms}
    return _render(_with_id(frame, request_id))


def message(sent: Message) -> str:
    """A stream entry's frame (``message`` for a member's): the same text live, replayed,
    and in a ``history`` page."""
    return _render(_message(sent))


def message_object(sent: Message) -> dict[str, Any]:
    """A stream entry's frame as a JSON object, for answers that list entries."""
    return _message(sent)


def _message(sent: Message) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": sent.type}
    optional = (
        ("from", sent.sender), ("text", sent.text), ("kind", sent.kind), ("data", sent.data),
        ("replyTo", sent.reply_to),
        ("annotations", {t: dict(v) for t, v in sent.annotations.items()}
         if sent.annotations else None),
    )
    frame.update((name, value) for name, value in optional if value is not None)
    frame["sentAt"] = sent.sent_at
    if sent.room is not None:
        frame["room"] = sent.room
    if sent.position is not None:
        frame.update(_position(sent.position))
    return frame


def _position(position: Position) -> dict[str, Any]:
    return {"seq": position.seq, "epoch": position.epoch}


def history(
    request_id: str | None,
    room: str | None,
    epoch: str,
    messages: list[Message],
    has_more: bool,
) -> str:
    """A page of a stream, oldest first: each message exactly as it was delivered live.

    The page is bounded by bytes as well as by count: it keeps the newest
    messages that fit one frame, and says ``hasMore`` when older ones were left
    for the next page (``beforeSeq`` the oldest kept). A message that could not
    fit even alone (stored before sizes were judged rendered) is left out.
    """
    frame = _with_id({"type": "history"}, request_id)
    if room is not None:
        frame["room"] = room
    room_for_messages = MAX_FRAME_BYTES - frame_bytes(
        _render({**frame, "epoch": epoch, "messages": [], "hasMore": False})
    )
    budget = room_for_messages
    kept: list[dict[str, Any]] = []
    for sent in reversed(messages):  # newest first: a page gives up its oldest
        rendered = _message(sent)
        size = frame_bytes(_render(rendered))
        if size > room_for_messages:
            continue  # could never be listed: left out rather than blocking every page
        size += 1 if kept else 0  # its comma
        if size > budget:
            has_more = True
            break
        budget -= size
        kept.append(rendered)
    kept.reverse()
    frame.update({"epoch": epoch, "messages": kept, "hasMore": has_more})
    return _render(frame)


def members(
    request_id: str | None,
    room: str,
    counts: list[tuple[str, int]],
    next_after: str | None = None,
) -> str:
    """Who is in a room: each user once, with how many of their connections are in it.

    ``next_after`` (rendered ``next``) is the ``after`` of the following page,
    when there may be one.
    """
    frame = _with_id({"type": "members"}, request_id)
    frame["room"] = room
    frame["members"] = [
        {"userId": user_id, "connections": connections} for user_id, connections in counts
    ]
    if next_after is not None:
        frame["next"] = next_after
    return _render(frame)


def occupancy(room: str, users: int, connections: int) -> str:
    """How many users (and their connections) are in a room: what large rooms get instead of
    per-user presence events."""
    return _render(
        {"type": "occupancy", "room": room, "users": users, "connections": connections}
    )


STORED_ENTRY_BYTES = MAX_FRAME_BYTES - frame_bytes(
    _render({"type": "history", "id": "\u0000" * MAX_ID_LENGTH, "room": "r" * 64,
             "epoch": "e" * MAX_EPOCH_LENGTH, "messages": [], "hasMore": False})
)
"""The largest rendered stream entry: one that fits alone in a ``history`` page with the
longest id, room and epoch, so it can be sent live, replayed and listed."""


def storable(entry: Message) -> Message:
    """``entry`` unchanged if its frame fits everywhere it can go; ``too_large`` before storing.

    Judged at the largest position it could get (``seq`` 2^53-1, the longest epoch).
    """
    placed = entry if entry.position is not None else entry.at(
        entry.room, Position("e" * MAX_EPOCH_LENGTH, MAX_SEQ)
    )
    fitting(_render(_message(placed)), "the message", STORED_ENTRY_BYTES)
    return entry


PRESENCE_JOIN = "join"
PRESENCE_LEAVE = "leave"


def presence(room: str, user_id: str, event: str, at: str) -> str:
    """A user's first connection joined a room (``join``), or their last one left (``leave``)."""
    return _render(
        {"type": "presence", "room": room, "userId": user_id, "event": event, "at": at}
    )


def broadcast(sender: str, text: str, sent_at: str) -> str:
    return _render({"type": "broadcast", "from": sender, "text": text, "sentAt": sent_at})


def push(data: dict[str, Any], sent_at: str) -> str:
    """What another service sends through the ``push`` function, wrapped as given."""
    return _render({"type": "push", "data": data, "sentAt": sent_at})


def subscribed(room: str, position: Position | None) -> str:
    """A backend joined this connection to a room; ``position`` is where its stream was then."""
    frame: dict[str, Any] = {"type": "subscribed", "room": room}
    if position is not None:
        frame.update(_position(position))
    return _render(frame)


def unsubscribed(room: str, reason: str) -> str:
    """A backend took this connection out of a room: a client does not join it again."""
    return _render({"type": "unsubscribed", "room": room, "reason": reason})


def disconnect(reason: str, reconnect: bool) -> str:
    """The server closes this connection next; ``reconnect`` says whether the client may return."""
    return _render({"type": "disconnect", "reason": reason, "reconnect": reconnect})


SERVER_FRAME_TYPES = frozenset({
    "ack", "error", "pong", "whoami", "members", "history", "message", "broadcast",
    "presence", "occupancy", "typing", "subscribed", "unsubscribed", "disconnect",
})
"""Every ``type`` the server's own frames have (what a backend's published ``type`` may not be)."""
