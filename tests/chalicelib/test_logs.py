"""Logs an operator can use, and that never leak: one JSON line per event, no secrets.

A session of connects, messages, failures and disconnects runs with tokens and
message texts that are easy to spot; everything logged at the production level
(INFO), formatted as a handler would (tracebacks included), must contain
neither — while each handled event left exactly one structured line.
"""

from __future__ import annotations

import logging
from typing import Any

from chalicelib.registry import table_definition
from chalicelib.runtime import Services
from switchboard_local.testing import WebsocketTestClient
from tests.chalicelib.conftest import event_lines
from tests.fresh_interpreter import run_fresh

SECRET_TEXT = "zebra-quartz-7f3a9c-do-not-log"
EVENT_FIELDS = {"route", "connectionId", "outcome", "durationMs"}
MESSAGE_FIELDS = EVENT_FIELDS | {"action", "delivered", "failed", "gone"}


def formatted(records: list[logging.LogRecord]) -> str:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(record) for record in records)


def run_session(
    client: WebsocketTestClient, services: Services, dynamodb: Any, token: Any
) -> tuple[list[str], int]:
    """Every kind of event and failure, carrying the secrets; returns tokens and event count."""
    tokens = [token("alice"), token("bob"), token("root", "admin")]
    alice, bob, root = (client.connect(query={"token": t}) for t in tokens)
    forged = tokens[0][:-8] + "AAAAAAAA"
    refused = [client.connect(query={"token": forged}), client.connect(query={"token": "x" * 5000})]
    assert [c.status for c in refused] == [403, 403]
    text = f"{SECRET_TEXT} {tokens[1]}"
    frames: list[dict[str, Any] | str] = [
        {"action": "sendMessage", "targetUserId": "bob", "text": text},
        {"action": "joinRoom", "room": "lobby"},
        {"action": "sendToRoom", "room": "lobby", "text": text},
        {"action": "broadcastAll", "text": text},
        {"action": "sendMessage", "targetUserId": "bob", "text": text * 2000},
        f'{{"action": "{SECRET_TEXT}", "text": "{text}"}}',
        f"not json {text}",
        {"action": SECRET_TEXT * 3},
    ]
    for frame in frames:
        alice.send(frame)
    client.emulator.inject(bob.id, 500)
    root.send({"action": "broadcastAll", "text": text})
    table = services.settings.connections_table
    dynamodb.delete_table(TableName=table)
    alice.send({"action": "sendMessage", "targetUserId": "bob", "text": text})
    bob.disconnect()
    dynamodb.create_table(**table_definition(table))
    root.disconnect()
    alice.disconnect()
    handled = 5 + len(frames) + 1 + 1 + 3
    return tokens, handled


def test_no_token_and_no_text_is_ever_logged(
    client: WebsocketTestClient, services: Services, dynamodb: Any, token: Any,
    all_logs: list[logging.LogRecord],
) -> None:
    tokens, _ = run_session(client, services, dynamodb, token)
    logged = formatted(all_logs)
    assert "Traceback" in logged, "the session should have logged a storage failure"
    assert SECRET_TEXT not in logged
    for secret in tokens:
        for part in secret.split("."):
            assert part not in logged


def test_one_structured_line_per_handled_event(
    client: WebsocketTestClient, services: Services, dynamodb: Any, token: Any,
    all_logs: list[logging.LogRecord],
) -> None:
    _, handled = run_session(client, services, dynamodb, token)
    lines = event_lines(all_logs)
    assert len(lines) == handled
    for line in lines:
        assert set(line) >= EVENT_FIELDS, line
        assert isinstance(line["durationMs"], (int, float))
    messages = [line for line in lines if line["route"] == "$default" and "action" in line]
    assert all(set(line) >= MESSAGE_FIELDS for line in messages if line["outcome"] == "ok")
    broadcasts = [line for line in messages if line["action"] == "broadcastAll"]
    assert any(line["failed"] == 1 for line in broadcasts), "a 500 must show in the line"
    outcomes = {line["outcome"] for line in lines}
    assert {"ok", "refused", "error"} <= outcomes


def test_event_lines_survive_chalices_logger_setup_in_a_fresh_process() -> None:
    """Chalice sets its app logger ("switchboard") to ERROR; ours must still log INFO.

    Found by this suite: before, every event line and delivery warning was dropped.
    """
    probe = (
        "import logging, app\n"
        "events = logging.getLogger('switchboard.events')\n"
        "delivery = logging.getLogger('switchboard.delivery')\n"
        "assert events.isEnabledFor(logging.INFO), events.getEffectiveLevel()\n"
        "assert delivery.isEnabledFor(logging.WARNING), delivery.getEffectiveLevel()\n"
        "assert not logging.getLogger('botocore').isEnabledFor(logging.DEBUG)\n"
    )
    result = run_fresh(probe)
    assert result.returncode == 0, result.stderr
