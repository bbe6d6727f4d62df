"""Delivery's retry bound, against the in-process management emulator (no DynamoDB)."""

from __future__ import annotations

from typing import Any

import pytest
from chalice.app import Chalice

from chalicelib import aws
from chalicelib.delivery import Delivery, Outcome, RetryPolicy
from chalicelib.invocation import Deadline
from switchboard_local.events import ApiContext, ConnectionContext
from switchboard_local.testing import ManagementEmulator, route_management_api


@pytest.fixture
def setup() -> tuple[Delivery, ManagementEmulator, str, list[float]]:
    app = Chalice(app_name="delivery-test")
    emulator = ManagementEmulator()
    app.websocket_api.session = aws.management_session(pool_size=4)
    route_management_api(app.websocket_api.session, emulator)
    app.websocket_api.configure("local00001.execute-api.us-east-1.amazonaws.com", "api")
    context = ConnectionContext(ApiContext())
    emulator.open(context)
    sleeps: list[float] = []
    return Delivery(app.websocket_api, sleep=sleeps.append), emulator, context.connection_id, sleeps


@pytest.mark.parametrize(("throttled", "outcome"), [(9, Outcome.DELIVERED), (10, Outcome.FAILED)])
def test_a_throttled_post_is_tried_ten_times(
    setup: Any, throttled: int, outcome: Outcome
) -> None:
    delivery, emulator, connection_id, sleeps = setup
    emulator.inject(connection_id, *([429] * throttled))
    assert delivery.send(connection_id, "{}", Deadline.after(60)) is outcome
    assert len(sleeps) == min(throttled, RetryPolicy().max_attempts - 1)
    assert all(0 <= pause <= RetryPolicy().max_delay for pause in sleeps)
    assert emulator.received(connection_id) == (["{}"] if outcome is Outcome.DELIVERED else [])


def test_retries_stop_at_the_deadline(setup: Any) -> None:
    delivery, emulator, connection_id, sleeps = setup
    emulator.inject(connection_id, *([429] * 9))
    assert delivery.send(connection_id, "{}", Deadline.after(0.0)) is Outcome.FAILED
    assert sleeps == []
