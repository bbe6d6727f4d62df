"""DynamoDB requests per event, counted at the client: the registry's cost model.

Counts are exact and independent of timing; they change only when the access
pattern changes, which is exactly what these tests should catch. Every action
and event is here, each with the size of its audience varied where one could
leak into the count. ``docs/protocol.md`` (table design) lists the same numbers.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from chalicelib import extend
from chalicelib.extend import Enum, Room
from switchboard_local.testing import LambdaContext
from tests.chalicelib.conftest import scheduled_event

AUDIENCES = [1, 10, 40]
JOIN = {"GetItem": 2, "UpdateItem": 3, "PutItem": 1}
"""joinRoom: connection, rooms ADD, membership, presence ADD, the room's count, the stream's
position."""


@pytest.fixture
def counted(dynamodb_calls: Counter[str]) -> Any:
    """Run an action and return the DynamoDB requests it made."""

    def run(action: Any) -> Counter[str]:
        dynamodb_calls.clear()
        action()
        return Counter(dynamodb_calls)

    return run


@pytest.fixture
def items_read(dynamodb: Any) -> Any:
    """Run an action and return how many items its Queries and Scans read (what is billed)."""
    read: list[int] = []

    def tally(parsed: dict[str, Any], **_: Any) -> None:
        read.append(int(parsed.get("ScannedCount", 0)))

    dynamodb.meta.events.register("after-call.dynamodb", tally)

    def run(action: Any) -> int:
        read.clear()
        action()
        return sum(read)

    return run


QUIET = {"*": ["join", "publish", "history"]}
"""Members without ``presence``: setting up a big room posts no presence events (O(n²))."""


@pytest.fixture
def in_room(client: Any, token: Any) -> Any:
    """Connect a user (whose token grants all but presence) and join a room."""

    def join(user: str, room: str = "lobby") -> Any:
        connection = client.connect(query={"token": token(user, rooms=QUIET)})
        connection.send({"action": "joinRoom", "room": room})
        return connection

    return join


# -- connect and disconnect ------------------------------------------------------------


def test_connect_is_a_revocation_read_and_one_conditional_write(
    client: Any, token: Any, counted: Any
) -> None:
    calls = counted(lambda: client.connect(query={"token": token("alice")}))
    assert calls == Counter({"GetItem": 1, "PutItem": 1})
    claim = {"lobby": ["join"], "team:*": ["join", "history"]}
    calls = counted(lambda: client.connect(query={"token": token("bob", rooms=claim)}))
    assert calls == Counter({"GetItem": 1, "PutItem": 1})


@pytest.mark.parametrize("query", [{"token": "forged"}, None])
def test_a_refused_connect_makes_no_request(client: Any, counted: Any, query: Any) -> None:
    assert counted(lambda: client.connect(query=query)) == Counter()


def test_a_malformed_rooms_claim_makes_no_request(client: Any, token: Any, counted: Any) -> None:
    bad = token("mallory", rooms={"lobby": ["fly"]})
    assert counted(lambda: client.connect(query={"token": bad})) == Counter()


@pytest.mark.parametrize("rooms", [0, 3, 30])
def test_disconnect_is_one_read_batched_deletes_and_a_presence_update_per_room(
    connect: Any, counted: Any, rooms: int
) -> None:
    """Alone in each room, the user leaves each: its presence set and count change, its
    emptied presence item goes, and nobody is left to tell (no watchers read)."""
    alice = connect("alice")
    for index in range(rooms):
        alice.request({"action": "joinRoom", "room": f"r{index}"})
    calls = counted(alice.disconnect)
    batches = -(-(rooms + 1) // 25)
    expected = Counter({"BatchGetItem": 1, "BatchWriteItem": batches})
    expected.update({"UpdateItem": 2 * rooms, "DeleteItem": rooms})
    assert calls == expected


def test_disconnect_with_others_in_the_room_reads_its_watchers(
    in_room: Any, counted: Any
) -> None:
    in_room("bob")
    alice = in_room("alice")
    calls = counted(alice.disconnect)
    assert calls == Counter({
        "BatchGetItem": 1, "BatchWriteItem": 1, "UpdateItem": 2, "DeleteItem": 1, "Query": 1,
    })


def test_disconnect_of_one_of_two_devices_announces_nothing(in_room: Any, counted: Any) -> None:
    phone, _ = in_room("alice"), in_room("alice")
    calls = counted(phone.disconnect)
    assert calls == Counter({"BatchGetItem": 1, "BatchWriteItem": 1, "UpdateItem": 2})


# -- direct messages ---------------------------------------------------------------------


@pytest.mark.parametrize("devices", AUDIENCES)
def test_send_message_is_two_writes_and_two_reads(
    connect: Any, counted: Any, devices: int
) -> None:
    """Connection, the recipient's seq (UpdateItem) and message (PutItem), their devices."""
    alice = connect("alice")
    for _ in range(devices):
        connect("bob")
    frame = {"action": "sendMessage", "targetUserId": "bob", "text": "hi"}
    first = counted(lambda: alice.request(frame))  # starts bob's stream: still one update
    again = counted(lambda: alice.request(frame))
    expected = Counter({"GetItem": 1, "UpdateItem": 1, "PutItem": 1, "Query": 1})
    assert first == again == expected


