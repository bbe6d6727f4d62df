"""Declared fields: the typed readers an action names its frame's fields with.

An action declares its fields as names and readers::

    fields={"room": Room(), "seq": Seq(), "emoji": Enum("👍", "🎉"),
            "note": String(max_length=200, optional=True)}

and :func:`parser` turns the declaration into the action's parser: each declared
field is read and checked (a missing, mistyped or out-of-range one answers
``bad_request``, an over-long text ``too_large``, both naming the field), an
optional one that is absent (or ``null``) reads as ``None``, and fields the
declaration does not name are ignored. The handler gets the values as keyword
arguments of the same names. Nothing here does I/O.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.protocol import (
    BAD_REQUEST,
    MAX_SEQ,
    TOO_LARGE,
    Fields,
    Position,
    ProtocolError,
    check_data,
    json_bytes,
)

RESERVED = frozenset({"action", "id"})
"""Frame keys every frame has already: no action declares them."""
DEFAULT_JSON_BYTES = 4096


@dataclass(frozen=True)
class Reader:
    """Reads one field; ``optional``: absent (or ``null``) is ``None``."""

    optional: bool = field(default=False, kw_only=True)

    def read(self, fields: Fields, name: str) -> Any:
        if fields.value(name) is None:
            if self.optional:
                return None
            raise ProtocolError(BAD_REQUEST, f"'{name}' is required")
        return self.check(fields, name)

    def check(self, fields: Fields, name: str) -> Any:
        """Read a field that is present."""
        raise NotImplementedError


@dataclass(frozen=True)
class String(Reader):
    """A string of ``min_length`` to ``max_length`` characters."""

    max_length: int = 256
    min_length: int = 1

    def check(self, fields: Fields, name: str) -> str:
        value = fields.string(name)
        if not self.min_length <= len(value) <= self.max_length:
            raise ProtocolError(
                BAD_REQUEST,
                f"'{name}' must be {self.min_length}-{self.max_length} characters",
            )
        return value


@dataclass(frozen=True)
class Text(Reader):
    """A message text: not empty, at most the stage's ``MAX_TEXT_BYTES`` (``too_large``)."""

    def check(self, fields: Fields, name: str) -> str:
        return fields.text(name)


@dataclass(frozen=True)
class Room(Reader):
    """A room name; the field an action's permissions are checked in when it is ``room``."""

    def check(self, fields: Fields, name: str) -> str:
        return fields.room(name)


@dataclass(frozen=True)
class UserId(Reader):
    """A user id: 1-128 characters."""

    def check(self, fields: Fields, name: str) -> str:
        return fields.user_id(name)


@dataclass(frozen=True)
class Integer(Reader):
    """A JSON integer from ``low`` to ``high`` (``true`` is not one)."""

    low: int = 0
    high: int = MAX_SEQ

    def check(self, fields: Fields, name: str) -> int:
        value = fields.optional_integer(name, self.low, self.high)
        assert value is not None
        return value


@dataclass(frozen=True)
class Seq(Integer):
    """A message's ``seq`` in its stream: an integer from 1."""

    low: int = 1


@dataclass(frozen=True)
class Boolean(Reader):
    def check(self, fields: Fields, name: str) -> bool:
        value = fields.value(name)
        if not isinstance(value, bool):
            raise ProtocolError(BAD_REQUEST, f"'{name}' must be true or false")
        return value


@dataclass(frozen=True, init=False)
class Enum(Reader):
    """One of the given strings."""

    choices: tuple[str, ...] = ()

    def __init__(self, *choices: str, optional: bool = False) -> None:
        if not choices or not all(isinstance(c, str) for c in choices):
            raise TypeError("Enum needs at least one string to choose from")
        object.__setattr__(self, "optional", optional)
        object.__setattr__(self, "choices", choices)

    def check(self, fields: Fields, name: str) -> str:
        value = fields.string(name)
        if value not in self.choices:
            raise ProtocolError(
                BAD_REQUEST, f"'{name}' must be one of {', '.join(self.choices)}"[:300]
            )
        return value


@dataclass(frozen=True)
class Json(Reader):
    """A JSON object of at most ``max_bytes`` (UTF-8, as compact JSON)."""

    max_bytes: int = DEFAULT_JSON_BYTES

    def check(self, fields: Fields, name: str) -> dict[str, Any]:
        value = fields.value(name)
        if not isinstance(value, dict):
            raise ProtocolError(BAD_REQUEST, f"'{name}' must be a JSON object")
        check_data(value, name)
        size = json_bytes(value)
        if size > self.max_bytes:
            raise ProtocolError(
                TOO_LARGE, f"'{name}' is {size} bytes; the limit is {self.max_bytes} bytes"
            )
        return value


@dataclass(frozen=True)
class Since(Reader):
    """A stream position the client has seen: ``{"epoch", "seq"}``, as messages carry."""

    def check(self, fields: Fields, name: str) -> Position:
        position = fields.since(name)
        assert position is not None
        return position


Values = dict[str, Any]


def check_names(declared: Mapping[str, Reader]) -> None:
    """Refuse a declaration a handler could not take; raises ``TypeError``."""
    for name, reader in declared.items():
        if not name.isidentifier() or keyword.iskeyword(name) or name in RESERVED:
            raise TypeError(
                f"field name {name!r} must be a Python identifier other than "
                f"{', '.join(sorted(RESERVED))} (it is the handler's keyword argument)"
            )
        if not isinstance(reader, Reader):
            raise TypeError(f"field {name!r} must be declared with a reader such as String()")


def parser(declared: Mapping[str, Reader]) -> Callable[[Fields], Values]:
    """The parser of an action with these fields: the values by name."""
    check_names(declared)
    readers = dict(declared)

    def parse(fields: Fields) -> Values:
        return {name: reader.read(fields, name) for name, reader in readers.items()}

    return parse
