"""The management client beneath ``websocket_api``: both transports, over real TLS.

The endpoint is the benchmark's stand-in (:mod:`harness.mgmt_server`, its own
process, HTTPS with a certificate made for the run): it answers 200, or the
status a ``fault-<status>-`` connection id asks for, with the error type API
Gateway names. Every error must reach the caller as the exception botocore
itself raises, whichever transport sent the post.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    ReadTimeoutError,
    SSLError,
)
from chalice.app import Chalice, WebsocketDisconnectedError

from chalicelib.management import LeanManagementClient, ManagementSession
from chalicelib.settings import SettingsError
from harness.mgmt_server import ManagementServer
from switchboard_local.botocore_hook import response

TRANSPORTS = ("lean", "botocore")
REGION = "us-east-1"


@pytest.fixture(scope="module")
def server() -> Iterator[ManagementServer]:
    with ManagementServer() as running:
        running.configure(delay=0.0)
        yield running


@pytest.fixture
def trusted(server: ManagementServer, monkeypatch: pytest.MonkeyPatch) -> ManagementServer:
    """The stand-in's certificate trusted the way a deployment would: ``AWS_CA_BUNDLE``."""
    monkeypatch.setenv("AWS_CA_BUNDLE", server.ca_bundle)
    server.configure(delay=0.0)
    return server


def management_client(transport: str, url: str, **kwargs: Any) -> Any:
    session = ManagementSession(pool_size=4, transport=transport, region_name=REGION)
    return session.client("apigatewaymanagementapi", endpoint_url=url, **kwargs)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_post_arrives_once(trusted: ManagementServer, transport: str) -> None:
    client = management_client(transport, trusted.url("api"))
    answer = client.post_to_connection(ConnectionId="abc=", Data="{}")
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    stats = trusted.stats()
    assert (stats["delivered"], stats["connections"], stats["duplicates"]) == (1, 1, 0)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (410, "GoneException"),
        (413, "PayloadTooLargeException"),
        (429, "LimitExceededException"),
        (403, "ForbiddenException"),
        (500, "500"),
    ],
)
def test_errors_are_the_exceptions_botocore_raises(
    trusted: ManagementServer, status: int, code: str
) -> None:
    raised: dict[str, ClientError] = {}
    for transport in TRANSPORTS:
        client = management_client(transport, trusted.url("api"))
        with pytest.raises(ClientError) as caught:
            client.post_to_connection(ConnectionId=f"fault-{status}-x", Data="{}")
        raised[transport] = caught.value
        modelled = getattr(client.exceptions, code, None)
        assert modelled is None or isinstance(caught.value, modelled)  # what Chalice catches
    lean, botocore = raised["lean"], raised["botocore"]
    assert type(lean).__name__ == type(botocore).__name__
    assert lean.response["Error"]["Code"] == botocore.response["Error"]["Code"] == code
    assert lean.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert lean.operation_name == botocore.operation_name == "PostToConnection"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_chalice_maps_a_410_to_websocket_disconnected(
    trusted: ManagementServer, transport: str
) -> None:
    app = Chalice(app_name="management-test")
    app.websocket_api.session = ManagementSession(4, transport, region_name=REGION)
    app.websocket_api.configure(trusted.host, "api")
    with pytest.raises(WebsocketDisconnectedError):
        app.websocket_api.send("fault-410-gone", "{}")
    app.websocket_api.send("alive=", "{}")
    assert trusted.stats()["delivered"] == 1


def test_keep_alive_connections_are_reused(trusted: ManagementServer) -> None:
    client = management_client("lean", trusted.url("api"))
    for index in range(30):
        client.post_to_connection(ConnectionId=f"c{index}", Data="{}")
    stats = trusted.stats()  # this request opens one connection of its own
    assert stats["delivered"] == 30
    assert stats["tcp_connections"] == 2