def test_resume_is_a_position_read_plus_one_query_to_replay(connect: Any, counted: Any) -> None:
    alice, bob = connect("alice"), connect("bob")
    for text in ("1", "2", "3"):
        alice.request({"action": "sendMessage", "targetUserId": "bob", "text": text})
    position = bob.new_frames()[0]
    assert counted(lambda: bob.request({"action": "resume"})) == Counter({"GetItem": 2})
    since = {"epoch": position["epoch"], "seq": 1}
    calls = counted(lambda: bob.send({"action": "resume", "since": since}))
    assert calls == Counter({"GetItem": 2, "Query": 1})


def test_resume_of_a_new_user_starts_the_stream(connect: Any, counted: Any) -> None:
    newbie = connect("newbie")
    assert counted(lambda: newbie.request({"action": "resume"})) == Counter(
        {"GetItem": 2, "PutItem": 1}
    )


# -- rooms -----------------------------------------------------------------------------------


def test_the_first_join_of_a_room_starts_its_stream(connect: Any, counted: Any) -> None:
    alice = connect("alice")
    calls = counted(lambda: alice.request({"action": "joinRoom", "room": "lobby"}))
    # alice is first, but the room's count says she is alone: nobody to tell, no Query.
    assert calls == Counter({**JOIN, "PutItem": 2})


@pytest.mark.parametrize("members", AUDIENCES)
def test_a_first_device_join_reads_the_watchers_once_whatever_the_rooms_size(
    connect: Any, in_room: Any, counted: Any, members: int
) -> None:
    for index in range(members):
        in_room(f"u{index}")
    alice = connect("alice")
    calls = counted(lambda: alice.send({"action": "joinRoom", "room": "lobby"}))
    assert calls == Counter({**JOIN, "Query": 1})


def test_a_second_device_join_announces_nothing(connect: Any, in_room: Any, counted: Any) -> None:
    in_room("alice")
    laptop = connect("alice")
    calls = counted(lambda: laptop.request({"action": "joinRoom", "room": "lobby"}))
    assert calls == Counter(JOIN)


@pytest.mark.parametrize("missed", [1, 5])
def test_a_join_with_since_adds_one_query_for_the_replay(
    connect: Any, in_room: Any, counted: Any, missed: int
) -> None:
    alice = in_room("alice")
    position = alice.request({"action": "sendToRoom", "room": "lobby", "text": "seen"})
    for _ in range(missed):
        alice.request({"action": "sendToRoom", "room": "lobby", "text": "missed"})
    second = connect("alice")
    since = {"epoch": position["epoch"], "seq": position["seq"]}
    calls = counted(lambda: second.send({"action": "joinRoom", "room": "lobby", "since": since}))
    assert calls == Counter({**JOIN, "Query": 1})


