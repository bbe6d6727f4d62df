"""Shared pieces of the hardening suite: a deterministic hypothesis profile and table views.

Hypothesis runs derandomized (a fixed seed per test), with no example database
and no per-example deadline: CI sees the same frames on every run, and the
registry calls over HTTP make example timing meaningless.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from chalicelib import runtime
from chalicelib.registry import describe
from chalicelib.runtime import Services, build_services
from switchboard_local import events
from switchboard_local.stage import State
from switchboard_local.testing import TestConnection, WebsocketTestClient
from tests.conftest import ManualClock

hypothesis_settings.register_profile(
    "switchboard",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
hypothesis_settings.load_profile("switchboard")

ANSWER_TYPES = frozenset({"ack", "error", "pong", "whoami", "members", "history"})
NOTICE_TYPES = frozenset({"message", "broadcast", "presence", "occupancy", "typing"})
"""Frames a connection gets because of others' actions, not as an answer to its own."""
ACK_FIELDS = frozenset(
    {"type", "action", "id", "delivered", "queued", "room", "seq", "epoch", "recovered", "stored",
     "expiresAt"}
)
ERROR_CODES = frozenset(
    {"bad_json", "bad_request", "unknown_action", "forbidden", "too_large", "internal",
     "rate_limited", "not_found", "token_expired"}
)


def table_items(services: Services, dynamodb: Any) -> list[dict[str, Any]]:
    """Every item in the registry's table, in a stable order for comparisons."""
    table = services.settings.connections_table
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        response = dynamodb.scan(**request)
        items.extend(response["Items"])
        if "LastEvaluatedKey" not in response:
            break
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    return sorted(items, key=lambda item: (item["PK"]["S"], item["SK"]["S"]))


def keys(items: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """Items as comparable (partition, sort) key pairs."""
    return {(item["PK"]["S"], item["SK"]["S"]) for item in items}


def described(items: list[dict[str, Any]]) -> set[tuple[str, ...]]:
    """What the registry's items are, as :func:`chalicelib.registry.describe` reads them."""
    return {d for d in map(describe, items) if d is not None}


def registry_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items that say someone is connected or in a room.

    Left out: message streams (kept for their own TTL), presence items whose
    set of connections is empty (what a user's last leave can leave behind
    until its TTL; nobody is present through it) and rooms' counts (numbers,
    not members; a room's count outlives its last member, until its TTL).
    """
    return [
        item for item in items
        if (kind := describe(item)) is not None
        and not (kind[0] == "presence" and "conns" not in item)
        and kind[0] != "room"
    ]


def event_lines(records: list[logging.LogRecord]) -> list[dict[str, Any]]:
    """The structured event lines among captured log records."""
    return [
        json.loads(record.getMessage())
        for record in records
        if record.name == "switchboard.events"
    ]


@pytest.fixture
def restage(services: Services, dynamodb: Any, app_module: Any) -> Callable[..., Services]:
    """Rebuild the services with other settings (as a stage with other variables would)."""

    def apply(**changes: Any) -> Services:
        settings = dataclasses.replace(services.settings, **changes)
        built = build_services(settings, app_module.app.websocket_api, dynamodb)
        runtime.use(built)
        return built

    return apply


@pytest.fixture
def all_logs() -> Iterator[list[logging.LogRecord]]:
    """Every record any logger emits at INFO and above (the production level)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.INFO)
    root = logging.getLogger()
    loggers = [root, *(
        logger for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.propagate
    )]
    previous = root.level
    root.setLevel(logging.INFO)
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield records
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        root.setLevel(previous)


def socket_state(client: WebsocketTestClient, connection: TestConnection) -> State | None:
    """The emulated socket's state (``CLOSED`` once the server closed it, say)."""
    found = client.emulator.table.get(connection.id)
    return None if found is None else found.state


@pytest.fixture
def later(services: Services, clock: ManualClock) -> Callable[[float], Services]:
    """From now on the app's services see the time ``seconds`` ahead of the real clock.

    Only the services' own clock moves (token lifetimes, revocations, idempotency and
    rate-limit windows): the registry's and the streams' TTLs, and PyJWT, keep the real one.
    """

    def move(seconds: float) -> Services:
        clock.now = time.time() + seconds
        return services

    return move


def scheduled_event() -> dict[str, Any]:
    """What EventBridge sends the ``expire_connections`` rule's target."""
    return events.scheduled_event("expire_connections", "us-east-1", "123456789012")
