"""``@app.schedule`` functions, run on their schedule while the gateway serves.

Each schedule gets a task that sleeps until the expression's next fire
(:mod:`switchboard_local.schedule`), then invokes the function with the
event EventBridge sends for a schedule rule (``detail-type`` ``Scheduled
Event``, the rule's ARN in ``resources``; :func:`switchboard_local.events.scheduled_event`)
— one invocation per fire, whatever the previous one is doing, as
EventBridge does. The clock and the sleep are injected. A reload keeps the
schedules whose expression did not change (a rate keeps its phase).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from switchboard_local.events import scheduled_event
from switchboard_local.lambda_runtime import ACCOUNT_ID, Outcome, Returned
from switchboard_local.schedule import Schedule, ScheduleError, parse

logger = logging.getLogger("switchboard_local.gateway")

Invoke = Callable[[str, Any], Awaitable[Outcome]]


@dataclass(frozen=True)
class Scheduled:
    function: str
    expression: str
    rule_name: str
    """``<app>-<stage>-<function>-event``, as ``chalice deploy`` names the rule."""


def expression_of(source: Any) -> str:
    """A ``ScheduledEventConfig``'s expression as text (Chalice's ``Rate``/``Cron`` render it)."""
    expression = source.schedule_expression
    return str(expression if isinstance(expression, str) else expression.to_string())


class Scheduler:
    """One task per schedule; :meth:`start` again after a reload, :meth:`stop` at the end."""

    def __init__(
        self, invoke: Invoke, region: str, warn: Callable[[str], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._invoke = invoke
        self._region = region
        self._warn = warn
        self._clock = clock
        self._sleep = sleep
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._running: dict[str, Scheduled] = {}

    def event(self, scheduled: Scheduled, moment: datetime | None = None) -> dict[str, Any]:
        """The event the rule sends at ``moment`` (now by default)."""
        when = (moment or self._clock()).timestamp()
        return scheduled_event(scheduled.rule_name, self._region, ACCOUNT_ID, when)

    def start(self, schedules: list[Scheduled]) -> list[str]:
        """Run these schedules (keeping the unchanged ones); a line for each, for the banner."""
        wanted = {s.function: s for s in schedules}
        for name in [n for n in self._tasks if self._running.get(n) != wanted.get(n)]:
            self._tasks.pop(name).cancel()
            del self._running[name]
        lines = []
        for scheduled in schedules:
            try:
                schedule = parse(scheduled.expression)
            except ScheduleError as error:
                self._warn(f"{scheduled.function} is not scheduled: {error}")
                continue
            if scheduled.function not in self._tasks:
                self._tasks[scheduled.function] = asyncio.get_running_loop().create_task(
                    self._run(scheduled, schedule)
                )
                self._running[scheduled.function] = scheduled
            lines.append(f"{scheduled.function} {scheduled.expression} (UTC)")
        return lines

    async def _run(self, scheduled: Scheduled, schedule: Schedule) -> None:
        started = self._clock()
        fires: set[asyncio.Task[None]] = set()
        while True:
            now = self._clock()
            due = schedule.next_after(now, started)
            await self._sleep(max(0.0, (due - now).total_seconds()))
            fire = asyncio.get_running_loop().create_task(self._fire(scheduled, due))
            fires.add(fire)
            fire.add_done_callback(fires.discard)

    async def _fire(self, scheduled: Scheduled, due: datetime) -> None:
        outcome = await self._invoke(scheduled.function, self.event(scheduled, due))
        if isinstance(outcome, Returned):
            logger.info("%s ran on its schedule (%s)", scheduled.function, scheduled.expression)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        self._running.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
