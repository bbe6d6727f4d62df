"""The ``push`` Lambda: other services reach a user, a room or everyone.

Handlers run in-process behind the management API emulator; the push function is
invoked exactly as Lambda would, through the handler Chalice registered.
"""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.registry import Registry
from chalicelib.runtime import Services
from switchboard_local.testing import LambdaContext, WebsocketTestClient

RECORDED_ENDPOINT = "https://local00001.execute-api.us-east-1.amazonaws.com/api"


def invoke_push(app_module: Any, event: Any) -> dict[str, Any]:
    result: dict[str, Any] = app_module.push(event, LambdaContext("push"))
    return result


def pushes(connection: Any) -> list[dict[str, Any]]:
    return [frame for frame in connection.new_frames() if frame["type"] == "push"]


def test_push_to_user_reaches_every_device_of_that_user_only(app_module, connect):
    phone, laptop, bob = connect("alice"), connect("alice"), connect("bob")

    result = invoke_push(app_module, {"userId": "alice", "data": {"order": 42}})

    assert result == {"ok": True, "delivered": 2, "queued": 0, "gone": 0, "failed": 0}
    for device in (phone, laptop):
        [frame] = pushes(device)
        assert frame["data"] == {"order": 42}
        assert set(frame) == {"type", "data", "sentAt"}
    assert pushes(bob) == []


def test_push_to_room_reaches_members_only(app_module, connect):
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    for member in (alice, bob):
        assert member.request({"action": "joinRoom", "room": "lobby"})["type"] == "ack"

    result = invoke_push(app_module, {"room": "lobby", "data": {"topic": "news"}})

    assert result["delivered"] == 2
    assert [f["data"] for f in pushes(alice)] == [{"topic": "news"}]
    assert [f["data"] for f in pushes(bob)] == [{"topic": "news"}]
    assert pushes(carol) == []


def test_push_to_all_reaches_every_connection_once(app_module, connect):
    everyone = [connect(user) for user in ("alice", "bob", "carol", "alice")]

    result = invoke_push(app_module, {"all": True, "data": {"maintenance": "10:00"}})

    assert result["delivered"] == 4
    for connection in everyone:
        assert [f["data"] for f in pushes(connection)] == [{"maintenance": "10:00"}]


def test_push_configures_the_endpoint_recorded_on_connect(
    app_module, connect, services, websocket_api
):
    alice = connect("alice")
    # $connect ran in the WebSocket functions' container; the push container
    # (``websocket_api``, fresh) has never seen a WebSocket event.

    assert invoke_push(app_module, {"userId": "alice", "data": {}})["delivered"] == 1

    assert websocket_api.session.endpoint == RECORDED_ENDPOINT
    assert len(pushes(alice)) == 1


@pytest.mark.parametrize(
    "extra_settings", [{"APIGW_MANAGEMENT_ENDPOINT": "https://ws.example.com/chat/"}]
)
def test_custom_domain_endpoint_setting_wins_over_the_record(
    app_module, connect, services, websocket_api, dynamodb_calls
):
    alice = connect("alice")
    dynamodb_calls.clear()

    assert invoke_push(app_module, {"userId": "alice", "data": {"x": 1}})["delivered"] == 1

    assert websocket_api.session.endpoint == "https://ws.example.com/chat"
    assert "GetItem" not in dynamodb_calls  # no record was read to find it
    assert len(pushes(alice)) == 1


def test_the_endpoint_is_looked_up_once_per_container(
    app_module, connect, services, websocket_api, dynamodb_calls
):
    connect("alice")
    lookups = []
    for _ in range(3):
        dynamodb_calls.clear()
        assert invoke_push(app_module, {"userId": "alice", "data": {}})["delivered"] == 1
        lookups.append(dynamodb_calls["GetItem"])
    assert lookups == [1, 0, 0]  # only the first push read a record to find it


def test_push_to_nobody_posts_nothing(app_module, client: WebsocketTestClient, services):
    result = invoke_push(app_module, {"userId": "nobody", "data": {"x": 1}})

    assert result == {"ok": True, "delivered": 0, "queued": 0, "gone": 0, "failed": 0}
    assert client.emulator.posts == 0


def test_push_forgets_connections_that_are_gone(
    app_module, connect, services: Services
):
    alice = connect("alice")
    alice.vanish()

    result = invoke_push(app_module, {"userId": "alice", "data": {"x": 1}})

    assert (result["delivered"], result["gone"]) == (0, 1)
    registry: Registry = services.registry
    assert registry.get_connection(alice.id) is None


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ("not an object", "JSON object"),
        ({"data": {}}, "exactly one audience"),
        ({"userId": "a", "room": "r", "data": {}}, "exactly one audience"),
        ({"userId": "", "data": {}}, "'userId'"),
        ({"userId": 7, "data": {}}, "'userId'"),
        ({"room": "no spaces", "data": {}}, "'room'"),
        ({"all": "yes", "data": {}}, "'all' must be true"),
        ({"all": True}, "'data' must be a JSON object"),
        ({"all": True, "data": [1, 2]}, "'data' must be a JSON object"),
        ({"all": True, "data": {"big": "x" * 140_000}}, "limit is 131072"),
    ],
)
def test_bad_push_requests_are_answered_not_raised(app_module, services, event, reason):
    result = invoke_push(app_module, event)

    assert result["ok"] is False
    assert reason in result["error"]
