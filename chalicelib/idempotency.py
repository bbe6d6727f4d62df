"""Idempotency keys for publishing: claiming, recording and releasing them (their items'
keys are the registry's).

A backend that retries a publish (its invocation timed out, its network
failed) passes the same ``idempotencyKey``: within ``IDEMPOTENCY_WINDOW_SECONDS``
the retry is neither delivered nor stored again and gets the first answer. One
item per key and audience (``scope``: ``room:<room>``, ``user:<userId>`` or
``all``), in the registry's table, in partitions of their own::

    key  PK=IDEM#<scope>  SK=KEY#<idempotencyKey>
         leaseUntil (epoch seconds), result (the first answer, JSON), ttl

:meth:`Idempotency.claim` is one conditional ``PutItem`` that succeeds for the
first caller only: it then publishes and :meth:`~Idempotency.record`\\ s its
answer (one ``UpdateItem``). Another caller reads the item instead: the
recorded answer, or — while the first is still at work — that it is pending
until its lease (the first invocation's remaining time) ends. A claim whose
publish failed is :meth:`~Idempotency.release`\\ d at once; one whose
invocation died without recording anything may be taken over after its lease.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.registry import TTL_ATTRIBUTE, idempotency_key

_RESULT = "result"
_CLAIM_ATTEMPTS = 2


class IdempotencyError(Exception):
    """A key could neither be claimed nor read (it kept changing)."""


@dataclass(frozen=True)
class Claim:
    """This caller holds the key: publish, then record or release."""

    scope: str
    key: str


@dataclass(frozen=True)
class Recorded:
    """The key was used already: this is the answer the first publish gave."""

    result: dict[str, Any]


@dataclass(frozen=True)
class Pending:
    """Another invocation holds the key and has not answered yet (until ``lease_until``)."""

    lease_until: int


class Idempotency:
    def __init__(
        self, client: Any, table_name: str, window_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._table = table_name
        self._window = window_seconds
        self._clock = clock

    def claim(self, scope: str, key: str, lease_seconds: float) -> Claim | Recorded | Pending:
        """Take the key for ``lease_seconds``, or learn what became of the publish that has it."""
        item_key = idempotency_key(scope, key)
        for _ in range(_CLAIM_ATTEMPTS):
            now = int(self._clock())
            try:
                self._client.put_item(
                    TableName=self._table,
                    Item={
                        **item_key,
                        "leaseUntil": {"N": str(now + max(1, int(lease_seconds)))},
                        TTL_ATTRIBUTE: {"N": str(now + self._window)},
                    },
                    ConditionExpression=(
                        "attribute_not_exists(PK) OR #ttl <= :now "
                        "OR (attribute_not_exists(#result) AND leaseUntil <= :now)"
                    ),
                    ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE, "#result": _RESULT},
                    ExpressionAttributeValues={":now": {"N": str(now)}},
                )
            except self._client.exceptions.ConditionalCheckFailedException:
                item = self._client.get_item(
                    TableName=self._table, Key=item_key, ConsistentRead=True
                ).get("Item")
                if item is None or int(item[TTL_ATTRIBUTE]["N"]) <= self._clock():
                    continue  # released or expired in between: claim again
                if _RESULT in item:
                    return Recorded(json.loads(item[_RESULT]["S"]))
                return Pending(int(item["leaseUntil"]["N"]))
            return Claim(scope, key)
        raise IdempotencyError(f"idempotency key {key!r} kept changing")

    def record(self, claim: Claim, result: dict[str, Any]) -> None:
        """Keep the answer a retry with the same key gets (unless the key is gone already)."""
        with contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException):
            self._client.update_item(
                TableName=self._table,
                Key=idempotency_key(claim.scope, claim.key),
                UpdateExpression="SET #result = :result",
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeNames={"#result": _RESULT},
                ExpressionAttributeValues={
                    ":result": {"S": json.dumps(result, separators=(",", ":"))},
                },
            )

    def release(self, claim: Claim) -> None:
        """Give the key back after a failed publish, so that a retry does it."""
        with contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException):
            self._client.delete_item(
                TableName=self._table,
                Key=idempotency_key(claim.scope, claim.key),
                ConditionExpression="attribute_not_exists(#result)",
                ExpressionAttributeNames={"#result": _RESULT},
            )
