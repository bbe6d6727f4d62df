"""End to end through ``make run``: a backend's server API calls, and tokens that run out.

The real command serves the app on a free port; the backend calls
``server_api`` with ``switchboard-local invoke`` (or its HTTP endpoint) and
users are real WebSockets. Short-lived tokens are signed with the stage's key,
read from the gateway's store as the smoke test reads it from SSM.

These cover the server's side of the clients' contract: the frames, the
closes and what the registry holds after them. What the Python and
JavaScript clients then do (not re-joining an unsubscribed room, not
reconnecting after ``reconnect: false``, refreshing before ``exp``) is theirs.

The closes go through the management API's ``DELETE /@connections/{id}`` (204, then 410 for
that id), as the AWS guide "Use @connections commands in your backend service" states
(https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-how-to-call-websocket-api-connections.html).
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from typing import Any

import boto3
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from chalicelib.identity import issue_token
from switchboard_local.project import read_stage
from tests.e2e.readme import shell_env
from tests.e2e.test_recovery_e2e import Gateway, abort, request
from tests.gateways import REPO, WAIT, unique
from tests.switchboard_local.installed import Served

LIFETIME = 6
"""Seconds a short-lived token lives (``exp`` is whole seconds: at least 5 of them)."""
REFRESH_EVERY = LIFETIME / 2
"""Idle time between refreshes: well inside a token's life, even on a loaded machine."""


@pytest.fixture(scope="module")
def signing_keys(make_run: Served) -> str:
    """The dev stage's keys, from the parameter its TOKEN_SECRET_PARAMETER names."""
    parameter = read_stage(REPO, "dev").environment["TOKEN_SECRET_PARAMETER"]
    ssm = boto3.client("ssm", endpoint_url=make_run.first("Store"), region_name="us-east-1")
    return str(ssm.get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"])


@pytest.fixture(scope="module")
def gateway(make_run: Served) -> Gateway:
    return Gateway.of(make_run)


def invoke(gateway: Gateway, function: str, event: dict[str, Any]) -> dict[str, Any]:
    """``POST /_local/invoke/<function>``, as a backend's SDK call (or a rule) reaches it."""
    request = urllib.request.Request(
        f"{gateway.base}/_local/invoke/{function}", data=json.dumps(event).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )
    with urllib.request.urlopen(request, timeout=WAIT) as answer:
        return dict(json.load(answer))


def server_api(gateway: Gateway, method: str, **params: Any) -> dict[str, Any]:
    """A server API call's result (it must succeed)."""
    answer = invoke(gateway, "server_api", {"method": method, "params": params})
    assert "result" in answer, answer
    return dict(answer["result"])


def connect_with(gateway: Gateway, token: str) -> ClientConnection:
    return connect(f"{gateway.websocket_url}?token={token}", open_timeout=WAIT,
                   close_timeout=WAIT, legacy=True)


def receive(client: ClientConnection) -> dict[str, Any]:
    return dict(json.loads(client.recv(timeout=WAIT)))


def closed_with(client: ClientConnection) -> int | None:
    """The close code once the server has closed the socket."""
    with pytest.raises(ConnectionClosed):
        while True:
            client.recv(timeout=WAIT)
    return client.close_code


def test_the_command_line_invokes_the_server_api(make_run: Served, gateway: Gateway) -> None:
    user = unique("alice")
    alice = gateway.connect(user)
    event = json.dumps({"method": "publish", "params": {"userId": user, "data": {"order": 42},
                                                        "type": "order"}})
    invoked = subprocess.run(
        [str(REPO / ".venv/bin/switchboard-local"), "invoke", "server_api", event],
        cwd=REPO, env=shell_env(make_run), capture_output=True, text=True, timeout=WAIT * 4,
        check=False,
    )
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout) == {"result": {"delivered": 1, "queued": 0}}
    frame = receive(alice)
    assert (frame["type"], frame["data"]) == ("order", {"order": 42})


