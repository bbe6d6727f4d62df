"""The ``expire_connections`` schedule closes the connections whose token has expired.

It is invoked as EventBridge invokes a Chalice ``@app.schedule`` function, in a
container of its own; the time is moved by giving the services a clock ahead
of the real one.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from chalicelib.registry import EXPIRY_SHARDS
from chalicelib.runtime import Services
from switchboard_local.stage import State
from switchboard_local.testing import (
    Fault,
    LambdaContext,
    TestConnection,
    WebsocketTestClient,
)
from tests.chalicelib.conftest import scheduled_event, socket_state

HOUR = 3600


@pytest.fixture
def expire(app_module: Any, later: Any) -> Any:
    """Run the schedule once as if ``seconds`` had passed; returns its answer."""

    def run(seconds: float = 0) -> dict[str, Any]:
        later(seconds)
        answer: dict[str, Any] = app_module.expire_connections(
            scheduled_event(), LambdaContext("expire_connections")
        )
        return answer

    return run


def is_open(client: WebsocketTestClient, connection: TestConnection) -> bool:
    return socket_state(client, connection) is State.OPEN


def test_connections_past_their_tokens_exp_are_told_and_closed(
    expire: Any, client: WebsocketTestClient, token: Any, services: Services, connect: Any
) -> None:
    watcher = client.connect(query={"token": token("bob", lifetime_seconds=3 * HOUR)})
    watcher.request({"action": "joinRoom", "room": "lobby"})
    alice = connect("alice")
    alice.request({"action": "joinRoom", "room": "lobby"})
    for connection in (watcher, alice):
        connection.new_frames()

    assert expire(HOUR - 60) == {"due": 0, "closed": 0, "gone": 0, "failed": 0}
    assert is_open(client, alice)

    assert expire(HOUR + 61) == {"due": 1, "closed": 1, "gone": 0, "failed": 0}

    assert alice.new_frames() == [{
        "type": "error", "code": "token_expired",
        "message": "the connection's token has expired; reconnect with a new token",
    }]
    assert not is_open(client, alice) and is_open(client, watcher)
    assert services.registry.get_connection(alice.id) is None  # $disconnect ran
    assert [(f["userId"], f["event"]) for f in watcher.new_frames()] == [("alice", "leave")]


def test_a_refreshed_connection_stays(
    expire: Any, client: WebsocketTestClient, token: Any, connect: Any
) -> None:
    alice = connect("alice")
    alice.request({"action": "refresh", "token": token("alice", lifetime_seconds=3 * HOUR)})
    assert expire(HOUR + 61)["due"] == 0
    assert is_open(client, alice)


@pytest.mark.parametrize("extra_settings", [{"TOKEN_EXPIRY_GRACE_SECONDS": "30"}])
def test_the_grace_is_honoured_by_the_schedule_too(
    expire: Any, client: WebsocketTestClient, connect: Any
) -> None:
    alice = connect("alice")
    assert expire(HOUR + 20)["due"] == 0
    assert expire(HOUR + 40)["closed"] == 1
    assert not is_open(client, alice)


def test_a_connection_already_gone_is_forgotten(
    expire: Any, connect: Any, services: Services
) -> None:
    alice = connect("alice")
    alice.request({"action": "joinRoom", "room": "lobby"})
    alice.vanish()
    assert expire(HOUR + 61) == {"due": 1, "closed": 0, "gone": 1, "failed": 0}
    assert services.registry.get_connection(alice.id) is None
    assert services.registry.room_connections("lobby") == []


def test_a_connection_that_cannot_be_closed_is_counted_failed(
    expire: Any, connect: Any, client: WebsocketTestClient
) -> None:
    alice = connect("alice")
    client.emulator.policy = lambda method, _: Fault(500) if method == "DELETE" else None
    assert expire(HOUR + 61) == {"due": 1, "closed": 0, "gone": 0, "failed": 1}
    assert alice.new_frames()[0]["code"] == "token_expired"


def test_each_run_reads_one_query_per_shard_and_only_what_is_due(
    expire: Any, connect: Any, client: WebsocketTestClient, token: Any,
    dynamodb_calls: Counter[str],
) -> None:
    """Nothing due: the shards' Queries alone; some due: one BatchGetItem to confirm them."""
    for n in range(3):
        connect(f"user{n}")
        client.connect(query={"token": token(f"long{n}", lifetime_seconds=5 * HOUR)})
    dynamodb_calls.clear()
    expire(60)
    assert dict(dynamodb_calls) == {"Query": EXPIRY_SHARDS}
    dynamodb_calls.clear()
    # The three due are confirmed in one batch; each one's $disconnect (run by the DELETE,
    # not the schedule's own requests) reads its record and deletes it.
    assert expire(HOUR + 61)["closed"] == 3
    assert dynamodb_calls["Query"] == EXPIRY_SHARDS
    assert dynamodb_calls["BatchGetItem"] == 1 + 3
