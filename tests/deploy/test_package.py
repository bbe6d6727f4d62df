"""``chalice package`` in both formats, offline, and cfn-lint on the merged template.

The project is copied to a temporary directory (Chalice caches deployment
packages under ``.chalice/``) and packaged with the commands the README shows.
Offline is enforced, not assumed: pip may use only a local wheel directory
(``PIP_NO_INDEX``, no pip config) and every HTTP(S) request goes to a proxy on a
closed loopback port. The wheels of ``requirements.txt`` (and what they
require) are rebuilt from the packages installed in this virtual environment
(all pure Python).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MERGE_TEMPLATE = "deploy/cloudformation.json"
FUNCTIONS = ("WebsocketConnect", "WebsocketMessage", "WebsocketDisconnect", "Push", "FanoutWorker",
             "ServerApi", "ExpireConnections")


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


def offline_env(wheels: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(wheels),
        PIP_CONFIG_FILE=os.devnull,
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        NO_PROXY="",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("package")
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


def run(command: list[str], cwd: Path, env: dict[str, str]) -> None:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def cloudformation(project: tuple[Path, dict[str, str]]) -> dict[str, Any]:
    copy, env = project
    run(["chalice", "package", "--stage", "prod", "--merge-template", MERGE_TEMPLATE,
         "out/cloudformation"], copy, env)
    template: dict[str, Any] = json.loads((copy / "out/cloudformation/sam.json").read_text())
    template["_path"] = str(copy / "out/cloudformation/sam.json")
    return template


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_no_package_carries_a_signing_key(project: tuple[Path, dict[str, str]], stage: str):
    """Every function reads the keys from SSM: no stage's output holds a key."""
    copy, env = project
    (copy / ".switchboard-local").mkdir(exist_ok=True)
    planted = "local-signing-key-that-must-never-ship-0123456789"
    (copy / ".switchboard-local" / "signing-key").write_text(planted)
    out = copy / f"out/keys-{stage}"
    run(["chalice", "package", "--stage", stage, "--merge-template", MERGE_TEMPLATE, str(out)],
        copy, env)
    template = json.loads((out / "sam.json").read_text())
    functions = {name: r for name, r in template["Resources"].items()
                 if r["Type"] == "AWS::Serverless::Function"}
    assert set(functions) == set(FUNCTIONS)
    for name, function in functions.items():
        variables = function["Properties"]["Environment"]["Variables"]
        assert "TOKEN_SECRET" not in variables, name
        assert variables["TOKEN_SECRET_PARAMETER"] == f"/switchboard/{stage}/token-secret", name
    texts = [(out / "sam.json").read_bytes()]
    with zipfile.ZipFile(out / "deployment.zip") as bundle:
        texts += [bundle.read(entry) for entry in bundle.namelist()]
    assert b'"TOKEN_SECRET"' not in texts[0]
    for text in texts:
        assert planted.encode() not in text
        assert b"dev-only-insecure" not in text  # the key the dev stage used to hold


