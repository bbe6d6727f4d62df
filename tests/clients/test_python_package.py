"""The Python client installs from a checkout on its own: ``pip install ./clients/python``.

Its wheel is built offline (the pinned ``flit-core``) and installed with
``--no-deps`` into a fresh environment whose dependencies come from this test
environment through a path line (see ``tests/switchboard_local/installed.py``): the
client then imports from the wheel, and nothing of this repository — not
``chalicelib``, not ``switchboard_local`` — is importable next to it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.switchboard_local.installed import REPO, clean_env, install

PROBE = """
import importlib.metadata, importlib.util, json
import switchboard_client
from switchboard_client import Client, Options, SwitchboardError
print(json.dumps({
    "file": switchboard_client.__file__,
    "requires": importlib.metadata.requires("switchboard-client"),
    "typed": importlib.util.find_spec("switchboard_client").submodule_search_locations[0],
    "others": [n for n in ("chalicelib", "switchboard_local", "app")
               if importlib.util.find_spec(n) is not None],
    "client": Client("ws://127.0.0.1:1/dev", token="t", options=Options()).state,
}))
"""


def test_the_client_installs_alone_from_the_checkout(tmp_path: Path) -> None:
    installed = install(tmp_path, REPO / "clients" / "python", "switchboard_client-*.whl")
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
