"""Fixtures for the deployment tests: moto's SQS beside its DynamoDB, queue-aware services.

The moto server of ``tests/conftest.py`` answers every service, so SQS requests go
to the same loopback port through ``AWS_ENDPOINT_URL_SQS``. Nothing here needs
credentials or the network.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from chalice.app import WebsocketAPI

from chalicelib import runtime
from chalicelib.delivery import WORKERS
from chalicelib.management import ManagementSession
from chalicelib.runtime import Services, build_services
from chalicelib.settings import Settings
from switchboard_local.testing import WebsocketTestClient, route_management_api
from tests.conftest import ManualClock


@pytest.fixture
def sqs(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", moto_endpoint)
    return boto3.client("sqs", endpoint_url=moto_endpoint)


@pytest.fixture
def fanout_queue(sqs: Any) -> Iterator[str]:
    """A fresh fan-out queue per test; yields its name."""
    name = f"switchboard-test-fanout-{uuid.uuid4().hex[:12]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    yield name
    sqs.delete_queue(QueueUrl=url)


@pytest.fixture
def websocket_api() -> WebsocketAPI:
    """A container's own ``WebsocketAPI``: no endpoint configured, no client built yet.

    Chalice keeps the first management endpoint configured in a process; the
    push and worker tests check how that endpoint is found, so each starts
    with a fresh one, as a fresh Lambda container does.
    """
    api = WebsocketAPI()
    api.session = ManagementSession(pool_size=WORKERS)
    return api


@pytest.fixture
def services(
    settings: Settings, dynamodb: Any, sqs: Any, websocket_api: WebsocketAPI,
    clock: ManualClock,
) -> Iterator[Services]:
    """The app's services with moto's SQS, posting through the container's own API, on the
    test's clock."""
    built = dataclasses.replace(build_services(settings, websocket_api, dynamodb, sqs),
                                clock=clock)
    runtime.use(built)
    yield built
    runtime.reset()


@pytest.fixture
def client(
    services: Services, app_module: Any, websocket_api: WebsocketAPI
) -> WebsocketTestClient:
    test_client = WebsocketTestClient(app_module.app)
    route_management_api(websocket_api.session, test_client.emulator)
    return test_client

