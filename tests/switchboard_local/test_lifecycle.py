"""The gateway's lifecycle and events, with a tiny recording app loaded by project option.

The tiny app lives in a temporary project directory whose stage sets
``api_gateway_stage`` to ``v1``: loading any Chalice project, and serving its
stage's path, are under test here too.

Where the AWS behaviours come from (the facts are gathered in the project's
reference notes on API Gateway WebSocket APIs):

* event field sets: the events captured from API Gateway in ``aws_events/``
  (CONNECT with headers and query string, MESSAGE with ``body`` and
  ``messageId``, DISCONNECT with status and reason, one ``connectedAt``);
* the handshake waits for ``$connect``, another status refuses with it, a
  refused connection never existed (no ``$disconnect``), posts inside
  ``$connect`` are 410: API Gateway developer guide, "Manage connected users
  and client apps: $connect and $disconnect routes"
  (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-route-keys-connect-disconnect.html)
  and "Use @connections commands in your backend service"; the bugs it must
  not repeat: serverless-offline #1110, LocalStack #4039;
* a failed message integration sends ``Internal server error`` with the
  connection and request ids: the error frame API Gateway sends (aws/chalice#1406);
* 128 KB messages (1009), idle timeout and maximum duration (1001): API
  Gateway's "Amazon API Gateway quotas for configuring and running a WebSocket
  API"; binary frames closed with 1003: Chalice's integration converts to text
  (``CONVERT_TO_TEXT``), which refuses binary;
* GetConnection's ``Identity``: the ``apigatewaymanagementapi`` service model
  in botocore.
"""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest
from websockets.exceptions import ConnectionClosed

from switchboard_local.gateway.connections import Limits
from tests.gateways import WAIT, Running, eventually, stop

from .conftest import start_tiny

REQUEST_CONTEXT_FIELDS = {
    "routeKey", "eventType", "connectionId", "connectedAt", "requestId", "extendedRequestId",
    "requestTime", "requestTimeEpoch", "messageDirection", "stage", "domainName", "apiId",
    "identity",
}


def events_of(running: Running, connection_id: str, kind: str = "event") -> list[dict[str, Any]]:
    return [
        e for e in running.events()
        if e["kind"] == kind
        and (e.get("event", {}).get("requestContext", {}).get("connectionId") == connection_id
             or e.get("connectionId") == connection_id)
    ]


def disconnects(running: Running, connection_id: str) -> list[dict[str, Any]]:
    return [
        e["event"] for e in events_of(running, connection_id)
        if e["event"]["requestContext"]["eventType"] == "DISCONNECT"
    ]


def echo(client: Any, body: str) -> dict[str, Any]:
    client.send(body)
    return dict(json.loads(client.recv(timeout=WAIT)))


def test_stage_path_comes_from_the_project_config(tiny_gateway: Running) -> None:
    assert tiny_gateway.gateway.websocket_url.endswith("/v1")


def test_event_field_sets(tiny_gateway: Running) -> None:
    with tiny_gateway.connect("room=a&room=b&x=1", user_agent_header="tiny-tests/1") as client:
        message = echo(client, "hello")["event"]
        connection_id = message["requestContext"]["connectionId"]
    connect_event = events_of(tiny_gateway, connection_id)[0]["event"]
    disconnect = eventually(lambda: disconnects(tiny_gateway, connection_id))[0]

    assert {"headers", "multiValueHeaders", "queryStringParameters",
            "multiValueQueryStringParameters", "requestContext"} <= set(connect_event)
    assert "body" not in connect_event
    assert connect_event["multiValueQueryStringParameters"] == {"room": ["a", "b"], "x": ["1"]}
    assert connect_event["queryStringParameters"] == {"room": "b", "x": "1"}
    assert connect_event["headers"]["User-Agent"] == "tiny-tests/1"
    assert connect_event["headers"]["Host"] == tiny_gateway.gateway.base
    assert connect_event["multiValueHeaders"]["Sec-WebSocket-Version"] == ["13"]

    assert message["body"] == "hello" and message["isBase64Encoded"] is False
    assert "headers" not in message and "messageId" in message["requestContext"]

    assert disconnect["requestContext"]["disconnectStatusCode"] == 1000
    assert "disconnectReason" in disconnect["requestContext"]

    contexts = [e["requestContext"] for e in (connect_event, message, disconnect)]
    for context, (route, kind) in zip(
        contexts,
        [("$connect", "CONNECT"), ("$default", "MESSAGE"), ("$disconnect", "DISCONNECT")],
        strict=True,
    ):
        assert set(context) >= REQUEST_CONTEXT_FIELDS
        assert (context["routeKey"], context["eventType"]) == (route, kind)
        assert context["stage"] == "v1" and context["messageDirection"] == "IN"
        assert context["requestId"] == context["extendedRequestId"]
        assert context["identity"] == {"sourceIp": "127.0.0.1", "userAgent": "tiny-tests/1"}
    assert len({c["connectedAt"] for c in contexts}) == 1
    assert len({c["requestId"] for c in contexts}) == 3


