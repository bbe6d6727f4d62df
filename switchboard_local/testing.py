"""Run a Chalice WebSocket app's real handlers in-process, for pytest.

Chalice's own test client has no WebSocket support. This one builds API
Gateway events with the real field set, calls the Lambda handlers Chalice
wrapped (middleware included) and emulates the management API behind the
app's *own* botocore client: requests are answered by a ``before-send`` hook
on ``app.websocket_api.session``, so status codes and error types go through
botocore's own parsing — a 410 becomes ``GoneException`` and Chalice raises
``WebsocketDisconnectedError`` exactly as against AWS. Install the client
before the app's first send: Chalice keeps the first client it builds.

    client = WebsocketTestClient(app)
    alice = client.connect(query={"token": token})
    frames = alice.send({"action": "ping"})
"""

from __future__ import annotations

import importlib
import json
import threading
import time
import uuid
import weakref
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HTTPHeaders

from switchboard_local.events import MAX_POST_BYTES, ApiContext, ConnectionContext

Frame = dict[str, Any]


@dataclass(frozen=True)
class Fault:
    """What the emulated endpoint does with one request: wait ``delay`` seconds,
    then answer ``status`` with its AWS error type, or as usual when ``status`` is None."""

    status: int | None = None
    delay: float = 0.0


FaultPolicy = Callable[[str, str], "Fault | None"]
"""Decides each request's fault from its method and connection id; None: no fault."""


@dataclass
class _Socket:
    context: ConnectionContext
    open: bool = True
    received: list[str] = field(default_factory=list)
    last_active: float = field(default_factory=time.time)


class ManagementEmulator:
    """The ``@connections`` API of one API Gateway stage, in memory.

    Answers as AWS does: 200 on POST (the data is recorded as one message),
    GET with connectedAt/lastActiveAt/identity, 204 on DELETE, 410
    ``GoneException`` for unknown or closed connections and 413
    ``PayloadTooLargeException`` above 128 KiB. Faults can be injected per
    connection to exercise retry paths (:meth:`inject`), or decided for every
    request by a :data:`FaultPolicy` set as ``policy`` — a random mix of
    statuses and slow answers, say. Injected faults come first.
    """

    def __init__(self) -> None:
        self._sockets: dict[str, _Socket] = {}
        self._faults: dict[str, deque[int]] = defaultdict(deque)
        self._lock = threading.Lock()
        self.on_delete: Callable[[str], None] | None = None
        self.policy: FaultPolicy | None = None
        self.posts = 0

    def open(self, context: ConnectionContext) -> None:
        with self._lock:
            self._sockets[context.connection_id] = _Socket(context)

    def close(self, connection_id: str) -> bool:
        """Mark closed; True when it was open."""
        with self._lock:
            socket = self._sockets.get(connection_id)
            if socket is None or not socket.open:
                return False
            socket.open = False
            return True

    def received(self, connection_id: str) -> list[str]:
        with self._lock:
            return list(self._sockets[connection_id].received)

    def inject(self, connection_id: str, *statuses: int) -> None:
        """Answer the next posts to this connection with these statuses (429, 500, ...)."""
        with self._lock:
            self._faults[connection_id].extend(statuses)

    def handle(self, request: AWSPreparedRequest) -> AWSResponse:
        connection_id = connection_id_of(request)
        with self._lock:
            queued = self._faults[connection_id]
            fault = queued.popleft() if queued else None
        if fault is None and self.policy is not None:
            decided = self.policy(request.method, connection_id)
            if decided is not None:
                time.sleep(decided.delay)  # outside the lock: slow answers overlap
                fault = decided.status
        with self._lock:
            self.posts += request.method == "POST"
            socket = self._sockets.get(connection_id)
            if fault:
                return _error(request.url, fault, _FAULT_TYPES.get(fault, "InternalServerError"))
            if socket is None or not socket.open:
                return _error(request.url, 410, "GoneException")
            if request.method == "POST":
                return self._post(request, socket)
            if request.method == "GET":
                return _json(request.url, 200, socket.context.description(socket.last_active))
            socket.open = False
        if self.on_delete is not None:
            self.on_delete(connection_id)
        return response(request.url, 204)

    def _post(self, request: AWSPreparedRequest, socket: _Socket) -> AWSResponse:
        data = request_data(request)
        if len(data) > MAX_POST_BYTES:
            return _error(request.url, 413, "PayloadTooLargeException")
        socket.received.append(data.decode("utf-8"))
        return response(request.url, 200)