def test_leave_is_a_delete_and_two_updates_plus_the_watchers_when_last(
    in_room: Any, counted: Any
) -> None:
    phone, laptop = in_room("alice"), in_room("alice")
    not_last = counted(lambda: phone.request({"action": "leaveRoom", "room": "lobby"}))
    last = counted(lambda: laptop.request({"action": "leaveRoom", "room": "lobby"}))
    # No TransactWriteItems: dynalite (and other DynamoDB stand-ins) refuse it.
    assert not_last == Counter({"GetItem": 1, "DeleteItem": 1, "UpdateItem": 3})
    # The last one also deletes the emptied presence item; alone, nobody is told.
    assert last == Counter({"GetItem": 1, "DeleteItem": 2, "UpdateItem": 3})


@pytest.mark.parametrize("members", AUDIENCES)
def test_send_to_room_is_at_most_two_writes_plus_the_fan_out_read(
    in_room: Any, counted: Any, members: int
) -> None:
    alice = in_room("alice")
    for index in range(members):
        in_room(f"u{index}")
    frame = {"action": "sendToRoom", "room": "lobby", "text": "x"}
    calls = counted(lambda: alice.send(frame))
    assert calls == Counter({"GetItem": 1, "UpdateItem": 1, "PutItem": 1, "Query": 1})


@pytest.mark.parametrize("members", AUDIENCES)
def test_presence_is_one_query(connect: Any, in_room: Any, counted: Any, members: int) -> None:
    for index in range(members):
        in_room(f"u{index}")
    asker = connect("asker")
    calls = counted(lambda: asker.request({"action": "presence", "room": "lobby"}))
    # The page of users, then one batched read of their connections (are they live?).
    assert calls == Counter({"GetItem": 1, "Query": 1, "BatchGetItem": 1})


def test_presence_reads_only_the_rooms_members(
    connect: Any, in_room: Any, items_read: Any
) -> None:
    """Members of other rooms, users' presence items and messages are never read."""
    for index in range(3):
        in_room(f"here{index}")
    for index in range(30):
        in_room(f"elsewhere{index}", room=f"other{index % 3}")
    for sender, room in ((in_room("there", room="other0"), "other0"),
                         (in_room("also-here"), "lobby")):
        for _ in range(3):
            assert sender.request({"action": "sendToRoom", "room": room, "text": "x"})["seq"]
    asker = connect("asker")
    assert items_read(lambda: asker.request({"action": "presence", "room": "lobby"})) == 4


def test_history_is_a_position_read_and_one_query(in_room: Any, counted: Any) -> None:
    alice = in_room("alice")
    for _ in range(3):
        alice.request({"action": "sendToRoom", "room": "lobby", "text": "x"})
    calls = counted(lambda: alice.request({"action": "history", "room": "lobby", "limit": 2}))
    assert calls == Counter({"GetItem": 2, "Query": 1})
    # alice's personal stream does not exist yet: it starts (seq 0) and there is nothing to read.
    calls = counted(lambda: alice.request({"action": "history"}))
    assert calls == Counter({"GetItem": 2, "PutItem": 1})


def test_history_reads_only_the_page(in_room: Any, items_read: Any) -> None:
    alice = in_room("alice")
    for _ in range(30):
        alice.request({"action": "sendToRoom", "room": "lobby", "text": "x"})
    page = {"action": "history", "room": "lobby", "limit": 5, "beforeSeq": 20}
    assert items_read(lambda: alice.request(page)) == 6  # the page, and one to know hasMore


@pytest.mark.parametrize("members", AUDIENCES)
def test_typing_is_one_query(in_room: Any, counted: Any, members: int) -> None:
    alice = in_room("alice")
    for index in range(members):
        in_room(f"u{index}")
    notice = counted(lambda: alice.send({"action": "typing", "room": "lobby"}))
    asked = counted(lambda: alice.request({"action": "typing", "room": "lobby", "id": "t"}))
    assert notice == asked == Counter({"GetItem": 1, "Query": 1})


