"""Hostile frames: anything a client can send gets exactly one well-formed answer.

(A notice carried out without an ``id`` is the one frame answered by nothing.)

Anyone on the internet can open a socket and send anything. These properties
drive the real message handler (through the in-process client, Chalice's
wrapper included) with text built to break parsers — random bytes decoded,
deep JSON, huge numbers, wrong types, unicode edge cases, 128 KiB payloads,
duplicate keys — and hold that every frame gets exactly one ``ack``/result/
``error`` answer, no handler raises, no hostile frame is an ``internal`` error,
and a rejected frame leaves the registry exactly as it was.

The 128 KiB bound is API Gateway's WebSocket message payload quota
(https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html#apigateway-execution-service-websocket-limits-table),
which its management API enforces on posts with 413 ``PayloadTooLargeException``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chalicelib.actions import ACTION_NAMES as ACTIONS
from chalicelib.actions import table
from chalicelib.extend import NOTICE
from chalicelib.protocol import MAX_ID_LENGTH
from chalicelib.registry import connection_key, membership_key, presence_key
from chalicelib.runtime import Services
from tests.chalicelib.conftest import (
    ACK_FIELDS,
    ANSWER_TYPES,
    ERROR_CODES,
    NOTICE_TYPES,
    table_items,
)

pytestmark = pytest.mark.engines("moto")

FRAMES_PER_PROPERTY = 250
KIB_128 = 128 * 1024

UNICODE_EDGES = [
    "\u0000", "\ufeff", "\u202e", "\u200d", "\uffff", "\U0010ffff", "e\u0301",
    "\U0001f469\u200d\U0001f469\u200d\U0001f467", "\ud800", "\udfff", "\ud83d", "\u2028",
    "\\", '"', "\x7f",
]
# Strings shaped like the registry's own keys (read from it, never spelled here).
_CONN = connection_key("x")
KEY_LIKE = [
    "#", _CONN["PK"]["S"].removesuffix("x"), membership_key("lobby", "x")["PK"]["S"],
    presence_key("lobby", "alice")["SK"]["S"], connection_key("abc=")["PK"]["S"],
    "lobby#" + _CONN["PK"]["S"], _CONN["SK"]["S"],
]

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats()
    | st.text(max_size=40) | st.sampled_from(UNICODE_EDGES + KEY_LIKE)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)
positions = st.fixed_dictionaries(
    {"epoch": st.text(max_size=70) | json_values, "seq": st.integers(-2, 2**60) | json_values},
    optional={"extra": json_values},
)
field_values = json_values | positions | st.text(min_size=1, max_size=80) | st.sampled_from(
    ["lobby", "a" * 64, "a" * 65, "x" * (MAX_ID_LENGTH + 1), "bob", "", " "]
)
actions = st.sampled_from(ACTIONS) | st.text(max_size=12) | json_values

object_frames = st.fixed_dictionaries(
    {"action": actions},
    optional={
        name: field_values
        for name in (
            "id", "room", "text", "targetUserId", "from", "since", "beforeSeq", "limit", "after",
        )
    },
).map(json.dumps)
raw_bytes = st.binary(max_size=256).map(lambda data: data.decode("utf-8", errors="replace"))
raw_text = st.text(
    alphabet=st.characters(codec=None, exclude_categories=()), max_size=256
)
deep_json = st.tuples(st.integers(1, 60_000), st.sampled_from(["[", '{"a":'])).map(
    lambda spec: spec[1] * spec[0] + "1" + ("]" if spec[1] == "[" else "}") * spec[0]
)
huge_numbers = st.sampled_from(
    ["9" * 5000, "1e999999", "-1e999999", "1" + "0" * 400, "NaN", "-Infinity", "1E400"]
).flatmap(
    lambda number: st.sampled_from([
        number,
        f'{{"action":"ping","id":{number}}}',
        f'{{"action":"joinRoom","room":{number}}}',
        f'{{"action":"sendMessage","targetUserId":{number},"text":"x"}}',
    ])
)
duplicate_keys = st.tuples(st.sampled_from(ACTIONS), st.sampled_from(ACTIONS)).map(
    lambda pair: f'{{"action":"{pair[0]}","id":"d","action":"{pair[1]}"}}'
)

hostile_frames = st.one_of(
    object_frames, raw_bytes, raw_text, deep_json, huge_numbers, duplicate_keys
)


def big_frames() -> list[str]:
    """128 KiB in every field a client controls, and as plain junk."""
    blob = "x" * KIB_128
    return [
        json.dumps({"action": "sendMessage", "targetUserId": "bob", "text": blob, "id": "big"}),
        json.dumps({"action": "sendToRoom", "room": "lobby", "text": blob}),
        json.dumps({"action": "broadcastAll", "text": blob}),
        json.dumps({"action": "joinRoom", "room": blob}),
        json.dumps({"action": "ping", "id": blob}),
        json.dumps({"action": blob}),
        blob,
        "[" * KIB_128,
        json.dumps({"action": "sendMessage", "targetUserId": "b" * KIB_128, "text": "x"}),
    ]


def test_a_128_kib_unknown_field_is_ignored(alice: Any) -> None:
    """Unknown fields are ignored, however large: the answer is still one small pong."""
    assert alice.request(json.dumps({"action": "ping", "x" * KIB_128: 1})) == {"type": "pong"}


def quiet_notice(body: str) -> bool:
    """A frame of a notice action without an id: carried out, it is answered by nothing."""
    try:
        frame = json.loads(body)
    except (ValueError, RecursionError):
        return False
    notices = {name for name, action in table().items() if action.kind == NOTICE}
    return isinstance(frame, dict) and frame.get("action") in notices and "id" not in frame


def check_answer(body: str, frames: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Exactly one answer among the frames the sender got, and it is well formed; None for
    a notice without an id that was carried out."""
    answers = [frame for frame in frames if frame.get("type") not in NOTICE_TYPES]
    if not answers and quiet_notice(body):
        return None
    assert len(answers) == 1, (body[:200], frames)
    [answer] = answers
    assert answer["type"] in ANSWER_TYPES, answer
    if answer["type"] == "error":
        assert set(answer) <= {"type", "code", "message", "id", "retryAfterMs"}, answer
        assert answer["code"] in ERROR_CODES
        assert answer["code"] != "internal", (body[:200], answer)
        assert isinstance(answer["message"], str) and answer["message"]
    elif answer["type"] == "ack":
        assert answer["action"] in ACTIONS
        assert set(answer) <= ACK_FIELDS
        assert isinstance(answer.get("delivered", 0), int)
    if "id" in answer:
        assert isinstance(answer["id"], str) and len(answer["id"]) <= MAX_ID_LENGTH
    return answer


