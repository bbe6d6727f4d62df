"""The example action of docs/protocol.md ("Adding an action"): ``typing``, one table entry.

It needs the ``join`` permission (checked by the dispatcher from the table
entry, before the handler), reaches the room's other members and is not stored.
"""

from __future__ import annotations

from typing import Any

from chalicelib.actions import ACTIONS
from chalicelib.runtime import Services
from switchboard_local.testing import WebsocketTestClient
from tests.chalicelib.conftest import table_items


def test_typing_is_one_entry_of_the_action_table() -> None:
    [entry] = [action for action in ACTIONS if action.name == "typing"]
    assert list(entry.needs(object())) == ["join"]


def test_the_other_members_see_who_is_typing(connect: Any) -> None:
    alice, phone, laptop, outsider = connect("alice"), connect("bob"), connect("bob"), connect("x")
    for member in (alice, phone, laptop):
        member.request({"action": "joinRoom", "room": "r"})
    alice.new_frames()
    ack = alice.request({"action": "typing", "room": "r", "id": "t"})
    assert ack == {"type": "ack", "action": "typing", "id": "t", "delivered": 2}
    for device in (phone, laptop):
        assert device.new_frames()[-1] == {"type": "typing", "room": "r", "userId": "alice"}
    assert outsider.new_frames() == []


def test_typing_is_not_stored(connect: Any, services: Services, dynamodb: Any) -> None:
    alice, bob = connect("alice"), connect("bob")
    for member in (alice, bob):
        member.request({"action": "joinRoom", "room": "r"})
    before = table_items(services, dynamodb)
    alice.request({"action": "typing", "room": "r"})
    assert table_items(services, dynamodb) == before
    assert bob.request({"action": "history", "room": "r"})["messages"] == []


def test_typing_needs_the_join_permission_and_membership(
    client: WebsocketTestClient, token: Any, connect: Any
) -> None:
    reader = client.connect(query={"token": token("reader", rooms={"r": ["presence"]})})
    refused = reader.request({"action": "typing", "room": "r"})
    assert (refused["code"], refused["message"]) == (
        "forbidden", "typing needs the 'join' permission for room 'r'",
    )
    stranger = connect("stranger")
    assert stranger.request({"action": "typing", "room": "r"})["code"] == "forbidden"
