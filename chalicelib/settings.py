"""Stage settings, parsed once per container from the environment Chalice sets.

Every setting is validated up front so that a misconfigured stage fails on its
first event with an error that names the offending variable, instead of
misbehaving later in the middle of a fan-out.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from chalicelib.permissions import PermissionsError, parse_permissions

if TYPE_CHECKING:
    from chalicelib.ratelimit import Rate

# Above this many targets in one fan-out, delivery is handed to the SQS queue so
# that no invocation runs into API Gateway's 29 s integration timeout.
DEFAULT_FANOUT_QUEUE_THRESHOLD = 1000
# Connection ids per queue message: ~20 bytes each, so 500 of them plus a
# 128 KiB frame stay far below SQS's 256 KiB message limit.
DEFAULT_FANOUT_BATCH_TARGETS = 500
DEFAULT_FANOUT_RETRY_DELAY_SECONDS = 2
# Names the queue ``@app.on_sqs_message`` subscribes to when the stage sets none.
DEFAULT_FANOUT_QUEUE_NAME = "switchboard-fanout"
# History: a day of messages, at most a thousand per stream; replays after a
# reconnect are posted one by one inside the invocation, so they are bounded.
DEFAULT_HISTORY_TTL_SECONDS = 86400
DEFAULT_HISTORY_MAX_MESSAGES = 1000
DEFAULT_RECOVERY_MAX_MESSAGES = 100
# The account's API Gateway throttle is 10,000 requests/s shared by every API in
# the region; by default a stage takes half of it for PostToConnection.
DEFAULT_MANAGEMENT_RPS = 5000
# The most fanout_worker invocations that run at once: the maximum concurrency of
# its SQS subscription (app.py passes fanout_worker_concurrency() to
# on_sqs_message). Not reserved concurrency, which new accounts cannot grant
# and which throttles an SQS event source into redrive. AWS accepts 2 to 1000.
DEFAULT_FANOUT_WORKER_CONCURRENCY = 5
FANOUT_WORKER_CONCURRENCY_RANGE = (2, 1000)
MANAGEMENT_TRANSPORTS = ("lean", "botocore")
# Every action that declares no limit of its own: bursts pass, a flood does not.
DEFAULT_ACTION_RATE = "600/min"
NO_RATE = "off"
# A publish retried with the same idempotency key within this window is not repeated.
DEFAULT_IDEMPOTENCY_WINDOW_SECONDS = 600
# Frames are accepted this long after the token's exp (clock skew); at most a minute.
DEFAULT_TOKEN_EXPIRY_GRACE_SECONDS = 0
MAX_TOKEN_EXPIRY_GRACE_SECONDS = 60
# Presence: per-user join/leave events up to this many users in a room (Pusher caps
# presence channels at 100); above it, occupancy frames at most every interval.
DEFAULT_PRESENCE_EVENTS_MAX_MEMBERS = 100
DEFAULT_OCCUPANCY_INTERVAL_SECONDS = 2
# Signing keys from SSM are re-read after this long, so a rotation reaches warm containers.
DEFAULT_TOKEN_SECRET_TTL_SECONDS = 300


class SettingsError(ValueError):
    """A stage setting is missing or invalid; the message names it."""


@dataclass(frozen=True)
class Settings:
    connections_table: str
    connection_ttl_seconds: int
    max_text_bytes: int
    token_secret: str | None
    token_secret_parameter: str | None
    token_issuer: str | None
    token_audience: str | None
    max_rooms_per_connection: int
    fanout_queue_name: str | None = None
    fanout_queue_threshold: int = DEFAULT_FANOUT_QUEUE_THRESHOLD
    fanout_batch_targets: int = DEFAULT_FANOUT_BATCH_TARGETS
    fanout_retry_delay_seconds: int = DEFAULT_FANOUT_RETRY_DELAY_SECONDS
    management_endpoint: str | None = None
    default_room_permissions: frozenset[str] = frozenset()
    """Room permissions of a token without a ``rooms`` claim, in every room."""
    history_ttl_seconds: int = DEFAULT_HISTORY_TTL_SECONDS
    history_max_messages: int = DEFAULT_HISTORY_MAX_MESSAGES
    """Messages kept per stream; 0 turns history (and recovery) off."""
    recovery_max_messages: int = DEFAULT_RECOVERY_MAX_MESSAGES
    management_rps: int = DEFAULT_MANAGEMENT_RPS
    fanout_worker_concurrency: int = DEFAULT_FANOUT_WORKER_CONCURRENCY
    management_transport: str = MANAGEMENT_TRANSPORTS[0]
    default_action_rate: Rate | None = field(default_factory=lambda: _rate({}, ""))
    """The limit of every action that declares none (``None``: unlimited)."""
    idempotency_window_seconds: int = DEFAULT_IDEMPOTENCY_WINDOW_SECONDS
    token_expiry_grace_seconds: int = DEFAULT_TOKEN_EXPIRY_GRACE_SECONDS
    """Frames are accepted this long after the token's ``exp``; then the connection is closed."""
    presence_events_max_members: int = DEFAULT_PRESENCE_EVENTS_MAX_MEMBERS
    """Users a room may have for per-user presence events; above, occupancy frames."""
    occupancy_interval_seconds: int = DEFAULT_OCCUPANCY_INTERVAL_SECONDS
    token_secret_ttl_seconds: int = DEFAULT_TOKEN_SECRET_TTL_SECONDS
    """How long keys read from TOKEN_SECRET_PARAMETER are used before being read again."""

    @property
    def invocation_rps(self) -> float:
        """Posts per second one invocation may make: the stage's budget over the workers."""
        return self.management_rps / self.fanout_worker_concurrency

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        secret = _optional(env, "TOKEN_SECRET")
        parameter = _optional(env, "TOKEN_SECRET_PARAMETER")
        if (secret is None) == (parameter is None):
            raise SettingsError(
                "Set exactly one of TOKEN_SECRET (development) or "
                "TOKEN_SECRET_PARAMETER (an SSM SecureString name)"
            )
        return cls(
            connections_table=_required(env, "CONNECTIONS_TABLE"),
            connection_ttl_seconds=_positive_int(env, "CONNECTION_TTL_SECONDS", 7500),
            max_text_bytes=_positive_int(env, "MAX_TEXT_BYTES", 32768),
            token_secret=secret,
            token_secret_parameter=parameter,
            token_issuer=_optional(env, "TOKEN_ISSUER"),
            token_audience=_optional(env, "TOKEN_AUDIENCE"),
            max_rooms_per_connection=_positive_int(env, "MAX_ROOMS_PER_CONNECTION", 100),
            fanout_queue_name=_optional(env, "FANOUT_QUEUE_NAME"),
            fanout_queue_threshold=_positive_int(
                env, "FANOUT_QUEUE_THRESHOLD", DEFAULT_FANOUT_QUEUE_THRESHOLD
            ),
            fanout_batch_targets=_bounded_int(
                env, "FANOUT_BATCH_TARGETS", DEFAULT_FANOUT_BATCH_TARGETS, 1, 5000
            ),
            fanout_retry_delay_seconds=_bounded_int(
                env, "FANOUT_RETRY_DELAY_SECONDS", DEFAULT_FANOUT_RETRY_DELAY_SECONDS, 0, 900
            ),
            management_endpoint=_endpoint(env, "APIGW_MANAGEMENT_ENDPOINT"),
            default_room_permissions=_permissions(env, "DEFAULT_ROOM_PERMISSIONS"),
            history_ttl_seconds=_positive_int(
                env, "HISTORY_TTL_SECONDS", DEFAULT_HISTORY_TTL_SECONDS
            ),
            history_max_messages=_bounded_int(
                env, "HISTORY_MAX_MESSAGES", DEFAULT_HISTORY_MAX_MESSAGES, 0, 1_000_000
            ),
            recovery_max_messages=_bounded_int(
                env, "RECOVERY_MAX_MESSAGES", DEFAULT_RECOVERY_MAX_MESSAGES, 1, 1000
            ),
            management_rps=_bounded_int(
                env, "MANAGEMENT_RPS", DEFAULT_MANAGEMENT_RPS, 1, 1_000_000
            ),
            fanout_worker_concurrency=fanout_worker_concurrency(env),
            management_transport=management_transport(env),
            default_action_rate=_rate(env, "DEFAULT_ACTION_RATE"),
            idempotency_window_seconds=_bounded_int(
                env, "IDEMPOTENCY_WINDOW_SECONDS", DEFAULT_IDEMPOTENCY_WINDOW_SECONDS, 1, 86400
            ),
            token_expiry_grace_seconds=_bounded_int(
                env, "TOKEN_EXPIRY_GRACE_SECONDS", DEFAULT_TOKEN_EXPIRY_GRACE_SECONDS,
                0, MAX_TOKEN_EXPIRY_GRACE_SECONDS,
            ),
            presence_events_max_members=_bounded_int(
                env, "PRESENCE_EVENTS_MAX_MEMBERS", DEFAULT_PRESENCE_EVENTS_MAX_MEMBERS,
                0, 1_000_000,
            ),
            occupancy_interval_seconds=_bounded_int(
                env, "OCCUPANCY_INTERVAL_SECONDS", DEFAULT_OCCUPANCY_INTERVAL_SECONDS, 0, 60
            ),
            token_secret_ttl_seconds=_bounded_int(
                env, "TOKEN_SECRET_TTL_SECONDS", DEFAULT_TOKEN_SECRET_TTL_SECONDS, 1, 86_400
            ),
        )


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _required(env: Mapping[str, str], name: str) -> str:
    value = _optional(env, name)
    if value is None:
        raise SettingsError(f"{name} is required but not set")
    return value


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    return _bounded_int(env, name, default, 1, None)


