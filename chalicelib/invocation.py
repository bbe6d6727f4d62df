"""One Lambda invocation's time budget: the only code that reads the Lambda context's clock.

Every handler turns its context into a :class:`Deadline` once, and every piece
of work that can wait (a post retried after a 429, a queue record, a retried
batch write) asks it how much time is left before it starts, so an invocation
always answers before Lambda stops it. The deadline is also bound to the
running handler (:func:`bound`), so that AWS calls made deep inside it are
bounded too without passing it through every signature.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("switchboard.handlers")

DEFAULT_BUDGET_SECONDS = 25.0
"""The budget when there is no Lambda context (tests, scripts)."""
DEADLINE_RESERVE_SECONDS = 1.0
"""Time kept back from the Lambda's remaining time for answering and logging."""


@dataclass
class Deadline:
    """When an invocation must stop starting work, on the monotonic clock."""

    expires_at: float
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    @classmethod
    def for_invocation(cls, lambda_context: Any) -> Deadline:
        """The Lambda's remaining time less a reserve for answering and logging."""
        remaining_ms = getattr(lambda_context, "get_remaining_time_in_millis", None)
        if remaining_ms is None:
            return cls.after(DEFAULT_BUDGET_SECONDS)
        return cls.after(max(0.0, remaining_ms() / 1000 - DEADLINE_RESERVE_SECONDS))

    def remaining(self) -> float:
        return self.expires_at - self.clock()

    def shortened_by(self, seconds: float) -> Deadline:
        """The same clock, ``seconds`` earlier: time kept for work after this step."""
        return Deadline(self.expires_at - seconds, self.clock)

    def with_reserve(self) -> Deadline:
        """The same clock plus the reserve kept back for answering: for the answer alone.

        A handler whose work ran out of time still answers its caller — an
        unanswered client cannot tell a lost frame from a slow one.
        """
        return self.shortened_by(-DEADLINE_RESERVE_SECONDS)


_current: ContextVar[Deadline | None] = ContextVar("switchboard_deadline", default=None)
_later: ContextVar[list[Callable[[], None]] | None] = ContextVar(
    "switchboard_later", default=None
)


def current() -> Deadline | None:
    """The deadline of the invocation running on this thread, if a handler bound one."""
    return _current.get()


@contextmanager
def bound(lambda_context: Any) -> Iterator[Deadline]:
    """Bind the invocation's deadline for the handler's duration, for the data clients.

    Every handler enters this first: :mod:`chalicelib.aws` bounds each DynamoDB,
    SQS and SSM request by the deadline bound here, so a hung dependency ends
    in an answer before Lambda stops the invocation. A context variable, not a
    global: the local gateway runs many invocations on threads of one process.
    """
    deadline = Deadline.for_invocation(lambda_context)
    token = _current.set(deadline)
    tasks = _later.set([])
    try:
        yield deadline
    finally:
        _later.reset(tasks)
        _current.reset(token)


def later(task: Callable[[], None]) -> None:
    """Run ``task`` once the handler has returned (after its answer was posted), still
    inside the invocation; with no invocation bound, now.

    For work a caller should not wait for: a presence frame held back until
    its interval ends. A task that raises is logged, never fatal.
    """
    tasks = _later.get()
    if tasks is None:
        _run(task)
    else:
        tasks.append(task)


def run_later() -> None:
    """Run the tasks :func:`later` held for this invocation, in order (``entry.run`` calls it)."""
    tasks = _later.get() or []
    while tasks:
        _run(tasks.pop(0))


def _run(task: Callable[[], None]) -> None:
    try:
        task()
    except Exception:
        logger.exception("work held for after the answer failed")
