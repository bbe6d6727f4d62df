"""Stored items that cannot be read: the only code that decides so, skips them and says so.

A read that meets one item it cannot decode — a string that is not valid
Unicode (a lone surrogate stored before every boundary checked for it), an
attribute missing or of the wrong type — must not fail for everyone who reads
the same room or stream. :func:`each` decodes items one by one and leaves such
an item out; :func:`one` answers None for it. Each one skipped is logged (its
key only, never its content) and counted in the ``UnreadableItems`` metric, so
an operator can find and delete it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from chalicelib import metrics

logger = logging.getLogger("switchboard.reads")

T = TypeVar("T")
Item = dict[str, Any]


def each(items: Iterable[Item], decode: Callable[[Item], T], where: str) -> list[T]:
    """Every item decoded, leaving out (logged, counted) those that cannot be read."""
    decoded: list[T] = []
    for item in items:
        value = one(item, decode, where)
        if value is not None:
            decoded.append(value)
    return decoded


def one(item: Item, decode: Callable[[Item], T], where: str) -> T | None:
    """The item decoded, or None (logged, counted) when it cannot be read."""
    try:
        if not _valid(item):
            raise ValueError("a string that is not valid Unicode")
        return decode(item)
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as error:
        key = (item.get("PK", {}).get("S"), item.get("SK", {}).get("S"))
        logger.error("skipped an unreadable item %s in %s: %s", ascii(key), where,
                     type(error).__name__ if not isinstance(error, ValueError) else error)
        metrics.record(metrics.UNREADABLE_ITEMS)
        return None


def _valid(value: Any) -> bool:
    """Whether every string in a DynamoDB-typed value (keys of maps included) is valid Unicode."""
    pending = [value]
    while pending:
        current = pending.pop()
        if isinstance(current, str):
            try:
                current.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(current, dict):
            pending.extend(current.keys())
            pending.extend(current.values())
        elif isinstance(current, list):
            pending.extend(current)
    return True
