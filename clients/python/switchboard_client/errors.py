"""The one exception the client raises, and the codes it carries.

A :class:`SwitchboardError` has the ``code`` of the server's ``error`` frame
(``bad_request``, ``forbidden``, ``too_large``, ``rate_limited``, ...) or one of
the client's own codes below, which say what happened to a request that got no
answer.
"""

from __future__ import annotations

from typing import Any

TIMEOUT = "timeout"
"""The request was sent but no answer came in time: it may or may not have been carried out."""
NOT_CONNECTED = "not_connected"
"""No connection was ready in time: the request was never sent."""
CONNECTION_LOST = "connection_lost"
"""The connection dropped after a request that is not safe to repeat was sent: it may or may
not have been carried out."""
CLOSED = "closed"
"""The client was closed (by :meth:`Client.close` or a refusal) before the request finished."""
UNAUTHORIZED = "unauthorized"
"""The gateway refused the handshake with 401 or 403: the client does not retry."""
TOO_LARGE = "too_large"
"""The frame is larger than the gateway accepts (128 KiB): refused before sending, or the
gateway closed the connection with 1009 after it."""
DISCONNECTED = "disconnected"
"""The server closed the connection with ``reconnect: false``: the client does not come back."""

# Codes of the server's that the client acts on.
INTERNAL = "internal"
"""The server failed (or API Gateway's integration did): the request may be tried again."""
RATE_LIMITED = "rate_limited"
"""Too many frames: ``retry_after_ms`` says when to try again."""
TOKEN_EXPIRED = "token_expired"
"""The connection's token expired: the client reconnects with a fresh one."""


class SwitchboardError(Exception):
    """An error frame's ``code`` and ``message``, or the client's own (see this module)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        frame: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        """The HTTP status of a refused handshake (``unauthorized``)."""
        self.frame = frame
        """The server's ``error`` frame, when there was one."""
        retry = (frame or {}).get("retryAfterMs")
        self.retry_after_ms: int | None = (
            retry if isinstance(retry, int) and not isinstance(retry, bool) and retry >= 0
            else None
        )
        """``rate_limited``: milliseconds to wait before trying again, as the server said."""

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> SwitchboardError:
        """The error an ``error`` frame answering a request stands for."""
        return cls(str(frame.get("code", "error")), str(frame.get("message", "")), frame=frame)

    def as_event(self, **extra: Any) -> dict[str, Any]:
        """The ``error`` event the client yields for this error."""
        event: dict[str, Any] = {"type": "error", "code": self.code, "message": self.message}
        if self.status is not None:
            event["status"] = self.status
        event.update(extra)
        return event
