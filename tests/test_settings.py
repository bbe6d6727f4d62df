"""Stage settings: defaults, validation, and the stages shipped in .chalice/config.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chalicelib.settings import Settings, SettingsError

BASE = {"CONNECTIONS_TABLE": "t", "TOKEN_SECRET": "s"}
CONFIG = json.loads((Path(__file__).parent.parent / ".chalice" / "config.json").read_text())


def stage_environment(stage: str) -> dict[str, str]:
    return {**CONFIG["environment_variables"], **CONFIG["stages"][stage]["environment_variables"]}


def test_defaults() -> None:
    settings = Settings.from_environ(BASE)
    assert settings.connection_ttl_seconds == 7500
    assert settings.max_text_bytes == 32768
    assert settings.max_rooms_per_connection == 100
    assert settings.token_issuer is None


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"TOKEN_SECRET": "s"}, "CONNECTIONS_TABLE"),
        ({**BASE, "CONNECTION_TTL_SECONDS": "soon"}, "CONNECTION_TTL_SECONDS"),
        ({**BASE, "MAX_TEXT_BYTES": "-1"}, "MAX_TEXT_BYTES"),
        ({**BASE, "MAX_ROOMS_PER_CONNECTION": "0"}, "MAX_ROOMS_PER_CONNECTION"),
        ({"CONNECTIONS_TABLE": "t"}, "TOKEN_SECRET"),
        ({**BASE, "TOKEN_SECRET_PARAMETER": "/p"}, "TOKEN_SECRET_PARAMETER"),
    ],
)
def test_invalid_settings_name_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_environ(environ)


def test_the_dev_stage_parses_with_its_development_key() -> None:
    settings = Settings.from_environ(stage_environment("dev"))
    assert settings.token_secret
    assert settings.connections_table.endswith("dev-connections")


def test_the_prod_stage_names_a_parameter_and_carries_no_key() -> None:
    environ = stage_environment("prod")
    assert "TOKEN_SECRET" not in environ
    settings = Settings.from_environ(environ)
    assert settings.token_secret is None
    assert settings.token_secret_parameter


@pytest.mark.parametrize("stage", sorted(CONFIG["stages"]))
def test_each_stage_reserves_the_worker_concurrency_its_pacing_assumes(stage: str) -> None:
    functions = {**CONFIG.get("lambda_functions", {}),
                 **CONFIG["stages"][stage].get("lambda_functions", {})}
    environ = stage_environment(stage)
    environ.pop("TOKEN_SECRET_PARAMETER", None)
    settings = Settings.from_environ(environ | {"TOKEN_SECRET": "s"})
    assert functions["fanout_worker"]["reserved_concurrency"] == settings.fanout_worker_concurrency
    assert settings.invocation_rps * settings.fanout_worker_concurrency == settings.management_rps
    assert settings.management_transport == "lean"