def test_a_connection_the_server_closed_is_replaced(trusted: ManagementServer) -> None:
    client = management_client("lean", trusted.url("api"))
    client.post_to_connection(ConnectionId="first", Data="{}")
    trusted.configure(delay=0.0, drop_idle=True)  # the server closes idle connections now
    client.post_to_connection(ConnectionId="second", Data="{}")
    assert trusted.stats()["delivered"] == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_untrusted_certificate_is_refused(server: ManagementServer, transport: str) -> None:
    client = management_client(transport, server.url("api"))
    with pytest.raises(SSLError):
        client.post_to_connection(ConnectionId="abc=", Data="{}")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_refused_connection_is_an_endpoint_connection_error(transport: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = management_client(transport, f"http://127.0.0.1:{port}/api")
    with pytest.raises(EndpointConnectionError):
        client.post_to_connection(ConnectionId="abc=", Data="{}")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_slow_answer_is_a_read_timeout(trusted: ManagementServer, transport: str) -> None:
    trusted.configure(delay=2.0)
    client = management_client(
        transport, trusted.url("api"), config=Config(read_timeout=0.3)
    )
    with pytest.raises(ReadTimeoutError) as caught:
        client.post_to_connection(ConnectionId="slow=", Data="{}")
    assert isinstance(caught.value, BotoCoreError)


class Captured:
    """A ``before-send`` hook that records the request and answers 200 itself."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    def __call__(self, request: Any, **_: Any) -> Any:
        self.requests.append(request)
        return response(request.url, 200)


def test_the_lean_request_is_botocores_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same URL, method, body and signed headers, signed for the same scope."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token-from-lambda")
    url = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"
    seen = {}
    for transport in TRANSPORTS:
        session = ManagementSession(4, transport, region_name="eu-west-1")
        captured = Captured()
        session.events.register("before-send.apigatewaymanagementapi", captured)
        client = session.client("apigatewaymanagementapi", endpoint_url=url)
        client.post_to_connection(ConnectionId="Ab_c-1=", Data="héllo")
        [seen[transport]] = captured.requests
    lean, botocore = seen["lean"], seen["botocore"]
    assert (lean.method, lean.url, lean.body) == (botocore.method, botocore.url, botocore.body)
    assert lean.url == f"{url}/@connections/Ab_c-1%3D"
    assert lean.headers["X-Amz-Security-Token"] == "token-from-lambda"

    def scope(request: Any) -> tuple[str, set[str]]:
        authorization = request.headers["Authorization"]
        if isinstance(authorization, bytes):
            authorization = authorization.decode()
        credential = authorization.split("Credential=")[1].split(",")[0]
        signed = authorization.split("SignedHeaders=")[1].split(",")[0]
        return credential.split("/", 2)[2], set(signed.split(";"))

    lean_scope, lean_signed = scope(lean)
    botocore_scope, botocore_signed = scope(botocore)
    assert lean_scope == botocore_scope == "eu-west-1/execute-api/aws4_request"
    assert {"host", "x-amz-date", "x-amz-security-token"} <= lean_signed
    assert lean_signed - botocore_signed <= {"x-amz-content-sha256"}


def test_one_client_per_endpoint_however_many_threads_ask() -> None:
    """Chalice asks for its client without a lock; the session builds one."""
    session = ManagementSession(4, "lean", region_name=REGION)
    url = "https://abc.execute-api.us-east-1.amazonaws.com/api"
    start = threading.Barrier(16)
    clients: list[Any] = []

    def ask() -> None:
        start.wait()
        clients.append(session.client("apigatewaymanagementapi", endpoint_url=url))

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(client) for client in clients}) == 1
    assert isinstance(clients[0], LeanManagementClient)
    assert session.endpoint == url


@pytest.mark.parametrize(
    ("setting", "expected"), [(None, LeanManagementClient), ("botocore", None), ("LEAN", None)]
)
def test_the_stage_setting_picks_the_transport(
    monkeypatch: pytest.MonkeyPatch, setting: str | None, expected: Any
) -> None:
    if setting is None:
        monkeypatch.delenv("MANAGEMENT_TRANSPORT", raising=False)
    else:
        monkeypatch.setenv("MANAGEMENT_TRANSPORT", setting)
    session = ManagementSession(4, region_name=REGION)
    client = session.client("apigatewaymanagementapi", endpoint_url="https://x.example/api")
    lean = isinstance(client, LeanManagementClient)
    assert lean is (setting in (None, "LEAN"))
    assert session.transport == ("botocore" if setting == "botocore" else "lean")


def test_a_bad_transport_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MANAGEMENT_TRANSPORT", "carrier-pigeon")
    session = ManagementSession(4, region_name=REGION)
    with pytest.raises(SettingsError, match="MANAGEMENT_TRANSPORT"):
        session.client("apigatewaymanagementapi", endpoint_url="https://x.example/api")


def test_other_services_get_plain_clients() -> None:
    session = ManagementSession(4, "lean", region_name=REGION)
    client = session.client("sqs", endpoint_url="http://127.0.0.1:1")
    assert client.meta.service_model.service_name == "sqs"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_local_gateway_answers_each_post_once_on_either_transport(transport: str) -> None:
    """The gateway wraps the app's session and hooks each client it is handed; ours hands
    out one client, so however often the wrapper is asked, one hook answers each post."""
    from switchboard_local.gateway.session import LocalManagementSession

    answered: list[str] = []

    def route(request: Any) -> Any:
        answered.append(request.url)
        return response(request.url, 200)

    local = LocalManagementSession(
        lambda: "http://127.0.0.1:9/dev", ManagementSession(4, transport, region_name=REGION)
    )
    local.in_process = route
    clients = [
        local.client("apigatewaymanagementapi", endpoint_url="https://x/dev") for _ in range(3)
    ]
    clients[0].post_to_connection(ConnectionId="a=b", Data=b"hello")
    assert answered == ["http://127.0.0.1:9/dev/@connections/a%3Db"]
