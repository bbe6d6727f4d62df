"""The ``switchboard-local`` command as a user installs it, and sample projects to run it on.

The package is built as a wheel from this checkout (``pip wheel``, offline,
with the pinned ``flit-core``) and installed with ``--no-deps`` into a fresh
virtual environment. That environment reaches its dependencies through a
path line pointing at this test environment's ``site-packages`` (no ``.pth``
there is processed, so not this checkout, and not an editable install of it);
the command then runs from each sample project's own directory. What this
proves: the wheel carries everything the command needs (code, the frame
console), its entry point works, and nothing it imports comes from this
checkout — ``chalicelib`` is not importable there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROJECTS = Path(__file__).resolve().parent / "projects"
BANNER_LABELS = {
    "WebSocket", "Management", "REST API", "Chat page", "Console", "Tokens", "Invoke", "SQS",
    "Schedule", "Functions", "Store", "Created", "State", "Reload", "Warning", "Try", "Exposed",
}


@dataclass(frozen=True)
class Installed:
    bin: Path

    @property
    def command(self) -> str:
        return str(self.bin / "switchboard-local")

    @property
    def python(self) -> str:
        return str(self.bin / "python")


def install(root: Path, source: Path = REPO, wheel: str = "switchboard_local-*.whl") -> Installed:
    """Build ``source``'s wheel and install it alone into a fresh environment under ``root``."""
    wheels = root / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--wheel-dir", str(wheels), str(source)],
        check=True, capture_output=True, timeout=300,
    )
    [built] = wheels.glob(wheel)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "--quiet", "--no-deps", "--no-index", str(built)],
        check=True, capture_output=True, timeout=300,
    )
    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    purelib = subprocess.run(
        [str(venv / "bin" / "python"), "-c", where],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip()
    Path(purelib, "test-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return Installed(venv / "bin")


def switchboard_copy(into: Path, threshold: int | None = None) -> Path:
    """This project, copied; with a fan-out threshold of its own when one is given."""
    project = into / "switchboard"
    project.mkdir()
    for name in ("app.py", "pyproject.toml"):
        shutil.copy(REPO / name, project / name)
    for name in ("chalicelib", "deploy", ".chalice", "web"):
        shutil.copytree(REPO / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    if threshold is not None:
        config_path = project / ".chalice" / "config.json"
        config = json.loads(config_path.read_text())
        config["environment_variables"]["FANOUT_QUEUE_THRESHOLD"] = str(threshold)
        config_path.write_text(json.dumps(config))
    return project


def copy_project(name: str, into: Path) -> Path:
    target = into / name
    shutil.copytree(PROJECTS / name, target)
    return target


def clean_env(**extra: str) -> dict[str, str]:
    """This environment less anything that points at this checkout or at a store."""
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("AWS_ENDPOINT_URL", "PYTHON", "LOCAL_GATEWAY_"))
        and key not in ("HOST", "PORT")
    }
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


@dataclass
class Served:
    """A running ``switchboard-local`` process and what its banner said."""

    process: subprocess.Popen[str]
    banner: dict[str, list[str]] = field(default_factory=dict)
    output: list[str] = field(default_factory=list)

    def first(self, label: str) -> str:
        return self.banner[label][0]

    @property
    def base(self) -> str:
        """``http://HOST:PORT`` of the gateway."""
        for values in self.banner.values():
            for value in values:
                found = re.search(r"(?:ws|http)://(127\.0\.0\.1:\d+)", value)
                if found:
                    return f"http://{found.group(1)}"
        raise AssertionError(f"no URL in the banner {self.banner}")

    def stop(self) -> str:
        """SIGINT, as Ctrl-C (to the process group); returns the rest of the output."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        rest, _ = self.process.communicate(timeout=60)
        return rest


@contextmanager
def serve(installed: Installed, project: Path, *args: str) -> Iterator[Served]:
    """Start the installed command in ``project``; stop it with SIGINT afterwards."""
    with serve_command([installed.command, "--port", "0", *args], project, clean_env()) as served:
        yield served


@contextmanager
def serve_command(argv: list[str], cwd: Path, env: dict[str, str]) -> Iterator[Served]:
    """Start a command that serves a gateway, read its banner; Ctrl-C (SIGINT) afterwards.

    The command gets a process group of its own, and the signal goes to the
    group, as a terminal's Ctrl-C does: ``make run`` passes it on that way.
    """
    process = subprocess.Popen(
        argv, cwd=cwd, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
        start_new_session=True,
    )
    served = Served(process)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            served.output.append(line)
            if line.startswith("Press Ctrl-C"):
                break
            label = line[:10].strip()
            if label in BANNER_LABELS:
                served.banner.setdefault(label, []).append(line[11:].strip())
        else:
            raise AssertionError("the gateway exited before it served:\n" + "".join(served.output))
        yield served
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
