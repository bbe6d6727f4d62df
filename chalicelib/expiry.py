"""The ``expire_connections`` schedule: closes connections whose token has expired.

A connection that sends a frame after its token's ``exp`` is refused and
closed right then (:mod:`chalicelib.handlers`); one that stays silent is found
here. Every minute the schedule reads the connections whose ``exp`` (plus
``TOKEN_EXPIRY_GRACE_SECONDS``) has passed — one Query per GSI2 shard, whose
key condition reads only those, then their records in one consistent
``BatchGetItem`` per 100 (a connection refreshed a moment ago stays) — and
closes each after an ``{"type":"error","code":"token_expired"}`` frame, the
same a late frame gets. So no connection outlives its token by more than the
grace plus a minute. A connection found gone is forgotten.
"""

from __future__ import annotations

from typing import Any

from chalicelib import protocol
from chalicelib.closing import Closer
from chalicelib.invocation import Deadline
from chalicelib.lifetime import EXPIRED_MESSAGE, TokenLifetime
from chalicelib.logs import EventLog
from chalicelib.registry import Registry


class Expiry:
    def __init__(self, registry: Registry, lifetime: TokenLifetime, closer: Closer) -> None:
        self._registry = registry
        self._lifetime = lifetime
        self._closer = closer

    def run(self, deadline: Deadline, log: EventLog) -> dict[str, Any]:
        """Close every connection whose token is no longer honoured; what was done."""
        due = self._registry.due_connections(self._lifetime.due_until())
        frame = protocol.error(protocol.TOKEN_EXPIRED, EXPIRED_MESSAGE)
        closed = self._closer.end([c.connection_id for c in due], frame, deadline)
        report = {"due": len(due), "closed": closed.closed, "gone": closed.gone,
                  "failed": closed.failed}
        log.set(**report)
        return report
