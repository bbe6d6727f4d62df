"""Fan-out: deliver inline, or hand large audiences to the queue and its worker.

One invocation must finish inside API Gateway's 29 s integration timeout (and
its own Lambda timeout), which a broadcast to tens of thousands of sockets will
not. Above ``FANOUT_QUEUE_THRESHOLD`` targets in one request, batches of
connection ids go to SQS and the ``fanout_worker`` Lambda delivers them.

Exactly once per connection: a queued record is delivered once; targets whose
post failed (after :mod:`chalicelib.delivery`'s own retries) are re-queued as a
*new, smaller* message holding only those targets, so a retry never reaches a
connection that already got the frame. A record is reported as a batch item
failure (and so comes back whole) only when nothing of it was posted — it was
unreadable or its turn came too close to the deadline — or when re-queueing
its failed targets failed, the one case where at-least-once wins over losing
a message. SQS standard queues may themselves deliver a message twice, rarely.

Forgetting the connections a post found gone (:func:`forget_gone`) is the one
way connections leave the registry, ``$disconnect`` included, and so the one
place presence ``leave`` events come from when a user's last connection in a
room goes; :func:`announce` posts presence events to the room's members that
see them.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from chalicelib import metrics, protocol
from chalicelib.aws import QUEUE_ATTEMPT_SECONDS
from chalicelib.clock import iso8601
from chalicelib.delivery import DeliveryReport
from chalicelib.fanout_queue import BadMessage, Batch, decode
from chalicelib.invocation import Deadline
from chalicelib.registry import Departure, Member
from chalicelib.runtime import Services

logger = logging.getLogger("switchboard.fanout")

MAX_ATTEMPTS = 5
"""Times a target is re-queued before it is given up (logged) as undeliverable."""
REQUEUE_RESERVE_SECONDS = QUEUE_ATTEMPT_SECONDS + 1.0
"""Posting stops this long before the deadline, so that re-queueing what failed
(one SendMessageBatch attempt, see :mod:`chalicelib.aws`) still fits: a record
whose failures cannot be re-queued comes back whole."""
RECORD_RESERVE_SECONDS = REQUEUE_RESERVE_SECONDS + 2.0
"""A record is not started with less time left; it is retried instead."""


def fan_out(
    services: Services,
    connection_ids: Sequence[str],
    frame: str,
    deadline: Deadline,
    audience_so_far: int = 0,
    room: str | None = None,
) -> DeliveryReport:
    """Deliver one frame to an audience and forget the targets found gone.

    This is the one meaning of "fan-out" in the code base: every action and
    ``push`` go through it. Large audiences go to the queue:
    ``audience_so_far`` counts targets of the same request already handled,
    so a broadcast paging through the registry switches to the queue once its
    total passes the threshold, whatever the page sizes. ``room`` names the
    room the audience was read from, so that memberships of gone targets in it
    are deleted too (here, or by the worker for a queued batch).
    """
    queue = services.fanout_queue
    threshold = services.settings.fanout_queue_threshold
    queued = 0
    inline = list(connection_ids)
    if queue is not None and inline and audience_so_far + len(inline) > threshold:
        left = queue.enqueue(inline, frame, room=room)
        queued = len(inline) - len(left)
        inline = left
        if left:
            logger.warning("%d targets could not be queued; delivering inline", len(left))
        metrics.record(metrics.TARGETS_QUEUED, queued)
    report = _timed_post(services, inline, frame, deadline)
    forget_gone(services, report.gone, deadline, room)
    return report + DeliveryReport(queued=queued)


def _timed_post(
    services: Services, connection_ids: Sequence[str], frame: str, deadline: Deadline
) -> DeliveryReport:
    """Post to every target now; the time it took is the ``FanoutDuration`` metric."""
    if not connection_ids:
        return DeliveryReport()
    started = time.perf_counter()
    report = services.delivery.post_all(connection_ids, frame, deadline)
    metrics.record(metrics.FANOUT_DURATION, (time.perf_counter() - started) * 1000)
    return report


def forget_gone(
    services: Services, gone: Sequence[str], deadline: Deadline, room: str | None = None
) -> bool:
    """Remove connections that are gone: the one place that does, with one policy.

    Gone means a post answered 410, ``$disconnect`` came, or a read found the
    record expired. Users whose last connection in a room this was are
    announced as leaving it. A failure here is logged and never fails the
    caller (False): the frame was already delivered to everyone else, and an
    item left behind is found gone again by the next post and expires with its
    TTL in any case.
    """
    if not gone:
        return True
    try:
        departures = services.registry.remove_connections(
            gone, rooms=() if room is None else (room,)
        )
    except Exception:
        logger.exception("cleanup of %d gone connections failed; TTL will reclaim them", len(gone))
        return False
    _announce_departures(services, departures, deadline)
    return True


def room_audience(services: Services, room: str, deadline: Deadline) -> list[Member]:
    """A room's live member connections (one Query); expired ones found there are forgotten."""
    members = services.registry.room_members(room)
    forget_gone(services, members.expired, deadline, room)
    return list(members.live)


