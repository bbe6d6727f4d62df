"""This repository's app behind the gateway, with real WebSocket clients and boto3.

What the gateway answers on ``@connections`` (POST 200, GET the connection's identity, DELETE
204, 410 ``GoneException`` once closed) is API Gateway's management API as the AWS guide
"Use @connections commands in your backend service"
(https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-how-to-call-websocket-api-connections.html)
and botocore's ``apigatewaymanagementapi`` service model state it; boto3 here is the real
client parsing it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import boto3
import pytest
from websockets.exceptions import ConnectionClosed

from chalicelib.registry import Registry
from tests.gateways import WAIT, Running, eventually, send_text, unique


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as opened:
        yield opened


@pytest.fixture
def join(switchboard_gateway: Running, stack: ExitStack) -> Any:
    """Connect as a user (roles optional) for the test's duration."""

    def open_as(user_id: str, *roles: str) -> Any:
        token = switchboard_gateway.token(user_id, *roles)
        return stack.enter_context(switchboard_gateway.connect(f"token={token}"))

    return open_as


def request(client: Any, frame: dict[str, Any] | str) -> dict[str, Any]:
    send_text(client, frame if isinstance(frame, str) else json.dumps(frame))
    return receive(client)


def receive(client: Any) -> dict[str, Any]:
    return dict(json.loads(client.recv(timeout=WAIT)))


def management(running: Running) -> Any:
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=running.gateway.management_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def test_stage_url_is_the_stages_api_gateway_stage(switchboard_gateway: Running) -> None:
    # .chalice/config.json gives the dev stage `"api_gateway_stage": "dev"`, as deployed.
    assert switchboard_gateway.gateway.websocket_url.endswith("/dev")


def test_no_token_is_refused_with_401(switchboard_gateway: Running) -> None:
    assert switchboard_gateway.refusal() == 401


def test_bad_token_is_refused_with_403(switchboard_gateway: Running) -> None:
    assert switchboard_gateway.refusal("token=not-a-jwt") == 403


def test_token_endpoint_signs_for_the_app(join: Any) -> None:
    user = unique("alice")
    assert request(join(user), {"action": "whoami"})["userId"] == user


def test_direct_message_reaches_every_device(join: Any) -> None:
    alice, bob = unique("alice"), unique("bob")
    sender = join(alice)
    phone, laptop = join(bob), join(bob)
    ack = request(sender, {"action": "sendMessage", "targetUserId": bob, "text": "hi", "id": "1"})
    assert ack == {
        "type": "ack", "action": "sendMessage", "id": "1", "delivered": 2, "stored": True,
    }
    for device in (phone, laptop):
        frame = receive(device)
        assert (frame["type"], frame["from"], frame["text"], frame["seq"]) == (
            "message", alice, "hi", 1,
        )


def test_rooms(join: Any) -> None:
    room = unique("room")
    alice, bob, carol = join(unique("alice")), join(unique("bob")), join(unique("carol"))
    for member in (alice, bob):
        assert request(member, {"action": "joinRoom", "room": room})["type"] == "ack"
    assert receive(alice)["event"] == "join"  # bob's presence
    ack = request(alice, {"action": "sendToRoom", "room": room, "text": "hello room"})
    assert (ack["delivered"], ack["seq"]) == (1, 1)
    assert receive(bob)["room"] == room
    assert request(bob, {"action": "leaveRoom", "room": room})["type"] == "ack"
    assert receive(alice)["event"] == "leave"
    assert request(alice, {"action": "sendToRoom", "room": room, "text": "?"})["delivered"] == 0
    refused = request(carol, {"action": "sendToRoom", "room": room, "text": "x"})
    assert refused["code"] == "forbidden"


