"""Declared fields: each reader's values and refusals, and the parser a declaration makes."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.fields import (
    Boolean,
    Enum,
    Integer,
    Json,
    Reader,
    Room,
    Seq,
    Since,
    String,
    Text,
    UserId,
    check_names,
    parser,
)
from chalicelib.protocol import MAX_SEQ, Fields, Position, ProtocolError

LIMIT = 16


def read(reader: Reader, value: Any, name: str = "f") -> Any:
    frame = {} if value is ... else {name: value}
    return reader.read(Fields(frame, LIMIT), name)


def refusal(reader: Reader, value: Any, name: str = "f") -> tuple[str, str]:
    with pytest.raises(ProtocolError) as caught:
        read(reader, value, name)
    return caught.value.code, caught.value.message


@pytest.mark.parametrize(
    ("reader", "value", "expected"),
    [
        (String(), "hi", "hi"),
        (String(max_length=3, min_length=0), "", ""),
        (Text(), "é" * 8, "é" * 8),
        (Room(), "team-42:design", "team-42:design"),
        (UserId(), "alice", "alice"),
        (Integer(-5, 5), -5, -5),
        (Seq(), MAX_SEQ, MAX_SEQ),
        (Boolean(), False, False),
        (Enum("👍", "🎉"), "🎉", "🎉"),
        (Json(max_bytes=20), {"a": [1, 2]}, {"a": [1, 2]}),
        (Since(), {"epoch": "e", "seq": 0}, Position("e", 0)),
        (String(optional=True), ..., None),
        (Integer(optional=True), None, None),
    ],
)
def test_each_reader_reads_its_type(reader: Reader, value: Any, expected: Any) -> None:
    assert read(reader, value) == expected


@pytest.mark.parametrize(
    ("reader", "value", "code", "message"),
    [
        (String(), ..., "bad_request", "'f' is required"),
        (String(), 5, "bad_request", "'f' must be a string"),
        (String(max_length=3), "four", "bad_request", "'f' must be 1-3 characters"),
        (String(), "\ud800", "bad_request", "'f' is not valid Unicode"),
        (Text(), "", "bad_request", "'f' must not be empty"),
        (Text(), "x" * 17, "too_large", "'f' is 17 bytes; the limit is 16 bytes"),
        (Room(), "no spaces", "bad_request",
         "'f' must be 1-64 characters of letters, digits and _ . : -"),
        (UserId(), "u" * 129, "bad_request", "'f' must be 1-128 characters"),
        (Integer(0, 9), 10, "bad_request", "'f' must be an integer from 0 to 9"),
        (Integer(0, 9), True, "bad_request", "'f' must be an integer from 0 to 9"),
        (Seq(), 0, "bad_request", f"'f' must be an integer from 1 to {MAX_SEQ}"),
        (Boolean(), "yes", "bad_request", "'f' must be true or false"),
        (Enum("a", "b"), "c", "bad_request", "'f' must be one of a, b"),
        (Json(), [1], "bad_request", "'f' must be a JSON object"),
        (Json(max_bytes=8), {"key": "value"}, "too_large", "'f' is 15 bytes; the limit is 8 bytes"),
        (Json(), {"k": "\udfff"}, "bad_request", "'f' is not valid Unicode"),
        (Since(), {"epoch": "e"}, "bad_request", "'f' must be {\"epoch\""),
    ],
)
def test_each_reader_names_the_field_it_refuses(
    reader: Reader, value: Any, code: str, message: str
) -> None:
    found = refusal(reader, value)
    assert found[0] == code
    assert found[1].startswith(message)


def test_a_parser_reads_the_declared_fields_and_ignores_the_rest() -> None:
    parse = parser({"room": Room(), "x": Integer(0, 100), "note": String(optional=True)})
    frame = {"action": "cursor", "id": "1", "room": "doc", "x": 7, "extra": "ignored"}
    assert parse(Fields(frame, LIMIT)) == {"room": "doc", "x": 7, "note": None}


@pytest.mark.parametrize("name", ["id", "action", "not-an-identifier", "class", "1x"])
def test_a_declaration_names_fields_a_handler_can_take(name: str) -> None:
    with pytest.raises(TypeError, match="must be a Python identifier"):
        check_names({name: String()})


def test_a_declaration_uses_readers() -> None:
    with pytest.raises(TypeError, match="with a reader"):
        check_names({"x": int})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="at least one string"):
        Enum()
