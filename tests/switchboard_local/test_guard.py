"""The request guard, probed over real HTTP as an attacker probed ``make run``.

Each refusal is checked for its status and its message; each allowed variant is
checked too, so that the guard cannot pass by refusing everything. The browser's
side of the same attacks is in :mod:`.test_guard_browser`; the peer-address rules
(``/_local/token`` and the store for loopback peers only, ``--expose``) in
:mod:`.test_exposed`.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from websockets.exceptions import InvalidStatus

from switchboard_local.gateway.guard import (
    MAX_HEADER_BYTES,
    MAX_TARGET_BYTES,
    ExposureRefused,
    check_exposure,
    host_name,
)
from switchboard_local.gateway.server import Gateway, GatewayOptions
from tests.gateways import WAIT, Running, http_call, start, stop, unique

from .conftest import make_tiny_project

EVIL = "http://evil.example"


def call(
    gateway: Gateway, method: str, path: str, headers: dict[str, str] | None = None,
    body: bytes | None = None, address: str | None = None,
) -> tuple[int | str, Any]:
    return http_call(address or gateway.base, path, method, headers, body)


def push_event(user: str) -> bytes:
    return json.dumps({"userId": user, "data": {"from": "attacker"}}).encode()


@pytest.mark.parametrize("path", ["/", "/_local/config", "/_local/token?userId=mallory",
                                  "/dev/@connections/abc", "/dev", "/nope"])
def test_a_foreign_host_is_refused_on_every_path(switchboard_gateway: Running, path: str) -> None:
    """DNS rebinding: a page whose own name now points at 127.0.0.1 sends its name as Host."""
    port = switchboard_gateway.gateway.base.rpartition(":")[2]
    status, answer = call(switchboard_gateway.gateway, "GET", path,
                          {"Host": f"evil.example:{port}"})
    assert status == 403
    assert answer["message"].startswith("Host 'evil.example:")
    assert "--allow-host" in answer["message"]


def test_a_missing_host_is_refused(switchboard_gateway: Running) -> None:
    """HTTP/1.0 may leave Host out (aiohttp itself refuses an HTTP/1.1 request without)."""
    host, port = switchboard_gateway.gateway.base.split(":")
    with socket.create_connection((host, int(port)), timeout=WAIT) as raw:
        raw.sendall(b"GET /_local/config HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"403"
    assert json.loads(body)["message"].startswith("Host None is not allowed")


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:{port}", "127.0.0.1", "127.0.0.1:{port}",
                                  "[::1]", "[::1]:{port}"])
def test_loopback_names_are_answered(switchboard_gateway: Running, host: str) -> None:
    port = switchboard_gateway.gateway.base.rpartition(":")[2]
    status, config = call(switchboard_gateway.gateway, "GET", "/_local/config",
                          {"Host": host.format(port=port)})
    assert status == 200
    assert config["websocketUrl"] == f"ws://{host.format(port=port)}/dev"  # the page's own name


@pytest.fixture(scope="module")
def allowing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A gateway that also answers the name dev.example (``--allow-host dev.example``)."""
    root = make_tiny_project(tmp_path_factory.mktemp("allowing"))
    options = GatewayOptions(project_dir=root, port=0, autoreload=False,
                             allowed_hosts=("dev.example:1234",))
    thread, running = start(options, root)
    yield running
    stop(thread)


def test_an_allowed_host_is_answered_and_others_are_not(allowing: Running) -> None:
    assert call(allowing.gateway, "GET", "/_local/config", {"Host": "dev.example:8000"})[0] == 200
    assert call(allowing.gateway, "GET", "/_local/config", {"Host": "DEV.example"})[0] == 200
    assert call(allowing.gateway, "GET", "/_local/config", {"Host": "other.example"})[0] == 403


def test_a_cross_site_simple_post_cannot_invoke(switchboard_gateway: Running) -> None:
    """The attack as the browser sends it: text/plain, with the attacking page's Origin."""
    gateway = switchboard_gateway.gateway
    user = unique("victim")
    with switchboard_gateway.connect(f"token={switchboard_gateway.token(user)}") as victim:
        status, answer = call(gateway, "POST", "/_local/invoke/push",
                              {"Origin": EVIL, "Content-Type": "text/plain"}, push_event(user))
        assert status == 403
        assert answer["message"].startswith(f"Origin '{EVIL}' is not this gateway's")
        status, answer = call(gateway, "POST", "/_local/invoke/push",
                              {"Origin": EVIL, "Content-Type": "application/json"},
                              push_event(user))
        assert status == 403
        status, answer = call(gateway, "POST", "/_local/invoke/push",
                              {"Content-Type": "text/plain"}, push_event(user))
        assert status == 415
        assert answer["message"] == ("the event must be sent as Content-Type: "
                                     "application/json, not 'text/plain'")
        assert call(gateway, "POST", "/_local/invoke/push", {}, push_event(user))[0] == 415
        # What is allowed: the gateway's own page (same origin) and non-browser clients.
        for headers in ({"Origin": f"http://{gateway.base}"}, {}):
            status, answer = call(gateway, "POST", "/_local/invoke/push",
                                  {"Content-Type": "application/json; charset=utf-8", **headers},
                                  push_event(user))
            assert (status, answer["delivered"]) == (200, 1)
            assert json.loads(victim.recv(timeout=WAIT))["data"] == {"from": "attacker"}


