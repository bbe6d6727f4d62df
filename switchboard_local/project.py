"""A Chalice project as the local gateway reads it: its one reader of ``.chalice/config.json``.

Stages are read by Chalice's own loader (``CLIFactory.create_config_obj``, as
``chalice.test.Client`` does), so every value resolves as ``chalice deploy``
and ``chalice package`` resolve it: top level, then the stage, then the
stage's ``lambda_functions`` entry for one function. The gateway and its
tests read stages here; ``deploy/`` (which may not import this package) reads
them through the same Chalice loader in ``deploy/project.py``.

What the gateway needs beyond Chalice's configuration — the page a project
serves locally, its token signer, its merge template — is declared in the
project's ``pyproject.toml``::

    [tool.switchboard-local]
    merge-template = "deploy/cloudformation.json"
    page = "web"                                  # served at / and /_local/page/
    static = { "/_local/switchboard.js" = "clients/js/switchboard.js" }
    token-signer = "chalicelib.identity:issue_token"
    token-key-parameter = "TOKEN_SECRET_PARAMETER"

Nothing is assumed for a project that declares nothing.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalice.cli.factory import CLIFactory
from chalice.config import Config

DEFAULT_API_STAGE = "api"
TOOL_TABLE = "switchboard-local"


class ProjectError(ValueError):
    """The project or its configuration cannot be used; the message says why."""


@dataclass(frozen=True)
class ChaliceStage:
    """One stage of a Chalice project, as Chalice resolves it."""

    project_dir: Path
    name: str
    app_name: str
    api_gateway_stage: str
    environment: Mapping[str, str]
    """The stage's variables: top level overlaid by the stage's."""
    config: Config = field(repr=False)

    def function(self, function_name: str) -> Config:
        """The configuration scoped to one function (its ``lambda_functions`` entry)."""
        return self.config.scope(self.name, function_name)

    def function_environment(self, function_name: str) -> dict[str, str]:
        return _strings(self.function(function_name).environment_variables)

    def lambda_timeout(self, function_name: str) -> float | None:
        timeout = self.function(function_name).lambda_timeout
        return None if timeout is None else float(timeout)

    @property
    def function_prefix(self) -> str:
        """``<app>-<stage>-``: what ``chalice deploy`` puts before each function's name."""
        return f"{self.app_name}-{self.name}-"


def read_stage(project_dir: str | os.PathLike[str], stage: str) -> ChaliceStage:
    """Read one stage; a project without ``.chalice/config.json`` gets Chalice's defaults."""
    root = Path(project_dir).resolve()
    if not (root / "app.py").is_file():
        raise ProjectError(f"{root} is not a Chalice project: it has no app.py")
    factory = CLIFactory(str(root))
    if (root / ".chalice" / "config.json").is_file():
        try:
            config = factory.create_config_obj(chalice_stage_name=stage)
        except (RuntimeError, ValueError) as error:
            raise ProjectError(f"{root / '.chalice' / 'config.json'}: {error}") from None
        stages = config.config_from_disk.get("stages") or {}
        if stages and stage not in stages:
            raise ProjectError(
                f"stage {stage!r} is not in .chalice/config.json "
                f"(stages: {', '.join(sorted(stages))})"
            )
    else:
        config = Config.create(
            chalice_stage=stage, project_dir=str(root), app_name=root.name,
            api_gateway_stage=DEFAULT_API_STAGE,
        )
    return ChaliceStage(
        project_dir=root,
        name=stage,
        app_name=str(config.app_name or root.name),
        api_gateway_stage=str(config.api_gateway_stage or DEFAULT_API_STAGE),
        environment=_strings(config.environment_variables),
        config=config,
    )


def _strings(variables: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(name): str(value) for name, value in (variables or {}).items()}


@dataclass(frozen=True)
class LocalSettings:
    """``[tool.switchboard-local]`` of the project's ``pyproject.toml``."""

    merge_template: str | None = None
    page: str | None = None
    static: Mapping[str, str] = field(default_factory=dict)
    token_signer: str | None = None
    token_key_parameter: str | None = None
    """The stage variable that names the SSM parameter holding the signing keys."""

    @classmethod
    def read(cls, project_dir: Path) -> LocalSettings:
        path = project_dir / "pyproject.toml"
        if not path.is_file():
            return cls()
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as error:
            raise ProjectError(f"{path} is not valid TOML: {error}") from None
        settings = table.get("tool", {}).get(TOOL_TABLE, {})
        known = {"merge-template", "page", "static", "token-signer", "token-key-parameter"}
        unknown = set(settings) - known
        if unknown:
            raise ProjectError(
                f"{path}: unknown key(s) in [tool.{TOOL_TABLE}]: {', '.join(sorted(unknown))} "
                f"(known: {', '.join(sorted(known))})"
            )
        static = settings.get("static", {})
        if not isinstance(static, dict) or not all(
            isinstance(k, str) and k.startswith("/") and isinstance(v, str)
            for k, v in static.items()
        ):
            raise ProjectError(f"{path}: [tool.{TOOL_TABLE}] static maps /url/paths to files")
        values = {name: settings.get(name) for name in known - {"static"}}
        for name, value in values.items():
            if value is not None and not isinstance(value, str):
                raise ProjectError(f"{path}: [tool.{TOOL_TABLE}] {name} must be a string")
        signer = values["token-signer"]
        if signer is not None and ":" not in signer:
            raise ProjectError(f"{path}: token-signer must look like module:function")
        return cls(
            merge_template=values["merge-template"],
            page=values["page"],
            static=dict(static),
            token_signer=signer,
            token_key_parameter=values["token-key-parameter"],
        )
