"""Push from outside a WebSocket handler: the ``push`` Lambda other services invoke.

The invocation event names one audience and the data::

    {"userId": "alice", "data": {...}}      every connection of one user
    {"room": "lobby", "data": {...}}        every member connection of a room
    {"all": true, "data": {...}}            every connection

``data`` (a JSON object) reaches clients wrapped in a ``push`` frame,
``{"type": "push", "data": {...}, "sentAt": "..."}``, so a client can tell it
from a message another client sent. The answer says what happened::

    {"ok": true, "delivered": 3, "queued": 0, "gone": 1, "failed": 0}
    {"ok": false, "error": "..."}            a request that can never succeed

A bad request is answered, not raised: an asynchronous invocation that raised
would be retried twice by Lambda for nothing ("Lambda retries function errors twice",
https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html).
Infrastructure errors (DynamoDB
unavailable, ...) do raise, so those retries can help. The audience is reached
as the server API's ``publish`` reaches it (:mod:`chalicelib.publish`), which
also stores, deduplicates and lets a backend choose the frame's type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib import protocol
from chalicelib.clock import iso8601
from chalicelib.entry import Call
from chalicelib.outbox import Outbox
from chalicelib.protocol import ProtocolError
from chalicelib.publish import Audience, Publisher

AUDIENCES = ("userId", "room", "all")


class PushError(ValueError):
    """An invocation that can never succeed; the message says why."""


@dataclass(frozen=True)
class PushRequest:
    named: str
    """Which of :data:`AUDIENCES` the event named."""
    audience: Audience
    data: dict[str, Any]


def parse(event: Any) -> PushRequest:
    if not isinstance(event, dict):
        raise PushError("the event must be a JSON object")
    named = [key for key in AUDIENCES if key in event]
    if len(named) != 1:
        raise PushError("name exactly one audience: 'userId', 'room' or 'all'")
    data = event.get("data")
    if not isinstance(data, dict):
        raise PushError("'data' must be a JSON object")
    try:
        audience = _audience(named[0], event[named[0]])
        protocol.check_data(data)
    except ProtocolError as error:
        raise PushError(error.message) from None
    return PushRequest(named[0], audience, data)


def _audience(named: str, value: Any) -> Audience:
    """The same rules as a client frame's (:mod:`chalicelib.protocol`'s validators)."""
    if named == "room":
        return Audience(room=protocol.check_room(value))
    if named == "userId":
        return Audience(user_id=protocol.check_user_id(value))
    if value is not True:
        raise PushError("'all' must be true")
    return Audience()


def handle(event: Any, call: Call, publisher: Publisher, outbox: Outbox) -> dict[str, Any]:
    """Deliver ``data`` to the audience; large audiences go through the queue."""
    log = call.log
    try:
        request = parse(event)
        frame = _frame(request.data)
    except PushError as error:
        log.set(outcome="refused", reason=str(error))
        return {"ok": False, "error": str(error)}
    log.set(audience=request.named)
    publisher.reach_audience(request.audience, frame, outbox)
    report = outbox.report
    log.set(delivered=report.delivered, queued=report.queued, gone=len(report.gone),
            failed=len(report.failed))
    return {
        "ok": True,
        "delivered": report.delivered,
        "queued": report.queued,
        "gone": len(report.gone),
        "failed": len(report.failed),
    }


def _frame(data: dict[str, Any]) -> str:
    try:
        return protocol.fitting(protocol.push(data, iso8601()), "the push frame")
    except ProtocolError as error:
        raise PushError(error.message) from None