def test_broadcast_needs_admin_and_reaches_everyone(join: Any) -> None:
    admin, listener = join(unique("admin"), "admin"), join(unique("listener"))
    admin.send(json.dumps({"action": "broadcastAll", "text": "all hands"}))
    frames = {frame["type"]: frame for frame in (receive(admin), receive(admin))}
    assert frames["ack"]["delivered"] >= 2 and frames["broadcast"]["text"] == "all hands"
    assert receive(listener)["type"] == "broadcast"
    assert request(listener, {"action": "broadcastAll", "text": "x"})["code"] == "forbidden"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_json"),
        ("[1]", "bad_json"),
        ('{"action":"ping","action":"ping"}', "bad_json"),
        ({"text": "no action"}, "bad_request"),
        ({"action": "joinRoom", "room": "bad room!"}, "bad_request"),
        ({"action": "nope"}, "unknown_action"),
        ({"action": "sendToRoom", "room": "never-joined", "text": "x"}, "forbidden"),
        ({"action": "sendMessage", "targetUserId": "x", "text": "y" * 40000}, "too_large"),
    ],
)
def test_error_frames(join: Any, frame: dict[str, Any] | str, code: str) -> None:
    answer = request(join(unique("erring")), frame)
    assert answer["type"] == "error" and answer["code"] == code, answer


def test_post_to_a_gone_connection_forgets_it(
    switchboard_gateway: Running, join: Any
) -> None:
    """The 410 path: a registry entry whose socket is gone (its $disconnect never came)."""
    ghost_user, ghost_id = unique("ghost"), "ghostConnId0000="
    registry = Registry(
        boto3.client("dynamodb", endpoint_url=switchboard_gateway.gateway.store.endpoint),  # type: ignore[union-attr]
        switchboard_gateway.gateway.tables[0],
        3600,
    )
    registry.add_connection(ghost_id, ghost_user, (), "https://example.invalid/api")
    sender = join(unique("sender"))
    ack = request(sender, {"action": "sendMessage", "targetUserId": ghost_user, "text": "hi"})
    assert ack["delivered"] == 0
    assert registry.get_connection(ghost_id) is None


def test_get_and_delete_through_boto3(switchboard_gateway: Running, join: Any) -> None:
    client = join(unique("described"))
    connection_id = request(client, {"action": "whoami"})["connectionId"]
    api = management(switchboard_gateway)
    info = api.get_connection(ConnectionId=connection_id)
    assert info["Identity"]["SourceIp"] == "127.0.0.1"
    assert info["ConnectedAt"] <= info["LastActiveAt"]
    api.delete_connection(ConnectionId=connection_id)
    with pytest.raises(ConnectionClosed):
        client.recv(timeout=WAIT)
    with pytest.raises(api.exceptions.GoneException):
        api.get_connection(ConnectionId=connection_id)


def test_delete_runs_disconnect_so_the_registry_forgets(
    switchboard_gateway: Running, join: Any
) -> None:
    user = unique("deleted")
    client = join(user)
    connection_id = request(client, {"action": "whoami"})["connectionId"]
    management(switchboard_gateway).delete_connection(ConnectionId=connection_id)
    sender = join(unique("sender"))
    eventually(
        lambda: request(sender, {"action": "sendMessage", "targetUserId": user, "text": "x"})
        ["delivered"] == 0
    )


def test_post_through_boto3(switchboard_gateway: Running, join: Any) -> None:
    client = join(unique("posted"))
    connection_id = request(client, {"action": "whoami"})["connectionId"]
    api = management(switchboard_gateway)
    api.post_to_connection(ConnectionId=connection_id, Data=b'{"hello": "there"}')
    assert receive(client) == {"hello": "there"}
    with pytest.raises(api.exceptions.PayloadTooLargeException):
        api.post_to_connection(ConnectionId=connection_id, Data=b"x" * (128 * 1024 + 1))
    api.post_to_connection(ConnectionId=connection_id, Data=b"y" * (128 * 1024))
    assert client.recv(timeout=WAIT) == "y" * (128 * 1024)


