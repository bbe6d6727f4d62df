"""Run a Chalice WebSocket app's real handlers in-process, for pytest.

Chalice's own test client has no WebSocket support. This one builds API
Gateway events with the real field set, calls the Lambda handlers Chalice
wrapped (middleware included) in the test's own process, one call at a time
(the gateway's containers are not used here) and emulates the management API behind the
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

import json
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.awsrequest import AWSPreparedRequest, AWSResponse

from switchboard_local import stage
from switchboard_local.botocore_hook import (
    MANAGEMENT_SERVICE,
    connection_id_of,
    request_data,
    response,
)
from switchboard_local.events import ApiContext, ConnectionContext, connect_headers
from switchboard_local.lambda_runtime import AppFunctions, LambdaContext
from switchboard_local.stage import (
    ConnectionTable,
    Deliver,
    Drop,
    Fault,
    FaultPolicy,
    Faults,
)

__all__ = [
    "Fault", "FaultPolicy", "LambdaContext", "ManagementEmulator", "TestConnection",
    "WebsocketTestClient", "route_management_api",
]

Frame = dict[str, Any]


@dataclass(eq=False)
class _Recorded(stage.Connection):
    """A connection whose socket is a list of the messages posted to it."""

    received: list[str] = field(default_factory=list)


class ManagementEmulator:
    """The ``@connections`` API of one stage, in memory, on the stage core's rules.

    Faults can be injected per connection to exercise retry paths
    (:meth:`inject`), or decided for every request by a :data:`FaultPolicy` set
    as ``policy`` — a random mix of statuses and slow answers, say. Injected
    faults come first.
    """

    def __init__(self) -> None:
        self.table: ConnectionTable[_Recorded] = ConnectionTable()
        self.faults = Faults()
        self._lock = threading.Lock()
        self.on_delete: Callable[[str], None] | None = None
        self.posts = 0

    @property
    def policy(self) -> FaultPolicy | None:
        return self.faults.policy

    @policy.setter
    def policy(self, policy: FaultPolicy | None) -> None:
        self.faults.policy = policy

    def open(self, context: ConnectionContext) -> None:
        connection = _Recorded(context)
        connection.open()
        self.table.add(connection)

    def close(self, connection_id: str) -> bool:
        """Mark closed; True when it was open."""
        with self._lock:
            connection = self.table.open(connection_id)
            if connection is None:
                return False
            connection.state = stage.State.CLOSED
            return True

    def received(self, connection_id: str) -> list[str]:
        connection = self.table.get(connection_id)
        if connection is None:
            raise KeyError(connection_id)
        with self._lock:
            return list(connection.received)

    def inject(self, connection_id: str, *statuses: int) -> None:
        """Answer the next posts to this connection with these statuses (429, 500, ...)."""
        self.faults.inject(connection_id, *statuses)

    def handle(self, request: AWSPreparedRequest) -> AWSResponse:
        connection_id = connection_id_of(request)
        fault = self.faults.next(request.method, connection_id)
        if fault is not None:
            time.sleep(fault.delay)  # outside the lock: slow answers overlap
        with self._lock:
            self.posts += request.method == "POST"
            ruling = stage.rule(
                self.table, request.method, connection_id, request_data(request),
                fault.status if fault is not None else None,
            )
            if isinstance(ruling, Deliver):
                ruling.connection.received.append(ruling.text)
                ruling.connection.touch()
                ruling = stage.OK
            elif isinstance(ruling, Drop):
                ruling.connection.state = stage.State.CLOSED
        if isinstance(ruling, Drop):
            if self.on_delete is not None:
                self.on_delete(connection_id)
            ruling = stage.DELETED
        return response(request.url, ruling.status, ruling.body, ruling.headers)


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
        session.events.register(f"before-send.{MANAGEMENT_SERVICE}", route)
    route.emulator = emulator


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
        self.functions = AppFunctions(app)
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
        client = {**(headers or {})}
        if user_agent is not None:
            client.setdefault("User-Agent", user_agent)
        pairs = [(name, value) for name, values in client.items()
                 for value in ([values] if isinstance(values, str) else values)]
        forwarded = connect_headers(pairs, self.api.domain_name, context.source_ip, 443, "https")
        answer = self.invoke("$connect", context.connect_event(forwarded, query))
        status = stage.connect_status(answer)
        if 200 <= status < 300:
            self._contexts[context.connection_id] = context
            self.emulator.open(context)
        return TestConnection(self, context.connection_id, status)

    def invoke(self, route: str, event: dict[str, Any]) -> dict[str, Any]:
        """Run a route's handler with this event; its exceptions propagate to the test."""
        return self.functions.invoke_route(route, event, self.budget_seconds)

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

