"""Delivery's outcomes and retry bound on both transports, against the in-process emulator.

The emulator answers the app's own management client through a botocore
``before-send`` hook on the session, so with either transport the request is
built and signed and its answer parsed by the code under test; only the
network is skipped (``tests/chalicelib/test_management.py`` covers the network).

What the endpoint answers is API Gateway's management API as botocore's
``apigatewaymanagementapi`` service model and the AWS guide "Use @connections commands in your
backend service" (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-how-to-call-websocket-api-connections.html)
state it: 410 ``GoneException`` for a closed or unknown connection, 413
``PayloadTooLargeException`` over 128 KiB (the quotas table:
https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html#apigateway-execution-service-websocket-limits-table),
429 ``LimitExceededException`` when throttled, 403 ``ForbiddenException``.
"""

from __future__ import annotations

import threading

import pytest
from chalice.app import Chalice

from chalicelib.delivery import Delivery, Outcome, RetryPolicy
from chalicelib.invocation import Deadline
from chalicelib.management import LeanManagementClient, ManagementSession
from chalicelib.pacing import Pacer
from switchboard_local.events import ApiContext, ConnectionContext
from switchboard_local.testing import ManagementEmulator, route_management_api

TRANSPORTS = ("lean", "botocore")
ENDPOINT = "https://local00001.execute-api.us-east-1.amazonaws.com/api"


class Setup:
    def __init__(self, transport: str) -> None:
        self.app = Chalice(app_name="delivery-test")
        self.emulator = ManagementEmulator()
        self.session = ManagementSession(pool_size=4, transport=transport)
        self.app.websocket_api.session = self.session
        route_management_api(self.session, self.emulator)
        self.sleeps: list[float] = []
        self.delivery = Delivery(self.app.websocket_api, workers=4, sleep=self.sleeps.append)
        assert self.delivery.ensure_endpoint(lambda: ENDPOINT)

    def open(self) -> str:
        context = ConnectionContext(ApiContext())
        self.emulator.open(context)
        return context.connection_id


@pytest.fixture(params=TRANSPORTS)
def setup(request: pytest.FixtureRequest) -> Setup:
    return Setup(request.param)


def test_the_transport_under_test_is_the_one_named(setup: Setup) -> None:
    target = setup.open()
    assert setup.delivery.send(target, "{}", Deadline.after(5)) is Outcome.DELIVERED
    client = setup.session.client("apigatewaymanagementapi", endpoint_url=ENDPOINT)
    assert isinstance(client, LeanManagementClient) is (setup.session.transport == "lean")
    assert setup.emulator.received(target) == ["{}"]


@pytest.mark.parametrize(("throttled", "outcome"), [(9, Outcome.DELIVERED), (10, Outcome.FAILED)])
def test_a_throttled_post_is_tried_ten_times(
    setup: Setup, throttled: int, outcome: Outcome
) -> None:
    target = setup.open()
    setup.emulator.inject(target, *([429] * throttled))
    assert setup.delivery.send(target, "{}", Deadline.after(60)) is outcome
    assert len(setup.sleeps) == min(throttled, RetryPolicy().max_attempts - 1)
    assert all(0 <= pause <= RetryPolicy().max_delay for pause in setup.sleeps)
    assert setup.emulator.received(target) == (["{}"] if outcome is Outcome.DELIVERED else [])


def test_retries_stop_at_the_deadline(setup: Setup) -> None:
    target = setup.open()
    setup.emulator.inject(target, *([429] * 9))
    assert setup.delivery.send(target, "{}", Deadline.after(0.0)) is Outcome.FAILED
    assert setup.sleeps == []
    assert setup.emulator.posts == 0


def test_a_closed_connection_is_gone(setup: Setup) -> None:
    target = setup.open()
    setup.emulator.close(target)
    assert setup.delivery.send(target, "{}", Deadline.after(5)) is Outcome.GONE