def test_refusing_connect_refuses_the_handshake_with_its_status(tiny_gateway: Running) -> None:
    assert tiny_gateway.refusal("status=403") == 403


def test_refused_connections_get_no_disconnect(tiny_gateway: Running) -> None:
    assert tiny_gateway.refusal("status=401") == 401
    refused = [
        e["event"]["requestContext"]["connectionId"] for e in tiny_gateway.events()
        if e["kind"] == "event" and e["event"].get("queryStringParameters") == {"status": "401"}
    ]
    assert refused and not disconnects(tiny_gateway, refused[-1])


def test_slow_connect_gates_the_connection(tiny_gateway: Running) -> None:
    """While $connect runs: posts get 410, other connections go on, nothing is handed over."""
    opened: list[Any] = []
    slow = threading.Thread(target=lambda: opened.append(tiny_gateway.connect("sleep=2")))
    slow.start()
    early = eventually(lambda: [e for e in tiny_gateway.events() if e["kind"] == "early-post"])
    with tiny_gateway.connect() as other:
        assert echo(other, "meanwhile")["echo"] == "meanwhile"
        assert slow.is_alive(), "a slow $connect stalled another connection"
    slow.join(WAIT)
    with opened[0] as client:
        answer = echo(client, "after")
    connection_id = answer["event"]["requestContext"]["connectionId"]
    assert early[-1] == {"kind": "early-post", "connectionId": connection_id, "outcome": "gone"}
    kinds = [
        e["kind"] if e["kind"] != "event" else e["event"]["requestContext"]["eventType"]
        for e in tiny_gateway.events()
        if connection_id in (e.get("connectionId"), e.get("event", {})
                             .get("requestContext", {}).get("connectionId"))
    ]
    assert kinds[:4] == ["CONNECT", "early-post", "connect-returned", "MESSAGE"]


def test_handler_error_sends_internal_server_error(tiny_gateway: Running) -> None:
    with tiny_gateway.connect() as client:
        client.send("raise")
        frame = json.loads(client.recv(timeout=WAIT))
        assert frame["message"] == "Internal server error"
        assert set(frame) == {"message", "connectionId", "requestId"}
        raised = [
            e["event"]["requestContext"] for e in tiny_gateway.events()
            if e["kind"] == "event" and e["event"].get("body") == "raise"
        ]
        assert frame["requestId"] == raised[-1]["requestId"]
        assert frame["connectionId"] == raised[-1]["connectionId"]
        assert echo(client, "still here")["echo"] == "still here"


def test_slow_handler_does_not_stall_other_connections(tiny_gateway: Running) -> None:
    with tiny_gateway.connect() as slow, tiny_gateway.connect() as fast:
        slow.send("sleep:2")
        assert echo(fast, "quick")["echo"] == "quick"
        with pytest.raises(TimeoutError):
            slow.recv(timeout=0)
        assert json.loads(slow.recv(timeout=WAIT))["echo"] == "sleep:2"


def test_messages_of_one_connection_are_handled_in_order(tiny_gateway: Running) -> None:
    with tiny_gateway.connect() as client:
        for body in ("sleep:0.3", "second", "third"):
            client.send(body)
        echoes = [json.loads(client.recv(timeout=WAIT))["echo"] for _ in range(3)]
    assert echoes == ["sleep:0.3", "second", "third"]


def closed_with(client: Any) -> Any:
    with pytest.raises(ConnectionClosed) as closed:
        client.recv(timeout=WAIT)
    return closed.value.rcvd


def test_message_over_128_kib_closes_with_1009(tiny_gateway: Running) -> None:
    with tiny_gateway.connect() as client:
        connection_id = echo(client, "hi")["event"]["requestContext"]["connectionId"]
        client.send(["x" * (32 * 1024)] * 4 + ["x"])  # in frames of 32 KiB, as it must
        assert closed_with(client).code == 1009
    disconnect = eventually(lambda: disconnects(tiny_gateway, connection_id))
    assert disconnect[0]["requestContext"]["disconnectStatusCode"] == 1009


