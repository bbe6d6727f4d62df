"""Shared fixtures: two DynamoDB engines per test process, a fresh table per test.

The app talks to its engine over HTTP, the same way it would talk to DynamoDB,
so requests go through botocore's real serialisation and the engine's
validation. Every test that uses DynamoDB runs twice, on two independent
engines started as real servers on free loopback ports:

* ``moto`` — a ``ThreadedMotoServer``;
* ``dynalite`` — the npm package (``make test`` installs it with ``npm ci``),
  which validates requests the way DynamoDB does and refuses some that moto
  accepts (it has no ``TransactWriteItems``, for one).

A request either engine refuses fails the suite. A test that is about
something other than storage and would only be slower twice (property tests,
the 1,000-connection fan-out) opts out with ``@pytest.mark.engines("moto")``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
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
from harness.engines import EngineError, dynalite_process
from switchboard_local.gateway.server import GatewayOptions
from switchboard_local.testing import WebsocketTestClient
from tests.gateways import Running, start, stop

logging.getLogger("werkzeug").setLevel(logging.WARNING)

TEST_SECRET = "tests-only-signing-key-0123456789abcdef"
# The dev stage's default room permissions: a token without a rooms claim may do everything.
TEST_ROOM_PERMISSIONS = "join,publish,presence,history"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ROOT = Path(__file__).parent.parent
ENGINES = ("moto", "dynalite")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "engines(*names): run only on these DynamoDB engines (default: all)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that touches DynamoDB once per engine."""
    if "dynamodb_endpoint" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("engines")
    engines = tuple(marker.args) if marker is not None else ENGINES
    unknown = set(engines) - set(ENGINES)
    if unknown:
        raise pytest.UsageError(f"unknown DynamoDB engine(s) {sorted(unknown)}")
    metafunc.parametrize("dynamodb_endpoint", engines, indirect=True, scope="function")


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


@pytest.fixture(scope="session")
def dynalite_endpoint() -> Iterator[str]:
    """A dynalite server (in memory) for this test process; fails loudly when it cannot run."""
    if shutil.which("node") is None:
        pytest.fail("node is not installed: the dynalite engine cannot run", pytrace=False)
    try:
        with dynalite_process() as engine:
            yield engine.endpoint
    except EngineError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture
def dynamodb_endpoint(request: pytest.FixtureRequest) -> str:
    """The endpoint of the engine this test runs on (see ``pytest_generate_tests``)."""
    engine = getattr(request, "param", "moto")
    fixture = "moto_endpoint" if engine == "moto" else "dynalite_endpoint"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def dynamodb_engine(dynamodb_endpoint: str, request: pytest.FixtureRequest) -> str:
    """The name of the engine this test runs on: ``moto`` or ``dynalite``."""
    return str(request.node.callspec.params["dynamodb_endpoint"])


@pytest.fixture
def dynamodb_calls() -> Counter[str]:
    """DynamoDB operations the app makes, counted by name."""
    return Counter()


@pytest.fixture
def dynamodb(dynamodb_endpoint: str, dynamodb_calls: Counter[str]) -> Any:
    client = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint)

    def count(model: Any, **_: Any) -> None:
        dynamodb_calls[model.name] += 1

    client.meta.events.register("before-call.dynamodb", count)
    return client


def create_table(admin: Any, name: str) -> None:
    """Create the registry table and wait until it is ACTIVE.

    dynalite creates tables asynchronously even with ``--createTableMs 0``: a
    DeleteTable that comes too soon is refused with ``ResourceInUseException``.
    """
    admin.create_table(**table_definition(name))
    admin.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 0.05, "MaxAttempts": 200}
    )


@pytest.fixture
def table_name(dynamodb_endpoint: str) -> Iterator[str]:
    name = f"switchboard-test-{uuid.uuid4().hex[:12]}"
    admin = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint)
    create_table(admin, name)
    yield name
    admin.delete_table(TableName=name)


@pytest.fixture
def extra_settings() -> dict[str, str]:
    """Stage variables a test adds on top of the table and the signing key."""
    return {}


@pytest.fixture
def settings(table_name: str, extra_settings: dict[str, str]) -> Settings:
    return Settings.from_environ(
        {"CONNECTIONS_TABLE": table_name, "TOKEN_SECRET": TEST_SECRET,
         "DEFAULT_ROOM_PERMISSIONS": TEST_ROOM_PERMISSIONS, **extra_settings}
    )


@pytest.fixture
def app_module() -> Any:
    import app

    return app


class ManualClock:
    """A wall clock that moves only when the test moves it: rate limits count their
    windows on it, so a test decides which frames share one."""

    def __init__(self, now: float | None = None) -> None:
        # The start of a second and a minute; by default the real one's current minute, so
        # tokens, revocations and idempotency windows (which PyJWT and DynamoDB judge on the
        # real clock) agree with the services' clock.
        self.now = now if now is not None else float(int(time.time()) // 60 * 60)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def services(
    settings: Settings, dynamodb: Any, app_module: Any, clock: ManualClock
) -> Iterator[Services]:
    built = dataclasses.replace(
        build_services(settings, app_module.app.websocket_api, dynamodb), clock=clock
    )
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


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """The system's headless Chromium through Playwright (which never downloads a browser).

    Without one the test is skipped: ``make browser`` (or ``apt-get install chromium`` as
    root) installs it.
    """
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(
            f"no Chromium at {CHROMIUM}: run `make browser` (as root it runs "
            "`apt-get install -y chromium`), or set CHROMIUM to a Chromium binary"
        )
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def switchboard_gateway() -> Iterator[Running]:
    """This repository's app on the local gateway (embedded store), shared by a module's tests."""
    thread, running = start(GatewayOptions(project_dir=ROOT, port=0, autoreload=False), ROOT)
    yield running
    stop(thread)