@pytest.mark.parametrize("status", [403, 413, 500])
def test_errors_other_than_throttling_fail_at_once(
    setup: Setup, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    target = setup.open()
    setup.emulator.inject(target, status)
    failed = Outcome.TOO_LARGE if status == 413 else Outcome.FAILED  # a failure one can tell
    assert setup.delivery.send(target, "{}", Deadline.after(5)) is failed
    assert setup.sleeps == []
    assert setup.emulator.posts == 1
    expected = {403: "ForbiddenException", 413: "PayloadTooLargeException", 500: "Internal"}
    assert expected[status] in caplog.text


def test_a_frame_over_128_kib_is_refused_by_the_endpoint(setup: Setup) -> None:
    target = setup.open()
    big = "x" * (128 * 1024 + 1)
    assert setup.delivery.send(target, big, Deadline.after(5)) is Outcome.TOO_LARGE
    assert setup.emulator.received(target) == []


def test_a_fan_out_reports_every_outcome(setup: Setup) -> None:
    targets = [setup.open() for _ in range(40)]
    gone, refused, throttled = targets[::10], targets[1::10], targets[2::10]
    for target in gone:
        setup.emulator.close(target)
    for target in refused:
        setup.emulator.inject(target, 403)
    for target in throttled:
        setup.emulator.inject(target, 429, 429)
    report = setup.delivery.post_all(targets, '{"n":1}', Deadline.after(30))
    assert set(report.gone) == set(gone)
    assert set(report.failed) == set(refused)
    assert report.delivered == len(targets) - len(gone) - len(refused)
    reached = set(targets) - set(gone) - set(refused)
    assert all(setup.emulator.received(target) == ['{"n":1}'] for target in reached)


def test_the_endpoint_is_resolved_once_by_the_first_caller(setup: Setup) -> None:
    delivery = Delivery(Chalice(app_name="fresh").websocket_api)
    asked: list[int] = []
    start = threading.Barrier(8)

    def resolve() -> str:
        asked.append(1)
        return ENDPOINT

    def ensure() -> None:
        start.wait()
        assert delivery.ensure_endpoint(resolve)

    threads = [threading.Thread(target=ensure) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert asked == [1]


def test_no_endpoint_known_sets_nothing_and_asks_again() -> None:
    api = Chalice(app_name="fresh").websocket_api
    api.session = ManagementSession(pool_size=2, transport="lean")
    delivery = Delivery(api)
    assert delivery.ensure_endpoint(lambda: None) is False
    assert delivery.ensure_endpoint(lambda: ENDPOINT) is True
    assert delivery.ensure_endpoint(lambda: "https://other.example/x") is True
    emulator = ManagementEmulator()
    route_management_api(api.session, emulator)
    context = ConnectionContext(ApiContext())
    emulator.open(context)
    assert delivery.send(context.connection_id, "{}", Deadline.after(5)) is Outcome.DELIVERED
    assert api.session.endpoint == ENDPOINT


def test_a_paced_fan_out_takes_a_slot_per_post(setup: Setup) -> None:
    clock = FakeClock()
    pacer = Pacer(rate=100, burst=1, clock=clock, sleep=clock.sleep)
    delivery = Delivery(setup.app.websocket_api, workers=1, pacer=pacer)
    assert delivery.ensure_endpoint(lambda: ENDPOINT)
    targets = [setup.open() for _ in range(20)]
    report = delivery.post_all(targets, "{}", Deadline(expires_at=60.0, clock=clock))
    assert report.delivered == 20
    assert clock.now == pytest.approx(19 / 100)  # the first post is free, then 1/rate each


def test_a_post_whose_slot_comes_after_the_deadline_fails_unsent(setup: Setup) -> None:
    clock = FakeClock()
    pacer = Pacer(rate=1, burst=1, clock=clock, sleep=clock.sleep)
    delivery = Delivery(setup.app.websocket_api, workers=1, pacer=pacer)
    assert delivery.ensure_endpoint(lambda: ENDPOINT)
    first, second = setup.open(), setup.open()
    deadline = Deadline(expires_at=0.5, clock=clock)
    assert delivery.send(first, "{}", deadline) is Outcome.DELIVERED
    assert delivery.send(second, "{}", deadline) is Outcome.FAILED  # its slot is at 1.0 s
    assert setup.emulator.received(second) == []
    assert clock.now == 0.0


class FakeClock:
    """A monotonic clock that moves only when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_close_deletes_the_connection_and_reports_one_already_gone(setup: Setup) -> None:
    open_one, gone = setup.open(), setup.open()
    setup.emulator.close(gone)
    assert setup.delivery.drop(open_one, Deadline.after(5)) is Outcome.DELIVERED
    assert setup.emulator.table.open(open_one) is None  # closed by the DELETE
    assert setup.delivery.drop(gone, Deadline.after(5)) is Outcome.GONE
    assert setup.emulator.posts == 0


def test_a_throttled_close_is_retried_and_a_refused_one_fails(setup: Setup) -> None:
    throttled, refused = setup.open(), setup.open()
    setup.emulator.inject(throttled, 429, 429)
    setup.emulator.inject(refused, 403)
    report = setup.delivery.drop_all([throttled, refused], Deadline.after(30))
    assert (report.delivered, report.failed) == (1, (refused,))
    assert len(setup.sleeps) == 2
    assert setup.emulator.table.open(throttled) is None
    assert setup.emulator.table.open(refused) is not None
