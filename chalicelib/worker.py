"""The ``fanout_worker``: delivers the batches large audiences were split into.

One invocation must finish inside API Gateway's 29 s integration timeout (and
its own Lambda timeout), which a broadcast to tens of thousands of sockets will
not: above ``FANOUT_QUEUE_THRESHOLD`` targets in one request, an
:class:`chalicelib.outbox.Outbox` puts batches of connection ids on SQS, and
this worker delivers them.

Exactly once per connection: a queued record is delivered once; targets whose
post failed (after :mod:`chalicelib.delivery`'s own retries) are re-queued as a
*new, smaller* message holding only those targets, so a retry never reaches a
connection that already got the frame. A record is reported as a batch item
failure (and so comes back whole) only when nothing of it was posted — it was
unreadable or its turn came too close to the deadline — or when re-queueing
its failed targets failed, the one case where at-least-once wins over losing
a message. SQS standard queues may themselves deliver a message twice, rarely.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from chalicelib import metrics
from chalicelib.aws import QUEUE_ATTEMPT_SECONDS
from chalicelib.cleanup import Cleanup
from chalicelib.delivery import Delivery
from chalicelib.fanout_queue import BadMessage, Batch, FanoutQueue, decode
from chalicelib.invocation import Deadline
from chalicelib.logs import EventLog
from chalicelib.outbox import post_timed

if TYPE_CHECKING:
    from chalicelib.endpoint import EndpointOf

logger = logging.getLogger("switchboard.fanout")

MAX_ATTEMPTS = 5
"""Times a target is re-queued before it is given up (logged) as undeliverable."""
REQUEUE_RESERVE_SECONDS = QUEUE_ATTEMPT_SECONDS + 1.0
"""Posting stops this long before the deadline, so that re-queueing what failed
(one SendMessageBatch attempt, see :mod:`chalicelib.aws`) still fits: a record
whose failures cannot be re-queued comes back whole."""
RECORD_RESERVE_SECONDS = REQUEUE_RESERVE_SECONDS + 2.0
"""A record is not started with less time left; it is retried instead."""


class Worker:
    def __init__(
        self,
        delivery: Delivery,
        cleanup: Cleanup,
        queue: FanoutQueue | None,
        endpoint_of: EndpointOf,
    ) -> None:
        """``endpoint_of`` gives a batch's targets a resolver of the management endpoint
        (:func:`chalicelib.endpoint.of_targets`)."""
        self._delivery = delivery
        self._cleanup = cleanup
        self._queue = queue
        self._endpoint_of = endpoint_of

    def handle_batch(
        self, records: Sequence[Any], deadline: Deadline, log: EventLog
    ) -> dict[str, Any]:
        """Deliver each SQS record; answer with the records that must come back.

        The answer is Lambda's partial batch response: with ``ReportBatchItemFailures``
        enabled on the event source mapping (the deployment templates enable it),
        only the listed records return to the queue.
        """
        failures: list[str] = []
        for record in records:
            message_id = str(record.to_dict()["messageId"])
            if deadline.remaining() < RECORD_RESERVE_SECONDS or not self._handle_record(
                record.body, deadline
            ):
                failures.append(message_id)
        metrics.record(metrics.WORKER_BATCH_FAILURES, len(failures))
        log.set(records=len(records), failures=len(failures))
        return {"batchItemFailures": [{"itemIdentifier": m} for m in failures]}

    def _handle_record(self, body: str, deadline: Deadline) -> bool:
        """True when the record is done with (delivered, gone, or failures re-queued)."""
        try:
            batch = decode(body)
        except BadMessage as error:
            logger.error("unreadable fan-out message: %s", error)
            return False
        try:
            if not self._delivery.ensure_endpoint(self._endpoint_of(batch.targets)):
                return True
        except Exception:
            logger.exception("could not resolve the management endpoint")
            return False
        posting = deadline.shortened_by(REQUEUE_RESERVE_SECONDS)
        report = post_timed(self._delivery, batch.targets, batch.frame, posting)
        requeued = self._requeue(batch, report.failed)  # first: it decides exactly-once
        self._cleanup.forget(report.gone, deadline, batch.room)  # best effort, TTL backs it
        return requeued

    def _requeue(self, batch: Batch, failed: Sequence[str]) -> bool:
        if not failed:
            return True
        queue = self._queue
        attempt = batch.attempt + 1
        if queue is None or attempt >= MAX_ATTEMPTS:
            logger.error("giving up on %d targets after %d attempts", len(failed), attempt)
            return True
        left = queue.enqueue(failed, batch.frame, attempt, queue.retry_delay_seconds, batch.room)
        return not left

