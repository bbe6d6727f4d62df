"""The fan-out queue: the only code that knows the shape of its messages.

A large audience is split into batches of connection ids; each batch is one
SQS message that carries the rendered frame once::

    {"v": 1, "frame": "<the frame's JSON text>", "targets": ["id", ...], "attempt": 0,
     "room": "lobby"}

``room`` (present only for a room's audience) tells the worker which room's
memberships to delete for targets it finds gone.

Messages are sized to stay under SQS's 256 KiB limit and sent ten at a time
with ``SendMessageBatch``. The queue URL is looked up from the queue's name
once per container, so stages only configure a name.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger("switchboard.fanout")

MESSAGE_VERSION = 1
# SQS refuses a message, and a SendMessageBatch request, above 256 KiB; keep a
# margin for the batch entry's own fields.
MAX_MESSAGE_BYTES = 256 * 1024 - 2048
MAX_BATCH_ENTRIES = 10
SEND_ATTEMPTS = 3


class BadMessage(ValueError):
    """A queue message this code cannot read; it goes back and, in time, to the DLQ."""


@dataclass(frozen=True)
class Batch:
    frame: str
    targets: tuple[str, ...]
    attempt: int = 0
    room: str | None = None


def encode(batch: Batch) -> str:
    message: dict[str, Any] = {
        "v": MESSAGE_VERSION,
        "frame": batch.frame,
        "targets": list(batch.targets),
        "attempt": batch.attempt,
    }
    if batch.room is not None:
        message["room"] = batch.room
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def decode(body: str) -> Batch:
    try:
        message = json.loads(body)
    except ValueError:
        raise BadMessage("message is not JSON") from None
    if not isinstance(message, dict) or message.get("v") != MESSAGE_VERSION:
        raise BadMessage("message is not a version 1 fan-out batch")
    frame, targets, attempt = message.get("frame"), message.get("targets"), message.get("attempt")
    room = message.get("room")
    if (
        not isinstance(frame, str)
        or not isinstance(targets, list)
        or not all(isinstance(t, str) for t in targets)
        or not isinstance(attempt, int)
    ):
        raise BadMessage("message lacks a string frame, a list of targets or an attempt")
    if room is not None and not isinstance(room, str):
        raise BadMessage("message's room is not a string")
    return Batch(frame, tuple(targets), attempt, room)


def split(
    connection_ids: Sequence[str],
    frame: str,
    max_targets: int,
    attempt: int = 0,
    room: str | None = None,
) -> list[Batch]:
    """Batches of at most ``max_targets`` ids whose messages fit in SQS."""
    frame_bytes = len(encode(Batch(frame, (), attempt, room)).encode("utf-8"))
    batches: list[Batch] = []
    current: list[str] = []
    size = frame_bytes
    for connection_id in connection_ids:
        cost = len(json.dumps(connection_id).encode("utf-8")) + 1
        if current and (len(current) >= max_targets or size + cost > MAX_MESSAGE_BYTES):
            batches.append(Batch(frame, tuple(current), attempt, room))
            current, size = [], frame_bytes
        current.append(connection_id)
        size += cost
    if current:
        batches.append(Batch(frame, tuple(current), attempt, room))
    return batches


class FanoutQueue:
    """Sends fan-out batches to one SQS queue, whose URL is resolved lazily."""

    def __init__(
        self,
        client_factory: Callable[[], Any],
        queue_name: str,
        max_targets: int,
        retry_delay_seconds: int,
    ) -> None:
        self._client_factory = client_factory
        self._client: Any | None = None
        self._queue_name = queue_name
        self._url: str | None = None
        self._lock = threading.Lock()
        self.max_targets = max_targets
        self.retry_delay_seconds = retry_delay_seconds

    @property
    def name(self) -> str:
        return self._queue_name

    def enqueue(
        self,
        connection_ids: Sequence[str],
        frame: str,
        attempt: int = 0,
        delay_seconds: int = 0,
        room: str | None = None,
    ) -> list[str]:
        """Queue the targets in batches; returns the ids that could not be queued.

        The caller delivers whatever comes back itself (a request handler) or
        has its record retried (the worker), so no target is silently dropped.
        """
        batches = split(connection_ids, frame, self.max_targets, attempt, room)
        left: list[str] = []
        for group in _send_groups(batches):
            for batch in self._send(group, delay_seconds):
                left.extend(batch.targets)
        return left

    def _send(self, batches: list[Batch], delay_seconds: int) -> list[Batch]:
        """One SendMessageBatch, retrying failed entries; returns the batches not sent."""
        pending = {str(index): batch for index, batch in enumerate(batches)}
        for _ in range(SEND_ATTEMPTS):
            entries = [
                {"Id": key, "MessageBody": encode(batch), "DelaySeconds": delay_seconds}
                for key, batch in pending.items()
            ]
            try:
                client, url = self._connection()
                response = client.send_message_batch(QueueUrl=url, Entries=entries)
            except (ClientError, BotoCoreError):
                logger.exception("SendMessageBatch to %s failed", self._queue_name)
                continue
            failed = {entry["Id"] for entry in response.get("Failed", [])}
            pending = {key: batch for key, batch in pending.items() if key in failed}
            if not pending:
                return []
        return list(pending.values())

    def _connection(self) -> tuple[Any, str]:
        with self._lock:
            if self._client is None:
                self._client = self._client_factory()
            if self._url is None:
                response = self._client.get_queue_url(QueueName=self._queue_name)
                self._url = str(response["QueueUrl"])
            return self._client, self._url


def _send_groups(batches: list[Batch]) -> Iterator[list[Batch]]:
    """Groups of at most ten messages whose bodies together fit one request."""
    group: list[Batch] = []
    size = 0
    for batch in batches:
        cost = len(encode(batch).encode("utf-8"))
        if group and (len(group) == MAX_BATCH_ENTRIES or size + cost > MAX_MESSAGE_BYTES):
            yield group
            group, size = [], 0
        group.append(batch)
        size += cost
    if group:
        yield group