def test_merged_template_passes_cfn_lint(cloudformation: dict[str, Any]):
    result = subprocess.run([str(BIN / "cfn-lint"), cloudformation["_path"]],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr


def test_merged_template_has_the_table_as_the_registry_describes_it(
    cloudformation: dict[str, Any]
):
    from chalicelib.registry import table_definition

    table = cloudformation["Resources"]["ConnectionsTable"]["Properties"]
    code = table_definition("unused")
    for key in ("BillingMode", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes"):
        assert table[key] == code[key], key
    assert table["TableName"] == {"Fn::Sub": "switchboard-${StageName}-connections"}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_every_function_gets_the_table_and_queue_and_a_scoped_role(
    cloudformation: dict[str, Any]
):
    resources = cloudformation["Resources"]
    policy = json.loads((PROJECT / ".chalice/policy-prod.json").read_text())
    for function in FUNCTIONS:
        variables = resources[function]["Properties"]["Environment"]["Variables"]
        assert variables["CONNECTIONS_TABLE"] == {"Ref": "ConnectionsTable"}
        assert variables["FANOUT_QUEUE_NAME"] == {"Fn::GetAtt": ["FanoutQueue", "QueueName"]}
        role = resources[resources[function]["Properties"]["Role"]["Fn::GetAtt"][0]]
        assert role["Properties"]["Policies"][0]["PolicyDocument"] == policy


def test_worker_reports_partial_batch_failures_and_stage_is_throttled(
    cloudformation: dict[str, Any]
):
    resources = cloudformation["Resources"]
    event = resources["FanoutWorker"]["Properties"]["Events"]["FanoutWorkerSqsEventSource"]
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert event["Properties"]["Queue"]["Fn::Sub"].endswith(":switchboard-prod-fanout")
    settings = resources["WebsocketAPIStage"]["Properties"]["DefaultRouteSettings"]
    assert settings == {"ThrottlingRateLimit": {"Ref": "ThrottlingRateLimit"},
                        "ThrottlingBurstLimit": {"Ref": "ThrottlingBurstLimit"}}
    redrive = resources["FanoutQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["FanoutDeadLetterQueue", "Arn"]}


def test_the_worker_is_reserved_the_concurrency_its_pacing_divides_by(
    cloudformation: dict[str, Any]
):
    """Pacing is MANAGEMENT_RPS / FANOUT_WORKER_CONCURRENCY per invocation: the sum stays
    under the budget only if no more workers than that can run."""
    resources = cloudformation["Resources"]
    worker = resources["FanoutWorker"]["Properties"]
    variables = worker["Environment"]["Variables"]
    assert worker["ReservedConcurrentExecutions"] == int(variables["FANOUT_WORKER_CONCURRENCY"])
    for function in FUNCTIONS:
        variables = resources[function]["Properties"]["Environment"]["Variables"]
        assert int(variables["MANAGEMENT_RPS"]) > 0
        assert variables["MANAGEMENT_TRANSPORT"] in ("lean", "botocore")


def test_package_carries_the_code_and_pyjwt(cloudformation: dict[str, Any]):
    bundle = Path(cloudformation["_path"]).parent / "deployment.zip"
    names = set(zipfile.ZipFile(bundle).namelist())
    assert {"app.py", "chalicelib/outbox.py", "jwt/__init__.py"} <= names
    assert not any(name.startswith(("tests/", "switchboard_local/", "deploy/")) for name in names)


def test_terraform_package_with_the_table_beside_it(project: tuple[Path, dict[str, str]]):
    copy, env = project
    out = copy / "out/terraform"
    run(["chalice", "package", "--stage", "prod", "--pkg-format", "terraform", str(out)],
        copy, env)
    for file in (copy / "deploy/terraform").iterdir():
        shutil.copy(file, out / file.name)

    chalice_tf = json.loads((out / "chalice.tf.json").read_text())
    override = json.loads((out / "switchboard_override.tf.json").read_text())
    for kind, blocks in override["resource"].items():
        assert set(blocks) <= set(chalice_tf["resource"][kind]), kind
    table_tf = (out / "switchboard.tf").read_text()
    assert 'resource "aws_dynamodb_table" "connections"' in table_tf
    worker = chalice_tf["resource"]["aws_lambda_function"]["fanout_worker"]
    assert worker["reserved_concurrent_executions"] == int(
        worker["environment"]["variables"]["FANOUT_WORKER_CONCURRENCY"]
    )
    mapping = override["resource"]["aws_lambda_event_source_mapping"]
    assert mapping["fanout_worker-sqs-event-source"]["function_response_types"] == [
        "ReportBatchItemFailures"
    ]
    if shutil.which("terraform"):
        run(["terraform", "fmt", "-check", "-diff", "switchboard.tf"], out, env)


def test_terraform_references_resolve_and_versions_fit_chalices_output(
    project: tuple[Path, dict[str, str]]
):
    """Every resource our .tf.json files name exists beside them; the guide's versions
    satisfy the constraints Chalice's own output declares as well as ours."""
    import hcl2

    from tests.deploy.test_observability import (
        AWS_PROVIDER_VERSION,
        TERRAFORM_VERSION,
        constraint,
    )

    copy, env = project
    out = copy / "out/terraform-refs"
    run(["chalice", "package", "--stage", "prod", "--pkg-format", "terraform", str(out)],
        copy, env)
    chalice_tf = json.loads((out / "chalice.tf.json").read_text())
    ours = json.loads((PROJECT / "deploy/terraform/switchboard_observability.tf.json").read_text())
    with (PROJECT / "deploy/terraform/switchboard.tf").open() as source:
        hcl = hcl2.load(source)
    defined = {(kind, name) for kind, blocks in chalice_tf["resource"].items() for name in blocks}
    defined |= {(kind, name) for kind, blocks in ours["resource"].items() for name in blocks}
    defined |= {(kind.strip('"'), name.strip('"')) for block in hcl["resource"]
                for kind, named in block.items() for name in named}
    texts = json.dumps(ours) + (PROJECT / "deploy/terraform/switchboard_override.tf.json"
                                ).read_text()
    referenced = set(re.findall(r"\$\{[^}]*?(?<!data\.)\b(aws_\w+)\.([\w-]+)\.", texts))
    assert referenced and referenced <= defined, referenced - defined
    assert "aws_region" in chalice_tf["data"] and "null_data_source" in chalice_tf["data"]
    # What docs/deploy.md's path C hands the smoke test.
    assert "WebsocketConnectEndpointURL" in chalice_tf["output"]
    push = chalice_tf["resource"]["aws_lambda_function"]["push"]
    assert push["function_name"] == "switchboard-prod-push"

    required = chalice_tf["terraform"]
    assert TERRAFORM_VERSION in constraint(required["required_version"])
    assert AWS_PROVIDER_VERSION in constraint(required["required_providers"]["aws"]["version"])
