"""``switchboard_client.server.ServerAPI`` against the real ``server_api`` function.

boto3's Lambda client talks HTTP to a stub of Lambda's ``Invoke`` endpoint
(``POST /2015-03-31/functions/{name}/invocations``) that hands the event to the
local gateway's ``/_local/invoke/{name}`` — this app's function on its embedded
store — and answers as Lambda does: the payload with 200, and
``X-Amz-Function-Error: Unhandled`` when the function raised. Clients are real
WebSockets on the same gateway.

Source of the stub's answer: the Lambda API reference for Invoke
(https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html: ``FunctionError`` is
``Handled`` or ``Unhandled``, "the runtime didn't handle the error") and botocore's ``lambda``
service model, which reads ``FunctionError`` from the ``X-Amz-Function-Error`` header.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import boto3
import pytest
from switchboard_client.errors import SwitchboardError
from switchboard_client.server import ServerAPI
from websockets.exceptions import ConnectionClosed

from tests.aws_stub import Answer, aws_stub
from tests.gateways import WAIT, Running, unique

INVOCATIONS = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")
BROKEN = "broken"
"""A function name the stub answers as Lambda answers a function that raised."""


def lambda_stub(gateway: Running) -> Any:
    """Lambda's Invoke, in front of the gateway's invoke endpoint."""

    def handle(method: str, path: str, body: bytes) -> Answer:
        found = INVOCATIONS.match(path)
        if method != "POST" or found is None:
            return 404, {}, b'{"message": "not the Invoke API"}'
        name = found.group(1)
        if name == BROKEN:
            failure = {"errorMessage": "boom", "errorType": "RuntimeError"}
            return 200, {"X-Amz-Function-Error": "Unhandled"}, json.dumps(failure).encode()
        request = urllib.request.Request(
            f"http://{gateway.gateway.base}/_local/invoke/{name}", data=body,
            headers={"Content-Type": "application/json"}, method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=WAIT) as answer:
                return 200, {"X-Amz-Executed-Version": "$LATEST"}, answer.read()
        except urllib.error.HTTPError as error:  # the handler raised
            return 200, {"X-Amz-Function-Error": "Unhandled"}, error.read()

    return handle


@pytest.fixture(scope="module")
def lambda_client(gateway: Running) -> Iterator[Any]:
    with aws_stub(lambda_stub(gateway)) as endpoint:
        yield boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture
def api(lambda_client: Any) -> ServerAPI:
    return ServerAPI("server_api", lambda_client)


@pytest.fixture
def sockets(gateway: Running) -> Iterator[Any]:
    """Open WebSockets as a user (closed after the test)."""
    with ExitStack() as stack:

        def open_as(user_id: str) -> Any:
            token = gateway.token(user_id)
            return stack.enter_context(gateway.connect(f"token={token}"))

        yield open_as


def receive(socket: Any) -> dict[str, Any]:
    return dict(json.loads(socket.recv(timeout=WAIT)))


def request(socket: Any, frame: dict[str, Any]) -> dict[str, Any]:
    socket.send(json.dumps(frame))
    return receive(socket)


def test_publishing_reaches_the_sockets_and_answers(api: ServerAPI, sockets: Any) -> None:
    user, room = unique("alice"), unique("room")
    alice = sockets(user)
    assert request(alice, {"action": "joinRoom", "room": room})["type"] == "ack"

    stored = api.publish(room=room, data={"n": 1}, type="score", store=True,
                         idempotency_key="k1")
    assert stored == {"delivered": 1, "queued": 0, "seq": 1, "epoch": stored["epoch"]}
    frame = receive(alice)
    assert (frame["type"], frame["data"], frame["seq"]) == ("score", {"n": 1}, 1)
    again = api.publish(room=room, data={"n": 1}, type="score", store=True,
                        idempotency_key="k1")
    assert again == {**stored, "duplicate": True}

    assert api.publish(user_id=user, data="direct")["delivered"] == 1
    assert receive(alice)["data"] == "direct"
    assert api.publish(everyone=True, data="all")["delivered"] >= 1
    assert receive(alice)["data"] == "all"
    answers = api.broadcast([room, unique("empty")], data=2)["rooms"]
    assert [a["delivered"] for a in answers] == [1, 0]
    assert receive(alice)["data"] == 2


def test_moderation_and_reads(api: ServerAPI, sockets: Any) -> None:
    user, room = unique("bob"), unique("room")
    bob = sockets(user)
    assert api.subscribe(user, room) == {"connections": 1}
    assert receive(bob)["type"] == "subscribed"
    assert api.presence(room) == {"room": room, "members": [{"userId": user, "connections": 1}]}
    assert api.presence_stats(room) == {"connections": 1, "users": 1}
    assert api.rooms(prefix=room) == {
        "rooms": [{"room": room, "users": 1, "connections": 1}], "hasMore": False}
    assert api.info()["connections"] >= 1
    request(bob, {"action": "sendToRoom", "room": room, "text": "hello"})
    page = api.history(room=room, limit=10)
    assert [m["text"] for m in page["messages"]] == ["hello"]
    assert api.history(room=room, before_seq=1)["messages"] == []
    assert api.history(user_id=user)["messages"] == []
    assert api.history_remove(room)["room"] == room
    assert api.unsubscribe(user, room, reason="done") == {"connections": 1}
    assert receive(bob) == {"type": "unsubscribed", "room": room, "reason": "done"}


def test_disconnect_and_revoke_close_the_sockets(api: ServerAPI, sockets: Any) -> None:
    carol, dave = unique("carol"), unique("dave")
    socket = sockets(carol)
    whoami = request(socket, {"action": "whoami"})
    assert api.disconnect(connection_id=whoami["connectionId"], reason="bye",
                          reconnect=False) == {"connections": 1}
    assert receive(socket) == {"type": "disconnect", "reason": "bye", "reconnect": False}
    with pytest.raises(ConnectionClosed):
        socket.recv(timeout=WAIT)
    assert socket.close_code == 1000  # the management API's DELETE
    other = sockets(dave)
    revoked = api.revoke(dave, issued_before=int(time.time()) + 1)  # this second's tokens too
    assert revoked["connections"] == 1
    assert receive(other) == {"type": "disconnect", "reason": "token revoked",
                              "reconnect": False}
    with pytest.raises(ConnectionClosed):
        other.recv(timeout=WAIT)


def test_errors_raise_with_the_answers_code(api: ServerAPI, lambda_client: Any) -> None:
    with pytest.raises(SwitchboardError) as bad:
        api.publish(room="no spaces", data=1)
    assert bad.value.code == "bad_request" and "'room'" in bad.value.message
    with pytest.raises(SwitchboardError) as unknown:
        api.call("fly")
    assert unknown.value.code == "unknown_method"
    with pytest.raises(SwitchboardError) as missing:
        api.disconnect(connection_id="no-such-connection")
    assert missing.value.code == "not_found"
    with pytest.raises(SwitchboardError) as failed:
        ServerAPI(BROKEN, lambda_client).info()
    assert failed.value.code == "internal" and "boom" in failed.value.message
