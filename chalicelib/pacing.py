"""Pacing posts under the account throttle: the only code that spaces posts in time.

API Gateway's account throttle (10,000 requests/s by default, shared by every
API in the region) answers 429 above its rate. A broadcast to 100,000
connections therefore cannot finish in under N / rate seconds however many
``fanout_worker`` invocations run; hammering only turns the excess into 429s
and retries. Each invocation instead takes a token per post from a bucket
refilled at its share of the stage's budget, ``MANAGEMENT_RPS`` divided by the
worker's reserved concurrency: with every worker busy their combined rate stays
under the budget, and a lone worker still uses its share fully.

Bursts: API Gateway's bucket holds half a second of its rate (burst 5,000 at
10,000/s); each invocation's holds half a second of its share, so all of them
bursting at once stay inside the account's burst, and a room's inline fan-out
(at most ``FANOUT_QUEUE_THRESHOLD`` targets) usually goes out unpaced.

The bucket is a virtual-time scheduler (GCRA): a post reserves the next free
slot under a lock and sleeps until it outside the lock, so 32 delivery threads
are spaced evenly instead of waking together.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from chalicelib.invocation import Deadline


class Pacer:
    """At most ``rate`` posts per second on average, ``burst`` at once after a pause."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate!r}")
        self.rate = rate
        self.burst = max(1.0, rate / 2 if burst is None else burst)
        self._clock = clock
        self._sleep = sleep
        self._interval = 1.0 / rate
        self._tolerance = (self.burst - 1) * self._interval
        self._theoretical = clock()  # when the bucket would be full again, in virtual time
        self._lock = threading.Lock()

    def wait(self, deadline: Deadline) -> bool:
        """Take a slot, sleeping until it comes; False (nothing taken) if it comes too late."""
        with self._lock:
            now = self._clock()
            theoretical = max(self._theoretical, now)
            pause = max(0.0, theoretical - self._tolerance - now)
            if pause >= deadline.remaining():
                return False
            self._theoretical = theoretical + self._interval
        if pause > 0:
            self._sleep(pause)
        return True


class Unpaced:
    """No pacing: every post may start at once (tests, scripts)."""

    def wait(self, deadline: Deadline) -> bool:
        return deadline.remaining() > 0


UNPACED = Unpaced()
