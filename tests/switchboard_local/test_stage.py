"""The stage core alone: a connection's lifecycle, what clients get, the ``@connections`` rules.

No socket and no app: the core is fed what an adapter would report and
asked what to do, with an injected clock. Each AWS behaviour names its
source: AWS's documentation, or the suites that run against AWS.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from switchboard_local import stage
from switchboard_local.events import ApiContext, ConnectionContext
from switchboard_local.lambda_runtime import Raised, Returned, Throttled, TimedOut


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def connection(limits: stage.Limits | None = None, clock: Clock | None = None
               ) -> stage.Connection:
    return stage.Connection(ConnectionContext(ApiContext()), limits or stage.Limits(),
                            clock or Clock())


def opened(limits: stage.Limits | None = None, clock: Clock | None = None) -> stage.Connection:
    accepted = connection(limits, clock)
    assert isinstance(accepted.handshake(Returned({"statusCode": 200})), stage.Accept)
    assert accepted.open() is None
    return accepted


# -- the handshake --------------------------------------------------------------------


def test_a_2xx_answer_accepts_and_echoes_the_chosen_subprotocol() -> None:
    """API Gateway developer guide, "Set up a $connect route that requires a WebSocket
    subprotocol" (https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-connect-route-subprotocol.html):
    ``$connect`` answers the chosen ``Sec-WebSocket-Protocol`` header, which the
    handshake echoes."""
    answer = connection().handshake(Returned({
        "statusCode": 200, "headers": {"Sec-WebSocket-Protocol": "chat.v2"},
    }))
    assert answer == stage.Accept(("chat.v2",))
    assert connection().handshake(Returned(None)) == stage.Accept(())  # no answer: 200


def test_another_status_refuses_with_that_status_and_body() -> None:
    """A ``$connect`` answer other than 2xx refuses the handshake with that status: the
    subprotocol page above shows ``wscat`` getting ``Unexpected server response: 400``;
    "Manage connected users and client apps: $connect and $disconnect routes"
    (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-route-keys-connect-disconnect.html):
    a failed ``$connect`` makes no connection, so no ``$disconnect``."""
    refused = connection()
    assert refused.handshake(Returned({"statusCode": 401, "body": "no"})) == stage.Refuse(
        401, "no"
    )
    assert refused.state is stage.State.CLOSED
    assert refused.socket_closed() is None  # never existed: no $disconnect


@pytest.mark.parametrize(("outcome", "status"), [
    # serverless-offline's WebSocket suites, which also run against AWS, expect 502
    # from a $connect integration that fails.
    (Raised("RuntimeError", "boom"), 502),
    (TimedOut(3.0), 502),  # a function that timed out failed like one that raised
    # API Gateway maps Lambda's 429 to an integration failure (500), AWS re:Post
    # "API Gateway proxy integration does not forward Lambda throttling".
    (Throttled("ConcurrentInvocationLimitExceeded"), 500),
    # The integration timeout (29 s): "Endpoint request timed out", a gateway timeout.
    (stage.IntegrationTimedOut(), 504),
])
def test_a_failed_connect_integration_refuses_as_api_gateway_does(
    outcome: stage.RouteOutcome, status: int
) -> None:
    answer = connection().handshake(outcome)
    assert isinstance(answer, stage.Refuse) and answer.status == status
    assert answer.body is not None and "message" in json.loads(answer.body)


def test_a_stage_that_began_stopping_closes_a_new_connection_at_once() -> None:
    late = connection()
    late.handshake(Returned({"statusCode": 200}))
    assert late.open(accepting=False) == stage.GOING_AWAY_CLOSE
    assert late.state is stage.State.CLOSING


def test_a_stopping_table_refuses_handshakes_with_503() -> None:
    table: stage.ConnectionTable[stage.Connection] = stage.ConnectionTable()
    first = connection()
    assert table.admit(first) is None
    assert table.stop_accepting() == [first]
    assert table.admit(connection()) == stage.STOPPING


# -- closes -----------------------------------------------------------------------------


def test_the_gateways_own_close_wins_over_the_clients_echo() -> None:
    """The idle timeout closes with 1001; the client's echo (1000 from some clients) comes
    after and must not replace it, whatever order the adapter reports them in."""
    clock = Clock()
    idle = opened(stage.Limits(idle_timeout=10), clock)
    clock.now += 11
    assert idle.next_deadline() == stage.GOING_AWAY_CLOSE
    idle.client_closed(1000, "")
    event = idle.socket_closed()
    assert event is not None
    context = event["requestContext"]
    assert (context["disconnectStatusCode"], context["disconnectReason"]) == (1001, "Going away")


def test_the_clients_close_wins_when_it_came_first() -> None:
    closing = opened()
    closing.client_closed(4000, "bye")
    assert closing.close(stage.GOING_AWAY_CLOSE) is None  # closing already: nothing to send
    event = closing.socket_closed()
    assert event is not None
    assert event["requestContext"]["disconnectStatusCode"] == 4000


def test_a_close_frame_without_a_status_is_1005() -> None:
    """RFC 6455 7.1.5 (1005: no status code was present); AWS reports it with the reason
    'Client-side close frame status not set' (serverless-offline's suites against AWS)."""
    quiet = opened()
    quiet.client_closed(0, "")
    event = quiet.socket_closed()
    assert event is not None
    assert event["requestContext"]["disconnectStatusCode"] == 1005
    assert event["requestContext"]["disconnectReason"] == "Client-side close frame status not set"


def test_a_lost_socket_is_1006_and_disconnect_comes_exactly_once() -> None:
    """RFC 6455 7.1.5 (1006: closed without a close frame), a code the DISCONNECT
    events AWS sends carry (``disconnectStatusCode`` 1000, 1001, 1005, 1006)."""
    lost = opened()
    event = lost.socket_closed()
    assert event is not None and event["requestContext"]["disconnectStatusCode"] == 1006
    assert lost.socket_closed() is None
    assert lost.state is stage.State.CLOSED


@pytest.mark.parametrize(("report", "code"), [
    ("received_binary", 1003),  # Chalice's integration converts to text: binary is refused
    ("frame_too_big", 1009),  # a single frame over 32 KiB (API Gateway's quotas page)
])
def test_what_the_socket_may_not_carry_closes_it(report: str, code: int) -> None:
    refused = opened()
    close = getattr(refused, report)()
    assert isinstance(close, stage.Close) and close.code == code
    assert refused.state is stage.State.CLOSING
    assert getattr(refused, report)() is None  # already closing


def test_a_transport_error_is_recorded_with_its_code() -> None:
    broken = opened()
    broken.protocol_error(1009)
    event = broken.socket_closed()
    assert event is not None
    assert event["requestContext"]["disconnectReason"] == "Message too big"


# -- timers ---------------------------------------------------------------------------


def test_idle_time_and_duration_deadlines_follow_the_clock() -> None:
    """"Amazon API Gateway quotas for configuring and running a WebSocket API": 10
    minutes idle, 2 hours at most; either closes with 1001 (going away)."""
    clock = Clock()
    open_ = opened(stage.Limits(idle_timeout=600, max_duration=1000), clock)
    assert open_.next_deadline() == 600
    clock.now += 300
    open_.touch()
    assert open_.next_deadline() == 600
    clock.now += 599
    open_.touch()
    assert open_.next_deadline() == pytest.approx(101)  # the maximum duration comes first
    clock.now += 101
    assert open_.next_deadline() == stage.GOING_AWAY_CLOSE
    assert open_.next_deadline() is None  # closing: nothing more to watch


# -- integrations of messages ---------------------------------------------------------


def message_and_frame(outcome: stage.RouteOutcome, state: str = "open") -> tuple[
    dict[str, Any], str | None
]:
    live = opened()
    event = live.message_event("hello")
    if state == "closing":
        live.client_closed(1000)
    return event, live.failure_frame(event, outcome)


def test_a_handled_message_sends_nothing_more() -> None:
    assert message_and_frame(Returned(None))[1] is None


@pytest.mark.parametrize(("outcome", "message"), [
    (Raised("RuntimeError", "boom"), "Internal server error"),
    (TimedOut(3.0), "Internal server error"),
    (Throttled("ConcurrentInvocationLimitExceeded"), "Internal server error"),
    # What a client gets after the 29 s integration timeout (aws/chalice#1406).
    (stage.IntegrationTimedOut(), "Endpoint request timed out"),
])
def test_a_failed_message_integration_sends_api_gateways_error_frame(
    outcome: stage.RouteOutcome, message: str
) -> None:
    event, frame = message_and_frame(outcome)
    assert frame is not None
    assert json.loads(frame) == {
        "message": message,
        "connectionId": event["requestContext"]["connectionId"],
        "requestId": event["requestContext"]["requestId"],
    }


def test_no_error_frame_once_the_socket_is_closing() -> None:
    assert message_and_frame(Raised("RuntimeError", "boom"), "closing")[1] is None


# -- the @connections rules -----------------------------------------------------------


def table_with(*connections: stage.Connection) -> stage.ConnectionTable[stage.Connection]:
    table: stage.ConnectionTable[stage.Connection] = stage.ConnectionTable()
    for each in connections:
        table.add(each)
    return table


def test_management_rules_on_an_open_connection() -> None:
    """API Gateway developer guide, "Use @connections commands in your backend service":
    POST 200, GET 200 (connectedAt, lastActiveAt, identity), DELETE 204; 413
    ``PayloadTooLargeException`` above 128 KB, error types in ``x-amzn-ErrorType`` as
    the ``apigatewaymanagementapi`` service model in botocore names them."""
    live = opened()
    table = table_with(live)
    delivered = stage.rule(table, "POST", live.id, b"hi")
    assert isinstance(delivered, stage.Deliver) and delivered.text == "hi"
    described = stage.rule(table, "GET", live.id, b"")
    assert isinstance(described, stage.Answer) and described.status == 200
    assert set(described.payload or {}) == {"connectedAt", "lastActiveAt", "identity"}
    assert isinstance(stage.rule(table, "DELETE", live.id, b""), stage.Drop)
    too_big = stage.rule(table, "POST", live.id, b"x" * (128 * 1024 + 1))
    assert isinstance(too_big, stage.Answer) and too_big.status == 413
    assert too_big.headers["x-amzn-ErrorType"] == "PayloadTooLargeException"


def test_connecting_closed_and_unknown_connections_are_gone() -> None:
    """410 ``GoneException`` for a connection that is not open, and inside ``$connect``
    ("Use @connections commands in your backend service"; the bug it must not repeat:
    serverless-offline #1110)."""
    connecting = connection()
    closed = opened()
    closed.socket_closed()
    table = table_with(connecting, closed)
    for connection_id in (connecting.id, closed.id, "nobody"):
        gone = stage.rule(table, "POST", connection_id, b"hi")
        assert isinstance(gone, stage.Answer) and gone.status == 410
        assert gone.headers["x-amzn-ErrorType"] == "GoneException"


def test_an_injected_fault_answers_first() -> None:
    live = opened()
    faults = stage.Faults()
    faults.inject(live.id, 429)
    fault = faults.next("POST", live.id)
    assert fault is not None
    throttled = stage.rule(table_with(live), "POST", live.id, b"hi", fault.status)
    assert isinstance(throttled, stage.Answer) and throttled.status == 429
    assert faults.next("POST", live.id) is None