def echoed_id(body: str) -> str | None:
    """The id a well-formed frame carries, which its answer must echo."""
    try:
        frame = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(frame, dict):
        return None
    request_id = frame.get("id")
    if isinstance(request_id, str) and len(request_id) <= MAX_ID_LENGTH:
        try:
            request_id.encode("utf-8")
        except UnicodeEncodeError:
            return None
        return request_id
    return None


@pytest.fixture
def alice(connect: Any) -> Any:
    """A connection in a room with a peer, so valid room frames do real work."""
    bob = connect("bob")
    bob.request({"action": "joinRoom", "room": "lobby"})
    alice = connect("alice")
    alice.request({"action": "joinRoom", "room": "lobby"})
    return alice


@given(body=hostile_frames)
@hypothesis_settings(max_examples=FRAMES_PER_PROPERTY)
@example(body="")
@example(body="null")
@example(body='{"action":"ping","id":"\\ud800"}')
@example(body='{"action":"sendMessage","targetUserId":"bob","text":"\\udfff"}')
@example(body=json.dumps({"action": "joinRoom", "room": KEY_LIKE[2]}))
@example(body='{"action":"sendToRoom","room":"lobby","text":"ok","id":"r"}')
@example(body='{"action":"typing","room":"lobby"}')
def test_every_frame_gets_one_answer_and_rejections_change_nothing(
    alice: Any, services: Services, dynamodb: Any, body: str
) -> None:
    before = table_items(services, dynamodb)
    answer = check_answer(body, alice.send(body))
    if answer is None:
        assert table_items(services, dynamodb) == before, body[:200]
        return
    expected_id = echoed_id(body)
    if expected_id is not None and answer["type"] != "error":
        assert answer.get("id") == expected_id
    if answer["type"] == "error":
        assert table_items(services, dynamodb) == before, body[:200]


@pytest.mark.parametrize("index", range(len(big_frames())))
def test_128_kib_frames_are_refused_cleanly(
    alice: Any, services: Services, dynamodb: Any, index: int
) -> None:
    body = big_frames()[index]
    before = table_items(services, dynamodb)
    answer = check_answer(body, alice.send(body))
    assert answer is not None and answer["type"] == "error"
    assert answer["code"] in {"too_large", "bad_request", "bad_json", "unknown_action"}
    assert len(json.dumps(answer).encode()) < 1024, "an error must not echo the payload"
    assert table_items(services, dynamodb) == before


@given(bodies=st.lists(hostile_frames, min_size=5, max_size=5))
@hypothesis_settings(max_examples=10)
def test_the_connection_stays_usable_after_any_sequence(alice: Any, bodies: list[str]) -> None:
    for body in bodies:
        check_answer(body, alice.send(body))
    assert alice.request({"action": "whoami", "id": "w"})["rooms"] == ["lobby"]
