"""Presence that scales, and lists no ghost.

* Per-user ``presence`` events while a room has at most
  ``PRESENCE_EVENTS_MAX_MEMBERS`` users; above, ``occupancy`` frames at most once
  per ``OCCUPANCY_INTERVAL_SECONDS`` while the count changes — the first change
  at once, the last one when the interval ends — so a room filling up costs
  O(N) posts, not N(N-1)/2.
* A join never reads the room's memberships: its count comes back with the
  write that changes it (request counts flat in the room's size).
* ``presence`` never lists a user none of whose connections exists, even when
  the cleanup that should have removed them failed.

The announcer's clock and sleep are the test's: nothing waits for real time.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib import runtime
from chalicelib.presence import Announcer
from chalicelib.runtime import Services
from switchboard_local.testing import TestConnection, WebsocketTestClient

INTERVAL = 2.0


class Clock:
    """The announcer's time: a sleep moves it on at once, or, while ``held`` is set, once
    the test lets it go (``release``), as a sleeping invocation would while others run."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.slept: list[float] = []
        self.held: threading.Event | None = None
        self.sleeping = threading.Event()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if self.held is not None:
            self.sleeping.set()
            assert self.held.wait(30)
        else:
            self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def stage(services: Services, clock: Clock) -> Callable[[int], Services]:
    """The services with at most ``max_members`` users for per-user events, on the clock."""

    def build(max_members: int) -> Services:
        settings = dataclasses.replace(
            services.settings, presence_events_max_members=max_members,
            occupancy_interval_seconds=int(INTERVAL),
        )
        staged = dataclasses.replace(services, settings=settings)
        staged.__dict__["announcer"] = Announcer(  # before anything asks for it
            staged.registry, staged.outbox, max_members, INTERVAL, clock, clock.sleep
        )
        runtime.use(staged)
        return staged

    return build


def notices(connection: TestConnection) -> list[tuple[Any, ...]]:
    found = []
    for frame in connection.new_frames():
        if frame["type"] == "presence":
            found.append(("presence", frame["userId"], frame["event"]))
        elif frame["type"] == "occupancy":
            found.append(("occupancy", frame["users"], frame["connections"]))
    return found


def test_small_rooms_get_per_user_events_large_ones_occupancy(
    stage: Any, connect: Any, clock: Clock
) -> None:
    stage(3)
    watcher = connect("watcher")
    watcher.request({"action": "joinRoom", "room": "r"})
    members = {name: connect(name) for name in ("amy", "bob", "cat", "dan")}
    for name in ("amy", "bob"):
        members[name].request({"action": "joinRoom", "room": "r"})
    assert notices(watcher) == [("presence", "amy", "join"), ("presence", "bob", "join")]
    joined = members["cat"].send({"action": "joinRoom", "room": "r"})  # the 4th user: over 3
    assert [f["type"] for f in joined] == ["ack", "occupancy"]  # its ack first
    assert notices(watcher) == [("occupancy", 4, 4)]
    clock.now += INTERVAL
    members["bob"].request({"action": "leaveRoom", "room": "r"})  # 3 users: events again
    assert notices(watcher) == [("presence", "bob", "leave")]


def test_occupancy_is_sent_at_most_once_per_interval_and_ends_on_the_last_count(
    stage: Any, connect: Any, clock: Clock, client: WebsocketTestClient
) -> None:
    stage(1)
    watcher = connect("watcher")
    watcher.request({"action": "joinRoom", "room": "r"})
    first = connect("first")
    first.send({"action": "joinRoom", "room": "r"})  # 2 users: occupancy at once
    assert notices(watcher) == [("occupancy", 2, 2)]
    # Inside the interval: the first change notes that a count waits and, once it has
    # answered its caller, sleeps until the interval ends; meanwhile others change it.
    clock.now += 0.5
    burst = [connect(f"u{index}") for index in range(5)]
    clock.held = threading.Event()
    sleeper = threading.Thread(
        target=client.send, args=(burst[0].id, '{"action":"joinRoom","room":"r"}')
    )
    sleeper.start()
    assert clock.sleeping.wait(30)
    assert [f["type"] for f in burst[0].new_frames()] == ["ack"]
    for member in burst[1:]:
        assert [f["type"] for f in member.send({"action": "joinRoom", "room": "r"})] == ["ack"]
    assert notices(watcher) == []  # nothing inside the interval
    clock.now += 1.5
    clock.held.set()
    sleeper.join(30)
    assert clock.slept == [pytest.approx(1.5)]
    assert notices(watcher) == [("occupancy", 7, 7)]  # the count when the interval ended
    clock.held = None
    # The next change after a quiet interval goes at once again.
    clock.now += INTERVAL
    burst[1].request({"action": "leaveRoom", "room": "r"})
    assert notices(watcher) == [("occupancy", 6, 6)]


