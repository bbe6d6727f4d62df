"""Reading a Chalice project: its stages through Chalice's loader, its local settings, roles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from switchboard_local.gateway.environment import merge_functions
from switchboard_local.gateway.server import is_loopback
from switchboard_local.gateway.tokens import parse_roles
from switchboard_local.project import LocalSettings, ProjectError, read_stage
from tests.gateways import REPO


def test_this_repository_dev_stage() -> None:
    stage = read_stage(REPO, "dev")
    assert stage.api_gateway_stage == "dev" and stage.app_name == "switchboard"
    assert stage.environment["CONNECTIONS_TABLE"] == "switchboard-dev-connections"
    assert stage.environment["MAX_TEXT_BYTES"] == "32768"  # top level, under the stage
    assert stage.lambda_timeout("fanout_worker") == 60  # its lambda_functions entry
    assert stage.lambda_timeout("push") == 30  # the top-level lambda_timeout
    assert stage.function_prefix == "switchboard-dev-"


def write_project(root: Path, config: dict[str, object]) -> Path:
    (root / ".chalice").mkdir()
    (root / "app.py").write_text("")
    (root / ".chalice" / "config.json").write_text(json.dumps(config))
    return root


def test_stage_and_function_values_override_top_level(tmp_path: Path) -> None:
    stage = read_stage(
        write_project(tmp_path, {
            "version": "2.0",
            "app_name": "x",
            "environment_variables": {"A": "top", "B": "top"},
            "stages": {"dev": {
                "api_gateway_stage": "v2", "environment_variables": {"B": "dev"},
                "lambda_functions": {"worker": {"environment_variables": {"C": "worker"}}},
            }},
        }),
        "dev",
    )
    assert stage.api_gateway_stage == "v2"
    assert dict(stage.environment) == {"A": "top", "B": "dev"}
    assert stage.function_environment("worker") == {"A": "top", "B": "dev", "C": "worker"}


def test_defaults_without_a_config(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("")
    stage = read_stage(tmp_path, "dev")
    assert stage.api_gateway_stage == "api" and stage.environment == {}
    assert stage.app_name == tmp_path.name


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match=r"no app\.py"):
        read_stage(tmp_path, "dev")
    write_project(tmp_path, {"version": "2.0", "stages": {"prod": {}}})
    with pytest.raises(ProjectError, match=r"stage 'dev' is not in .*\(stages: prod\)"):
        read_stage(tmp_path, "dev")
    (tmp_path / ".chalice" / "config.json").write_text("{not json")
    with pytest.raises(ProjectError, match=r"config\.json"):
        read_stage(tmp_path, "dev")


def test_this_repository_declares_its_local_assets() -> None:
    settings = LocalSettings.read(REPO)
    assert settings.merge_template == "deploy/cloudformation.json"
    assert settings.page == "web"
    assert settings.token_signer == "chalicelib.identity:issue_token"
    assert settings.token_key_parameter == "TOKEN_SECRET_PARAMETER"


def test_a_project_without_pyproject_declares_nothing(tmp_path: Path) -> None:
    assert LocalSettings.read(tmp_path) == LocalSettings()


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ("page = 3", "page must be a string"),
        ('pages = "web"', "unknown key"),
        ('token-signer = "no_colon"', "module:function"),
        ('static = { "no-slash" = "f" }', "static maps"),
        ("[", "not valid TOML"),
    ],
)
def test_bad_local_settings_are_named(tmp_path: Path, table: str, error: str) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.switchboard-local]\n{table}\n")
    with pytest.raises(ProjectError, match=error):
        LocalSettings.read(tmp_path)


def test_functions_disagreeing_on_a_variable_are_reported() -> None:
    merged, warnings = merge_functions(
        {"BASE": "1"}, {"Push": {"T": "a", "U": "x"}, "Worker": {"T": "b", "U": "x"}}
    )
    assert merged == {"BASE": "1", "T": "a", "U": "x"}
    assert warnings == ["T is 'a' for Push but 'b' for Worker: all functions share one "
                        "process, so all get 'a'"]


def test_roles_repeated_or_comma_separated() -> None:
    assert parse_roles(["admin,ops", "x", ""]) == ("admin", "ops", "x")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
     ("0.0.0.0", False), ("192.0.2.10", False), ("example.com", False)],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
