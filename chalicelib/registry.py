"""The connection registry: the only code that knows its items' key formats.

One table (shared with :mod:`chalicelib.streams`, whose partitions
have prefixes of their own), three item types here::

    connection  PK=CONN#<connectionId>  SK=CONN
                GSI1PK=USER#<userId>    GSI1SK=CONN#<connectionId>
                connectionId, userId, roles, rooms (string set), grants (the
                token's rooms claim, when it has one), connectedAt, endpoint, ttl
    membership  PK=ROOM#<room>          SK=CONN#<connectionId>
                connectionId, userId, presence (whether the connection sees
                presence events), ttl
    presence    PK=ROOM#<room>          SK=USER#<userId>
                conns (string set: the user's connections in the room),
                watching (string set: those of them holding ``presence``), ttl
    room        PK=ROOM#<room>          SK=ROOM
                users, connections (counts), occupancyAt, occupancyDue, ttl

Only connection items carry GSI1 attributes, so GSI1 is a sparse index of live
connections: a user's devices are one Query on it and a broadcast pages through
it without ever reading a room or membership item. Connection items also carry
GSI2's (``GSI2PK=EXPIRY#<shard of the id>``, ``expiresAt``: the token's
``exp``), a second sparse index that finds the connections whose token has
expired with one Query per shard, reading only those, and that projects each
connection's user and rooms for counts across the whole stage. A room's members are one
Query on the base table (``SK`` beginning ``CONN#``); a connection's rooms live
on its own item, so ``$disconnect`` needs one read before its batched deletes.

Presence is per user: a user is in a room while their presence item's
``conns`` set is not empty. Every change to that set is one atomic ``ADD`` or
``DELETE`` returning the item as it was (``ALL_OLD``: an ``ADD`` that changes
nothing still returns the set), so exactly one writer sees a user's
first connection arrive (the set was empty) and exactly one sees the last one
go (the set held only it), however many devices race.

A room's watchers (member connections holding ``presence``) are the union of
its presence items' ``watching`` sets: one Query of the room's users, never of
its memberships. A user's presence item is deleted when their last connection
leaves, so that Query reads the users present, not everyone who ever came.

The room item counts the room's users and member connections; every change to
a presence set changes it by the same amount (one ``ADD`` returning the new
counts), so a join knows the room's size without reading the room. It also
holds when an ``occupancy`` frame was last sent and whether a change is
waiting for the next one (:mod:`chalicelib.presence` decides what they mean).

The table also holds items other modules keep, whose keys are spelled here too, so
that no other code knows a key format (streams have :mod:`chalicelib.streams`)::

    revocation       PK=REVOKED#<userId>               SK=REVOKED
                     (:mod:`chalicelib.revocations`)
    idempotency key  PK=IDEM#<scope>                   SK=KEY#<idempotencyKey>
                     (:mod:`chalicelib.idempotency`)
    rate counter     PK=RATE#c#<connectionId> | RATE#u#<userId>
                     SK=<action>#<window seconds>#<window index>
                     (:mod:`chalicelib.ratelimit`)

DynamoDB deletes expired items lazily (up to days later), so every read here
treats an item whose ``ttl`` has passed as already gone, and an item that
cannot be decoded as absent (:mod:`chalicelib.readable`).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from chalicelib import readable
from chalicelib.clock import iso8601
from chalicelib.permissions import RoomGrants

GSI1 = "GSI1"
GSI2 = "GSI2"
EXPIRES_AT = "expiresAt"
"""The connection item's token ``exp``: GSI2's sort key."""
EXPIRY_SHARDS = 10
"""GSI2 partitions connections are spread over, so no one index partition takes every write."""
_EXPIRY_PREFIX = "EXPIRY#"
_CONN_PREFIX = "CONN#"
_ROOM_PREFIX = "ROOM#"
_USER_PREFIX = "USER#"
_CONN_SK = "CONN"
_ROOM_SK = "ROOM"
_REVOKED_PREFIX = "REVOKED#"
_REVOKED_SK = "REVOKED"
_IDEMPOTENCY_PREFIX = "IDEM#"
_IDEMPOTENCY_KEY_PREFIX = "KEY#"
_RATE_PREFIX = "RATE#"
_BATCH_WRITE_LIMIT = 25
_BATCH_GET_LIMIT = 100
_UNPROCESSED_RETRIES = 8
_PRESENCE_ATTEMPTS = 3
_WRITERS = 8
"""Concurrent presence updates in a cleanup: under botocore's default pool of 10 connections."""

Item = dict[str, Any]
Clock = Callable[[], float]
T = TypeVar("T")


class RegistryError(Exception):
    """Base class of the registry's own errors."""


class ConnectionExists(RegistryError):
    """A connection item with this id is already registered."""


class NotConnected(RegistryError):
    """The connection is not (or no longer) registered."""


class TooManyRooms(RegistryError):
    """The connection is already in as many rooms as it may be."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"a connection may be in at most {limit} rooms")
        self.limit = limit


@dataclass(frozen=True)
class Connection:
    connection_id: str
    user_id: str
    roles: tuple[str, ...]
    rooms: frozenset[str]
    connected_at: str
    endpoint: str
    ttl: int
    grants: RoomGrants | None = None
    """The token's ``rooms`` claim; ``None``: the stage's default permissions apply."""
    expires_at: int | None = None
    """The token's ``exp`` (epoch seconds); ``None`` for a record written without one."""
    issued_at: int | None = None
    """The token's ``iat`` (epoch seconds), when it had one."""


