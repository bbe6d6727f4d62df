"""Lambda invocations of the app's functions, off the event loop: how they end.

:class:`Invoker` is what the rest of the gateway calls: ``invoke(name,
event)`` answers an :data:`~switchboard_local.lambda_runtime.Outcome` — the
value, Lambda's error shape, a timeout or a throttle — and never raises for
the handler's sake. It counts each invocation against the concurrency
limits (:mod:`.concurrency`) and logs every failure once. Two ways to run
them:

* :class:`ThreadInvoker` — on a pool of threads of this process: quick to
  start, but every function shares the process, its module state and its
  environment, and a handler past its ``lambda_timeout`` cannot be stopped
  (it is reported);
* :class:`switchboard_local.gateway.containers.ContainerInvoker` — in
  containers, processes of their own, as Lambda runs them.

The functions are looked up when an invocation starts, so after a reload
the next event runs the new code while invocations already running finish
on the old. Ordering per connection is the caller's concern.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from switchboard_local.gateway.concurrency import Concurrency
from switchboard_local.lambda_runtime import (
    AppFunctions,
    FunctionSpec,
    Outcome,
    Raised,
    Returned,
    Throttled,
    TimedOut,
    marshal,
)

logger = logging.getLogger("switchboard_local.gateway")

DEFAULT_POOL_SIZE = 64
_NO_ROUTE = Returned({"statusCode": 200})

Invocation = asyncio.Future[Outcome]


def outcome_of(invocation: Invocation) -> Outcome:
    """An ended invocation's outcome; one that broke (a gateway bug) is a failure."""
    if invocation.cancelled():
        return Raised("Runtime.Cancelled", "the gateway stopped before it ended")
    error = invocation.exception()
    if error is not None:
        logger.error("an invocation broke: %r", error)
        return Raised.of(error)
    return invocation.result()


def resolved(outcome: Outcome) -> Invocation:
    """An invocation that ended before it started (a throttle, a missing route)."""
    future: Invocation = asyncio.get_running_loop().create_future()
    future.set_result(outcome)
    return future


class Invoker:
    """Runs the current :class:`AppFunctions`; subclasses say where (:meth:`_invoke`)."""

    def __init__(
        self, functions: Callable[[], AppFunctions], concurrency: Concurrency | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        self._functions = functions
        self.concurrency = concurrency or Concurrency()
        self._pool = ThreadPoolExecutor(pool_size, thread_name_prefix="lambda")

    def invoke(self, name: str, event: Any) -> Invocation:
        """Start one invocation of the function Chalice names ``name``: a future of its
        outcome (a plain future, no task: this is every message's path)."""
        functions = self._functions()
        spec = functions.functions[name]
        throttled = self.concurrency.acquire(name)
        if throttled is not None:
            logger.warning("%s throttled: %s", name, throttled.reason)
            return resolved(throttled)
        invocation = self._start(functions, spec, event)
        invocation.add_done_callback(partial(self._ended, name))
        return invocation

    def _ended(self, name: str, invocation: Invocation) -> None:
        self.concurrency.release(name)
        outcome = outcome_of(invocation)
        if isinstance(outcome, Raised):
            logger.error("%s failed: %s: %s\n%s", name, outcome.error_type, outcome.message,
                         "".join(outcome.stack_trace).rstrip())

    def invoke_route(self, route: str, event: dict[str, Any]) -> Invocation:
        """A WebSocket route's invocation; a route without a handler answers 200."""
        spec = self._functions().routes.get(route)
        if spec is None:
            return resolved(_NO_ROUTE)
        return self.invoke(spec.name, event)

    def _start(self, functions: AppFunctions, spec: FunctionSpec, event: Any) -> Invocation:
        raise NotImplementedError

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """Any blocking call (the gateway's own work) on the pool."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)

    def retire(self) -> None:
        """The code changed: what runs the old code stops once it is done (a reload)."""

    async def shutdown(self) -> None:
        """Wait for the pool's work off the loop: a thread may be waiting for the loop
        (a REST request's invocation), which must go on turning meanwhile."""
        await asyncio.get_running_loop().run_in_executor(
            None, partial(self._pool.shutdown, wait=True, cancel_futures=False)
        )


class ThreadInvoker(Invoker):
    """Each invocation on a thread of this process."""

    def _start(self, functions: AppFunctions, spec: FunctionSpec, event: Any) -> Invocation:
        return asyncio.get_running_loop().run_in_executor(
            self._pool, self._call, functions, spec, event
        )

    @staticmethod
    def _call(functions: AppFunctions, spec: FunctionSpec, event: Any) -> Outcome:
        budget = functions.budget(spec.name)
        started = time.monotonic()
        try:
            outcome = marshal(functions.call(spec, event, budget))
        except Exception as error:
            outcome = Raised.of(error)
        elapsed = time.monotonic() - started
        if elapsed > budget:
            logger.warning("%s ran %.1f s, past its timeout of %g s: Lambda would have "
                           "stopped it (threads cannot be; run with --containers)",
                           spec.name, elapsed, budget)
            return TimedOut(budget)
        return outcome


__all__ = [
    "Invocation", "Invoker", "Outcome", "Raised", "Returned", "ThreadInvoker", "Throttled",
    "TimedOut", "resolved",
]