def test_a_refused_action_reads_only_the_connection(
    client: Any, token: Any, counted: Any
) -> None:
    reader = client.connect(query={"token": token("reader", rooms={"lobby": ["join"]})})
    for frame in (
        {"action": "sendToRoom", "room": "lobby", "text": "x"},
        {"action": "joinRoom", "room": "lobby", "since": {"epoch": "e", "seq": 0}},
        {"action": "presence", "room": "lobby"},
        {"action": "history", "room": "lobby"},
    ):
        assert counted(lambda f=frame: reader.request(f)) == Counter({"GetItem": 1})


# -- everyone, and cleanup ----------------------------------------------------------------------


@pytest.mark.parametrize("audience", AUDIENCES)
def test_broadcast_is_one_get_and_one_index_scan_page(
    connect: Any, in_room: Any, counted: Any, audience: int
) -> None:
    admin = connect("root", "admin")
    for index in range(audience):
        in_room(f"u{index}")
    calls = counted(lambda: admin.send({"action": "broadcastAll", "text": "x"}))
    assert calls == Counter({"GetItem": 1, "Scan": 1})


def test_gone_targets_are_removed_in_one_batch_per_fan_out(
    connect: Any, counted: Any
) -> None:
    admin = connect("root", "admin")
    for index in range(12):
        connect(f"u{index}").vanish()
    calls = counted(lambda: admin.send({"action": "broadcastAll", "text": "x"}))
    assert calls == Counter({"GetItem": 1, "Scan": 1, "BatchGetItem": 1, "BatchWriteItem": 1})


@pytest.mark.parametrize("gone", [1, 5])
def test_gone_room_members_leave_with_one_announcement_read(
    in_room: Any, counted: Any, gone: int
) -> None:
    """Each gone member leaves its presence set; one Query finds the watchers for all of them."""
    alice = in_room("alice")
    ghosts = [in_room(f"ghost{index}") for index in range(gone)]
    for ghost in ghosts:
        ghost.vanish()
    frame = {"action": "sendToRoom", "room": "lobby", "text": "x"}
    calls = counted(lambda: alice.send(frame))
    assert calls == Counter({
        "GetItem": 1, "UpdateItem": 1 + gone + 1, "PutItem": 1, "Query": 2,
        "BatchGetItem": 1, "BatchWriteItem": 1, "DeleteItem": gone,
    })


@pytest.mark.parametrize("action", ["ping", "whoami"])
def test_ping_and_whoami_read_only_the_connection(
    in_room: Any, counted: Any, action: str
) -> None:
    alice = in_room("alice")
    assert counted(lambda: alice.request({"action": action})) == Counter({"GetItem": 1})


# -- a team's actions: each call of its context ---------------------------------------------------


@pytest.fixture
def team_action() -> Any:
    """An action whose handler makes one context call, chosen by the frame's ``call``."""
    calls = {
        "publish": lambda ctx: ctx.publish({"type": "t"}),
        "deliver": lambda ctx: ctx.deliver({"type": "t"}, user="bob"),
        "store": lambda ctx: ctx.store(text="x"),
        "get": lambda ctx: ctx.get(1),
        "annotate": lambda ctx: ctx.annotate(1, "reaction", "x"),
        "nothing": lambda ctx: None,
    }

    @extend.action("team", fields={"room": Room(), "call": Enum(*calls)})
    def team(ctx: extend.Context, room: str, call: str) -> None:
        calls[call](ctx)

    yield
    extend.CATALOG.remove("team")


@pytest.mark.parametrize(
    ("call", "requests"),
    [
        ("nothing", {}),
        ("publish", {"Query": 1}),
        ("deliver", {"Query": 1}),
        ("store", {"UpdateItem": 1, "PutItem": 1, "Query": 1}),
        ("get", {"GetItem": 1}),
        ("annotate", {"UpdateItem": 1}),
    ],
)
def test_a_teams_action_costs_the_connection_read_and_its_context_calls(
    in_room: Any, connect: Any, counted: Any, team_action: None, call: str,
    requests: dict[str, int],
) -> None:
    alice = in_room("alice")
    connect("bob")
    alice.request({"action": "sendToRoom", "room": "lobby", "text": "first"})
    frame = {"action": "team", "room": "lobby", "call": call}
    assert counted(lambda: alice.request(frame)) == Counter({"GetItem": 1}) + Counter(requests)


