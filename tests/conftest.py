"""Shared fixtures: a moto DynamoDB server per test process, a fresh table per test.

The app talks to moto over HTTP through ``AWS_ENDPOINT_URL_DYNAMODB``, the same
way it would talk to DynamoDB, so requests go through botocore's real
serialisation and moto's validation.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"]
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.pop("AWS_PROFILE", None)

from moto.server import ThreadedMotoServer

from chalicelib import runtime
from chalicelib.identity import issue_token
from chalicelib.registry import table_definition
from chalicelib.runtime import Services, build_services
from chalicelib.settings import Settings
from switchboard_local.testing import WebsocketTestClient

logging.getLogger("werkzeug").setLevel(logging.WARNING)

TEST_SECRET = "tests-only-signing-key-0123456789abcdef"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    previous = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
    yield endpoint
    if previous is None:
        os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
    server.stop()


@pytest.fixture
def dynamodb_calls() -> Counter[str]:
    """DynamoDB operations the app makes, counted by name."""
    return Counter()


@pytest.fixture
def dynamodb(moto_endpoint: str, dynamodb_calls: Counter[str]) -> Any:
    client = boto3.client("dynamodb", endpoint_url=moto_endpoint)

    def count(model: Any, **_: Any) -> None:
        dynamodb_calls[model.name] += 1

    client.meta.events.register("before-call.dynamodb", count)
    return client


@pytest.fixture
def table_name(moto_endpoint: str) -> Iterator[str]:
    name = f"switchboard-test-{uuid.uuid4().hex[:12]}"
    admin = boto3.client("dynamodb", endpoint_url=moto_endpoint)
    admin.create_table(**table_definition(name))
    yield name
    admin.delete_table(TableName=name)


@pytest.fixture
def settings(table_name: str) -> Settings:
    return Settings.from_environ(
        {"CONNECTIONS_TABLE": table_name, "TOKEN_SECRET": TEST_SECRET}
    )


@pytest.fixture
def app_module() -> Any:
    import app

    return app


@pytest.fixture
def services(settings: Settings, dynamodb: Any, app_module: Any) -> Iterator[Services]:
    built = build_services(settings, app_module.app.websocket_api, dynamodb)
    runtime.use(built)
    yield built
    runtime.reset()


@pytest.fixture
def client(services: Services, app_module: Any) -> WebsocketTestClient:
    return WebsocketTestClient(app_module.app)


@pytest.fixture
def token() -> Any:
    def make(user_id: str, *roles: str, **kwargs: Any) -> str:
        return issue_token(TEST_SECRET, user_id, tuple(roles), **kwargs)

    return make


@pytest.fixture
def connect(client: WebsocketTestClient, token: Any) -> Any:
    """Connect as a user and assert the handshake was accepted."""

    def open_as(user_id: str, *roles: str) -> Any:
        connection = client.connect(query={"token": token(user_id, *roles)})
        assert connection.status == 200, connection.status
        return connection

    return open_as
