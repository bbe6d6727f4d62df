"""Reading a Chalice project's configuration, table specs and roles: no server needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from switchboard_local.gateway.config import ConfigError, load_project_config
from switchboard_local.gateway.store import TableSpec, default_specs
from switchboard_local.gateway.tokens import parse_roles

from .conftest import REPO


def test_this_repository_dev_stage() -> None:
    project = load_project_config(REPO, "dev")
    assert project.api_gateway_stage == "dev" and project.app_name == "switchboard"
    assert project.environment["CONNECTIONS_TABLE"] == "switchboard-dev-connections"
    assert project.environment["MAX_TEXT_BYTES"] == "32768"  # top level, under the stage


def write_project(root: Path, config: dict[str, object]) -> Path:
    (root / ".chalice").mkdir()
    (root / "app.py").write_text("")
    (root / ".chalice" / "config.json").write_text(json.dumps(config))
    return root


def test_stage_values_override_top_level(tmp_path: Path) -> None:
    project = load_project_config(
        write_project(tmp_path, {
            "app_name": "x",
            "environment_variables": {"A": "top", "B": "top"},
            "stages": {"dev": {"api_gateway_stage": "v2", "environment_variables": {"B": "dev"}}},
        }),
        "dev",
    )
    assert project.api_gateway_stage == "v2"
    assert dict(project.environment) == {"A": "top", "B": "dev"}


def test_defaults_without_a_config(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("")
    project = load_project_config(tmp_path, "dev")
    assert project.api_gateway_stage == "api" and project.environment == {}


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no app\.py"):
        load_project_config(tmp_path, "dev")
    write_project(tmp_path, {"stages": {"prod": {}}})
    with pytest.raises(ConfigError, match="stage 'dev'"):
        load_project_config(tmp_path, "dev")


def test_table_specs() -> None:
    spec = TableSpec.parse("$CONNECTIONS_TABLE=chalicelib.registry:table_definition")
    assert spec.resolve_name({"CONNECTIONS_TABLE": "t1"}) == "t1"
    assert spec.resolve_name({}) is None
    assert TableSpec.parse("fixed=m:f").resolve_name({}) == "fixed"
    assert spec.definition("t1")["TableName"] == "t1"
    with pytest.raises(ConfigError):
        TableSpec.parse("no-function")


def test_default_specs_apply_only_when_the_variable_is_set() -> None:
    assert default_specs({}) == []
    assert len(default_specs({"CONNECTIONS_TABLE": "t"})) == 1


def test_roles_repeated_or_comma_separated() -> None:
    assert parse_roles(["admin,ops", "x", ""]) == ("admin", "ops", "x")
