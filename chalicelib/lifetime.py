"""A connection's token lifetime: the only code that decides when a connection has outlived it.

A connection carries its token's ``exp`` from ``$connect`` on. A frame that
arrives after ``exp`` plus ``TOKEN_EXPIRY_GRACE_SECONDS`` is refused with
``token_expired`` and the connection is closed (``handlers``); a connection
that stays silent is closed by the ``expire_connections`` schedule
(:mod:`chalicelib.expiry`). The ``refresh`` action replaces the token of a
live connection with a newer one of the same user, whose ``exp`` then counts:
its signature, claims and revocation are checked as at ``$connect``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from chalicelib.identity import AuthenticationError, TokenVerifier
from chalicelib.protocol import FORBIDDEN, ProtocolError
from chalicelib.registry import Connection, Registry
from chalicelib.revocations import Revocations

EXPIRED_MESSAGE = "the connection's token has expired; reconnect with a new token"
"""What a connection whose token expired is told, before it is closed."""


class TokenLifetime:
    def __init__(
        self,
        verifier: TokenVerifier,
        revocations: Revocations,
        registry: Registry,
        grace_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._verifier = verifier
        self._revocations = revocations
        self._registry = registry
        self.grace_seconds = grace_seconds
        self._clock = clock

    def expired(self, connection: Connection) -> bool:
        """Whether the connection's token expired (past the grace): no request."""
        return connection.expires_at is not None and self._clock() > self.deadline_of(
            connection.expires_at
        )

    def deadline_of(self, expires_at: int) -> int:
        """The last second (epoch) a token expiring at ``expires_at`` is honoured."""
        return expires_at + self.grace_seconds

    def due_until(self) -> int:
        """Tokens whose ``exp`` is at or before this (epoch seconds) are no longer honoured."""
        return int(self._clock()) - self.grace_seconds - 1

    def refresh(self, connection: Connection, token: str) -> int:
        """Give the connection this newer token of its user; returns the new ``exp``.

        Raises ``forbidden`` for a token that does not verify, that is another
        user's, or that is revoked; the connection keeps its current token then.
        """
        try:
            identity = self._verifier.verify(token)
        except AuthenticationError as error:
            raise ProtocolError(FORBIDDEN, f"the token was refused: {error.reason}") from None
        if identity.user_id != connection.user_id:
            raise ProtocolError(FORBIDDEN, "the token is another user's")
        if self._revocations.refuses(identity.user_id, identity.issued_at):
            raise ProtocolError(FORBIDDEN, "the token was revoked")
        assert identity.expires_at is not None  # the verifier requires exp
        refreshed = self._registry.refresh_connection(
            connection.connection_id, identity.expires_at, identity.issued_at,
            identity.roles, identity.rooms,
        )
        assert refreshed.expires_at is not None
        return refreshed.expires_at
