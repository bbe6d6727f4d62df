"""The app's AWS services: moto's server in this process, or an external DynamoDB.

The app reaches them through the standard ``AWS_ENDPOINT_URL_DYNAMODB`` and
``AWS_ENDPOINT_URL`` variables botocore reads, so its code is the same here
and on AWS. With the embedded store, SQS, SSM and every other service go to
the same moto server, so the app's other AWS calls stay on this machine
instead of failing slowly against AWS with dummy credentials; a user's own
``AWS_ENDPOINT_URL`` is kept.

The store holds the signing key and every table: it listens on 127.0.0.1
only, and answers only loopback peers that name it by a loopback ``Host``
and are no web page (no ``Origin``): moto allows any origin, so without this
any page the developer opens could read the key from it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

from switchboard_local.gateway.engine_front import EngineFront, Recreate
from switchboard_local.gateway.guard import LOOPBACK_NAMES, host_name, is_loopback

Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Store:
    """Where the services are: ``endpoints`` for the environment; ``stop`` ends moto."""

    def __init__(self, dynamodb_endpoint: str | None = None) -> None:
        # Heavy: imported when a gateway starts.
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        # Its request lines would drown the app's logs; warnings and errors still show.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server: Any = make_server(
            "127.0.0.1", 0, loopback_only(DomainDispatcherApplication(create_backend_app)),
            threaded=True, request_handler=MotoRequestHandler,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="store", daemon=True
        )
        self._thread.start()
        port = int(self._server.server_address[1])
        self.embedded_endpoint = f"http://127.0.0.1:{port}"
        self.dynamodb_endpoint = (dynamodb_endpoint or self.embedded_endpoint).rstrip("/")
        self.embedded = dynamodb_endpoint is None
        self._front: EngineFront | None = None
        if dynamodb_endpoint is not None:
            self._front = EngineFront(self.dynamodb_endpoint)
            self._front.start()

    def recover_with(self, recreate: Recreate) -> None:
        """What to run when the external DynamoDB engine lost a table (see :mod:`.engine_front`)."""
        if self._front is not None:
            self._front.recreate = recreate

    @property
    def endpoint(self) -> str:
        """DynamoDB's endpoint (the embedded one unless an external one was given)."""
        return self.dynamodb_endpoint

    def endpoints(self) -> dict[str, str]:
        """The app's endpoints: an external engine's requests pass its front."""
        dynamodb = self._front.endpoint if self._front is not None else self.dynamodb_endpoint
        endpoints = {"AWS_ENDPOINT_URL_DYNAMODB": dynamodb}
        if "AWS_ENDPOINT_URL" not in os.environ:
            endpoints["AWS_ENDPOINT_URL"] = self.embedded_endpoint
        return endpoints

    def stop(self) -> None:
        if self._front is not None:
            self._front.stop()
            self._front = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = None


def loopback_only(app: Wsgi) -> Wsgi:
    """``app`` behind the store's checks; a refusal is a 403 with a JSON ``message``."""

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        refusal = _refusal(environ)
        if refusal is None:
            return app(environ, start_response)
        body = json.dumps({"message": refusal}).encode()
        start_response("403 Forbidden", [("Content-Type", "application/json"),
                                         ("Content-Length", str(len(body)))])
        return [body]

    return guarded


def _refusal(environ: dict[str, Any]) -> str | None:
    peer = str(environ.get("REMOTE_ADDR", ""))
    if not is_loopback(peer):
        return f"the store answers loopback peers only, not {peer}"
    host = environ.get("HTTP_HOST")
    if host is None or host_name(str(host)) not in LOOPBACK_NAMES:
        return f"the store answers requests for 127.0.0.1 or localhost only, not Host {host!r}"
    if "HTTP_ORIGIN" in environ:
        return f"the store answers no web page (Origin {environ['HTTP_ORIGIN']!r})"
    return None