_FAULT_TYPES = {
    403: "ForbiddenException",
    410: "GoneException",
    413: "PayloadTooLargeException",
    429: "LimitExceededException",
}


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> list[bytes]:
        return [self._data]


def connection_id_of(request: AWSPreparedRequest) -> str:
    """The id in a management request's ``.../@connections/{id}`` path."""
    return unquote(urlsplit(request.url).path.rsplit("/@connections/", 1)[-1])


def request_data(request: AWSPreparedRequest) -> bytes:
    body = request.body or b""
    return body if isinstance(body, bytes) else str(body).encode()


def response(
    url: str, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None
) -> AWSResponse:
    """A response botocore parses as if it had come over HTTP."""
    http_headers = HTTPHeaders()
    for name, value in (headers or {}).items():
        http_headers[name] = value
    return AWSResponse(url, status, http_headers, _Body(body))


def _json(url: str, status: int, payload: Mapping[str, Any]) -> AWSResponse:
    headers = {"Content-Type": "application/json"}
    return response(url, status, json.dumps(payload).encode(), headers)


def _error(url: str, status: int, error_type: str) -> AWSResponse:
    answer = _json(url, status, {"message": None})
    answer.headers["x-amzn-ErrorType"] = error_type
    return answer


class _EmulatorRoute:
    """The ``before-send`` hook on a session: answers from the current emulator.

    botocore copies a session's event hooks into each client it creates and
    Chalice keeps its first client for good, so the hook is registered once per
    session and later test clients only repoint it.
    """

    def __init__(self, emulator: ManagementEmulator) -> None:
        self.emulator = emulator

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        return self.emulator.handle(request)


_ROUTES: weakref.WeakKeyDictionary[Any, _EmulatorRoute] = weakref.WeakKeyDictionary()


def route_management_api(session: Any, emulator: ManagementEmulator) -> None:
    """Answer the session's management API calls from ``emulator``.

    The session keeps its own client configuration (pool size, retry policy),
    so tests exercise the clients the app really builds.
    """
    route = _ROUTES.get(session)
    if route is None:
        route = _ROUTES[session] = _EmulatorRoute(emulator)
        session.events.register("before-send.apigatewaymanagementapi", route)
    route.emulator = emulator