@dataclass(frozen=True)
class ConnectionSummary:
    """Who a connection is and which rooms it is in, as GSI2 projects them."""

    connection_id: str
    user_id: str
    rooms: frozenset[str]


@dataclass(frozen=True)
class Member:
    """One connection in a room, as its membership item says."""

    connection_id: str
    user_id: str
    presence: bool
    """Whether the connection holds the ``presence`` permission in the room."""


@dataclass(frozen=True)
class RoomMembers:
    """A room's member connections, and those whose records have expired (to be forgotten)."""

    live: tuple[Member, ...]
    expired: tuple[str, ...]


@dataclass(frozen=True)
class RoomCount:
    """A room's item: its users and member connections, and where its occupancy frames are."""

    users: int
    connections: int
    occupancy_at: float = 0.0
    """When an ``occupancy`` frame was last sent (epoch seconds; 0: never)."""
    occupancy_due: float = 0.0
    """Since when a change has been waiting for the next one (0: none is)."""


@dataclass(frozen=True)
class PresenceChange:
    """What a join or a leave did: whether the user arrived (or left), and the room's count."""

    changed: bool
    """The user's first connection joined, or their last one left."""
    count: RoomCount | None
    """The room's count after the change; None when the user's connections did not change."""


@dataclass(frozen=True)
class PresencePage:
    """Users present in a room, in user id order, with the connections their items list."""

    users: tuple[tuple[str, tuple[str, ...]], ...]
    next_after: str | None
    """The last user id of this page when more may follow."""


@dataclass(frozen=True)
class Departure:
    """A user's last connection left a room."""

    room: str
    user_id: str
    count: RoomCount | None = field(default=None, compare=False)
    """The room's count once this cleanup's connections left it."""


