"""The three WebSocket routes, as Chalice hands them to ``app.py``.

``$connect`` authenticates and registers, ``$disconnect`` forgets, and
``$default`` answers every client frame with exactly one ``ack``, result or
``error`` frame: bad input never raises out of a handler and never goes
unanswered, because an unanswered client cannot tell a lost frame from a slow one.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from chalice.app import Response, WebsocketEvent

from chalicelib import invocation, metrics, protocol
from chalicelib.actions import PARSERS, ActionContext, perform
from chalicelib.delivery import Outcome
from chalicelib.fanout import forget_gone
from chalicelib.identity import AuthenticationError
from chalicelib.invocation import Deadline
from chalicelib.logs import EventLog, logged_event
from chalicelib.management import execute_api_url
from chalicelib.protocol import ProtocolError, parse_request
from chalicelib.registry import ConnectionExists, NotConnected
from chalicelib.runtime import Services

logger = logging.getLogger("switchboard.handlers")

_NOT_REGISTERED = "this connection is not registered; reconnect with a valid token"


def on_connect(event: WebsocketEvent, services: Services) -> Response:
    with invocation.bound(event.context), logged_event("$connect", event.connection_id) as log:
        try:
            identity = services.verifier.verify(_query_parameter(event, "token"))
        except AuthenticationError as error:
            log.set(outcome="refused", status=error.status, reason=error.reason)
            return _refused(error.status, error.code)
        log.set(userId=identity.user_id)
        try:
            services.registry.add_connection(
                event.connection_id, identity.user_id, identity.roles,
                management_endpoint(event), identity.rooms,
            )
        except ConnectionExists:
            return _repeated_connect(event, services, identity.user_id, log)
        except Exception as error:
            return _registration_failed(event, services, error, log)
        return _accepted()


def on_disconnect(event: WebsocketEvent, services: Services) -> Response:
    """Forget the connection (announcing the rooms its user left); failures are logged.

    API Gateway ignores the answer and may not even call ``$disconnect``: the
    registry's TTL and the 410 cleanup in every fan-out are the safety net.
    """
    metrics.record(metrics.DISCONNECTS)
    with invocation.bound(event.context) as deadline, logged_event(
        "$disconnect", event.connection_id
    ) as log:
        if not forget_gone(services, [event.connection_id], deadline):
            log.set(outcome="cleanup_failed")
        return _status(200)


def on_message(event: WebsocketEvent, services: Services) -> None:
    connection_id = event.connection_id
    with invocation.bound(event.context) as deadline, logged_event(
        "$default", connection_id
    ) as log:
        services.delivery.ensure_endpoint(lambda: management_endpoint(event))
        answer = _answer(event, services, deadline, log)
        metrics.record(
            metrics.FRAMES,
            Action=log.fields.get("action", metrics.UNPARSED_ACTION),
            Outcome=log.fields.get("code", metrics.OK),
        )
        _reply(services, connection_id, answer, deadline)


def _reply(services: Services, connection_id: str, frame: str, deadline: Deadline) -> None:
    """Answer the caller, within the reserve kept for it; a caller already gone is forgotten."""
    if services.delivery.send(connection_id, frame, deadline.with_reserve()) is Outcome.GONE:
        forget_gone(services, [connection_id], deadline)


def management_endpoint(event: WebsocketEvent) -> str:
    """The management URL this connection is reachable through, as Chalice derives it.

    Chalice builds it from ``apiId`` and the region, not from ``domainName``:
    behind a custom domain ``domainName`` is the custom host, whose base path
    need not be the stage, while the execute-api URL always works.
    """
    api_id = event.to_dict()["requestContext"]["apiId"]
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        return f"https://{event.domain_name}/{event.stage}"
    return execute_api_url(api_id, event.stage, region)


def _answer(
    event: WebsocketEvent, services: Services, deadline: Deadline, log: EventLog
) -> str:
    request_id = None
    try:
        request = parse_request(event.body, services.settings.max_text_bytes, PARSERS)
        request_id = request.request_id
        log.set(action=request.action)
        connection = services.registry.get_connection(event.connection_id)
        if connection is None:
            raise ProtocolError(protocol.FORBIDDEN, _NOT_REGISTERED)
        ctx = ActionContext(services, connection, request, deadline)
        try:
            return perform(ctx)
        finally:
            log.set(
                delivered=ctx.report.delivered,
                gone=len(ctx.report.gone),
                failed=len(ctx.report.failed),
            )
    except ProtocolError as error:
        log.set(outcome="error", code=error.code)
        return protocol.error(error.code, error.message, error.request_id or request_id)
    except NotConnected:
        log.set(outcome="error", code=protocol.FORBIDDEN)
        return protocol.error(protocol.FORBIDDEN, _NOT_REGISTERED, request_id)
    except Exception:
        logger.exception("action failed on %s", event.connection_id)
        log.set(outcome="error", code=protocol.INTERNAL)
        return protocol.error(
            protocol.INTERNAL, "the server could not handle this frame; try again", request_id
        )


def _repeated_connect(
    event: WebsocketEvent, services: Services, user_id: str, log: EventLog
) -> Response:
    """A ``$connect`` retried for the same user succeeds; a clash is refused."""
    existing = services.registry.get_connection(event.connection_id)
    if existing is not None and existing.user_id == user_id:
        log.set(outcome="repeated")
        return _accepted()
    log.set(outcome="refused", status=409, reason="connection id already registered")
    return _refused(409, "id_clash")


def _registration_failed(
    event: WebsocketEvent, services: Services, error: Exception, log: EventLog
) -> Response:
    """Refuse the handshake with 500 and leave no record behind.

    botocore has already retried throttling; what reaches here is final. A
    write may have landed even so (its answer lost, then retries refused), and
    a refused handshake never becomes a socket, so any record of this id is
    garbage: it is deleted, best-effort (TTL is the backstop). Only the error's
    class is logged — a botocore message can quote the request.
    """
    log.set(outcome="error", status=500, error=type(error).__name__)
    logger.error(
        "registering %s failed (%s); handshake refused",
        event.connection_id, type(error).__name__,
    )
    try:
        services.registry.remove_connection(event.connection_id)
    except Exception as cleanup:
        logger.error(
            "cleanup of %s failed (%s); TTL will reclaim it",
            event.connection_id, type(cleanup).__name__,
        )
    return _refused(500, "registration_failed")


def _query_parameter(event: WebsocketEvent, name: str) -> str | None:
    query: dict[str, Any] = event.to_dict().get("queryStringParameters") or {}
    value = query.get(name)
    return value if isinstance(value, str) else None


def _accepted() -> Response:
    metrics.record(metrics.CONNECTS_ACCEPTED)
    return _status(200)


def _refused(status_code: int, reason: str) -> Response:
    """Refuse the handshake; ``reason`` is one of the metric's fixed vocabulary."""
    metrics.record(metrics.CONNECTS_REFUSED, Reason=reason)
    return _status(status_code)


def _status(status_code: int) -> Response:
    return Response(body="", status_code=status_code)
