"""Containers: each function's invocations in processes of their own, as Lambda runs them.

A container handles one event at a time. An invocation takes the function's
most recently used idle container, or starts one (a cold start, forked by
the zygote and logged with its duration); the container stays warm for the
next invocations, and is stopped once idle for ``idle_seconds``. Module
state therefore lives per container; each container has only its own
function's environment. An invocation that runs past the function's
``lambda_timeout`` has its container stopped (SIGKILL) and ends
:class:`~switchboard_local.lambda_runtime.TimedOut`, logged as "timed out
after N s"; a container that dies mid-invocation ends it with
``Runtime.ExitError``. After a reload (:meth:`ContainerInvoker.retire`)
idle containers stop at once and busy ones when their invocation ends, so
the next event cold-starts on the new code. Invocations of one function take
turns beyond a few at once (:class:`ContainerSettings`): the machine has two
cores, not a region.

The app's management calls come back over each container's channel and are
answered by :class:`~switchboard_local.gateway.management.ManagementApi`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from switchboard_local.gateway.channel import Decoder, encode
from switchboard_local.gateway.concurrency import Concurrency
from switchboard_local.gateway.invoker import Invocation, Invoker, outcome_of
from switchboard_local.gateway.management import ManagementApi
from switchboard_local.gateway.zygote import Zygote, ZygoteError
from switchboard_local.lambda_runtime import (
    AppFunctions,
    FunctionSpec,
    Outcome,
    Raised,
    Returned,
    TimedOut,
)

logger = logging.getLogger("switchboard_local.gateway")

DEFAULT_IDLE_SECONDS = 300.0
"""How long an idle container stays warm (Lambda keeps them minutes, unpromised)."""
EAGER_INVOCATIONS = 2 * (os.cpu_count() or 1)
PATIENCE_SECONDS = 0.050


@dataclass(frozen=True)
class ContainerSettings:
    """What the gateway tells each container about where it runs."""

    project_dir: str
    management_url: Callable[[], str]
    environment: Callable[[str], dict[str, str]]
    """A function's whole environment, by its Chalice name."""
    idle_seconds: float = DEFAULT_IDLE_SECONDS
    eager: int = EAGER_INVOCATIONS
    """Invocations of one function that run at once before others wait their turn."""
    patience: float = PATIENCE_SECONDS
    """On AWS an invocation lasts its handler's time; here it also waits for one of a
    few shared cores. Started at once, invocations of a busy function would overlap
    far more than on AWS, each keeping a process of its own busy: the machine's load,
    not the app, would set how many containers run, and every invocation would run
    slower in their crowded CPU caches. So at most ``eager`` invocations of a
    function run at once and the next waits its turn — except that one running
    longer than ``patience`` (it sleeps, blocks, or cold-starts) no longer counts:
    a slow handler holds the others up by that much at most, and a burst still
    starts the containers it needs. 0 starts every invocation at once."""


class _Channel(asyncio.Protocol):
    """The gateway's end of one container's channel, on the event loop."""

    def __init__(self, container: Container) -> None:
        self._container = container
        self._decoder = Decoder()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        for header, body in self._decoder.feed(data):
            self._container.received(header, body)

    def connection_lost(self, exc: Exception | None) -> None:
        self._container.lost()


