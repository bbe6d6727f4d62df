"""Answering a botocore client's management API requests in-process: the shared glue.

A ``before-send`` hook on a client (or a session) may return a response
instead of letting botocore send the request; botocore then parses it as if
it had come over HTTP. Both local adapters answer the app's own management
client this way: the in-process test client always, the gateway once it serves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HTTPHeaders

MANAGEMENT_SERVICE = "apigatewaymanagementapi"


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> list[bytes]:
        return [self._data]


def connection_id_of(request: AWSPreparedRequest) -> str:
    """The id in a management request's ``.../@connections/{id}`` path."""
    return unquote(urlsplit(request.url).path.rsplit("/@connections/", 1)[-1])


def request_data(request: AWSPreparedRequest) -> bytes:
    body = request.body or b""
    return body if isinstance(body, bytes) else str(body).encode()


def response(
    url: str, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None
) -> AWSResponse:
    """A response botocore parses as if it had come over HTTP."""
    http_headers = HTTPHeaders()
    for name, value in (headers or {}).items():
        http_headers[name] = value
    return AWSResponse(url, status, http_headers, _Body(body))
