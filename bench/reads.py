"""Registry reads: Switchboard's key design beside a Scan-based registry, on one table.

The table holds connections, rooms' memberships and users with several
devices, as production would. For each way of finding an audience (and for
connect and disconnect) both designs run against the same moto server and the
DynamoDB client counts, from botocore's own events:

* requests made (``before-parameter-build``, which sees the API parameters),
  and Scans of the base table among them;
* items read: ``ScannedCount`` of each Scan/Query page (what DynamoDB bills
  for, which a filter does not reduce), items returned by Get/BatchGet.

Counts are exact, so this figure is the same on any machine.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3

from chalicelib.registry import (
    Connection,
    Registry,
    _connection_item,
    connection_key,
    membership_key,
    table_definition,
)

ROOMS = 20
ROOMS_PER_CONNECTION = 3
DEVICES_PER_USER = 2
TTL_SECONDS = 7500


@dataclass
class Tally:
    """What one operation cost, counted at the client."""

    requests: Counter[str] = field(default_factory=Counter)
    items_read: int = 0
    base_table_scans: int = 0

    def before(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.requests[model.name] += 1
        if model.name == "Scan" and "IndexName" not in params:
            self.base_table_scans += 1

    def after(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        if "ScannedCount" in parsed:
            self.items_read += int(parsed["ScannedCount"])
        elif model.name == "GetItem":
            self.items_read += "Item" in parsed
        elif model.name == "BatchGetItem":
            self.items_read += sum(len(items) for items in parsed.get("Responses", {}).values())


class CountingClient:
    """A DynamoDB client whose requests are tallied per measured operation."""

    def __init__(self, endpoint_url: str) -> None:
        self.client = boto3.client("dynamodb", endpoint_url=endpoint_url)
        self._tally: Tally | None = None
        self.client.meta.events.register("before-parameter-build.dynamodb", self._before)
        self.client.meta.events.register("after-call.dynamodb", self._after)

    @contextmanager
    def counting(self) -> Iterator[Tally]:
        self._tally = Tally()
        try:
            yield self._tally
        finally:
            self._tally = None

    def _before(self, **kwargs: Any) -> None:
        if self._tally is not None:
            self._tally.before(**kwargs)

    def _after(self, **kwargs: Any) -> None:
        if self._tally is not None:
            self._tally.after(**kwargs)


class ScanRegistry:
    """The design most tutorials show: every lookup is a filtered Scan of the table."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def all_connections(self) -> list[str]:
        return self._ids(self._scan("SK = :conn", {":conn": connection_key("-")["SK"]}))

    def user_connections(self, user_id: str) -> list[str]:
        return self._ids(self._scan(
            "SK = :conn AND userId = :user",
            {":conn": connection_key("-")["SK"], ":user": {"S": user_id}},
        ))

    def room_connections(self, room: str) -> list[str]:
        return self._ids(self._scan("PK = :room", {":room": membership_key(room, "-")["PK"]}))

    def add_connection(self, connection_id: str, user_id: str) -> None:
        self._client.put_item(TableName=self._table, Item={
            **connection_key(connection_id),
            "connectionId": {"S": connection_id}, "userId": {"S": user_id},
        })

    def remove_connection(self, connection_id: str) -> None:
        """Find the connection and its memberships by Scan, then delete each one."""
        for item in self._scan("connectionId = :cid", {":cid": {"S": connection_id}}):
            key = {"PK": item["PK"], "SK": item["SK"]}
            self._client.delete_item(TableName=self._table, Key=key)

    def _scan(self, condition: str, values: dict[str, Any]) -> list[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": condition,
            "ExpressionAttributeValues": values,
        }
        items: list[dict[str, Any]] = []
        while True:
            response = self._client.scan(**request)
            items.extend(response["Items"])
            if "LastEvaluatedKey" not in response:
                return items
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    @staticmethod
    def _ids(items: list[dict[str, Any]]) -> list[str]:
        return [item["connectionId"]["S"] for item in items]


@dataclass(frozen=True)
class Population:
    connections: int
    users: int
    memberships: int

    @property
    def items(self) -> int:
        return self.connections + self.memberships


