"""Identifiers and texts are valid Unicode at every boundary, and one bad item breaks nothing.

A lone surrogate (``"\\ud800"``) is legal JSON but no UTF-8 channel carries it.
Every way in refuses one (frames: ``test_hostile_frames.py``; tokens:
``test_forged_identities.py``; here the ``push`` function). Independently, an
item holding one that is already stored — written before the boundaries
checked, or by another tool — is skipped by the reads that meet it (logged,
counted), so the room or stream it is in keeps answering everyone.

Stored-surrogate tests run on dynalite only: it keeps such a string, as the
local gateway's embedded store did; moto's server answers 500 to the write.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from chalicelib import push
from chalicelib.protocol import Message
from chalicelib.registry import connection_key
from chalicelib.runtime import Services
from chalicelib.streams import Stream
from switchboard_local.testing import TestConnection

EVIL = "ev\ud800il"


def answers(connection: TestConnection, frame: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in connection.send(frame) if f["type"] not in ("presence", "message")]


@pytest.mark.engines("dynalite")
def test_one_unreadable_user_breaks_nothing_for_the_others(
    connect: Any, services: Services, dynamodb: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The reported attack: a member whose user id is a lone surrogate (its items stored as
    an older version let them in) made every member's history and presence go unanswered."""
    alice, evil = connect("alice"), connect("mallory")
    for member in (alice, evil):
        member.request({"action": "joinRoom", "room": "r"})
    alice.request({"action": "sendToRoom", "room": "r", "text": "hello"})
    # What the older version stored for a token whose sub held a lone surrogate:
    table = services.settings.connections_table
    dynamodb.update_item(TableName=table, Key=connection_key(evil.id),
                         UpdateExpression="SET userId = :u",
                         ExpressionAttributeValues={":u": {"S": EVIL}})
    registry, streams = services.registry, services.streams
    assert streams is not None
    connection = registry.get_connection(alice.id)
    assert connection is not None
    ghost = registry.add_connection("evil-2", EVIL, [], connection.endpoint)
    registry.join_room(ghost, "r", presence=True)
    streams.append(Stream.of_room("r"), Message(EVIL, "x", "2025-01-01T00:00:00.000Z"))
    streams.append(Stream.of_user("alice"), Message(EVIL, "x", "2025-01-01T00:00:00.000Z"))
    alice.new_frames()

    with caplog.at_level(logging.ERROR, "switchboard.reads"):
        for limit in (1, 2, 50):
            page = answers(alice, {"action": "history", "room": "r", "limit": limit})
            assert [m["text"] for m in page[0]["messages"]] == ["hello"]
        assert answers(alice, {"action": "history"})[0]["messages"] == []
        members = answers(alice, {"action": "presence", "room": "r"})[0]["members"]
        assert [m["userId"] for m in members] == ["alice", "mallory"]
        assert answers(alice, {"action": "sendToRoom", "room": "r", "text": "still"})[0][
            "type"] == "ack"
        # The member itself is told its record is unusable, rather than nothing.
        assert answers(evil, {"action": "whoami", "id": "w"})[0] == {
            "type": "error", "code": "forbidden", "id": "w",
            "message": "this connection is not registered; reconnect with a valid token",
        }
    assert "skipped an unreadable item" in caplog.text
    assert EVIL not in caplog.text


@pytest.mark.parametrize(("event", "message"), [
    ({"userId": EVIL, "data": {}}, "not valid Unicode"),
    ({"room": "r", "data": {"note": EVIL}}, "not valid Unicode"),
    ({"all": True, "data": {EVIL: 1}}, "not valid Unicode"),
    ({"all": True, "data": {"x": ["ok", {"deep": "\udfff"}]}}, "not valid Unicode"),
])
def test_push_refuses_what_frames_refuse(event: dict[str, Any], message: str) -> None:
    with pytest.raises(push.PushError, match=message):
        push.parse(event)


def test_valid_unicode_of_every_plane_is_pushed() -> None:
    data = {"emoji": "\U0001f469\u200d\U0001f469", "nul": "\u0000", "max": "\U0010ffff"}
    assert push.parse({"userId": "\u00e9l\u00e8ve", "data": data}).data == data
