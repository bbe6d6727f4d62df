"""The container's long-lived objects, built on the first event and then reused.

Lambda reuses a warm container for many invocations, so settings, clients and
the delivery pool are built once. Nothing is built at import: the Lambda init
phase (and ``import app``) creates no AWS client and does no network I/O.

:class:`Services` is the composition root: ``app.py`` picks out of it the few
objects each handler takes (and tests build it on their engines); no other
module receives it. What only some functions use (the server API, the expiry
schedule, publishing) is imported by the property that builds it, so the
WebSocket functions' first event does not pay for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from chalicelib import aws, endpoint, keys
from chalicelib.action_context import ActionDeps
from chalicelib.cleanup import Cleanup
from chalicelib.closing import Closer
from chalicelib.contexts import Backends
from chalicelib.delivery import Delivery
from chalicelib.fanout_queue import FanoutQueue
from chalicelib.identity import TokenVerifier
from chalicelib.invocation import Deadline
from chalicelib.keys import SigningKeys
from chalicelib.lifetime import TokenLifetime
from chalicelib.outbox import Outbox
from chalicelib.pacing import Pacer
from chalicelib.presence import Announcer
from chalicelib.ratelimit import RateCounters, RateLimiter
from chalicelib.registry import Registry
from chalicelib.revocations import Revocations
from chalicelib.settings import Settings, SettingsError
from chalicelib.streams import Streams
from chalicelib.worker import Worker

if TYPE_CHECKING:
    from chalicelib.expiry import Expiry
    from chalicelib.publish import Publisher
    from chalicelib.server_api import ServerDeps


@dataclass(frozen=True)
class Services:
    settings: Settings
    registry: Registry
    delivery: Delivery
    verifier: TokenVerifier
    fanout_queue: FanoutQueue | None = None
    """Where large fan-outs go; ``None`` when the stage names no queue."""
    streams: Streams | None = None
    """Rooms' and users' message streams; ``None`` when the stage keeps no history."""
    rate_counters: RateCounters | None = None
    """Where declared rate limits are counted, shared by every container."""
    dynamodb: Any = None
    """The table's client, for the items beside the registry's and the streams' (revocations,
    idempotency keys); ``None`` in services put together by hand, which then have neither."""
    clock: Callable[[], float] = time.time
    """Epoch seconds, for tokens' lifetimes, revocations, idempotency and rate-limit windows
    (tests move it)."""

    # -- what the services above make, wired once -------------------------------

    @cached_property
    def cleanup(self) -> Cleanup:
        return Cleanup(self.registry, self.announcer.departures)

    @cached_property
    def announcer(self) -> Announcer:
        return Announcer(
            self.registry, self.outbox,
            self.settings.presence_events_max_members, self.settings.occupancy_interval_seconds,
        )

    def outbox(self, deadline: Deadline) -> Outbox:
        """A request's outbox: inline posts, the queue for large audiences."""
        return Outbox(
            self.delivery, self.cleanup, deadline,
            self.fanout_queue, self.settings.fanout_queue_threshold,
        )

    @cached_property
    def actions(self) -> ActionDeps:
        return ActionDeps(
            self.settings, self.registry, self.streams, self.announcer, self.cleanup, self.outbox,
            self.limiter, self.lifetime,
        )

    @cached_property
    def limiter(self) -> RateLimiter:
        """Declared limits on the table's counters; the stage's default in memory."""
        return RateLimiter(self.rate_counters, self.settings.default_action_rate, self.clock)

    @cached_property
    def backends(self) -> Backends:
        """How the REST routes of ``chalicelib/product`` reach connections."""
        return Backends(
            self.verifier, self.revocations, self.registry, self.streams, self.delivery,
            self.outbox, self.settings.management_endpoint, self.settings.max_text_bytes,
        )

    @cached_property
    def worker(self) -> Worker:
        return Worker(self.delivery, self.cleanup, self.fanout_queue, self.endpoint_of)

    @cached_property
    def revocations(self) -> Revocations | None:
        if self.dynamodb is None:
            return None
        return Revocations(self.dynamodb, self.settings.connections_table, self.clock)

    @cached_property
    def lifetime(self) -> TokenLifetime | None:
        if self.revocations is None:
            return None
        return TokenLifetime(
            self.verifier, self.revocations, self.registry,
            self.settings.token_expiry_grace_seconds, self.clock,
        )

    @cached_property
    def closer(self) -> Closer:
        return Closer(self.delivery, self.cleanup, self.endpoint_of)

    @cached_property
    def publisher(self) -> Publisher:
        from chalicelib.idempotency import Idempotency
        from chalicelib.publish import Publisher

        idempotency = Idempotency(
            self.dynamodb, self.settings.connections_table,
            self.settings.idempotency_window_seconds, self.clock,
        )
        return Publisher(self.registry, self.streams, idempotency, self.delivery,
                         self.endpoint_of)

    @cached_property
    def server_api(self) -> ServerDeps:
        from chalicelib.moderation import Moderation
        from chalicelib.server_api import ServerDeps

        assert self.revocations is not None, "the server API needs the table's client"
        moderation = Moderation(
            self.settings, self.registry, self.streams, self.announcer, self.closer,
            self.revocations, self.delivery,
        )
        return ServerDeps(
            self.settings, self.registry, self.streams, self.publisher, moderation,
            self.cleanup, self.outbox, self.clock,
        )

    @cached_property
    def expiry(self) -> Expiry:
        from chalicelib.expiry import Expiry

        assert self.lifetime is not None, "expiry needs the table's client"
        return Expiry(self.registry, self.lifetime, self.closer)

    def endpoint_of(self, targets: Sequence[str]) -> Callable[[], str | None]:
        """The management endpoint's resolver outside WebSocket handlers (see :mod:`endpoint`)."""
        return endpoint.of_targets(self.settings.management_endpoint, self.registry, targets)


