"""The shapes of what the client yields and returns: the only code that names their fields.

Events and answers stay the server's JSON objects (plain ``dict`` at run time, so
they print, compare and serialise as before); these ``TypedDict`` s describe them
for type checkers and editors. Narrow an :data:`Event` on its ``type``::

    async for event in client:
        if event["type"] == "message":
            print(event["from"], event["text"])      # a Message here

Fields a server may add later arrive unchanged. Frames of a type this module
does not know (an application's own) are yielded too, as they came: compare
their type as a plain string, ``kind: str = event["type"]``, since the union
below lists only the types it describes (so that narrowing works).
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

State = Literal["idle", "connecting", "open", "reconnecting", "closed"]
"""The client's state: ``idle`` until :meth:`Client.connect`, ``closed`` for good."""


class Since(TypedDict):
    """A stream's position: pass it as ``since`` to recover from it."""

    epoch: str
    seq: int


class Coalesce(TypedDict):
    """``notify(..., coalesce=...)``: at most one frame per ``key`` per ``interval`` seconds."""

    key: str
    interval: float


# -- frames the server sends without being asked ---------------------------------------

_MessageFrom = TypedDict("_MessageFrom", {"from": str})


class Message(_MessageFrom):
    """A room message (with ``room``) or a direct one (without), live or replayed."""

    type: Literal["message"]
    text: str
    sentAt: str
    room: NotRequired[str]
    seq: NotRequired[int]
    """Its place in its stream; absent when the stage keeps no history."""
    epoch: NotRequired[str]
    replayed: NotRequired[bool]
    """Set by the client on messages recovered after a reconnect or fetched from history."""
    kind: NotRequired[str]
    data: NotRequired[Any]
    replyTo: NotRequired[int]
    annotations: NotRequired[Any]


class Presence(TypedDict):
    type: Literal["presence"]
    room: str
    userId: str
    event: Literal["join", "leave"]
    at: str


class Occupancy(TypedDict):
    """Sent instead of per-user presence events in large rooms."""

    type: Literal["occupancy"]
    room: str
    users: int
    connections: int


class Typing(TypedDict):
    type: Literal["typing"]
    room: str
    userId: str


_BroadcastFrom = TypedDict("_BroadcastFrom", {"from": str})


class Broadcast(_BroadcastFrom):
    type: Literal["broadcast"]
    text: str
    sentAt: str


class Push(TypedDict):
    """From the ``push`` function; one stored in a stream has its ``room`` (none: the personal
    stream), ``seq`` and ``epoch``, and is ordered and recovered like a message."""

    type: Literal["push"]
    data: Any
    sentAt: str
    room: NotRequired[str]
    seq: NotRequired[int]
    epoch: NotRequired[str]
    replayed: NotRequired[bool]


class Subscribed(TypedDict):
    """A backend subscribed this user to ``room``: the client now keeps it (re-joined after
    reconnects)."""

    type: Literal["subscribed"]
    room: str
    seq: NotRequired[int]
    epoch: NotRequired[str]


class Unsubscribed(TypedDict):
    """A backend removed this user from ``room``: the client forgets it."""

    type: Literal["unsubscribed"]
    room: str
    reason: NotRequired[str]


class Disconnect(TypedDict):
    """The server is closing this connection; ``reconnect`` says whether the client may come
    back (it does so by itself) or ends ``closed``."""

    type: Literal["disconnect"]
    reason: str
    reconnect: bool


# -- events of the client's own ----------------------------------------------------------


class StateChange(TypedDict):
    type: Literal["state"]
    state: State
    attempt: NotRequired[int]
    """``connecting``/``reconnecting``: the attempt about to be made (1, 2, ...)."""
    delay: NotRequired[float]
    """``connecting``/``reconnecting``: seconds before it."""
    reason: NotRequired[str]
    """``connecting``/``reconnecting``: why the last attempt or connection ended."""
    code: NotRequired[str]
    """``closed`` after a fatal error: its code (``unauthorized``, ``disconnected``, ...)."""
    message: NotRequired[str]


class RecoveryFailed(TypedDict):
    """Messages of a room (or, without ``room``, of the personal stream) up to this position
    could not be recovered; reload them with ``history(room, before_seq=seq + 1)``."""

    type: Literal["recovery_failed"]
    room: NotRequired[str]
    epoch: str
    seq: int


class ErrorEvent(TypedDict):
    """An error frame that answers no request (a notice's, ``token_expired``, API Gateway's
    ``Internal server error``), a refused re-join, a 1009 close, or the fatal error."""

    type: Literal["error"]
    code: str
    message: str
    id: NotRequired[str]
    action: NotRequired[str]
    room: NotRequired[str]
    status: NotRequired[int]
    retryAfterMs: NotRequired[int]
    connectionId: NotRequired[str]
    requestId: NotRequired[str]


Event = (
    Message | Presence | Occupancy | Typing | Broadcast | Push | Subscribed | Unsubscribed
    | Disconnect | StateChange | RecoveryFailed | ErrorEvent
)
"""What ``async for event in client`` yields; narrow it on ``event["type"]`` (frames of other
types come too: see the module's documentation)."""


# -- answers ---------------------------------------------------------------------------


class Ack(TypedDict):
    """The answer to an action that does something; each field only where the action has it."""

    type: Literal["ack"]
    action: str
    id: NotRequired[str]
    delivered: NotRequired[int]
    queued: NotRequired[int]
    room: NotRequired[str]
    seq: NotRequired[int]
    epoch: NotRequired[str]
    recovered: NotRequired[bool]
    stored: NotRequired[bool]
    expiresAt: NotRequired[int]


class Member(TypedDict):
    userId: str
    connections: int


class Members(TypedDict):
    """``presence()``'s answer: every member, however many pages the server sent."""

    type: Literal["members"]
    room: str
    members: list[Member]
    id: NotRequired[str]


class HistoryPage(TypedDict):
    type: Literal["history"]
    epoch: str
    messages: list[Message]
    hasMore: bool
    room: NotRequired[str]
    id: NotRequired[str]


class Whoami(TypedDict):
    type: Literal["whoami"]
    connectionId: str
    """This connection's id: what the management API (``@connections/{id}``) takes."""
    userId: str
    rooms: list[str]
    id: NotRequired[str]


class Pong(TypedDict):
    type: Literal["pong"]
    id: NotRequired[str]


class Stats(TypedDict):
    """Counters since the client was made."""

    connections: int
    drops: int
    recovery_failed: int
    duplicates_dropped: int
    replayed: int
    skipped: int
