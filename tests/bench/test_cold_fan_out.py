"""A cold container's first fan-out builds one management client, not one per worker.

Chalice's ``WebsocketAPI`` builds its client on first use without a lock;
found while benchmarking the fan-out (16 clients, ~1 s of CPU, for 200 targets).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from chalice.app import WebsocketAPI

from chalicelib.delivery import Delivery
from chalicelib.invocation import Deadline


class CountingSession:
    """Builds slow clients, as botocore does, and counts them."""

    def __init__(self) -> None:
        self.built = 0
        self.posts = 0
        self._lock = threading.Lock()

    def client(self, service_name: str, **_: Any) -> Any:
        time.sleep(0.02)  # long enough for every worker to see no client yet
        with self._lock:
            self.built += 1
        return self

    def post_to_connection(self, **_: Any) -> None:
        with self._lock:
            self.posts += 1

    @property
    def exceptions(self) -> Any:
        return type("Exceptions", (), {"GoneException": LookupError})


def test_the_first_fan_out_builds_one_client() -> None:
    api = WebsocketAPI(env={"AWS_REGION": "us-east-1"})
    session = CountingSession()
    api.session = session
    api.configure("example.com", "api")
    delivery = Delivery(api, workers=8)
    targets = [f"c{index}" for index in range(40)]
    report = delivery.post_all(targets, "{}", Deadline.after(30))
    report += delivery.post_all(targets, "{}", Deadline.after(30))
    assert report.delivered == session.posts == 80
    assert session.built == 1
