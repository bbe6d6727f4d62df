"""The ``server_api`` Lambda: every method and every error, on both engines.

The function is invoked as Lambda invokes it, through the handler Chalice
registered, in a container of its own (a fresh ``WebsocketAPI``); clients are
real handlers behind the management API emulator, so a ``disconnect`` really
closes the socket (``DELETE``) and API Gateway's ``$disconnect`` follows.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

from chalicelib import runtime
from chalicelib.idempotency import Idempotency
from chalicelib.registry import Registry
from chalicelib.runtime import Services
from switchboard_local.stage import State
from switchboard_local.testing import LambdaContext, TestConnection, WebsocketTestClient
from tests.chalicelib.conftest import socket_state
from tests.conftest import ManualClock


def call(app_module: Any, method: Any, params: Any = None, **rest: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"method": method, **rest}
    if params is not None:
        event["params"] = params
    answer: dict[str, Any] = app_module.server_api(event, LambdaContext("server_api"))
    return answer


@pytest.fixture
def api(app_module: Any, services: Services) -> Any:
    """Call a method and return its result (the call must succeed)."""

    def run(method: str, **params: Any) -> dict[str, Any]:
        answer = call(app_module, method, params)
        assert set(answer) == {"result"}, answer
        result: dict[str, Any] = answer["result"]
        return result

    return run


@pytest.fixture
def refused(app_module: Any, services: Services) -> Any:
    """Call a method and return its error (the call must be refused)."""

    def run(method: Any, params: Any = None, **rest: Any) -> dict[str, Any]:
        answer = call(app_module, method, params, **rest)
        assert set(answer) == {"error"}, answer
        assert set(answer["error"]) == {"code", "message"} and answer["error"]["message"]
        error: dict[str, Any] = answer["error"]
        return error

    return run


def of_type(connection: TestConnection, kind: str) -> list[dict[str, Any]]:
    return [frame for frame in connection.new_frames() if frame["type"] == kind]


def joined(connection: TestConnection, room: str = "lobby") -> TestConnection:
    assert connection.request({"action": "joinRoom", "room": room})["type"] == "ack"
    return connection


def is_open(client: WebsocketTestClient, connection: TestConnection) -> bool:
    return socket_state(client, connection) is State.OPEN


# -- publish ---------------------------------------------------------------------------------


def test_publish_to_a_room_reaches_its_members_only(api: Any, connect: Any) -> None:
    alice, bob, carol = joined(connect("alice")), joined(connect("bob")), connect("carol")
    alice.new_frames()

    result = api("publish", room="lobby", data={"headline": "hi"})

    assert result == {"delivered": 2, "queued": 0}
    for member in (alice, bob):
        [frame] = of_type(member, "push")
        assert frame == {"type": "push", "data": {"headline": "hi"}, "sentAt": frame["sentAt"],
                         "room": "lobby"}
    assert carol.new_frames() == []


def test_publish_to_a_user_and_to_everyone(api: Any, connect: Any) -> None:
    phone, laptop, bob = connect("alice"), connect("alice"), connect("bob")

    assert api("publish", userId="alice", data=[1, 2]) == {"delivered": 2, "queued": 0}
    for device in (phone, laptop):
        [frame] = of_type(device, "push")
        assert (frame["data"], "room" in frame) == ([1, 2], False)
    assert bob.new_frames() == []

    assert api("publish", all=True, data="maintenance", type="notice")["delivered"] == 3
    for connection in (phone, laptop, bob):
        assert [f["data"] for f in of_type(connection, "notice")] == ["maintenance"]


@pytest.mark.parametrize("data", [0, False, "text", [], {}, {"nested": {"deep": [1, None]}}])
def test_publish_carries_any_json_value(api: Any, connect: Any, data: Any) -> None:
    alice = connect("alice")
    api("publish", userId="alice", data=data)
    assert [f["data"] for f in of_type(alice, "push")] == [data]


def test_a_stored_publish_is_numbered_kept_and_replayed_like_a_message(
    api: Any, connect: Any
) -> None:
    alice = joined(connect("alice"))
    said = alice.request({"action": "sendToRoom", "room": "lobby", "text": "before"})

    result = api("publish", room="lobby", data={"score": 3}, type="score", store=True)

    assert result == {"delivered": 1, "queued": 0, "seq": said["seq"] + 1, "epoch": said["epoch"]}
    [live] = of_type(alice, "score")
    assert (live["seq"], live["epoch"], live["room"]) == (result["seq"], result["epoch"], "lobby")
    page = alice.request({"action": "history", "room": "lobby"})
    assert page["messages"][-1] == live
    laptop = connect("alice")
    since = {"epoch": said["epoch"], "seq": said["seq"]}
    replayed = laptop.send({"action": "joinRoom", "room": "lobby", "since": since})
    assert replayed[0] == live and replayed[-1]["recovered"] is True


def test_a_stored_publish_to_a_user_goes_to_their_personal_stream(
    api: Any, connect: Any
) -> None:
    alice = connect("alice")
    result = api("publish", userId="alice", data={"invoice": 7}, store=True)
    [live] = of_type(alice, "push")
    assert (live["seq"], live["epoch"]) == (result["seq"], result["epoch"]) and "room" not in live
    assert alice.request({"action": "history"})["messages"] == [live]
    laptop = connect("alice")
    frames = laptop.send({"action": "resume", "since": {"epoch": result["epoch"], "seq": 0}})
    assert frames[0] == live and frames[-1]["recovered"] is True


def test_a_retried_publish_is_neither_delivered_nor_stored_twice(
    api: Any, connect: Any
) -> None:
    alice = joined(connect("alice"))
    alice.new_frames()
    first = api("publish", room="lobby", data={"n": 1}, store=True, idempotencyKey="order-42")

    again = api("publish", room="lobby", data={"n": 1}, store=True, idempotencyKey="order-42")

    assert again == {**first, "duplicate": True}
    assert len(of_type(alice, "push")) == 1
    assert len(alice.request({"action": "history", "room": "lobby"})["messages"]) == 1
    # The key is scoped to its audience: the same key elsewhere is another publish.
    elsewhere = api("publish", userId="alice", data={"n": 1}, idempotencyKey="order-42")
    assert "duplicate" not in elsewhere and len(of_type(alice, "push")) == 1


def test_a_publish_whose_key_is_held_by_a_running_one_is_told_to_retry(
    refused: Any, services: Services, dynamodb: Any
) -> None:
    running = Idempotency(dynamodb, services.settings.connections_table, 600)
    running.claim("room:lobby", "k", lease_seconds=30)

    error = refused("publish", {"room": "lobby", "data": 1, "idempotencyKey": "k"})

    assert error["code"] == "internal" and "in progress" in error["message"]


def test_a_failed_publish_gives_its_key_back(
    api: Any, refused: Any, connect: Any, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = joined(connect("alice"))
    alice.new_frames()

    def unavailable(room: str) -> list[str]:
        raise RuntimeError("table unavailable")

    with monkeypatch.context() as patched:
        patched.setattr(services.registry, "room_connections", unavailable)
        assert refused("publish", {"room": "lobby", "data": 1, "idempotencyKey": "k"})[
            "code"] == "internal"

    assert api("publish", room="lobby", data=1, idempotencyKey="k") == {
        "delivered": 1, "queued": 0}


# -- broadcast ------------------------------------------------------------------------------


def test_broadcast_publishes_to_each_room_with_one_answer_each(api: Any, connect: Any) -> None:
    alice, bob = joined(connect("alice"), "a"), joined(connect("bob"), "b")
    both = joined(connect("carol"), "a")
    joined(both, "b")
    for connection in (alice, bob, both):
        connection.new_frames()

    result = api("broadcast", rooms=["a", "b", "empty"], data={"x": 1}, store=True)

    answers = {answer["room"]: answer for answer in result["rooms"]}
    assert [answer["room"] for answer in result["rooms"]] == ["a", "b", "empty"]
    assert (answers["a"]["delivered"], answers["b"]["delivered"]) == (2, 2)
    assert answers["empty"]["delivered"] == 0 and answers["empty"]["seq"] == 1
    assert sorted(f["room"] for f in of_type(both, "push")) == ["a", "b"]
    assert [f["room"] for f in of_type(alice, "push")] == ["a"]


def test_a_room_that_fails_does_not_stop_the_broadcast(
    api: Any, connect: Any, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = joined(connect("alice"), "a")
    alice.new_frames()
    members = services.registry.room_connections

    def failing(room: str) -> list[str]:
        if room == "b":
            raise RuntimeError("table unavailable")
        return members(room)

    monkeypatch.setattr(services.registry, "room_connections", failing)

    result = api("broadcast", rooms=["b", "a"], data=1)

    assert result["rooms"][0] == {"room": "b", "error": {
        "code": "internal", "message": result["rooms"][0]["error"]["message"]}}
    assert result["rooms"][1] == {"room": "a", "delivered": 1, "queued": 0}


def test_a_broadcast_that_cannot_succeed_publishes_nothing(
    refused: Any, connect: Any
) -> None:
    alice = joined(connect("alice"), "a")
    alice.new_frames()
    error = refused("broadcast", {"rooms": ["a", "b"], "data": "x" * 140_000})
    assert error["code"] == "bad_request" and "131072" in error["message"]
    assert alice.new_frames() == []


# -- subscribe and unsubscribe --------------------------------------------------------------


def test_subscribe_joins_every_device_and_tells_each_with_the_rooms_position(
    api: Any, connect: Any
) -> None:
    watcher = joined(connect("bob"))
    said = watcher.request({"action": "sendToRoom", "room": "lobby", "text": "before"})
    phone, laptop = connect("alice"), connect("alice")
    watcher.new_frames()

    assert api("subscribe", userId="alice", room="lobby") == {"connections": 2}

    for device in (phone, laptop):
        assert device.new_frames() == [{"type": "subscribed", "room": "lobby",
                                        "seq": said["seq"], "epoch": said["epoch"]}]
        assert device.request({"action": "whoami"})["rooms"] == ["lobby"]
    [event] = of_type(watcher, "presence")
    assert (event["userId"], event["event"]) == ("alice", "join")
    watcher.request({"action": "sendToRoom", "room": "lobby", "text": "after"})
    assert [f["text"] for f in of_type(phone, "message")] == ["after"]


def test_subscribe_of_a_user_without_connections_joins_nothing(
    api: Any, services: Services
) -> None:
    assert api("subscribe", userId="nobody", room="lobby") == {"connections": 0}
    assert services.registry.room_connections("lobby") == []


@pytest.mark.parametrize("extra_settings", [{"MAX_ROOMS_PER_CONNECTION": "1"}])
def test_subscribe_leaves_out_a_connection_with_no_room_left(api: Any, connect: Any) -> None:
    full, free = joined(connect("alice"), "elsewhere"), connect("alice")
    assert api("subscribe", userId="alice", room="lobby") == {"connections": 1}
    assert full.request({"action": "whoami"})["rooms"] == ["elsewhere"]
    assert free.request({"action": "whoami"})["rooms"] == ["lobby"]


def test_unsubscribe_takes_every_device_out_and_tells_each(
    api: Any, connect: Any, services: Services
) -> None:
    watcher = joined(connect("bob"))
    phone, laptop, tablet = joined(connect("alice")), joined(connect("alice")), connect("alice")
    for connection in (watcher, phone, laptop, tablet):
        connection.new_frames()

    result = api("unsubscribe", userId="alice", room="lobby", reason="kicked by a moderator")

    assert result == {"connections": 2}
    for device in (phone, laptop):
        assert device.new_frames() == [
            {"type": "unsubscribed", "room": "lobby", "reason": "kicked by a moderator"}]
    assert tablet.new_frames() == []
    [event] = of_type(watcher, "presence")
    assert (event["userId"], event["event"]) == ("alice", "leave")
    assert services.registry.room_connections("lobby") == [watcher.id]
    refused = phone.request({"action": "sendToRoom", "room": "lobby", "text": "let me in"})
    assert refused["code"] == "forbidden"


def test_unsubscribe_gives_a_default_reason(api: Any, connect: Any) -> None:
    alice = joined(connect("alice"))
    alice.new_frames()
    api("unsubscribe", userId="alice", room="lobby")
    assert alice.new_frames() == [
        {"type": "unsubscribed", "room": "lobby", "reason": "unsubscribed by the server"}]


# -- disconnect and revoke ------------------------------------------------------------------


def test_disconnect_tells_then_closes_every_connection_of_the_user(
    api: Any, connect: Any, client: WebsocketTestClient, services: Services
) -> None:
    watcher = joined(connect("bob"))
    phone, laptop = joined(connect("alice")), connect("alice")
    watcher.new_frames()

    result = api("disconnect", userId="alice", reason="maintenance")

    assert result == {"connections": 2}
    for device in (phone, laptop):
        assert device.new_frames() == [
            {"type": "disconnect", "reason": "maintenance", "reconnect": True}]
        assert not is_open(client, device)
        assert services.registry.get_connection(device.id) is None  # $disconnect ran
    [event] = of_type(watcher, "presence")
    assert (event["userId"], event["event"]) == ("alice", "leave")
    assert is_open(client, watcher)


def test_disconnect_one_connection_without_reconnecting(
    api: Any, connect: Any, client: WebsocketTestClient
) -> None:
    phone, laptop = connect("alice"), connect("alice")
    result = api("disconnect", connectionId=phone.id, reconnect=False)
    assert result == {"connections": 1}
    assert phone.new_frames() == [
        {"type": "disconnect", "reason": "disconnected by the server", "reconnect": False}]
    assert not is_open(client, phone) and is_open(client, laptop)


def test_disconnect_of_an_unknown_connection_is_not_found(refused: Any) -> None:
    error = refused("disconnect", {"connectionId": "no-such-connection"})
    assert error["code"] == "not_found"


def test_a_connection_already_gone_is_forgotten_not_counted(
    api: Any, connect: Any, services: Services
) -> None:
    alice = connect("alice")
    alice.vanish()
    assert api("disconnect", userId="alice") == {"connections": 0}
    assert services.registry.get_connection(alice.id) is None


def test_revoke_closes_the_users_connections_and_refuses_their_old_tokens(
    api: Any, client: WebsocketTestClient, token: Any, clock: ManualClock
) -> None:
    old = token("alice", now=clock() - 100)
    phone = client.connect(query={"token": old})
    laptop = client.connect(query={"token": token("alice", now=clock() - 5)})

    result = api("revoke", userId="alice")

    assert result["connections"] == 2 and result["issuedBefore"] == int(clock())  # now
    for device in (phone, laptop):
        assert device.new_frames() == [
            {"type": "disconnect", "reason": "token revoked", "reconnect": False}]
        assert not is_open(client, device)
    assert client.connect(query={"token": old}).status == 403
    fresh = token("alice", now=result["issuedBefore"])
    assert client.connect(query={"token": fresh}).status == 200


def test_revoke_before_a_moment_spares_newer_tokens(
    api: Any, client: WebsocketTestClient, token: Any
) -> None:
    now = int(time.time())
    old = client.connect(query={"token": token("alice", now=now - 600)})
    new = client.connect(query={"token": token("alice", now=now - 10)})

    result = api("revoke", userId="alice", issuedBefore=now - 300)

    assert result == {"issuedBefore": now - 300, "connections": 1}
    assert not is_open(client, old) and is_open(client, new)
    # A revocation only moves forward: an earlier moment leaves the later one in force.
    assert api("revoke", userId="alice", issuedBefore=now - 900)["issuedBefore"] == now - 300


# -- reads -----------------------------------------------------------------------------------


def test_presence_and_presence_stats(api: Any, connect: Any) -> None:
    joined(connect("alice")), joined(connect("alice")), joined(connect("bob"))
    connect("carol")
    assert api("presence", room="lobby") == {"room": "lobby", "members": [
        {"userId": "alice", "connections": 2}, {"userId": "bob", "connections": 1}]}
    assert api("presenceStats", room="lobby") == {"connections": 3, "users": 2}
    assert api("presenceStats", room="empty") == {"connections": 0, "users": 0}


def test_presence_forgets_expired_members(
    api: Any, connect: Any, services: Services, dynamodb: Any
) -> None:
    joined(connect("lost"))
    later = Registry(dynamodb, services.settings.connections_table,
                     services.settings.connection_ttl_seconds,
                     clock=lambda: time.time() + services.settings.connection_ttl_seconds + 1)
    assert later.room_members("lobby").expired != ()
    runtime.use(dataclasses.replace(services, registry=later))
    assert api("presence", room="lobby") == {"room": "lobby", "members": []}
    assert later.room_members("lobby").expired == ()


def test_history_of_a_room_and_of_a_user(api: Any, connect: Any) -> None:
    alice = joined(connect("alice"))
    for text in ("one", "two", "three"):
        alice.request({"action": "sendToRoom", "room": "lobby", "text": text})
    alice.request({"action": "sendMessage", "targetUserId": "bob", "text": "psst"})

    page = api("history", room="lobby", limit=2)
    action = alice.request({"action": "history", "room": "lobby", "limit": 2})
    assert page == {k: v for k, v in action.items() if k != "type"}
    assert [m["text"] for m in page["messages"]] == ["two", "three"] and page["hasMore"]
    earlier = api("history", room="lobby", beforeSeq=page["messages"][0]["seq"])
    assert [m["text"] for m in earlier["messages"]] == ["one"] and not earlier["hasMore"]
    inbox = api("history", userId="bob")
    assert inbox["userId"] == "bob" and [m["text"] for m in inbox["messages"]] == ["psst"]


def test_history_remove_starts_the_room_over(api: Any, connect: Any) -> None:
    alice = joined(connect("alice"))
    said = alice.request({"action": "sendToRoom", "room": "lobby", "text": "regret"})

    result = api("historyRemove", room="lobby")

    assert result["room"] == "lobby" and result["epoch"] != said["epoch"]
    assert api("history", room="lobby")["messages"] == []
    since = {"epoch": said["epoch"], "seq": 0}
    assert connect("bob").send({"action": "joinRoom", "room": "lobby", "since": since})[-1][
        "recovered"] is False
    again = alice.request({"action": "sendToRoom", "room": "lobby", "text": "fresh"})
    assert (again["seq"], again["epoch"]) == (1, result["epoch"])


def test_rooms_lists_rooms_with_members_by_name(api: Any, connect: Any) -> None:
    alice = joined(joined(connect("alice"), "team:a"), "lobby")
    joined(connect("alice"), "team:a")
    joined(connect("bob"), "team:b")
    connect("carol")
    alice.request({"action": "leaveRoom", "room": "lobby"})

    assert api("rooms") == {"rooms": [
        {"room": "team:a", "users": 1, "connections": 2},
        {"room": "team:b", "users": 1, "connections": 1},
    ], "hasMore": False}
    assert api("rooms", prefix="team:b")["rooms"] == [
        {"room": "team:b", "users": 1, "connections": 1}]
    first = api("rooms", limit=1)
    assert [r["room"] for r in first["rooms"]] == ["team:a"] and first["hasMore"]
    rest = api("rooms", after="team:a")
    assert [r["room"] for r in rest["rooms"]] == ["team:b"] and not rest["hasMore"]


def test_info_counts_connections_users_and_rooms(api: Any, connect: Any) -> None:
    assert api("info") == {"connections": 0, "users": 0, "rooms": 0}
    joined(connect("alice"), "a"), joined(connect("alice"), "b"), connect("bob")
    gone = joined(connect("carol"), "c")
    gone.disconnect()
    assert api("info") == {"connections": 3, "users": 2, "rooms": 2}


@pytest.mark.parametrize("extra_settings", [{"HISTORY_MAX_MESSAGES": "0"}])
@pytest.mark.parametrize(("method", "params"), [
    ("history", {"room": "lobby"}),
    ("historyRemove", {"room": "lobby"}),
    ("publish", {"room": "lobby", "data": 1, "store": True}),
])
def test_history_methods_on_a_stage_without_history(
    refused: Any, method: str, params: dict[str, Any]
) -> None:
    error = refused(method, params)
    assert error["code"] == "bad_request" and "HISTORY_MAX_MESSAGES" in error["message"]


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("event", "code", "says"), [
    ("not an object", "bad_request", "JSON object"),
    ({}, "bad_request", "'method'"),
    ({"method": 7}, "bad_request", "'method'"),
    ({"method": "fly"}, "unknown_method", "publish"),
    ({"method": "info", "params": []}, "bad_request", "'params'"),
    ({"method": "info", "extra": 1}, "bad_request", "'extra'"),
])
def test_a_malformed_event_is_answered(
    app_module: Any, services: Services, event: Any, code: str, says: str
) -> None:
    answer = app_module.server_api(event, LambdaContext("server_api"))
    assert answer["error"]["code"] == code and says in answer["error"]["message"]


BIG = "x" * 140_000


@pytest.mark.parametrize(("method", "params", "says"), [
    ("publish", {"data": 1}, "exactly one of"),
    ("publish", {"room": "a", "userId": "b", "data": 1}, "exactly one of"),
    ("publish", {"all": False, "data": 1}, "'all' must be true"),
    ("publish", {"room": "no spaces", "data": 1}, "'room'"),
    ("publish", {"userId": "", "data": 1}, "'userId'"),
    ("publish", {"userId": "u" * 129, "data": 1}, "'userId'"),
    ("publish", {"room": "a"}, "'data' is required"),
    ("publish", {"room": "a", "data": None}, "'data' is required"),
    ("publish", {"room": "a", "data": BIG}, "131072"),
    ("publish", {"room": "a", "data": 1, "type": "message"}, "protocol's own"),
    ("publish", {"room": "a", "data": 1, "type": "disconnect"}, "protocol's own"),
    ("publish", {"room": "a", "data": 1, "type": "a b"}, "'type'"),
    ("publish", {"room": "a", "data": 1, "type": 5}, "'type'"),
    ("publish", {"all": True, "data": 1, "store": True}, "everyone has no stream"),
    ("publish", {"room": "a", "data": 1, "store": "yes"}, "'store'"),
    ("publish", {"room": "a", "data": 1, "idempotencyKey": "k" * 129}, "'idempotencyKey'"),
    ("publish", {"room": "a", "data": 1, "stored": True}, "unknown parameter(s) 'stored'"),
    ("broadcast", {"rooms": [], "data": 1}, "'rooms'"),
    ("broadcast", {"rooms": ["a", "a"], "data": 1}, "'rooms'"),
    ("broadcast", {"rooms": "a", "data": 1}, "'rooms'"),
    ("broadcast", {"rooms": ["a"] * 0 + [f"r{n}" for n in range(101)], "data": 1}, "'rooms'"),
    ("broadcast", {"rooms": ["a"], "room": "b", "data": 1}, "unknown parameter(s) 'room'"),
    ("subscribe", {"userId": "alice"}, "'room'"),
    ("subscribe", {"room": "lobby"}, "'userId'"),
    ("unsubscribe", {"userId": "alice", "room": "lobby", "reason": ""}, "'reason'"),
    ("disconnect", {}, "exactly one of"),
    ("disconnect", {"userId": "a", "connectionId": "b"}, "exactly one of"),
    ("disconnect", {"userId": "a", "reconnect": "no"}, "'reconnect'"),
    ("revoke", {}, "'userId'"),
    ("revoke", {"userId": "a", "issuedBefore": "now"}, "'issuedBefore'"),
    ("revoke", {"userId": "a", "issuedBefore": -1}, "'issuedBefore'"),
    ("presence", {}, "'room'"),
    ("presenceStats", {"room": 5}, "'room'"),
    ("history", {}, "exactly one of"),
    ("history", {"room": "a", "limit": 101}, "'limit'"),
    ("history", {"room": "a", "beforeSeq": 0}, "'beforeSeq'"),
    ("historyRemove", {"userId": "a"}, "'room'"),
    ("rooms", {"limit": 0}, "'limit'"),
    ("rooms", {"prefix": ""}, "'prefix'"),
    ("info", {"verbose": True}, "unknown parameter(s) 'verbose'"),
])
def test_bad_params_are_answered_not_raised_and_change_nothing(
    refused: Any, services: Services, dynamodb: Any, method: str, params: dict[str, Any],
    says: str,
) -> None:
    table = services.settings.connections_table
    error = refused(method, params)
    assert error["code"] == "bad_request", error
    assert says in error["message"], error
    assert dynamodb.scan(TableName=table)["Items"] == []


def test_an_infrastructure_failure_is_internal_and_logged(
    refused: Any, services: Services, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def unavailable(self: Any) -> Any:
        raise RuntimeError("table unavailable")

    monkeypatch.setattr(type(services.registry), "connection_summaries", unavailable)
    assert refused("info")["code"] == "internal"
    assert "server_api call failed" in caplog.text
