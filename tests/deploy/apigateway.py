"""The two API Gateway v2 operations moto lacks, in front of moto's server: the smallest stand-in.

moto implements API Gateway v2's APIs, routes, integrations and stages, but not
``CreateDeployment`` or ``UpdateStage`` (``apigw-websocket.md``, "moto"), which
``chalice deploy`` and ``deploy.provision --after-deploy`` call. This server
answers those two as botocore's service model describes them — method, path
and status code come from the model (``POST /v2/apis/{apiId}/deployments``,
201; ``PATCH /v2/apis/{apiId}/stages/{stageName}``, 200), fields by their JSON
names — and passes every other request to moto unchanged. A stage's updated
settings are kept and laid over moto's answer to ``GetStage``, so a test reads
them back through the API as any client would.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import botocore.session

SERVICE = "apigatewayv2"
OWN = ("CreateDeployment", "UpdateStage")
OVERLAID = "GetStage"
_HOP_BY_HOP = {"connection", "content-length", "date", "server", "transfer-encoding", "host"}


def _route(operation: str) -> tuple[str, re.Pattern[str], int]:
    """An operation's method, path pattern and success status, from botocore's model."""
    http = botocore.session.get_session().get_service_model(SERVICE).operation_model(
        operation).http
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", http["requestUri"])
    return str(http["method"]), re.compile(f"^{pattern}$"), int(http.get("responseCode", 200))


@dataclass
class StandIn:
    """What the stand-in was asked: deployments per API, stage settings per (API, stage)."""

    moto: str
    endpoint: str = ""
    deployments: dict[str, list[str]] = field(default_factory=dict)
    stages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, bytes] | None:
        """The stand-in's own answer, or None to pass the request to moto."""
        for operation in OWN:
            verb, pattern, status = _route(operation)
            found = pattern.match(path)
            if method != verb or found is None:
                continue
            api = found.group("apiId")
            with self.lock:
                if operation == "CreateDeployment":
                    deployment = uuid.uuid4().hex[:6]
                    self.deployments.setdefault(api, []).append(deployment)
                    # botocore's apigatewayv2 model: DeploymentStatus is PENDING | FAILED |
                    # DEPLOYED; an auto-deployed stage's deployment is DEPLOYED at once.
                    return status, json.dumps({"deploymentId": deployment,
                                               "deploymentStatus": "DEPLOYED"}).encode()
                settings = self.stages.setdefault((api, found.group("stageName")), {})
                settings.update(json.loads(body or b"{}"))
                return status, json.dumps({"stageName": found.group("stageName"),
                                           **settings}).encode()
        return None

    def overlay(self, method: str, path: str, status: int, body: bytes) -> bytes:
        """moto's GetStage answer with the settings UpdateStage stored."""
        verb, pattern, _ = _route(OVERLAID)
        found = pattern.match(path)
        if method != verb or found is None or status != 200:
            return body
        with self.lock:
            settings = self.stages.get((found.group("apiId"), found.group("stageName")), {})
        return json.dumps({**json.loads(body), **settings}).encode()


@contextmanager
def standing_in(moto: str) -> Iterator[StandIn]:
    """The stand-in on a free loopback port, in front of the moto server at ``moto``."""
    state = StandIn(moto)
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?")[0]
            own = state.answer(self.command, path, body)
            if own is not None:
                self._send(own[0], {"Content-Type": "application/json"}, own[1])
                return
            request = urllib.request.Request(
                state.moto + self.path, data=body or None, method=self.command,
                headers={k: v for k, v in self.headers.items()
                         if k.lower() not in _HOP_BY_HOP})
            try:
                with direct.open(request, timeout=30) as answer:
                    status, headers, data = answer.status, dict(answer.headers), answer.read()
            except urllib.error.HTTPError as error:
                status, headers, data = error.code, dict(error.headers), error.read()
            self._send(status, headers, state.overlay(self.command, path, status, data))

        def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
