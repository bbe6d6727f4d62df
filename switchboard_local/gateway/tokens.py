"""Development tokens: a local-only convenience, signed by the project's own signer.

A project declares its signer (``token-signer = "module:function"``, called as
``function(keys, user_id, roles)``) and the stage variable that names the SSM
parameter holding its signing keys (``token-key-parameter``). The gateway reads
the parameter from its store on every request, so a token from the gateway is
exactly what the app verifies, and a rotation made locally takes effect at
once. How the keys are written in the parameter is the signer's business.
Served at ``GET /_local/token?userId=alice&roles=admin`` to loopback peers
only; ``&rooms=<URL-encoded JSON>`` passes a ``rooms`` claim to the signer as
``rooms=<claim>`` (as is: the app judges it), ``&lifetime=SECONDS`` passes
``lifetime_seconds=SECONDS`` (a signer that takes neither is not given them).
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any

from switchboard_local.gateway.resources import read_signing_keys

Signer = Callable[..., str]


class TokensUnavailable(Exception):
    """The project declares no signer or the stage no key parameter; the message says which."""


class TokenIssuer:
    def __init__(
        self, signer: str | None, key_parameter_variable: str | None,
        environment: Mapping[str, str],
    ) -> None:
        self.signer = signer
        self.variable = key_parameter_variable
        self.parameter = environment.get(key_parameter_variable or "") or None

    @property
    def available(self) -> bool:
        return self.signer is not None and self.parameter is not None

    def issue(self, user_id: str, roles: tuple[str, ...] = (), **claims: Any) -> str:
        if not user_id:
            raise ValueError("a user id is required")
        if self.signer is None:
            raise TokensUnavailable(
                "the project declares no token-signer in [tool.switchboard-local]"
            )
        if self.parameter is None:
            raise TokensUnavailable(
                f"the stage sets no {self.variable or 'token-key-parameter variable'}: "
                "there is no key to sign with"
            )
        signer = self._signer()
        keys = read_signing_keys(self.parameter)
        try:
            inspect.signature(signer).bind(keys, user_id, roles, **claims)
        except TypeError:
            raise ValueError(
                f"the project's token signer {self.signer} takes no "
                f"{', '.join(sorted(claims))} argument"
            ) from None
        return signer(keys, user_id, roles, **claims)

    def _signer(self) -> Signer:
        assert self.signer is not None
        module_name, _, function_name = self.signer.partition(":")
        try:
            function: Signer = getattr(importlib.import_module(module_name), function_name)
        except (ImportError, AttributeError):
            raise TokensUnavailable(f"the project has no token signer {self.signer}") from None
        return function


def parse_roles(values: list[str]) -> tuple[str, ...]:
    """Roles given repeated (``roles=a&roles=b``) or comma-separated (``roles=a,b``)."""
    return tuple(role.strip() for value in values for role in value.split(",") if role.strip())


def token_options(query: Mapping[str, str]) -> dict[str, Any]:
    """What a token request asks of the signer beyond user and roles (``rooms``, ``lifetime``)."""
    options: dict[str, Any] = {}
    rooms = parse_rooms(query.get("rooms"))
    if rooms is not None:
        options["rooms"] = rooms
    lifetime = query.get("lifetime")
    if lifetime is not None:
        if not (lifetime.isascii() and lifetime.isdigit()) or int(lifetime) == 0:
            raise ValueError(f"lifetime must be a number of seconds above 0, not {lifetime!r}")
        options["lifetime_seconds"] = int(lifetime)
    return options


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
