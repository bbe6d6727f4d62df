"""Races between events of one connection, each played with real threads.

Lambda runs events concurrently and API Gateway promises no order between a
connection's ``$disconnect`` and someone else's fan-out, nor that
``$disconnect`` arrives at all. Each test states what must hold whatever the
interleaving: nothing kept that should be dropped, nothing dropped that should
be kept, and every frame answered. Runs on both engines.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from chalicelib import runtime
from chalicelib.registry import Registry
from chalicelib.runtime import Services
from switchboard_local.testing import Fault, WebsocketTestClient
from tests.chalicelib.conftest import described, registry_items, table_items

ROUNDS = 6
LEAVE_B = json.dumps({"action": "leaveRoom", "room": "b"})


def together(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls on their own threads, released at the same instant."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def answers(client: WebsocketTestClient, connection_id: str) -> list[dict[str, Any]]:
    return [json.loads(text) for text in client.emulator.received(connection_id)]


def test_disconnect_during_a_broadcast(
    client: WebsocketTestClient, connect: Any, services: Services, dynamodb: Any
) -> None:
    admin = connect("root", "admin")
    others = [connect(f"u{i}") for i in range(20)]
    leaver = others[7]
    leaver.request({"action": "joinRoom", "room": "lobby"})
    in_flight = threading.Event()

    def slow(method: str, cid: str) -> Fault:
        in_flight.set()
        return Fault(delay=0.05)

    client.emulator.policy = slow

    def leave() -> None:
        in_flight.wait(10)
        leaver.disconnect()

    frames, _ = together(lambda: admin.send({"action": "broadcastAll", "text": "x"}), leave)
    assert frames[-1]["type"] == "ack"
    assert services.registry.get_connection(leaver.id) is None
    assert services.registry.room_connections("lobby") == []
    remaining = described(registry_items(table_items(services, dynamodb)))
    assert remaining == {("connection", c.id) for c in [admin, *others] if c is not leaver}
    for other in others:
        if other is not leaver:
            assert [f["type"] for f in other.new_frames()] == ["broadcast"]


def test_the_same_connection_id_twice_at_once(
    client: WebsocketTestClient, connect: Any, token: Any, services: Services, dynamodb: Any
) -> None:
    """A retried ``$connect`` racing itself: both succeed, one record."""
    for _ in range(ROUNDS):
        context = connect("seed").context  # a fresh id with Chalice configured
        services.registry.remove_connection(context.connection_id)
        event = context.connect_event(query={"token": token("alice")})
        statuses = together(
            *[lambda e=event: client.invoke("$connect", e)["statusCode"]] * 2
        )
        assert statuses == [200, 200]
        found = services.registry.get_connection(context.connection_id)
        assert found is not None and found.user_id == "alice"
    users = [item["userId"]["S"] for item in table_items(services, dynamodb)]
    assert sorted(users) == ["alice"] * ROUNDS


@pytest.mark.engines("dynalite")
def test_the_same_connection_id_for_two_users_at_once(
    client: WebsocketTestClient, connect: Any, token: Any, services: Services
) -> None:
    """Exactly one user wins the id; the other is refused with 409 and owns nothing.

    dynalite only: moto's server checks a ConditionExpression and writes without
    holding a lock, so two racing ``attribute_not_exists`` puts can both
    succeed there (seen in about 2 of 100 tries) — DynamoDB, and dynalite,
    serialise conditional writes to one item.
    """
    for _ in range(ROUNDS):
        context = connect("seed").context
        services.registry.remove_connection(context.connection_id)
        events = {
            user: context.connect_event(query={"token": token(user)})
            for user in ("alice", "mallory")
        }
        statuses = dict(zip(events, together(
            *[lambda e=e: client.invoke("$connect", e)["statusCode"] for e in events.values()]
        ), strict=True))
        assert sorted(statuses.values()) == [200, 409]
        winner = next(user for user, status in statuses.items() if status == 200)
        found = services.registry.get_connection(context.connection_id)
        assert found is not None and found.user_id == winner


def test_leave_room_and_send_to_room_at_once(
    client: WebsocketTestClient, connect: Any, services: Services, dynamodb: Any
) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.request({"action": "joinRoom", "room": "lobby"})
    for round_ in range(ROUNDS):
        bob.request({"action": "joinRoom", "room": "lobby"})
        bob.new_frames()
        alice.new_frames()
        send = json.dumps({"action": "sendToRoom", "room": "lobby", "text": f"m{round_}"})
        leave = json.dumps({"action": "leaveRoom", "room": "lobby", "id": "l"})
        together(
            lambda s=send: client.send(alice.id, s), lambda b=leave: client.send(bob.id, b)
        )
        [ack] = [f for f in alice.new_frames() if f["type"] == "ack"]
        assert ack["delivered"] in (0, 1)
        got = bob.new_frames()
        assert {"type": "ack", "action": "leaveRoom", "id": "l"} in got
        assert len([f for f in got if f["type"] == "message"]) == ack["delivered"]
        assert services.registry.room_connections("lobby") == [alice.id]
        found = services.registry.get_connection(bob.id)
        assert found is not None and found.rooms == frozenset()
    assert described(registry_items(table_items(services, dynamodb))) == {
        ("connection", alice.id), ("connection", bob.id),
        ("membership", "lobby", alice.id), ("presence", "lobby", "alice"),
    }


def test_concurrent_joins_lose_no_room(
    client: WebsocketTestClient, connect: Any, services: Services
) -> None:
    """Every join updates the rooms set in place (ADD), so none overwrites another."""
    alice = connect("alice")
    rooms = [f"r{i}" for i in range(8)]
    together(*[
        lambda room=room: client.send(alice.id, json.dumps({"action": "joinRoom", "room": room}))
        for room in rooms
    ])
    found = services.registry.get_connection(alice.id)
    assert found is not None and found.rooms == frozenset(rooms)
    assert all(services.registry.room_connections(room) == [alice.id] for room in rooms)
    assert all(frame["type"] == "ack" for frame in answers(client, alice.id))


def test_a_lost_disconnect_is_reclaimed_by_the_next_fan_out(
    connect: Any, services: Services, dynamodb: Any
) -> None:
    """No ``$disconnect`` ever comes: the 410 of a room send and of a broadcast clean up."""
    admin = connect("root", "admin")
    lost = [connect(f"lost{i}") for i in range(3)]
    for connection in lost:
        connection.request({"action": "joinRoom", "room": "lobby"})
        connection.request({"action": "joinRoom", "room": "games"})
    admin.request({"action": "joinRoom", "room": "lobby"})
    for connection in lost:
        connection.vanish()
    sent = admin.send({"action": "sendToRoom", "room": "lobby", "text": "x"})
    assert sorted((f["type"], f.get("userId")) for f in sent) == [
        ("ack", None), *[("presence", f"lost{i}") for i in range(3)]
    ]
    assert sent[-1]["delivered"] == 0
    assert admin.send({"action": "broadcastAll", "text": "x"})[-1]["delivered"] == 1
    assert described(registry_items(table_items(services, dynamodb))) == {
        ("connection", admin.id), ("membership", "lobby", admin.id),
        ("presence", "lobby", "root"),
    }


def test_a_lost_disconnect_is_reclaimed_by_ttl(
    client: WebsocketTestClient, connect: Any, services: Services, dynamodb: Any
) -> None:
    """Past its ttl a record is gone to every read: nobody posts to it or lists it."""
    lost = connect("lost")
    lost.request({"action": "joinRoom", "room": "lobby"})
    lost.vanish()
    later = Registry(
        dynamodb, services.settings.connections_table, services.settings.connection_ttl_seconds,
        clock=lambda: time.time() + services.settings.connection_ttl_seconds + 1,
    )
    runtime.use(Services(services.settings, later, services.delivery, services.verifier))
    admin = connect("root", "admin")
    joined = admin.send({"action": "joinRoom", "room": "lobby"})
    # Reading an audience never writes: the expired membership is skipped, not forgotten.
    assert [f["type"] for f in joined] == ["ack"]
    # Asking who is there repairs it: the expired member is forgotten and its leave told.
    frames = admin.send({"action": "presence", "room": "lobby"})
    assert [(f["type"], f.get("userId")) for f in frames] == [
        ("presence", "lost"), ("members", None),
    ]
    posts = client.emulator.posts
    assert admin.request({"action": "sendToRoom", "room": "lobby", "text": "x"})["delivered"] == 0
    assert admin.request({"action": "sendMessage", "targetUserId": "lost", "text": "x"})[
        "delivered"] == 0
    assert admin.send({"action": "broadcastAll", "text": "x"})[-1]["delivered"] == 1
    assert client.emulator.posts - posts == 4, "something was posted to the expired record"
    assert later.get_connection(lost.id) is None
    assert later.room_connections("lobby") == [admin.id]


def test_leave_racing_disconnect_leaves_nothing(
    client: WebsocketTestClient, connect: Any, services: Services, dynamodb: Any
) -> None:
    """Leaving only deletes, and its rooms update is conditional: no interleaving revives."""
    for _ in range(ROUNDS):
        alice = connect("alice")
        for room in ("a", "b", "c"):
            alice.request({"action": "joinRoom", "room": room})
        together(lambda c=alice: client.send(c.id, LEAVE_B), alice.disconnect)
        assert registry_items(table_items(services, dynamodb)) == []


def test_join_racing_disconnect_is_cleaned_by_the_next_room_send(
    client: WebsocketTestClient, connect: Any, services: Services, dynamodb: Any
) -> None:
    """The worst interleaving, forced: ``$disconnect`` lands between the join's two writes.

    The membership is written after the connection item is gone, so nothing
    names it; the next room send posts to it, gets 410 and deletes it.
    """
    alice, bob = connect("alice"), connect("bob")
    alice.request({"action": "joinRoom", "room": "lobby"})
    fired = threading.Event()

    def disconnect_between_writes(**_: Any) -> None:
        if not fired.is_set():
            fired.set()
            bob.disconnect()

    dynamodb.meta.events.register("after-call.dynamodb.UpdateItem", disconnect_between_writes)
    try:
        client.send(bob.id, json.dumps({"action": "joinRoom", "room": "lobby"}))
    finally:
        dynamodb.meta.events.unregister(
            "after-call.dynamodb.UpdateItem", disconnect_between_writes
        )
    assert fired.is_set()
    assert sorted(services.registry.room_connections("lobby")) == sorted([alice.id, bob.id])
    alice.new_frames()
    sent = alice.send({"action": "sendToRoom", "room": "lobby", "text": "anyone?"})
    # The orphaned membership named bob's user, so his presence goes with it: a leave.
    assert [(f["type"], f.get("userId")) for f in sent] == [("presence", "bob"), ("ack", None)]
    assert sent[-1]["delivered"] == 0
    assert services.registry.room_connections("lobby") == [alice.id]
    assert described(registry_items(table_items(services, dynamodb))) == {
        ("connection", alice.id), ("membership", "lobby", alice.id),
        ("presence", "lobby", "alice"),
    }
