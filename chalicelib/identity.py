"""Who is connecting: verification of the JWT presented on ``$connect``.

The token arrives as ``?token=<JWT>`` because browsers cannot set headers on a
WebSocket upgrade. Verification is PyJWT's; this module only decides which
claims are required and how a failure maps to the HTTP status that refuses
the handshake, and how signing keys are written: one key, or several
separated by commas for a rotation — the first signs, all verify. A ``rooms``
claim is validated here, once, so that a malformed one refuses the handshake
before anything is written (its meaning is :mod:`chalicelib.permissions`').
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import jwt

from chalicelib.permissions import PermissionsError, RoomGrants, parse_claim
from chalicelib.protocol import ProtocolError, check_user_id, valid_unicode

ALGORITHM = "HS256"
MAX_TOKEN_LENGTH = 4096


class AuthenticationError(Exception):
    """The handshake must be refused with ``status``; ``reason`` is for logs.

    ``code`` names the kind of refusal from a fixed vocabulary (the metrics'
    ``Reason`` dimension): ``missing_token``, ``token_too_long``, ``expired``,
    ``bad_signature``, ``invalid_token`` or ``invalid_claims``.
    """

    def __init__(self, status: int, reason: str, code: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class Identity:
    user_id: str
    roles: tuple[str, ...]
    rooms: RoomGrants | None = None
    """The token's ``rooms`` claim; ``None`` when it has none (the stage's defaults apply)."""
    expires_at: int | None = None
    """The token's ``exp`` (epoch seconds): the connection must not outlive it."""
    issued_at: int | None = None
    """The token's ``iat`` (epoch seconds), when it has one: what a revocation compares."""


def signing_keys(value: str) -> tuple[str, ...]:
    """The keys a stored value holds, signing key first; refuses a value with none."""
    keys = tuple(key.strip() for key in value.split(",") if key.strip())
    if not keys:
        raise ValueError("the signing key value holds no key")
    return keys


class KeySource(Protocol):
    """Keys that can change while a container lives (:class:`chalicelib.keys.SigningKeys`)."""

    def current(self) -> tuple[str, ...]: ...

    def refresh(self) -> bool:
        """Read the keys again (rate-limited); True when they changed."""
        ...


@dataclass(frozen=True)
class TokenVerifier:
    secret: str = ""
    """One key, or several comma-separated (see :func:`signing_keys`); unused with ``source``."""
    issuer: str | None = None
    audience: str | None = None
    source: KeySource | None = None
    """Where the keys come from when they can change (a rotation)."""

    @cached_property
    def _fixed(self) -> tuple[str, ...]:
        return signing_keys(self.secret)

    @property
    def keys(self) -> tuple[str, ...]:
        return self.source.current() if self.source is not None else self._fixed

    def verify(self, token: str | None) -> Identity:
        if not token:
            raise AuthenticationError(401, "no token", "missing_token")
        if len(token) > MAX_TOKEN_LENGTH:
            raise AuthenticationError(403, "token too long", "token_too_long")
        try:
            claims = self._decode(token, self.keys)
        except AuthenticationError as error:
            # A signature none of the keys knows may be a key just added: read them again.
            if error.code != "bad_signature" or self.source is None or not self.source.refresh():
                raise
            claims = self._decode(token, self.keys)
        return Identity(
            user_id=_user_id(claims), roles=_roles(claims), rooms=_rooms(claims),
            expires_at=_seconds(claims, "exp"), issued_at=_seconds(claims, "iat"),
        )

    def _decode(self, token: str, keys: tuple[str, ...]) -> dict[str, Any]:
        required = ["exp", "sub"]
        if self.issuer is not None:
            required.append("iss")
        if self.audience is not None:
            required.append("aud")
        failure: jwt.PyJWTError | None = None
        for key in keys:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key,
                    algorithms=[ALGORITHM],
                    issuer=self.issuer,
                    audience=self.audience,
                    options={"require": required},
                )
                _check_dates(claims)
                return claims
            except jwt.InvalidSignatureError as error:
                failure = error  # perhaps signed with another of the keys
            except jwt.ExpiredSignatureError as error:
                raise AuthenticationError(403, f"invalid token: {error}", "expired") from None
            except jwt.PyJWTError as error:
                raise AuthenticationError(
                    403, f"invalid token: {error}", "invalid_token"
                ) from None
        raise AuthenticationError(403, f"invalid token: {failure}", "bad_signature")


def issue_token(
    secret: str,
    user_id: str,
    roles: tuple[str, ...] = (),
    lifetime_seconds: int = 3600,
    issuer: str | None = None,
    audience: str | None = None,
    now: float | None = None,
    rooms: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """Sign a token the verifier accepts, with the first of ``secret``'s keys.

    For local development and tests (the local gateway's ``/_local/token``).
    """
    issued_at = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": user_id,
        "iat": issued_at,
        "exp": issued_at + lifetime_seconds,
    }
    if roles:
        claims["roles"] = list(roles)
    if rooms is not None:
        claims["rooms"] = {pattern: list(granted) for pattern, granted in rooms.items()}
    if issuer is not None:
        claims["iss"] = issuer
    if audience is not None:
        claims["aud"] = audience
    return jwt.encode(claims, signing_keys(secret)[0], algorithm=ALGORITHM)


def _check_dates(claims: dict[str, Any]) -> None:
    """``exp``, ``nbf`` and ``iat`` are JSON numbers (RFC 7519's NumericDate): PyJWT also
    takes a numeric string, which no issuer means."""
    for name in ("exp", "nbf", "iat"):
        value = claims.get(name)
        if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise AuthenticationError(
                403, f"invalid token: {name} must be a number", "invalid_claims"
            )


def _user_id(claims: dict[str, Any]) -> str:
    try:
        return check_user_id(claims.get("sub"), "sub")
    except ProtocolError:
        raise AuthenticationError(
            403, "sub must be a user id of 1-128 characters of valid Unicode", "invalid_claims"
        ) from None


def _roles(claims: dict[str, Any]) -> tuple[str, ...]:
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(
        isinstance(r, str) and _valid(r) for r in roles
    ):
        raise AuthenticationError(
            403, "roles must be a list of strings of valid Unicode", "invalid_claims"
        )
    return tuple(roles)


def _seconds(claims: dict[str, Any], name: str) -> int | None:
    """A time claim PyJWT has checked to be a number, as whole epoch seconds."""
    value = claims.get(name)
    return None if value is None else int(value)


def _rooms(claims: dict[str, Any]) -> RoomGrants | None:
    if "rooms" not in claims:
        return None
    try:
        return parse_claim(claims["rooms"])
    except PermissionsError as error:
        raise AuthenticationError(
            403, f"invalid rooms claim: {error}", "invalid_claims"
        ) from None


def _valid(value: str) -> bool:
    try:
        valid_unicode(value, "roles")
    except ProtocolError:
        return False
    return True
