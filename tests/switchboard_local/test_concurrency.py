"""Lambda's concurrency limits alone (Lambda developer guide, "Lambda function scaling"
and "Configuring reserved concurrency"): the account's quota, a function's reservation."""

from __future__ import annotations

import pytest

from switchboard_local.gateway.concurrency import (
    ACCOUNT_REASON,
    RESERVED_REASON,
    Concurrency,
)
from switchboard_local.lambda_runtime import Throttled


def test_the_account_limit_throttles_every_unreserved_function_together() -> None:
    limits = Concurrency(account_limit=2)
    assert limits.acquire("a") is None and limits.acquire("b") is None
    assert limits.acquire("a") == Throttled(ACCOUNT_REASON)
    limits.release("b")
    assert limits.acquire("a") is None
    assert limits.in_flight("a") == 2 and limits.in_flight() == 2


def test_a_reservation_caps_its_function_and_is_taken_from_the_others() -> None:
    limits = Concurrency(account_limit=3, reserved={"worker": 1})
    assert limits.unreserved_limit == 2
    assert limits.acquire("worker") is None
    assert limits.acquire("worker") == Throttled(RESERVED_REASON)
    assert limits.acquire("a") is None and limits.acquire("b") is None
    assert limits.acquire("c") == Throttled(ACCOUNT_REASON)  # the reserved one is not theirs


def test_a_reservation_of_zero_turns_the_function_off() -> None:
    assert Concurrency(reserved={"off": 0}).acquire("off") == Throttled(RESERVED_REASON)


@pytest.mark.parametrize(("account", "reserved", "refused"), [
    (1000, {"a": 900}, False),  # 100 unreserved left: the floor holds
    (1000, {"a": 901}, True),
    (10, {"a": 1}, True),  # a quota of 10 takes no reservation
])
def test_a_reservation_below_the_unreserved_floor_is_named(
    account: int, reserved: dict[str, int], refused: bool
) -> None:
    warnings = Concurrency(account, reserved).warnings()
    assert bool(warnings) is refused
    if refused:
        assert "AWS refuses this configuration" in warnings[0]


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Concurrency(account_limit=0)
