"""The client's tunables, checked once, and the backoff they define.

Defaults are chosen for API Gateway: it closes a socket after 10 idle minutes
and after 2 hours, refuses a handshake with 429 under load, accepts messages
of at most 128 KiB and times an integration out after 29 seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Options:
    """Every duration is in seconds."""

    backoff_base: float = 0.5
    """Full-jitter backoff: attempt n waits a random time in [0, min(cap, base * 2**(n-1)))."""
    backoff_cap: float = 30.0
    """The longest wait between two attempts."""
    heartbeat_interval: float = 240.0
    """Send a ``ping`` after this long without sending anything (API Gateway: 10 idle minutes)."""
    heartbeat_timeout: float = 15.0
    """A ``ping`` unanswered this long means the connection is dead: reconnect."""
    max_connection_age: float = 6600.0
    """Reconnect (planned, without delay) after this long (API Gateway closes at 2 hours)."""
    request_timeout: float = 30.0
    """How long a request may wait for a connection plus its answer."""
    connect_timeout: float | None = 60.0
    """How long :meth:`Client.connect` keeps trying before it gives up (``None``: forever)."""
    open_timeout: float = 15.0
    """One handshake attempt."""
    close_timeout: float = 2.0
    """How long a close waits for the other side's close frame."""
    gap_timeout: float = 2.0
    """Hold a message that arrived ahead of a missing ``seq`` this long, then fetch the gap."""
    fill_limit: int = 1000
    """At most this many messages are fetched with ``history`` to fill a gap or a recovery the
    server declined (``recovered: false``); beyond it, ``recovery_failed``. 0: never fetch."""
    max_message_bytes: int = 128 * 1024
    """Frames larger than this are refused before sending (API Gateway closes with 1009)."""

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if value is None and spec.name == "connect_timeout":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"Options.{spec.name} must be a number, not {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"Options.{spec.name} must be a finite number >= 0: {value!r}")
        for name in ("heartbeat_interval", "heartbeat_timeout", "request_timeout", "open_timeout"):
            if getattr(self, name) == 0:
                raise ValueError(f"Options.{name} must be greater than 0")
        if self.backoff_cap < self.backoff_base:
            raise ValueError("Options.backoff_cap must not be smaller than backoff_base")

    def backoff(self, attempt: int, random: Callable[[], float]) -> float:
        """The wait before reconnection attempt ``attempt`` (1, 2, ...): full jitter."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2.0 ** min(attempt - 1, 62))
        return ceiling * random()
