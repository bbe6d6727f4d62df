"""Rate limits: how they are written, and how frames are counted against them.

The shared counters run on both engines: two limiters on one table stand for two
containers. Time is a clock the tests move, never the machine's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.extend import CATALOG, NOTICE, Context, Integer, Room, action
from chalicelib.ratelimit import (
    CONNECTION,
    USER,
    Rate,
    RateCounters,
    RateError,
    RateLimiter,
    counter_key,
)
from chalicelib.registry import is_rate_counter
from tests.conftest import ManualClock


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("20/s", Rate(20, 1)),
        ("600/min", Rate(600, 60)),
        ("600 / minute", Rate(600, 60)),
        ("5/10s", Rate(5, 10)),
        ("1000/h per user", Rate(1000, 3600, USER)),
        ("3/2min per connection", Rate(3, 120, CONNECTION)),
        ("1/seconds", Rate(1, 1)),
        (" 7/HOUR PER USER ", Rate(7, 3600, USER)),
    ],
)
def test_a_rate_reads_as_written(text: str, rate: Rate) -> None:
    assert Rate.parse(text) == rate


@pytest.mark.parametrize(
    "text", ["", "20", "20/", "/s", "20/d", "-1/s", "0/s", "20/s per room", "2000000/s",
             "1/0s", "1/25h", "twenty/s", "20/s/s"],
)
def test_a_bad_rate_says_what_is_expected(text: str) -> None:
    with pytest.raises(RateError, match="rate"):
        Rate.parse(text)


def test_a_rate_describes_itself() -> None:
    assert str(Rate(20, 1)) == "20 per second per connection"
    assert str(Rate(5, 10, USER)) == "5 per 10 seconds per user"


# -- the default limit, in the container's memory ----------------------------------------


def test_the_default_admits_its_count_per_window_then_refuses_once_loudly() -> None:
    clock = ManualClock(100.25)
    limiter = RateLimiter(None, Rate(3, 1), clock)
    verdicts = [limiter.admit("ping", None, "c1", "alice") for _ in range(6)]
    assert [v.admitted for v in verdicts] == [True, True, True, False, False, False]
    assert [v.first for v in verdicts[3:]] == [True, False, False]
    assert verdicts[3].retry_after_ms == 750
    assert verdicts[3].rate == Rate(3, 1)
    clock.now = 101.0  # the next window
    assert limiter.admit("ping", None, "c1", "alice").admitted


def test_the_default_counts_each_connection_and_action_apart() -> None:
    limiter = RateLimiter(None, Rate(1, 60), ManualClock())
    assert limiter.admit("ping", None, "c1", "alice").admitted
    assert not limiter.admit("ping", None, "c1", "alice").admitted
    assert limiter.admit("whoami", None, "c1", "alice").admitted
    assert limiter.admit("ping", None, "c2", "alice").admitted


def test_no_default_admits_everything() -> None:
    limiter = RateLimiter(None, None, ManualClock())
    assert all(limiter.admit("ping", None, "c1", "a").admitted for _ in range(1000))


def test_a_container_forgets_past_windows_first_when_its_memory_is_full() -> None:
    clock = ManualClock()
    limiter = RateLimiter(None, Rate(1, 60), clock, capacity=2)
    old = limiter.admit("ping", None, "old", "u")
    clock.now += 60
    assert old.admitted and limiter.admit("ping", None, "a", "u").admitted
    assert limiter.admit("ping", None, "b", "u").admitted  # "old" was of a past window
    assert not limiter.admit("ping", None, "a", "u").admitted  # still remembered
    # Full of this window's keys: a new one makes the container forget them all
    # (memory stays bounded; a forgotten key starts its count again).
    assert limiter.admit("ping", None, "c", "u").admitted
    assert limiter.admit("ping", None, "a", "u").admitted


# -- declared limits, on the table's counters ---------------------------------------------------


@pytest.fixture
def counters(dynamodb: Any, table_name: str) -> RateCounters:
    return RateCounters(dynamodb, table_name)


def test_two_containers_share_a_declared_limit(
    counters: RateCounters, dynamodb_calls: Counter[str]
) -> None:
    clock = ManualClock(500.5)
    containers = [RateLimiter(counters, None, clock), RateLimiter(counters, None, clock)]
    rate = Rate(5, 1)
    verdicts = [containers[i % 2].admit("cursor", rate, "c1", "alice") for i in range(8)]
    assert sum(v.admitted for v in verdicts) == 5
    assert [v.first for v in verdicts if not v.admitted] == [True, False, False]
    # Each container learned the window is spent from its own first refusal, then stopped asking.
    dynamodb_calls.clear()
    for index in range(20):
        assert not containers[index % 2].admit("cursor", rate, "c1", "alice").admitted
    assert dynamodb_calls == Counter()
    clock.now = 501.0
    assert containers[0].admit("cursor", rate, "c1", "alice").admitted


def test_a_per_user_limit_counts_every_connection_of_the_user(counters: RateCounters) -> None:
    limiter = RateLimiter(counters, None, ManualClock())
    rate = Rate(2, 60, USER)
    assert limiter.admit("react", rate, "phone", "alice").admitted
    assert limiter.admit("react", rate, "laptop", "alice").admitted
    assert not limiter.admit("react", rate, "tablet", "alice").admitted
    assert limiter.admit("react", rate, "phone", "bob").admitted


def test_a_counter_is_one_update_and_expires_after_its_window(
    counters: RateCounters, dynamodb: Any, table_name: str, dynamodb_calls: Counter[str]
) -> None:
    dynamodb_calls.clear()
    assert counters.add(Rate(20, 1), "c1", "cursor", 1234) == 1
    assert counters.add(Rate(20, 1), "c1", "cursor", 1234) == 2
    assert dynamodb_calls == Counter({"UpdateItem": 2})
    key = counter_key(CONNECTION, "c1", "cursor", 1, 1234)
    item = dynamodb.get_item(TableName=table_name, Key=key)["Item"]
    assert is_rate_counter(item)
    assert (item["n"]["N"], item["ttl"]["N"]) == ("2", str(1235 + 60))


def test_a_failing_counter_admits_the_frame_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def update_item(self, **_: Any) -> Any:
            raise ConnectionError("no DynamoDB")

    limiter = RateLimiter(RateCounters(Broken(), "t"), None, ManualClock())
    assert limiter.admit("cursor", Rate(1, 1), "c1", "alice").admitted
    assert "rate counter of cursor unavailable (ConnectionError); frame admitted" in caplog.text


# -- through the message handler ---------------------------------------------------------------


@pytest.fixture
def cursor() -> Iterator[None]:
    """A team's cursor notice, limited to 20 per second per connection."""

    @action("cursor", fields={"room": Room(), "x": Integer(0, 10_000)}, member=True,
            kind=NOTICE, rate="20/s")
    def move(ctx: Context, room: str, x: int) -> None:
        ctx.publish({"type": "cursor", "userId": ctx.user_id, "x": x})

    yield
    CATALOG.remove("cursor")