def test_unknown_connection_is_gone(switchboard_gateway: Running) -> None:
    api = management(switchboard_gateway)
    unknown = "unknownConnId00="
    with pytest.raises(api.exceptions.GoneException):
        api.post_to_connection(ConnectionId=unknown, Data=b"x")
    with pytest.raises(api.exceptions.GoneException):
        api.get_connection(ConnectionId=unknown)
    with pytest.raises(api.exceptions.GoneException):
        api.delete_connection(ConnectionId=unknown)


def test_token_endpoint_requires_a_user(switchboard_gateway: Running) -> None:
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as failed:
        switchboard_gateway.get_json("/_local/token")
    assert failed.value.code == 400


def test_page_and_config_are_served(switchboard_gateway: Running) -> None:
    config = switchboard_gateway.get_json("/_local/config")
    assert config["websocketUrl"] == switchboard_gateway.gateway.websocket_url
    import urllib.request

    with urllib.request.urlopen(switchboard_gateway.gateway.page_url, timeout=WAIT) as page:
        assert b"chat.js" in page.read()


def test_the_signing_key_comes_from_the_stores_parameter_and_rotates(
    switchboard_gateway: Running,
) -> None:
    """The first key of the parameter signs; after a rotation, older tokens still connect."""
    from chalicelib import runtime

    ssm = boto3.client("ssm")
    name = "/switchboard/dev/token-secret"
    old_keys = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    old_token = switchboard_gateway.token(unique("before"))
    new_key = "rotated-key-0123456789abcdef0123456789abcdef"
    ssm.put_parameter(Name=name, Value=f"{new_key},{old_keys}", Type="SecureString",
                      Overwrite=True)
    runtime.reset()  # a new container reads the parameter again
    try:
        new_token = switchboard_gateway.token(unique("after"))
        from chalicelib.identity import TokenVerifier

        assert TokenVerifier(new_key).verify(new_token)  # signed with the first key
        for token in (old_token, new_token):
            with switchboard_gateway.connect(f"token={token}") as client:
                assert request(client, {"action": "whoami"})["type"] == "whoami"
    finally:
        ssm.put_parameter(Name=name, Value=old_keys, Type="SecureString", Overwrite=True)
        runtime.reset()


def rooms_token(running: Running, claim: str) -> str:
    query = urllib.parse.urlencode({"userId": unique("scoped"), "rooms": claim})
    return str(running.get_json(f"/_local/token?{query}")["token"])


def test_token_endpoint_signs_a_rooms_claim(switchboard_gateway: Running, stack: ExitStack) -> None:
    room = unique("granted")
    token = rooms_token(switchboard_gateway, json.dumps({room: ["join"]}))
    client = stack.enter_context(switchboard_gateway.connect(f"token={token}"))
    assert request(client, {"action": "joinRoom", "room": room})["type"] == "ack"
    refused = request(client, {"action": "sendToRoom", "room": room, "text": "x"})
    assert refused["message"] == f"sendToRoom needs the 'publish' permission for room '{room}'"
    assert request(client, {"action": "joinRoom", "room": unique("other")})["code"] == "forbidden"


def test_a_malformed_claim_from_the_token_endpoint_is_refused_at_connect(
    switchboard_gateway: Running,
) -> None:
    token = rooms_token(switchboard_gateway, json.dumps({"lobby": ["fly"]}))
    assert switchboard_gateway.refusal(f"token={token}") == 403


@pytest.mark.parametrize("claim", ["{", "[1]", "null", '"lobby"'])
def test_token_endpoint_refuses_rooms_that_are_not_a_json_object(
    switchboard_gateway: Running, claim: str
) -> None:
    with pytest.raises(urllib.error.HTTPError) as failed:
        rooms_token(switchboard_gateway, claim)
    assert failed.value.code == 400
    assert "rooms must be a JSON object" in failed.value.read().decode()