_services: Services | None = None
_lock = threading.Lock()


def services(websocket_api: Any) -> Services:
    """The container's services, built from the environment on first use."""
    global _services
    with _lock:
        if _services is None:
            _services = build_services(Settings.from_environ(), websocket_api)
        return _services


def use(built: Services) -> None:
    """Install services built elsewhere (tests, the local gateway)."""
    global _services
    with _lock:
        _services = built


def reset() -> None:
    """Forget the built services, so the next event re-reads the environment.

    For tests and the local gateway, which change the environment between apps.
    """
    global _services
    with _lock:
        _services = None


def build_services(
    settings: Settings,
    websocket_api: Any,
    dynamodb: Any | None = None,
    sqs: Any | None = None,
) -> Services:
    """Wire the services; ``dynamodb`` and ``sqs`` replace the default clients (tests)."""
    data = dynamodb if dynamodb is not None else aws.dynamodb_client()
    return Services(
        settings=settings,
        registry=Registry(data, settings.connections_table, settings.connection_ttl_seconds),
        delivery=Delivery(websocket_api, pacer=Pacer(settings.invocation_rps)),
        verifier=TokenVerifier(
            issuer=settings.token_issuer,
            audience=settings.token_audience,
            source=_signing_keys(settings),
        ),
        fanout_queue=_fanout_queue(settings, sqs),
        streams=_streams(settings, data),
        rate_counters=RateCounters(data, settings.connections_table),
        dynamodb=data,
    )


def _streams(settings: Settings, dynamodb: Any) -> Streams | None:
    if settings.history_max_messages == 0:
        return None
    return Streams(
        dynamodb,
        settings.connections_table,
        settings.history_ttl_seconds,
        settings.history_max_messages,
    )


def _fanout_queue(settings: Settings, sqs: Any | None) -> FanoutQueue | None:
    """The stage's fan-out queue; its client is built on the first hand-off only."""
    if settings.fanout_queue_name is None:
        return None
    return FanoutQueue(
        (lambda: sqs) if sqs is not None else aws.sqs_client,
        settings.fanout_queue_name,
        settings.fanout_batch_targets,
        settings.fanout_retry_delay_seconds,
    )


def _signing_keys(settings: Settings) -> SigningKeys:
    """The stage's signing keys, checked to hold at least one key.

    From SSM they are read again every ``TOKEN_SECRET_TTL_SECONDS`` (and when a
    token's signature matches none of them), so a rotation reaches warm containers.
    """
    if settings.token_secret is not None:
        load, source = (lambda: str(settings.token_secret)), "TOKEN_SECRET"
        ttl = float("inf")
    else:
        name = settings.token_secret_parameter
        assert name is not None
        load = keys.parameter(name)
        source = f"the parameter TOKEN_SECRET_PARAMETER names ({name})"
        ttl = float(settings.token_secret_ttl_seconds)
    try:
        return SigningKeys(load, ttl)
    except ValueError:
        raise SettingsError(f"{source} holds no signing key") from None
