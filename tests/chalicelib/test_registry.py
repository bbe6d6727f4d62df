"""The connection registry against moto over HTTP."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from chalicelib.permissions import RoomGrants
from chalicelib.registry import (
    EXPIRY_SHARDS,
    ConnectionExists,
    ConnectionSummary,
    Departure,
    NotConnected,
    PresenceChange,
    PresencePage,
    Registry,
    RegistryError,
    RoomCount,
    describe,
)
from tests.chalicelib.conftest import registry_items

ENDPOINT = "https://abc.execute-api.us-east-1.amazonaws.com/api"
JOINS = frozenset({"join"})


@pytest.fixture
def clock() -> list[float]:
    return [time.time()]


@pytest.fixture
def registry(dynamodb: Any, table_name: str, clock: list[float]) -> Registry:
    return Registry(dynamodb, table_name, ttl_seconds=7500, clock=lambda: clock[0])


def all_items(dynamodb: Any, table_name: str) -> list[dict[str, Any]]:
    return dynamodb.scan(TableName=table_name)["Items"]  # type: ignore[no-any-return]


def every_connection(registry: Registry) -> list[str]:
    return sorted(cid for page in registry.all_connection_pages() for cid in page)


def test_a_connection_round_trips(registry: Registry, clock: list[float]) -> None:
    added = registry.add_connection("c1", "alice", ["admin"], ENDPOINT)
    found = registry.get_connection("c1")
    assert found == added
    assert found is not None
    assert found.user_id == "alice"
    assert found.roles == ("admin",)
    assert found.endpoint == ENDPOINT
    assert found.ttl == int(clock[0]) + 7500
    assert found.connected_at.endswith("Z")


def test_the_same_connection_id_cannot_be_registered_twice(registry: Registry) -> None:
    registry.add_connection("c1", "alice", [], ENDPOINT)
    with pytest.raises(ConnectionExists):
        registry.add_connection("c1", "mallory", [], ENDPOINT)
    found = registry.get_connection("c1")
    assert found is not None
    assert found.user_id == "alice"


def test_a_user_with_several_devices(registry: Registry) -> None:
    for cid in ("phone", "laptop"):
        registry.add_connection(cid, "alice", [], ENDPOINT)
    registry.add_connection("other", "bob", [], ENDPOINT)
    assert sorted(registry.user_connections("alice")) == ["laptop", "phone"]
    assert registry.user_connections("nobody") == []


def test_room_membership_and_the_connections_rooms(registry: Registry) -> None:
    alice = registry.add_connection("a", "alice", [], ENDPOINT)
    bob = registry.add_connection("b", "bob", [], ENDPOINT)
    registry.join_room(alice, "lobby", presence=False)
    registry.join_room(alice, "lobby", presence=False)
    registry.join_room(bob, "lobby", presence=False)
    registry.join_room(alice, "games", presence=False)
    assert sorted(registry.room_connections("lobby")) == ["a", "b"]
    found = registry.get_connection("a")
    assert found is not None
    assert found.rooms == frozenset({"lobby", "games"})
    registry.leave_room(alice, "lobby")
    registry.leave_room(alice, "never-joined")
    assert registry.room_connections("lobby") == ["b"]
    found = registry.get_connection("a")
    assert found is not None
    assert found.rooms == frozenset({"games"})


def test_room_changes_on_a_forgotten_connection_are_refused(
    registry: Registry, dynamodb: Any, table_name: str
) -> None:
    alice = registry.add_connection("a", "alice", [], ENDPOINT)
    registry.remove_connection("a")
    with pytest.raises(NotConnected):
        registry.join_room(alice, "lobby", presence=False)
    with pytest.raises(NotConnected):
        registry.leave_room(alice, "lobby")
    assert all_items(dynamodb, table_name) == []


def test_remove_deletes_memberships_and_is_idempotent(
    registry: Registry, dynamodb: Any, table_name: str
) -> None:
    alice = registry.add_connection("a", "alice", [], ENDPOINT)
    for room in ("r1", "r2", "r3"):
        registry.join_room(alice, room, presence=False)
    registry.add_connection("b", "bob", [], ENDPOINT)
    registry.remove_connection("a")
    registry.remove_connection("a")
    registry.remove_connection("never-existed")
    remaining = registry_items(all_items(dynamodb, table_name))
    assert [describe(item) for item in remaining] == [("connection", "b")]


def test_remove_many_in_batches(
    registry: Registry, dynamodb: Any, table_name: str, dynamodb_calls: Counter[str]
) -> None:
    ids = [f"c{i}" for i in range(60)]
    for cid in ids:
        connection = registry.add_connection(cid, "u", [], ENDPOINT)
        registry.join_room(connection, "lobby", presence=False)
    dynamodb_calls.clear()
    departures = registry.remove_connections(ids)
    # 60 keys fit one BatchGetItem; 120 deletes need ceil(120 / 25) = 5 BatchWriteItem;
    # each membership leaves its user's presence set: one UpdateItem each; the room's
    # count drops once (one UpdateItem); the emptied presence item is deleted (DeleteItem).
    assert dynamodb_calls == Counter(
        {"BatchGetItem": 1, "BatchWriteItem": 5, "UpdateItem": 61, "DeleteItem": 1}
    )
    assert departures == [Departure("lobby", "u")]
    assert registry_items(all_items(dynamodb, table_name)) == []


def test_broadcast_pages_read_only_connection_items(
    registry: Registry, dynamodb: Any, table_name: str
) -> None:
    ids = [f"c{i:03d}" for i in range(30)]
    for cid in ids:
        connection = registry.add_connection(cid, f"user{cid}", [], ENDPOINT)
        registry.join_room(connection, "lobby", presence=False)
        registry.join_room(connection, "games", presence=False)
    assert every_connection(registry) == ids
    response = dynamodb.scan(TableName=table_name, IndexName="GSI1", Select="COUNT")
    assert response["ScannedCount"] == len(ids)
    # A connection, two memberships and two presence items per user; each room's count.
    assert len(all_items(dynamodb, table_name)) == 5 * len(ids) + 2


def test_broadcast_follows_pagination(registry: Registry, dynamodb: Any) -> None:
    # ~3 KB per item (roles) pushes 500 items past DynamoDB's 1 MB page.
    roles = ["r" * 100] * 30
    ids = [f"c{i:04d}" for i in range(500)]
    for cid in ids:
        registry.add_connection(cid, "u", roles, ENDPOINT)
    pages = list(registry.all_connection_pages())
    assert sorted(cid for page in pages for cid in page) == ids


def test_expired_items_are_gone_to_every_read(registry: Registry, clock: list[float]) -> None:
    alice = registry.add_connection("a", "alice", [], ENDPOINT)
    registry.join_room(alice, "lobby", presence=False)
    clock[0] += 7501
    assert registry.get_connection("a") is None
    assert registry.user_connections("alice") == []
    assert registry.room_connections("lobby") == []
    assert every_connection(registry) == []
    fresh = registry.add_connection("b", "alice", [], ENDPOINT)
    registry.join_room(fresh, "lobby", presence=False)
    assert registry.user_connections("alice") == ["b"]
    assert registry.room_connections("lobby") == ["b"]


class LeavesHalfUnprocessed:
    """A DynamoDB client that, like DynamoDB under load, processes only half a batch.

    moto never returns unprocessed items; this proves the registry finishes the job.
    """

    def __init__(self, client: Any, times: int) -> None:
        self._client = client
        self._times = times
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.calls["BatchWriteItem"] += 1
        if self.calls["BatchWriteItem"] > self._times:
            return self._client.batch_write_item(RequestItems=RequestItems)  # type: ignore[no-any-return]
        [(table, requests)] = RequestItems.items()
        half = len(requests) // 2
        if half:
            self._client.batch_write_item(RequestItems={table: requests[:half]})
        return {"UnprocessedItems": {table: requests[half:]}}


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("chalicelib.registry._backoff", lambda attempt: None)


def test_unprocessed_items_are_retried_until_done(
    dynamodb: Any, table_name: str, no_backoff: None
) -> None:
    seeding = Registry(dynamodb, table_name, ttl_seconds=7500)
    ids = [f"c{i}" for i in range(10)]
    for cid in ids:
        seeding.add_connection(cid, "u", [], ENDPOINT)
    flaky = LeavesHalfUnprocessed(dynamodb, times=2)
    Registry(flaky, table_name, ttl_seconds=7500).remove_connections(ids)
    assert flaky.calls["BatchWriteItem"] == 3
    assert all_items(dynamodb, table_name) == []


def test_items_left_unprocessed_after_every_retry_raise(
    dynamodb: Any, table_name: str, no_backoff: None
) -> None:
    seeding = Registry(dynamodb, table_name, ttl_seconds=7500)
    seeding.add_connection("c1", "u", [], ENDPOINT)
    seeding.add_connection("c2", "u", [], ENDPOINT)
    flaky = LeavesHalfUnprocessed(dynamodb, times=99)
    with pytest.raises(RegistryError, match="UnprocessedItems"):
        Registry(flaky, table_name, ttl_seconds=7500).remove_connections(["c1", "c2"])


def test_presence_is_per_user_first_in_and_last_out(registry: Registry) -> None:
    phone = registry.add_connection("phone", "alice", [], ENDPOINT)
    laptop = registry.add_connection("laptop", "alice", [], ENDPOINT)
    assert registry.join_room(phone, "r", presence=True) == PresenceChange(True, RoomCount(1, 1))
    # Again: nothing new, nothing counted.
    assert registry.join_room(phone, "r", presence=True) == PresenceChange(False, None)
    assert registry.join_room(laptop, "r", presence=False) == PresenceChange(
        False, RoomCount(1, 2)
    )
    assert [(m.connection_id, m.presence) for m in registry.room_members("r").live] == [
        ("laptop", False), ("phone", True),
    ]
    assert registry.room_watchers("r") == ["phone"]
    assert registry.leave_room(phone, "r") == PresenceChange(False, RoomCount(1, 1))
    assert registry.room_watchers("r") == []
    assert registry.leave_room(phone, "r") == PresenceChange(False, None)  # not in it any more
    assert registry.leave_room(laptop, "r") == PresenceChange(True, RoomCount(0, 0))
    assert registry.room_count("r") == RoomCount(0, 0)
    assert registry.presence_page("r", None, 10) == PresencePage((), None)


def test_a_presence_item_left_expired_starts_over(
    registry: Registry, clock: list[float], dynamodb_calls: Counter[str]
) -> None:
    """Every connection in it expired unnoticed: the next one in is the user's first."""
    stale = registry.add_connection("stale", "alice", [], ENDPOINT)
    registry.join_room(stale, "r", presence=True)
    clock[0] += 7501
    fresh = registry.add_connection("fresh", "alice", [], ENDPOINT)
    dynamodb_calls.clear()
    # The stale connection leaves the count as the fresh one enters it (the room's
    # count itself expired too, and starts over).
    assert registry.join_room(fresh, "r", presence=True) == PresenceChange(True, RoomCount(1, 1))
    # rooms ADD, membership, the presence ADD refused on the expired item, its restart;
    # the count's ADD refused on its expired item, its restart.
    assert dynamodb_calls == Counter({"UpdateItem": 3, "PutItem": 3})
    assert [m.connection_id for m in registry.room_members("r").live] == ["fresh"]
    assert registry.room_members("r").expired == ("stale",)
    assert registry.leave_room(fresh, "r").changed


