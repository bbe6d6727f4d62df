"""Timestamps in the one format the registry and the protocol both use."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def iso8601(epoch_seconds: float | None = None) -> str:
    """ISO-8601 UTC with milliseconds and a ``Z``, e.g. ``2024-12-04T15:02:11.402Z``."""
    seconds = time.time() if epoch_seconds is None else epoch_seconds
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