def test_a_declared_rate_adds_one_counter_write_per_frame(
    in_room: Any, counted: Any
) -> None:
    @extend.action("limited", fields={"room": Room()}, rate="100/s")
    def limited(ctx: extend.Context, room: str) -> None:
        return None

    alice = in_room("alice")
    try:
        assert counted(lambda: alice.request({"action": "limited", "room": "lobby"})) == Counter(
            {"GetItem": 1, "UpdateItem": 1})
    finally:
        extend.CATALOG.remove("limited")
# -- token lifetime --------------------------------------------------------------------------


def test_a_revoked_connect_is_one_read(
    client: Any, token: Any, counted: Any, services: Any
) -> None:
    services.revocations.revoke("mallory", int(time.time()))
    old = token("mallory", now=time.time() - 60)
    assert counted(lambda: client.connect(query={"token": old})) == Counter({"GetItem": 1})


def test_refresh_is_two_reads_and_one_update(connect: Any, token: Any, counted: Any) -> None:
    alice = connect("alice")
    frame = {"action": "refresh", "token": token("alice")}
    assert counted(lambda: alice.request(frame)) == Counter({"GetItem": 2, "UpdateItem": 1})


# -- the server API (a warm container: the management endpoint is known) ----------------------


@pytest.fixture
def server_api(app_module: Any, counted: Any) -> Any:
    """Call a method; returns the DynamoDB requests it made."""

    def run(method: str, **params: Any) -> Counter[str]:
        def invoke() -> None:
            answer = app_module.server_api({"method": method, "params": params},
                                           LambdaContext("server_api"))
            assert "result" in answer, answer

        return Counter(counted(invoke))

    return run


STORED = Counter({"UpdateItem": 1, "PutItem": 1})
"""Numbering (the stream head) and the entry itself, as for a member's message."""
KEYED = Counter({"PutItem": 1, "UpdateItem": 1})
"""An idempotency key claimed, then its answer kept."""


@pytest.mark.parametrize("members", AUDIENCES)
def test_publish_to_a_room_is_one_query_whatever_its_size(
    in_room: Any, server_api: Any, members: int
) -> None:
    for index in range(members):
        in_room(f"u{index}")
    assert server_api("publish", room="lobby", data=1) == Counter({"Query": 1})
    assert server_api("publish", room="lobby", data=1, store=True) == Counter(
        {"Query": 1}) + STORED
    keyed = server_api("publish", room="lobby", data=1, store=True, idempotencyKey="k")
    assert keyed == Counter({"Query": 1}) + STORED + KEYED
    duplicate = server_api("publish", room="lobby", data=1, store=True, idempotencyKey="k")
    assert duplicate == Counter({"PutItem": 1, "GetItem": 1})


def test_publish_to_a_user_and_to_everyone(in_room: Any, server_api: Any) -> None:
    in_room("alice"), in_room("alice")
    assert server_api("publish", userId="alice", data=1) == Counter({"Query": 1})
    assert server_api("publish", all=True, data=1) == Counter({"Scan": 1})


def test_broadcast_is_one_publish_per_room(in_room: Any, server_api: Any) -> None:
    in_room("alice", "a"), in_room("bob", "b")
    assert server_api("broadcast", rooms=["a", "b", "c"], data=1) == Counter({"Query": 3})


@pytest.mark.parametrize("devices", [1, 3])
def test_subscribe_is_a_join_per_device_and_one_position_read(
    in_room: Any, connect: Any, server_api: Any, devices: int
) -> None:
    in_room("watcher")
    for _ in range(devices):
        connect("alice")
    calls = server_api("subscribe", userId="alice", room="lobby")
    per_device = Counter({"UpdateItem": 3, "PutItem": 1})  # joinRoom's writes
    expected = Counter({"Query": 1 + 1, "BatchGetItem": 1, "GetItem": 1})  # devices; watchers
    for _ in range(devices):
        expected += per_device
    assert calls == expected