def test_removing_connections_reports_who_left_which_room(registry: Registry) -> None:
    a1 = registry.add_connection("a1", "alice", [], ENDPOINT)
    a2 = registry.add_connection("a2", "alice", [], ENDPOINT)
    bob = registry.add_connection("b", "bob", [], ENDPOINT)
    for connection, room in ((a1, "r"), (a1, "s"), (a2, "r"), (bob, "r")):
        registry.join_room(connection, room, presence=False)
    departures = registry.remove_connections(["a1", "b"])
    assert sorted(departures, key=lambda d: (d.room, d.user_id)) == [
        Departure("r", "bob"), Departure("s", "alice"),
    ]
    assert registry.remove_connections(["a2"]) == [Departure("r", "alice")]
    assert registry.remove_connections(["a2"]) == []


# -- token lifetime: GSI2 -----------------------------------------------------------------


def test_due_connections_are_those_whose_token_expired(registry: Registry) -> None:
    registry.add_connection("early", "alice", [], ENDPOINT, expires_at=1000)
    registry.add_connection("late", "bob", [], ENDPOINT, expires_at=2000)
    registry.add_connection("undated", "carol", [], ENDPOINT)
    assert registry.due_connections(999) == []
    assert [c.connection_id for c in registry.due_connections(1000)] == ["early"]
    assert sorted(c.connection_id for c in registry.due_connections(5000)) == ["early", "late"]


