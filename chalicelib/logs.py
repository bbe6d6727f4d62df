"""One structured JSON line per handled event, for CloudWatch Logs Insights.

Only the fields passed here are logged: tokens and message texts never are,
so log access never becomes message access.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger("switchboard.events")

# Chalice makes the app's own logger ("switchboard", the app name) ERROR-level
# and non-propagating, and every logger of this package is its child: without a
# level of their own, each event line (INFO) and each failed delivery (WARNING)
# would be dropped before reaching a handler. INFO keeps botocore's DEBUG wire
# logs, which quote request bodies, out as well.
OPERATIONAL_LOGGERS = (
    "switchboard.events",
    "switchboard.handlers",
    "switchboard.delivery",
    "switchboard.fanout",
    "switchboard.cleanup",
    "switchboard.presence",
    "switchboard.ratelimit",
    "switchboard.reads",
)
for _name in OPERATIONAL_LOGGERS:
    logging.getLogger(_name).setLevel(logging.INFO)


class EventLog:
    """The fields of one event's log line, filled in while it is handled."""

    def __init__(self, route: str, connection_id: str) -> None:
        self.fields: dict[str, Any] = {"route": route, "connectionId": connection_id}

    def set(self, **fields: Any) -> None:
        self.fields.update(fields)


@contextmanager
def logged_event(route: str, connection_id: str) -> Iterator[EventLog]:
    """Emit the event's line when it ends, whatever way it ends."""
    record = EventLog(route, connection_id)
    started = time.perf_counter()
    try:
        yield record
    except BaseException:
        record.fields.setdefault("outcome", "exception")
        raise
    finally:
        record.fields["durationMs"] = round((time.perf_counter() - started) * 1000, 2)
        record.fields.setdefault("outcome", "ok")
        logger.info(json.dumps(record.fields, separators=(",", ":"), sort_keys=True))
