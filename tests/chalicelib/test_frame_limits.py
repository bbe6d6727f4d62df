"""Every answer fits a frame, and every frame is answered: sizes judged as rendered.

API Gateway refuses a post over 128 KiB (413) and the frame is lost. JSON
escapes make a frame's rendered size differ from its text's: a ``\\u0001`` is
one byte of UTF-8 and six once escaped. These tests replay what an attacker
(and plain large messages) did to streams, history pages and presence answers,
through the app's real handlers, on both engines.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib import protocol
from chalicelib.protocol import HISTORY_PAGE_LIMIT, MAX_FRAME_BYTES, Message
from chalicelib.runtime import Services
from chalicelib.streams import Stream
from switchboard_local.testing import TestConnection, WebsocketTestClient
from tests.chalicelib.conftest import table_items

ESCAPES = 21_837
"""``\u0001`` escapes of the reported 131,072-byte inbound frame: 21,841 bytes of UTF-8 once
decoded, under every check of the text, but 131,157 bytes rendered as a message."""


def escape_frame(**fields: Any) -> str:
    """A frame of at most 128 KiB whose text is as many ``\u0001`` escapes as fit."""
    overhead = len(json.dumps({**fields, "text": ""}, separators=(",", ":")))
    body = json.dumps({**fields, "text": "\u0001" * ((131_072 - overhead) // 6)},
                      separators=(",", ":"))
    assert len(body.encode()) <= 131_072 and len(json.loads(body)["text"]) > 21_800
    return body


def answered(connection: TestConnection, frame: dict[str, Any] | str) -> dict[str, Any]:
    """The one answer (anything else posted meanwhile is a notice or a replay)."""
    frames = connection.send(frame)
    answers = [f for f in frames if f["type"] not in ("message", "presence", "occupancy")]
    assert len(answers) == 1, frames
    return answers[0]


def history_at_every_limit(reader: TestConnection, **fields: Any) -> list[dict[str, Any]]:
    pages = []
    for limit in range(1, HISTORY_PAGE_LIMIT + 1):
        page = answered(reader, {"action": "history", "limit": limit, **fields})
        assert page["type"] == "history", page
        pages.append(page)
    return pages


def test_an_escape_expanded_direct_message_is_refused_and_not_stored(
    connect: Any, services: Services, dynamodb: Any
) -> None:
    mallory, bob = connect("mallory"), connect("bob")
    bob.send({"action": "sendMessage", "targetUserId": "bob", "text": "before"})
    position = bob.request({"action": "resume"})
    before = table_items(services, dynamodb)
    refused = answered(mallory, escape_frame(action="sendMessage", targetUserId="bob", id="x"))
    assert refused["type"] == "error" and refused["code"] == "too_large", refused
    assert refused["id"] == "x" and len(json.dumps(refused)) < 1024
    assert table_items(services, dynamodb) == before  # nothing stored, nothing numbered
    assert bob.new_frames() == []
    # bob's stream answers at every limit, and recovery still recovers.
    assert all(page["messages"][-1]["text"] == "before" for page in history_at_every_limit(bob))
    since = {"epoch": position["epoch"], "seq": position["seq"]}
    assert answered(bob, {"action": "resume", "since": since})["recovered"] is True


def test_an_escape_expanded_room_message_is_refused_and_not_stored(
    connect: Any, services: Services, dynamodb: Any
) -> None:
    mallory = connect("mallory")
    mallory.request({"action": "joinRoom", "room": "r"})
    alice = connect("alice")
    joined = alice.request({"action": "joinRoom", "room": "r"})
    before = table_items(services, dynamodb)
    refused = answered(mallory, escape_frame(action="sendToRoom", room="r"))
    assert refused["code"] == "too_large"
    assert table_items(services, dynamodb) == before
    history_at_every_limit(alice, room="r")
    since = {"epoch": joined["epoch"], "seq": joined["seq"]}
    rejoined = answered(alice, {"action": "joinRoom", "room": "r", "since": since})
    assert rejoined["recovered"] is True


def test_a_broadcast_that_would_not_fit_is_refused(connect: Any) -> None:
    admin = connect("root", "admin")
    assert answered(admin, escape_frame(action="broadcastAll"))["code"] == "too_large"


def test_four_32_kib_messages_page_by_bytes(connect: Any) -> None:
    """Each fits; together they are over a frame: the default page keeps what fits."""
    alice = connect("alice")
    alice.request({"action": "joinRoom", "room": "r"})
    for n in range(4):
        ack = alice.request({"action": "sendToRoom", "room": "r", "text": str(n) * 32_768})
        assert ack["type"] == "ack", ack
    seen: list[int] = []
    page = answered(alice, {"action": "history", "room": "r"})
    while True:
        assert len(json.dumps(page, ensure_ascii=False).encode()) <= MAX_FRAME_BYTES
        seen = [m["seq"] for m in page["messages"]] + seen
        if not page["hasMore"]:
            break
        page = answered(alice, {"action": "history", "room": "r",
                                "beforeSeq": page["messages"][0]["seq"]})
    assert seen == [1, 2, 3, 4]
    assert len(history_at_every_limit(alice, room="r")) == HISTORY_PAGE_LIMIT


def test_a_message_stored_before_sizes_were_rendered_blocks_no_page(
    connect: Any, services: Services
) -> None:
    """One already in a stream (an older version let it in) is left out of every page."""
    alice = connect("alice")
    alice.send({"action": "sendMessage", "targetUserId": "alice", "text": "older"})
    assert services.streams is not None
    services.streams.append(
        Stream.of_user("alice"), Message("mallory", "\u0001" * ESCAPES, "2025-01-01T00:00:00Z")
    )
    alice.send({"action": "sendMessage", "targetUserId": "alice", "text": "newer"})
    alice.new_frames()
    for page in history_at_every_limit(alice):
        assert "mallory" not in {m["from"] for m in page["messages"]}
    assert [m["text"] for m in answered(alice, {"action": "history"})["messages"]] == [
        "older", "newer",
    ]


def test_presence_of_a_room_too_large_for_one_frame_is_paged(
    connect: Any, services: Services
) -> None:
    """200 users whose 128-character ids each render as 6-byte escapes: about 160 KB of
    members, so one answer could not carry them; pages of at most 100 can."""
    users = [f"{index:03d}".rjust(128, "\u0001") for index in range(200)]
    for user in users:
        connection = services.registry.add_connection(f"c{user[-3:]}", user, [], "https://x/a")
        services.registry.join_room(connection, "big", presence=False)
    asker = connect("asker")
    listed: list[str] = []
    request: dict[str, Any] = {"action": "presence", "room": "big", "id": "p"}
    pages = 0
    while True:
        page = answered(asker, request)
        pages += 1
        assert page["type"] == "members", page
        assert len(json.dumps(page, ensure_ascii=False).encode()) <= MAX_FRAME_BYTES
        listed += [m["userId"] for m in page["members"]]
        if "next" not in page:
            break
        request = {**request, "after": page["next"]}
    assert listed == sorted(users) and pages == 2
    small = answered(asker, {"action": "presence", "room": "big", "limit": 7})
    assert len(small["members"]) == 7 and small["next"] == small["members"][-1]["userId"]


def test_an_answer_over_a_frame_becomes_a_small_error(
    connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = connect("alice")
    monkeypatch.setattr(protocol, "pong", lambda request_id: "x" * (MAX_FRAME_BYTES + 1))
    answer = alice.request({"action": "ping", "id": "big"})
    assert answer["type"] == "error" and answer["code"] == "too_large"
    assert answer["id"] == "big"


def test_an_answer_api_gateway_still_refuses_with_413_is_replaced_not_dropped(
    connect: Any, client: WebsocketTestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should the limits disagree, the 413 itself is answered: one small error frame."""
    alice = connect("alice")
    huge = json.dumps({"type": "pong", "pad": "x" * MAX_FRAME_BYTES})
    monkeypatch.setattr(protocol, "pong", lambda request_id: huge)
    monkeypatch.setattr(protocol, "fitting", lambda frame, what, limit=0: frame)
    posts = client.emulator.posts
    answer = alice.request({"action": "ping", "id": "p"})
    assert answer == {
        "type": "error", "code": "too_large", "id": "p",
        "message": "the answer was too large for one frame",
    }
    assert client.emulator.posts == posts + 2  # the refused answer, then the error

