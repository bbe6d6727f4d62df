"""DynamoDB requests per event, counted at the client: the registry's cost model.

Counts are exact and independent of timing; they change only when the access
pattern changes, which is exactly what these tests should catch.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

AUDIENCES = [1, 10, 40]


@pytest.fixture
def counted(dynamodb_calls: Counter[str]) -> Any:
    """Run an action and return the DynamoDB requests it made."""

    def run(action: Any) -> Counter[str]:
        dynamodb_calls.clear()
        action()
        return Counter(dynamodb_calls)

    return run


def test_connect_is_one_conditional_write(
    client: Any, token: Any, counted: Any
) -> None:
    calls = counted(lambda: client.connect(query={"token": token("alice")}))
    assert calls == Counter({"PutItem": 1})


def test_a_refused_connect_makes_no_request(client: Any, counted: Any) -> None:
    assert counted(lambda: client.connect(query={"token": "forged"})) == Counter()


@pytest.mark.parametrize("rooms", [0, 3, 30])
def test_disconnect_is_one_read_plus_batched_deletes(
    connect: Any, counted: Any, rooms: int
) -> None:
    alice = connect("alice")
    for index in range(rooms):
        alice.request({"action": "joinRoom", "room": f"r{index}"})
    calls = counted(alice.disconnect)
    batches = -(-(rooms + 1) // 25)
    assert calls == Counter({"BatchGetItem": 1, "BatchWriteItem": batches})


@pytest.mark.parametrize("devices", AUDIENCES)
def test_send_message_is_one_get_and_one_query(
    connect: Any, counted: Any, devices: int
) -> None:
    alice = connect("alice")
    for _ in range(devices):
        connect("bob")
    frame = {"action": "sendMessage", "targetUserId": "bob", "text": "hi"}
    calls = counted(lambda: alice.request(frame))
    assert calls == Counter({"GetItem": 1, "Query": 1})


@pytest.mark.parametrize("members", AUDIENCES)
def test_send_to_room_is_one_get_and_one_query(
    connect: Any, counted: Any, members: int
) -> None:
    alice = connect("alice")
    alice.request({"action": "joinRoom", "room": "lobby"})
    for index in range(members):
        connect(f"u{index}").request({"action": "joinRoom", "room": "lobby"})
    calls = counted(lambda: alice.request({"action": "sendToRoom", "room": "lobby", "text": "x"}))
    assert calls == Counter({"GetItem": 1, "Query": 1})


@pytest.mark.parametrize("audience", AUDIENCES)
def test_broadcast_is_one_get_and_one_index_scan_page(
    connect: Any, counted: Any, audience: int
) -> None:
    admin = connect("root", "admin")
    for index in range(audience):
        connect(f"u{index}").request({"action": "joinRoom", "room": "lobby"})
    calls = counted(lambda: admin.send({"action": "broadcastAll", "text": "x"}))
    assert calls == Counter({"GetItem": 1, "Scan": 1})


def test_join_and_leave_are_one_get_and_two_single_item_writes(
    connect: Any, counted: Any
) -> None:
    # No TransactWriteItems: dynalite (and other DynamoDB stand-ins) refuse it.
    alice = connect("alice")
    joined = counted(lambda: alice.request({"action": "joinRoom", "room": "lobby"}))
    left = counted(lambda: alice.request({"action": "leaveRoom", "room": "lobby"}))
    assert joined == Counter({"GetItem": 1, "UpdateItem": 1, "PutItem": 1})
    assert left == Counter({"GetItem": 1, "DeleteItem": 1, "UpdateItem": 1})


def test_gone_targets_are_removed_in_one_batch_per_fan_out(
    connect: Any, counted: Any
) -> None:
    admin = connect("root", "admin")
    for index in range(12):
        connect(f"u{index}").vanish()
    calls = counted(lambda: admin.send({"action": "broadcastAll", "text": "x"}))
    assert calls == Counter({"GetItem": 1, "Scan": 1, "BatchGetItem": 1, "BatchWriteItem": 1})
