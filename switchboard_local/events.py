"""Lambda events with the field sets AWS sends: the only code that knows their shapes.

WebSocket proxy events follow events captured from API Gateway (see the
project's reference notes): CONNECT carries the client's end-to-end headers
(never the hop-by-hop ``Connection``/``Upgrade``) plus API Gateway's own
(``X-Amzn-Trace-Id``, ``X-Forwarded-*``) and the query string, MESSAGE the
body and a messageId, DISCONNECT a status code and reason; every event
carries the same ``requestContext`` fields, with ``connectedAt`` fixed per
connection. SQS records follow what Lambda's event source mapping sends;
scheduled events, what EventBridge sends for a schedule rule.
"""

from __future__ import annotations

import base64
import random
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

MAX_POST_BYTES = 128 * 1024
"""API Gateway's largest message either way: a larger client message closes the
socket with 1009, a larger PostToConnection is refused with 413."""


HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "proxy-connection",
})
"""Headers of one hop (RFC 9110, 7.6.1): a proxy such as API Gateway never forwards them."""


def new_id() -> str:
    """An id shaped like API Gateway's connection and request ids: 16 chars, '=' last.

    Unique, not secret: drawn from ``random`` (no system call per message)."""
    return base64.b64encode(random.getrandbits(88).to_bytes(11, "big")).decode()[:15] + "="


@dataclass(frozen=True)
class ApiContext:
    """Where the API lives: the values API Gateway puts in every requestContext."""

    api_id: str = "local00001"
    stage: str = "api"
    domain_name: str = "local00001.execute-api.us-east-1.amazonaws.com"


@dataclass
class ConnectionContext:
    """What API Gateway remembers about one connection for all its events."""

    api: ApiContext
    connection_id: str = field(default_factory=new_id)
    connected_at_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    source_ip: str = "127.0.0.1"
    user_agent: str | None = None

    def connect_event(
        self,
        headers: Mapping[str, str | list[str]] | None = None,
        query: Mapping[str, str | list[str]] | None = None,
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            **_headers_fields(headers or {}),
            "requestContext": self._request_context("$connect", "CONNECT"),
            "isBase64Encoded": False,
        }
        if query:
            event.update(_query_fields(query))
        return event

    def message_event(self, body: str) -> dict[str, Any]:
        context = self._request_context("$default", "MESSAGE")
        context["messageId"] = new_id()
        return {"requestContext": context, "body": body, "isBase64Encoded": False}

    def disconnect_event(self, status_code: int, reason: str = "") -> dict[str, Any]:
        context = self._request_context("$disconnect", "DISCONNECT")
        context["disconnectStatusCode"] = status_code
        context["disconnectReason"] = reason
        headers = {
            "Host": self.api.domain_name,
            "x-api-key": "",
            "X-Forwarded-For": "",
            "x-restapi": "",
        }
        return {**_headers_fields(headers), "requestContext": context, "isBase64Encoded": False}

    def description(self, last_active: float) -> dict[str, Any]:
        """GetConnection's answer: connectedAt, lastActiveAt and identity, ISO-8601."""
        return {
            "connectedAt": iso8601(self.connected_at_ms / 1000),
            "lastActiveAt": iso8601(last_active),
            "identity": self._identity(),
        }

    def _identity(self) -> dict[str, str]:
        """The client as every event and GetConnection describe it (a new dict each time)."""
        identity = {"sourceIp": self.source_ip}
        if self.user_agent is not None:
            identity["userAgent"] = self.user_agent
        return identity

    def _request_context(self, route_key: str, event_type: str) -> dict[str, Any]:
        now = time.time()
        request_id = new_id()
        return {
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": request_id,
            "requestTime": clf_time(now),
            "messageDirection": "IN",
            "stage": self.api.stage,
            "connectedAt": self.connected_at_ms,
            "requestTimeEpoch": int(now * 1000),
            "identity": self._identity(),
            "requestId": request_id,
            "domainName": self.api.domain_name,
            "connectionId": self.connection_id,
            "apiId": self.api.api_id,
        }


def connect_headers(
    client: Iterable[tuple[str, str]], domain_name: str, source_ip: str, port: int,
    proto: str = "http", now: float | None = None,
) -> dict[str, list[str]]:
    """A CONNECT event's headers from the client's, as API Gateway forwards them.

    The client's end-to-end headers in its order (``Host`` replaced by the
    API's domain; hop-by-hop headers, and any the client's ``Connection``
    names, left out), then ``X-Amzn-Trace-Id`` (a new trace) and the
    ``X-Forwarded-*`` headers, as in the captured AWS event.
    """
    pairs = list(client)
    named = {
        token.strip().lower()
        for name, value in pairs if name.lower() == "connection" for token in value.split(",")
    }
    headers: dict[str, list[str]] = {"Host": [domain_name]}
    for name, value in pairs:
        lowered = name.lower()
        if lowered == "host" or lowered in HOP_BY_HOP or lowered in named:
            continue
        headers.setdefault(name, []).append(value)
    headers.setdefault("X-Amzn-Trace-Id", [trace_id(now)])
    for name, value in (("X-Forwarded-For", source_ip), ("X-Forwarded-Port", str(port)),
                        ("X-Forwarded-Proto", proto)):
        headers.setdefault(name, [value])
    return headers


def trace_id(now: float | None = None) -> str:
    """An X-Ray trace header for a new request: ``Root=1-<epoch hex>-<96 random bits>``."""
    seconds = int(time.time() if now is None else now)
    return f"Root=1-{seconds:08x}-{secrets.token_hex(12)}"


def scheduled_event(
    rule_name: str, region: str, account: str, now: float | None = None
) -> dict[str, Any]:
    """What EventBridge sends a function its schedule rule triggers."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, tz=UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{account}:rule/{rule_name}"],
        "detail": {},
    }


def iso8601(epoch_seconds: float) -> str:
    """ISO-8601 UTC with milliseconds, as GetConnection answers: ``2024-12-04T15:02:11.402Z``."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def clf_time(epoch_seconds: float) -> str:
    """Common Log Format time, as in ``requestTime``: ``04/Dec/2024:15:02:11 +0000``."""
    return _clf_second(int(epoch_seconds))


@lru_cache(maxsize=4)
def _clf_second(second: int) -> str:
    return datetime.fromtimestamp(second, tz=UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def _headers_fields(headers: Mapping[str, str | list[str]]) -> dict[str, Any]:
    multi = {name: _as_list(value) for name, value in headers.items()}
    return {
        "headers": {name: values[-1] for name, values in multi.items()},
        "multiValueHeaders": multi,
    }


def _query_fields(query: Mapping[str, str | list[str]]) -> dict[str, Any]:
    multi = {name: _as_list(value) for name, value in query.items()}
    return {
        "queryStringParameters": {name: values[-1] for name, values in multi.items()},
        "multiValueQueryStringParameters": multi,
    }


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def sqs_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One record of an SQS event, from a ReceiveMessage message (all attributes asked for)."""
    attributes = dict(message.get("Attributes") or {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": attributes,
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": value.get("StringListValues", []),
                "binaryListValues": value.get("BinaryListValues", []),
                "dataType": value.get("DataType"),
            }
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
