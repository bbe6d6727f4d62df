"""Delivery of frames to connections: the only code that talks to the management API.

Every frame goes through Chalice's ``app.websocket_api.send``, and every
connection the server ends through its ``close`` (the management API's
``DELETE``); the client beneath both is :mod:`chalicelib.management`'s, built
once per container. A
fan-out runs on a bounded pool of threads (the client's connection pool is
sized to match) and serialises nothing itself: the caller renders a frame once
and it is posted as is to every target. Each post first takes a slot from the
invocation's :class:`chalicelib.pacing.Pacer`, so concurrent invocations stay
under the account's throttle together.

The management endpoint is set here and only here (:meth:`Delivery.ensure_endpoint`),
once per container and under a lock, before the first post of any handler.

Outcomes per target:

* delivered — API Gateway accepted the post;
* gone — 410: the socket is closed; the caller removes it from the registry;
* failed — anything else after retries; logged and counted, never fatal to the
  rest of the fan-out (a 413 is a failure the caller can tell: ``TOO_LARGE``).

``LimitExceededException`` (429: the account's throttle, or the client's
buffer is full) and throttling errors are retried with full-jitter exponential
backoff, bounded by attempts and by the invocation's deadline; a retry takes a
pacing slot like any post.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError
from chalice.app import WebsocketDisconnectedError

from chalicelib import metrics
from chalicelib.invocation import Deadline
from chalicelib.pacing import UNPACED, Pacer, Unpaced

logger = logging.getLogger("switchboard.delivery")

WORKERS = 64
"""Posts in flight per invocation. At ~10 ms per post 64 threads could carry 6,400/s;
the lean transport tops out near half that on one vCPU (bench: fanout), botocore near 900."""
RETRYABLE_CODES = frozenset(
    {"LimitExceededException", "ThrottlingException", "TooManyRequestsException", "Throttling"}
)
TOO_LARGE_CODE = "PayloadTooLargeException"
"""413: a post over API Gateway's largest message (:data:`chalicelib.protocol.MAX_FRAME_BYTES`)."""


class Outcome(Enum):
    DELIVERED = "delivered"
    GONE = "gone"
    FAILED = "failed"
    TOO_LARGE = "too_large"
    """Refused with 413: failed, and the sender may answer with a smaller frame instead."""


@dataclass(frozen=True)
class DeliveryReport:
    delivered: int = 0
    gone: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    queued: int = 0
    """Targets handed to the fan-out queue, delivered later by its worker."""

    def __add__(self, other: DeliveryReport) -> DeliveryReport:
        return DeliveryReport(
            self.delivered + other.delivered,
            self.gone + other.gone,
            self.failed + other.failed,
            self.queued + other.queued,
        )


@dataclass(frozen=True)
class RetryPolicy:
    """Full-jitter exponential backoff for throttled posts.

    Ten attempts: with one post in five throttled independently (the benchmark's
    injection), six attempts lose a target with probability 0.2**6 — about one
    run in sixteen of a 1,000-target fan-out, as measured — while ten make it
    1e-7. The deadline, not the attempt count, is what bounds the time: the
    worst case is under 6 s of sleeping per target.
    """

    max_attempts: int = 10
    base_delay: float = 0.05
    max_delay: float = 1.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


