"""Frame parsing and rendering, without I/O."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from chalicelib import indicators, protocol
from chalicelib.actions import ACTION_NAMES, PARSERS
from chalicelib.protocol import (
    BroadcastAll,
    History,
    JoinRoom,
    LeaveRoom,
    Message,
    Ping,
    Position,
    Presence,
    ProtocolError,
    Resume,
    SendMessage,
    SendToRoom,
    WhoAmI,
    parse_request,
)

LIMIT = 32


def parse(frame: object) -> protocol.Request:
    body = frame if isinstance(frame, str) else json.dumps(frame)
    return parse_request(body, LIMIT, PARSERS)


def error_of(frame: object) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        parse(frame)
    return caught.value


@pytest.mark.parametrize(
    ("frame", "command"),
    [
        ({"action": "sendMessage", "targetUserId": "bob", "text": "hi"}, SendMessage("bob", "hi")),
        ({"action": "joinRoom", "room": "a.b:c-d_1"}, JoinRoom("a.b:c-d_1")),
        ({"action": "leaveRoom", "room": "lobby"}, LeaveRoom("lobby")),
        ({"action": "sendToRoom", "room": "lobby", "text": "yo"}, SendToRoom("lobby", "yo")),
        ({"action": "sendToRoom", "room": "lobby", "text": "yo", "replyTo": 4},
         SendToRoom("lobby", "yo", 4)),
        ({"action": "broadcastAll", "text": "all"}, BroadcastAll("all")),
        ({"action": "whoami"}, WhoAmI()),
        ({"action": "ping"}, Ping()),
        ({"action": "joinRoom", "room": "r", "since": {"epoch": "e", "seq": 0}},
         JoinRoom("r", Position("e", 0))),
        ({"action": "joinRoom", "room": "r", "since": None}, JoinRoom("r")),
        ({"action": "presence", "room": "r"}, Presence("r")),
        ({"action": "history"}, History(None, None, 50)),
        ({"action": "history", "room": "r", "beforeSeq": 7, "limit": 100}, History("r", 7, 100)),
        ({"action": "resume"}, Resume()),
        ({"action": "resume", "since": {"epoch": "e" * 64, "seq": 2**53 - 1}},
         Resume(Position("e" * 64, 2**53 - 1))),
        ({"action": "typing", "room": "r"}, {"room": "r"}),
    ],
)
def test_each_action_parses_to_its_command(frame: dict[str, str], command: object) -> None:
    request = parse({**frame, "id": "r-1"})
    assert request.command == command
    assert request.action == frame["action"]
    assert request.request_id == "r-1"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("not json", "bad_json"),
        ("", "bad_json"),
        ("[1, 2]", "bad_json"),
        ('"text"', "bad_json"),
        ("null", "bad_json"),
        ('{"action": "ping", "action": "whoami"}', "bad_json"),
        ("[" * 100_000 + "]" * 100_000, "bad_json"),
        ('{"action": "ping", "n": ' + "9" * 5000 + "}", "bad_json"),
        ("{}", "bad_request"),
        ('{"action": 7}', "bad_request"),
        ('{"action": "dance"}', "unknown_action"),
        ('{"action": "sendMessage", "text": "hi"}', "bad_request"),
        ('{"action": "sendMessage", "targetUserId": 5, "text": "hi"}', "bad_request"),
        ('{"action": "sendMessage", "targetUserId": "", "text": "hi"}', "bad_request"),
        ('{"action": "sendMessage", "targetUserId": "b", "text": ""}', "bad_request"),
        ('{"action": "sendMessage", "targetUserId": "b", "text": ["x"]}', "bad_request"),
        ('{"action": "sendMessage", "targetUserId": "b", "text": "\\ud800"}', "bad_request"),
        ('{"action": "joinRoom"}', "bad_request"),
        ('{"action": "joinRoom", "room": "has space"}', "bad_request"),
        ('{"action": "joinRoom", "room": "a#x"}', "bad_request"),
        ('{"action": "joinRoom", "room": ""}', "bad_request"),
        ('{"action": "sendToRoom", "room": "r"}', "bad_request"),
        ('{"action": "broadcastAll"}', "bad_request"),
        ('{"action": "ping", "id": 5}', "bad_request"),
        ('{"action": "joinRoom", "room": "r", "since": 5}', "bad_request"),
        ('{"action": "joinRoom", "room": "r", "since": {}}', "bad_request"),
        ('{"action": "joinRoom", "room": "r", "since": {"epoch": "e"}}', "bad_request"),
        ('{"action": "joinRoom", "room": "r", "since": {"seq": 1}}', "bad_request"),
        ('{"action": "joinRoom", "room": "r", "since": {"epoch": "", "seq": 1}}', "bad_request"),
        ('{"action": "joinRoom", "room": "r", "since": {"epoch": 1, "seq": 1}}', "bad_request"),
        ('{"action": "joinRoom", "room": "r", "since": {"epoch": "e", "seq": -1}}',
         "bad_request"),
        ('{"action": "joinRoom", "room": "r", "since": {"epoch": "e", "seq": 1.5}}',
         "bad_request"),
        ('{"action": "joinRoom", "room": "r", "since": {"epoch": "e", "seq": true}}',
         "bad_request"),
        ('{"action": "joinRoom", "room": "r", "since": {"epoch": "e", "seq": "1"}}',
         "bad_request"),
        ('{"action": "joinRoom", "room": "r", "since": {"epoch": "e", "seq": 9007199254740992}}',
         "bad_request"),
        ('{"action": "resume", "since": {"epoch": "e", "seq": 1, "room": "r"}}', "bad_request"),
        ('{"action": "resume", "since": {"epoch": "\\ud800", "seq": 1}}', "bad_request"),
        ('{"action": "history", "limit": 0}', "bad_request"),
        ('{"action": "history", "limit": 101}', "bad_request"),
        ('{"action": "history", "limit": "5"}', "bad_request"),
        ('{"action": "history", "beforeSeq": 0}', "bad_request"),
        ('{"action": "sendToRoom", "room": "r", "text": "t", "replyTo": 0}', "bad_request"),
        ('{"action": "history", "room": "no room"}', "bad_request"),
        ('{"action": "presence"}', "bad_request"),
        ('{"action": "typing", "room": 5}', "bad_request"),
    ],
)
def test_bad_frames_get_the_right_error_code(body: str, code: str) -> None:
    assert error_of(body).code == code


def test_long_room_and_user_ids_are_refused() -> None:
    assert error_of({"action": "joinRoom", "room": "r" * 65}).code == "bad_request"
    assert parse({"action": "joinRoom", "room": "r" * 64}).command == JoinRoom("r" * 64)
    long_user = {"action": "sendMessage", "targetUserId": "u" * 129, "text": "x"}
    assert error_of(long_user).code == "bad_request"


def test_text_limit_counts_utf8_bytes() -> None:
    at_limit = parse({"action": "broadcastAll", "text": "a" * LIMIT})
    assert at_limit.command == BroadcastAll("a" * LIMIT)
    too_large = error_of({"action": "broadcastAll", "text": "é" * (LIMIT // 2 + 1)})
    assert too_large.code == "too_large"
    assert f"{LIMIT} bytes" in too_large.message


def test_the_request_id_is_kept_on_errors_found_after_it() -> None:
    error = error_of({"action": "joinRoom", "room": "bad room", "id": "abc"})
    assert error.request_id == "abc"
    assert error_of({"action": "dance", "id": "x"}).request_id == "x"


def test_an_over_long_id_is_refused_and_not_echoed() -> None:
    error = error_of({"action": "ping", "id": "i" * 65})
    assert error.code == "bad_request"
    assert error.request_id is None


def test_unknown_action_message_lists_the_actions() -> None:
    message = error_of({"action": "dance"}).message
    assert all(action in message for action in ACTION_NAMES)


def test_rendered_frames_have_the_documented_shapes() -> None:
    assert json.loads(protocol.ack("joinRoom", None)) == {"type": "ack", "action": "joinRoom"}
    assert json.loads(protocol.ack("sendMessage", "i", 2)) == {
        "type": "ack", "action": "sendMessage", "id": "i", "delivered": 2,
    }
    assert json.loads(protocol.error("bad_json", "nope", "i")) == {
        "type": "error", "code": "bad_json", "message": "nope", "id": "i",
    }
    assert json.loads(protocol.pong(None)) == {"type": "pong"}
    sent = Message("a", "t", "2024-01-01T00:00:00.000Z", "r")
    assert json.loads(protocol.message(sent)) == {
        "type": "message", "from": "a", "text": "t", "sentAt": "2024-01-01T00:00:00.000Z",
        "room": "r",
    }
    assert json.loads(protocol.broadcast("a", "t", "s")) == {
        "type": "broadcast", "from": "a", "text": "t", "sentAt": "s",
    }
    assert json.loads(protocol.whoami("c", "u", ["r"], None)) == {
        "type": "whoami", "connectionId": "c", "userId": "u", "rooms": ["r"],
    }


def test_a_long_epoch_is_refused() -> None:
    frame = {"action": "resume", "since": {"epoch": "e" * 65, "seq": 1}}
    assert error_of(frame).code == "bad_request"
    assert "since" in error_of(frame).message


def test_room_frames_carry_their_stream_position() -> None:
    position = Position("ep0ch", 7)
    sent = Message("a", "t", "s", "r", position)
    assert json.loads(protocol.message(sent)) == {
        "type": "message", "from": "a", "text": "t", "sentAt": "s", "room": "r",
        "seq": 7, "epoch": "ep0ch",
    }
    assert json.loads(protocol.ack("joinRoom", "j", room="r", position=position,
                                   recovered=True)) == {
        "type": "ack", "action": "joinRoom", "id": "j", "room": "r", "seq": 7, "epoch": "ep0ch",
        "recovered": True,
    }
    assert json.loads(protocol.ack("sendMessage", None, 0, stored=True)) == {
        "type": "ack", "action": "sendMessage", "delivered": 0, "stored": True,
    }


def test_history_members_presence_and_typing_frames() -> None:
    direct = Message("a", "t", "s", None, Position("e", 1))
    assert json.loads(protocol.history("h", None, "e", [direct], False)) == {
        "type": "history", "id": "h", "epoch": "e", "hasMore": False,
        "messages": [{"type": "message", "from": "a", "text": "t", "sentAt": "s",
                      "seq": 1, "epoch": "e"}],
    }
    assert json.loads(protocol.history(None, "r", "e", [], True))["room"] == "r"
    assert json.loads(protocol.members(None, "r", [("a", 2), ("b", 1)])) == {
        "type": "members", "room": "r",
        "members": [{"userId": "a", "connections": 2}, {"userId": "b", "connections": 1}],
    }
    assert json.loads(protocol.presence("r", "a", "join", "s")) == {
        "type": "presence", "room": "r", "userId": "a", "event": "join", "at": "s",
    }
    assert json.loads(protocol.error("rate_limited", "m", "i", retryAfterMs=5)) == {
        "type": "error", "code": "rate_limited", "message": "m", "retryAfterMs": 5, "id": "i",
    }
    assert json.loads(protocol.reply({"type": "cursor", "x": 1}, "c")) == {
        "type": "cursor", "x": 1, "id": "c",
    }


def test_a_structured_entry_renders_only_what_it_has() -> None:
    entry = Message(
        "a", None, "s", "r", Position("e", 3), kind="reaction", data={"emoji": "👍"},
        reply_to=2,
    )
    assert json.loads(protocol.message(entry)) == {
        "type": "message", "from": "a", "kind": "reaction", "data": {"emoji": "👍"},
        "replyTo": 2, "sentAt": "s", "room": "r", "seq": 3, "epoch": "e",
    }
    published = Message(None, None, "s", None, type="push", data=[1, "x"])
    assert json.loads(protocol.message(published)) == {
        "type": "push", "data": [1, "x"], "sentAt": "s",
    }


def test_an_annotated_entry_carries_its_summary_and_an_empty_one_none() -> None:
    annotated = Message("a", "t", "s", "r", Position("e", 3),
                        annotations={"reaction": {"👍": 2, "🎉": 1}})
    assert json.loads(protocol.message(annotated))["annotations"] == {
        "reaction": {"👍": 2, "🎉": 1},
    }
    assert "annotations" not in json.loads(protocol.message(Message("a", "t", "s", annotations={})))
def test_the_server_frame_types_are_every_type_this_module_renders() -> None:
    """A backend may not publish one of them; a new frame here must be added to the set."""
    # The built-in notices are declared as a team's are (chalicelib/indicators.py).
    source = "".join(Path(module.__file__).read_text() for module in (protocol, indicators))
    literal = set(re.findall(r'"type": "([A-Za-z_]+)"', source))
    assert literal - {"push"} | {protocol.MESSAGE} == protocol.SERVER_FRAME_TYPES


def test_the_frames_a_backend_sends_to_a_connection() -> None:
    position = protocol.Position("e1", 4)
    assert json.loads(protocol.subscribed("lobby", position)) == {
        "type": "subscribed", "room": "lobby", "seq": 4, "epoch": "e1"}
    assert json.loads(protocol.subscribed("lobby", None)) == {"type": "subscribed", "room": "lobby"}
    assert json.loads(protocol.unsubscribed("lobby", "kicked")) == {
        "type": "unsubscribed", "room": "lobby", "reason": "kicked"}
    assert json.loads(protocol.disconnect("bye", False)) == {
        "type": "disconnect", "reason": "bye", "reconnect": False}
    assert json.loads(protocol.ack("refresh", "r", expires_at=1800000000)) == {
        "type": "ack", "action": "refresh", "id": "r", "expiresAt": 1800000000}


# -- validators shared by every boundary, and the rendered-size rule ------------------------


@pytest.mark.parametrize("value", ["ev\ud800il", "\udfff", "a\ud83d"])
def test_lone_surrogates_are_refused_wherever_a_string_comes_in(value: str) -> None:
    for check in (
        lambda: protocol.check_user_id(value, "sub"),
        lambda: protocol.check_text(value, LIMIT),
        lambda: protocol.check_data({"k": [1, {"deep": value}]}),
        lambda: protocol.check_data({value: 1}),
    ):
        with pytest.raises(ProtocolError) as caught:
            check()
        assert caught.value.code == "bad_request"
        assert "not valid Unicode" in caught.value.message or "1-128" in caught.value.message
    frame = {"action": "presence", "room": "r", "after": value}
    assert error_of(frame).code == "bad_request"


def test_valid_unicode_of_every_plane_passes_the_validators() -> None:
    for value in ("\u0001", "\U0010ffff", "e\u0301", "\U0001f469\u200d\U0001f469"):
        assert protocol.check_user_id(value) == value
        assert protocol.check_data({value: [value]}) == {value: [value]}


def test_fitting_judges_the_rendered_bytes_escapes_included() -> None:
    text = "\u0001" * 21_837  # 21,837 bytes of UTF-8, 131,022 once escaped in JSON
    assert len(text.encode("utf-8")) < 32_768
    frame = protocol.message(Message("mallory", text, "2025-01-01T00:00:00.000Z"))
    assert protocol.frame_bytes(frame) > protocol.MAX_FRAME_BYTES
    with pytest.raises(ProtocolError) as caught:
        protocol.fitting(frame, "the message")
    assert caught.value.code == "too_large"
    assert str(protocol.frame_bytes(frame)) in caught.value.message
    small = protocol.pong(None)
    assert protocol.fitting(small, "the answer") is small


def test_a_storable_entry_fits_alone_in_the_largest_history_page() -> None:
    """Judged at the largest position, an entry at the limit still fits every frame it is in."""
    overhead = protocol.frame_bytes(protocol.message(
        Message("u", "", "2025-01-01T00:00:00.000Z", "r" * 64,
                Position("e" * protocol.MAX_EPOCH_LENGTH, protocol.MAX_SEQ))
    ))
    largest = Message("u", "x" * (protocol.STORED_ENTRY_BYTES - overhead),
                      "2025-01-01T00:00:00.000Z", "r" * 64)
    assert protocol.storable(largest) is largest
    with pytest.raises(ProtocolError):
        protocol.storable(dataclasses.replace(largest, text=largest.text + "x"))
    placed = largest.at("r" * 64, Position("e" * protocol.MAX_EPOCH_LENGTH, protocol.MAX_SEQ))
    page = protocol.history("\u0000" * protocol.MAX_ID_LENGTH, "r" * 64,
                            "e" * protocol.MAX_EPOCH_LENGTH, [placed], False)
    assert len(json.loads(page)["messages"]) == 1
    assert protocol.frame_bytes(page) <= protocol.MAX_FRAME_BYTES


@pytest.mark.parametrize("count", [1, 3, 4, 50, 100])
def test_a_history_page_keeps_the_newest_messages_that_fit(count: int) -> None:
    messages = [
        Message("u", "x" * 32_768, "2025-01-01T00:00:00.000Z", "r", Position("e", seq))
        for seq in range(1, count + 1)
    ]
    page = protocol.history("h", "r", "e", messages, has_more=False)
    answer = json.loads(page)
    kept = [m["seq"] for m in answer["messages"]]
    assert protocol.frame_bytes(page) <= protocol.MAX_FRAME_BYTES
    assert kept == list(range(count - len(kept) + 1, count + 1))  # the newest, oldest first
    assert len(kept) == min(count, 3)  # four of 32 KiB are over a frame
    assert answer["hasMore"] is (count > 3)


def test_a_message_too_large_for_any_page_is_left_out_not_blocking() -> None:
    poisoned = Message("m", "\u0001" * 21_837, "2025-01-01T00:00:00.000Z", "r", Position("e", 2))
    fine = [Message("u", "ok", "2025-01-01T00:00:00.000Z", "r", Position("e", seq))
            for seq in (1, 3)]
    answer = json.loads(protocol.history(None, "r", "e", [fine[0], poisoned, fine[1]], False))
    assert [m["seq"] for m in answer["messages"]] == [1, 3]


def test_the_largest_presence_page_fits_a_frame() -> None:
    """100 users whose ids are 128 characters that each render as a 6-byte escape."""
    users = [(f"\u0001{index:03d}".ljust(128, "\u0001"), 2**31) for index in range(100)]
    page = protocol.members("\u0000" * protocol.MAX_ID_LENGTH, "r" * 64, users, users[-1][0])
    assert protocol.frame_bytes(page) <= protocol.MAX_FRAME_BYTES
    assert json.loads(page)["next"] == users[-1][0]


def test_presence_takes_a_limit_and_an_after() -> None:
    assert parse({"action": "presence", "room": "r"}).command == Presence("r", 100, None)
    assert parse({"action": "presence", "room": "r", "limit": 5, "after": "bob"}).command == (
        Presence("r", 5, "bob")
    )
    for bad in ({"limit": 0}, {"limit": 101}, {"after": ""}, {"after": 7}):
        assert error_of({"action": "presence", "room": "r", **bad}).code == "bad_request"


def test_occupancy_frame_shape() -> None:
    assert json.loads(protocol.occupancy("r", 120, 131)) == {
        "type": "occupancy", "room": "r", "users": 120, "connections": 131,
    }
