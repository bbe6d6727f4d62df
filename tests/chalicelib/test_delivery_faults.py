"""Faults during delivery, and DynamoDB throttling during ``$connect``.

The management endpoint is the in-process emulator with a fault policy that
answers a seeded random mix of 200, 410, 429, 500 and slow responses. Every
410 target must leave the registry, every 429 target must get the frame
exactly once after retries, every 500 must be reported (in the delivery
report and in the logs), and the fan-out must end inside its deadline.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.retries.standard
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.httpsession import URLLib3Session
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chalicelib import aws, runtime
from chalicelib.delivery import WORKERS
from chalicelib.invocation import Deadline
from chalicelib.runtime import Services, build_services
from chalicelib.settings import Settings
from switchboard_local.events import ConnectionContext
from switchboard_local.testing import Fault, WebsocketTestClient
from tests.chalicelib.conftest import event_lines, table_items

ENDPOINT = "https://local00001.execute-api.us-east-1.amazonaws.com/api"
KINDS = ("ok", "gone", "throttled", "error", "slow")
MIX = (55, 10, 15, 10, 10)


@dataclass
class FaultMix:
    """A seeded plan: each connection's kind, and the policy that plays it."""

    kinds: dict[str, str]
    throttles: dict[str, int]
    delays: dict[str, float]
    posts: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def plan(cls, connection_ids: list[str], seed: int) -> FaultMix:
        rng = random.Random(seed)
        kinds = dict(zip(connection_ids, rng.choices(KINDS, MIX, k=len(connection_ids)),
                         strict=True))
        return cls(
            kinds=kinds,
            throttles={cid: rng.randint(1, 3) for cid in connection_ids},
            delays={cid: rng.uniform(0.01, 0.1) for cid in connection_ids},
        )

    def of(self, kind: str) -> set[str]:
        return {cid for cid, k in self.kinds.items() if k == kind}

    def __call__(self, method: str, connection_id: str) -> Fault | None:
        kind = self.kinds.get(connection_id, "ok")
        with self.lock:
            self.posts[connection_id] += 1
            attempt = self.posts[connection_id]
        if kind == "gone":
            return Fault(410)
        if kind == "error":
            return Fault(500)
        if kind == "throttled" and attempt <= self.throttles[connection_id]:
            return Fault(429)
        if kind == "slow":
            return Fault(delay=self.delays[connection_id])
        return None


def seed_connections(client: WebsocketTestClient, services: Services, count: int) -> list[str]:
    """Register ``count`` open connections directly, in parallel (no handshakes).

    One real handshake first: Chalice learns the management endpoint from an event.
    """
    client.invoke("$connect", ConnectionContext(client.api).connect_event())
    contexts = [ConnectionContext(client.api) for _ in range(count)]

    def register(context: ConnectionContext) -> str:
        cid = context.connection_id
        services.registry.add_connection(cid, f"user-{cid}", [], ENDPOINT)
        client.emulator.open(context)
        return cid

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(register, contexts))


def live_ids(services: Services, dynamodb: Any) -> set[str]:
    return {
        item["connectionId"]["S"] for item in table_items(services, dynamodb)
        if item["SK"]["S"] == "CONN"
    }


def received(client: WebsocketTestClient, cid: str) -> int:
    return len(client.emulator.received(cid))


@pytest.mark.engines("moto")
def test_a_1000_connection_broadcast_under_a_random_fault_mix(
    client: WebsocketTestClient, services: Services, dynamodb: Any, connect: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    admin = connect("root", "admin")
    targets = seed_connections(client, services, 1000)
    mix = FaultMix.plan(targets, seed=6)
    client.emulator.policy = mix
    client.budget_seconds = 25.0
    with caplog.at_level(logging.INFO):
        frames = admin.send({"action": "broadcastAll", "text": "fault mix", "id": "b"})

    reached = mix.of("ok") | mix.of("throttled") | mix.of("slow")
    assert frames[-1] == {"type": "ack", "action": "broadcastAll", "id": "b",
                          "delivered": len(reached) + 1}
    assert all(received(client, cid) == 1 for cid in reached)
    assert all(received(client, cid) == 0 for cid in mix.of("gone") | mix.of("error"))
    assert all(mix.posts[cid] == mix.throttles[cid] + 1 for cid in mix.of("throttled"))

    live = live_ids(services, dynamodb)
    assert not live & mix.of("gone"), "a 410 target is still registered"
    assert live == (set(targets) - mix.of("gone")) | {admin.id}, "a live target was dropped"

    [line] = [line for line in event_lines(caplog.records) if line.get("action") == "broadcastAll"]
    assert line["durationMs"] < client.budget_seconds * 1000, "the fan-out overran its deadline"
    assert (line["delivered"], line["gone"], line["failed"]) == (
        len(reached) + 1, len(mix.of("gone")), len(mix.of("error"))
    )
    warned = "\n".join(r.getMessage() for r in caplog.records if r.name == "switchboard.delivery")
    assert all(f"delivery to {cid} failed" in warned for cid in mix.of("error"))


@pytest.mark.engines("moto")
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(2, 80))
@hypothesis_settings(max_examples=12)
def test_every_fault_mix_is_accounted_for(
    client: WebsocketTestClient, services: Services, dynamodb: Any, seed: int, size: int
) -> None:
    """Many smaller mixes through the fan-out itself: the report is exact."""
    targets = seed_connections(client, services, size)
    mix = FaultMix.plan(targets, seed)
    client.emulator.policy = mix
    report = services.outbox(Deadline.after(20)).deliver(targets, '{"type":"message"}')
    reached = mix.of("ok") | mix.of("throttled") | mix.of("slow")
    assert report.delivered == len(reached)
    assert set(report.gone) == mix.of("gone")
    assert set(report.failed) == mix.of("error")
    assert all(received(client, cid) == 1 for cid in reached)
    live = live_ids(services, dynamodb)
    assert live >= set(targets) - mix.of("gone")
    assert not live & mix.of("gone")
    services.registry.remove_connections(targets)


