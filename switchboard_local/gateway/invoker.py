"""Lambda invocations of the app's handlers, off the event loop.

Every event runs on a worker thread, as a separate Lambda invocation would, so
a slow handler never stalls the sockets of other connections. Ordering per
connection is the caller's concern (:mod:`.connections` serialises them).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from switchboard_local.gateway.loader import Handler
from switchboard_local.testing import LambdaContext

DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_CONCURRENCY = 64
# The function names `chalice deploy` gives the three routes: <app>-<stage>-websocket_<suffix>.
_FUNCTION_SUFFIXES = {"$connect": "connect", "$default": "message", "$disconnect": "disconnect"}


class Invoker:
    """Calls ``handler(event, context)`` with a Lambda-like context in a thread pool."""

    def __init__(
        self,
        handlers: dict[str, Handler],
        function_prefix: str,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self._handlers = handlers
        self._prefix = function_prefix
        self._timeout = timeout_seconds
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="lambda")

    def has(self, route: str) -> bool:
        return route in self._handlers

    async def invoke(self, route: str, event: dict[str, Any]) -> dict[str, Any]:
        """The handler's answer as a dict with ``statusCode``; handler errors propagate.

        A route without a handler answers 200, as a stage without that route
        behaves (API Gateway accepts a connection when there is no ``$connect``).
        """
        handler = self._handlers.get(route)
        if handler is None:
            return {"statusCode": 200}
        suffix = _FUNCTION_SUFFIXES.get(route, route.strip('$'))
        name = f"{self._prefix}-websocket_{suffix}"
        context = LambdaContext(name, self._timeout)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._pool, handler, event, context)
        return result if isinstance(result, dict) else {"statusCode": 200}

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
