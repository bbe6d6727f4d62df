"""Both clients build as releasable packages, offline, and install alone.

The Python client: its wheel and sdist are built with the pinned ``flit-core``
(no index); the wheel is installed with ``--no-deps`` into a fresh environment
whose dependencies come from this test environment through a path line (see
``tests/switchboard_local/installed.py``), so the client imports from the wheel
and nothing of this repository — not ``chalicelib``, not ``switchboard_local`` —
is importable next to it. The JavaScript client: ``npm pack``, then the tarball
installed offline into an empty project that imports it by name.
"""

from __future__ import annotations

import email.parser
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.switchboard_local.installed import REPO, clean_env, install

from .node import node, npm

PYTHON_CLIENT = REPO / "clients" / "python"
JS_CLIENT = REPO / "clients" / "js"

PROBE = """
import importlib.metadata, importlib.util, json
import switchboard_client
from switchboard_client import Client, Message, Options, SwitchboardError
print(json.dumps({
    "file": switchboard_client.__file__,
    "requires": importlib.metadata.requires("switchboard-client"),
    "typed": importlib.util.find_spec("switchboard_client").submodule_search_locations[0],
    "others": [n for n in ("chalicelib", "switchboard_local", "app")
               if importlib.util.find_spec(n) is not None],
    "client": Client("ws://127.0.0.1:1/dev", token="t", options=Options()).state,
}))
"""


def test_the_python_client_installs_alone_from_the_checkout(tmp_path: Path) -> None:
    installed = install(tmp_path, PYTHON_CLIENT, "switchboard_client-*.whl")
    probe = subprocess.run(
        [installed.python, "-c", PROBE], cwd=tmp_path, env=clean_env(),
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert found["file"].startswith(str(tmp_path / "venv"))
    required = [r.split(">")[0] for r in found["requires"] if "extra ==" not in r]
    assert required == ["websockets"]
    assert [r.split(">")[0] for r in found["requires"] if 'extra == "server"' in r] == ["boto3"]
    assert Path(found["typed"], "py.typed").is_file()
    assert found["others"] == []
    assert found["client"] == "idle"


def build_python(kind: str, into: Path) -> Path:
    """Build the Python client's ``sdist`` or ``wheel`` with flit-core, offline."""
    script = f"from flit_core import buildapi; print(buildapi.build_{kind}({str(into)!r}))"
    built = subprocess.run([sys.executable, "-c", script], cwd=PYTHON_CLIENT, check=True,
                           capture_output=True, text=True, timeout=120)
    return into / built.stdout.strip().splitlines()[-1]


def js_package() -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((JS_CLIENT / "package.json").read_text())
    return manifest


def test_the_python_sdist_and_wheel_carry_what_a_release_needs(tmp_path: Path) -> None:
    sdist = build_python("sdist", tmp_path)
    wheel = build_python("wheel", tmp_path)
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
        info = archive.extractfile(f"{sdist.name.removesuffix('.tar.gz')}/PKG-INFO")
        assert info is not None
        metadata = email.parser.Parser().parsestr(info.read().decode())
    assert {"LICENSE", "README.md", "pyproject.toml", "switchboard_client/py.typed"} <= names
    assert {"switchboard_client/events.py", "switchboard_client/connection.py"} <= names
    # The version is the package's own and the JS client's: one protocol, one release.
    import switchboard_client

    assert metadata["Version"] == switchboard_client.__version__ == js_package()["version"]
    assert wheel.name == f"switchboard_client-{metadata['Version']}-py3-none-any.whl"
    assert metadata["Name"] == "switchboard-client"
    assert metadata["License-Expression"] == js_package()["license"] == "MIT"
    assert metadata["Requires-Python"] == ">=3.11"
    classifiers = metadata.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert metadata["Summary"] and metadata.get_payload().startswith("# switchboard-client")


def test_npm_pack_makes_a_package_an_empty_project_installs_and_imports(tmp_path: Path) -> None:
    packed = subprocess.run(
        [npm(), "pack", "--json", "--pack-destination", str(tmp_path)], cwd=JS_CLIENT,
        capture_output=True, text=True, timeout=120, check=True,
    )
    [report] = json.loads(packed.stdout)
    manifest = js_package()
    assert {f["path"] for f in report["files"]} == {
        "package.json", "switchboard.js", "switchboard.d.ts", "README.md", "LICENSE"}
    assert (report["name"], report["version"]) == ("switchboard-client", manifest["version"])
    assert manifest["exports"]["."] == {"types": "./switchboard.d.ts",
                                        "default": "./switchboard.js"}
    assert manifest["types"] == "./switchboard.d.ts" and manifest["type"] == "module"

    project = tmp_path / "app"
    project.mkdir()
    (project / "package.json").write_text('{"name": "app", "private": true, "type": "module"}')
    tarball = str(tmp_path / report["filename"])
    subprocess.run(
        [npm(), "install", "--offline", "--no-audit", "--no-fund", tarball], cwd=project,
        capture_output=True, text=True, timeout=120, check=True,
    )
    imported = subprocess.run(
        [node(), "--input-type=module", "-e",
         "import { Client, DEFAULTS } from 'switchboard-client'; "
         "console.log(typeof Client, DEFAULTS.requestTimeout)"],
        cwd=project, capture_output=True, text=True, timeout=60, check=False,
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.split() == ["function", "30000"]
    installed = project / "node_modules" / "switchboard-client"
    assert (installed / "switchboard.d.ts").is_file()
    assert not (installed / "test").exists()


@pytest.mark.parametrize("field", ["name", "version", "description", "license", "exports",
                                   "types", "files", "engines", "keywords"])
def test_the_js_manifest_has_every_field_a_release_needs(field: str) -> None:
    assert js_package().get(field), f"clients/js/package.json has no {field}"
