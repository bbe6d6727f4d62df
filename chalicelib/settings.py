"""Stage settings, parsed once per container from the environment Chalice sets.

Every setting is validated up front so that a misconfigured stage fails on its
first event with an error that names the offending variable, instead of
misbehaving later in the middle of a fan-out.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


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
    raw = _optional(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a positive integer, got {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{name} must be a positive integer, got {raw!r}")
    return value
