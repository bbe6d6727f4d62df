"""Message streams (history): the only code that knows the stream items' key formats.

Every room has a stream, and so does every user (their personal stream, where
direct messages to them are kept). A stream is a head item and one item per
message, in the registry's table but in partitions of their own, so that the
registry's room and presence Queries never read a message::

    head     PK=HIST#<room> | INBOX#<userId>   SK=HEAD
             seq (the last assigned), epoch, ttl
    message  PK=HIST#<room> | INBOX#<userId>   SK=SEQ#<seq, 20 digits>
             epoch, sentAt, ttl, and what the entry has of: sender, text,
             type (when not ``message``), kind, data (JSON text), replyTo,
             A#<type>#<value> (a string set: the users who annotated it so)

Appending is two writes: an ``UpdateItem`` that adds 1 to the head's ``seq``
(atomic, so concurrent senders get distinct, increasing numbers), refreshes
its ``ttl`` and creates a missing head with a new epoch, then a ``PutItem`` of
the message. A head that expired but is not deleted yet (DynamoDB deletes
lazily) fails the update's condition and starts a new epoch with a
conditional ``PutItem`` that only one writer wins; the others retry the
update. A ``seq`` whose message could not be stored stays a gap.

Annotating an entry (a reaction) is one ``UpdateItem`` of its item: ``ADD`` (or
``DELETE``) of the user to the set of that type and value, on condition the
entry is there and live. A user counts once per value however often they add
it, and removing is exact; every read returns the entry with its summary, the
size of each set (``{"reaction": {"👍": 2}}``).

Messages live ``HISTORY_TTL_SECONDS``; at most ``HISTORY_MAX_MESSAGES`` per
stream are *read*: older ones are outside every key range asked for (the
trim is logical, so appending never pays for a delete) and go with their TTL.
Every read treats an item whose ``ttl`` has passed as gone, and leaves out an
item it cannot decode (:mod:`chalicelib.readable`).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib import metrics, readable
from chalicelib.protocol import MESSAGE, Message, Position

_ROOM_PREFIX = "HIST#"
_INBOX_PREFIX = "INBOX#"
_HEAD_SK = "HEAD"
_SEQ_PREFIX = "SEQ#"
_SEQ_DIGITS = 20
_ANNOTATION_PREFIX = "A#"
_START_ATTEMPTS = 3
TTL_ATTRIBUTE = "ttl"
NO_HISTORY = "this stage keeps no history (HISTORY_MAX_MESSAGES is 0)"
"""Why every path that needs a stream is refused on a stage that keeps none."""

Item = dict[str, Any]


class StreamError(Exception):
    """A stream could not be read or written after retries."""


@dataclass(frozen=True)
class Stream:
    """One stream: a room's (``room`` set) or a user's personal one."""

    key: str
    room: str | None = None

    @classmethod
    def of_room(cls, room: str) -> Stream:
        return cls(_ROOM_PREFIX + room, room)

    @classmethod
    def of_user(cls, user_id: str) -> Stream:
        return cls(_INBOX_PREFIX + user_id)


@dataclass(frozen=True)
class Page:
    """Messages of a stream, oldest first, and whether older ones are kept."""

    epoch: str
    messages: list[Message]
    has_more: bool


@dataclass(frozen=True)
class Recovery:
    """The stream's position, and what a client that saw ``since`` missed.

    ``missed`` is ``None`` when the gap cannot be replayed: another epoch, a
    position the stream never reached, more than the replay limit, or messages
    no longer kept.
    """

    position: Position
    missed: list[Message] | None


def new_epoch() -> str:
    """An opaque epoch, unique for practical purposes: 16 hex characters."""
    return secrets.token_hex(8)


class Streams:
    """Appends to and reads message streams in one table."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        ttl_seconds: int,
        max_messages: int,
        clock: Callable[[], float] = time.time,
        epochs: Callable[[], str] = new_epoch,
    ) -> None:
        self._client = client
        self._table = table_name
        self._ttl_seconds = ttl_seconds
        self._max_messages = max_messages
        self._clock = clock
        self._epochs = epochs

    def append(self, stream: Stream, message: Message) -> Message:
        """Store a message at the stream's next ``seq``; returns it with its position."""
        position = self._next_position(stream)
        stored = message.at(stream.room, position)
        self._client.put_item(
            TableName=self._table,
            Item={
                **message_key(stream, position.seq),
                "epoch": {"S": position.epoch},
                **_entry_attributes(stored),
                TTL_ATTRIBUTE: {"N": str(self._expiry())},
            },
        )
        metrics.record(metrics.HISTORY_WRITES)
        return stored

    def position(self, stream: Stream) -> Position:
        """The stream's epoch and last ``seq``, starting the stream (``seq`` 0) if it has none.

        One consistent read; a write only for a stream that does not exist yet,
        so that a client given seq 0 recovers within the same epoch as the
        stream's first message.
        """
        for _ in range(_START_ATTEMPTS):
            head = self._head(stream)
            if head is not None:
                return head
            started = self._start(stream, seq=0)
            if started is not None:
                return started
        raise StreamError(f"could not start stream {stream.key}")

    def recover(self, stream: Stream, since: Position, limit: int) -> Recovery:
        """What a client whose last seen position is ``since`` missed, up to ``limit`` messages.

        Messages expire in ``seq`` order, so the gap is known to be whole when
        its first message (``since.seq + 1``), or the one at ``since.seq``, is
        still kept. When neither is, the first may have expired or may never
        have been stored (a failed send); both read as not recovered, the safe
        answer.
        """
        position = self.position(stream)
        gap = position.seq - since.seq
        if since.epoch != position.epoch or gap < 0:
            return Recovery(position, None)
        if gap == 0:
            return Recovery(position, [])
        low = max(since.seq, 1)
        if gap > limit or low < position.seq - self._max_messages:
            return Recovery(position, None)
        found = self._read(stream, position, low, position.seq, newest_first=False)
        if not found or _seq(found[0]) > since.seq + 1:
            return Recovery(position, None)
        return Recovery(position, [m for m in found if _seq(m) > since.seq])

    def page(self, stream: Stream, before_seq: int | None, limit: int) -> Page:
        """The newest ``limit`` kept messages before ``before_seq`` (all when None)."""
        position = self.position(stream)
        high = position.seq if before_seq is None else min(before_seq - 1, position.seq)
        low = max(1, position.seq - self._max_messages + 1)
        if high < low:
            return Page(position.epoch, [], False)
        found = self._read(stream, position, low, high, newest_first=True, limit=limit + 1)
        has_more = len(found) > limit
        return Page(position.epoch, list(reversed(found[:limit])), has_more)

    def get(self, stream: Stream, seq: int, epoch: str | None = None) -> Message | None:
        """The entry at ``seq`` (of ``epoch``, when given), or None: one read, never a write."""
        item = self._client.get_item(
            TableName=self._table, Key=message_key(stream, seq), ConsistentRead=True
        ).get("Item")
        if item is None or self._expired(item):
            return None
        return _entry(stream, item, epoch)

    def restart(self, stream: Stream) -> Position:
        """Start the stream over: a new epoch at ``seq`` 0, one unconditional ``PutItem``.

        What it kept is of another epoch from then on, so no read returns it
        (clients recovering from it get ``recovered: false``); the items go with
        their TTL. A send numbered before the restart and stored after it is of
        the old epoch too.
        """
        return self._put_head(stream, seq=0)

    def annotate(
        self,
        stream: Stream,
        seq: int,
        annotation: tuple[str, str],
        user_id: str,
        *,
        remove: bool = False,
        epoch: str | None = None,
    ) -> Message | None:
        """Add (or remove) the user's ``(type, value)`` on the entry at ``seq``: one ``UpdateItem``.

        Returns the entry with its new summary, or None when no live entry is at
        ``seq`` (of ``epoch``, when given; then nothing is written) or the entry cannot be
        read (as every read skips it).
        """
        kind, value = annotation
        condition = "attribute_exists(SK) AND #ttl > :now"
        values = {":who": {"SS": [user_id]}, ":now": {"N": str(int(self._clock()))}}
        if epoch is not None:
            condition += " AND epoch = :epoch"
            values[":epoch"] = {"S": epoch}
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=message_key(stream, seq),
                UpdateExpression=f"{'DELETE' if remove else 'ADD'} #a :who",
                ConditionExpression=condition,
                ExpressionAttributeNames={
                    "#a": f"{_ANNOTATION_PREFIX}{kind}#{value}", "#ttl": TTL_ATTRIBUTE,
                },
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return None
        return _entry(stream, response["Attributes"], None)

    # -- internals ----------------------------------------------------------

    def _next_position(self, stream: Stream) -> Position:
        """Assign the next ``seq``: one ``UpdateItem``, which also starts a missing stream.

        Only a head that expired but is not deleted yet fails its condition;
        then a new epoch is started at seq 1 by :meth:`_start` (one writer wins;
        a loser retries the update, which now succeeds).
        """
        now = int(self._clock())
        for _ in range(_START_ATTEMPTS):
            try:
                response = self._client.update_item(
                    TableName=self._table,
                    Key=_head_key(stream),
                    UpdateExpression=(
                        "SET seq = if_not_exists(seq, :zero) + :one, "
                        "epoch = if_not_exists(epoch, :epoch), #ttl = :ttl"
                    ),
                    ConditionExpression="attribute_not_exists(#ttl) OR #ttl > :now",
                    ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                    ExpressionAttributeValues={
                        ":zero": {"N": "0"},
                        ":one": {"N": "1"},
                        ":epoch": {"S": self._epochs()},
                        ":ttl": {"N": str(self._expiry())},
                        ":now": {"N": str(now)},
                    },
                    ReturnValues="ALL_NEW",
                )
            except self._client.exceptions.ConditionalCheckFailedException:
                started = self._start(stream, seq=1)
                if started is not None:
                    return started
                continue
            attributes = response["Attributes"]
            return Position(attributes["epoch"]["S"], int(attributes["seq"]["N"]))
        raise StreamError(f"could not assign a seq in stream {stream.key}")

    def _start(self, stream: Stream, seq: int) -> Position | None:
        """Begin a new epoch at ``seq``, unless a live head exists (then None: re-read it)."""
        try:
            return self._put_head(
                stream,
                seq,
                ConditionExpression="attribute_not_exists(PK) OR #ttl <= :now",
                ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={":now": {"N": str(int(self._clock()))}},
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return None

    def _put_head(self, stream: Stream, seq: int, **condition: Any) -> Position:
        """Write the stream's head: a new epoch at ``seq`` (on ``condition``, when given)."""
        epoch = self._epochs()
        self._client.put_item(
            TableName=self._table,
            Item={
                **_head_key(stream),
                "seq": {"N": str(seq)},
                "epoch": {"S": epoch},
                TTL_ATTRIBUTE: {"N": str(self._expiry())},
            },
            **condition,
        )
        return Position(epoch, seq)

    def _head(self, stream: Stream) -> Position | None:
        item = self._client.get_item(
            TableName=self._table, Key=_head_key(stream), ConsistentRead=True
        ).get("Item")
        if item is None or self._expired(item) or "epoch" not in item:
            return None
        return Position(item["epoch"]["S"], int(item["seq"]["N"]))

    def _read(
        self,
        stream: Stream,
        position: Position,
        low: int,
        high: int,
        newest_first: bool,
        limit: int | None = None,
    ) -> list[Message]:
        """Live messages of the current epoch with ``low <= seq <= high``, in the asked order.

        Reading newest first stops at the first expired message: every older
        one expired before it.
        """
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :pk AND SK BETWEEN :low AND :high",
            "ExpressionAttributeValues": {
                ":pk": {"S": stream.key},
                ":low": {"S": _seq_key(low)},
                ":high": {"S": _seq_key(high)},
            },
            "ScanIndexForward": not newest_first,
            "ConsistentRead": True,
        }
        if limit is not None:
            request["Limit"] = limit
        found: list[Message] = []
        while True:
            response = self._client.query(**request)
            for item in response["Items"]:
                if self._expired(item):
                    if newest_first:
                        return found
                    continue
                message = _entry(stream, item, position.epoch)
                if message is None:
                    continue  # another epoch's, or skipped (logged, counted)
                found.append(message)
                if limit is not None and len(found) >= limit:
                    return found
            last_key = response.get("LastEvaluatedKey")
            if last_key is None:
                return found
            request["ExclusiveStartKey"] = last_key

    def _expiry(self) -> int:
        return int(self._clock()) + self._ttl_seconds

    def _expired(self, item: Item) -> bool:
        ttl = item.get(TTL_ATTRIBUTE)
        return ttl is not None and int(ttl["N"]) <= self._clock()


