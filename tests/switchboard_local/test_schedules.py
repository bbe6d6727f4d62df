"""``@app.schedule`` functions: run on their schedule while the gateway serves, and by name.

The event is what EventBridge sends a function its schedule rule triggers
(EventBridge user guide, "Amazon EventBridge events": ``version``, ``id``,
``detail-type`` ``Scheduled Event``, ``source`` ``aws.events``, ``account``,
``time``, ``region``, ``resources`` with the rule's ARN, ``detail`` ``{}``),
the rule named as ``chalice deploy`` names it (``<app>-<stage>-<function>-event``).
"""

from __future__ import annotations

import asyncio
import heapq
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from switchboard_local.gateway.scheduler import Scheduled, Scheduler
from switchboard_local.gateway.server import GatewayOptions
from switchboard_local.lambda_runtime import Outcome, Returned
from tests.gateways import REPO, WAIT, Running, start, stop

from .test_fidelity import get

PROJECT = Path(__file__).parent / "projects" / "scheduled"
RULE_ARN = "arn:aws:events:us-east-1:123456789012:rule/scheduled-dev-every_minute-event"


@pytest.fixture(scope="module", params=[False, True], ids=["threads", "containers"])
def scheduled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[Running]:
    project = tmp_path_factory.mktemp("scheduled") / "scheduled"
    shutil.copytree(PROJECT, project)
    options = GatewayOptions(project_dir=project, port=0, autoreload=False,
                             containers=request.param)
    thread, running = start(options, project)
    yield running
    stop(thread)


def runs(running: Running) -> list[dict[str, Any]]:
    log = running.project_dir / "runs.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def invoke(running: Running, name: str, body: bytes = b"") -> tuple[int, Any]:
    status, _, answer = get(running, f"/_local/invoke/{name}", method="POST", body=body,
                            headers={"Content-Type": "application/json"})
    return status, json.loads(answer)


def test_the_banner_lists_the_schedules_and_warns_of_a_bad_one(scheduled: Running) -> None:
    lines = scheduled.gateway.banner()
    assert ("Schedule", "every_minute rate(1 minute) (UTC)") in lines
    assert ("Schedule", "weekday_report cron(0 3 ? * MON-FRI *) (UTC)") in lines
    warnings = [value for label, value in lines if label == "Warning"]
    assert any(w.startswith("misspelled is not scheduled: rate(1 minutes)") for w in warnings)


def test_a_schedule_runs_by_name_with_eventbridges_event(scheduled: Running) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    status, answer = invoke(scheduled, "every_minute")
    assert status == 200 and answer["ran"] == "every_minute"
    event = runs(scheduled)[-1]["event"]
    assert set(event) == {"version", "id", "detail-type", "source", "account", "time",
                          "region", "resources", "detail"}
    assert (event["detail-type"], event["source"], event["detail"]) == (
        "Scheduled Event", "aws.events", {})
    assert event["resources"] == [RULE_ARN]
    fired = datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before <= fired <= datetime.now(UTC)


def test_fields_given_with_the_invocation_replace_the_events(scheduled: Running) -> None:
    status, answer = invoke(scheduled, "every_minute", b'{"time": "2026-01-05T03:00:00Z"}')
    assert (status, answer["time"]) == (200, "2026-01-05T03:00:00Z")
    status, answer = invoke(scheduled, "every_minute", b"[1, 2]")
    assert status == 400 and "JSON object" in answer["message"]


def test_a_function_without_concurrency_is_throttled(scheduled: Running) -> None:
    """Reserved concurrency 0 turns a function off: Invoke answers 429 (Lambda API
    reference, Invoke: TooManyRequestsException with its Reason)."""
    status, answer = invoke(scheduled, "misspelled")
    assert status == 429
    assert answer["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert not [run for run in runs(scheduled) if run["function"] == "misspelled"]


def test_an_unknown_name_lists_what_can_be_invoked(scheduled: Running) -> None:
    status, answer = invoke(scheduled, "nope")
    assert status == 404
    assert "every_minute" in answer["message"] and "weekday_report" in answer["message"]


def test_the_command_line_invokes_a_schedule(scheduled: Running) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "switchboard_local", "invoke", "weekday_report",
         "--url", scheduled.gateway.page_url],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["resources"] == [RULE_ARN.replace("every_minute", "weekday_report")]


def test_the_scheduler_fires_on_the_expressions_times() -> None:
    """With an injected clock: each fire at its time, each with the rule's event."""
    clock = [datetime(2026, 3, 6, 2, 58, 30, tzinfo=UTC)]  # a Friday
    fired: list[tuple[str, dict[str, Any]]] = []
    warnings: list[str] = []
    sleeping: list[tuple[datetime, int, asyncio.Future[None]]] = []

    async def sleep(seconds: float) -> None:
        """Virtual time: wakes when the scenario moves the clock to this moment."""
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(sleeping, (clock[0] + timedelta(seconds=seconds), id(woken), woken))
        await woken

    async def record(name: str, event: Any) -> Outcome:
        fired.append((name, event))
        return Returned(None)

    async def scenario() -> None:
        scheduler = Scheduler(record, "eu-west-1", warnings.append, lambda: clock[0], sleep)
        scheduler.start([
            Scheduled("every_minute", "rate(1 minute)", "app-dev-every_minute-event"),
            Scheduled("report", "cron(0 3 ? * MON-FRI *)", "app-dev-report-event"),
            Scheduled("broken", "cron(nope)", "app-dev-broken-event"),
        ])
        while len([f for f in fired if f[0] == "report"]) < 2:
            for _ in range(5):
                await asyncio.sleep(0)  # every task runs until it sleeps again
            clock[0], _, woken = heapq.heappop(sleeping)
            woken.set_result(None)
        await scheduler.stop()

    asyncio.run(asyncio.wait_for(scenario(), WAIT))
    reports = [event for name, event in fired if name == "report"]
    assert [e["time"] for e in reports] == ["2026-03-06T03:00:00Z", "2026-03-09T03:00:00Z"]
    assert reports[0]["resources"] == [
        "arn:aws:events:eu-west-1:123456789012:rule/app-dev-report-event"
    ]
    minutes = [event["time"] for name, event in fired if name == "every_minute"][:3]
    assert minutes == ["2026-03-06T02:59:30Z", "2026-03-06T03:00:30Z", "2026-03-06T03:01:30Z"]
    assert warnings == ["broken is not scheduled: cron(nope): cron takes six fields, not 1"]