def test_a_refresh_moves_the_connection_out_of_the_due(registry: Registry) -> None:
    registry.add_connection("c1", "alice", ["admin"], ENDPOINT, expires_at=1000, issued_at=900)
    refreshed = registry.refresh_connection("c1", 3000, 2900, ["mod"], RoomGrants({"a": JOINS}))
    assert (refreshed.expires_at, refreshed.issued_at, refreshed.roles) == (3000, 2900, ("mod",))
    assert refreshed.grants == RoomGrants({"a": JOINS})
    assert registry.due_connections(2000) == []
    assert registry.get_connection("c1") == refreshed
    undated = registry.refresh_connection("c1", 4000, None, [], None)
    assert (undated.issued_at, undated.grants, undated.roles) == (None, None, ())


def test_refreshing_a_connection_that_is_gone_raises(registry: Registry) -> None:
    with pytest.raises(NotConnected):
        registry.refresh_connection("gone", 3000, None, [], None)
    assert registry.get_connection("gone") is None


def test_connections_spread_over_every_expiry_shard(
    registry: Registry, dynamodb: Any, table_name: str
) -> None:
    for n in range(120):
        registry.add_connection(f"conn-{n}", "alice", [], ENDPOINT, expires_at=1000)
    partitions = Counter(item["GSI2PK"]["S"] for item in all_items(dynamodb, table_name))
    assert len(partitions) == EXPIRY_SHARDS
    assert len(registry.due_connections(1000)) == 120


def test_summaries_list_live_connections_with_their_rooms(
    registry: Registry, clock: list[float]
) -> None:
    alice = registry.add_connection("c1", "alice", [], ENDPOINT, expires_at=int(clock[0]) + 60)
    registry.join_room(alice, "lobby", presence=True)
    registry.add_connection("c2", "bob", [], ENDPOINT, expires_at=int(clock[0]) + 60)
    summaries = {s.connection_id: s for page in registry.connection_summaries() for s in page}
    assert summaries == {
        "c1": ConnectionSummary("c1", "alice", frozenset({"lobby"})),
        "c2": ConnectionSummary("c2", "bob", frozenset()),
    }
    clock[0] += 7501
    assert [s for page in registry.connection_summaries() for s in page] == []


def test_get_connections_reads_many_and_skips_the_gone(registry: Registry) -> None:
    for n in range(130):
        registry.add_connection(f"c{n}", "alice", [], ENDPOINT)
    found = registry.get_connections([f"c{n}" for n in range(130)] + ["gone", "c1"])
    assert sorted(c.connection_id for c in found) == sorted(f"c{n}" for n in range(130))
