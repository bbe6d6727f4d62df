"""Every function's one shape: the only code that turns an invocation into a handler call.

Each function in ``app.py`` is one call to :func:`run`, which

* binds the invocation's :class:`~chalicelib.invocation.Deadline` (so every AWS
  call beneath is bounded by it, see :mod:`chalicelib.invocation`),
* opens the event's structured log line (:mod:`chalicelib.logs`), written when
  the invocation ends however it ends,
* calls the handler with both (a :class:`Call`), then the work it held for
  after its answer (:func:`chalicelib.invocation.later`), and
* writes the invocation's metrics (:func:`chalicelib.metrics.flush`) last.

Handlers take their event, the :class:`Call` and the few objects they use, never
the container's whole set of services: ``app.py`` is the one place that picks
them out of :class:`chalicelib.runtime.Services`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from chalicelib import invocation, metrics
from chalicelib.invocation import Deadline
from chalicelib.logs import EventLog, logged_event

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """One invocation being handled: its deadline and its log line."""

    deadline: Deadline
    log: EventLog


def run(name: str, key: str, lambda_context: Any, handler: Callable[[Call], T]) -> T:
    """Handle one invocation of the function ``name`` (``key``: its connection id, or ``-``)."""
    try:
        with invocation.bound(lambda_context) as deadline, logged_event(name, key) as log:
            try:
                return handler(Call(deadline, log))
            finally:
                invocation.run_later()
    finally:
        metrics.flush()
