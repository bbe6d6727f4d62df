"""Delivery to an audience: the one request-scoped owner of what a request delivered.

Every frame that goes to an audience — an action's, ``push``'s, a presence
event's — goes through an :class:`Outbox` made for that request. It posts
inline, or hands large audiences to the fan-out queue: it counts the targets
of the same request already handled, so a broadcast paging through the
registry switches to the queue once its total passes
``FANOUT_QUEUE_THRESHOLD``, whatever the page sizes. It tallies what was
delivered, queued, gone and failed for the request's answer and log line, and
hands the targets found gone to :class:`chalicelib.cleanup.Cleanup`.

An outbox only posts and queues: reading who the audience is belongs to the
caller (the registry's reads never write).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from chalicelib import metrics
from chalicelib.cleanup import Cleanup
from chalicelib.delivery import Delivery, DeliveryReport, Outcome
from chalicelib.fanout_queue import FanoutQueue
from chalicelib.invocation import Deadline

logger = logging.getLogger("switchboard.fanout")


class Outbox:
    def __init__(
        self,
        delivery: Delivery,
        cleanup: Cleanup,
        deadline: Deadline,
        queue: FanoutQueue | None = None,
        queue_threshold: int = 0,
    ) -> None:
        self._delivery = delivery
        self._cleanup = cleanup
        self._queue = queue
        self._threshold = queue_threshold
        self.deadline = deadline
        self.report = DeliveryReport()
        """Everything this request delivered, queued, found gone or failed, so far."""
        self.audience = 0
        """Targets of this request handled so far (inline or queued)."""
        self._gone: set[str] = set()

    def deliver(
        self, connection_ids: Sequence[str], frame: str, room: str | None = None
    ) -> DeliveryReport:
        """Deliver one rendered frame to targets; forget those found gone.

        ``room`` names the room the audience was read from, so that memberships
        of gone targets in it are deleted too (here, or by the worker for a
        queued batch).
        """
        inline = list(connection_ids)
        queued = 0
        if self._queue is not None and inline and self.audience + len(inline) > self._threshold:
            left = self._queue.enqueue(inline, frame, room=room)
            queued = len(inline) - len(left)
            if left:
                logger.warning("%d targets could not be queued; delivering inline", len(left))
            metrics.record(metrics.TARGETS_QUEUED, queued)
            inline = left
        self.audience += len(connection_ids)
        report = post_timed(self._delivery, inline, frame, self.deadline)
        self._forget(report.gone, room)
        report = report + DeliveryReport(queued=queued)
        self.report = self.report + report
        return report

    def send(self, connection_id: str, frame: str, deadline: Deadline | None = None) -> Outcome:
        """Post one frame to one connection now (never queued); a gone target is forgotten.

        ``deadline`` replaces the request's, for an answer that uses the reserve
        kept back for answering (:meth:`Deadline.with_reserve`). A connection this
        request already found gone is not posted to again.
        """
        if connection_id in self._gone:
            return Outcome.GONE
        outcome = self._delivery.send(connection_id, frame, deadline or self.deadline)
        if outcome is Outcome.GONE:
            self._forget([connection_id])
        return outcome

    def _forget(self, gone: Sequence[str], room: str | None = None) -> None:
        self._gone.update(gone)
        self._cleanup.forget(gone, self.deadline, room)


def post_timed(
    delivery: Delivery, connection_ids: Sequence[str], frame: str, deadline: Deadline
) -> DeliveryReport:
    """Post to every target now; the time it took is the ``FanoutDuration`` metric."""
    if not connection_ids:
        return DeliveryReport()
    started = time.perf_counter()
    report = delivery.post_all(connection_ids, frame, deadline)
    metrics.record(metrics.FANOUT_DURATION, (time.perf_counter() - started) * 1000)
    return report
