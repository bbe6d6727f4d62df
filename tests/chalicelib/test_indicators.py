"""``typing``: the built-in notice, declared through the public API as a team's action is.

It needs the ``join`` permission and membership (checked from the declaration,
before the handler), reaches the room's other members, is not stored, and is
answered only when its frame carries an ``id`` or it is refused.
"""

from __future__ import annotations

from typing import Any

from chalicelib import extend, indicators
from chalicelib.actions import table
from chalicelib.runtime import Services
from switchboard_local.testing import WebsocketTestClient
from tests.chalicelib.conftest import table_items


def test_typing_is_a_notice_declared_through_the_public_api() -> None:
    [declaration] = [d for d in extend.CATALOG.declarations() if d.name == "typing"]
    assert declaration.handler is indicators.typing
    assert (declaration.kind, declaration.needs, declaration.member) == (
        extend.NOTICE, ("join",), True,
    )
    entry = table()["typing"]
    assert entry.kind == extend.NOTICE
    assert list(entry.needs({"room": "r"})) == ["join"]


def test_the_other_members_see_who_is_typing_and_the_typist_hears_nothing(connect: Any) -> None:
    alice, phone, laptop, outsider = connect("alice"), connect("bob"), connect("bob"), connect("x")
    for member in (alice, phone, laptop):
        member.request({"action": "joinRoom", "room": "r"})
    alice.new_frames()
    assert alice.send({"action": "typing", "room": "r"}) == []
    for device in (phone, laptop):
        assert device.new_frames()[-1] == {"type": "typing", "room": "r", "userId": "alice"}
    assert outsider.new_frames() == []


def test_a_typing_frame_with_an_id_is_answered(connect: Any) -> None:
    alice, bob = connect("alice"), connect("bob")
    for member in (alice, bob):
        member.request({"action": "joinRoom", "room": "r"})
    ack = alice.request({"action": "typing", "room": "r", "id": "t"})
    assert ack == {"type": "ack", "action": "typing", "id": "t", "delivered": 1}


def test_typing_is_not_stored(connect: Any, services: Services, dynamodb: Any) -> None:
    alice, bob = connect("alice"), connect("bob")
    for member in (alice, bob):
        member.request({"action": "joinRoom", "room": "r"})
    before = table_items(services, dynamodb)
    alice.send({"action": "typing", "room": "r"})
    assert table_items(services, dynamodb) == before
    assert bob.request({"action": "history", "room": "r"})["messages"] == []


def test_a_refused_typing_notice_is_answered_without_an_id(
    client: WebsocketTestClient, token: Any, connect: Any
) -> None:
    reader = client.connect(query={"token": token("reader", rooms={"r": ["presence"]})})
    refused = reader.request({"action": "typing", "room": "r"})
    assert refused == {
        "type": "error", "code": "forbidden",
        "message": "typing needs the 'join' permission for room 'r'",
    }
    stranger = connect("stranger")
    assert stranger.request({"action": "typing", "room": "r"}) == {
        "type": "error", "code": "forbidden", "message": "join room 'r' before typing in it",
    }
    assert stranger.request({"action": "typing", "room": "no room!"})["code"] == "bad_request"
