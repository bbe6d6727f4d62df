"""Rate limits: how they are written, counted and decided (the counters' keys are the
registry's).

A limit is text an action declares: ``"20/s"``, ``"600/min"``, ``"5/10s"``, with
``per user`` added to count every connection of the user together (``"600/min
per user"``); per connection otherwise. Frames are counted in fixed windows of
the limit's length (``20/s``: each wall-clock second), per action.

A *declared* limit is shared by every container through one counter item per
window::

    counter  PK=RATE#c#<connectionId> | RATE#u#<userId>
             SK=<action>#<window seconds>#<window index>
             n (frames counted in the window), ttl (the window's end, plus a minute)

Each admitted frame costs one ``UpdateItem`` (``ADD n 1``, returning the new
count): no read, no condition, so it never fails for being over. The frame whose
count is one over the limit is the window's first refusal, the one answered
``rate_limited`` when the frame is a notice. A container that saw the window
spent refuses the key's later frames in it without a request, so a flood costs
at most ``limit + 1`` writes per window and container, then nothing.

The stage's *default* limit (``DEFAULT_ACTION_RATE``), which every action that
declares none gets, is counted in the container's memory: it costs no request,
and one connection whose frames reach N containers at once gets up to N times
it. Declare a limit where that matters.

If the counter cannot be written (DynamoDB failing), the frame is admitted and
the failure logged: a limit must not take an action down with it.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.registry import rate_counter_key

logger = logging.getLogger("switchboard.ratelimit")

CONNECTION = "connection"
USER = "user"
TTL_ATTRIBUTE = "ttl"
TTL_MARGIN_SECONDS = 60
MAX_COUNT = 1_000_000
MAX_WINDOW_SECONDS = 86_400
LOCAL_CAPACITY = 10_000
"""Keys a container remembers before it forgets those of past windows."""

_UNITS = {"s": 1, "sec": 1, "second": 1, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
_UNIT_NAMES = {1: "second", 60: "minute", 3600: "hour"}
_RATE = re.compile(
    r"\s*(\d+)\s*/\s*(\d*)\s*([a-z]+?)s?\s*(?:per\s+(connection|user))?\s*", re.IGNORECASE
)


class RateError(ValueError):
    """A limit that cannot be read; the message says what is expected."""


@dataclass(frozen=True)
class Rate:
    """At most ``count`` frames per ``seconds``, counted per connection or per user."""

    count: int
    seconds: int
    per: str = CONNECTION

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``"20/s"``, ``"600/min"``, ``"5/10s"``, ``"1000/h per user"``."""
        found = _RATE.fullmatch(text) if isinstance(text, str) else None
        unit = _UNITS.get(found.group(3).lower()) if found else None
        if found is None or unit is None:
            raise RateError(
                f"a rate is '<count>/<unit>' with s, min or h as the unit, optionally "
                f"'per user' ('20/s', '600/min per user'), got {str(text)[:40]!r}"
            )
        count, times = int(found.group(1)), int(found.group(2) or 1)
        seconds = times * unit
        if not 1 <= count <= MAX_COUNT or not 1 <= seconds <= MAX_WINDOW_SECONDS:
            raise RateError(
                f"a rate counts 1 to {MAX_COUNT} frames in 1 s to 24 h, got {text.strip()!r}"
            )
        return cls(count, seconds, (found.group(4) or CONNECTION).lower())

    def __str__(self) -> str:
        unit = _UNIT_NAMES.get(self.seconds)
        window = f"per {unit}" if unit else f"per {self.seconds} seconds"
        return f"{self.count} {window} per {self.per}"


@dataclass(frozen=True)
class Verdict:
    """Whether a frame may be carried out; a refusal says when to try again."""

    admitted: bool
    first: bool = False
    """The window's first refusal (for this key; the one a notice is answered for)."""
    retry_after_ms: int = 0
    rate: Rate | None = None


ADMITTED = Verdict(True)


def counter_key(per: str, subject: str, action: str, seconds: int, window: int) -> dict[str, Any]:
    """The key of the counter of ``subject``'s (a connection's or a user's) frames."""
    return rate_counter_key(per == USER, subject, action, seconds, window)


class RateCounters:
    """The shared counters: one item per key and window, in the registry's table."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def add(self, rate: Rate, subject: str, action: str, window: int) -> int:
        """Count one frame in the window; returns the window's count so far (one ``UpdateItem``)."""
        response = self._client.update_item(
            TableName=self._table,
            Key=counter_key(rate.per, subject, action, rate.seconds, window),
            UpdateExpression="SET #ttl = :ttl ADD n :one",
            ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":ttl": {"N": str((window + 1) * rate.seconds + TTL_MARGIN_SECONDS)},
            },
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["n"]["N"])


_Key = tuple[str, str, str, int]
"""(per, subject, action, window seconds)"""


class RateLimiter:
    """A container's judge of every frame's rate: shared counters for declared limits,
    its own memory for the stage's default."""

    def __init__(
        self,
        counters: RateCounters | None,
        default: Rate | None,
        clock: Callable[[], float] = time.time,
        capacity: int = LOCAL_CAPACITY,
    ) -> None:
        self._counters = counters
        self.default = default
        self._clock = clock
        self._capacity = capacity
        self._lock = threading.Lock()
        self._counted: dict[_Key, tuple[int, int]] = {}
        """Frames counted here: (window, count), for the default limit."""
        self._spent: dict[_Key, int] = {}
        """Windows this container saw spent on the shared counter."""

    def admit(
        self, action: str, declared: Rate | None, connection_id: str, user_id: str
    ) -> Verdict:
        """Judge one frame of ``action``: under its declared limit, or else the default."""
        rate = declared or self.default
        if rate is None:
            return ADMITTED
        subject = user_id if rate.per == USER else connection_id
        key = (rate.per, subject, action, rate.seconds)
        now = self._clock()
        window = int(now // rate.seconds)
        if declared is not None and self._counters is not None:
            count = self._shared(key, rate, window)
        else:
            count = self._local(key, window)
        if count is None or count <= rate.count:
            return ADMITTED
        retry_after_ms = max(1, math.ceil(((window + 1) * rate.seconds - now) * 1000))
        return Verdict(False, count == rate.count + 1, retry_after_ms, rate)

    def _shared(self, key: _Key, rate: Rate, window: int) -> int | None:
        """The window's count with this frame; past the limit without a request when known."""
        with self._lock:
            if self._spent.get(key) == window:
                return rate.count + 2  # spent, and its first refusal was someone else's
        assert self._counters is not None
        try:
            count = self._counters.add(rate, key[1], key[2], window)
        except Exception as error:
            logger.warning("rate counter of %s unavailable (%s); frame admitted",
                           key[2], type(error).__name__)
            return None
        if count > rate.count:
            with self._lock:
                self._remember(self._spent, key, window)
        return count

    def _local(self, key: _Key, window: int) -> int:
        with self._lock:
            seen, count = self._counted.get(key, (window, 0))
            count = count + 1 if seen == window else 1
            self._remember(self._counted, key, (window, count))
            return count

    def _remember(self, memory: dict[_Key, Any], key: _Key, value: Any) -> None:
        """Keep ``value``; past capacity, forget first every key of a window that is over."""
        if key not in memory and len(memory) >= self._capacity:
            now = self._clock()
            for old in [k for k, v in memory.items() if _window_of(v) < int(now // k[3])]:
                del memory[old]
            if len(memory) >= self._capacity:
                memory.clear()
        memory[key] = value


def _window_of(value: int | tuple[int, int]) -> int:
    return value[0] if isinstance(value, tuple) else value