def _head_key(stream: Stream) -> Item:
    return {"PK": {"S": stream.key}, "SK": {"S": _HEAD_SK}}


def _seq_key(seq: int) -> str:
    return f"{_SEQ_PREFIX}{seq:0{_SEQ_DIGITS}d}"


def message_key(stream: Stream, seq: int) -> Item:
    """The key of a stream's message item (for tools and tests: nothing else spells it)."""
    return {"PK": {"S": stream.key}, "SK": {"S": _seq_key(seq)}}


def _entry_attributes(message: Message) -> Item:
    """A stream entry's own attributes; only what it has is written (``data`` as JSON text)."""
    item: Item = {"sentAt": {"S": message.sent_at}}
    for name, value in (("sender", message.sender), ("text", message.text),
                        ("kind", message.kind)):
        if value is not None:
            item[name] = {"S": value}
    if message.type != MESSAGE:
        item["type"] = {"S": message.type}
    if message.data is not None:
        item["data"] = {"S": json.dumps(message.data, ensure_ascii=False, separators=(",", ":"))}
    if message.reply_to is not None:
        item["replyTo"] = {"N": str(message.reply_to)}
    return item


def _entry(stream: Stream, item: Item, epoch: str | None) -> Message | None:
    """A message item decoded, or None when it is of another epoch than ``epoch`` (when
    given) or cannot be read (logged, counted: the stream's other entries are still read)."""
    if epoch is not None and item.get("epoch", {}).get("S") != epoch:
        return None
    return readable.one(item, lambda it: _message_from_item(stream, it), stream.key)


def _message_from_item(stream: Stream, item: Item) -> Message:
    seq = int(item["SK"]["S"][len(_SEQ_PREFIX):])

    def text(name: str) -> str | None:
        value = item.get(name)
        return None if value is None else str(value["S"])

    data = text("data")
    reply_to = item.get("replyTo")
    return Message(
        sender=text("sender"),
        text=text("text"),
        sent_at=item["sentAt"]["S"],
        room=stream.room,
        position=Position(item["epoch"]["S"], seq),
        type=text("type") or MESSAGE,
        kind=text("kind"),
        data=None if data is None else json.loads(data),
        reply_to=None if reply_to is None else int(reply_to["N"]),
        annotations=_annotations(item),
    )


def _annotations(item: Item) -> dict[str, dict[str, int]] | None:
    """The entry's summary: per type and value, how many users annotated it so."""
    summary: dict[str, dict[str, int]] = {}
    for name in sorted(item):
        if name.startswith(_ANNOTATION_PREFIX):
            kind, _, value = name[len(_ANNOTATION_PREFIX):].partition("#")
            summary.setdefault(kind, {})[value] = len(item[name].get("SS", []))
    return summary or None


def _seq(message: Message) -> int:
    return message.position.seq if message.position is not None else 0