@pytest.mark.parametrize("method", ["POST", "DELETE", "GET"])
@pytest.mark.parametrize("origin", [EVIL, "null", "http://127.0.0.1:1"])
def test_foreign_origins_cannot_use_connections(
    switchboard_gateway: Running, method: str, origin: str
) -> None:
    user = unique("victim")
    with switchboard_gateway.connect(f"token={switchboard_gateway.token(user)}") as victim:
        victim.send(json.dumps({"action": "whoami"}))
        connection_id = json.loads(victim.recv(timeout=WAIT))["connectionId"]
        status, answer = call(switchboard_gateway.gateway, method,
                              f"/dev/@connections/{connection_id}",
                              {"Origin": origin, "Content-Type": "text/plain"}, b"injected")
        assert status == 403 and answer["message"].startswith(f"Origin '{origin}'")
        victim.send(json.dumps({"action": "ping", "id": "still-open"}))
        assert json.loads(victim.recv(timeout=WAIT)) == {"type": "pong", "id": "still-open"}


@pytest.mark.parametrize("path", ["/_local/token?userId=mallory", "/_local/config",
                                  "/_local/switchboard.js"])
def test_foreign_origins_cannot_read_local_routes(switchboard_gateway: Running, path: str) -> None:
    gateway = switchboard_gateway.gateway
    assert call(gateway, "GET", path, {"Origin": EVIL})[0] == 403
    assert call(gateway, "GET", path, {"Origin": f"http://{gateway.base}"})[0] == 200
    assert call(gateway, "GET", path)[0] == 200


def test_the_stage_url_leaves_origin_to_the_app(switchboard_gateway: Running) -> None:
    """API Gateway hands a handshake's Origin to $connect: the app decides, not the gateway."""
    user = unique("elsewhere")
    with switchboard_gateway.connect(f"token={switchboard_gateway.token(user)}",
                                     origin=EVIL) as client:  # type: ignore[arg-type]
        client.send(json.dumps({"action": "ping", "id": "1"}))
        assert json.loads(client.recv(timeout=WAIT)) == {"type": "pong", "id": "1"}


def test_a_long_handshake_url_is_answered_414(switchboard_gateway: Running) -> None:
    with pytest.raises(InvalidStatus) as refused:
        switchboard_gateway.connect("token=" + "a" * 9000)
    response = refused.value.response
    assert response.status_code == 414
    assert json.loads(response.body or b"")["message"] == (
        f"the request target is {len('/dev?token=') + 9000} bytes long; this gateway takes at "
        f"most {MAX_TARGET_BYTES}")
    status, _ = call(switchboard_gateway.gateway, "GET", "/_local/token?userId=" + "a" * 9000)
    assert status == 414


def test_large_handshake_headers_are_answered_431(switchboard_gateway: Running) -> None:
    headers = {f"X-Padding-{n}": "p" * 1000 for n in range(17)}
    with pytest.raises(InvalidStatus) as refused:
        switchboard_gateway.connect("token=x", additional_headers=headers)
    assert refused.value.response.status_code == 431
    message = json.loads(refused.value.response.body or b"")["message"]
    assert message.endswith(f"this gateway takes at most {MAX_HEADER_BYTES}")
    # Under the limits, the same client is answered by the app (a bad token: 403).
    assert switchboard_gateway.refusal("token=" + "a" * 7000) == 403


def test_the_store_answers_no_web_page_and_no_foreign_host(switchboard_gateway: Running) -> None:
    gateway = switchboard_gateway.gateway
    assert gateway.store is not None
    store = gateway.store.embedded_endpoint.removeprefix("http://")
    target = {"X-Amz-Target": "AmazonSSM.GetParameter",
              "Content-Type": "application/x-amz-json-1.1"}
    body = json.dumps({"Name": "/switchboard/dev/token-secret", "WithDecryption": True}).encode()
    status, answer = call(gateway, "POST", "/", {**target, "Origin": EVIL}, body, store)
    assert status == 403 and answer["message"] == f"the store answers no web page (Origin '{EVIL}')"
    status, answer = call(gateway, "POST", "/", {**target, "Host": "evil.example"}, body, store)
    assert status == 403 and "not Host 'evil.example'" in answer["message"]
    ssm = boto3.client("ssm", endpoint_url=gateway.store.embedded_endpoint)
    assert ssm.get_parameter(Name="/switchboard/dev/token-secret")["Parameter"]["Value"]


def test_listening_beyond_loopback_needs_expose(tmp_path: Path) -> None:
    for host in ("0.0.0.0", "::", "192.0.2.10", ""):
        with pytest.raises(ExposureRefused, match="Pass --expose to listen there anyway"):
            check_exposure(host, expose=False)
        check_exposure(host, expose=True)
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_exposure(host, expose=False)
    with pytest.raises(ExposureRefused):
        Gateway(GatewayOptions(project_dir=make_tiny_project(tmp_path), host="0.0.0.0", port=0))


@pytest.mark.parametrize(("header", "name"), [
    ("localhost:8000", "localhost"), ("[::1]:8000", "::1"), ("[::1]", "::1"),
    ("Example.COM", "example.com"), ("::1", "::1"),
])
def test_host_names(header: str, name: str) -> None:
    assert host_name(header) == name