class PostClock:
    """A clock that ticks once per post the endpoint receives: a deadline without timing."""

    def __init__(self) -> None:
        self.ticks = 0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return float(self.ticks)

    def policy(self, method: str, connection_id: str) -> Fault | None:
        with self._lock:
            self.ticks += 1
        return Fault(delay=0.01)


@pytest.mark.engines("moto")
def test_no_post_starts_after_the_deadline(
    client: WebsocketTestClient, services: Services, dynamodb: Any
) -> None:
    """The deadline is 40 posts away; at most one more post per worker can be in flight."""
    targets = seed_connections(client, services, 150)
    clock = PostClock()
    client.emulator.policy = clock.policy
    report = services.outbox(Deadline(expires_at=40, clock=clock)).deliver(
        targets, '{"type":"message"}'
    )
    assert clock.ticks <= 40 + WORKERS
    assert report.delivered == clock.ticks
    assert len(report.failed) == len(targets) - clock.ticks
    assert live_ids(services, dynamodb) >= set(targets), "an unreached target was dropped"


# -- DynamoDB throttling on $connect ---------------------------------------------------

THROTTLED = json.dumps({
    "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
    "message": "The level of configured provisioned throughput for the table was exceeded.",
}).encode()


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> list[bytes]:
        return [self._data]


@dataclass
class Throttle:
    """A ``before-send`` hook: the next ``refuse`` PutItems are throttled.

    With ``land_first`` the first refused PutItem is really sent and its
    answer replaced by the throttle, as when a write lands but its answer is lost.
    """

    refuse: int
    land_first: bool = False
    seen: int = 0

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        if request.headers.get("X-Amz-Target", b"") not in (
            b"DynamoDB_20120810.PutItem", "DynamoDB_20120810.PutItem"
        ):
            return None
        self.seen += 1
        if self.seen > self.refuse:
            return None
        if self.land_first and self.seen == 1:
            URLLib3Session().send(request)
        headers = {"Content-Type": "application/x-amz-json-1.0"}
        return AWSResponse(request.url, 400, headers, _Body(THROTTLED))


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """botocore's own retry loop, with its sleeps shortened: retries are counted, not waited."""
    retries: list[int] = []

    def delay(self: Any, context: Any) -> float:
        retries.append(context.attempt_number)
        return 0.001

    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount", delay)
    return retries


@pytest.fixture
def throttled_app(
    client: WebsocketTestClient, settings: Settings, dynamodb_endpoint: str, app_module: Any,
    fast_backoff: list[int],
) -> Iterator[tuple[Services, Any]]:
    """The app on a DynamoDB client configured as in production, behind a throttle hook."""
    production_like = boto3.client(
        "dynamodb", endpoint_url=dynamodb_endpoint, config=aws._DATA_CLIENT_CONFIG
    )
    built = build_services(settings, app_module.app.websocket_api, production_like)
    runtime.use(built)
    yield built, production_like


def test_throttled_connect_is_retried_and_succeeds(
    client: WebsocketTestClient, throttled_app: tuple[Services, Any], token: Any,
    dynamodb: Any, fast_backoff: list[int],
) -> None:
    services, raw = throttled_app
    raw.meta.events.register("before-send.dynamodb", Throttle(refuse=3))
    alice = client.connect(query={"token": token("alice")})
    assert alice.status == 200
    assert fast_backoff == [1, 2, 3]
    assert [item["userId"]["S"] for item in table_items(services, dynamodb)] == ["alice"]


@pytest.mark.parametrize("land_first", [False, True], ids=["never-landed", "landed-answer-lost"])
def test_connect_throttled_past_its_retries_is_a_500_that_leaves_no_record(
    client: WebsocketTestClient, throttled_app: tuple[Services, Any], token: Any,
    dynamodb: Any, fast_backoff: list[int], caplog: pytest.LogCaptureFixture,
    land_first: bool,
) -> None:
    services, raw = throttled_app
    raw.meta.events.register("before-send.dynamodb", Throttle(refuse=99, land_first=land_first))
    with caplog.at_level(logging.INFO):
        refused = client.connect(query={"token": token("alice")})
    assert refused.status == 500
    assert len(fast_backoff) == 5  # max_attempts=5 retries after the first, as aws.py sets
    assert table_items(services, dynamodb) == []
    [line] = [line for line in event_lines(caplog.records) if line["route"] == "$connect"]
    assert (line["outcome"], line["status"]) == ("error", 500)
    assert "ProvisionedThroughputExceeded" in line["error"]


def test_a_landed_write_whose_answer_was_lost_is_a_repeated_connect(
    client: WebsocketTestClient, throttled_app: tuple[Services, Any], token: Any,
    dynamodb: Any,
) -> None:
    """The retry meets its own first write: the same user, so the handshake succeeds once."""
    services, raw = throttled_app
    raw.meta.events.register("before-send.dynamodb", Throttle(refuse=1, land_first=True))
    assert client.connect(query={"token": token("alice")}).status == 200
    assert [item["userId"]["S"] for item in table_items(services, dynamodb)] == ["alice"]
