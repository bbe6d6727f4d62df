"""No message acts as another user, and key-like input never reaches another item.

``from`` is always the user id the registry recorded at ``$connect``; nothing
a frame says changes it. User ids are free text (a token's ``sub``), so they
may contain ``#`` and look like keys: the registry's prefixes must keep every
such id in its own partition. Runs on both engines.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chalicelib.registry import Registry, connection_key, membership_key, presence_key
from chalicelib.runtime import Services
from tests.chalicelib.conftest import keys, table_items

SPOOFS = {"from": "alice", "userId": "alice", "sender": "alice", "connectionId": "x",
          "user": {"id": "alice"}, "roles": ["admin"]}


def test_from_is_always_the_registered_user(connect: Any) -> None:
    mallory = connect("mallory", "admin")
    alice, bob = connect("alice"), connect("bob")
    for member in (mallory, bob):
        member.request({"action": "joinRoom", "room": "lobby"})
    mallory.request({"action": "sendMessage", "targetUserId": "bob", "text": "1", **SPOOFS})
    mallory.request({"action": "sendToRoom", "room": "lobby", "text": "2", **SPOOFS})
    mallory.send({"action": "broadcastAll", "text": "3", **SPOOFS})
    frames = bob.new_frames() + alice.new_frames()
    assert len(frames) == 4
    assert {frame["from"] for frame in frames} == {"mallory"}
    assert mallory.request({"action": "whoami", **SPOOFS})["userId"] == "mallory"


def test_roles_come_from_the_token_not_the_frame(connect: Any) -> None:
    mallory = connect("mallory")
    error = mallory.request({"action": "broadcastAll", "text": "x", **SPOOFS})
    assert error["code"] == "forbidden"


# Strings shaped like the registry's own keys (read from it, never spelled here).
CONNECTION_PK = connection_key("x")["PK"]["S"].removesuffix("x")
CONNECTION_SK = connection_key("x")["SK"]["S"]
ROOM_PK = membership_key("lobby", "x")["PK"]["S"]
USER_SK = presence_key("lobby", "bob")["SK"]["S"]
KEY_LIKE_USERS = [
    "bob#", USER_SK, "#bob", f"bob#{CONNECTION_PK}", ROOM_PK, CONNECTION_SK, "*", "b%",
]


@pytest.mark.parametrize("target", KEY_LIKE_USERS)
def test_key_like_targets_reach_nobody_else(connect: Any, target: str) -> None:
    alice, bob = connect("alice"), connect("bob")
    ack = alice.request({"action": "sendMessage", "targetUserId": target, "text": "x"})
    assert ack["delivered"] == 0
    assert bob.new_frames() == []


def test_a_sub_that_names_another_connections_key_gets_its_own_item(
    connect: Any, services: Services, dynamodb: Any
) -> None:
    bob = connect("bob")
    bob.request({"action": "joinRoom", "room": "lobby"})
    bob_items = table_items(services, dynamodb)
    evil = [
        connect(sub) for sub in (
            CONNECTION_PK + bob.id, ROOM_PK, "bob#", f"bob#{CONNECTION_PK}{bob.id}"
        )
    ]
    after = table_items(services, dynamodb)
    assert [item for item in after if (item["PK"]["S"], item["SK"]["S"]) in keys(bob_items)] == (
        bob_items
    )
    assert len(after) == len(bob_items) + len(evil)
    assert services.registry.user_connections("bob") == [bob.id]
    frames = evil[0].send(
        {"action": "sendMessage", "targetUserId": CONNECTION_PK + bob.id, "text": "x"}
    )
    # Only the evil connection itself gets it: that string is its own user id.
    assert [frame["type"] for frame in frames] == ["message", "ack"]
    assert frames[-1]["delivered"] == 1
    assert bob.new_frames() == []
    assert services.registry.room_connections("lobby") == [bob.id]


@pytest.mark.parametrize(
    "room",
    [ROOM_PK, CONNECTION_PK + "x", f"lobby#{CONNECTION_PK}x", "#", "lobby ", "lobby\u0000", "ᚠ"],
)
def test_key_like_room_names_are_refused_and_write_nothing(
    connect: Any, services: Services, dynamodb: Any, room: str
) -> None:
    alice = connect("alice")
    before = table_items(services, dynamodb)
    for action in ("joinRoom", "leaveRoom", "sendToRoom"):
        answer = alice.request({"action": action, "room": room, "text": "x"})
        assert answer["code"] == "bad_request"
    assert table_items(services, dynamodb) == before


@given(user_ids=st.lists(
    st.text(min_size=1, max_size=128).filter(lambda s: s.strip() != "")
    | st.sampled_from(KEY_LIKE_USERS),
    min_size=1, max_size=6, unique=True,
))
@hypothesis_settings(max_examples=25)
def test_every_user_id_is_its_own_partition(
    dynamodb: Any, table_name: str, user_ids: list[str]
) -> None:
    """Any two distinct user ids, however key-like, never see each other's connections."""
    registry = Registry(dynamodb, table_name, ttl_seconds=7500)
    added = {uid: f"{index}-{abs(hash(uid))}" for index, uid in enumerate(user_ids)}
    for uid, cid in added.items():
        registry.add_connection(cid, uid, [], "https://x/api")
    try:
        for uid, cid in added.items():
            assert registry.user_connections(uid) == [cid]
    finally:
        registry.remove_connections(added.values())
