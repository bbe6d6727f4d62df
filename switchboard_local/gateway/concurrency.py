"""Lambda's concurrency limits: the only code that decides whether an invocation is throttled.

An account (here: the gateway, ``--concurrency N``, AWS's default quota of
1,000 otherwise) runs at most N invocations at once. A function with
reserved concurrency R (Chalice's ``reserved_concurrency``) runs at most R
and takes them out of the pool every other function shares; R = 0 turns
the function off. An invocation beyond its limit is throttled at once —
Lambda's 429 ``TooManyRequestsException`` with ``Reason``
``ReservedFunctionConcurrentInvocationLimitExceeded`` or
``ConcurrentInvocationLimitExceeded`` — and what the caller does with that
is the caller's (an error frame, a 500, a batch back to its queue).

AWS refuses a reservation that leaves the account less unreserved
concurrency than its floor (100, or all of it for a smaller quota):
:meth:`Concurrency.warnings` names such a configuration, which would not deploy.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping

from switchboard_local.lambda_runtime import Throttled

DEFAULT_ACCOUNT_LIMIT = 1000
UNRESERVED_FLOOR = 100
RESERVED_REASON = "ReservedFunctionConcurrentInvocationLimitExceeded"
ACCOUNT_REASON = "ConcurrentInvocationLimitExceeded"


class Concurrency:
    """Invocations in flight per function, against the account's and functions' limits."""

    def __init__(
        self, account_limit: int = DEFAULT_ACCOUNT_LIMIT,
        reserved: Mapping[str, int] | None = None,
    ) -> None:
        if account_limit < 1:
            raise ValueError(f"the concurrency limit must be at least 1, not {account_limit}")
        self.account_limit = account_limit
        self.reserved = dict(reserved or {})
        self._in_flight: Counter[str] = Counter()
        self._unreserved = 0
        self._lock = threading.Lock()

    @property
    def unreserved_limit(self) -> int:
        return max(0, self.account_limit - sum(self.reserved.values()))

    def acquire(self, function: str) -> Throttled | None:
        """Count one more invocation of ``function``, or the throttle it gets."""
        with self._lock:
            limit = self.reserved.get(function)
            if limit is not None:
                if self._in_flight[function] >= limit:
                    return Throttled(RESERVED_REASON)
            elif self._unreserved >= self.unreserved_limit:
                return Throttled(ACCOUNT_REASON)
            else:
                self._unreserved += 1
            self._in_flight[function] += 1
            return None

    def release(self, function: str) -> None:
        """One invocation of ``function`` ended (after a successful :meth:`acquire`)."""
        with self._lock:
            self._in_flight[function] -= 1
            if function not in self.reserved:
                self._unreserved -= 1

    def in_flight(self, function: str | None = None) -> int:
        with self._lock:
            if function is None:
                return sum(self._in_flight.values())
            return self._in_flight[function]

    def warnings(self) -> list[str]:
        """What AWS would refuse to deploy: reservations that eat the unreserved floor."""
        if not self.reserved:
            return []
        floor = min(UNRESERVED_FLOOR, self.account_limit)
        if self.unreserved_limit >= floor:
            return []
        reserved = ", ".join(f"{name} {count}" for name, count in sorted(self.reserved.items()))
        return [f"reserved concurrency ({reserved}) leaves {self.unreserved_limit} of the "
                f"account's {self.account_limit} unreserved, below the floor of {floor}: "
                "AWS refuses this configuration"]
