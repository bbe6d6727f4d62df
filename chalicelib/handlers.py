"""The three WebSocket routes, as Chalice hands them to ``app.py``.

``$connect`` authenticates and registers, ``$disconnect`` forgets, and
``$default`` answers every client frame with exactly one ``ack``, result or
``error`` frame: bad input never raises out of a handler and never goes
unanswered, because an unanswered client cannot tell a lost frame from a slow one.
The one exception is a notice (an action of that kind, sent without an ``id``):
it is answered only when refused, and a notice over its rate limit only the
first time in a window.
A frame on a connection whose token has expired is answered ``token_expired``,
and the connection is closed.
"""

from __future__ import annotations

import logging
from typing import Any

from chalice.app import Response, WebsocketEvent

from chalicelib import endpoint, metrics, protocol
from chalicelib.action_context import ActionContext, ActionDeps
from chalicelib.actions import PARSERS, perform
from chalicelib.cleanup import Cleanup
from chalicelib.closing import Closer
from chalicelib.delivery import Delivery, Outcome
from chalicelib.entry import Call
from chalicelib.identity import AuthenticationError, TokenVerifier
from chalicelib.lifetime import EXPIRED_MESSAGE
from chalicelib.logs import EventLog
from chalicelib.outbox import Outbox
from chalicelib.protocol import ProtocolError, parse_request
from chalicelib.registry import ConnectionExists, NotConnected, Registry
from chalicelib.revocations import Revocations

logger = logging.getLogger("switchboard.handlers")

_NOT_REGISTERED = "this connection is not registered; reconnect with a valid token"


def on_connect(
    event: WebsocketEvent,
    call: Call,
    verifier: TokenVerifier,
    registry: Registry,
    configured_endpoint: str | None,
    revocations: Revocations | None = None,
) -> Response:
    """Authenticate, check revocation, then register the connection with the endpoint it is
    reachable through and its token's expiry."""
    log = call.log
    try:
        identity = verifier.verify(_query_parameter(event, "token"))
    except AuthenticationError as error:
        log.set(outcome="refused", status=error.status, reason=error.reason)
        return _refused(error.status, error.code)
    log.set(userId=identity.user_id)
    try:
        if revocations is not None and revocations.refuses(identity.user_id, identity.issued_at):
            log.set(outcome="refused", status=403, reason="token revoked")
            return _refused(403, "revoked")
        registry.add_connection(
            event.connection_id, identity.user_id, identity.roles,
            endpoint.of_event(configured_endpoint, event), identity.rooms,
            expires_at=identity.expires_at, issued_at=identity.issued_at,
        )
    except ConnectionExists:
        return _repeated_connect(event, registry, identity.user_id, log)
    except Exception as error:
        return _registration_failed(event, registry, error, log)
    return _accepted()


def on_disconnect(event: WebsocketEvent, call: Call, cleanup: Cleanup) -> Response:
    """Forget the connection (announcing the rooms its user left); failures are logged.

    API Gateway ignores the answer and may not even call ``$disconnect``: the
    registry's TTL and the 410 cleanup in every fan-out are the safety net.
    """
    metrics.record(metrics.DISCONNECTS)
    if not cleanup.forget([event.connection_id], call.deadline):
        call.log.set(outcome="cleanup_failed")
    return _status(200)


def on_message(
    event: WebsocketEvent, call: Call, deps: ActionDeps, delivery: Delivery,
    closer: Closer | None = None,
) -> None:
    """Answer the frame with exactly one frame, whatever it holds (a notice: when refused);
    close an expired connection."""
    delivery.ensure_endpoint(lambda: endpoint.of_event(deps.settings.management_endpoint, event))
    outbox = deps.outbox(call.deadline)
    answer, request_id = _answer(event, deps, outbox, call.log)
    metrics.record(
        metrics.FRAMES,
        Action=call.log.fields.get("action", metrics.UNPARSED_ACTION),
        Outcome=call.log.fields.get("code", metrics.OK),
    )
    # The answer uses the reserve kept back for answering: a caller whose work ran
    # out of time still hears back. A caller already gone is forgotten.
    answering = call.deadline.with_reserve()
    if answer is not None and (
        outbox.send(event.connection_id, answer, answering) is Outcome.TOO_LARGE
    ):
        # Sizes are judged before sending; should API Gateway still refuse one
        # (413), the caller hears that instead of nothing.
        call.log.set(outcome="error", code=protocol.TOO_LARGE)
        refused = protocol.error(
            protocol.TOO_LARGE, "the answer was too large for one frame", request_id
        )
        outbox.send(event.connection_id, refused, answering)
    if closer is not None and call.log.fields.get("code") == protocol.TOKEN_EXPIRED:
        closer.end([event.connection_id], None, answering)


def _answer(
    event: WebsocketEvent, deps: ActionDeps, outbox: Outbox, log: EventLog
) -> tuple[str | None, str | None]:
    """The frame answering the caller (never over a frame's size; None: a notice wants
    none), and the request's id."""
    request_id = None
    try:
        request = parse_request(event.body, deps.settings.max_text_bytes, PARSERS)
        request_id = request.request_id
        log.set(action=request.action)
        connection = deps.registry.get_connection(event.connection_id)
        if connection is None:
            raise ProtocolError(protocol.FORBIDDEN, _NOT_REGISTERED)
        if deps.lifetime is not None and deps.lifetime.expired(connection):
            raise ProtocolError(protocol.TOKEN_EXPIRED, EXPIRED_MESSAGE)
        ctx = ActionContext(deps, connection, request, outbox)
        try:
            answer = perform(ctx)
        finally:
            log.set(
                delivered=ctx.report.delivered,
                gone=len(ctx.report.gone),
                failed=len(ctx.report.failed),
            )
        # An answer over a frame would be refused (413): the caller hears why instead.
        if answer is None:
            return None, request_id
        return protocol.fitting(answer, "the answer"), request_id
    except ProtocolError as error:
        log.set(outcome="error" if error.answered else "dropped", code=error.code)
        request_id = error.request_id or request_id
        if not error.answered:
            return None, request_id
        return protocol.error(
            error.code, error.message, request_id, **error.details
        ), request_id
    except NotConnected:
        log.set(outcome="error", code=protocol.FORBIDDEN)
        return protocol.error(protocol.FORBIDDEN, _NOT_REGISTERED, request_id), request_id
    except Exception:
        logger.exception("action failed on %s", event.connection_id)
        log.set(outcome="error", code=protocol.INTERNAL)
        return protocol.error(
            protocol.INTERNAL, "the server could not handle this frame; try again", request_id
        ), request_id


def _repeated_connect(
    event: WebsocketEvent, registry: Registry, user_id: str, log: EventLog
) -> Response:
    """A ``$connect`` retried for the same user succeeds; a clash is refused."""
    existing = registry.get_connection(event.connection_id)
    if existing is not None and existing.user_id == user_id:
        log.set(outcome="repeated")
        return _accepted()
    log.set(outcome="refused", status=409, reason="connection id already registered")
    return _refused(409, "id_clash")


def _registration_failed(
    event: WebsocketEvent, registry: Registry, error: Exception, log: EventLog
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
        registry.remove_connection(event.connection_id)
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
