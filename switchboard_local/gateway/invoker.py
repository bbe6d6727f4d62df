"""Lambda invocations of the app's functions, off the event loop.

Every event runs on a worker thread, as a separate Lambda invocation would, so
a slow handler never stalls the sockets of other connections. The functions
are looked up when an invocation starts, so after a reload the next event
runs the new code while invocations already running finish on the old.
Ordering per connection is the caller's concern (:mod:`.connections`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from switchboard_local.stage import AppFunctions

DEFAULT_CONCURRENCY = 64


class Invoker:
    """Runs the current :class:`AppFunctions` in a thread pool."""

    def __init__(
        self, functions: Callable[[], AppFunctions], concurrency: int = DEFAULT_CONCURRENCY
    ) -> None:
        self._functions = functions
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="lambda")

    async def invoke_route(self, route: str, event: dict[str, Any]) -> dict[str, Any]:
        """A WebSocket route's answer; handler errors propagate."""
        answer: dict[str, Any] = await self.run(self._functions().invoke_route, route, event)
        return answer

    async def call(self, name: str, event: Any) -> Any:
        """Invoke one function by its Chalice name; handler errors propagate."""
        functions = self._functions()
        return await self.run(functions.call, functions.functions[name], event)

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """Any blocking call on the invocation pool."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
