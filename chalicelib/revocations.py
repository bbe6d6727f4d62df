"""Token revocation by user: what a revocation item means (its key is the registry's).

A backend revokes a user's tokens issued before a moment (``revoke`` in the
server API): from then on a token of that user whose ``iat`` is earlier — or
that has no ``iat`` at all — is refused at ``$connect`` and by ``refresh``.
One item per revoked user, in the registry's table, in a partition of its own::

    revocation  PK=REVOKED#<userId>  SK=REVOKED
                issuedBefore (epoch seconds), revokedAt

The moment only ever moves forward (a revocation cannot be undone by revoking
with an earlier one), and the item has no TTL: a token issued before it may
live as long as its issuer chose. Tokens issued at or after it are unaffected,
so a user whose issuer keeps signing (after a leaked token, say) reconnects at
once with a new one; a ban is the issuer refusing to sign.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from chalicelib.registry import revocation_key


def refuses(issued_before: int | None, issued_at: int | None) -> bool:
    """Whether a token issued at ``issued_at`` falls under a revocation of ``issued_before``."""
    return issued_before is not None and (issued_at is None or issued_at < issued_before)


class Revocations:
    def __init__(self, client: Any, table_name: str, clock: Callable[[], float] = time.time):
        self._client = client
        self._table = table_name
        self._clock = clock

    def issued_before(self, user_id: str) -> int | None:
        """The moment before which the user's tokens are refused, if any: one consistent read."""
        item = self._client.get_item(
            TableName=self._table, Key=revocation_key(user_id), ConsistentRead=True,
            ProjectionExpression="issuedBefore",
        ).get("Item")
        if item is None or "issuedBefore" not in item:
            return None
        return int(item["issuedBefore"]["N"])

    def refuses(self, user_id: str, issued_at: int | None) -> bool:
        """Whether this user's token issued at ``issued_at`` is revoked: one read."""
        return refuses(self.issued_before(user_id), issued_at)

    def revoke(self, user_id: str, issued_before: int) -> int:
        """Refuse the user's tokens issued before ``issued_before``; returns the moment in force.

        One conditional ``UpdateItem`` that only moves the moment forward; when a
        later one is already stored, it stays and is returned (one more read).
        """
        try:
            self._client.update_item(
                TableName=self._table,
                Key=revocation_key(user_id),
                UpdateExpression="SET issuedBefore = :before, revokedAt = :now",
                ConditionExpression="attribute_not_exists(issuedBefore) OR issuedBefore < :before",
                ExpressionAttributeValues={
                    ":before": {"N": str(issued_before)},
                    ":now": {"N": str(int(self._clock()))},
                },
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            stored = self.issued_before(user_id)
            return issued_before if stored is None else stored
        return issued_before
