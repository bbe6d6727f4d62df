"""Rooms a product can rely on: permissions, presence, history and recovery, kept direct messages.

Every rule of the protocol's rooms section, through the app's real handlers
(the in-process client) on both DynamoDB engines.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from chalicelib import runtime
from chalicelib.registry import connection_key, membership_key
from chalicelib.runtime import Services
from chalicelib.streams import Streams
from switchboard_local.testing import TestConnection, WebsocketTestClient
from tests.chalicelib.conftest import registry_items, table_items
from tests.conftest import TEST_SECRET

ALL = ["join", "publish", "presence", "history"]


@pytest.fixture
def open_as(client: WebsocketTestClient, token: Any) -> Callable[..., TestConnection]:
    """Connect with a ``rooms`` claim (or none), and roles."""

    def connect(user_id: str, rooms: dict[str, list[str]] | None = None,
                *roles: str) -> TestConnection:
        connection = client.connect(query={"token": token(user_id, *roles, rooms=rooms)})
        assert connection.status == 200, connection.status
        return connection

    return connect


def texts(frames: list[dict[str, Any]]) -> list[str]:
    return [frame["text"] for frame in frames if frame["type"] == "message"]


def of_type(frames: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [frame for frame in frames if frame["type"] == kind]


def send_to_room(sender: TestConnection, room: str, *messages: str) -> list[dict[str, Any]]:
    acks = [sender.request({"action": "sendToRoom", "room": room, "text": m}) for m in messages]
    assert all(ack["type"] == "ack" for ack in acks), acks
    return acks


# -- 1. permissions in the token -------------------------------------------------------


def test_a_token_with_the_claim_gets_exactly_what_it_grants(
    open_as: Callable[..., TestConnection],
) -> None:
    claim = {"lobby": ["join", "publish"], "team-42:*": ["join"], "*": ["presence"]}
    carol = open_as("carol", claim)
    assert carol.request({"action": "joinRoom", "room": "lobby"})["type"] == "ack"
    assert carol.request({"action": "joinRoom", "room": "team-42:x"})["type"] == "ack"
    refused = carol.request({"action": "joinRoom", "room": "elsewhere", "id": "j"})
    assert refused == {
        "type": "error", "code": "forbidden", "id": "j",
        "message": "joinRoom needs the 'join' permission for room 'elsewhere'",
    }
    assert send_to_room(carol, "lobby", "hi")[0]["delivered"] == 0
    published = carol.request({"action": "sendToRoom", "room": "team-42:x", "text": "x"})
    assert published["message"] == "sendToRoom needs the 'publish' permission for room 'team-42:x'"
    assert carol.request({"action": "presence", "room": "anything"})["type"] == "members"
    history = carol.request({"action": "history", "room": "lobby"})
    assert history["message"] == "history needs the 'history' permission for room 'lobby'"


def test_a_refused_join_joins_nothing(
    open_as: Callable[..., TestConnection], services: Services, dynamodb: Any
) -> None:
    dave = open_as("dave", {"lobby": ["join"]})
    before = table_items(services, dynamodb)
    since = {"epoch": "e", "seq": 0}
    refused = dave.request({"action": "joinRoom", "room": "lobby", "since": since})
    assert refused["message"] == "joinRoom needs the 'history' permission for room 'lobby'"
    assert dave.request({"action": "joinRoom", "room": "vault"})["code"] == "forbidden"
    assert table_items(services, dynamodb) == before
    assert dave.request({"action": "whoami"})["rooms"] == []


def test_a_token_without_the_claim_gets_the_stage_defaults(
    restage: Callable[..., Services], open_as: Callable[..., TestConnection]
) -> None:
    restage(default_room_permissions=frozenset({"join"}))
    erin = open_as("erin")
    assert erin.request({"action": "joinRoom", "room": "any"})["type"] == "ack"
    assert erin.request({"action": "sendToRoom", "room": "any", "text": "x"})["code"] == "forbidden"
    restage(default_room_permissions=frozenset())
    assert erin.request({"action": "joinRoom", "room": "other"})["code"] == "forbidden"


def test_an_empty_claim_grants_nothing_even_where_the_stage_grants_all(
    open_as: Callable[..., TestConnection],
) -> None:
    assert open_as("frank", {}).request({"action": "joinRoom", "room": "r"})["code"] == "forbidden"


def test_the_admin_role_may_do_everything(open_as: Callable[..., TestConnection]) -> None:
    root = open_as("root", {}, "admin")
    assert root.request({"action": "joinRoom", "room": "r", "since": {"epoch": "e", "seq": 0}})[
        "type"] == "ack"
    assert root.request({"action": "sendToRoom", "room": "r", "text": "x"})["type"] == "ack"
    assert root.request({"action": "presence", "room": "r"})["type"] == "members"
    assert root.request({"action": "history", "room": "r"})["type"] == "history"


@pytest.mark.parametrize(
    "claim", [{"lobby": "join"}, {"lobby": ["fly"]}, {"no room": ["join"]}, ["lobby"], "*"]
)
def test_a_malformed_claim_is_403_with_nothing_written(
    client: WebsocketTestClient, services: Services, dynamodb: Any, claim: Any
) -> None:
    claims = {"sub": "mallory", "exp": int(time.time()) + 60, "rooms": claim}
    token = jwt.encode(claims, TEST_SECRET, algorithm="HS256")
    assert client.connect(query={"token": token}).status == 403
    assert table_items(services, dynamodb) == []


def test_the_claim_is_kept_on_the_connection(
    open_as: Callable[..., TestConnection], services: Services
) -> None:
    gina = open_as("gina", {"lobby": ["join", "history"]})
    found = services.registry.get_connection(gina.id)
    assert found is not None and found.grants is not None
    assert found.grants.permissions_for("lobby") == {"join", "history"}
    plain = open_as("hank")
    found = services.registry.get_connection(plain.id)
    assert found is not None and found.grants is None


def test_leaving_needs_no_permission(open_as: Callable[..., TestConnection]) -> None:
    ivan = open_as("ivan", {})
    assert ivan.request({"action": "leaveRoom", "room": "lobby"}) == {
        "type": "ack", "action": "leaveRoom",
    }


# -- 2. presence, per user -------------------------------------------------------------


def test_presence_events_follow_users_not_sockets(connect: Any) -> None:
    watcher = connect("watcher")
    watcher.request({"action": "joinRoom", "room": "r"})
    phone, laptop = connect("alice"), connect("alice")
    phone.request({"action": "joinRoom", "room": "r"})
    [joined] = watcher.new_frames()
    assert joined == {"type": "presence", "room": "r", "userId": "alice", "event": "join",
                      "at": joined["at"]}
    assert joined["at"].endswith("Z")
    laptop.request({"action": "joinRoom", "room": "r"})
    assert watcher.new_frames() == []  # a second device says nothing
    phone.request({"action": "leaveRoom", "room": "r"})
    assert watcher.new_frames() == []
    laptop.request({"action": "leaveRoom", "room": "r"})
    [left] = watcher.new_frames()
    assert (left["userId"], left["event"]) == ("alice", "leave")


def test_the_joining_connection_gets_its_ack_not_its_own_event(connect: Any) -> None:
    alice = connect("alice")
    frames = alice.send({"action": "joinRoom", "room": "r"})
    assert [frame["type"] for frame in frames] == ["ack"]


def test_only_members_holding_presence_get_presence_events(
    open_as: Callable[..., TestConnection],
) -> None:
    blind = open_as("blind", {"r": ["join"]})
    seer = open_as("seer", {"r": ["join", "presence"]})
    for member in (blind, seer):
        member.request({"action": "joinRoom", "room": "r"})
    open_as("alice").request({"action": "joinRoom", "room": "r"})
    assert blind.new_frames() == []
    assert [f["userId"] for f in of_type(seer.new_frames(), "presence")] == ["alice"]


def test_disconnect_of_the_last_device_is_a_leave(connect: Any) -> None:
    watcher = connect("watcher")
    watcher.request({"action": "joinRoom", "room": "r"})
    phone, laptop = connect("alice"), connect("alice")
    for device in (phone, laptop):
        device.request({"action": "joinRoom", "room": "r"})
    watcher.new_frames()
    phone.disconnect()
    assert watcher.new_frames() == []
    laptop.disconnect(1001)
    assert [(f["userId"], f["event"]) for f in watcher.new_frames()] == [("alice", "leave")]


def test_a_410_found_during_a_send_is_a_leave(connect: Any) -> None:
    watcher, sender, ghost = connect("watcher"), connect("sender"), connect("ghost")
    for member in (watcher, sender, ghost):
        member.request({"action": "joinRoom", "room": "r"})
    watcher.new_frames()
    ghost.vanish()
    answers = sender.send({"action": "sendToRoom", "room": "r", "text": "anyone?"})
    assert [(f["type"], f.get("userId")) for f in answers] == [("presence", "ghost"), ("ack", None)]
    assert answers[-1]["delivered"] == 1
    frames = watcher.new_frames()
    assert texts(frames) == ["anyone?"]
    assert [(f["userId"], f["event"]) for f in of_type(frames, "presence")] == [("ghost", "leave")]
    assert sender.request({"action": "presence", "room": "r"})["members"] == [
        {"userId": "sender", "connections": 1}, {"userId": "watcher", "connections": 1},
    ]


def test_an_expired_record_is_skipped_by_delivery_reads_and_forgotten_by_presence(
    client: WebsocketTestClient, connect: Any, services: Services, dynamodb: Any
) -> None:
    lost = connect("lost")
    lost.request({"action": "joinRoom", "room": "r"})
    lost.vanish()
    later = time.time() + services.settings.connection_ttl_seconds + 1
    registry = type(services.registry)(
        dynamodb, services.settings.connections_table, services.settings.connection_ttl_seconds,
        clock=lambda: later,
    )
    runtime.use(dataclasses.replace(services, registry=registry))
    watcher = connect("watcher")
    # The join reads the room to announce the watcher: a read for delivery never writes.
    joined = watcher.send({"action": "joinRoom", "room": "r"})
    assert [f["type"] for f in joined] == ["ack"]
    assert registry.room_members("r").expired == (lost.id,)
    # A presence read repairs what it finds: the expired member is forgotten, its leave told.
    frames = watcher.send({"action": "presence", "room": "r"})
    assert [(f["type"], f.get("userId"), f.get("event")) for f in frames] == [
        ("presence", "lost", "leave"), ("members", None, None),
    ]
    assert frames[-1]["members"] == [{"userId": "watcher", "connections": 1}]
    assert registry.get_connection(lost.id) is None
    assert [item for item in registry_items(table_items(services, dynamodb))
            if lost.id in str(item)] == []


def test_presence_answers_each_user_once_with_their_connection_count(connect: Any) -> None:
    for user, devices in (("zoe", 1), ("amy", 3), ("max", 2)):
        for _ in range(devices):
            connect(user).request({"action": "joinRoom", "room": "r"})
    connect("other").request({"action": "joinRoom", "room": "elsewhere"})
    asker = connect("asker")
    assert asker.request({"action": "presence", "room": "r", "id": "p"}) == {
        "type": "members", "id": "p", "room": "r",
        "members": [
            {"userId": "amy", "connections": 3},
            {"userId": "max", "connections": 2},
            {"userId": "zoe", "connections": 1},
        ],
    }
    assert asker.request({"action": "presence", "room": "empty"})["members"] == []


def test_a_user_who_left_and_came_back_is_announced_again(connect: Any) -> None:
    watcher, alice = connect("watcher"), connect("alice")
    watcher.request({"action": "joinRoom", "room": "r"})
    for _ in range(2):
        alice.request({"action": "joinRoom", "room": "r"})
        alice.request({"action": "leaveRoom", "room": "r"})
    assert [f["event"] for f in watcher.new_frames()] == ["join", "leave", "join", "leave"]


# -- 3. room history and recovery ------------------------------------------------------


def test_room_messages_are_numbered_within_one_epoch(connect: Any) -> None:
    alice, bob = connect("alice"), connect("bob")
    joined = alice.request({"action": "joinRoom", "room": "r"})
    assert joined["seq"] == 0
    bob.request({"action": "joinRoom", "room": "r"})
    acks = send_to_room(alice, "r", "a", "b")
    received = of_type(bob.new_frames(), "message")
    acks += send_to_room(bob, "r", "c")
    assert [ack["seq"] for ack in acks] == [1, 2, 3]
    assert {ack["epoch"] for ack in acks} == {joined["epoch"]}
    assert [(m["seq"], m["text"], m["epoch"]) for m in received] == [
        (1, "a", joined["epoch"]), (2, "b", joined["epoch"]),
    ]
    assert connect("carol").request({"action": "joinRoom", "room": "r"})["seq"] == 3


def test_history_pages_newest_first_oldest_first_within(connect: Any) -> None:
    alice = connect("alice")
    alice.request({"action": "joinRoom", "room": "r"})
    send_to_room(alice, "r", *[f"m{i}" for i in range(1, 8)])
    page = alice.request({"action": "history", "room": "r", "limit": 3, "id": "h"})
    assert (page["type"], page["id"], page["room"], page["hasMore"]) == ("history", "h", "r", True)
    assert [m["seq"] for m in page["messages"]] == [5, 6, 7]
    assert page["messages"][0] == {
        "type": "message", "from": "alice", "text": "m5", "sentAt": page["messages"][0]["sentAt"],
        "room": "r", "seq": 5, "epoch": page["epoch"],
    }
    older = alice.request({"action": "history", "room": "r", "limit": 3, "beforeSeq": 5})
    assert [m["text"] for m in older["messages"]] == ["m2", "m3", "m4"]
    oldest = alice.request({"action": "history", "room": "r", "limit": 3, "beforeSeq": 2})
    assert ([m["text"] for m in oldest["messages"]], oldest["hasMore"]) == (["m1"], False)
    everything = alice.request({"action": "history", "room": "r"})
    assert (len(everything["messages"]), everything["hasMore"]) == (7, False)


def test_history_frames_are_the_frames_delivered_live(connect: Any) -> None:
    alice, bob = connect("alice"), connect("bob")
    for member in (alice, bob):
        member.request({"action": "joinRoom", "room": "r"})
    send_to_room(alice, "r", "one", "two")
    live = of_type(bob.new_frames(), "message")
    assert bob.request({"action": "history", "room": "r"})["messages"] == live


def test_a_reply_carries_the_seq_it_answers_live_and_in_history(connect: Any) -> None:
    alice, bob = connect("alice"), connect("bob")
    for member in (alice, bob):
        member.request({"action": "joinRoom", "room": "r"})
    first = alice.request({"action": "sendToRoom", "room": "r", "text": "lunch?"})
    bob.request({"action": "sendToRoom", "room": "r", "text": "yes", "replyTo": first["seq"]})
    [reply] = of_type(alice.new_frames(), "message")
    assert (reply["text"], reply["replyTo"]) == ("yes", first["seq"])
    assert alice.request({"action": "history", "room": "r"})["messages"][-1] == reply


def test_history_keeps_at_most_the_stage_maximum(
    restage: Callable[..., Services], connect: Any
) -> None:
    restage(history_max_messages=3)
    alice = connect("alice")
    joined = alice.request({"action": "joinRoom", "room": "r"})
    send_to_room(alice, "r", *"abcde")
    page = alice.request({"action": "history", "room": "r"})
    assert ([m["text"] for m in page["messages"]], page["hasMore"]) == (["c", "d", "e"], False)
    kept = connect("alice").send({"action": "joinRoom", "room": "r",
                                  "since": {"epoch": joined["epoch"], "seq": 2}})
    assert texts(kept) == ["c", "d", "e"] and kept[-1]["recovered"] is True
    gone = connect("alice").send({"action": "joinRoom", "room": "r",
                                  "since": {"epoch": joined["epoch"], "seq": 1}})
    assert [f["type"] for f in gone] == ["ack"] and gone[0]["recovered"] is False


def test_recovery_replays_what_was_missed_then_acks(connect: Any) -> None:
    alice, bob = connect("alice"), connect("bob")
    for member in (alice, bob):
        member.request({"action": "joinRoom", "room": "r"})
    send_to_room(alice, "r", "seen")
    [seen] = of_type(bob.new_frames(), "message")
    bob.disconnect()
    send_to_room(alice, "r", "missed-1", "missed-2")
    back = connect("bob")
    since = {"epoch": seen["epoch"], "seq": seen["seq"]}
    frames = back.send({"action": "joinRoom", "room": "r", "since": since, "id": "j"})
    assert [(f["type"], f.get("text")) for f in frames] == [
        ("message", "missed-1"), ("message", "missed-2"), ("ack", None),
    ]
    assert frames[-1] == {
        "type": "ack", "action": "joinRoom", "id": "j", "room": "r", "epoch": seen["epoch"],
        "seq": 3, "recovered": True,
    }
    assert [f["seq"] for f in frames[:2]] == [2, 3]
    send_to_room(alice, "r", "live")
    assert texts(back.new_frames()) == ["live"]


def test_recovery_from_the_join_position_when_nothing_was_received(connect: Any) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.request({"action": "joinRoom", "room": "r"})
    joined = bob.request({"action": "joinRoom", "room": "r"})
    bob.disconnect()
    send_to_room(alice, "r", "while away")
    frames = connect("bob").send({"action": "joinRoom", "room": "r", "since": {
        "epoch": joined["epoch"], "seq": joined["seq"]}})
    assert texts(frames) == ["while away"] and frames[-1]["recovered"] is True


def test_nothing_missed_is_a_recovery_with_no_replay(connect: Any) -> None:
    alice = connect("alice")
    joined = alice.request({"action": "joinRoom", "room": "r"})
    frames = connect("alice").send({"action": "joinRoom", "room": "r", "since": {
        "epoch": joined["epoch"], "seq": 0}})
    assert [f["type"] for f in frames] == ["ack"] and frames[0]["recovered"] is True


@pytest.mark.parametrize(
    "since", [{"epoch": "another-epoch", "seq": 1}, "future"], ids=["epoch", "future-seq"]
)
def test_an_unknown_position_is_not_recovered(connect: Any, since: Any) -> None:
    alice = connect("alice")
    joined = alice.request({"action": "joinRoom", "room": "r"})
    send_to_room(alice, "r", "x")
    if since == "future":
        since = {"epoch": joined["epoch"], "seq": 99}
    frames = connect("bob").send({"action": "joinRoom", "room": "r", "since": since})
    assert [f["type"] for f in frames] == ["ack"]
    assert (frames[0]["recovered"], frames[0]["seq"]) == (False, 1)


def test_a_gap_over_the_replay_limit_is_not_replayed(
    restage: Callable[..., Services], connect: Any
) -> None:
    restage(recovery_max_messages=2)
    alice = connect("alice")
    joined = alice.request({"action": "joinRoom", "room": "r"})
    send_to_room(alice, "r", "1", "2", "3")
    since = {"epoch": joined["epoch"], "seq": 0}
    frames = connect("bob").send({"action": "joinRoom", "room": "r", "since": since})
    assert [f["type"] for f in frames] == ["ack"] and frames[0]["recovered"] is False
    near = {"epoch": joined["epoch"], "seq": 1}
    frames = connect("bob").send({"action": "joinRoom", "room": "r", "since": near})
    assert texts(frames) == ["2", "3"] and frames[-1]["recovered"] is True


def test_expired_history_starts_a_new_epoch(
    services: Services, dynamodb: Any, connect: Any
) -> None:
    clock = [time.time()]
    streams = Streams(dynamodb, services.settings.connections_table,
                      services.settings.history_ttl_seconds, 1000, clock=lambda: clock[0])
    runtime.use(dataclasses.replace(services, streams=streams))
    alice = connect("alice")
    joined = alice.request({"action": "joinRoom", "room": "r"})
    send_to_room(alice, "r", "old")
    clock[0] += services.settings.history_ttl_seconds + 1
    [ack] = send_to_room(alice, "r", "new")
    assert ack["epoch"] != joined["epoch"] and ack["seq"] == 1
    page = alice.request({"action": "history", "room": "r"})
    assert [m["text"] for m in page["messages"]] == ["new"]
    frames = connect("bob").send({"action": "joinRoom", "room": "r", "since": {
        "epoch": joined["epoch"], "seq": 1}})
    assert [f["type"] for f in frames] == ["ack"] and frames[0]["recovered"] is False
    assert frames[0]["epoch"] == ack["epoch"]


def test_a_message_past_its_ttl_is_not_replayed_and_says_so(
    services: Services, dynamodb: Any, connect: Any
) -> None:
    """Messages expire one by one while the stream lives on: a gap reaching them is lost."""
    clock = [time.time()]
    ttl = services.settings.history_ttl_seconds
    streams = Streams(dynamodb, services.settings.connections_table, ttl, 1000,
                      clock=lambda: clock[0])
    runtime.use(dataclasses.replace(services, streams=streams))
    alice = connect("alice")
    joined = alice.request({"action": "joinRoom", "room": "r"})
    send_to_room(alice, "r", "early")
    clock[0] += ttl - 10
    send_to_room(alice, "r", "late")
    clock[0] += 20  # "early" has expired, "late" has not
    since = {"epoch": joined["epoch"], "seq": 0}
    lost = connect("bob").send({"action": "joinRoom", "room": "r", "since": since})
    assert [f["type"] for f in lost] == ["ack"] and lost[0]["recovered"] is False
    since = {"epoch": joined["epoch"], "seq": 1}
    kept = connect("bob").send({"action": "joinRoom", "room": "r", "since": since})
    assert texts(kept) == ["late"] and kept[-1]["recovered"] is True  # seq 1 is gone, 2 is not
    page = alice.request({"action": "history", "room": "r"})
    assert ([m["text"] for m in page["messages"]], page["hasMore"]) == (["late"], False)


def test_with_history_off_nothing_is_numbered_or_kept(
    restage: Callable[..., Services], connect: Any, services: Services, dynamodb: Any
) -> None:
    restage(history_max_messages=0)
    alice, bob = connect("alice"), connect("bob")
    assert alice.request({"action": "joinRoom", "room": "r"}) == {
        "type": "ack", "action": "joinRoom", "room": "r",
    }
    since = {"epoch": "e", "seq": 0}
    assert bob.request({"action": "joinRoom", "room": "r", "since": since}) == {
        "type": "ack", "action": "joinRoom", "room": "r", "recovered": False,
    }
    assert alice.request({"action": "sendToRoom", "room": "r", "text": "x"}) == {
        "type": "ack", "action": "sendToRoom", "delivered": 1,
    }
    assert "seq" not in of_type(bob.new_frames(), "message")[0]
    assert alice.request({"action": "sendMessage", "targetUserId": "bob", "text": "x"}) == {
        "type": "ack", "action": "sendMessage", "delivered": 1,
    }
    off = alice.request({"action": "history", "room": "r"})
    assert (off["code"], "HISTORY_MAX_MESSAGES" in off["message"]) == ("bad_request", True)
    assert alice.request({"action": "resume", "since": since}) == {
        "type": "ack", "action": "resume", "recovered": False,
    }
    stored = {item["PK"]["S"].split("#")[0] for item in table_items(services, dynamodb)}
    assert stored <= {"CONN", "ROOM"}


def test_broadcasts_and_pushes_are_not_stored(connect: Any) -> None:
    root = connect("root", "admin")
    root.request({"action": "joinRoom", "room": "r"})
    frames = root.send({"action": "broadcastAll", "text": "all"})
    assert "seq" not in frames[0] and "epoch" not in frames[0]
    assert root.request({"action": "history", "room": "r"})["messages"] == []
    assert root.request({"action": "history"})["messages"] == []


# -- 4. direct messages are kept too -----------------------------------------------------


def test_direct_messages_carry_the_recipients_stream_position(connect: Any) -> None:
    alice, carol, bob = connect("alice"), connect("carol"), connect("bob")
    alice.request({"action": "sendMessage", "targetUserId": "bob", "text": "1"})
    carol.request({"action": "sendMessage", "targetUserId": "bob", "text": "2"})
    alice.request({"action": "sendMessage", "targetUserId": "carol", "text": "other stream"})
    first, second = bob.new_frames()
    assert (first["seq"], second["seq"]) == (1, 2) and first["epoch"] == second["epoch"]
    assert "room" not in first
    assert of_type(carol.new_frames(), "message")[0]["seq"] == 1


def test_a_phone_asleep_while_the_laptop_was_online_catches_up(connect: Any) -> None:
    alice = connect("alice")
    phone, laptop = connect("bob"), connect("bob")
    alice.request({"action": "sendMessage", "targetUserId": "bob", "text": "both"})
    [seen] = phone.new_frames()
    phone.disconnect()
    acks = [alice.request({"action": "sendMessage", "targetUserId": "bob", "text": t})
            for t in ("laptop-1", "laptop-2")]
    assert [ack["delivered"] for ack in acks] == [1, 1]
    assert texts(laptop.new_frames()) == ["both", "laptop-1", "laptop-2"]
    awake = connect("bob")
    frames = awake.send({"action": "resume", "since": {"epoch": seen["epoch"],
                                                       "seq": seen["seq"]}, "id": "r"})
    assert texts(frames) == ["laptop-1", "laptop-2"]
    assert frames[-1] == {"type": "ack", "action": "resume", "id": "r", "epoch": seen["epoch"],
                          "seq": 3, "recovered": True}


def test_an_offline_recipient_gets_it_stored(connect: Any) -> None:
    alice = connect("alice")
    ack = alice.request({"action": "sendMessage", "targetUserId": "dana", "text": "later"})
    assert ack == {"type": "ack", "action": "sendMessage", "delivered": 0, "stored": True}
    dana = connect("dana")
    position = dana.request({"action": "resume"})
    assert (position["seq"], "recovered" in position) == (1, False)
    page = dana.request({"action": "history"})
    assert [(m["from"], m["text"], m["seq"]) for m in page["messages"]] == [("alice", "later", 1)]
    assert "room" not in page and "room" not in page["messages"][0]
    replay = connect("dana").send({"action": "resume", "since": {"epoch": page["epoch"],
                                                                 "seq": 0}})
    assert texts(replay) == ["later"] and replay[-1]["recovered"] is True


def test_resume_of_a_user_who_never_got_anything(connect: Any) -> None:
    frames = connect("newbie").send({"action": "resume"})
    assert [f["type"] for f in frames] == ["ack"]
    assert frames[0]["seq"] == 0 and frames[0]["epoch"]
    stale = connect("newbie").send({"action": "resume", "since": {"epoch": "x", "seq": 4}})
    assert stale[0]["recovered"] is False


def test_personal_history_is_the_callers_own(connect: Any) -> None:
    alice = connect("alice")
    alice.request({"action": "sendMessage", "targetUserId": "bob", "text": "for bob"})
    assert alice.request({"action": "history"})["messages"] == []
    assert texts(connect("bob").request({"action": "history"})["messages"]) == ["for bob"]


def test_a_presence_read_that_finds_an_expired_member_announces_its_leave(
    connect: Any, services: Services, dynamodb: Any
) -> None:
    watcher, lost = connect("watcher"), connect("lost")
    for member in (watcher, lost):
        member.request({"action": "joinRoom", "room": "r"})
    watcher.new_frames()
    lost.vanish()
    past = {":past": {"N": str(int(time.time()) - 1)}}
    for key in (connection_key(lost.id), membership_key("r", lost.id)):
        dynamodb.update_item(TableName=services.settings.connections_table, Key=key,
                             UpdateExpression="SET #ttl = :past",
                             ExpressionAttributeNames={"#ttl": "ttl"},
                             ExpressionAttributeValues=past)
    frames = watcher.send({"action": "presence", "room": "r", "id": "p"})
    assert [(f["type"], f.get("event")) for f in frames] == [
        ("presence", "leave"), ("members", None),
    ]
    assert frames[-1]["members"] == [{"userId": "watcher", "connections": 1}]
    assert services.registry.get_connection(lost.id) is None
    assert [i for i in table_items(services, dynamodb) if lost.id in str(i)] == []


def test_a_presence_event_that_cannot_be_sent_does_not_fail_the_leave(
    connect: Any, services: Services, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    watcher, alice = connect("watcher"), connect("alice")
    for member in (watcher, alice):
        member.request({"action": "joinRoom", "room": "r"})
    watcher.new_frames()

    def broken(room: str) -> None:
        raise RuntimeError("DynamoDB is unavailable")

    monkeypatch.setattr(services.registry, "room_watchers", broken)
    with caplog.at_level(logging.ERROR):
        assert alice.request({"action": "leaveRoom", "room": "r"}) == {
            "type": "ack", "action": "leaveRoom",
        }
    assert "presence events for room r were not delivered" in caplog.text
    assert watcher.new_frames() == []
    monkeypatch.undo()
    assert watcher.request({"action": "presence", "room": "r"})["members"] == [
        {"userId": "watcher", "connections": 1}
    ]


@pytest.mark.parametrize("spoil", ["post-fails", "no-time-left"])
def test_a_replay_that_does_not_arrive_whole_is_not_a_recovery(
    client: WebsocketTestClient, connect: Any, spoil: str
) -> None:
    alice = connect("alice")
    joined = alice.request({"action": "joinRoom", "room": "r"})
    send_to_room(alice, "r", "1", "2")
    bob = connect("bob")
    if spoil == "post-fails":
        client.emulator.inject(bob.id, 500)
    else:
        client.budget_seconds = 0.5  # under the reserve kept for answering: no time to replay
    since = {"epoch": joined["epoch"], "seq": 0}
    frames = bob.send({"action": "joinRoom", "room": "r", "since": since})
    assert [f["type"] for f in frames] == ["ack"] and frames[0]["recovered"] is False
