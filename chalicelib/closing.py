"""Ending connections from the server: the only code that closes one.

The server ends a connection by telling it why — one frame: a ``disconnect``
(a backend's ``disconnect`` or ``revoke``), or the ``token_expired`` error —
and then closing it with the management API's ``DELETE`` (Chalice's
``websocket_api.close``). API Gateway then runs the connection's
``$disconnect``, which forgets it as it forgets any connection; one found gone
(410) by either request is forgotten here at once, through
:class:`~chalicelib.cleanup.Cleanup`, the one way out of the registry.

The frame is posted inline, never through the fan-out queue: it must arrive
before the close. A connection whose frame could not be posted is closed all
the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.cleanup import Cleanup
from chalicelib.delivery import Delivery, DeliveryReport
from chalicelib.invocation import Deadline
from chalicelib.outbox import post_timed

if TYPE_CHECKING:
    from chalicelib.endpoint import EndpointOf

@dataclass(frozen=True)
class Closed:
    """What closing some connections did."""

    closed: int = 0
    """Connections that are closed: by the ``DELETE``, or by the client itself once told why."""
    gone: int = 0
    """Connections that had gone before they could be told (now forgotten)."""
    failed: int = 0
    """Connections the management API would not close (after retries)."""


class Closer:
    def __init__(self, delivery: Delivery, cleanup: Cleanup, endpoint_of: EndpointOf) -> None:
        self._delivery = delivery
        self._cleanup = cleanup
        self._endpoint_of = endpoint_of

    def end(
        self, connection_ids: Sequence[str], frame: str | None, deadline: Deadline
    ) -> Closed:
        """Post ``frame`` (when given) to each connection, then close each."""
        targets = list(dict.fromkeys(connection_ids))
        if not targets or not self._delivery.ensure_endpoint(self._endpoint_of(targets)):
            return Closed()
        told = (post_timed(self._delivery, targets, frame, deadline) if frame is not None
                else DeliveryReport())
        gone_before = set(told.gone)
        heard = set() if frame is None else set(targets) - gone_before - set(told.failed)
        closing = self._delivery.drop_all([t for t in targets if t not in gone_before], deadline)
        # A client told to go may close first: its DELETE then finds it gone, as asked.
        left_by_itself = heard & set(closing.gone)
        self._cleanup.forget([*told.gone, *closing.gone], deadline)
        return Closed(
            closing.delivered + len(left_by_itself),
            len(gone_before) + len(closing.gone) - len(left_by_itself),
            len(closing.failed),
        )
