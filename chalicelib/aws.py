"""Construction of AWS data clients, tuned once for Lambda and bounded by the invocation.

Nothing here runs at import time: cold start pays only for the clients an
invocation actually uses. Endpoints are never hard-coded, so the standard
``AWS_ENDPOINT_URL_<SERVICE>`` variables point any client at a local stand-in.
The management API's client is :mod:`chalicelib.management`'s.

Every data client (DynamoDB, SQS, SSM) answers before the invocation's
deadline (:func:`chalicelib.invocation.bound`), whatever its dependency does.
Each attempt is bounded by the client's connect and read timeouts, so two
botocore hooks suffice, both reading the deadline bound to the running handler:

* ``before-send``: an attempt that could outlast the deadline is not started
  (:class:`DeadlineExceeded`, a ``BotoCoreError``, is raised instead);
* ``needs-retry``, ahead of botocore's own retry handler: no retry whose
  longest backoff plus one attempt would outlast the deadline (botocore's
  contract for this event: a first answer of ``False`` means "do not retry").

botocore's standard retry mode still decides what is worth retrying and how
long to back off; the hooks only refuse what the remaining time cannot hold.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError

from chalicelib import invocation

# DynamoDB calls keep botocore's standard retry mode: it backs off on
# ProvisionedThroughputExceeded and throttling, so a burst of $connect events
# is absorbed instead of refusing handshakes. An attempt takes at most
# connect + read timeout: DynamoDB answers in milliseconds, so 3 s is a hung
# dependency, not a slow one.
_DATA_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=1,
    read_timeout=2,
)
# SendMessageBatch is not idempotent: a retry after a timed-out attempt that had
# landed queues the batch twice (a target would get the frame twice), so SQS
# gets more room before an attempt is abandoned.
_QUEUE_CLIENT_CONFIG = _DATA_CLIENT_CONFIG.merge(Config(read_timeout=5))
QUEUE_ATTEMPT_SECONDS = 6.0
"""The longest one SQS attempt may take: connect plus read timeout."""
_MAX_BACKOFF_SECONDS = 20.0
"""botocore's standard mode: the longest sleep before a retry (base 1 s for throttling)."""


class DeadlineExceeded(BotoCoreError):
    """An AWS request was not attempted: the invocation has no time left for it."""

    fmt = (
        "{operation} not attempted: {remaining:.2f} s left in the invocation, "
        "an attempt may take {needed:.2f} s"
    )


def dynamodb_client() -> Any:
    return bounded_by_deadline(boto3.client("dynamodb", config=_DATA_CLIENT_CONFIG))


def ssm_client() -> Any:
    return bounded_by_deadline(boto3.client("ssm", config=_DATA_CLIENT_CONFIG))


def sqs_client() -> Any:
    return bounded_by_deadline(boto3.client("sqs", config=_QUEUE_CLIENT_CONFIG))


def bounded_by_deadline(client: Any) -> Any:
    """Register the deadline hooks on a client; returns it."""
    service = client.meta.service_model.service_id.hyphenize()
    config = client.meta.config
    attempt_seconds = float(config.connect_timeout) + float(config.read_timeout)

    def before_send(request: Any, **_: Any) -> None:
        deadline = invocation.current()
        if deadline is None:
            return
        remaining = deadline.remaining()
        if remaining < attempt_seconds:
            operation = request.headers.get("X-Amz-Target", service)
            if isinstance(operation, bytes):
                operation = operation.decode()
            raise DeadlineExceeded(
                operation=operation, remaining=max(0.0, remaining), needed=attempt_seconds
            )

    def needs_retry(attempts: int, **_: Any) -> bool | None:
        deadline = invocation.current()
        if deadline is None:
            return None
        backoff = min(2.0 ** (attempts - 1), _MAX_BACKOFF_SECONDS)
        if deadline.remaining() < attempt_seconds + backoff:
            return False
        return None

    client.meta.events.register(f"before-send.{service}", before_send)
    client.meta.events.register_first(f"needs-retry.{service}", needs_retry)
    return client
