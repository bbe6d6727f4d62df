"""The connection registry: the only code that knows the table's key formats.

One table, two item types::

    connection  PK=CONN#<connectionId>  SK=CONN
                GSI1PK=USER#<userId>    GSI1SK=CONN#<connectionId>
                connectionId, userId, roles, rooms (string set), connectedAt,
                endpoint, ttl
    membership  PK=ROOM#<room>          SK=CONN#<connectionId>
                connectionId, userId, ttl

Only connection items carry GSI1 attributes, so GSI1 is a sparse index of live
connections: a user's devices are one Query on it and a broadcast pages through
it without ever reading a room or membership item. A room's members are one
Query on the base table; a connection's rooms live on its own item, so
``$disconnect`` needs one read before its batched deletes.

DynamoDB deletes expired items lazily (up to days later), so every read here
treats an item whose ``ttl`` has passed as already gone.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.clock import iso8601

GSI1 = "GSI1"
_CONN_PREFIX = "CONN#"
_ROOM_PREFIX = "ROOM#"
_USER_PREFIX = "USER#"
_CONN_SK = "CONN"
_BATCH_WRITE_LIMIT = 25
_BATCH_GET_LIMIT = 100
_UNPROCESSED_RETRIES = 8

Item = dict[str, Any]
Clock = Callable[[], float]


class RegistryError(Exception):
    """Base class of the registry's own errors."""


class ConnectionExists(RegistryError):
    """A connection item with this id is already registered."""


class NotConnected(RegistryError):
    """The connection is not (or no longer) registered."""


@dataclass(frozen=True)
class Connection:
    connection_id: str
    user_id: str
    roles: tuple[str, ...]
    rooms: frozenset[str]
    connected_at: str
    endpoint: str
    ttl: int


