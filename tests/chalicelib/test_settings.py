"""Stage settings: defaults, validation, and the stages shipped in .chalice/config.json."""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.ratelimit import Rate
from chalicelib.settings import Settings, SettingsError, fanout_worker_concurrency
from switchboard_local.project import read_stage

BASE = {"CONNECTIONS_TABLE": "t", "TOKEN_SECRET": "s"}
PROJECT = Path(__file__).resolve().parents[2]
STAGES = ("dev", "prod")


def stage_environment(stage: str) -> dict[str, str]:
    return dict(read_stage(PROJECT, stage).environment)


def test_defaults() -> None:
    settings = Settings.from_environ(BASE)
    assert settings.connection_ttl_seconds == 7500
    assert settings.max_text_bytes == 32768
    assert settings.max_rooms_per_connection == 100
    assert settings.token_issuer is None
    assert settings.default_room_permissions == frozenset()
    assert settings.history_ttl_seconds == 86400
    assert settings.history_max_messages == 1000
    assert settings.recovery_max_messages == 100
    assert settings.idempotency_window_seconds == 600
    assert settings.token_expiry_grace_seconds == 0
    assert settings.presence_events_max_members == 100
    assert settings.occupancy_interval_seconds == 2
    assert settings.token_secret_ttl_seconds == 300


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"TOKEN_SECRET": "s"}, "CONNECTIONS_TABLE"),
        ({**BASE, "CONNECTION_TTL_SECONDS": "soon"}, "CONNECTION_TTL_SECONDS"),
        ({**BASE, "MAX_TEXT_BYTES": "-1"}, "MAX_TEXT_BYTES"),
        ({**BASE, "MAX_ROOMS_PER_CONNECTION": "0"}, "MAX_ROOMS_PER_CONNECTION"),
        ({"CONNECTIONS_TABLE": "t"}, "TOKEN_SECRET"),
        ({**BASE, "TOKEN_SECRET_PARAMETER": "/p"}, "TOKEN_SECRET_PARAMETER"),
        ({**BASE, "DEFAULT_ROOM_PERMISSIONS": "join,fly"}, "DEFAULT_ROOM_PERMISSIONS"),
        ({**BASE, "HISTORY_TTL_SECONDS": "0"}, "HISTORY_TTL_SECONDS"),
        ({**BASE, "HISTORY_MAX_MESSAGES": "-1"}, "HISTORY_MAX_MESSAGES"),
        ({**BASE, "HISTORY_MAX_MESSAGES": "many"}, "HISTORY_MAX_MESSAGES"),
        ({**BASE, "RECOVERY_MAX_MESSAGES": "0"}, "RECOVERY_MAX_MESSAGES"),
        ({**BASE, "RECOVERY_MAX_MESSAGES": "1001"}, "RECOVERY_MAX_MESSAGES"),
        ({**BASE, "DEFAULT_ACTION_RATE": "fast"}, "DEFAULT_ACTION_RATE"),
        ({**BASE, "DEFAULT_ACTION_RATE": "0/s"}, "DEFAULT_ACTION_RATE"),
        ({**BASE, "IDEMPOTENCY_WINDOW_SECONDS": "0"}, "IDEMPOTENCY_WINDOW_SECONDS"),
        ({**BASE, "IDEMPOTENCY_WINDOW_SECONDS": "86401"}, "IDEMPOTENCY_WINDOW_SECONDS"),
        ({**BASE, "TOKEN_EXPIRY_GRACE_SECONDS": "-1"}, "TOKEN_EXPIRY_GRACE_SECONDS"),
        ({**BASE, "TOKEN_EXPIRY_GRACE_SECONDS": "61"}, "TOKEN_EXPIRY_GRACE_SECONDS"),
        ({**BASE, "TOKEN_EXPIRY_GRACE_SECONDS": "soon"}, "TOKEN_EXPIRY_GRACE_SECONDS"),
        ({**BASE, "PRESENCE_EVENTS_MAX_MEMBERS": "-1"}, "PRESENCE_EVENTS_MAX_MEMBERS"),
        ({**BASE, "OCCUPANCY_INTERVAL_SECONDS": "61"}, "OCCUPANCY_INTERVAL_SECONDS"),
        ({**BASE, "TOKEN_SECRET_TTL_SECONDS": "0"}, "TOKEN_SECRET_TTL_SECONDS"),
    ],
)
def test_invalid_settings_name_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_environ(environ)


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_names_a_parameter_and_carries_no_key(stage: str) -> None:
    environ = stage_environment(stage)
    assert "TOKEN_SECRET" not in environ
    settings = Settings.from_environ(environ)
    assert settings.token_secret is None
    assert settings.token_secret_parameter == f"/switchboard/{stage}/token-secret"
    assert settings.connections_table.endswith(f"{stage}-connections")


def test_the_dev_stage_grants_every_room_permission_by_default_and_prod_none() -> None:
    dev = Settings.from_environ(stage_environment("dev"))
    assert dev.default_room_permissions == {"join", "publish", "presence", "history"}
    assert (dev.history_ttl_seconds, dev.history_max_messages) == (86400, 1000)
    assert Settings.from_environ(stage_environment("prod")).default_room_permissions == set()


def test_permissions_and_history_settings_parse() -> None:
    settings = Settings.from_environ({
        **BASE, "DEFAULT_ROOM_PERMISSIONS": " join , history,", "HISTORY_MAX_MESSAGES": "0",
        "RECOVERY_MAX_MESSAGES": "1000",
    })
    assert settings.default_room_permissions == {"join", "history"}
    assert settings.history_max_messages == 0
    assert settings.recovery_max_messages == 1000


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_paces_its_workers_within_the_stage_budget(stage: str) -> None:
    """tests/deploy/test_project.py checks the subscription caps the workers at this."""
    settings = Settings.from_environ(stage_environment(stage))
    assert settings.invocation_rps * settings.fanout_worker_concurrency == settings.management_rps
    assert settings.management_transport == "lean"


def test_idempotency_window_and_expiry_grace_parse() -> None:
    settings = Settings.from_environ(
        {**BASE, "IDEMPOTENCY_WINDOW_SECONDS": "60", "TOKEN_EXPIRY_GRACE_SECONDS": "60"}
    )
    assert (settings.idempotency_window_seconds, settings.token_expiry_grace_seconds) == (60, 60)


@pytest.mark.parametrize("value", ["1", "1001", "five"])
def test_the_worker_concurrency_is_what_an_sqs_subscription_accepts(value: str) -> None:
    """An SQS subscription's maximum concurrency is 2 to 1000 (AWS Lambda's
    ScalingConfig); a stage asking for another fails on import, naming the variable."""
    with pytest.raises(SettingsError, match="FANOUT_WORKER_CONCURRENCY"):
        Settings.from_environ({**BASE, "FANOUT_WORKER_CONCURRENCY": value})
    with pytest.raises(SettingsError, match="FANOUT_WORKER_CONCURRENCY"):
        fanout_worker_concurrency({"FANOUT_WORKER_CONCURRENCY": value})


@pytest.mark.parametrize(
    ("value", "rate"),
    [(None, Rate(600, 60)), ("20/s", Rate(20, 1)), ("100/min per user", Rate(100, 60, "user")),
     ("off", None), ("OFF", None)],
)
def test_the_default_action_rate(value: str | None, rate: Rate | None) -> None:
    environ = BASE if value is None else {**BASE, "DEFAULT_ACTION_RATE": value}
    assert Settings.from_environ(environ).default_action_rate == rate