@dataclass(eq=False)
class Container:
    """One process running one function."""

    id: int
    function: str
    generation: int
    management: ManagementApi
    loop: asyncio.AbstractEventLoop
    pid: int = 0
    started: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)
    channel: _Channel | None = None
    alive: bool = True
    _ready: asyncio.Future[Outcome | float] | None = None
    _pending: Invocation | None = None
    _timer: asyncio.TimerHandle | None = None
    _invocations: Any = field(default_factory=lambda: itertools.count(1))
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def ready(self) -> asyncio.Future[Outcome | float]:
        """Resolves with the init duration (ms), or the init error."""
        self._ready = self.loop.create_future()
        return self._ready

    def invoke(self, event: Any, budget: float) -> Invocation:
        """Start one invocation; resolves with its outcome, whatever happens."""
        future = self._pending = self.loop.create_future()
        try:
            message = encode({"op": "invoke", "id": next(self._invocations), "event": event})
        except (TypeError, ValueError) as error:  # Lambda's events are JSON: a gateway bug
            self._settle(Raised("Runtime.InvalidEvent", f"the event is not JSON: {error}"))
            return future
        self._timer = self.loop.call_later(budget, self._time_out, budget)
        self._send(message)
        return future

    def received(self, header: dict[str, Any], body: bytes) -> None:
        op = header.get("op")
        if op == "mgmt":
            task = self.loop.create_task(self._manage(header, body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif op == "result":
            self._settle(Returned(header.get("value")))
        elif op == "error":
            self._settle(Raised.from_payload(header))
        elif op == "ready" and self._ready is not None and not self._ready.done():
            self._ready.set_result(float(header["init_ms"]))
        elif op == "init_error" and self._ready is not None and not self._ready.done():
            self._ready.set_result(Raised.from_payload(header))

    async def _manage(self, header: dict[str, Any], body: bytes) -> None:
        answer = await self.management.answer(header["method"], header["connection"], body)
        self._write({"answer_to": header["id"], "status": answer.status,
                     "headers": answer.headers}, answer.body)

    def _settle(self, outcome: Outcome) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, None
        if pending is not None and not pending.done():
            pending.set_result(outcome)

    def _time_out(self, budget: float) -> None:
        logger.error("%s timed out after %g s: container %d stopped", self.function, budget,
                     self.id)
        self._settle(TimedOut(budget))
        self.stop(kill=True)

    def lost(self) -> None:
        """The channel closed: the process is gone (or going)."""
        was_alive, self.alive = self.alive, False
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(Raised("Runtime.ExitError",
                                          "the container exited during its init"))
        if was_alive or self._pending is not None:
            self._settle(Raised("Runtime.ExitError",
                                f"the container of {self.function} exited before the "
                                "invocation completed"))

    def _write(self, header: dict[str, Any], body: bytes = b"") -> None:
        self._send(encode(header, body))

    def _send(self, message: bytes) -> None:
        if self.channel is not None and self.channel.transport is not None:
            self.channel.transport.write(message)

    def stop(self, kill: bool = False) -> None:
        """Close the channel (the container exits); ``kill`` stops it mid-invocation."""
        self.alive = False
        if kill and self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        if self.channel is not None and self.channel.transport is not None:
            self.channel.transport.close()


@dataclass(eq=False)
class _Queued:
    """An invocation waiting for its turn."""

    functions: AppFunctions
    spec: FunctionSpec
    event: Any
    outcome: Invocation


@dataclass(eq=False)
class _Lane:
    """One function's invocations: how many count as running, who waits."""

    running: int = 0
    waiting: deque[_Queued] = field(default_factory=deque)


def _chain(source: Invocation, target: Invocation) -> None:
    """Resolve ``target`` with ``source``'s outcome."""

    def copy(done: Invocation) -> None:
        if not target.done():
            target.set_result(outcome_of(done))

    source.add_done_callback(copy)


class ContainerInvoker(Invoker):
    """Invocations in containers, per function; a reaper stops the idle ones."""

    def __init__(
        self, functions: Callable[[], AppFunctions], settings: ContainerSettings,
        management: ManagementApi, concurrency: Concurrency | None = None,
        zygote: Callable[[], Zygote] = Zygote,
    ) -> None:
        super().__init__(functions, concurrency)
        self.settings = settings
        self._management = management
        self._make_zygote = zygote
        self._zygote: Zygote | None = None
        self._zygote_lock = threading.Lock()
        self._idle: dict[str, list[Container]] = {}
        self._lanes: dict[str, _Lane] = {}
        self._all: set[Container] = set()
        self._ids = itertools.count(1)
        self.generation = 0
        self._reaper: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the zygote (it imports in the background) and the reaper."""
        self._zygote = self._make_zygote()
        self._reaper = asyncio.get_running_loop().create_task(self._reap())

    def _start(self, functions: AppFunctions, spec: FunctionSpec, event: Any) -> Invocation:
        lane = self._lanes.setdefault(spec.name, _Lane())
        if self.settings.patience <= 0 or lane.running < self.settings.eager:
            return self._dispatch(lane, functions, spec, event)
        queued = _Queued(functions, spec, event, asyncio.get_running_loop().create_future())
        lane.waiting.append(queued)
        return queued.outcome

    def _dispatch(self, lane: _Lane, functions: AppFunctions, spec: FunctionSpec, event: Any
                  ) -> Invocation:
        """Run it now: in the most recently used idle container, or a new one."""
        lane.running += 1
        counted = [True]
        timer = asyncio.get_running_loop().call_later(
            self.settings.patience, self._uncount, lane, counted
        )
        idle = self._idle.get(spec.name)
        budget = functions.budget(spec.name)
        invocation = (self._run_in(idle.pop(), event, budget) if idle else
                      asyncio.ensure_future(self._cold(functions, spec, event, budget)))

        def ended(_: Invocation) -> None:
            timer.cancel()
            self._uncount(lane, counted)

        invocation.add_done_callback(ended)
        return invocation

    def _uncount(self, lane: _Lane, counted: list[bool]) -> None:
        """An invocation ended, or has run past ``patience``: the next one's turn."""
        if not counted[0]:
            return
        counted[0] = False
        lane.running -= 1
        while lane.waiting and lane.running < self.settings.eager:
            queued = lane.waiting.popleft()
            _chain(self._dispatch(lane, queued.functions, queued.spec, queued.event),
                   queued.outcome)

    async def _cold(self, functions: AppFunctions, spec: FunctionSpec, event: Any,
                    budget: float) -> Outcome:
        started = await self._new_container(functions, spec)
        if not isinstance(started, Container):
            return started
        return await self._run_in(started, event, budget)

    def _run_in(self, container: Container, event: Any, budget: float) -> Invocation:
        invocation = container.invoke(event, budget)
        invocation.add_done_callback(lambda _: self._idle_again(container))
        return invocation

    def _idle_again(self, container: Container) -> None:
        container.last_used = time.monotonic()
        if container.alive and container.generation == self.generation:
            self._idle.setdefault(container.function, []).append(container)
        else:
            self._discard(container)

    async def _new_container(self, functions: AppFunctions, spec: FunctionSpec
                             ) -> Container | Outcome:
        loop = asyncio.get_running_loop()
        container = Container(next(self._ids), spec.name, self.generation, self._management,
                              loop)
        budget = functions.budget(spec.name)
        request = {
            "function": spec.name,
            "prefix": functions.prefix,
            "budget": budget,
            "project_dir": self.settings.project_dir,
            "management_url": self.settings.management_url(),
            "environment": self.settings.environment(spec.name),
        }
        try:
            container.pid, sock = await self.run(self._fork, request)
        except Exception as error:
            return Raised.of(error)
        ready = container.ready()
        _, container.channel = await loop.create_unix_connection(
            lambda: _Channel(container), sock=sock
        )
        self._all.add(container)
        try:
            init = await asyncio.wait_for(ready, budget)
        except TimeoutError:
            logger.error("%s timed out after %g s in its init: container %d stopped",
                         spec.name, budget, container.id)
            self._discard(container, kill=True)
            return TimedOut(budget)
        if not isinstance(init, float):
            self._discard(container)
            return init
        logger.info("%s: cold start, container %d ready in %.0f ms (init %.0f ms)",
                    spec.name, container.id, (time.monotonic() - container.started) * 1000,
                    init)
        return container

    def _fork(self, request: dict[str, Any]) -> tuple[int, socket.socket]:
        """A new container from the zygote; a zygote that died is replaced once."""
        zygote = self._zygote
        assert zygote is not None, "start() first"
        try:
            return zygote.fork(request)
        except ZygoteError as error:
            logger.warning("%s: starting a new zygote", error)
            with self._zygote_lock:
                if self._zygote is zygote:
                    zygote.stop()
                    self._zygote = self._make_zygote()
                replacement = self._zygote
            assert replacement is not None
            return replacement.fork(request)

    def _discard(self, container: Container, kill: bool = False) -> None:
        self._all.discard(container)
        idle = self._idle.get(container.function)
        if idle and container in idle:
            idle.remove(container)
        container.stop(kill)

    def retire(self) -> None:
        self.generation += 1
        for idle in self._idle.values():
            for container in list(idle):
                self._discard(container)

    async def _reap(self) -> None:
        interval = min(10.0, self.settings.idle_seconds / 2)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            limit = self.settings.idle_seconds
            for idle in self._idle.values():
                for container in [c for c in idle if now - c.last_used > limit]:
                    logger.info("%s: container %d stopped after %.0f s idle", container.function,
                                container.id, now - container.last_used)
                    self._discard(container)

    async def shutdown(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for container in list(self._all):
            self._discard(container, kill=True)
        if self._zygote is not None:
            await self.run(self._zygote.stop)
            self._zygote = None
        await super().shutdown()
