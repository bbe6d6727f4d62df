"""What a Chalice project says about itself in ``.chalice/config.json``.

The gateway runs the app with the environment a deployed stage would have:
the top-level ``environment_variables`` overlaid by the stage's, and the
``api_gateway_stage`` that names the URL path (Chalice's default is ``api``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_API_STAGE = "api"
DEFAULT_REGION = "us-east-1"


class ConfigError(ValueError):
    """The project or its configuration cannot be used; the message says why."""


@dataclass(frozen=True)
class ProjectConfig:
    """The parts of a Chalice project's configuration the gateway needs."""

    project_dir: Path
    chalice_stage: str
    app_name: str
    api_gateway_stage: str
    environment: Mapping[str, str] = field(default_factory=dict)


def load_project_config(project_dir: str | os.PathLike[str], chalice_stage: str) -> ProjectConfig:
    """Read ``.chalice/config.json`` as ``chalice deploy --stage`` would."""
    root = Path(project_dir).resolve()
    if not (root / "app.py").is_file():
        raise ConfigError(f"{root} is not a Chalice project: it has no app.py")
    raw = _read_json(root / ".chalice" / "config.json")
    stages = raw.get("stages") or {}
    if stages and chalice_stage not in stages:
        raise ConfigError(
            f"stage {chalice_stage!r} is not in .chalice/config.json "
            f"(stages: {', '.join(sorted(stages))})"
        )
    stage = stages.get(chalice_stage) or {}
    environment = {
        **_strings(raw.get("environment_variables")),
        **_strings(stage.get("environment_variables")),
    }
    return ProjectConfig(
        project_dir=root,
        chalice_stage=chalice_stage,
        app_name=str(stage.get("app_name") or raw.get("app_name") or root.name),
        api_gateway_stage=str(
            stage.get("api_gateway_stage") or raw.get("api_gateway_stage") or DEFAULT_API_STAGE
        ),
        environment=environment,
    )


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ConfigError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return data


def _strings(variables: Any) -> dict[str, str]:
    return {str(name): str(value) for name, value in (variables or {}).items()}


def local_aws_defaults() -> dict[str, str]:
    """Variables the gateway sets only when absent: a region, and dummy credentials.

    Real credentials are never replaced; dummy ones exist so botocore can sign
    requests to the local store and management API without a profile.
    """
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    defaults = {"AWS_REGION": region, "AWS_DEFAULT_REGION": region}
    if not _has_credentials():
        defaults.update(AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local")
    return {name: value for name, value in defaults.items() if not os.environ.get(name)}


def _has_credentials() -> bool:
    return bool(
        os.environ.get("AWS_ACCESS_KEY_ID")
        or os.environ.get("AWS_PROFILE")
        or os.environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    )


@contextmanager
def process_environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Set variables for the gateway's lifetime and restore the previous values after.

    Handlers run in this process (as in a Lambda container) and read
    ``os.environ``; restoring matters when the gateway is embedded in tests.
    """
    previous = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
