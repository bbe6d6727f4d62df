"""Gone connections leave in one place: removed, their departures announced, failures logged."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pytest

from chalicelib.cleanup import Cleanup
from chalicelib.invocation import Deadline
from chalicelib.registry import Departure, Registry


def test_gone_connections_are_removed_and_their_departures_announced(
    dynamodb: Any, table_name: str
) -> None:
    registry = Registry(dynamodb, table_name, ttl_seconds=60)
    alice = registry.add_connection("a", "alice", [], "https://x/api")
    registry.join_room(alice, "lobby", presence=True)
    announced: list[Sequence[Departure]] = []
    cleanup = Cleanup(registry, lambda departures, deadline: announced.append(departures))
    assert cleanup.forget(["a"], Deadline.after(5))
    assert registry.get_connection("a") is None
    assert announced == [[Departure("lobby", "alice")]]


def test_nothing_to_forget_costs_nothing() -> None:
    class Untouchable:
        def remove_connections(self, *args: Any, **kwargs: Any) -> None:
            raise AssertionError("no request for nothing")

    assert Cleanup(Untouchable(), lambda d, t: None).forget([], Deadline.after(5))  # type: ignore[arg-type]


def test_a_failed_removal_is_logged_and_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def remove_connections(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("DynamoDB is unavailable")

    announced: list[Any] = []
    cleanup = Cleanup(Broken(), lambda d, t: announced.append(d))  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, "switchboard.cleanup"):
        assert cleanup.forget(["a", "b"], Deadline.after(5), room="r") is False
    assert "cleanup of 2 gone connections failed; TTL will reclaim them" in caplog.text
    assert announced == []


def test_a_removal_that_fails_is_tried_again_while_time_allows() -> None:
    class Flaky:
        def __init__(self, failures: int) -> None:
            self.failures, self.calls = failures, 0

        def remove_connections(self, *args: Any, **kwargs: Any) -> list[Departure]:
            self.calls += 1
            if self.calls <= self.failures:
                raise ConnectionError("throttled")
            return [Departure("r", "alice")]

    announced: list[Any] = []
    slept: list[float] = []
    flaky = Flaky(failures=2)
    cleanup = Cleanup(flaky, lambda d, t: announced.append(d), sleep=slept.append)  # type: ignore[arg-type]
    assert cleanup.forget(["a"], Deadline.after(5)) is True
    assert flaky.calls == 3 and slept == [0.05, 0.1]
    assert announced == [[Departure("r", "alice")]]
    # Without the time for a pause, no retry: the deadline wins.
    hurried = Flaky(failures=1)
    assert Cleanup(hurried, lambda d, t: None, sleep=slept.append).forget(  # type: ignore[arg-type]
        ["a"], Deadline.after(0.01)) is False
    assert hurried.calls == 1
