"""Publishing from a backend: the one way a frame reaches a room, a user or everyone,
optionally stored.

The server API's ``publish`` and ``broadcast`` (and ``push``, whose frame has
its own fixed shape) come here. A publication is a stream entry of the
backend's own frame ``type`` (``push`` by default, never one of the protocol's
own: :data:`chalicelib.protocol.SERVER_FRAME_TYPES`) carrying ``data`` (any
JSON value); rendered by :func:`chalicelib.protocol.message`, it is
``{"type", "data", "sentAt", "room"?, "seq"?, "epoch"?}``.

``store`` appends it to the room's stream (or the user's personal stream)
before the audience is read, exactly as a member's message is, so it carries
``seq``/``epoch``, is listed by ``history`` and replayed by recovery. An
``idempotencyKey`` makes a retry within the window answer the first result
(plus ``"duplicate": true``) without delivering or storing anything
(:mod:`chalicelib.idempotency`); the key is scoped to its audience.

Reading the audience belongs here, delivering it to the request's
:class:`~chalicelib.outbox.Outbox` (inline, or through the fan-out queue for a
large one), which forgets the connections it finds gone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib import protocol
from chalicelib.clock import iso8601
from chalicelib.delivery import Delivery, DeliveryReport
from chalicelib.idempotency import Idempotency, Pending, Recorded
from chalicelib.invocation import DEADLINE_RESERVE_SECONDS
from chalicelib.outbox import Outbox
from chalicelib.protocol import ROOM_PATTERN, SERVER_FRAME_TYPES, Message, ProtocolError
from chalicelib.registry import Registry
from chalicelib.streams import NO_HISTORY, Stream, Streams

if TYPE_CHECKING:
    from chalicelib.endpoint import EndpointOf

logger = logging.getLogger("switchboard.publish")

DEFAULT_TYPE = "push"
"""The frame type of a publication that names none (and of the ``push`` function's frames)."""


class PublishError(ValueError):
    """A publication that can never succeed; the message says why."""


class PublishPending(Exception):
    """Another invocation is publishing with this idempotency key and has not answered yet."""


@dataclass(frozen=True)
class Audience:
    """A room's members, a user's connections, or (neither) every connection."""

    room: str | None = None
    user_id: str | None = None

    @property
    def scope(self) -> str:
        """The audience as an idempotency key's scope."""
        if self.room is not None:
            return f"room:{self.room}"
        if self.user_id is not None:
            return f"user:{self.user_id}"
        return "all"

    @property
    def stream(self) -> Stream | None:
        """Where a stored publication goes: the room's stream, or the user's personal one."""
        if self.room is not None:
            return Stream.of_room(self.room)
        if self.user_id is not None:
            return Stream.of_user(self.user_id)
        return None


@dataclass(frozen=True)
class Publication:
    audience: Audience
    data: Any
    """Any JSON value but ``null``."""
    type: str = DEFAULT_TYPE
    store: bool = False
    idempotency_key: str | None = None


def check_type(frame_type: str) -> str:
    """A publication's frame type: a name like a room's, not one the protocol uses."""
    if not ROOM_PATTERN.fullmatch(frame_type):
        raise PublishError("'type' must be 1-64 characters of letters, digits and _ . : -")
    if frame_type in SERVER_FRAME_TYPES:
        raise PublishError(
            f"'type' {frame_type!r} is one of the protocol's own frame types "
            f"({', '.join(sorted(SERVER_FRAME_TYPES))})"
        )
    return frame_type


class Publisher:
    def __init__(
        self,
        registry: Registry,
        streams: Streams | None,
        idempotency: Idempotency,
        delivery: Delivery,
        endpoint_of: EndpointOf,
    ) -> None:
        """``endpoint_of`` gives targets a resolver of the management endpoint
        (:func:`chalicelib.endpoint.of_targets`)."""
        self._registry = registry
        self._streams = streams
        self._idempotency = idempotency
        self._delivery = delivery
        self._endpoint_of = endpoint_of

    def publish(self, publication: Publication, outbox: Outbox) -> dict[str, Any]:
        """Store (when asked), then deliver; answers ``delivered``, ``queued`` and the
        stored entry's ``seq``/``epoch``, or the first answer plus ``duplicate``.

        Raises :class:`PublishError` for a publication that can never succeed and
        :class:`PublishPending` while another invocation holds its idempotency key.
        """
        audience = publication.audience
        entry = self.checked_entry(publication)
        stream = audience.stream if publication.store else None
        key = publication.idempotency_key
        if key is None:
            return self._publish(entry, stream, audience, outbox)
        lease = outbox.deadline.remaining() + DEADLINE_RESERVE_SECONDS + 1
        claim = self._idempotency.claim(audience.scope, key, lease)
        if isinstance(claim, Recorded):
            return {**claim.result, "duplicate": True}
        if isinstance(claim, Pending):
            raise PublishPending(
                f"a publish with idempotencyKey {key!r} is still in progress; try again after "
                f"{iso8601(claim.lease_until)}"
            )
        try:
            answer = self._publish(entry, stream, audience, outbox)
        except BaseException:
            self._idempotency.release(claim)
            raise
        try:
            self._idempotency.record(claim, answer)
        except Exception:
            logger.exception("the answer to idempotency key %r could not be kept", key)
        return answer

    def checked_entry(self, publication: Publication) -> Message:
        """The publication's stream entry, checked; :class:`PublishError` when it can never
        succeed (a bad type, data that is not valid Unicode, a frame over the limit, ``store``
        where nothing is kept). Sizes are the protocol's rules for any frame, and for a stored
        entry (:func:`chalicelib.protocol.storable`: it must fit a ``history`` page too)."""
        audience = publication.audience
        if publication.store and audience.stream is None:
            raise PublishError("'store' needs a 'room' or a 'userId': everyone has no stream")
        if publication.store and self._streams is None:
            raise PublishError(NO_HISTORY)
        try:
            entry = Message(
                None, None, iso8601(), audience.room, type=check_type(publication.type),
                data=protocol.check_data(publication.data),
            )
            if publication.store:
                return protocol.storable(entry)
            protocol.fitting(protocol.message(entry), "the frame")
        except ProtocolError as error:
            raise PublishError(error.message) from None
        return entry

    def reach_audience(self, audience: Audience, frame: str, outbox: Outbox) -> DeliveryReport:
        """Deliver one rendered frame to the audience, a page of targets at a time."""
        total = DeliveryReport()
        for page in self._pages(audience):
            if page and self._delivery.ensure_endpoint(self._endpoint_of(page)):
                total = total + outbox.deliver(page, frame, audience.room)
        return total

    def _publish(
        self, entry: Message, stream: Stream | None, audience: Audience, outbox: Outbox
    ) -> dict[str, Any]:
        if stream is not None and self._streams is not None:
            entry = self._streams.append(stream, entry)
        report = self.reach_audience(audience, protocol.message(entry), outbox)
        answer: dict[str, Any] = {"delivered": report.delivered, "queued": report.queued}
        if entry.position is not None:
            answer.update(seq=entry.position.seq, epoch=entry.position.epoch)
        return answer

    def _pages(self, audience: Audience) -> Iterator[list[str]]:
        if audience.user_id is not None:
            yield self._registry.user_connections(audience.user_id)
        elif audience.room is not None:
            yield self._registry.room_connections(audience.room)
        else:
            yield from self._registry.all_connection_pages()