def test_after_unsubscribe_the_room_is_gone_across_a_forced_drop(gateway: Gateway) -> None:
    user, room = unique("bob"), unique("room")
    sender = gateway.connect(unique("sender"))
    request(sender, {"action": "joinRoom", "room": room})
    bob = gateway.connect(user)
    request(bob, {"action": "joinRoom", "room": room})

    assert server_api(gateway, "unsubscribe", userId=user, room=room, reason="kicked") == {
        "connections": 1}
    assert receive(bob) == {"type": "unsubscribed", "room": room, "reason": "kicked"}
    abort(bob)  # the phone loses its network

    again = gateway.connect(user)
    assert request(again, {"action": "whoami"})[-1]["rooms"] == []
    request(sender, {"action": "sendToRoom", "room": room, "text": "not for bob"})
    # The send was delivered before its ack: anything for bob would come before this pong.
    assert [frame["type"] for frame in request(again, {"action": "ping"})] == ["pong"]
    assert server_api(gateway, "presenceStats", room=room) == {"connections": 1, "users": 1}


def test_disconnect_without_reconnect_and_revoke(gateway: Gateway) -> None:
    user = unique("carol")
    first = gateway.connect(user)
    assert server_api(gateway, "disconnect", userId=user, reason="bye", reconnect=False) == {
        "connections": 1}
    assert receive(first) == {"type": "disconnect", "reason": "bye", "reconnect": False}
    assert closed_with(first) == 1000  # the management API's DELETE
    assert server_api(gateway, "disconnect", userId=user) == {"connections": 0}  # forgotten

    second = gateway.connect(user)  # a disconnect is not a ban
    revoked = server_api(gateway, "revoke", userId=user, issuedBefore=int(time.time()) + 1)
    assert revoked["connections"] == 1
    assert receive(second) == {"type": "disconnect", "reason": "token revoked",
                               "reconnect": False}
    assert closed_with(second) == 1000


def test_a_short_lived_token_refreshed_three_times_keeps_every_message(
    gateway: Gateway, signing_keys: str
) -> None:
    user, room = unique("dave"), unique("room")
    sender = gateway.connect(unique("sender"))
    request(sender, {"action": "joinRoom", "room": room})
    token = issue_token(signing_keys, user, lifetime_seconds=LIFETIME)
    dave = connect_with(gateway, token)
    request(dave, {"action": "joinRoom", "room": room})
    started = time.time()
    seen: list[int] = []
    sent = 0
    while time.time() - started <= 3 * LIFETIME:  # three tokens' lifetimes
        for _ in range(3):
            sent += 1
            request(sender, {"action": "sendToRoom", "room": room, "text": str(sent)})
        fresh = issue_token(signing_keys, user, lifetime_seconds=LIFETIME)
        frames = request(dave, {"action": "refresh", "token": fresh})
        seen += [f["seq"] for f in frames if f["type"] == "message"]
        assert frames[-1].get("action") == "refresh", frames[-1]
        assert frames[-1]["expiresAt"] > time.time()
        time.sleep(REFRESH_EVERY)  # idle
    frames = request(dave, {"action": "ping"})
    seen += [f["seq"] for f in frames if f["type"] == "message"]
    assert frames[-1]["type"] == "pong"
    assert seen == list(range(1, sent + 1))


def test_a_frame_after_exp_is_refused_and_the_connection_closed(
    gateway: Gateway, signing_keys: str
) -> None:
    token = issue_token(signing_keys, unique("erin"), lifetime_seconds=1)
    erin = connect_with(gateway, token)
    time.sleep(2.1)
    erin.send(json.dumps({"action": "ping", "id": "late"}))
    answer = receive(erin)
    assert (answer["type"], answer["code"], answer["id"]) == ("error", "token_expired", "late")
    assert closed_with(erin) == 1000


def test_the_schedule_closes_a_silent_connection_whose_token_expired(
    gateway: Gateway, signing_keys: str
) -> None:
    """``POST /_local/invoke/expire_connections`` runs the schedule now, as EventBridge would."""
    token = issue_token(signing_keys, unique("frank"), lifetime_seconds=1)
    frank = connect_with(gateway, token)
    time.sleep(2.1)  # silent past its exp
    report = invoke(gateway, "expire_connections", {})
    assert report["due"] >= 1 and report["closed"] >= 1
    assert receive(frank)["code"] == "token_expired"
    assert closed_with(frank) == 1000
