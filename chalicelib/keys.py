"""The stage's token signing keys as a warm container holds them: the only code that caches them.

Keys come from ``TOKEN_SECRET`` (fixed) or from the SSM parameter
``TOKEN_SECRET_PARAMETER`` names. A container lives for hours, so keys read
once would keep a rotation from ever reaching it: :class:`SigningKeys` uses
what it read for ``TOKEN_SECRET_TTL_SECONDS`` (5 minutes by default), then
reads again, and reads again at once when a token's signature matches none of
its keys (a key just added) — at most once per :data:`REFRESH_SECONDS`, so a
stream of forged tokens cannot turn into a stream of SSM requests. A read that
fails keeps the keys it had (logged) and is tried again a little later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from chalicelib import aws
from chalicelib.identity import signing_keys

logger = logging.getLogger("switchboard.handlers")

REFRESH_SECONDS = 10.0
"""The shortest time between two reads of the keys, whatever asks for them."""


class SigningKeys:
    """Keys read through ``load`` (a value such as ``NEW,OLD``), kept for ``ttl`` seconds."""

    def __init__(
        self,
        load: Callable[[], str],
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._keys = signing_keys(load())  # the first read fails loudly: no keys, no stage
        self._read_at = clock()

    def current(self) -> tuple[str, ...]:
        """The keys, read again first when they are older than the TTL."""
        with self._lock:
            if self._clock() - self._read_at >= self._ttl:
                self._read()
            return self._keys

    def refresh(self) -> bool:
        """Read the keys again now (unless read in the last :data:`REFRESH_SECONDS`);
        True when that changed them."""
        with self._lock:
            if self._clock() - self._read_at < REFRESH_SECONDS:
                return False
            before = self._keys
            self._read()
            return self._keys != before

    def _read(self) -> None:
        self._read_at = self._clock()
        try:
            self._keys = signing_keys(self._load())
        except Exception as error:
            logger.error("the signing keys could not be read again (%s); keeping the last ones",
                         type(error).__name__)
            if self._ttl > REFRESH_SECONDS:  # and try again soon, not a whole TTL later
                self._read_at -= self._ttl - REFRESH_SECONDS


def parameter(name: str) -> Callable[[], str]:
    """A loader of the keys an SSM SecureString holds (``TOKEN_SECRET_PARAMETER``)."""

    def load() -> str:
        response = aws.ssm_client().get_parameter(Name=name, WithDecryption=True)
        return str(response["Parameter"]["Value"])

    return load
