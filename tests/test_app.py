"""The app's real handlers, driven through the in-process WebSocket test client."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chalicelib import runtime
from chalicelib.identity import issue_token
from chalicelib.registry import Registry, describe
from chalicelib.runtime import Services
from switchboard_local.testing import WebsocketTestClient
from tests.chalicelib.conftest import registry_items
from tests.conftest import create_table
from tests.fresh_interpreter import run_fresh


def table_items(services: Services, dynamodb: Any) -> list[dict[str, Any]]:
    table = services.settings.connections_table
    return dynamodb.scan(TableName=table)["Items"]  # type: ignore[no-any-return]


# -- $connect -------------------------------------------------------------------


def test_a_valid_token_connects_and_registers(connect: Any, services: Services) -> None:
    alice = connect("alice")
    assert alice.request({"action": "whoami", "id": "w"}) == {
        "type": "whoami", "connectionId": alice.id, "userId": "alice", "rooms": [], "id": "w",
    }
    connection = services.registry.get_connection(alice.id)
    assert connection is not None
    assert connection.endpoint == "https://local00001.execute-api.us-east-1.amazonaws.com/api"


@pytest.mark.parametrize(
    ("query", "status"),
    [
        (None, 401),
        ({"token": ""}, 401),
        ({"other": "x"}, 401),
        ({"token": "garbage"}, 403),
    ],
)
def test_refused_handshakes_write_nothing(
    client: WebsocketTestClient, services: Services, dynamodb: Any,
    query: dict[str, str] | None, status: int,
) -> None:
    assert client.connect(query=query).status == status
    assert table_items(services, dynamodb) == []


def test_an_expired_or_foreign_token_is_403(
    client: WebsocketTestClient, token: Any, services: Services, dynamodb: Any
) -> None:
    assert client.connect(query={"token": token("alice", lifetime_seconds=-5)}).status == 403
    foreign = issue_token("some-other-stage-key-0123456789abcdef", "alice")
    assert client.connect(query={"token": foreign}).status == 403
    assert table_items(services, dynamodb) == []


def test_a_repeated_connect_for_the_same_user_is_accepted(
    client: WebsocketTestClient, token: Any, connect: Any, services: Services
) -> None:
    alice = connect("alice")
    context = alice.context
    again = client.invoke("$connect", context.connect_event(query={"token": token("alice")}))
    assert again["statusCode"] == 200
    clash = client.invoke("$connect", context.connect_event(query={"token": token("mallory")}))
    assert clash["statusCode"] == 409
    connection = services.registry.get_connection(alice.id)
    assert connection is not None
    assert connection.user_id == "alice"


# -- actions ----------------------------------------------------------------------


def test_ping(connect: Any) -> None:
    alice = connect("alice")
    assert alice.request({"action": "ping", "id": "p1"}) == {"type": "pong", "id": "p1"}
    assert alice.request({"action": "ping"}) == {"type": "pong"}


def test_send_message_reaches_every_device_of_the_target(connect: Any) -> None:
    alice = connect("alice")
    phone, laptop = connect("bob"), connect("bob")
    ack = alice.request({"action": "sendMessage", "targetUserId": "bob", "text": "hi", "id": "m"})
    assert ack == {
        "type": "ack", "action": "sendMessage", "id": "m", "delivered": 2, "stored": True,
    }
    for device in (phone, laptop):
        [frame] = device.new_frames()
        assert frame["type"] == "message"
        assert frame["from"] == "alice"
        assert frame["text"] == "hi"
        assert frame["sentAt"].endswith("Z")
        assert frame["seq"] == 1 and frame["epoch"]
        assert "room" not in frame


def test_send_message_to_an_offline_user_delivers_zero(connect: Any) -> None:
    alice = connect("alice")
    ack = alice.request({"action": "sendMessage", "targetUserId": "nobody", "text": "hi"})
    assert ack == {"type": "ack", "action": "sendMessage", "delivered": 0, "stored": True}


def test_from_is_the_registered_user_whatever_the_frame_says(connect: Any) -> None:
    mallory, bob = connect("mallory"), connect("bob")
    mallory.request(
        {"action": "sendMessage", "targetUserId": "bob", "text": "hi", "from": "alice",
         "userId": "alice"}
    )
    assert bob.new_frames()[0]["from"] == "mallory"


def test_rooms_join_send_leave(connect: Any) -> None:
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    joined = [
        member.request({"action": "joinRoom", "room": "lobby", "id": "j"})
        for member in (alice, bob)
    ]
    epoch = joined[0]["epoch"]
    assert joined == [
        {"type": "ack", "action": "joinRoom", "id": "j", "room": "lobby", "epoch": epoch,
         "seq": 0},
    ] * 2
    alice.new_frames()  # bob's presence
    ack = alice.request({"action": "sendToRoom", "room": "lobby", "text": "hey"})
    assert ack == {"type": "ack", "action": "sendToRoom", "delivered": 1, "seq": 1, "epoch": epoch}
    [frame] = bob.new_frames()
    assert frame == {
        "type": "message", "from": "alice", "text": "hey", "sentAt": frame["sentAt"],
        "room": "lobby", "seq": 1, "epoch": epoch,
    }
    assert carol.new_frames() == []
    assert alice.request({"action": "leaveRoom", "room": "lobby"}) == {
        "type": "ack", "action": "leaveRoom",
    }
    assert [f["event"] for f in bob.new_frames()] == ["leave"]
    assert bob.request({"action": "sendToRoom", "room": "lobby", "text": "anyone?"})[
        "delivered"
    ] == 0
    assert alice.new_frames() == []


def test_room_messages_reach_the_senders_other_devices(connect: Any) -> None:
    phone, laptop = connect("alice"), connect("alice")
    for device in (phone, laptop):
        device.request({"action": "joinRoom", "room": "r"})
    assert phone.request({"action": "sendToRoom", "room": "r", "text": "sync"})["delivered"] == 1
    assert laptop.new_frames()[0]["text"] == "sync"


def test_whoami_lists_rooms(connect: Any) -> None:
    alice = connect("alice")
    for room in ("b", "a"):
        alice.request({"action": "joinRoom", "room": room})
    assert alice.request({"action": "whoami"})["rooms"] == ["a", "b"]


def test_broadcast_by_an_admin_reaches_every_connection(connect: Any) -> None:
    admin = connect("root", "admin")
    others = [connect(f"user{i}") for i in range(5)]
    ack = admin.send({"action": "broadcastAll", "text": "maintenance", "id": "b"})
    assert ack[-1] == {"type": "ack", "action": "broadcastAll", "id": "b", "delivered": 6}
    assert ack[0]["type"] == "broadcast"
    for other in others:
        [frame] = other.new_frames()
        assert (frame["type"], frame["from"], frame["text"]) == ("broadcast", "root", "maintenance")


# -- errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("hello", "bad_json"),
        ("[]", "bad_json"),
        ('{"id": "e"}', "bad_request"),
        ('{"action": "fly", "id": "e"}', "unknown_action"),
        ('{"action": "sendMessage", "targetUserId": 1, "text": "x", "id": "e"}', "bad_request"),
        ('{"action": "joinRoom", "room": "no spaces", "id": "e"}', "bad_request"),
        ('{"action": "sendToRoom", "room": "unjoined", "text": "x", "id": "e"}', "forbidden"),
        ('{"action": "broadcastAll", "text": "x", "id": "e"}', "forbidden"),
        (json.dumps({"action": "broadcastAll", "text": "x" * 32769, "id": "e"}), "too_large"),
    ],
)
def test_every_error_code_answers_and_the_connection_stays_usable(
    connect: Any, body: str, code: str
) -> None:
    alice = connect("alice")
    error = alice.request(body)
    assert error["type"] == "error"
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    if body.startswith("{"):
        assert error["id"] == "e"
    assert alice.request({"action": "ping"}) == {"type": "pong"}


def test_rejected_frames_leave_the_registry_unchanged(
    connect: Any, services: Services, dynamodb: Any
) -> None:
    alice = connect("alice")
    before = table_items(services, dynamodb)
    for body in ("nope", '{"action": "joinRoom", "room": "#x#y"}', '{"action": "leaveRoom"}'):
        assert alice.request(body)["type"] == "error"
    assert table_items(services, dynamodb) == before


def test_too_many_rooms_is_refused(connect: Any, services: Services) -> None:
    runtime.use(
        Services(
            settings=type(services.settings)(
                **{**services.settings.__dict__, "max_rooms_per_connection": 2}
            ),
            registry=services.registry,
            delivery=services.delivery,
            verifier=services.verifier,
        )
    )
    alice = connect("alice")
    for room in ("a", "b"):
        assert alice.request({"action": "joinRoom", "room": room})["type"] == "ack"
    assert alice.request({"action": "joinRoom", "room": "a"})["type"] == "ack"
    error = alice.request({"action": "joinRoom", "room": "c"})
    assert (error["code"], "at most 2 rooms" in error["message"]) == ("bad_request", True)


def test_an_unregistered_connection_is_told_to_reconnect(
    connect: Any, services: Services
) -> None:
    alice = connect("alice")
    services.registry.remove_connection(alice.id)
    error = alice.request({"action": "ping", "id": "x"})
    assert (error["code"], error["id"]) == ("forbidden", "x")
    assert "reconnect" in error["message"]


@pytest.fixture
def drop_table(services: Services, dynamodb: Any) -> Iterator[Callable[[], None]]:
    """Make DynamoDB fail: the table disappears until the test ends."""
    table = services.settings.connections_table
    dropped: list[bool] = []

    def drop() -> None:
        dynamodb.delete_table(TableName=table)
        dropped.append(True)

    yield drop
    if dropped:
        create_table(dynamodb, table)


def test_a_storage_failure_is_an_internal_error(
    connect: Any, drop_table: Callable[[], None], caplog: pytest.LogCaptureFixture
) -> None:
    alice = connect("alice")
    drop_table()
    with caplog.at_level(logging.ERROR):
        error = alice.request({"action": "whoami", "id": "w"})
    assert (error["type"], error["code"], error["id"]) == ("error", "internal", "w")
    assert "ResourceNotFoundException" in caplog.text


# -- delivery, cleanup, TTL ---------------------------------------------------------


def test_a_vanished_connection_is_removed_when_a_send_finds_it_gone(
    connect: Any, services: Services, dynamodb: Any
) -> None:
    alice = connect("alice")
    bob = connect("bob")
    bob.request({"action": "joinRoom", "room": "lobby"})
    bob.vanish()
    ack = alice.request({"action": "sendMessage", "targetUserId": "bob", "text": "hi"})
    assert ack["delivered"] == 0
    assert services.registry.get_connection(bob.id) is None
    assert services.registry.room_connections("lobby") == []
    assert [describe(item) for item in registry_items(table_items(services, dynamodb))] == [
        ("connection", alice.id)
    ]


def test_a_fan_out_goes_on_past_gone_and_failing_targets(
    connect: Any, client: WebsocketTestClient, services: Services
) -> None:
    admin = connect("root", "admin")
    gone, failing, fine = connect("a"), connect("b"), connect("c")
    gone.vanish()
    client.emulator.inject(failing.id, 500)
    ack = admin.send({"action": "broadcastAll", "text": "x"})[-1]
    assert ack["delivered"] == 2  # the admin and `fine`
    assert fine.new_frames()[0]["type"] == "broadcast"
    assert services.registry.get_connection(gone.id) is None
    assert services.registry.get_connection(failing.id) is not None


def test_throttled_posts_are_retried_until_delivered(
    connect: Any, client: WebsocketTestClient
) -> None:
    alice, bob = connect("alice"), connect("bob")
    client.emulator.inject(bob.id, 429, 429, 429)
    ack = alice.request({"action": "sendMessage", "targetUserId": "bob", "text": "hi"})
    assert ack["delivered"] == 1
    assert [frame["text"] for frame in bob.new_frames()] == ["hi"]


def test_disconnect_removes_the_connection_and_its_memberships(
    connect: Any, services: Services, dynamodb: Any
) -> None:
    alice = connect("alice")
    for room in ("r1", "r2"):
        alice.request({"action": "joinRoom", "room": room})
    alice.disconnect(1001, "Going away")
    assert registry_items(table_items(services, dynamodb)) == []


def test_a_failing_disconnect_still_answers_200(
    connect: Any, client: WebsocketTestClient, drop_table: Callable[[], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    alice = connect("alice")
    drop_table()
    with caplog.at_level(logging.ERROR):
        answer = client.invoke("$disconnect", alice.context.disconnect_event(1006))
    assert answer["statusCode"] == 200
    assert "cleanup of 1 gone connections failed; TTL will reclaim them" in caplog.text


def test_expired_connections_are_not_delivered_to(
    connect: Any, services: Services, dynamodb: Any
) -> None:
    bob = connect("bob")
    alice = connect("alice")
    late = Registry(
        dynamodb, services.settings.connections_table,
        services.settings.connection_ttl_seconds, clock=lambda: time.time() + 7501,
    )
    runtime.use(
        Services(services.settings, late, services.delivery, services.verifier)
    )
    # alice's own record has expired too: she is told to reconnect.
    assert alice.request({"action": "ping"})["code"] == "forbidden"
    assert late.user_connections("bob") == []
    assert bob.new_frames() == []


# -- cold start and configuration -------------------------------------------------


def test_importing_the_app_creates_no_aws_client() -> None:
    probe = (
        "import botocore.session\n"
        "def refuse(*args, **kwargs):\n"
        "    raise SystemExit('a client was created at import time')\n"
        "botocore.session.Session.create_client = refuse\n"
        "import app\n"
        "assert app.app.websocket_api.session is not None\n"
    )
    result = run_fresh(probe)
    assert result.returncode == 0, result.stderr


def test_the_prod_key_is_read_from_ssm_once_per_container(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, app_module: Any, table_name: str
) -> None:
    import boto3

    from chalicelib import aws

    ssm = boto3.client("ssm", endpoint_url=moto_endpoint)
    name = f"/switchboard/test/{table_name}"
    ssm.put_parameter(Name=name, Value="prod-key-from-ssm-0123456789abcdef", Type="SecureString")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", moto_endpoint)
    monkeypatch.setenv("CONNECTIONS_TABLE", table_name)
    monkeypatch.setenv("TOKEN_SECRET_PARAMETER", name)
    monkeypatch.delenv("TOKEN_SECRET", raising=False)
    calls: list[str] = []
    real = aws.ssm_client

    def counting() -> Any:
        calls.append("ssm")
        return real()

    monkeypatch.setattr(aws, "ssm_client", counting)
    runtime.reset()
    try:
        first = runtime.services(app_module.app.websocket_api)
        second = runtime.services(app_module.app.websocket_api)
        assert first is second
        assert calls == ["ssm"]
        good = issue_token("prod-key-from-ssm-0123456789abcdef", "alice")
        assert first.verifier.verify(good).user_id == "alice"
    finally:
        runtime.reset()


def test_a_parameter_holding_no_key_fails_naming_it(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, app_module: Any, table_name: str
) -> None:
    import boto3

    from chalicelib.settings import SettingsError

    name = f"/switchboard/test/{table_name}-empty"
    boto3.client("ssm", endpoint_url=moto_endpoint).put_parameter(
        Name=name, Value=" , ", Type="SecureString"
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", moto_endpoint)
    monkeypatch.setenv("CONNECTIONS_TABLE", table_name)
    monkeypatch.setenv("TOKEN_SECRET_PARAMETER", name)
    monkeypatch.delenv("TOKEN_SECRET", raising=False)
    runtime.reset()
    try:
        with pytest.raises(SettingsError, match=f"TOKEN_SECRET_PARAMETER names \\({name}\\)"):
            runtime.services(app_module.app.websocket_api)
    finally:
        runtime.reset()


def test_the_recorded_endpoint_is_the_execute_api_url_behind_a_custom_domain(
    client: WebsocketTestClient, token: Any, services: Services
) -> None:
    from switchboard_local.events import ApiContext, ConnectionContext

    api = ApiContext(api_id="k3v9q2x7ab", stage="prod", domain_name="chat.example.com")
    context = ConnectionContext(api)
    answer = client.invoke("$connect", context.connect_event(query={"token": token("alice")}))
    assert answer["statusCode"] == 200
    connection = services.registry.get_connection(context.connection_id)
    assert connection is not None
    assert connection.endpoint == "https://k3v9q2x7ab.execute-api.us-east-1.amazonaws.com/prod"


def test_a_configured_management_endpoint_is_recorded_and_used_by_websocket_handlers(
    client: WebsocketTestClient, token: Any, services: Services
) -> None:
    """``APIGW_MANAGEMENT_ENDPOINT`` wins in every function: behind a custom domain with the
    execute-api endpoint disabled (``DisableExecuteApiEndpoint``) it is the only URL that works."""
    configured = "https://ws.example.com/chat"
    runtime.use(dataclasses.replace(
        services, settings=dataclasses.replace(services.settings, management_endpoint=configured)
    ))
    alice = client.connect(query={"token": token("alice")})
    connection = services.registry.get_connection(alice.id)
    assert connection is not None and connection.endpoint == configured


def test_a_failed_cleanup_of_gone_targets_does_not_fail_the_send(
    connect: Any, services: Services, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One policy for every gone connection: log it, answer anyway, let TTL reclaim it."""
    alice, phone, laptop = connect("alice"), connect("bob"), connect("bob")
    laptop.vanish()

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("DynamoDB is unavailable")

    monkeypatch.setattr(services.registry, "remove_connections", broken)
    with caplog.at_level(logging.ERROR):
        ack = alice.request({"action": "sendMessage", "targetUserId": "bob", "text": "hi"})
    assert ack == {"type": "ack", "action": "sendMessage", "delivered": 1, "stored": True}
    assert [frame["text"] for frame in phone.new_frames()] == ["hi"]
    assert "cleanup of 1 gone connections failed; TTL will reclaim them" in caplog.text


def test_a_frame_is_answered_even_when_the_work_deadline_has_passed(
    connect: Any, client: WebsocketTestClient
) -> None:
    """The reserve kept back from the Lambda's time is the answer's: the caller hears back."""
    alice = connect("alice")
    client.budget_seconds = 0.5  # less than the reserve: no time left for work
    assert alice.request({"action": "ping", "id": "late"}) == {"type": "pong", "id": "late"}
