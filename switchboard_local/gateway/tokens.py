"""Development tokens, signed with the stage's key: a local-only convenience.

The signing function is the project's own (by default
``chalicelib.identity:issue_token``, called as ``issue(secret, user_id, roles)``,
plus ``rooms=<claim>`` when a ``rooms`` claim is asked for), so a token from the
gateway is exactly what the app verifies. Served at
``GET /_local/token?userId=alice&roles=admin&rooms={"lobby":["join"]}`` (the
claim as URL-encoded JSON, passed on as is: the app judges it) and by
``--print-token``.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from typing import Any

DEFAULT_SIGNER = "chalicelib.identity:issue_token"
DEFAULT_SECRET_VARIABLE = "TOKEN_SECRET"

Signer = Callable[..., str]
"""``signer(secret, user_id, roles)``, or with ``rooms=`` a claim as well."""


class TokensUnavailable(Exception):
    """The project has no signer or the stage no key; the message says which."""


class TokenIssuer:
    def __init__(
        self,
        environment: Mapping[str, str],
        signer: str = DEFAULT_SIGNER,
        secret_variable: str = DEFAULT_SECRET_VARIABLE,
    ) -> None:
        self._spec = signer
        self._secret = environment.get(secret_variable) or None
        self._secret_variable = secret_variable

    def issue(
        self, user_id: str, roles: tuple[str, ...] = (), rooms: dict[str, Any] | None = None
    ) -> str:
        if not user_id:
            raise ValueError("a user id is required")
        if self._secret is None:
            raise TokensUnavailable(
                f"the stage sets no {self._secret_variable}: there is no key to sign with"
            )
        if rooms is None:
            return self._signer()(self._secret, user_id, roles)
        return self._signer()(self._secret, user_id, roles, rooms=rooms)

    def _signer(self) -> Signer:
        module_name, _, function_name = self._spec.partition(":")
        try:
            function: Signer = getattr(importlib.import_module(module_name), function_name)
        except (ImportError, AttributeError):
            raise TokensUnavailable(f"the project has no token signer {self._spec}") from None
        return function


def parse_roles(values: list[str]) -> tuple[str, ...]:
    """Roles given repeated (``roles=a&roles=b``) or comma-separated (``roles=a,b``)."""
    return tuple(role.strip() for value in values for role in value.split(",") if role.strip())


def parse_rooms(value: str | None) -> dict[str, Any] | None:
    """A ``rooms`` claim given as JSON; its content is the app's to judge."""
    if value is None:
        return None
    try:
        claim = json.loads(value)
    except ValueError:
        claim = None
    if not isinstance(claim, dict):
        raise ValueError('rooms must be a JSON object, such as {"lobby": ["join", "publish"]}')
    return claim
