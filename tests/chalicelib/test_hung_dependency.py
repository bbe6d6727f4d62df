"""A hung DynamoDB still gets every handler an answer before its Lambda would be stopped.

The engine is a moto server in a process of its own, started for these tests
and frozen with SIGSTOP: connections are accepted by the kernel, nothing is
ever answered — what a hung dependency looks like. The app uses the data
client it builds in production (:func:`chalicelib.aws.dynamodb_client`), whose
attempts are bounded by the invocation's deadline.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from chalicelib import aws, invocation, runtime
from chalicelib.registry import table_definition
from chalicelib.runtime import build_services
from chalicelib.settings import Settings
from harness.engines import EngineError, EngineProcess, moto_process
from switchboard_local.testing import LambdaContext, WebsocketTestClient
from tests.conftest import TEST_SECRET

BUDGET_SECONDS = 6.0  # the Lambda's timeout in these tests; the deadline is 1 s less
TABLE = "switchboard-hung"


@pytest.fixture(scope="module")
def engine() -> Iterator[EngineProcess]:
    """A moto server process to freeze (SIGSTOP), holding the table the app uses."""
    try:
        with moto_process() as running:
            boto3.client("dynamodb", endpoint_url=running.endpoint).create_table(
                **table_definition(TABLE)
            )
            yield running
    except EngineError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture
def app_client(
    engine: EngineProcess, app_module: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[WebsocketTestClient]:
    """The app on the production DynamoDB client, pointed at the engine that will hang."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", engine.endpoint)
    settings = Settings.from_environ({"CONNECTIONS_TABLE": TABLE, "TOKEN_SECRET": TEST_SECRET})
    runtime.use(build_services(settings, app_module.app.websocket_api, aws.dynamodb_client()))
    client = WebsocketTestClient(app_module.app)
    client.budget_seconds = BUDGET_SECONDS
    yield client
    engine.thaw()
    runtime.reset()


def test_a_message_gets_its_internal_error_before_the_deadline(
    app_client: WebsocketTestClient, engine: EngineProcess, token: Any
) -> None:
    alice = app_client.connect(query={"token": token("alice")})
    assert alice.status == 200
    engine.freeze()
    started = time.monotonic()
    frames = alice.send({"action": "sendMessage", "targetUserId": "bob", "text": "hi", "id": "m"})
    elapsed = time.monotonic() - started
    assert [(f["type"], f.get("code"), f.get("id")) for f in frames] == [
        ("error", "internal", "m")
    ]
    assert elapsed < BUDGET_SECONDS - invocation.DEADLINE_RESERVE_SECONDS


def test_a_connect_is_refused_with_500_before_the_deadline(
    app_client: WebsocketTestClient, engine: EngineProcess, token: Any
) -> None:
    engine.freeze()
    started = time.monotonic()
    refused = app_client.connect(query={"token": token("carol")})
    elapsed = time.monotonic() - started
    assert refused.status == 500
    assert elapsed < BUDGET_SECONDS - invocation.DEADLINE_RESERVE_SECONDS


def test_no_attempt_starts_that_could_outlast_the_deadline(engine: EngineProcess) -> None:
    """With less time left than one attempt may take, nothing is sent at all."""
    client = aws.bounded_by_deadline(boto3.client(
        "dynamodb", endpoint_url=engine.endpoint,
        config=Config(connect_timeout=1, read_timeout=2, retries={"mode": "standard"}),
    ))
    sent: list[Any] = []
    client.meta.events.register("before-send.dynamodb", lambda request, **_: sent.append(1))
    with invocation.bound(LambdaContext("f", budget_seconds=3.5)), pytest.raises(
        aws.DeadlineExceeded, match="s left in the invocation"
    ):
        client.describe_table(TableName=TABLE)
    assert sent == []


def test_outside_an_invocation_the_client_is_unbounded(engine: EngineProcess) -> None:
    client = aws.bounded_by_deadline(boto3.client("dynamodb", endpoint_url=engine.endpoint))
    assert invocation.current() is None
    assert client.describe_table(TableName=TABLE)["Table"]["TableName"] == TABLE


def test_the_deadline_binding_ends_with_the_handler() -> None:
    with invocation.bound(LambdaContext("f", budget_seconds=10)) as deadline:
        assert invocation.current() is deadline
        assert 8.5 < deadline.remaining() <= 9.0
    assert invocation.current() is None