def table_definition(table_name: str) -> dict[str, Any]:
    """CreateTable arguments; the deployment templates must describe the same table."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"}
            for name in ("PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK")
        ] + [{"AttributeName": EXPIRES_AT, "AttributeType": "N"}],
        "KeySchema": [
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": GSI1,
                "KeySchema": [
                    {"AttributeName": "GSI1PK", "KeyType": "HASH"},
                    {"AttributeName": "GSI1SK", "KeyType": "RANGE"},
                ],
                "Projection": {
                    "ProjectionType": "INCLUDE",
                    "NonKeyAttributes": ["ttl", "endpoint"],
                },
            },
            {
                "IndexName": GSI2,
                "KeySchema": [
                    {"AttributeName": "GSI2PK", "KeyType": "HASH"},
                    {"AttributeName": EXPIRES_AT, "KeyType": "RANGE"},
                ],
                "Projection": {
                    "ProjectionType": "INCLUDE",
                    "NonKeyAttributes": ["ttl", "userId", "rooms"],
                },
            },
        ],
    }


TTL_ATTRIBUTE = "ttl"


class Registry:
    """Reads and writes connection and membership items in one table."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        ttl_seconds: int,
        clock: Clock = time.time,
    ) -> None:
        self._client = client
        self._table = table_name
        self._ttl_seconds = ttl_seconds
        self._clock = clock

    # -- connections -------------------------------------------------------

    def add_connection(
        self,
        connection_id: str,
        user_id: str,
        roles: Sequence[str],
        endpoint: str,
        grants: RoomGrants | None = None,
        expires_at: int | None = None,
        issued_at: int | None = None,
    ) -> Connection:
        """Register a new connection with one conditional write."""
        now = self._clock()
        connection = Connection(
            connection_id=connection_id,
            user_id=user_id,
            roles=tuple(roles),
            rooms=frozenset(),
            connected_at=iso8601(now),
            endpoint=endpoint,
            ttl=int(now) + self._ttl_seconds,
            grants=grants,
            expires_at=expires_at,
            issued_at=issued_at,
        )
        try:
            self._client.put_item(
                TableName=self._table,
                Item=_connection_item(connection),
                ConditionExpression="attribute_not_exists(PK)",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            raise ConnectionExists(connection_id) from None
        return connection

    def get_connection(self, connection_id: str) -> Connection | None:
        item = self._get_live(connection_key(connection_id))
        return None if item is None else readable.one(item, _connection_from_item, "a connection")

    def remove_connection(self, connection_id: str) -> list[Departure]:
        """Delete a connection and its memberships; removing twice is harmless."""
        return self.remove_connections([connection_id])

    def remove_connections(
        self,
        connection_ids: Iterable[str],
        rooms: Iterable[str] = (),
        owners: Mapping[str, str] | None = None,
    ) -> list[Departure]:
        """Delete many connections and their memberships; returns the users who left a room.

        A connection's memberships are the rooms its item names. ``rooms`` adds
        rooms whose membership of these connections is deleted whatever the
        items say: a room send that finds targets gone passes its room, because
        a ``joinRoom`` that raced ``$disconnect`` can leave a membership whose
        connection item is already deleted, which ``rooms`` on the item cannot
        name. Those memberships are read in the same ``BatchGetItem`` as the
        connection items, for the user each belongs to. ``owners`` names the
        user of connections the caller already knows (a presence read that
        found them in a user's presence set after their items were gone), so
        they leave that presence set in ``rooms`` even when no item names them.

        Then each connection leaves the presence set of each of its rooms (one
        conditional ``UpdateItem`` per room), each room's count drops by what
        left it (one ``UpdateItem`` per room), and a :class:`Departure` is
        returned for each user whose last connection in a room this was.
        """
        ids = list(dict.fromkeys(connection_ids))
        if not ids:
            return []
        extra_rooms = list(dict.fromkeys(rooms))
        lookups = [connection_key(cid) for cid in ids] + [
            membership_key(room, cid) for room in extra_rooms for cid in ids
        ]
        keys: dict[tuple[str, str], Item] = {}
        presence: dict[tuple[str, str], str] = {  # (room, connection) -> user
            (room, cid): user for cid, user in (owners or {}).items() for room in extra_rooms
        }
        for item in self._batch_get(lookups, projection="PK, SK, userId, rooms"):
            user_id = item.get("userId", {}).get("S")
            if item["SK"]["S"] == _CONN_SK:
                connection_id = _strip(item["PK"]["S"], _CONN_PREFIX)
                item_rooms = item.get("rooms", {}).get("SS", [])
            else:
                connection_id = _strip(item["SK"]["S"], _CONN_PREFIX)
                item_rooms = [_strip(item["PK"]["S"], _ROOM_PREFIX)]
            for room in item_rooms:
                _add_key(keys, membership_key(room, connection_id))
                if user_id is not None:
                    presence[(room, connection_id)] = user_id
        for room in extra_rooms:
            for connection_id in ids:
                _add_key(keys, membership_key(room, connection_id))
        for connection_id in ids:
            _add_key(keys, connection_key(connection_id))
        self._batch_delete(list(keys.values()))
        exits = [(room, user_id, cid) for (room, cid), user_id in presence.items()]
        results = self._map(lambda args: self._exit(*args), exits)
        changes: dict[str, list[int]] = {}  # room -> [users, connections] that left it
        for (room, _, _), (in_count, last) in zip(exits, results, strict=True):
            delta = changes.setdefault(room, [0, 0])
            delta[0] -= int(last and in_count)
            delta[1] -= int(in_count)
        left = [room for room, delta in changes.items() if delta[1]]
        counted = self._map(lambda room: self._count(room, changes[room][0], changes[room][1]),
                            left)
        counts = dict(zip(left, counted, strict=True))
        return [
            Departure(room, user_id, counts.get(room))
            for (room, user_id, _), (_, last) in zip(exits, results, strict=True) if last
        ]

    # -- rooms --------------------------------------------------------------

    def join_room(
        self,
        connection: Connection,
        room: str,
        presence: bool,
        max_rooms: int | None = None,
    ) -> PresenceChange:
        """Store a membership; ``changed`` when it is the user's first connection in the room.

        Four single-item writes, not a transaction (DynamoDB-compatible engines
        such as dynalite have no ``TransactWriteItems``), ordered so that the
        connection's ``rooms`` set always covers its membership and presence
        entries:

        1. ``ADD rooms`` on the connection item, on condition it exists and,
           with ``max_rooms``, that the set has room for one more (or holds this
           one already) — checked by DynamoDB, so concurrent joins on one
           connection cannot pass the cap together. A forgotten connection
           raises :class:`NotConnected`, a full one :class:`TooManyRooms`, and
           nothing is written;
        2. ``PutItem`` of the membership (``presence`` says whether this
           connection gets the room's presence events);
        3. ``ADD`` of the connection to the user's presence set in the room
           (and to its watchers, with ``presence``);
        4. ``ADD`` to the room's counts, when the presence set changed.

        A crash between them leaves the room in ``rooms`` with less than a full
        membership: the connection misses that room's messages (or the user
        stays absent) until it joins again (idempotent), and ``$disconnect``
        still deletes everything it owns, because it deletes what ``rooms``
        names. No membership item can outlive its connection through a crash,
        only through a ``$disconnect`` racing the join, and then only until the
        next send finds it gone, or its ``ttl``.
        """
        self._update_rooms(connection.connection_id, "ADD", room, max_rooms)
        item: Item = {
            **membership_key(room, connection.connection_id),
            "connectionId": {"S": connection.connection_id},
            "userId": {"S": connection.user_id},
            TTL_ATTRIBUTE: {"N": str(connection.ttl)},
        }
        if presence:
            item["presence"] = {"BOOL": True}
        self._client.put_item(TableName=self._table, Item=item)
        first, users, connections = self._enter(
            room, connection.user_id, connection.connection_id, presence
        )
        changed = first or users or connections
        count = self._count(room, users, connections, joined=True) if changed else None
        return PresenceChange(first, count)

    def leave_room(self, connection: Connection, room: str) -> PresenceChange:
        """Remove a membership; ``changed`` when it was the user's last connection in the room.

        The mirror of :meth:`join_room`: ``DeleteItem`` of the membership first,
        then the presence set's ``DELETE`` (and the room's count), then
        ``DELETE rooms`` on the connection item on condition it exists
        (:class:`NotConnected` otherwise). A crash in between leaves the room in
        ``rooms`` with less than a full membership — the same harmless state as
        a half-done join, which leaving again repairs — so ``rooms`` still
        covers everything and ``$disconnect`` still finds it. Leaving a room one
        is not in is harmless.
        """
        self._client.delete_item(
            TableName=self._table, Key=membership_key(room, connection.connection_id)
        )
        counted, last = self._exit(room, connection.user_id, connection.connection_id)
        count = self._count(room, -last, -1) if counted else None
        self._update_rooms(connection.connection_id, "DELETE", room)
        return PresenceChange(last, count)

    # -- presence and counts ----------------------------------------------------

    def room_watchers(self, room: str) -> list[str]:
        """The room's member connections holding ``presence``: one Query of its users' items."""
        watchers: list[str] = []
        for watching in readable.each(
            self._query(**self._room_request(room, _USER_PREFIX, "SK, watching, #ttl")),
            lambda item: [] if self._expired(item) else item.get("watching", {}).get("SS", []),
            f"the presence of room {room}",
        ):
            watchers.extend(watching)
        return watchers

    def presence_page(self, room: str, after: str | None, limit: int) -> PresencePage:
        """Up to ``limit`` users present in the room after the user id ``after``, with the
        connections their presence items list (which the caller checks are live).

        Queries only the room's presence items, in pages of ``limit + 1``, until
        ``limit`` users with connections are found (items left empty by a
        race are skipped) or the room ends.
        """
        request = {**self._room_request(room, _USER_PREFIX, "SK, conns, #ttl"), "Limit": limit + 1}
        if after is not None:
            request["ExclusiveStartKey"] = presence_key(room, after)
        found: list[tuple[str, tuple[str, ...]]] = []
        for items in self._pages(self._client.query, request):
            found.extend(
                entry for entry in readable.each(
                    items, self._present, f"the presence of room {room}"
                ) if entry[1]
            )
            if len(found) > limit:
                break
        more = len(found) > limit
        page = tuple(found[:limit])
        return PresencePage(page, page[-1][0] if more and page else None)

    def live_connections(self, connection_ids: Iterable[str]) -> set[str]:
        """Which of these connections are registered and not expired (batched reads)."""
        ids = list(dict.fromkeys(connection_ids))
        return set(self._live_connection_ids(self._batch_get(
            [connection_key(cid) for cid in ids], "PK, #ttl", {"#ttl": TTL_ATTRIBUTE}
        )))

    def room_count(self, room: str) -> RoomCount:
        """The room's counts as its item says (zero for a room that has none)."""
        item = self._get_live(room_key(room))
        return RoomCount(0, 0) if item is None else _count_from_item(item)

    def claim_occupancy(self, room: str, now: float, interval: float) -> RoomCount | None:
        """Record that an ``occupancy`` frame is being sent now, unless one was sent less
        than ``interval`` seconds ago; the counts to send, or None (another sender won)."""
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=room_key(room),
                UpdateExpression="SET occupancyAt = :now REMOVE occupancyDue",
                ConditionExpression=(
                    "attribute_exists(PK) AND "
                    "(attribute_not_exists(occupancyAt) OR occupancyAt <= :cutoff)"
                ),
                ExpressionAttributeValues={
                    ":now": {"N": _seconds(now)}, ":cutoff": {"N": _seconds(now - interval)},
                },
                ReturnValues="ALL_NEW",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return None
        return _count_from_item(response["Attributes"])

    def mark_occupancy_due(self, room: str, now: float, stale_before: float) -> bool:
        """Note that a change waits for the next ``occupancy`` frame; True for the one caller
        that noted it (it sends that frame), False when another already waits for it.

        A note older than ``stale_before`` (its sender never came back) is taken over.
        """
        try:
            self._client.update_item(
                TableName=self._table,
                Key=room_key(room),
                UpdateExpression="SET occupancyDue = :now",
                ConditionExpression=(
                    "attribute_exists(PK) AND "
                    "(attribute_not_exists(occupancyDue) OR occupancyDue < :stale)"
                ),
                ExpressionAttributeValues={
                    ":now": {"N": _seconds(now)}, ":stale": {"N": _seconds(stale_before)},
                },
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    # -- audiences ------------------------------------------------------------

    def user_connections(self, user_id: str) -> list[str]:
        """Every live connection of one user: one Query on GSI1."""
        return self._live_connection_ids(
            self._query(
                IndexName=GSI1,
                KeyConditionExpression="GSI1PK = :pk",
                ExpressionAttributeValues={":pk": {"S": _USER_PREFIX + user_id}},
                ProjectionExpression="PK, #ttl",
                ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
            ),
        )

    def room_members(self, room: str) -> RoomMembers:
        """Every member connection of a room: one Query on the room's membership items.

        The presence items in the same partition are outside the key condition,
        so they are never read (nor paid for) here.
        """
        live: list[Member] = []
        expired: list[str] = []
        for member, is_expired in readable.each(
            self._query(**self._room_request(room, _CONN_PREFIX, "SK, userId, presence, #ttl")),
            lambda item: (_member_from_item(item), self._expired(item)),
            f"the members of room {room}",
        ):
            if is_expired:
                expired.append(member.connection_id)
            else:
                live.append(member)
        return RoomMembers(tuple(live), tuple(expired))

    def room_connections(self, room: str) -> list[str]:
        """Every live member connection of a room (see :meth:`room_members`)."""
        return [member.connection_id for member in self.room_members(room).live]

    def all_connection_pages(self) -> Iterator[list[str]]:
        """Every live connection, a page at a time, from the sparse GSI1 only."""
        for items in self._index_pages(GSI1, "PK, #ttl"):
            yield self._live_connection_ids(items)

    # -- many connections, token lifetime ------------------------------------------

    def get_connections(self, connection_ids: Iterable[str]) -> list[Connection]:
        """The live ones of these connections: one consistent BatchGetItem per 100."""
        keys = [connection_key(cid) for cid in dict.fromkeys(connection_ids)]
        return readable.each(self._live(self._batch_get(keys)), _connection_from_item,
                             "connections")

    def refresh_connection(
        self,
        connection_id: str,
        expires_at: int,
        issued_at: int | None,
        roles: Sequence[str],
        grants: RoomGrants | None,
    ) -> Connection:
        """Give a registered connection its new token: ``exp``, ``iat``, roles and rooms claim.

        One conditional ``UpdateItem`` (:class:`NotConnected` when the record is
        gone); the connection's rooms and memberships are untouched.
        """
        sets = ["#exp = :exp", "GSI2PK = :shard", "#roles = :roles"]
        removes: list[str] = []
        values: Item = {
            ":exp": {"N": str(expires_at)},
            ":shard": {"S": _expiry_partition(connection_id)},
            ":roles": {"L": [{"S": role} for role in roles]},
        }
        if issued_at is None:
            removes.append("issuedAt")
        else:
            sets.append("issuedAt = :iat")
            values[":iat"] = {"N": str(issued_at)}
        if grants is None:
            removes.append("grants")
        else:
            sets.append("grants = :grants")
            values[":grants"] = _grants_item(grants)
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=connection_key(connection_id),
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeNames={"#exp": EXPIRES_AT, "#roles": "roles"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            raise NotConnected(connection_id) from None
        return _connection_from_item(response["Attributes"])

    def due_connections(self, until: int) -> list[Connection]:
        """Connections whose token expired at or before ``until`` (epoch seconds).

        One Query per GSI2 shard, whose key condition reads only the expired
        entries, then their items in one consistent ``BatchGetItem`` per 100:
        the index is eventually consistent, so a connection refreshed a moment
        ago is left alone. Records whose ``ttl`` has passed are included, so
        that the caller finds them gone and forgets them.
        """
        found: list[str] = []
        for shard in range(EXPIRY_SHARDS):
            found += [_strip(item["PK"]["S"], _CONN_PREFIX) for item in self._query(
                IndexName=GSI2,
                KeyConditionExpression="GSI2PK = :pk AND #exp <= :until",
                ExpressionAttributeNames={"#exp": EXPIRES_AT},
                ExpressionAttributeValues={
                    ":pk": {"S": f"{_EXPIRY_PREFIX}{shard}"}, ":until": {"N": str(until)},
                },
                ProjectionExpression="PK",
            )]
        keys = [connection_key(cid) for cid in dict.fromkeys(found)]
        connections = readable.each(self._batch_get(keys), _connection_from_item, "connections")
        return [c for c in connections if c.expires_at is not None and c.expires_at <= until]

    def connection_summaries(self) -> Iterator[list[ConnectionSummary]]:
        """Every live connection's user and rooms, a page at a time: a Scan of GSI2 only."""
        for items in self._index_pages(GSI2, "PK, userId, rooms, #ttl"):
            yield readable.each(self._live(items), _summary_from_item, "the connections' index")

    # -- internals ----------------------------------------------------------

    @staticmethod
    def _room_request(room: str, prefix: str, projection: str) -> dict[str, Any]:
        """A consistent Query of the room's items whose ``SK`` begins with ``prefix``
        (memberships or presence items, never both)."""
        return {
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": {"S": _ROOM_PREFIX + room}, ":prefix": {"S": prefix},
            },
            "ProjectionExpression": projection,
            "ExpressionAttributeNames": {"#ttl": TTL_ATTRIBUTE},
            "ConsistentRead": True,
        }

    def _expired(self, item: Item) -> bool:
        ttl = item.get(TTL_ATTRIBUTE)
        return ttl is not None and int(ttl["N"]) <= self._clock()

    def _live(self, items: Iterable[Item]) -> list[Item]:
        """The items whose ``ttl`` has not passed."""
        return [item for item in items if not self._expired(item)]

    def _live_connection_ids(self, items: Iterable[Item]) -> list[str]:
        """The ids of the live ones of these connection items (or index entries)."""
        return [_strip(item["PK"]["S"], _CONN_PREFIX) for item in self._live(items)]

    def _get_live(self, key: Item) -> Item | None:
        """One item, read consistently; None when it is missing or its ``ttl`` has passed."""
        item: Item | None = self._client.get_item(
            TableName=self._table, Key=key, ConsistentRead=True
        ).get("Item")
        return None if item is None or self._expired(item) else item

    def _index_pages(self, index: str, projection: str) -> Iterator[list[Item]]:
        """A Scan of a sparse index, a page at a time (``#ttl`` names the ttl)."""
        return self._pages(self._client.scan, {
            "IndexName": index,
            "ProjectionExpression": projection,
            "ExpressionAttributeNames": {"#ttl": TTL_ATTRIBUTE},
        })

    def _query(self, **request: Any) -> list[Item]:
        """Every item a Query finds, all its pages read."""
        return [item for items in self._pages(self._client.query, request) for item in items]

    def _pages(self, call: Callable[..., Any], request: dict[str, Any]) -> Iterator[list[Item]]:
        """The items of a Query or Scan of the table, a page at a time: the next page is
        only asked for when the caller wants it."""
        request["TableName"] = self._table
        while True:
            response = call(**request)
            yield response["Items"]
            last_key = response.get("LastEvaluatedKey")
            if last_key is None:
                return
            request["ExclusiveStartKey"] = last_key

    @staticmethod
    def _present(item: Item) -> tuple[str, tuple[str, ...]]:
        """A presence item: its user, and its connections.

        Listed even once the item's ``ttl`` has passed: the caller checks each
        connection's own item, and forgets (announcing their leave) those gone.
        """
        user_id = _strip(item["SK"]["S"], _USER_PREFIX)
        return user_id, tuple(sorted(item.get("conns", {}).get("SS", [])))

    def _enter(
        self, room: str, user_id: str, connection_id: str, watching: bool
    ) -> tuple[bool, int, int]:
        """Add a connection to the user's presence set (and its watchers, with ``watching``).

        Returns whether the set was empty (the user's first connection), and by
        how many users and connections the room's count grows. The presence
        item's ``ttl`` is pushed to the longest any connection may live, so it
        outlives every member. An item whose ``ttl`` has passed (all its
        connections expired unnoticed) is started over instead, with a
        conditional put that only one writer wins; what it held leaves the count.
        """
        key = presence_key(room, user_id)
        ttl = {"N": str(int(self._clock()) + self._ttl_seconds)}
        now = {"N": str(int(self._clock()))}
        added = "ADD conns :conn, watching :conn" if watching else "ADD conns :conn"
        for _ in range(_PRESENCE_ATTEMPTS):
            try:
                response = self._client.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression=f"{added} SET #ttl = :ttl",
                    ConditionExpression="attribute_not_exists(#ttl) OR #ttl > :now",
                    ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                    ExpressionAttributeValues={
                        ":conn": {"SS": [connection_id]}, ":ttl": ttl, ":now": now,
                    },
                    ReturnValues="ALL_OLD",
                )
            except self._client.exceptions.ConditionalCheckFailedException:
                item: Item = {**key, "conns": {"SS": [connection_id]}, TTL_ATTRIBUTE: ttl}
                if watching:
                    item["watching"] = {"SS": [connection_id]}
                old = self._start_over(item, now)
                if old is not None:
                    stale = old.get("conns", {}).get("SS", [])
                    return True, 1 - (len(stale) > 0), 1 - len(stale)
                continue
            before = response.get("Attributes", {}).get("conns", {}).get("SS", [])
            return not before, int(not before), int(connection_id not in before)
        raise RegistryError(f"presence of {user_id!r} in {room!r} kept changing")

    def _start_over(self, item: Item, now: Item) -> Item | None:
        """Replace an item whose ``ttl`` has passed by ``item``: a conditional put that only
        one writer wins. What the old item held, or None when it was live (lost)."""
        try:
            response = self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="#ttl <= :now",
                ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={":now": now},
                ReturnValues="ALL_OLD",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return None
        attributes: Item = response.get("Attributes", {})
        return attributes

    def _exit(self, room: str, user_id: str, connection_id: str) -> tuple[bool, bool]:
        """Take a connection out of the user's presence set: whether the room's count
        held it, and whether it was the last (then the emptied item is deleted).

        Conditional on the set holding it, so that removing twice (or a
        connection that never got in) changes nothing and creates no item.
        The delete is conditional on the set still being empty: a connection
        that joined in between keeps its item. A presence item whose ``ttl``
        had passed is not in the count: every connection in it expired, and
        so did the room's count, which started over without them.
        """
        key = presence_key(room, user_id)
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="DELETE conns :conn, watching :conn",
                ConditionExpression="contains(conns, :id)",
                ExpressionAttributeValues={
                    ":conn": {"SS": [connection_id]}, ":id": {"S": connection_id},
                },
                ReturnValues="ALL_OLD",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False, False
        old = response.get("Attributes", {})
        before = old.get("conns", {}).get("SS", [])
        last = set(before) == {connection_id}
        if last:
            with contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException):
                self._client.delete_item(
                    TableName=self._table, Key=key,
                    ConditionExpression="attribute_not_exists(conns)",
                )
        return not self._expired(old), last

    def _count(
        self, room: str, users: int, connections: int, joined: bool = False
    ) -> RoomCount:
        """Change the room's counts by these amounts (one ``ADD``); the counts after.

        The room item's ``ttl`` follows its latest change, so it outlives every
        member's and every presence item's. One whose ``ttl`` passed (every
        member expired unnoticed) starts over, like a presence item: with the
        one connection that ``joined`` (its user's presence item had expired
        too, so it is their first), or empty.
        """
        now = int(self._clock())
        ttl = {"N": str(now + self._ttl_seconds)}
        for _ in range(_PRESENCE_ATTEMPTS):
            try:
                response = self._client.update_item(
                    TableName=self._table,
                    Key=room_key(room),
                    UpdateExpression="ADD #users :users, #conns :conns SET #ttl = :ttl",
                    ConditionExpression="attribute_not_exists(#ttl) OR #ttl > :now",
                    ExpressionAttributeNames={
                        "#users": "users", "#conns": "connections", "#ttl": TTL_ATTRIBUTE,
                    },
                    ExpressionAttributeValues={
                        ":users": {"N": str(users)}, ":conns": {"N": str(connections)},
                        ":ttl": ttl, ":now": {"N": str(now)},
                    },
                    ReturnValues="ALL_NEW",
                )
            except self._client.exceptions.ConditionalCheckFailedException:
                fresh = RoomCount(1, 1) if joined else RoomCount(0, 0)
                if self._start_over({
                    **room_key(room),
                    "users": {"N": str(fresh.users)},
                    "connections": {"N": str(fresh.connections)},
                    TTL_ATTRIBUTE: ttl,
                }, {"N": str(now)}) is None:
                    continue
                return fresh
            return _count_from_item(response["Attributes"])
        raise RegistryError(f"the count of room {room!r} kept changing")

    @staticmethod
    def _map(call: Callable[[Any], T], items: list[Any]) -> list[T]:
        """Single-item writes, several at a time when there are many (a big cleanup)."""
        if len(items) <= 1:
            return [call(item) for item in items]
        return list(_writers().map(call, items))

    def _update_rooms(
        self, connection_id: str, verb: str, room: str, limit: int | None = None
    ) -> None:
        """``ADD`` or ``DELETE`` one room in the set on a registered connection.

        With ``limit``, an ``ADD`` also needs the set to hold fewer rooms, or
        this one: a refusal is then told apart from a forgotten connection by
        reading the item.
        """
        condition = "attribute_exists(PK)"
        values: Item = {":room": {"SS": [room]}}
        if limit is not None:
            condition += (
                " AND (attribute_not_exists(rooms) OR size(rooms) < :limit"
                " OR contains(rooms, :name))"
            )
            values.update({":limit": {"N": str(limit)}, ":name": {"S": room}})
        try:
            self._client.update_item(
                TableName=self._table,
                Key=connection_key(connection_id),
                UpdateExpression=f"{verb} rooms :room",
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            if limit is not None and self.get_connection(connection_id) is not None:
                raise TooManyRooms(limit) from None
            raise NotConnected(connection_id) from None

    def _batch_get(
        self, keys: list[Item], projection: str | None = None,
        names: dict[str, str] | None = None,
    ) -> list[Item]:
        """Items by key, consistently (whole items without a ``projection``)."""
        found: list[Item] = []
        for chunk in _chunks(keys, _BATCH_GET_LIMIT):
            request: dict[str, Any] = {"Keys": chunk, "ConsistentRead": True}
            if projection is not None:
                request["ProjectionExpression"] = projection
            if names:
                request["ExpressionAttributeNames"] = names
            for response in self._until_processed(
                self._client.batch_get_item, {self._table: request}, "UnprocessedKeys"
            ):
                found.extend(response["Responses"].get(self._table, []))
        return found

    def _batch_delete(self, keys: list[Item]) -> None:
        for chunk in _chunks(keys, _BATCH_WRITE_LIMIT):
            deletes = [{"DeleteRequest": {"Key": key}} for key in chunk]
            for _ in self._until_processed(
                self._client.batch_write_item, {self._table: deletes}, "UnprocessedItems"
            ):
                pass

    @staticmethod
    def _until_processed(
        call: Callable[..., Any], pending: dict[str, Any], unprocessed: str
    ) -> Iterator[Any]:
        """Repeat a batch call on what DynamoDB left unprocessed, with backoff.

        Real DynamoDB returns unprocessed keys or items under load instead of
        failing the request; moto never does, so dynalite's runs matter here.
        """
        for attempt in range(_UNPROCESSED_RETRIES):
            response = call(RequestItems=pending)
            yield response
            pending = response.get(unprocessed) or {}
            if not pending:
                return
            _backoff(attempt)
        raise RegistryError(f"{unprocessed} left after {_UNPROCESSED_RETRIES} attempts")


_writer_pool: ThreadPoolExecutor | None = None
_writer_lock = threading.Lock()


def _writers() -> ThreadPoolExecutor:
    """The container's pool for concurrent single-item writes, built on first use."""
    global _writer_pool
    with _writer_lock:
        if _writer_pool is None:
            _writer_pool = ThreadPoolExecutor(_WRITERS, thread_name_prefix="registry")
        return _writer_pool


def connection_key(connection_id: str) -> Item:
    """The key of a connection item (for tools and tests: nothing else spells it)."""
    return {"PK": {"S": _CONN_PREFIX + connection_id}, "SK": {"S": _CONN_SK}}


def membership_key(room: str, connection_id: str) -> Item:
    """The key of a connection's membership item in a room."""
    return {"PK": {"S": _ROOM_PREFIX + room}, "SK": {"S": _CONN_PREFIX + connection_id}}


def presence_key(room: str, user_id: str) -> Item:
    """The key of a user's presence item in a room."""
    return {"PK": {"S": _ROOM_PREFIX + room}, "SK": {"S": _USER_PREFIX + user_id}}


def room_key(room: str) -> Item:
    """The key of a room's item (its counts)."""
    return {"PK": {"S": _ROOM_PREFIX + room}, "SK": {"S": _ROOM_SK}}


def revocation_key(user_id: str) -> Item:
    """The key of a user's revocation item (:mod:`chalicelib.revocations`)."""
    return {"PK": {"S": _REVOKED_PREFIX + user_id}, "SK": {"S": _REVOKED_SK}}


def idempotency_key(scope: str, key: str) -> Item:
    """The key of an idempotency item: ``key`` within ``scope`` (:mod:`chalicelib.idempotency`)."""
    return {"PK": {"S": _IDEMPOTENCY_PREFIX + scope}, "SK": {"S": _IDEMPOTENCY_KEY_PREFIX + key}}


def rate_counter_key(per_user: bool, subject: str, action: str, seconds: int,
                     window: int) -> Item:
    """The key of a rate counter: a connection's (or with ``per_user`` a user's) frames of
    ``action`` in window ``window`` of ``seconds`` (:mod:`chalicelib.ratelimit`)."""
    scope = "u" if per_user else "c"
    return {
        "PK": {"S": f"{_RATE_PREFIX}{scope}#{subject}"},
        "SK": {"S": f"{action}#{seconds}#{window}"},
    }


def is_rate_counter(item: Item) -> bool:
    """Whether a table item is a rate counter (for tools and tests)."""
    return str(item["PK"]["S"]).startswith(_RATE_PREFIX)


def describe(item: Item) -> tuple[str, ...] | None:
    """What a registry item is, from its key: ``("connection", id)``,
    ``("membership", room, id)``, ``("presence", room, userId)`` or
    ``("room", room)``; None for an
    item that is not the registry's (a stream's, say). For tools and tests."""
    pk, sk = item["PK"]["S"], item["SK"]["S"]
    if pk.startswith(_CONN_PREFIX) and sk == _CONN_SK:
        return ("connection", _strip(pk, _CONN_PREFIX))
    if pk.startswith(_ROOM_PREFIX) and sk.startswith(_CONN_PREFIX):
        return ("membership", _strip(pk, _ROOM_PREFIX), _strip(sk, _CONN_PREFIX))
    if pk.startswith(_ROOM_PREFIX) and sk.startswith(_USER_PREFIX):
        return ("presence", _strip(pk, _ROOM_PREFIX), _strip(sk, _USER_PREFIX))
    if pk.startswith(_ROOM_PREFIX) and sk == _ROOM_SK:
        return ("room", _strip(pk, _ROOM_PREFIX))
    return None


def _expiry_partition(connection_id: str) -> str:
    """The GSI2 partition of a connection: a stable hash of its id, over the shards."""
    return f"{_EXPIRY_PREFIX}{zlib.crc32(connection_id.encode('utf-8')) % EXPIRY_SHARDS}"


def _add_key(keys: dict[tuple[str, str], Item], key: Item) -> None:
    """Collect a key once: a batch write refuses two requests for the same item."""
    keys[(key["PK"]["S"], key["SK"]["S"])] = key


def _connection_item(connection: Connection) -> Item:
    item: Item = {
        **connection_key(connection.connection_id),
        "GSI1PK": {"S": _USER_PREFIX + connection.user_id},
        "GSI1SK": {"S": _CONN_PREFIX + connection.connection_id},
        "connectionId": {"S": connection.connection_id},
        "userId": {"S": connection.user_id},
        "roles": {"L": [{"S": role} for role in connection.roles]},
        "connectedAt": {"S": connection.connected_at},
        "endpoint": {"S": connection.endpoint},
        TTL_ATTRIBUTE: {"N": str(connection.ttl)},
    }
    if connection.grants is not None:
        item["grants"] = _grants_item(connection.grants)
    if connection.expires_at is not None:
        item["GSI2PK"] = {"S": _expiry_partition(connection.connection_id)}
        item[EXPIRES_AT] = {"N": str(connection.expires_at)}
    if connection.issued_at is not None:
        item["issuedAt"] = {"N": str(connection.issued_at)}
    return item


def _grants_item(grants: RoomGrants) -> Item:
    return {"M": {
        pattern: {"SS": sorted(permissions)} for pattern, permissions in grants.patterns.items()
    }}


def _connection_from_item(item: Item) -> Connection:
    return Connection(
        connection_id=item["connectionId"]["S"],
        user_id=item["userId"]["S"],
        roles=tuple(role["S"] for role in item.get("roles", {}).get("L", [])),
        rooms=frozenset(item.get("rooms", {}).get("SS", [])),
        connected_at=item["connectedAt"]["S"],
        endpoint=item["endpoint"]["S"],
        ttl=int(item[TTL_ATTRIBUTE]["N"]),
        grants=_grants_from_item(item),
        expires_at=_number(item, EXPIRES_AT),
        issued_at=_number(item, "issuedAt"),
    )


def _summary_from_item(item: Item) -> ConnectionSummary:
    return ConnectionSummary(
        _strip(item["PK"]["S"], _CONN_PREFIX),
        item["userId"]["S"],
        frozenset(item.get("rooms", {}).get("SS", [])),
    )


def _number(item: Item, name: str) -> int | None:
    value = item.get(name)
    return None if value is None else int(value["N"])


def _grants_from_item(item: Item) -> RoomGrants | None:
    stored = item.get("grants")
    if stored is None:
        return None
    return RoomGrants({
        pattern: frozenset(permissions["SS"]) for pattern, permissions in stored["M"].items()
    })


def _member_from_item(item: Item) -> Member:
    return Member(
        _strip(item["SK"]["S"], _CONN_PREFIX),
        item.get("userId", {}).get("S", ""),
        item.get("presence", {}).get("BOOL", False),
    )


def _count_from_item(item: Item) -> RoomCount:
    def number(name: str) -> float:
        value = item.get(name)
        return 0.0 if value is None else float(value["N"])

    return RoomCount(
        max(0, int(number("users"))), max(0, int(number("connections"))),
        number("occupancyAt"), number("occupancyDue"),
    )


def _seconds(moment: float) -> str:
    """Epoch seconds as a DynamoDB number, to the millisecond."""
    return f"{moment:.3f}"


def _strip(value: str, prefix: str) -> str:
    return value[len(prefix):] if value.startswith(prefix) else value


def _chunks(items: list[Item], size: int) -> Iterator[list[Item]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _backoff(attempt: int) -> None:
    """Full-jitter exponential backoff for unprocessed batch items."""
    time.sleep(random.uniform(0, min(1.0, 0.025 * 2**attempt)))
