"""The one shape of every function: a bound deadline, one log line, metrics written last."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from chalicelib import entry, invocation, metrics
from chalicelib.entry import Call


class Context:
    """What Lambda passes as the context: the remaining time is what matters here."""

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "switchboard.events"]


def test_the_handler_gets_the_bound_deadline_and_its_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[Call] = []

    def handler(call: Call) -> str:
        assert invocation.current() is call.deadline
        seen.append(call)
        call.log.set(answer="yes")
        return "done"

    with caplog.at_level(logging.INFO, "switchboard.events"):
        assert entry.run("push", "-", Context(), handler) == "done"
    [call] = seen
    assert 8.5 < call.deadline.remaining() <= 9.0  # the Lambda's time less the reserve
    assert invocation.current() is None
    [line] = lines(caplog)
    assert (line["route"], line["connectionId"], line["answer"], line["outcome"]) == (
        "push", "-", "yes", "ok"
    )


def test_metrics_are_written_and_the_line_logged_when_the_handler_raises(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    capsys.readouterr()

    def handler(call: Call) -> None:
        metrics.record(metrics.DISCONNECTS)
        raise RuntimeError("boom")

    with caplog.at_level(logging.INFO, "switchboard.events"), pytest.raises(RuntimeError):
        entry.run("$disconnect", "abc=", Context(), handler)
    [line] = lines(caplog)
    assert (line["route"], line["outcome"]) == ("$disconnect", "exception")
    documents = [json.loads(text) for text in capsys.readouterr().out.splitlines()
                 if text.startswith("{")]
    assert [d["Disconnects"] for d in documents if "Disconnects" in d] == [[1.0]]
    assert metrics.RECORDER.take() == {}, "the flush took what was recorded"