def test_a_room_filling_up_inside_an_interval_costs_linear_posts(
    stage: Any, connect: Any, clock: Clock, client: WebsocketTestClient
) -> None:
    """40 watchers joining within one interval: per-user events up to 5 users, one
    occupancy frame when the 6th arrives, one when the interval ends — not N(N-1)/2."""
    stage(5)
    members = [connect(f"m{index:02d}") for index in range(40)]
    posts = client.emulator.posts
    for member in members[:6]:
        member.send({"action": "joinRoom", "room": "r"})
        clock.now += 0.01
    clock.held = threading.Event()
    sleeper = threading.Thread(
        target=client.send, args=(members[6].id, '{"action":"joinRoom","room":"r"}')
    )
    sleeper.start()
    assert clock.sleeping.wait(30)
    for member in members[7:]:
        member.send({"action": "joinRoom", "room": "r"})
        clock.now += 0.01
    clock.now += INTERVAL
    clock.held.set()
    sleeper.join(30)
    per_user = sum(range(5))  # m01..m04, each told to those before them
    assert client.emulator.posts - posts == 40 + per_user + 6 + 40  # 40 acks
    assert [n for n in notices(members[0]) if n[0] == "occupancy"] == [
        ("occupancy", 6, 6), ("occupancy", 40, 40),
    ]


@pytest.mark.parametrize("members", [6, 30])
def test_a_join_in_a_large_room_is_flat_in_its_size(
    stage: Any, connect: Any, clock: Clock, dynamodb_calls: Counter[str], members: int,
    client: WebsocketTestClient,
) -> None:
    """Over the threshold, with an occupancy frame already waiting for its interval to end:
    the join's own writes and reads only, whatever the room's size — no Query at all."""
    stage(3)
    for index in range(members):
        connect(f"m{index}").send({"action": "joinRoom", "room": "r"})
    clock.now += 0.1  # inside the interval of the last occupancy frame
    clock.held = threading.Event()
    waiting = connect("waiting")
    sleeper = threading.Thread(
        target=client.send, args=(waiting.id, '{"action":"joinRoom","room":"r"}')
    )
    sleeper.start()
    assert clock.sleeping.wait(30)
    late = connect("late")
    dynamodb_calls.clear()
    late.send({"action": "joinRoom", "room": "r"})
    counted = Counter(dynamodb_calls)
    clock.held.set()
    sleeper.join(30)
    assert counted == Counter({"GetItem": 2, "UpdateItem": 3, "PutItem": 1})


# -- no ghosts --------------------------------------------------------------------------


def failing(dynamodb: Any, operations: set[str], rate: float, seed: int = 7) -> Callable[[], None]:
    """Make these operations fail at ``rate`` (deterministically); returns the switch-off."""
    chance = random.Random(seed)
    state = {"on": True}

    def fail(model: Any, **_: Any) -> None:
        if state["on"] and model.name in operations and chance.random() < rate:
            raise ConnectionError(f"injected failure of {model.name}")

    dynamodb.meta.events.register("before-call.dynamodb", fail)
    return lambda: state.update(on=False)


def test_a_cleanup_that_failed_leaves_no_ghost_in_presence(
    connect: Any, dynamodb: Any, caplog: pytest.LogCaptureFixture
) -> None:
    watcher, alice = connect("watcher"), connect("alice")
    for member in (watcher, alice):
        member.request({"action": "joinRoom", "room": "r"})
    watcher.new_frames()
    stop = failing(dynamodb, {"UpdateItem"}, rate=1.0)  # every presence and count update
    with caplog.at_level(logging.WARNING, "switchboard.cleanup"):
        alice.disconnect()
    stop()
    # Her items went with the first try; the rest failed, and a retry no longer knows
    # her rooms: her presence set still names her connection.
    assert "cleanup of 1 gone connections failed; retrying" in caplog.text
    frames = watcher.send({"action": "presence", "room": "r"})
    assert [(f["type"], f.get("userId")) for f in frames] == [
        ("presence", "alice"), ("members", None),  # repaired on read: her leave is told
    ]
    assert frames[-1]["members"] == [{"userId": "watcher", "connections": 1}]
    assert watcher.request({"action": "presence", "room": "r"})["members"] == [
        {"userId": "watcher", "connections": 1}
    ]


def test_under_failing_cleanups_presence_lists_exactly_who_is_connected(
    connect: Any, dynamodb: Any, client: WebsocketTestClient
) -> None:
    """30 users in a room, 20 leave while a third of the registry's writes fail (the same
    failures every run): retries and repairs on read leave no ghost listed."""
    members = [connect(f"u{index:02d}") for index in range(30)]
    for member in members:
        member.request({"action": "joinRoom", "room": "r"})
    stop = failing(dynamodb, {"UpdateItem", "DeleteItem", "BatchWriteItem"}, rate=0.34)
    for member in members[:20]:
        member.disconnect()
    stop()
    asker = connect("asker")
    listed = asker.request({"action": "presence", "room": "r"})["members"]
    assert [m["userId"] for m in listed] == [f"u{index:02d}" for index in range(20, 30)]
