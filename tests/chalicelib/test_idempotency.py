"""Idempotency keys: one claim wins, retries get its answer, a window and a lease end them."""

from __future__ import annotations

import time
from typing import Any

import pytest

from chalicelib.idempotency import Claim, Idempotency, Pending, Recorded
from chalicelib.registry import idempotency_key
from chalicelib.runtime import Services

WINDOW = 600


@pytest.fixture
def now() -> list[float]:
    """The keys' clock, moved by the tests."""
    return [time.time()]


@pytest.fixture
def keys(services: Services, dynamodb: Any, now: list[float]) -> Idempotency:
    return Idempotency(dynamodb, services.settings.connections_table, WINDOW, lambda: now[0])


def test_the_first_claim_wins_and_a_retry_gets_its_answer(keys: Idempotency) -> None:
    claim = keys.claim("room:lobby", "k", lease_seconds=30)
    assert claim == Claim("room:lobby", "k")
    keys.record(claim, {"delivered": 2, "seq": 7})
    assert keys.claim("room:lobby", "k", 30) == Recorded({"delivered": 2, "seq": 7})


def test_a_key_is_scoped_to_its_audience(keys: Idempotency) -> None:
    assert isinstance(keys.claim("room:a", "k", 30), Claim)
    assert isinstance(keys.claim("room:b", "k", 30), Claim)
    assert isinstance(keys.claim("user:room:a", "k", 30), Claim)
    # Separators in a user id cannot make two keys meet.
    assert idempotency_key("user:a#b", "c") != idempotency_key("user:a", "b#c")


def test_a_claim_still_running_is_pending_until_its_lease_ends(
    keys: Idempotency, now: list[float]
) -> None:
    first = keys.claim("all", "k", lease_seconds=30)
    assert isinstance(first, Claim)
    pending = keys.claim("all", "k", 30)
    assert pending == Pending(int(now[0]) + 30)
    now[0] += 31  # the first invocation died without answering
    assert isinstance(keys.claim("all", "k", 30), Claim)


def test_a_released_claim_can_be_taken_at_once(keys: Idempotency) -> None:
    claim = keys.claim("all", "k", 30)
    assert isinstance(claim, Claim)
    keys.release(claim)
    assert isinstance(keys.claim("all", "k", 30), Claim)


def test_a_recorded_answer_is_not_released(keys: Idempotency) -> None:
    claim = keys.claim("all", "k", 30)
    assert isinstance(claim, Claim)
    keys.record(claim, {"delivered": 1})
    keys.release(claim)
    assert keys.claim("all", "k", 30) == Recorded({"delivered": 1})


def test_after_the_window_a_key_is_new_again(keys: Idempotency, now: list[float]) -> None:
    claim = keys.claim("all", "k", 30)
    assert isinstance(claim, Claim)
    keys.record(claim, {"delivered": 1})
    now[0] += WINDOW - 1
    assert isinstance(keys.claim("all", "k", 30), Recorded)
    now[0] += 2
    assert isinstance(keys.claim("all", "k", 30), Claim)


def test_an_answer_for_a_key_that_is_gone_is_not_kept(
    keys: Idempotency, services: Services, dynamodb: Any
) -> None:
    keys.record(Claim("all", "never-claimed"), {"delivered": 1})
    table = services.settings.connections_table
    found = dynamodb.get_item(TableName=table, Key=idempotency_key("all", "never-claimed"))
    assert "Item" not in found
