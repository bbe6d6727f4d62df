"""An exposed gateway probed from another machine's address: run by :mod:`.test_exposed`
inside a network namespace of its own, where ``REMOTE`` is an address on its loopback
interface, so nothing is reachable from outside while the gateway listens on 0.0.0.0.

A request to ``REMOTE`` comes from ``REMOTE`` (a non-loopback peer, as another
machine's would); a request to 127.0.0.1 can be made from it too (``source``).
Prints one line, ``RESULTS {json}``, for the test to judge.
"""

from __future__ import annotations

import json
import socket
import sys
from typing import Any

from websockets.sync.client import connect

from switchboard_local.gateway.server import GatewayOptions
from tests.gateways import REPO, WAIT, http_call, start, stop

REMOTE = "10.9.0.1"


def call(address: str, port: int, path: str, source: str | None = None, method: str = "GET",
         headers: dict[str, str] | None = None, body: bytes | None = None) -> list[Any]:
    return list(http_call(f"{address}:{port}", path, method, headers, body, source))


def probe() -> dict[str, Any]:
    options = GatewayOptions(project_dir=REPO, host="0.0.0.0", port=0, expose=True,
                             allowed_hosts=(REMOTE,), autoreload=False)
    thread, running = start(options, REPO)
    gateway = running.gateway
    try:
        port = int(gateway.base.rpartition(":")[2])
        assert gateway.store is not None
        store = int(gateway.store.embedded_endpoint.rpartition(":")[2])
        ssm = {"X-Amz-Target": "AmazonSSM.GetParameter",
               "Content-Type": "application/x-amz-json-1.1",
               "Authorization": "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/ssm/"
                                "aws4_request, SignedHeaders=host, Signature=0"}
        key = json.dumps({"Name": "/switchboard/dev/token-secret"}).encode()
        token = call("127.0.0.1", port, "/_local/token?userId=remote")[1]["token"]
        with connect(f"ws://{REMOTE}:{port}/dev?token={token}", open_timeout=WAIT) as client:
            client.send(json.dumps({"action": "whoami"}))
            connection_id = json.loads(client.recv(timeout=WAIT))["connectionId"]
            posted = call(REMOTE, port, f"/dev/@connections/{connection_id}", method="POST",
                          body=b'{"from": "remote"}')
            received = json.loads(client.recv(timeout=WAIT))
        return {
            "banner": [value for label, value in gateway.banner() if label == "Exposed"],
            "remote config": call(REMOTE, port, "/_local/config"),
            "remote token": call(REMOTE, port, "/_local/token?userId=mallory"),
            "remote token, loopback Host": call("127.0.0.1", port, "/_local/token?userId=m",
                                                source=REMOTE),
            "remote store at its address": call(REMOTE, store, "/", method="POST", headers=ssm,
                                                body=key),
            "remote store, loopback Host": call("127.0.0.1", store, "/", source=REMOTE,
                                                method="POST", headers=ssm, body=key),
            "remote foreign Host": call(REMOTE, port, "/_local/config",
                                        headers={"Host": "evil.example"}),
            "remote post to a connection": [posted[0], received],
            "local store": call("127.0.0.1", store, "/", method="POST", headers=ssm,
                                body=key)[1]["Parameter"]["Name"],
        }
    finally:
        stop(thread)


if __name__ == "__main__":
    socket.setdefaulttimeout(WAIT)
    print("RESULTS " + json.dumps(probe()), flush=True)
    sys.exit(0)