class Delivery:
    def __init__(
        self,
        websocket_api: Any,
        workers: int = WORKERS,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
        pacer: Pacer | Unpaced = UNPACED,
    ) -> None:
        self._api = websocket_api
        self._workers = workers
        self._retry = retry
        self._sleep = sleep
        self._pacer = pacer
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._endpoint_set = False
        self._endpoint_lock = threading.Lock()

    def ensure_endpoint(self, resolve: Callable[[], str | None]) -> bool:
        """Point Chalice's client at the management endpoint, once per container.

        ``resolve`` is asked only the first time (under a lock, so concurrent
        callers wait for one answer) and returns a full URL, or None when it
        knows none — then nothing is set and False is returned. Chalice's
        ``configure`` takes a domain and a path and joins them as
        ``https://{domain}/{path}``, so the execute-api URL and a custom domain
        with a base path both round-trip. Chalice keeps the first endpoint it
        is given, which is why this is the only caller of ``configure``.
        """
        with self._endpoint_lock:
            if self._endpoint_set:
                return True
            url = resolve()
            if url is None:
                return False
            parts = urlsplit(url)
            self._api.configure(parts.netloc, parts.path.strip("/"))
            self._endpoint_set = True
            return True

    def send(self, connection_id: str, text: str, deadline: Deadline) -> Outcome:
        """Post one frame, retrying throttling until attempts or time run out; counted."""
        return _counted(self._send(connection_id, lambda: self._api.send(connection_id, text),
                                   deadline, f"{len(text)} characters"))

    def drop(self, connection_id: str, deadline: Deadline) -> Outcome:
        """Close one connection (``DELETE``): API Gateway then runs its ``$disconnect``.

        Paced and retried like a post; ``DELIVERED`` means closed, ``GONE`` that it
        had gone already (the caller forgets it).
        """
        return self._send(connection_id, lambda: self._api.close(connection_id), deadline)

    def drop_all(self, connection_ids: Sequence[str], deadline: Deadline) -> DeliveryReport:
        """Close every connection now, on the pool; ``delivered`` counts those closed."""
        return _report(connection_ids, self._each(connection_ids, self.drop, deadline))

    def _send(
        self, connection_id: str, request: Callable[[], None], deadline: Deadline,
        what: str = "",
    ) -> Outcome:
        """One management request, paced and retried; ``what`` describes it in logs."""
        for attempt in range(self._retry.max_attempts):
            if not self._pacer.wait(deadline):
                return _failed(connection_id, "no pacing slot before the deadline")
            try:
                request()
                return Outcome.DELIVERED
            except WebsocketDisconnectedError:
                return Outcome.GONE
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                if code == TOO_LARGE_CODE:
                    _failed(connection_id, f"{code} ({what})")
                    return Outcome.TOO_LARGE
                if code not in RETRYABLE_CODES:
                    return _failed(connection_id, code)
                metrics.record(metrics.POSTS_THROTTLED)
            except BotoCoreError as error:
                return _failed(connection_id, type(error).__name__)
            pause = self._retry.delay(attempt)
            if attempt + 1 == self._retry.max_attempts or pause >= deadline.remaining():
                break
            self._sleep(pause)
        return _failed(connection_id, "throttled until retries or time ran out")

    def post_all(
        self, connection_ids: Sequence[str], text: str, deadline: Deadline
    ) -> DeliveryReport:
        """Post one rendered frame to every target now; one failure never stops the rest.

        Only posts: forgetting the targets found gone is the caller's
        (:class:`chalicelib.outbox.Outbox`), which hands them to the cleanup.
        """
        if len(connection_ids) <= 1:
            outcomes = [self.send(cid, text, deadline) for cid in connection_ids]
            return _report(connection_ids, outcomes)
        return _report(connection_ids, self._each(
            connection_ids, lambda cid, late: self._send_before(cid, text, late), deadline
        ))

    def _each(
        self,
        connection_ids: Sequence[str],
        call: Callable[[str, Deadline], Outcome],
        deadline: Deadline,
    ) -> list[Outcome]:
        """``call`` for every target, on the pool; the outcomes in the targets' order."""
        found: list[Outcome] = [Outcome.FAILED] * len(connection_ids)
        pending = deque(range(len(connection_ids)))

        def drain() -> None:
            # One task per thread, not per target: a future per post costs
            # as much CPU as a tenth of a lean post.
            while True:
                try:
                    index = pending.popleft()  # deque pops are thread-safe
                except IndexError:
                    return
                found[index] = call(connection_ids[index], deadline)

        pool = self._pool()
        tasks = [pool.submit(drain) for _ in range(min(self._workers, len(connection_ids)))]
        for task in tasks:
            task.result()
        return found

    def _send_before(self, connection_id: str, text: str, deadline: Deadline) -> Outcome:
        if deadline.remaining() <= 0:
            return _counted(_failed(connection_id, "deadline passed before the post started"))
        return self.send(connection_id, text, deadline)

    def _pool(self) -> ThreadPoolExecutor:
        """One pool per container, reused by every warm invocation."""
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self._workers, thread_name_prefix="delivery"
                )
            return self._executor


_OUTCOME_METRICS = {
    Outcome.DELIVERED: metrics.POSTS_DELIVERED,
    Outcome.GONE: metrics.POSTS_GONE,
    Outcome.FAILED: metrics.POSTS_FAILED,
    Outcome.TOO_LARGE: metrics.POSTS_FAILED,
}


def _counted(outcome: Outcome) -> Outcome:
    metrics.record(_OUTCOME_METRICS[outcome])
    return outcome


def _failed(connection_id: str, reason: str) -> Outcome:
    logger.warning("delivery to %s failed: %s", connection_id, reason)
    return Outcome.FAILED


def _report(connection_ids: Sequence[str], outcomes: Sequence[Outcome]) -> DeliveryReport:
    pairs = list(zip(connection_ids, outcomes, strict=True))
    return DeliveryReport(
        delivered=sum(1 for _, outcome in pairs if outcome is Outcome.DELIVERED),
        gone=tuple(cid for cid, outcome in pairs if outcome is Outcome.GONE),
        failed=tuple(
            cid for cid, outcome in pairs if outcome in (Outcome.FAILED, Outcome.TOO_LARGE)
        ),
    )
