"""Point the app's management client at the gateway through Chalice's public hook.

Chalice builds its ``apigatewaymanagementapi`` client from
``app.websocket_api.session`` with an AWS URL made of ``apiId`` and the region.
The session assigned here hands out the same clients, built by the app's own
session (so its client configuration stays), with the endpoint replaced by the
gateway's ``http://HOST:PORT/<stage>``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3

MANAGEMENT_SERVICE = "apigatewaymanagementapi"


class LocalManagementSession(boto3.session.Session):
    """A boto3 session whose management API clients talk to the local gateway."""

    def __init__(self, endpoint_url: Callable[[], str], original: Any = None) -> None:
        super().__init__()
        self._endpoint_url = endpoint_url
        self._original = original

    def client(self, service_name: str, *args: Any, **kwargs: Any) -> Any:
        if service_name == MANAGEMENT_SERVICE:
            kwargs["endpoint_url"] = self._endpoint_url()
        if self._original is not None:
            return self._original.client(service_name, *args, **kwargs)
        return super().client(service_name, *args, **kwargs)  # type: ignore[call-overload]


def redirect_management(app: Any, endpoint_url: Callable[[], str]) -> None:
    """Install the session once, before any event; the app's own session is kept inside."""
    original = app.websocket_api.session
    if not isinstance(original, LocalManagementSession):
        app.websocket_api.session = LocalManagementSession(endpoint_url, original)
