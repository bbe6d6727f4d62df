"""The session hook: the app's management clients go to the gateway, in-process once it serves."""

from __future__ import annotations

import socket
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import EndpointConnectionError

from switchboard_local.botocore_hook import connection_id_of, response
from switchboard_local.gateway.session import LocalManagementSession


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/dev"


def session(endpoint: str) -> LocalManagementSession:
    original = boto3.session.Session(
        aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1"
    )
    return LocalManagementSession(lambda: endpoint, original)


def test_without_the_in_process_route_requests_go_to_the_gateway_url() -> None:
    endpoint = closed_port_url()
    client = session(endpoint).client(
        "apigatewaymanagementapi", endpoint_url="https://abc.execute-api.us-east-1.amazonaws.com/dev"
    )
    assert client.meta.endpoint_url == endpoint
    with pytest.raises(EndpointConnectionError, match=r"127\.0\.0\.1"):
        client.post_to_connection(ConnectionId="c1", Data=b"x")


def test_with_the_in_process_route_no_http_is_sent() -> None:
    local = session(closed_port_url())
    seen: list[tuple[str, str, bytes]] = []

    def route(request: AWSPreparedRequest) -> AWSResponse:
        seen.append((request.method, connection_id_of(request), request.body))
        gone = {"x-amzn-ErrorType": "GoneException"}
        return response(request.url, 410, b'{"message": null}', gone)

    local.in_process = route
    client: Any = local.client("apigatewaymanagementapi", endpoint_url="https://x/dev")
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId="a=b", Data=b"hello")
    assert seen == [("POST", "a=b", b"hello")]


def test_other_services_are_built_by_the_apps_session_unchanged() -> None:
    client = session(closed_port_url()).client("sqs", endpoint_url="http://127.0.0.1:9/")
    assert client.meta.endpoint_url == "http://127.0.0.1:9/"
