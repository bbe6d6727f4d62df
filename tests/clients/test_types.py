"""Both clients are typed for their users: a sample application type-checks against each, the
mistakes it marks are caught, and the JavaScript declarations name exactly what the module
exports.

``tests/clients/typed/sample.py`` is checked with ``mypy --strict`` against the installed
``switchboard_client`` (its ``py.typed``); ``tests/clients/typed/sample.mts`` with
``tsc --noEmit`` (TypeScript from the root ``package.json``) against ``switchboard-client``
resolved as an installed package (``clients/js/package.json``'s ``exports``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gateways import REPO

from .node import node

TYPED = Path(__file__).parent / "typed"
TSC = REPO / "node_modules" / ".bin" / "tsc"


def test_a_python_application_type_checks_and_its_marked_mistakes_are_caught(
    tmp_path: Path,
) -> None:
    # Run outside the repository, so that no configuration of its applies.
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--warn-unused-ignores",
         "--cache-dir", str(tmp_path / "cache"), str(TYPED / "sample.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.skipif(not TSC.exists(), reason="TypeScript comes with `npm ci` (make test)")
def test_a_typescript_application_type_checks_and_its_marked_mistakes_are_caught() -> None:
    checked = subprocess.run(
        [node(), str(TSC), "-p", str(TYPED / "tsconfig.json")],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.skipif(not TSC.exists(), reason="TypeScript comes with `npm ci` (make test)")
def test_the_declarations_name_exactly_what_the_module_exports() -> None:
    listed = subprocess.run(
        [node(), str(TYPED / "declared.mjs")],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert listed.returncode == 0, listed.stderr
    found = json.loads(listed.stdout)
    for part in ("values", "client", "tunables"):
        assert found["declared"][part] == found["runtime"][part], part
    assert "notify" in found["runtime"]["client"] and "Client" in found["runtime"]["values"]