def _bounded_int(
    env: Mapping[str, str], name: str, default: int, low: int, high: int | None
) -> int:
    raw = _optional(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        expected = "a positive integer" if high is None else f"an integer from {low} to {high}"
        raise SettingsError(f"{name} must be {expected}, got {raw!r}")
    return value


def _permissions(env: Mapping[str, str], name: str) -> frozenset[str]:
    """A comma-separated list of room permissions; unset or empty grants none."""
    raw = _optional(env, name) or ""
    names = [part.strip() for part in raw.split(",") if part.strip()]
    try:
        return parse_permissions(names, name)
    except PermissionsError as error:
        raise SettingsError(str(error)) from None


def _rate(env: Mapping[str, str], name: str) -> Rate | None:
    """A rate limit (``20/s``, ``600/min``); ``off`` for none; unset, the default."""
    from chalicelib.ratelimit import Rate, RateError  # read with the settings, not at import

    raw = _optional(env, name) or DEFAULT_ACTION_RATE
    if raw.lower() == NO_RATE:
        return None
    try:
        return Rate.parse(raw)
    except RateError as error:
        raise SettingsError(f"{name}: {error}") from None


def _endpoint(env: Mapping[str, str], name: str) -> str | None:
    """A management endpoint must be a full https URL (custom domains plus base path)."""
    value = _optional(env, name)
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc or parts.query or parts.fragment:
        raise SettingsError(
            f"{name} must be an https URL such as https://ws.example.com/prod, got {value!r}"
        )
    return value.rstrip("/")


def fanout_queue_name(environ: Mapping[str, str] | None = None) -> str:
    """The queue the worker subscribes to, read when Chalice loads ``app.py``.

    ``chalice deploy`` and ``chalice package`` load the app with the stage's
    environment variables set, so each stage subscribes to its own queue.
    """
    env = os.environ if environ is None else environ
    return _optional(env, "FANOUT_QUEUE_NAME") or DEFAULT_FANOUT_QUEUE_NAME


def fanout_worker_concurrency(environ: Mapping[str, str] | None = None) -> int:
    """``FANOUT_WORKER_CONCURRENCY``: the worker subscription's maximum concurrency.

    Read when Chalice loads ``app.py`` (like :func:`fanout_queue_name`), so each
    stage's subscription gets the stage's value, and by :class:`Settings`,
    whose pacing divides ``MANAGEMENT_RPS`` by it.
    """
    env = os.environ if environ is None else environ
    low, high = FANOUT_WORKER_CONCURRENCY_RANGE
    return _bounded_int(env, "FANOUT_WORKER_CONCURRENCY", DEFAULT_FANOUT_WORKER_CONCURRENCY,
                        low, high)


def management_transport(environ: Mapping[str, str] | None = None) -> str:
    """``MANAGEMENT_TRANSPORT``: ``lean`` (the default) or ``botocore``.

    Read by :class:`chalicelib.management.ManagementSession` when it builds its
    first client, and validated with the rest of the settings.
    """
    env = os.environ if environ is None else environ
    value = (_optional(env, "MANAGEMENT_TRANSPORT") or MANAGEMENT_TRANSPORTS[0]).lower()
    if value not in MANAGEMENT_TRANSPORTS:
        raise SettingsError(
            f"MANAGEMENT_TRANSPORT must be one of {', '.join(MANAGEMENT_TRANSPORTS)}, "
            f"got {value!r}"
        )
    return value