def test_binary_frame_closes_with_1003(tiny_gateway: Running) -> None:
    with tiny_gateway.connect() as client:
        connection_id = echo(client, "hi")["event"]["requestContext"]["connectionId"]
        client.send(b"\x00\x01")
        assert closed_with(client).code == 1003
    disconnect = eventually(lambda: disconnects(tiny_gateway, connection_id))
    assert disconnect[0]["requestContext"]["disconnectStatusCode"] == 1003


def test_app_management_client_reaches_the_gateway(tiny_gateway: Running) -> None:
    with tiny_gateway.connect(user_agent_header="tiny-info") as client:
        client.send("info")
        info = json.loads(client.recv(timeout=WAIT))
    assert info["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "tiny-info"}


def test_other_aws_calls_stay_on_the_embedded_store(tiny_gateway: Running) -> None:
    """An app's SQS (or SSM, S3, ...) call reaches the embedded moto, not AWS."""
    store = tiny_gateway.gateway.store
    assert store is not None and store.embedded
    boto3.client("sqs", endpoint_url=store.endpoint).create_queue(QueueName="tiny-local-queue")
    with tiny_gateway.connect() as client:
        client.send("queues")
        queues = json.loads(client.recv(timeout=WAIT))["queues"]
    # moto's state is per process: queues of gateways this test process ran before show too.
    assert "tiny-local-queue" in [url.rsplit("/", 1)[-1] for url in queues]


def test_idle_timeout_closes_with_1001(tiny_factory: Any) -> None:
    """The connection is identified by its own echo: on threads, another gateway's
    handlers share this process's environment, and may record into this project's
    events file (in containers, each function has its own)."""
    running = tiny_factory(Limits(idle_timeout=1.0))
    with running.connect() as client:
        connection_id = echo(client, "hi")["event"]["requestContext"]["connectionId"]
        assert closed_with(client).code == 1001
    disconnect = eventually(lambda: disconnects(running, connection_id))
    assert len(disconnect) == 1
    assert disconnect[0]["requestContext"]["disconnectStatusCode"] == 1001


def test_maximum_duration_closes_with_1001(tiny_factory: Any) -> None:
    running = tiny_factory(Limits(max_duration=0.5))
    with running.connect() as client:
        assert closed_with(client).code == 1001


def test_disconnect_runs_exactly_once_whoever_closes(tiny_gateway: Running) -> None:
    ids = []
    with tiny_gateway.connect() as client:
        ids.append(echo(client, "a")["event"]["requestContext"]["connectionId"])
    client = tiny_gateway.connect()
    ids.append(echo(client, "b")["event"]["requestContext"]["connectionId"])
    client.close(code=4000, reason="bye")
    for connection_id in ids:
        eventually(lambda cid=connection_id: disconnects(tiny_gateway, cid))
    assert [len(disconnects(tiny_gateway, cid)) for cid in ids] == [1, 1]
    last = disconnects(tiny_gateway, ids[1])[0]["requestContext"]
    assert (last["disconnectStatusCode"], last["disconnectReason"]) == (4000, "bye")


def test_shutdown_closes_every_socket_and_runs_disconnect(tmp_path: Path) -> None:
    thread, running = start_tiny(tmp_path)
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(running.connect()) for _ in range(3)]
        ids = [echo(c, "hi")["event"]["requestContext"]["connectionId"] for c in clients]
        stop(thread)
        for client in clients:
            assert closed_with(client).code == 1001
    for connection_id in ids:
        assert len(disconnects(running, connection_id)) == 1
    assert disconnects(running, ids[0])[0]["requestContext"]["disconnectStatusCode"] == 1001


def test_a_stopping_gateway_refuses_new_handshakes_with_503(tmp_path: Path) -> None:
    """A client that reconnects at once must not hold the shutdown up with a new socket."""
    thread, running = start_tiny(tmp_path)
    try:
        with running.connect() as before:
            assert echo(before, "hi")["event"]["requestContext"]["routeKey"] == "$default"
            running.gateway.refuse_new_connections()  # the first step of stop()
            assert running.refusal() == 503
            assert echo(before, "still here")["event"]["body"] == "still here"
    finally:
        stop(thread)
