"""An external in-memory DynamoDB engine that restarts comes back empty: the gateway notices,
recreates what it declared and says so, and the next connect and frame work.

The engine is a real dynalite process (:mod:`harness.engines`), stopped and started
again on the same port, as a developer restarts ``npx dynalite``; the gateway serves
this repository's app with ``--dynamodb-endpoint`` pointing at it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from harness.engines import EngineError, EngineProcess, dynalite_process
from switchboard_local.gateway.server import GatewayOptions
from tests.gateways import REPO, WAIT, Running, start, stop, unique

TABLE = "switchboard-dev-connections"


@pytest.fixture
def dynalite() -> Iterator[EngineProcess]:
    """A dynalite of this test's own, to restart."""
    if shutil.which("node") is None:
        pytest.fail("node is not installed: the dynalite engine cannot run", pytrace=False)
    try:
        with dynalite_process() as engine:
            yield engine
    except EngineError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture
def on_dynalite(dynalite: EngineProcess) -> Iterator[Running]:
    options = GatewayOptions(
        project_dir=REPO, port=0, autoreload=False, dynamodb_endpoint=dynalite.endpoint
    )
    thread, running = start(options, REPO)
    yield running
    stop(thread)


def answers(socket: Any, frame: dict[str, Any], count: int) -> list[dict[str, Any]]:
    socket.send(json.dumps(frame))
    return [json.loads(socket.recv(timeout=WAIT)) for _ in range(count)]


def message_to_self(user: str, text: str) -> dict[str, Any]:
    return {"action": "sendMessage", "targetUserId": user, "text": text, "id": text}


def test_a_restarted_engine_gets_its_tables_back_and_the_next_connect_works(
    on_dynalite: Running, dynalite: EngineProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="switchboard_local.gateway")
    user = unique("alice")
    with on_dynalite.connect(f"token={on_dynalite.token(user)}") as socket:
        message, ack = answers(socket, message_to_self(user, "before"), 2)
        assert (message["seq"], ack["type"]) == (1, "ack")

    # In memory, it comes back empty; the first request to notice may be this connection's
    # $disconnect, still running, or the next handshake's.
    dynalite.restart()
    with on_dynalite.connect(f"token={on_dynalite.token(user)}") as socket:
        message, ack = answers(socket, message_to_self(user, "after"), 2)
    assert (message["type"], message["text"], message["seq"]) == ("message", "after", 1)
    assert (ack["type"], ack["delivered"], ack["stored"]) == ("ack", 1, True)
    engine = boto3.client("dynamodb", endpoint_url=dynalite.endpoint)
    assert engine.list_tables()["TableNames"] == [TABLE]
    [notice] = [r.getMessage() for r in caplog.records if "came back empty" in r.getMessage()]
    assert f"the DynamoDB engine at {dynalite.endpoint} came back empty" in notice
    assert f"table {TABLE} (created)" in notice


def test_a_connection_open_across_the_restart_is_answered_as_unknown(
    on_dynalite: Running, dynalite: EngineProcess
) -> None:
    user = unique("bob")
    with on_dynalite.connect(f"token={on_dynalite.token(user)}") as socket:
        assert answers(socket, {"action": "ping", "id": "1"}, 1) == [{"type": "pong", "id": "1"}]
        dynalite.restart()
        # The registry lost this connection's record with the rest: the app answers that it
        # does not know it (not an internal error); a reconnect is known again (above).
        [whoami] = answers(socket, {"action": "whoami", "id": "2"}, 1)
        assert (whoami["type"], whoami["code"], whoami["id"]) == ("error", "forbidden", "2")


def test_an_engine_that_is_down_is_named_in_the_error(
    on_dynalite: Running, dynalite: EngineProcess
) -> None:
    """While the engine is stopped, the app's requests fail with an error naming it."""
    dynalite.stop()
    client = boto3.client("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"],
                          config=Config(retries={"max_attempts": 1}))
    with pytest.raises(client.exceptions.ClientError) as failed:
        client.describe_table(TableName=TABLE)
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert f"the DynamoDB engine at {dynalite.endpoint} does not answer" in str(failed.value)
