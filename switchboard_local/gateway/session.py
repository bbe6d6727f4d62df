"""Point the app's management client at the gateway through Chalice's public hook.

Chalice builds its ``apigatewaymanagementapi`` client from
``app.websocket_api.session`` with an AWS URL made of ``apiId`` and the region.
The session assigned here hands out the same clients, built by the app's own
session (so its client configuration stays), with the endpoint replaced by the
gateway's ``http://HOST:PORT/<stage>``. Once the gateway serves, its
``in_process`` hook answers those clients' requests without the loopback HTTP
round trip; until then (and without it) they go over HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
from botocore.awsrequest import AWSPreparedRequest, AWSResponse

from switchboard_local.botocore_hook import MANAGEMENT_SERVICE

Route = Callable[[AWSPreparedRequest], AWSResponse]
_ROUTE_ID = "switchboard-local-gateway-route"


class LocalManagementSession(boto3.session.Session):
    """A boto3 session whose management API clients talk to the local gateway."""

    def __init__(self, endpoint_url: Callable[[], str], original: Any = None) -> None:
        super().__init__()
        self._endpoint_url = endpoint_url
        self._original = original
        self.in_process: Route | None = None

    def client(self, service_name: str, *args: Any, **kwargs: Any) -> Any:
        if service_name != MANAGEMENT_SERVICE:
            return self._build(service_name, *args, **kwargs)
        kwargs["endpoint_url"] = self._endpoint_url()
        client = self._build(service_name, *args, **kwargs)
        # The app's session may hand out one client to every caller: register once.
        client.meta.events.register(
            f"before-send.{MANAGEMENT_SERVICE}", self._route, unique_id=_ROUTE_ID
        )
        return client

    def _build(self, service_name: str, *args: Any, **kwargs: Any) -> Any:
        if self._original is not None:
            return self._original.client(service_name, *args, **kwargs)
        return super().client(service_name, *args, **kwargs)  # type: ignore[call-overload]

    def _route(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        """Answer in-process when the gateway serves; ``None`` lets botocore send over HTTP."""
        return self.in_process(request) if self.in_process is not None else None


def redirect_management(
    app: Any, endpoint_url: Callable[[], str], in_process: Route | None = None
) -> LocalManagementSession:
    """Install the session once per app, before any event; the app's own session is kept inside."""
    session = app.websocket_api.session
    if not isinstance(session, LocalManagementSession):
        session = LocalManagementSession(endpoint_url, session)
        app.websocket_api.session = session
    session.in_process = in_process
    return session
