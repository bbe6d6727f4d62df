"""Where posts go: the only code that decides the management endpoint.

The stage's ``APIGW_MANAGEMENT_ENDPOINT`` wins in every function: behind a
custom domain, or with the execute-api endpoint disabled
(``DisableExecuteApiEndpoint``), it is the only URL that works. Without it, a
WebSocket handler uses the execute-api URL of the API its event came from, and
``$connect`` records that URL on the connection; functions outside WebSocket
handlers (``push``, the worker) use the URL recorded for one of their targets.
:meth:`chalicelib.delivery.Delivery.ensure_endpoint` points Chalice's client at
the answer, once per container.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from chalice.app import WebsocketEvent

from chalicelib.management import execute_api_url
from chalicelib.registry import Connection, Registry

EndpointOf = Callable[[Sequence[str]], Callable[[], "str | None"]]
"""Targets to a resolver of the management endpoint (:func:`of_targets` with the stage's
configured endpoint and registry bound): what functions outside WebSocket handlers are given."""

LOOKUPS = 10
"""Targets asked for their recorded endpoint before giving up (all may be gone)."""


def of_event(configured: str | None, event: WebsocketEvent) -> str:
    """The endpoint for a WebSocket event: the configured one, or the execute-api URL.

    The execute-api URL is built from ``apiId`` and the region, as Chalice builds
    it, not from ``domainName``: behind a custom domain ``domainName`` is the
    custom host, whose base path need not be the stage.
    """
    if configured is not None:
        return configured
    api_id = event.to_dict()["requestContext"]["apiId"]
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        return f"https://{event.domain_name}/{event.stage}"
    return execute_api_url(api_id, event.stage, region)


def of_targets(
    configured: str | None, registry: Registry, connection_ids: Sequence[str]
) -> Callable[[], str | None]:
    """A resolver for functions outside WebSocket handlers: the configured endpoint,
    or the one recorded on ``$connect`` for one of the targets; None when none is
    registered any more (there is nobody to post to)."""

    def resolve() -> str | None:
        if configured is not None:
            return configured
        for connection_id in connection_ids[:LOOKUPS]:
            connection = registry.get_connection(connection_id)
            if connection is not None:
                return connection.endpoint
        return None

    return resolve


def of_connection(configured: str | None, connection: Connection) -> Callable[[], str | None]:
    """A resolver for a connection whose record was just read: the configured endpoint, or
    the one recorded on it (no further read)."""
    return lambda: configured if configured is not None else connection.endpoint