def populate(client: Any, table: str, connections: int) -> Population:
    """Connections of users with several devices, each in a few rooms.

    Items are built with the registry's own item builders and written in
    batches, so setting up thousands of items takes seconds.
    """
    ttl = int(time.time()) + TTL_SECONDS
    items: list[dict[str, Any]] = []
    for index in range(connections):
        cid, user = f"c{index:06d}=", f"u{index // DEVICES_PER_USER:05d}"
        rooms = [f"r{(index + k) % ROOMS:02d}" for k in range(ROOMS_PER_CONNECTION)]
        items.append(_connection_item(Connection(
            cid, user, (), frozenset(rooms), "2026-01-01T00:00:00.000Z", "https://x/api", ttl
        )) | {"rooms": {"SS": rooms}})
        items.extend(
            membership_key(room, cid)
            | {"connectionId": {"S": cid}, "userId": {"S": user}, "ttl": {"N": str(ttl)}}
            for room in rooms
        )
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start:start + 25]]
        client.batch_write_item(RequestItems={table: batch})
    users = -(-connections // DEVICES_PER_USER)
    return Population(connections, users, connections * ROOMS_PER_CONNECTION)


def measure(endpoint_url: str, connections: int) -> dict[str, Any]:
    """The reads figure: every audience lookup, both designs, same table."""
    counting = CountingClient(endpoint_url)
    client = counting.client
    table = f"switchboard-bench-{uuid.uuid4().hex[:8]}"
    client.create_table(**table_definition(table))
    try:
        population = populate(client, table, connections)
        ours = Registry(client, table, TTL_SECONDS)
        naive = ScanRegistry(client, table)
        rows = _rows(counting, ours, naive, population)
    finally:
        client.delete_table(TableName=table)
    return _figure(rows, population)


Operation = tuple[str, Callable[[], Any], Callable[[], Any]]


def _operations(ours: Registry, naive: ScanRegistry, population: Population) -> list[Operation]:
    last = f"c{population.connections - 1:06d}="
    return [
        ("broadcastAll", lambda: _all(ours), naive.all_connections),
        ("sendMessage", lambda: ours.user_connections("u00000"),
         lambda: naive.user_connections("u00000")),
        ("sendToRoom", lambda: ours.room_connections("r00"),
         lambda: naive.room_connections("r00")),
        ("connect", lambda: ours.add_connection("new-ours=", "newcomer", (), "https://x/api"),
         lambda: naive.add_connection("new-naive=", "newcomer")),
        ("disconnect", lambda: ours.remove_connection(last),
         lambda: naive.remove_connection(f"c{population.connections - 2:06d}=")),
    ]


def _all(registry: Registry) -> list[str]:
    return [cid for page in registry.all_connection_pages() for cid in page]


def _rows(
    counting: CountingClient, ours: Registry, naive: ScanRegistry, population: Population
) -> list[dict[str, Any]]:
    rows = []
    for name, run_ours, run_naive in _operations(ours, naive, population):
        for design, run in (("ours", run_ours), ("scan", run_naive)):
            with counting.counting() as tally:
                found = run()
            rows.append({
                "operation": name,
                "design": design,
                "targets": len(found) if isinstance(found, list) else "-",
                "items_read": tally.items_read,
                "requests": sum(tally.requests.values()),
                "base_table_scans": tally.base_table_scans,
                "calls": dict(sorted(tally.requests.items())),
            })
    return rows


def _figure(rows: list[dict[str, Any]], population: Population) -> dict[str, Any]:
    cell = {(row["operation"], row["design"]): row for row in rows}

    def ratio(operation: str) -> float:
        ours = cell[operation, "ours"]["items_read"]
        return float(cell[operation, "scan"]["items_read"]) / ours if ours else float("inf")

    return {
        "figure": "reads",
        "title": (
            f"Registry reads, table of {population.items} items: {population.connections} "
            f"connections, {population.memberships} memberships"
        ),
        "population": population.__dict__,
        "rows": rows,
        "ratios": {f"scan_vs_ours_items_{op}": ratio(op)
                   for op in ("broadcastAll", "sendMessage", "sendToRoom")},
        "checks": {
            "broadcast_items_read_equals_live_connections":
                cell["broadcastAll", "ours"]["items_read"] == population.connections,
            "broadcast_base_table_scans_zero":
                cell["broadcastAll", "ours"]["base_table_scans"] == 0,
            "send_message_one_query": cell["sendMessage", "ours"]["calls"] == {"Query": 1},
            "send_to_room_one_query": cell["sendToRoom", "ours"]["calls"] == {"Query": 1},
            "connect_one_write": cell["connect", "ours"]["calls"] == {"PutItem": 1},
        },
    }
