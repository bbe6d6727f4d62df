"""When a token should be replaced: the only code that looks inside a token.

The client never verifies a token (the server does); it only reads ``exp`` and
``iat`` from a JWT's payload to refresh the connection's token before the
server closes it. A token that is not a JWT, or has no ``exp``, is never
refreshed.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

REFRESH_SHARE = 0.8
"""Refresh after this share of a token's lifetime..."""
REFRESH_MARGIN = 60.0
"""...or this many seconds before it expires, whichever comes first."""


def claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT, unverified; ``None`` when ``token`` is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        decoded = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        return None
    return decoded if isinstance(decoded, dict) else None


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def refresh_at(token: str, obtained_at: float) -> float | None:
    """The epoch second at which to replace ``token`` (obtained at ``obtained_at``), or
    ``None`` when it does not say when it expires.

    The earlier of 80 % of its lifetime (from ``iat``, else from when it was obtained) and
    60 s before ``exp``.
    """
    found = claims(token)
    if found is None:
        return None
    expires = _seconds(found.get("exp"))
    if expires is None:
        return None
    issued = _seconds(found.get("iat"))
    start = issued if issued is not None and issued <= expires else obtained_at
    return min(start + REFRESH_SHARE * (expires - start), expires - REFRESH_MARGIN)
