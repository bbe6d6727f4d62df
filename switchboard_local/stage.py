"""One API Gateway WebSocket stage without a transport: the only code that knows its rules.

Both local adapters build on this module, the way ``websockets`` keeps one
protocol with several I/O layers: :mod:`switchboard_local.gateway` (aiohttp
sockets) and :mod:`switchboard_local.testing` (in-process, for pytest). The
core decides; an adapter reads and writes its transport and reports what
happened. What lives here and nowhere else:

* each connection's lifecycle (:class:`Connection`): *connecting* while
  ``$connect`` runs (the management API answers 410), the handshake's answer
  (:meth:`Connection.handshake`), *open* once the adapter completed it,
  *closing* once someone closed it, *closed* when the socket is gone, then
  ``$disconnect``'s event exactly once. The first close recorded wins, so a
  client's echo of the gateway's own close never replaces its code and
  reason; a close frame without a status is 1005. Idle time, maximum
  duration and message limits are decided here (:class:`Limits`), with an
  injected clock;
* what a client gets when an integration fails (:meth:`Connection.failure_frame`,
  :meth:`Connection.handshake`): a refusal status, or an error frame;
* the connection table of a stage, which refuses handshakes while it stops;
* the ``@connections`` rules: POST/GET/DELETE on an open connection, 410
  ``GoneException`` otherwise, 413 ``PayloadTooLargeException`` above 128 KiB,
  injected faults first — decided as :data:`Ruling` values that the adapter
  carries out on its own transport;
* fault injection (:class:`Faults`).

Event shapes are built by :mod:`switchboard_local.events`; how functions are
called, by :mod:`switchboard_local.lambda_runtime`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, TypeVar

from switchboard_local.events import MAX_POST_BYTES, ConnectionContext
from switchboard_local.lambda_runtime import Outcome, Returned, Throttled, route_answer

NORMAL_CLOSURE = 1000
GOING_AWAY = 1001
UNSUPPORTED_DATA = 1003
NO_STATUS = 1005
ABNORMAL_CLOSURE = 1006
MESSAGE_TOO_BIG = 1009
NO_STATUS_REASON = "Client-side close frame status not set"
"""``disconnectReason`` of a close frame without a status code, as AWS reports it."""
INTEGRATION_TIMEOUT_SECONDS = 29.0
"""API Gateway's longest wait for an integration; the function may run on."""
MAX_FRAME_BYTES = 32 * 1024
"""API Gateway's largest frame: a larger single frame closes the socket with 1009;
a message up to 128 KiB may come in several frames."""


@dataclass(frozen=True)
class Limits:
    """API Gateway's per-connection limits (seconds, bytes)."""

    idle_timeout: float = 600.0
    max_duration: float = 7200.0
    max_message_bytes: int = MAX_POST_BYTES
    max_frame_bytes: int = MAX_FRAME_BYTES
    integration_timeout: float = INTEGRATION_TIMEOUT_SECONDS


Clock = Callable[[], float]
"""Seconds since the epoch (``time.time``); injected where time matters."""


# -- what the client gets -----------------------------------------------------------


@dataclass(frozen=True)
class IntegrationTimedOut:
    """API Gateway stopped waiting for the function (:data:`INTEGRATION_TIMEOUT_SECONDS`)."""


RouteOutcome = Outcome | IntegrationTimedOut


@dataclass(frozen=True)
class Accept:
    """Complete the handshake, echoing the subprotocol ``$connect`` chose (if any)."""

    protocols: tuple[str, ...] = ()


@dataclass(frozen=True)
class Refuse:
    """Answer the handshake with this HTTP status instead of upgrading."""

    status: int
    body: str | None = None


Handshake = Accept | Refuse

STOPPING = Refuse(503, "The gateway is stopping\n")


@dataclass(frozen=True)
class Close:
    """Close the socket from the server side with this code and reason."""

    code: int
    reason: str = ""


GOING_AWAY_CLOSE = Close(GOING_AWAY, "Going away")


