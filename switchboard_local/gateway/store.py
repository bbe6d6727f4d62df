"""The app's AWS services: moto's server in this process, or an external DynamoDB.

The app reaches them through the standard ``AWS_ENDPOINT_URL_DYNAMODB`` and
``AWS_ENDPOINT_URL`` variables botocore reads, so its code is the same here
and on AWS. With the embedded store, SQS, SSM and every other service go to
the same moto server, so the app's other AWS calls stay on this machine
instead of failing slowly against AWS with dummy credentials; a user's own
``AWS_ENDPOINT_URL`` is kept.
"""

from __future__ import annotations

import logging
import os
from typing import Any


class Store:
    """Where the services are: ``endpoints`` for the environment; ``stop`` ends moto."""

    def __init__(self, dynamodb_endpoint: str | None = None) -> None:
        self._server: Any = None
        from moto.server import ThreadedMotoServer  # heavy: imported when a gateway starts

        # Its request lines would drown the app's logs; warnings and errors still show.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.embedded_endpoint = f"http://{host}:{port}"
        self.dynamodb_endpoint = (dynamodb_endpoint or self.embedded_endpoint).rstrip("/")
        self.embedded = dynamodb_endpoint is None

    @property
    def endpoint(self) -> str:
        """DynamoDB's endpoint (the embedded one unless an external one was given)."""
        return self.dynamodb_endpoint

    def endpoints(self) -> dict[str, str]:
        endpoints = {"AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb_endpoint}
        if "AWS_ENDPOINT_URL" not in os.environ:
            endpoints["AWS_ENDPOINT_URL"] = self.embedded_endpoint
        return endpoints

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