def test_a_flood_of_notices_reaches_the_room_at_the_declared_rate_and_costs_what_is_stated(
    connect: Any, cursor: None, clock: ManualClock, dynamodb_calls: Counter[str]
) -> None:
    alice, bob = connect("alice"), connect("bob")
    for member in (alice, bob):
        member.request({"action": "joinRoom", "room": "doc"})
    alice.new_frames()
    dynamodb_calls.clear()
    flood, step, windows = 1024, 1 / 256, 4  # 1,024 notices in 4 s: 256 in each second
    answers = []
    for x in range(flood):
        answers += alice.send({"action": "cursor", "room": "doc", "x": x})
        clock.now += step
    received = [frame["x"] for frame in bob.new_frames()]
    per_window = Counter(x * windows // flood for x in received)
    assert per_window == {window: 20 for window in range(windows)}
    # One rate_limited per window, when its 21st notice came (20/256 s in): no id, the rest
    # silent.
    assert answers == [{
        "type": "error", "code": "rate_limited", "retryAfterMs": 922,
        "message": "cursor is limited to 20 per second per connection; try again in 922 ms",
    }] * windows
    # Every frame reads its connection; the counter is written for the 20 admitted and the
    # first refused of each window, and each admitted notice reads the room once.
    assert dynamodb_calls == Counter({"GetItem": flood, "UpdateItem": 21 * windows,
                                      "Query": 20 * windows})


def test_a_request_or_a_notice_with_an_id_over_its_limit_is_always_answered(
    connect: Any, cursor: None, clock: ManualClock
) -> None:
    alice = connect("alice")
    alice.request({"action": "joinRoom", "room": "doc"})
    for x in range(20):
        assert alice.send({"action": "cursor", "room": "doc", "x": x}) == []
    answers = [alice.request({"action": "cursor", "room": "doc", "x": 0, "id": f"c{n}"})
               for n in range(3)]
    assert [(a["code"], a["id"], a["retryAfterMs"]) for a in answers] == [
        ("rate_limited", "c0", 1000), ("rate_limited", "c1", 1000), ("rate_limited", "c2", 1000),
    ]
    assert alice.send({"action": "cursor", "room": "doc", "x": 0}) == []  # told already
    clock.now += 1
    assert alice.request({"action": "cursor", "room": "doc", "x": 1, "id": "ok"}) == {
        "type": "ack", "action": "cursor", "id": "ok",
    }


@pytest.mark.parametrize("extra_settings", [{"DEFAULT_ACTION_RATE": "3/min"}])
def test_every_action_has_the_stage_default_and_it_costs_no_request(
    connect: Any, clock: ManualClock, dynamodb_calls: Counter[str]
) -> None:
    alice = connect("alice")
    assert all(alice.request({"action": "ping"}) == {"type": "pong"} for _ in range(3))
    dynamodb_calls.clear()
    refused = [alice.request({"action": "ping", "id": str(n)}) for n in range(2)]
    assert [r["code"] for r in refused] == ["rate_limited"] * 2
    assert refused[0]["message"] == (
        "ping is limited to 3 per minute per connection; try again in 60000 ms"
    )
    assert dynamodb_calls == Counter({"GetItem": 2})
    assert alice.request({"action": "whoami"})["type"] == "whoami"  # its own count
    clock.now += 60
    assert alice.request({"action": "ping"}) == {"type": "pong"}