def integration_failure(outcome: RouteOutcome) -> tuple[int, str]:
    """API Gateway's status and message for an integration that returned nothing: a
    failed function (an exception, a crash, its own timeout) is a 502; a throttled
    one a 500 (API Gateway maps Lambda's 429 to an integration failure); the
    integration timeout a 504 ``Endpoint request timed out``. The handshake, the
    error frame and the REST API all answer by this rule."""
    if isinstance(outcome, IntegrationTimedOut):
        return 504, "Endpoint request timed out"
    if isinstance(outcome, Throttled):
        return 500, "Internal server error"
    return 502, "Internal server error"  # Raised or TimedOut: the function failed


def handshake_answer(outcome: RouteOutcome) -> Handshake:
    """What API Gateway answers a handshake, given how ``$connect``'s integration ended.

    A 2xx answer accepts; another status refuses with that status (and body);
    an integration that returned nothing refuses as :func:`integration_failure` says.
    """
    if isinstance(outcome, Returned):
        answer = route_answer(outcome.value)
        status = connect_status(answer)
        if 200 <= status < 300:
            return Accept(_chosen_protocol(answer))
        body = answer.get("body")
        return Refuse(status, body if isinstance(body, str) else None)
    status, message = integration_failure(outcome)
    return Refuse(status, json.dumps({"message": message}))


def connect_status(result: Mapping[str, Any]) -> int:
    """The status ``$connect`` answered (200 when it returned no status)."""
    return int(result.get("statusCode", 200))


def _chosen_protocol(answer: Mapping[str, Any]) -> tuple[str, ...]:
    """The subprotocol ``$connect`` chose, echoed as API Gateway echoes its header."""
    headers = answer.get("headers") or {}
    chosen = {str(k).lower(): v for k, v in headers.items()}.get("sec-websocket-protocol")
    return (chosen,) if isinstance(chosen, str) and chosen else ()


# -- connections --------------------------------------------------------------------


