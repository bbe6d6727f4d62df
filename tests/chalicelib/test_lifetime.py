"""A connection does not outlive its token: a late frame closes it, ``refresh`` extends it.

Time is moved by giving the app's services a clock ahead of the real one (the
tokens themselves are checked by PyJWT against the real clock, as they are
when they arrive).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

from chalicelib import runtime
from chalicelib.identity import issue_token
from chalicelib.revocations import Revocations
from chalicelib.runtime import Services
from switchboard_local.stage import State
from switchboard_local.testing import WebsocketTestClient
from tests.chalicelib.conftest import socket_state
from tests.conftest import TEST_SECRET

HOUR = 3600
"""The tests' tokens live an hour (``issue_token``'s default)."""


def test_a_frame_after_exp_is_refused_and_the_connection_closed(
    connect: Any, client: WebsocketTestClient, services: Services, later: Any
) -> None:
    watcher, alice = connect("bob"), connect("alice")
    for connection in (watcher, alice):
        connection.request({"action": "joinRoom", "room": "lobby"})
    watcher.new_frames()
    later(HOUR + 1)

    answer = alice.request({"action": "ping", "id": "late"})

    assert answer == {"type": "error", "code": "token_expired", "id": "late",
                      "message": "the connection's token has expired; reconnect with a new token"}
    assert socket_state(client, alice) is State.CLOSED
    assert services.registry.get_connection(alice.id) is None  # $disconnect ran
    assert [(f["userId"], f["event"]) for f in watcher.new_frames()] == [("alice", "leave")]
    assert socket_state(client, watcher) is State.OPEN


def test_the_token_is_honoured_until_exp(connect: Any, later: Any) -> None:
    alice = connect("alice")
    later(HOUR - 5)
    assert alice.request({"action": "ping"}) == {"type": "pong"}


@pytest.mark.parametrize("grace", [0, 30])
def test_frames_are_answered_within_the_grace_and_refused_after_it(
    connect: Any, client: WebsocketTestClient, services: Services, grace: int
) -> None:
    settings = dataclasses.replace(services.settings, token_expiry_grace_seconds=grace)
    runtime.use(dataclasses.replace(services, settings=settings,
                                    clock=lambda: time.time() + HOUR + grace - 5))
    alice = connect("alice")  # its token expires in an hour; the clock is ahead
    assert alice.request({"action": "ping"}) == {"type": "pong"}
    runtime.use(dataclasses.replace(services, settings=settings,
                                    clock=lambda: time.time() + HOUR + grace + 2))
    assert alice.request({"action": "ping"})["code"] == "token_expired"
    assert socket_state(client, alice) is State.CLOSED


def test_refresh_extends_the_connection_to_the_new_tokens_exp(
    connect: Any, token: Any, services: Services, later: Any
) -> None:
    alice = connect("alice")
    fresh = token("alice", lifetime_seconds=3 * HOUR)
    new_exp = int(time.time()) + 3 * HOUR

    answer = alice.request({"action": "refresh", "token": fresh, "id": "r"})

    assert answer["type"] == "ack" and answer["action"] == "refresh" and answer["id"] == "r"
    assert abs(answer["expiresAt"] - new_exp) <= 2
    record = services.registry.get_connection(alice.id)
    assert record is not None and record.expires_at == answer["expiresAt"]
    later(2 * HOUR)
    assert alice.request({"action": "ping"}) == {"type": "pong"}


def test_refresh_takes_the_new_tokens_roles_and_rooms(
    client: WebsocketTestClient, token: Any
) -> None:
    """What a token grants follows the token: a mute is a refresh without ``publish``."""
    alice = client.connect(query={"token": token("alice", rooms={"lobby": ["join", "publish"]})})
    alice.request({"action": "joinRoom", "room": "lobby"})
    assert alice.request({"action": "sendToRoom", "room": "lobby", "text": "hi"})["type"] == "ack"

    muted = token("alice", rooms={"lobby": ["join"]})
    assert alice.request({"action": "refresh", "token": muted})["type"] == "ack"

    refused = alice.request({"action": "sendToRoom", "room": "lobby", "text": "hi"})
    assert refused["code"] == "forbidden" and "'publish'" in refused["message"]
    assert alice.request({"action": "refresh", "token": token("alice", "admin")})["type"] == "ack"
    answers = alice.send({"action": "broadcastAll", "text": "back"})
    assert [f["type"] for f in answers] == ["broadcast", "ack"]


def test_refresh_with_another_users_token_is_refused(
    connect: Any, token: Any, client: WebsocketTestClient, services: Services
) -> None:
    alice = connect("alice")
    before = services.registry.get_connection(alice.id)

    answer = alice.request({"action": "refresh", "token": token("mallory", "admin")})

    assert answer["code"] == "forbidden" and "another user's" in answer["message"]
    assert services.registry.get_connection(alice.id) == before
    assert socket_state(client, alice) is State.OPEN


@pytest.mark.parametrize("bad", [
    "not-a-jwt",
    issue_token("another-stage-key-0123456789abcdef01", "alice"),
    issue_token(TEST_SECRET, "alice", lifetime_seconds=-60),
    "x" * 5000,
])
def test_refresh_with_a_token_that_does_not_verify_is_refused(
    connect: Any, services: Services, bad: str
) -> None:
    alice = connect("alice")
    before = services.registry.get_connection(alice.id)
    answer = alice.request({"action": "refresh", "token": bad})
    assert answer["code"] == "forbidden" and answer["message"].startswith("the token was refused")
    assert services.registry.get_connection(alice.id) == before


@pytest.mark.parametrize("frame", [{"action": "refresh"}, {"action": "refresh", "token": 7}])
def test_refresh_without_a_token_string_is_a_bad_request(connect: Any, frame: Any) -> None:
    assert connect("alice").request(frame)["code"] == "bad_request"


def test_refresh_with_a_revoked_token_is_refused(
    connect: Any, token: Any, services: Services, dynamodb: Any
) -> None:
    alice = connect("alice")
    old = token("alice", now=time.time() - 60)
    Revocations(dynamodb, services.settings.connections_table).revoke(
        "alice", int(time.time()) - 30)
    answer = alice.request({"action": "refresh", "token": old})
    assert answer["code"] == "forbidden" and "revoked" in answer["message"]


def test_a_refresh_after_exp_is_too_late(
    connect: Any, token: Any, client: WebsocketTestClient, later: Any
) -> None:
    alice = connect("alice")
    later(HOUR + 1)
    answer = alice.request({"action": "refresh", "token": token("alice")})
    assert answer["code"] == "token_expired"
    assert socket_state(client, alice) is State.CLOSED


def test_a_stage_whose_services_have_no_table_client_does_not_refresh(
    connect: Any, token: Any, services: Services
) -> None:
    alice = connect("alice")
    runtime.use(Services(services.settings, services.registry, services.delivery,
                         services.verifier))
    answer = alice.request({"action": "refresh", "token": token("alice")})
    assert answer["code"] == "bad_request" and "does not refresh" in answer["message"]