def table_definition(table_name: str) -> dict[str, Any]:
    """CreateTable arguments; the deployment templates must describe the same table."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"}
            for name in ("PK", "SK", "GSI1PK", "GSI1SK")
        ],
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
            }
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
        response = self._client.get_item(
            TableName=self._table,
            Key=_connection_key(connection_id),
            ConsistentRead=True,
        )
        item = response.get("Item")
        if item is None or self._expired(item):
            return None
        return _connection_from_item(item)

    def remove_connection(self, connection_id: str) -> None:
        """Delete a connection and its memberships; removing twice is harmless."""
        self.remove_connections([connection_id])

    def remove_connections(
        self, connection_ids: Iterable[str], rooms: Iterable[str] = ()
    ) -> None:
        """Delete many connections and their memberships in batched requests.

        A connection's memberships are the rooms its item names. ``rooms`` adds
        rooms whose membership of these connections is deleted whatever the
        items say: a room send that finds targets gone passes its room, because
        a ``joinRoom`` that raced ``$disconnect`` can leave a membership whose
        connection item is already deleted, which ``rooms`` on the item cannot
        name.
        """
        ids = list(dict.fromkeys(connection_ids))
        if not ids:
            return
        keys: dict[tuple[str, str], Item] = {}
        for room in dict.fromkeys(rooms):
            for connection_id in ids:
                _add_key(keys, _membership_key(room, connection_id))
        for item in self._batch_get(
            [_connection_key(cid) for cid in ids], projection="PK, rooms"
        ):
            connection_id = _strip(item["PK"]["S"], _CONN_PREFIX)
            for room in item.get("rooms", {}).get("SS", []):
                _add_key(keys, _membership_key(room, connection_id))
        for connection_id in ids:
            _add_key(keys, _connection_key(connection_id))
        self._batch_delete(list(keys.values()))

    # -- rooms --------------------------------------------------------------

    def join_room(self, connection: Connection, room: str) -> None:
        """Store a membership; joining a room twice is harmless.

        Two single-item writes, not a transaction (DynamoDB-compatible engines
        such as dynalite have no ``TransactWriteItems``), ordered so that the
        connection's ``rooms`` set always covers its membership items:

        1. ``ADD rooms`` on the connection item, on condition it exists — a
           forgotten connection raises :class:`NotConnected` and nothing is written;
        2. ``PutItem`` of the membership.

        A crash between the two leaves the room in ``rooms`` without a
        membership: the connection misses that room's messages until it joins
        again (idempotent), and ``$disconnect`` still deletes everything it
        owns, because it deletes the memberships ``rooms`` names. No membership
        item can outlive its connection through a crash, only through a
        ``$disconnect`` racing the join, and then only until its ``ttl``.
        """
        self._update_rooms(connection.connection_id, "ADD", room)
        self._client.put_item(
            TableName=self._table,
            Item={
                **_membership_key(room, connection.connection_id),
                "connectionId": {"S": connection.connection_id},
                "userId": {"S": connection.user_id},
                TTL_ATTRIBUTE: {"N": str(connection.ttl)},
            },
        )

    def leave_room(self, connection: Connection, room: str) -> None:
        """Remove a membership; leaving a room one is not in is harmless.

        The mirror of :meth:`join_room`: ``DeleteItem`` of the membership first,
        then ``DELETE rooms`` on the connection item on condition it exists
        (:class:`NotConnected` otherwise). A crash between the two leaves the
        room in ``rooms`` with no membership — the same harmless state as a
        half-done join, which leaving again repairs — so ``rooms`` still covers
        every membership item and ``$disconnect`` still finds them all.
        """
        self._client.delete_item(
            TableName=self._table, Key=_membership_key(room, connection.connection_id)
        )
        self._update_rooms(connection.connection_id, "DELETE", room)

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
            key="PK",
        )

    def room_connections(self, room: str) -> list[str]:
        """Every live member connection of a room: one Query on the base table."""
        return self._live_connection_ids(
            self._query(
                KeyConditionExpression="PK = :pk",
                ExpressionAttributeValues={":pk": {"S": _ROOM_PREFIX + room}},
                ProjectionExpression="SK, #ttl",
                ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                ConsistentRead=True,
            ),
            key="SK",
        )

    def all_connection_pages(self) -> Iterator[list[str]]:
        """Every live connection, a page at a time, from the sparse GSI1 only."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": GSI1,
            "ProjectionExpression": "PK, #ttl",
            "ExpressionAttributeNames": {"#ttl": TTL_ATTRIBUTE},
        }
        while True:
            response = self._client.scan(**request)
            yield self._live_connection_ids(response["Items"], key="PK")
            last_key = response.get("LastEvaluatedKey")
            if last_key is None:
                return
            request["ExclusiveStartKey"] = last_key

    # -- internals ----------------------------------------------------------

    def _expired(self, item: Item) -> bool:
        ttl = item.get(TTL_ATTRIBUTE)
        return ttl is not None and int(ttl["N"]) <= self._clock()

    def _live_connection_ids(self, items: Iterable[Item], key: str) -> list[str]:
        return [
            _strip(item[key]["S"], _CONN_PREFIX)
            for item in items
            if not self._expired(item)
        ]

    def _query(self, **request: Any) -> list[Item]:
        items: list[Item] = []
        request["TableName"] = self._table
        while True:
            response = self._client.query(**request)
            items.extend(response["Items"])
            last_key = response.get("LastEvaluatedKey")
            if last_key is None:
                return items
            request["ExclusiveStartKey"] = last_key

    def _update_rooms(self, connection_id: str, verb: str, room: str) -> None:
        """``ADD`` or ``DELETE`` one room in the set on a registered connection."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_connection_key(connection_id),
                UpdateExpression=f"{verb} rooms :room",
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeValues={":room": {"SS": [room]}},
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            raise NotConnected(connection_id) from None

    def _batch_get(self, keys: list[Item], projection: str) -> list[Item]:
        found: list[Item] = []
        for chunk in _chunks(keys, _BATCH_GET_LIMIT):
            request = {"Keys": chunk, "ProjectionExpression": projection, "ConsistentRead": True}
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


def _connection_key(connection_id: str) -> Item:
    return {"PK": {"S": _CONN_PREFIX + connection_id}, "SK": {"S": _CONN_SK}}


def _membership_key(room: str, connection_id: str) -> Item:
    return {"PK": {"S": _ROOM_PREFIX + room}, "SK": {"S": _CONN_PREFIX + connection_id}}


def _add_key(keys: dict[tuple[str, str], Item], key: Item) -> None:
    """Collect a key once: a batch write refuses two requests for the same item."""
    keys[(key["PK"]["S"], key["SK"]["S"])] = key


def _connection_item(connection: Connection) -> Item:
    item: Item = {
        **_connection_key(connection.connection_id),
        "GSI1PK": {"S": _USER_PREFIX + connection.user_id},
        "GSI1SK": {"S": _CONN_PREFIX + connection.connection_id},
        "connectionId": {"S": connection.connection_id},
        "userId": {"S": connection.user_id},
        "roles": {"L": [{"S": role} for role in connection.roles]},
        "connectedAt": {"S": connection.connected_at},
        "endpoint": {"S": connection.endpoint},
        TTL_ATTRIBUTE: {"N": str(connection.ttl)},
    }
    return item


def _connection_from_item(item: Item) -> Connection:
    return Connection(
        connection_id=item["connectionId"]["S"],
        user_id=item["userId"]["S"],
        roles=tuple(role["S"] for role in item.get("roles", {}).get("L", [])),
        rooms=frozenset(item.get("rooms", {}).get("SS", [])),
        connected_at=item["connectedAt"]["S"],
        endpoint=item["endpoint"]["S"],
        ttl=int(item[TTL_ATTRIBUTE]["N"]),
    )


def _strip(value: str, prefix: str) -> str:
    return value[len(prefix):] if value.startswith(prefix) else value


def _chunks(items: list[Item], size: int) -> Iterator[list[Item]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _backoff(attempt: int) -> None:
    """Full-jitter exponential backoff for unprocessed batch items."""
    time.sleep(random.uniform(0, min(1.0, 0.025 * 2**attempt)))
