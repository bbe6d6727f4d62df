"""Chalice projects packaged offline: a copy of the project and an environment without network.

``chalice package`` and ``chalice deploy`` build the deployment package with
pip. Offline is enforced, not assumed: pip may use only a local wheel
directory (``PIP_NO_INDEX``, no pip config) and every HTTP(S) request goes to
a proxy on a closed loopback port, except to the loopback addresses a caller
names (a local AWS stand-in). The wheels of ``requirements.txt`` (and what
they require) are rebuilt from the packages installed in this virtual
environment (all pure Python).
"""

from __future__ import annotations

import os
import shutil
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def wheel_from_installed(distribution_name: str, directory: Path) -> Path:
    """Repack an installed pure-Python distribution as a wheel, without the network."""
    dist = metadata.distribution(distribution_name)
    wheel_meta = dist.read_text("WHEEL") or ""
    tag = next(line.split(": ")[1] for line in wheel_meta.splitlines() if line.startswith("Tag:"))
    name = dist.metadata["Name"].replace("-", "_")
    target = directory / f"{name}-{dist.version}-{tag}.whl"
    root = Path(str(dist.locate_file("")))
    with zipfile.ZipFile(target, "w") as wheel:
        for file in dist.files or []:
            if "__pycache__" not in file.parts and not str(file).startswith(".."):
                wheel.write(root / file, str(file))
    return target


def requirement_closure(*files: Path) -> list[str]:
    """The distributions these requirements files name and everything they require, by
    name (extras included where named, as pip installs them)."""
    pending: list[Requirement] = []
    for path in files:
        lines = [line.strip() for line in path.read_text().splitlines()]
        pending += [Requirement(line) for line in lines if line and line[0] not in "#-"]
    found: dict[str, None] = {}
    while pending:
        requirement = pending.pop()
        extras = requirement.extras
        if requirement.name.lower() in (known.lower() for known in found) and not extras:
            continue
        found.setdefault(requirement.name, None)
        for text in metadata.requires(requirement.name) or []:
            needed = Requirement(text)
            if needed.marker is None or any(
                needed.marker.evaluate({"extra": extra}) for extra in ("", *extras)
            ):
                pending.append(needed)
    return list(found)


def runtime_distributions() -> list[str]:
    """``requirements.txt`` and everything it requires (no extras), by name."""
    return requirement_closure(PROJECT / "requirements.txt")


def offline_env(wheels: Path, reachable: str = "") -> dict[str, str]:
    """No AWS settings but fake credentials and a region; ``reachable``: NO_PROXY hosts."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(wheels),
        PIP_CONFIG_FILE=os.devnull,
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        NO_PROXY=reachable,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def offline_project(root: Path) -> tuple[Path, dict[str, str]]:
    """A copy of what Chalice deploys (and deploy/), under ``root``, and its offline env."""
    copy = root / "switchboard"
    copy.mkdir()
    for name in ("app.py", "requirements.txt"):
        shutil.copy(PROJECT / name, copy / name)
    for name in ("chalicelib", "deploy"):
        shutil.copytree(PROJECT / name, copy / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    (copy / ".chalice").mkdir()
    for file in (PROJECT / ".chalice").glob("*.json"):
        shutil.copy(file, copy / ".chalice" / file.name)
    wheels = root / "wheels"
    wheels.mkdir()
    for name in runtime_distributions():
        wheel_from_installed(name, wheels)
    return copy, offline_env(wheels)