class LambdaContext:
    """The parts of Lambda's context object that handlers read."""

    def __init__(self, function_name: str, budget_seconds: float = 30.0) -> None:
        self.function_name = function_name
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + budget_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class WebsocketTestClient:
    """Connect, send and disconnect against an app's real WebSocket handlers."""

    def __init__(
        self,
        app: Any,
        api: ApiContext | None = None,
        region_name: str = "us-east-1",
    ) -> None:
        self.api = api or ApiContext(stage=getattr(app, "api_gateway_stage", None) or "api")
        self.emulator = ManagementEmulator()
        self.emulator.on_delete = lambda cid: self._run_disconnect(cid, 1000, "")
        self._handlers = {
            route: _resolve(config.handler_string)
            for route, config in app.websocket_handlers.items()
        }
        self._contexts: dict[str, ConnectionContext] = {}
        self.budget_seconds = 30.0  # each invocation's Lambda time budget
        if app.websocket_api.session is None:
            app.websocket_api.session = boto3.session.Session(region_name=region_name)
        route_management_api(app.websocket_api.session, self.emulator)

    def connect(
        self,
        query: Mapping[str, str | list[str]] | None = None,
        headers: Mapping[str, str | list[str]] | None = None,
        user_agent: str | None = "switchboard-tests",
    ) -> TestConnection:
        context = ConnectionContext(self.api, user_agent=user_agent)
        all_headers = {"Host": self.api.domain_name, **(headers or {})}
        if user_agent is not None:
            all_headers.setdefault("User-Agent", user_agent)
        answer = self.invoke("$connect", context.connect_event(all_headers, query))
        status = int(answer.get("statusCode", 200))
        if 200 <= status < 300:
            self._contexts[context.connection_id] = context
            self.emulator.open(context)
        return TestConnection(self, context.connection_id, status)

    def invoke(self, route: str, event: dict[str, Any]) -> dict[str, Any]:
        handler = self._handlers.get(route)
        if handler is None:
            return {"statusCode": 200}
        context = LambdaContext(f"websocket_{route.strip('$')}", self.budget_seconds)
        result = handler(event, context)
        return result if isinstance(result, dict) else {"statusCode": 200}

    def context_of(self, connection_id: str) -> ConnectionContext:
        return self._contexts[connection_id]

    def send(self, connection_id: str, body: str) -> dict[str, Any]:
        context = self._contexts[connection_id]
        return self.invoke("$default", context.message_event(body))

    def disconnect(self, connection_id: str, status_code: int = 1000, reason: str = "") -> None:
        if self.emulator.close(connection_id):
            self._run_disconnect(connection_id, status_code, reason)

    def vanish(self, connection_id: str) -> None:
        """The socket dies and API Gateway never calls ``$disconnect`` (it may not)."""
        self.emulator.close(connection_id)

    def _run_disconnect(self, connection_id: str, status_code: int, reason: str) -> None:
        context = self._contexts[connection_id]
        self.invoke("$disconnect", context.disconnect_event(status_code, reason))


class TestConnection:
    """One client socket: what it sent and every frame posted to it."""

    __test__ = False  # not a pytest test class

    def __init__(self, client: WebsocketTestClient, connection_id: str, status: int) -> None:
        self.client = client
        self.id = connection_id
        self.status = status
        self._seen = 0

    @property
    def context(self) -> ConnectionContext:
        """API Gateway's view of this connection, to build further events by hand."""
        return self.client.context_of(self.id)

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300

    @property
    def frames(self) -> list[Frame]:
        return [json.loads(text) for text in self.client.emulator.received(self.id)]

    def new_frames(self) -> list[Frame]:
        """Frames that arrived since the last call."""
        frames = self.frames
        fresh, self._seen = frames[self._seen:], len(frames)
        return fresh

    def send(self, frame: Mapping[str, Any] | str) -> list[Frame]:
        """Send a frame; returns the frames this connection got while it was handled."""
        self.new_frames()
        body = frame if isinstance(frame, str) else json.dumps(frame)
        self.client.send(self.id, body)
        return self.new_frames()

    def request(self, frame: Mapping[str, Any] | str) -> Frame:
        """Send a frame and return the one answer this connection got."""
        frames = self.send(frame)
        if len(frames) != 1:
            raise AssertionError(f"expected one answer, got {frames!r}")
        return frames[0]

    def disconnect(self, status_code: int = 1000, reason: str = "") -> None:
        self.client.disconnect(self.id, status_code, reason)

    def vanish(self) -> None:
        self.client.vanish(self.id)


def _resolve(handler_string: str) -> Callable[..., Any]:
    module_name, _, attribute = handler_string.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)  # type: ignore[no-any-return]


def sqs_event(
    messages: list[Mapping[str, Any]],
    queue_arn: str = "arn:aws:sqs:us-east-1:123456789012:fanout",
) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping hands a function, from ReceiveMessage's
    ``Messages`` (with ``MessageId``, ``ReceiptHandle`` and ``Body``)."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": queue_arn.split(":")[3],
            }
            for message in messages
        ]
    }