def announce(
    services: Services,
    room: str,
    changes: Iterable[tuple[str, str]],
    deadline: Deadline,
    actor: str | None = None,
) -> None:
    """Post ``presence`` events — (userId, ``join``/``leave``) pairs — to the room's watchers.

    Watchers are the member connections holding ``presence`` in the room, read
    once for all the changes, except ``actor``: the connection whose own
    ``joinRoom`` caused the event learns it from its ack. Best effort, like
    every notice: the change itself is stored already, a failure is logged, and
    the ``presence`` action stays the authoritative answer.
    """
    events = list(changes)
    if not events:
        return
    try:
        watchers = [
            m.connection_id for m in room_audience(services, room, deadline)
            if m.presence and m.connection_id != actor
        ]
        at = iso8601()
        for user_id, event in events:
            frame = protocol.presence(room, user_id, event, at)
            gone = set(fan_out(services, watchers, frame, deadline, room=room).gone)
            watchers = [cid for cid in watchers if cid not in gone]
    except Exception:
        logger.exception("presence events for room %s were not delivered", room)


def _announce_departures(
    services: Services, departures: Sequence[Departure], deadline: Deadline
) -> None:
    by_room: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for departure in departures:
        by_room[departure.room].append((departure.user_id, protocol.PRESENCE_LEAVE))
    for room, changes in by_room.items():
        announce(services, room, changes, deadline)


def ensure_endpoint_for(services: Services, connection_ids: Sequence[str]) -> bool:
    """Set the management endpoint outside WebSocket handlers, once per container.

    The stage's ``APIGW_MANAGEMENT_ENDPOINT`` wins (custom domains); otherwise
    the endpoint recorded on ``$connect`` for one of the targets. False when
    none of the targets is registered any more: there is nobody to post to.
    """

    def resolve() -> str | None:
        url = services.settings.management_endpoint
        for connection_id in connection_ids[:_ENDPOINT_LOOKUPS]:
            if url is not None:
                break
            connection = services.registry.get_connection(connection_id)
            url = connection.endpoint if connection is not None else None
        return url

    return services.delivery.ensure_endpoint(resolve)


_ENDPOINT_LOOKUPS = 10


# -- the worker ------------------------------------------------------------------


def handle_batch(records: Sequence[Any], services: Services, deadline: Deadline) -> dict[str, Any]:
    """Deliver each SQS record; answer with the records that must come back.

    The answer is Lambda's partial batch response: with ``ReportBatchItemFailures``
    enabled on the event source mapping (the deployment templates enable it),
    only the listed records return to the queue.
    """
    failures: list[str] = []
    for record in records:
        message_id = str(record.to_dict()["messageId"])
        if deadline.remaining() < RECORD_RESERVE_SECONDS or not _handle_record(
            record.body, services, deadline
        ):
            failures.append(message_id)
    metrics.record(metrics.WORKER_BATCH_FAILURES, len(failures))
    return {"batchItemFailures": [{"itemIdentifier": m} for m in failures]}


def _handle_record(body: str, services: Services, deadline: Deadline) -> bool:
    """True when the record is done with (delivered, gone, or failures re-queued)."""
    try:
        batch = decode(body)
    except BadMessage as error:
        logger.error("unreadable fan-out message: %s", error)
        return False
    try:
        if not ensure_endpoint_for(services, batch.targets):
            return True
    except Exception:
        logger.exception("could not resolve the management endpoint")
        return False
    posting = deadline.shortened_by(REQUEUE_RESERVE_SECONDS)
    report = _timed_post(services, batch.targets, batch.frame, posting)
    requeued = _requeue(services, batch, report.failed)  # first: it decides exactly-once
    forget_gone(services, report.gone, deadline, batch.room)  # best effort, TTL backs it
    return requeued


def _requeue(services: Services, batch: Batch, failed: Sequence[str]) -> bool:
    if not failed:
        return True
    queue = services.fanout_queue
    attempt = batch.attempt + 1
    if queue is None or attempt >= MAX_ATTEMPTS:
        logger.error("giving up on %d targets after %d attempts", len(failed), attempt)
        return True
    left = queue.enqueue(failed, batch.frame, attempt, queue.retry_delay_seconds, batch.room)
    return not left
