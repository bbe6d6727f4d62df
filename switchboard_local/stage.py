"""One API Gateway WebSocket stage without a transport: the only code that knows its rules.

Both local adapters build on this module, the way ``websockets`` keeps one
protocol with several I/O layers: :mod:`switchboard_local.gateway` (aiohttp
sockets, a thread pool) and :mod:`switchboard_local.testing` (in-process, for
pytest). What lives here and nowhere else:

* the connection table and each connection's state machine — *connecting*
  while ``$connect`` runs (the management API answers 410), *open* once it
  accepted, *closed* after the socket closed, the first close reported wins;
* the ``@connections`` rules: POST/GET/DELETE on an open connection, 410
  ``GoneException`` otherwise, 413 ``PayloadTooLargeException`` above 128 KiB,
  injected faults first — decided as :data:`Ruling` values that the adapter
  carries out on its own transport;
* fault injection (:class:`Faults`);
* the Lambda context handlers get, and the resolution of Chalice's
  ``handler_string`` to what Lambda would call (:class:`AppFunctions`).

Event shapes are built by :mod:`switchboard_local.events`.
"""

from __future__ import annotations

import importlib
import json
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import ModuleType
from typing import Any, Generic, TypeVar

from switchboard_local.events import MAX_POST_BYTES, ConnectionContext

Handler = Callable[[Any, Any], Any]

# The Lambda functions ``chalice deploy`` creates for the three WebSocket routes.
ROUTE_FUNCTIONS = {
    "$connect": "websocket_connect",
    "$default": "websocket_message",
    "$disconnect": "websocket_disconnect",
}
DEFAULT_BUDGET_SECONDS = 30.0


# -- connections ------------------------------------------------------------------


class State(Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(eq=False)
class Connection:
    """What API Gateway remembers about one connection; adapters add their transport."""

    context: ConnectionContext
    state: State = State.CONNECTING
    last_active: float = field(default_factory=time.time)
    close_code: int | None = None
    close_reason: str = ""
    connect_result: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.context.connection_id

    def touch(self) -> None:
        self.last_active = time.time()

    def record_close(self, code: int, reason: str = "") -> None:
        """The first close wins: later reports of the same close change nothing."""
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason

    def accept(self, result: dict[str, Any]) -> bool:
        """Record ``$connect``'s answer; True when it accepts (a 2xx).

        The connection stays *connecting* until the adapter has completed the
        handshake and calls :meth:`open`.
        """
        self.connect_result = result
        return 200 <= connect_status(result) < 300

    def open(self) -> None:
        self.state = State.OPEN

    def description(self) -> dict[str, Any]:
        """GetConnection's answer: connectedAt, lastActiveAt and identity."""
        return self.context.description(self.last_active)


C = TypeVar("C", bound=Connection)


class ConnectionTable(Generic[C]):
    """The connections of one stage by id, whatever their state; thread-safe."""

    def __init__(self) -> None:
        self._connections: dict[str, C] = {}
        self._lock = threading.Lock()

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


def connect_status(result: dict[str, Any]) -> int:
    """The status ``$connect`` answered (200 when it returned no status)."""
    return int(result.get("statusCode", 200))


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
DELETE_CLOSE_CODE = 1000


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


def internal_error_frame(event: dict[str, Any]) -> str:
    """What API Gateway sends a client whose message's integration failed."""
    context = event["requestContext"]
    return json.dumps({
        "message": "Internal server error",
        "connectionId": context["connectionId"],
        "requestId": context["requestId"],
    })


# -- Lambda -------------------------------------------------------------------------


class LambdaContext:
    """The context object Lambda passes a handler, with its time budget."""

    def __init__(
        self, function_name: str, budget_seconds: float = DEFAULT_BUDGET_SECONDS,
        memory_limit_in_mb: int = 128,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        )
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + budget_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda function of a Chalice app, as ``chalice deploy`` would create it."""

    name: str
    """Chalice's name for it: ``websocket_message``, ``push``, ``fanout_worker``..."""
    handler: Handler
    kind: str
    """``websocket``, ``lambda`` (``@app.lambda_function``) or ``sqs``."""
    source: Any = None
    """Chalice's registration object (the ``SQSEventConfig`` of a consumer)."""


class AppFunctions:
    """A Chalice app's functions, resolved as Lambda calls them (middleware included).

    ``handler_string`` (``app.connect``) names a module attribute; ``module`` is
    the already imported app module that ``app`` means. Registrations are read
    from the app's public lists (``websocket_handlers``, ``pure_lambda_functions``,
    ``event_sources``), the ones Chalice's own packager reads.
    """

    def __init__(
        self, app: Any, module: ModuleType | None = None, prefix: str = "",
        budgets: Mapping[str, float] | None = None,
    ) -> None:
        self.app = app
        self.prefix = prefix
        self.budgets = dict(budgets or {})
        self.routes: dict[str, FunctionSpec] = {}
        self.functions: dict[str, FunctionSpec] = {}
        for route, config in getattr(app, "websocket_handlers", {}).items():
            spec = FunctionSpec(ROUTE_FUNCTIONS.get(route, route.strip("$")),
                                resolve(config.handler_string, module), "websocket", config)
            self.routes[route] = spec
            self.functions[spec.name] = spec
        for function in getattr(app, "pure_lambda_functions", []):
            self.functions[function.name] = FunctionSpec(
                function.name, resolve(function.handler_string, module), "lambda", function
            )
        for source in getattr(app, "event_sources", []):
            if type(source).__name__ == "SQSEventConfig":
                self.functions[source.name] = FunctionSpec(
                    source.name, resolve(source.handler_string, module), "sqs", source
                )

    def of_kind(self, kind: str) -> list[FunctionSpec]:
        return [spec for spec in self.functions.values() if spec.kind == kind]

    def function_name(self, name: str) -> str:
        """The deployed name: ``<app>-<stage>-<name>`` with the gateway's prefix."""
        return f"{self.prefix}{name}"

    def call(self, spec: FunctionSpec, event: Any, budget_seconds: float | None = None) -> Any:
        """One invocation with a fresh context; the handler's exceptions propagate.

        The budget is the function's ``lambda_timeout`` (``budgets``) unless given.
        """
        if budget_seconds is None:
            budget_seconds = self.budgets.get(spec.name, DEFAULT_BUDGET_SECONDS)
        return spec.handler(event, LambdaContext(self.function_name(spec.name), budget_seconds))

    def invoke_route(
        self, route: str, event: dict[str, Any], budget_seconds: float | None = None
    ) -> dict[str, Any]:
        """A WebSocket route's answer as a dict with ``statusCode``.

        A route without a handler answers 200, as a stage without that route
        behaves (API Gateway accepts a connection when there is no ``$connect``).
        """
        spec = self.routes.get(route)
        if spec is None:
            return {"statusCode": 200}
        result = self.call(spec, event, budget_seconds)
        return result if isinstance(result, dict) else {"statusCode": 200}


def resolve(handler_string: str, module: ModuleType | None = None) -> Handler:
    """``app.connect`` → the ``connect`` attribute of the app module (or any importable one)."""
    module_name, _, attribute = handler_string.rpartition(".")
    if module is None or module_name != "app":
        module = importlib.import_module(module_name)
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise LookupError(f"handler {handler_string!r} is not a callable of the app")
    return handler  # type: ignore[no-any-return]