class State(Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(eq=False)
class Connection:
    """What API Gateway remembers about one connection, and its state machine.

    Adapters subclass it to add their transport, and report to it what the
    transport did; it answers what to do next.
    """

    context: ConnectionContext
    limits: Limits = field(default_factory=Limits)
    clock: Clock = time.time
    state: State = State.CONNECTING
    last_active: float = 0.0
    opened_at: float = 0.0
    close_code: int | None = None
    close_reason: str = ""
    _accepted: bool = False
    _disconnected: bool = False

    def __post_init__(self) -> None:
        self.last_active = self.opened_at = self.clock()

    @property
    def id(self) -> str:
        return self.context.connection_id

    # -- the handshake --

    def connect_event(
        self,
        headers: Mapping[str, str | list[str]] | None = None,
        query: Mapping[str, str | list[str]] | None = None,
    ) -> dict[str, Any]:
        return self.context.connect_event(headers, query)

    def handshake(self, outcome: RouteOutcome) -> Handshake:
        """``$connect``'s integration ended: accept or refuse. Still *connecting*: the
        adapter completes the handshake, then calls :meth:`open`; a refused
        connection never existed (no ``$disconnect``)."""
        answer = handshake_answer(outcome)
        if isinstance(answer, Refuse):
            self.state = State.CLOSED
        else:
            self._accepted = True
        return answer

    def open(self, accepting: bool = True) -> Close | None:
        """The handshake completed; a stage that began stopping meanwhile closes it at once."""
        if self.state is not State.CONNECTING:
            return None
        self.state = State.OPEN
        self.last_active = self.opened_at = self.clock()
        if not accepting:
            return self.close(GOING_AWAY_CLOSE)
        return None

    # -- while open --

    def touch(self) -> None:
        """Data went through, either way: the idle timer starts again."""
        self.last_active = self.clock()

    def received_binary(self) -> Close | None:
        """Chalice's integration converts to text: API Gateway refuses binary frames."""
        return self.close(Close(UNSUPPORTED_DATA, "Binary frames unsupported"))

    def frame_too_big(self) -> Close | None:
        """A single frame over :data:`MAX_FRAME_BYTES` (whatever its message's size)."""
        return self.close(Close(MESSAGE_TOO_BIG, "Message too big"))

    def message_event(self, body: str) -> dict[str, Any]:
        return self.context.message_event(body)

    def failure_frame(self, event: Mapping[str, Any], outcome: RouteOutcome) -> str | None:
        """What API Gateway sends the client when a message's integration failed (or
        None: it succeeded, or the socket is no longer open)."""
        if isinstance(outcome, Returned) or self.state is not State.OPEN:
            return None
        return failure_frame(event, integration_failure(outcome)[1])

    def next_deadline(self) -> float | Close | None:
        """Seconds until the idle timeout or the maximum duration, the close that is
        due, or None: the connection is no longer open, there is nothing to watch."""
        if self.state is not State.OPEN:
            return None
        now = self.clock()
        idle_left = self.last_active + self.limits.idle_timeout - now
        duration_left = self.opened_at + self.limits.max_duration - now
        if idle_left <= 0 or duration_left <= 0:
            return self.close(GOING_AWAY_CLOSE)
        return min(idle_left, duration_left)

    # -- closing --

    def close(self, close: Close) -> Close | None:
        """The server closes: the Close for the adapter to send, or None when the
        connection was closing already (the first close wins)."""
        self.record_close(close.code, close.reason)
        if self.state in (State.CONNECTING, State.OPEN):
            self.state = State.CLOSING
            return close
        return None

    def client_closed(self, code: int | None, reason: str = "") -> None:
        """The client's close frame (or its echo of ours): recorded only if first."""
        if not code:
            code, reason = NO_STATUS, NO_STATUS_REASON
        self.record_close(code, reason)
        if self.state is State.OPEN:
            self.state = State.CLOSING

    def protocol_error(self, code: int) -> None:
        """The transport failed the socket with this close code (1009, 1002...)."""
        self.record_close(code, "Message too big" if code == MESSAGE_TOO_BIG else "")

    def record_close(self, code: int, reason: str = "") -> None:
        """The first close wins: later reports of the same close change nothing."""
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason

    def socket_closed(self) -> dict[str, Any] | None:
        """The socket is gone: *closed*, and ``$disconnect``'s event the first time
        for a connection ``$connect`` accepted (None otherwise). Nothing recorded
        a close: the socket was lost, 1006."""
        self.state = State.CLOSED
        if self._disconnected or not self._accepted:
            return None
        self._disconnected = True
        code = self.close_code if self.close_code is not None else ABNORMAL_CLOSURE
        return self.context.disconnect_event(code, self.close_reason)

    def description(self) -> dict[str, Any]:
        """GetConnection's answer: connectedAt, lastActiveAt and identity."""
        return self.context.description(self.last_active)


def failure_frame(event: Mapping[str, Any], message: str = "Internal server error") -> str:
    """The frame API Gateway sends a client whose message's integration failed."""
    context = event["requestContext"]
    return json.dumps({
        "message": message,
        "connectionId": context["connectionId"],
        "requestId": context["requestId"],
    })


C = TypeVar("C", bound=Connection)


class ConnectionTable(Generic[C]):
    """The connections of one stage by id, whatever their state; thread-safe.

    While the stage stops (:meth:`stop_accepting`) new handshakes are refused
    with 503, so a client that reconnects at once cannot hold the stop up.
    """

    def __init__(self) -> None:
        self._connections: dict[str, C] = {}
        self._lock = threading.Lock()
        self.accepting = True

    def admit(self, connection: C) -> Refuse | None:
        """Add a new connection, or the refusal its handshake gets."""
        if not self.accepting:
            return STOPPING
        self.add(connection)
        return None

    def stop_accepting(self) -> list[C]:
        """Refuse new handshakes from now on; the connections to close."""
        self.accepting = False
        return self.all()

    def add(self, connection: C) -> None:
        with self._lock:
            self._connections[connection.id] = connection

    def remove(self, connection: C) -> None:
        with self._lock:
            if self._connections.get(connection.id) is connection:
                del self._connections[connection.id]

    def get(self, connection_id: str) -> C | None:
        with self._lock:
            return self._connections.get(connection_id)

    def open(self, connection_id: str) -> C | None:
        """The connection if it is open: unknown, connecting and closed ones are gone (410)."""
        connection = self.get(connection_id)
        if connection is None or connection.state is not State.OPEN:
            return None
        return connection

    def all(self) -> list[C]:
        with self._lock:
            return list(self._connections.values())

    def __iter__(self) -> Iterator[C]:
        return iter(self.all())


# -- faults -------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """What the endpoint does with one request: wait ``delay`` seconds, then answer
    ``status`` with its AWS error type, or as usual when ``status`` is None."""

    status: int | None = None
    delay: float = 0.0


FaultPolicy = Callable[[str, str], "Fault | None"]
"""Decides each request's fault from its method and connection id; None: no fault."""


class Faults:
    """Faults queued per connection (:meth:`inject`), then a ``policy`` for every request."""

    def __init__(self) -> None:
        self._queued: dict[str, deque[int]] = defaultdict(deque)
        self._lock = threading.Lock()
        self.policy: FaultPolicy | None = None

    def inject(self, connection_id: str, *statuses: int) -> None:
        """Answer the next requests for this connection with these statuses (429, 500, ...)."""
        with self._lock:
            self._queued[connection_id].extend(statuses)

    def next(self, method: str, connection_id: str) -> Fault | None:
        with self._lock:
            queued = self._queued.get(connection_id)
            if queued:
                return Fault(queued.popleft())
        return self.policy(method, connection_id) if self.policy is not None else None


# -- the @connections rules ---------------------------------------------------------

ERROR_TYPES = {
    403: "ForbiddenException",
    410: "GoneException",
    413: "PayloadTooLargeException",
    429: "LimitExceededException",
}


@dataclass(frozen=True)
class Answer:
    """The HTTP answer to a management request, as AWS gives it."""

    status: int
    payload: dict[str, Any] | None = None
    error_type: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        headers = {}
        if self.error_type is not None:
            headers["x-amzn-ErrorType"] = self.error_type
        if self.payload is not None:
            headers["Content-Type"] = "application/json"
        return headers

    @property
    def body(self) -> bytes:
        return b"" if self.payload is None else json.dumps(self.payload).encode()


@dataclass(frozen=True)
class Deliver(Generic[C]):
    """POST: write ``text`` to the connection's socket, then answer :data:`OK` (or gone)."""

    connection: C
    text: str


@dataclass(frozen=True)
class Drop(Generic[C]):
    """DELETE: close the connection with 1000, which runs ``$disconnect``; answer 204."""

    connection: C


Ruling = Answer | Deliver[C] | Drop[C]

OK = Answer(200)
DELETED = Answer(204)
DELETE_CLOSE = Close(NORMAL_CLOSURE, "")


def error(status: int, message: str | None = None) -> Answer:
    return Answer(status, {"message": message}, ERROR_TYPES.get(status, "InternalServerError"))


def gone() -> Answer:
    return error(410)


def rule(table: ConnectionTable[C], method: str, connection_id: str, data: bytes,
         fault_status: int | None = None) -> Ruling[C]:
    """What API Gateway does with one ``@connections`` request."""
    if fault_status:
        return error(fault_status)
    connection = table.open(connection_id)
    if connection is None:
        return gone()
    if method == "POST":
        if len(data) > MAX_POST_BYTES:
            return error(413, "Request entity too large")
        return Deliver(connection, data.decode("utf-8", errors="replace"))
    if method == "GET":
        return Answer(200, connection.description())
    if method == "DELETE":
        return Drop(connection)
    return Answer(405, {"message": f"{method} is not allowed"}, "MethodNotAllowed")