@pytest.mark.parametrize("devices", [1, 3])
def test_unsubscribe_is_a_leave_per_device(
    in_room: Any, server_api: Any, devices: int
) -> None:
    in_room("watcher")
    for _ in range(devices):
        in_room("alice")
    calls = server_api("unsubscribe", userId="alice", room="lobby")
    # The devices; when the last left: its emptied presence item, the watchers.
    expected = Counter({"Query": 1 + 1, "BatchGetItem": 1, "DeleteItem": 1})
    for _ in range(devices):
        expected += Counter({"DeleteItem": 1, "UpdateItem": 3})  # leaveRoom's writes
    assert calls == expected


DISCONNECTED = Counter({"BatchGetItem": 1, "BatchWriteItem": 1})
"""A closed connection's own ``$disconnect`` (in no room), which API Gateway runs."""


def test_disconnect_reads_the_audience_then_each_close_is_a_disconnect(
    in_room: Any, connect: Any, server_api: Any
) -> None:
    in_room("bob")
    connect("alice"), connect("alice")
    calls = server_api("disconnect", userId="alice")
    assert calls == Counter({"Query": 1}) + DISCONNECTED + DISCONNECTED
    laptop = connect("carol")
    assert server_api("disconnect", connectionId=laptop.id) == Counter(
        {"GetItem": 1}) + DISCONNECTED


def test_revoke_is_one_write_and_the_users_connections(
    in_room: Any, client: Any, token: Any, server_api: Any
) -> None:
    in_room("bob")
    client.connect(query={"token": token("alice", now=time.time() - 60)})
    calls = server_api("revoke", userId="alice")
    assert calls == Counter({"UpdateItem": 1, "Query": 1, "BatchGetItem": 1}) + DISCONNECTED


@pytest.mark.parametrize("members", AUDIENCES)
def test_presence_is_the_actions_reads_and_stats_one_read(
    in_room: Any, server_api: Any, members: int
) -> None:
    for index in range(members):
        in_room(f"u{index}")
    assert server_api("presence", room="lobby") == Counter({"Query": 1, "BatchGetItem": 1})
    assert server_api("presenceStats", room="lobby") == Counter({"GetItem": 1})


def test_history_reads_and_history_remove_writes_once(in_room: Any, server_api: Any) -> None:
    alice = in_room("alice")
    alice.request({"action": "sendToRoom", "room": "lobby", "text": "x"})
    assert server_api("history", room="lobby") == Counter({"GetItem": 1, "Query": 1})
    assert server_api("history", userId="nobody") == Counter({"GetItem": 1, "PutItem": 1})
    assert server_api("historyRemove", room="lobby") == Counter({"PutItem": 1})


@pytest.mark.parametrize("connections", AUDIENCES)
def test_rooms_and_info_are_one_index_scan_page(
    in_room: Any, server_api: Any, connections: int
) -> None:
    for index in range(connections):
        in_room(f"u{index}", room=f"r{index % 3}")
    assert server_api("rooms") == Counter({"Scan": 1})
    assert server_api("info") == Counter({"Scan": 1})


def test_the_expiry_schedule_reads_only_the_connections_that_are_due(
    app_module: Any, client: Any, token: Any, later: Any, items_read: Any
) -> None:
    """Its Queries' key condition stops at now: connections not due yet are never read."""
    for n in range(30):
        client.connect(query={"token": token(f"u{n}", lifetime_seconds=7200 if n % 3 else 3600)})

    def run(seconds: float) -> int:
        later(seconds)
        return int(items_read(lambda: app_module.expire_connections(
            scheduled_event(), LambdaContext("expire_connections"))))

    assert run(60) == 0
    # 10 of 30 due: the Queries read them (and each closed one's $disconnect reads nothing more).
    assert run(3600 + 61) == 10
