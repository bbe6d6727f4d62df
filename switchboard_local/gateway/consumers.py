"""``@app.on_sqs_message`` handlers, fed from the store's queues as Lambda feeds them.

Like Lambda's event source mapping, each consumer polls its queue, collects up
to the declared ``batch_size`` (waiting at most
``maximum_batching_window_in_seconds`` for a fuller batch), invokes the
function with an SQS event, and deletes the records it handled. A raised
exception leaves the whole batch to come back after the queue's visibility
timeout; with ``ReportBatchItemFailures`` (declared in the merge template's
event source) only the records listed in ``batchItemFailures`` come back, and
an answer naming a record that was not in the batch fails the whole batch, as
on AWS. The queue's redrive policy moves a record to its dead-letter queue
after ``maxReceiveCount`` receives. A consumer runs up to its
``maximum_concurrency`` batches at once (Chalice's ``on_sqs_message``
argument, the mapping's ``ScalingConfig.MaximumConcurrency``), else
:data:`DEFAULT_BATCHES` — the batches Lambda starts with. A batch the
function's concurrency limits throttle comes back after the visibility
timeout, as a failed one does: the mapping ignores reserved concurrency.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3

from switchboard_local.events import sqs_record
from switchboard_local.gateway.invoker import Invoker
from switchboard_local.lambda_runtime import ACCOUNT_ID, Returned, Throttled

logger = logging.getLogger("switchboard_local.gateway")

POLL_WAIT_SECONDS = 1  # long polling, short enough to stop promptly
MAX_RECEIVE = 10  # SQS's limit per ReceiveMessage
DEFAULT_BATCHES = 5


@dataclass(frozen=True)
class Consumer:
    function: str
    queue: str
    batch_size: int
    window_seconds: float
    report_failures: bool
    concurrency: int = DEFAULT_BATCHES
    """Batches in flight at most (``maximum_concurrency``)."""


def queue_name(source: Any) -> str:
    """The queue an ``SQSEventConfig`` names, by name or by ARN."""
    return str(source.queue or str(source.queue_arn).rsplit(":", 1)[-1])


class Consumers:
    """One polling task per consumer, started and stopped with the gateway."""

    def __init__(self, invoker: Invoker, region: str, warn: Callable[[str], None]) -> None:
        self._invoker = invoker
        self._region = region
        self._warn = warn
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._running: dict[str, Consumer] = {}
        self._sqs: Any = None

    async def start(self, consumers: list[Consumer]) -> list[str]:
        """Start a task per consumer, keep those unchanged (a reload), stop the rest.

        An unchanged consumer keeps polling: stopping it in the middle of a
        receive would hide the records it got until their visibility timeout.
        """
        self._sqs = self._sqs or boto3.client("sqs")
        lines = []
        wanted = {c.function: c for c in consumers}
        for name in [n for n in self._tasks if self._running.get(n) != wanted.get(n)]:
            self._tasks.pop(name).cancel()
            del self._running[name]
        for consumer in consumers:
            if consumer.function not in self._tasks:
                url = await self._invoker.run(self._queue_url, consumer.queue)
                self._tasks[consumer.function] = asyncio.create_task(self._poll(consumer, url))
                self._running[consumer.function] = consumer
            lines.append(f"{consumer.queue} → {consumer.function} (batch {consumer.batch_size}"
                         f"{', partial batch responses' if consumer.report_failures else ''})")
        return lines

    def _queue_url(self, name: str) -> str:
        try:
            return str(self._sqs.get_queue_url(QueueName=name)["QueueUrl"])
        except self._sqs.exceptions.QueueDoesNotExist:
            self._warn(f"queue {name} is not declared in a merge template: created with "
                       "SQS's default attributes")
            return str(self._sqs.create_queue(QueueName=name)["QueueUrl"])

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _poll(self, consumer: Consumer, url: str) -> None:
        arn = f"arn:aws:sqs:{self._region}:{ACCOUNT_ID}:{consumer.queue}"
        slots = asyncio.Semaphore(consumer.concurrency)
        batches: set[asyncio.Task[None]] = set()
        try:
            while True:
                await slots.acquire()
                try:
                    messages = await self._invoker.run(self._receive, consumer, url)
                except Exception:
                    slots.release()
                    logger.exception("polling %s for %s failed", consumer.queue,
                                     consumer.function)
                    await asyncio.sleep(POLL_WAIT_SECONDS)
                    continue
                if not messages:
                    slots.release()
                    continue
                batch = asyncio.create_task(self._deliver(consumer, url, arn, messages))
                batches.add(batch)
                batch.add_done_callback(batches.discard)
                batch.add_done_callback(lambda _: slots.release())
        finally:
            for batch in batches:
                batch.cancel()

    def _receive(self, consumer: Consumer, url: str) -> list[dict[str, Any]]:
        """Up to ``batch_size`` messages, waiting up to the batching window for more."""
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + consumer.window_seconds
        while len(messages) < consumer.batch_size:
            wait = POLL_WAIT_SECONDS if not messages else 0
            received = self._sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=min(MAX_RECEIVE, consumer.batch_size
                                                      - len(messages)),
                WaitTimeSeconds=wait, AttributeNames=["All"], MessageAttributeNames=["All"],
            ).get("Messages", [])
            messages += received
            if not received and (not messages or time.monotonic() >= deadline):
                break
        return messages

    async def _deliver(
        self, consumer: Consumer, url: str, arn: str, messages: list[dict[str, Any]]
    ) -> None:
        event = {"Records": [sqs_record(m, arn, self._region) for m in messages]}
        outcome = await self._invoker.invoke(consumer.function, event)
        if not isinstance(outcome, Returned):
            why = "was throttled" if isinstance(outcome, Throttled) else "failed"
            logger.error("%s %s: its %d records come back after the visibility timeout",
                         consumer.function, why, len(messages))
            return
        failed = self._failures(consumer, outcome.value, {m["MessageId"] for m in messages})
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), MAX_RECEIVE):
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                       for i, m in enumerate(done[start:start + MAX_RECEIVE])]
            await self._invoker.run(
                lambda e=entries: self._sqs.delete_message_batch(QueueUrl=url, Entries=e)
            )

    def _failures(self, consumer: Consumer, answer: Any, ids: set[str]) -> set[str]:
        """The records that come back: Lambda's rules for a partial batch response."""
        if not consumer.report_failures:
            if isinstance(answer, dict) and answer.get("batchItemFailures"):
                self._warn(f"{consumer.function} answered batchItemFailures, but its event "
                           "source does not report batch item failures: the whole batch is "
                           "deleted, as on AWS")
            return set()
        items = answer.get("batchItemFailures") if isinstance(answer, dict) else None
        if not items:
            return set()
        named = {item.get("itemIdentifier") if isinstance(item, dict) else None
                 for item in items}
        if not named <= ids:
            logger.error("%s named records that were not in its batch: the whole batch "
                         "fails", consumer.function)
            return ids
        return {str(name) for name in named}
