"""``python -m deploy.provision`` against moto: creates what is missing, reports what existed."""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib.registry import table_definition
from deploy import provision as provision_module
from deploy import session
from deploy import smoke as smoke_module
from deploy.provision import StageConfig, after_deploy, main, provision
from tests.aws_stub import aws_stub

PROJECT = Path(__file__).resolve().parents[2]
MAPPING_UUID = "6d9f8e0c-1b2a-4c3d-9e8f-0a1b2c3d4e5f"


@pytest.fixture
def stage(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> StageConfig:
    for service in ("DYNAMODB", "SQS", "SSM"):
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", moto_endpoint)
    suffix = uuid.uuid4().hex[:10]
    return StageConfig(
        stage="prod",
        app_name="switchboard",
        api_gateway_stage="prod",
        table=f"switchboard-{suffix}-connections",
        queue=f"switchboard-{suffix}-fanout",
        secret_parameter=f"/switchboard/{suffix}/token-secret",
    )


def clients(service: str) -> Any:
    return boto3.client(service)


def test_first_run_creates_the_table_queues_and_key(stage: StageConfig):
    report = provision(stage, clients)

    assert report.lines == [
        f"created: table {stage.table} (on-demand, encrypted with the AWS managed key)",
        f"created: TTL on {stage.table}.ttl",
        f"created: point-in-time recovery on {stage.table}",
        f"created: queue {stage.queue}-dlq",
        f"created: queue {stage.queue}",
        f"created: signing key parameter {stage.secret_parameter}"
        " (SecureString, random 48-byte key)",
    ]
    dynamodb = clients("dynamodb")
    table = dynamodb.describe_table(TableName=stage.table)["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["PK", "SK"]
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == [
        i["IndexName"] for i in table_definition(stage.table)["GlobalSecondaryIndexes"]]
    assert table["SSEDescription"]["Status"] == "ENABLED"
    ttl = dynamodb.describe_time_to_live(TableName=stage.table)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "ttl")
    backups = dynamodb.describe_continuous_backups(TableName=stage.table)
    pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert pitr["PointInTimeRecoveryStatus"] == "ENABLED"
    sqs = clients("sqs")
    url = sqs.get_queue_url(QueueName=stage.queue)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == 5
    assert attributes["VisibilityTimeout"] == "360"
    parameter = clients("ssm").get_parameter(Name=stage.secret_parameter, WithDecryption=True)
    assert parameter["Parameter"]["Type"] == "SecureString"
    assert len(parameter["Parameter"]["Value"]) >= 64


def test_second_run_changes_nothing_and_says_so(stage: StageConfig):
    provision(stage, clients)
    key = clients("ssm").get_parameter(Name=stage.secret_parameter, WithDecryption=True)

    report = provision(stage, clients)

    assert all(line.startswith("already there: ") for line in report.lines), report.lines
    assert len(report.lines) == 6
    again = clients("ssm").get_parameter(Name=stage.secret_parameter, WithDecryption=True)
    assert again["Parameter"]["Value"] == key["Parameter"]["Value"]


def test_ttl_is_enabled_on_a_table_that_exists_without_it(stage: StageConfig):
    from chalicelib.registry import table_definition

    clients("dynamodb").create_table(**table_definition(stage.table))

    report = provision(stage, clients)

    assert report.lines[:2] == [
        f"already there: table {stage.table}",
        f"created: TTL on {stage.table}.ttl",
    ]


def test_stage_names_come_from_the_chalice_config():
    prod = StageConfig.load("prod", PROJECT)
    dev = StageConfig.load("dev", PROJECT)

    assert (prod.table, prod.queue, prod.secret_parameter) == (
        "switchboard-prod-connections",
        "switchboard-prod-fanout",
        "/switchboard/prod/token-secret",
    )
    assert dev.secret_parameter == "/switchboard/dev/token-secret"  # no stage holds a key
    with pytest.raises(SystemExit, match=r"not in \.chalice/config\.json"):
        StageConfig.load("staging", PROJECT)


def test_command_line_provisions_the_configured_stage(
    stage: StageConfig, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setattr(StageConfig, "load", classmethod(lambda cls, name: stage))

    assert main(["--stage", "prod", "--region", "us-east-1"]) == 0

    assert f"created: table {stage.table}" in capsys.readouterr().out


def test_after_deploy_sets_throttling_and_partial_batch_responses():
    stage = StageConfig.load("prod", PROJECT)
    apigw = boto3.client("apigatewayv2")
    lambda_client = boto3.client("lambda")
    deployed = {
        "resources": [
            {"name": "websocket_api", "websocket_api_id": "abc123"},
            {"name": "fanout_worker-sqs-event-source", "event_uuid": MAPPING_UUID},
        ]
    }
    with Stubber(apigw) as apigw_stub, Stubber(lambda_client) as lambda_stub:
        apigw_stub.add_response("update_stage", {}, {
            "ApiId": "abc123",
            "StageName": "prod",
            "DefaultRouteSettings": {"ThrottlingRateLimit": 50.0, "ThrottlingBurstLimit": 80},
        })
        lambda_stub.add_response("update_event_source_mapping", {}, {
            "UUID": MAPPING_UUID, "FunctionResponseTypes": ["ReportBatchItemFailures"],
        })
        stubs = {"apigatewayv2": apigw, "lambda": lambda_client}

        report = after_deploy(stage, stubs.__getitem__, deployed, 50.0, 80)

        apigw_stub.assert_no_pending_responses()
        lambda_stub.assert_no_pending_responses()
    assert report.lines == [
        "created: stage throttling 50.0/s, burst 80",
        "created: ReportBatchItemFailures on fanout_worker-sqs-event-source",
    ]


def test_after_deploy_without_the_subscription_in_the_record_says_to_deploy_again():
    stage = StageConfig.load("prod", PROJECT)
    apigw = boto3.client("apigatewayv2")
    deployed = {"resources": [{"name": "websocket_api", "websocket_api_id": "abc123"}]}
    with Stubber(apigw) as stub:
        stub.add_response("update_stage", {})
        with pytest.raises(session.ToolError, match="has no fanout_worker-sqs-event-source"):
            after_deploy(stage, {"apigatewayv2": apigw}.__getitem__, deployed)


def test_only_the_signing_key_for_the_template_paths(stage: StageConfig):
    """CloudFormation and Terraform create the table and queues: provisioning them first
    made the stack fail with 'already exists' (and a rollback keeps the table)."""
    report = provision(stage, clients, only_signing_key=True)

    assert report.lines == [f"created: signing key parameter {stage.secret_parameter}"
                            " (SecureString, random 48-byte key)"]
    tables = clients("dynamodb").list_tables()["TableNames"]
    assert stage.table not in tables
    assert clients("sqs").list_queues(QueueNamePrefix=stage.queue or "").get("QueueUrls") is None
    again = provision(stage, clients, only_signing_key=True)
    assert again.lines == [f"already there: signing key parameter {stage.secret_parameter}"]


def test_only_the_signing_key_of_a_stage_without_one_is_an_error(stage: StageConfig):
    keyless = StageConfig(**{**stage.__dict__, "secret_parameter": None})
    with pytest.raises(session.ToolError, match="sets no TOKEN_SECRET_PARAMETER"):
        provision(keyless, clients, only_signing_key=True)


def test_command_line_creates_only_the_key_when_asked(
    stage: StageConfig, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setattr(StageConfig, "load", classmethod(lambda cls, name: stage))

    assert main(["--stage", "prod", "--region", "us-east-1", "--only-signing-key"]) == 0

    assert capsys.readouterr().out.splitlines() == [
        f"created: signing key parameter {stage.secret_parameter} (SecureString, random "
        "48-byte key)"]


# -- what an operator sees when something is missing ---------------------------------


@pytest.fixture
def bare_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No AWS configuration at all: no variables, no config or credentials file."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    [line] = captured.err.splitlines()  # one line, no traceback
    assert captured.out == ""
    return line


NO_REGION = ("error: no AWS region: pass --region, set AWS_REGION (or AWS_DEFAULT_REGION), "
             "or give your AWS profile a region (aws configure)")
NO_CREDENTIALS = ("error: no AWS credentials: run `aws configure` (or `aws sso login`), or set "
                  "AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")


@pytest.mark.parametrize(("variables", "region", "expected"), [
    ({}, [], NO_REGION),
    ({"AWS_REGION": "eu-west-1"}, [], NO_CREDENTIALS),  # AWS_REGION is a region too
    ({}, ["--region", "us-east-1"], NO_CREDENTIALS),
    ({"AWS_PROFILE": "nope"}, ["--region", "us-east-1"],
     "error: The config profile (nope) could not be found: check AWS_PROFILE and ~/.aws/config"),
], ids=["no region", "AWS_REGION", "no credentials", "no such profile"])
def test_what_is_missing_is_one_line_saying_where_it_comes_from(
    bare_aws: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    variables: dict[str, str], region: list[str], expected: str,
):
    for name, value in variables.items():
        bare_aws.setenv(name, value)
    assert main(["--stage", "prod", *region]) == 2
    assert error_line(capsys) == expected


def test_a_missing_permission_is_one_line_naming_the_call(
    bare_aws: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    """DynamoDB (a stand-in over HTTP) refuses DescribeTable as AWS refuses it."""
    refusal = json.dumps({
        "__type": "com.amazon.coral.service#AccessDeniedException",
        "message": "User: arn:aws:iam::123456789012:user/dev is not authorized to perform: "
                   "dynamodb:DescribeTable on resource: arn:aws:dynamodb:us-east-1:"
                   "123456789012:table/switchboard-prod-connections",
    }).encode()

    def deny(method: str, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        return 400, {"Content-Type": "application/x-amz-json-1.0"}, refusal

    bare_aws.setenv("AWS_ACCESS_KEY_ID", "dev")
    bare_aws.setenv("AWS_SECRET_ACCESS_KEY", "dev")
    with aws_stub(deny) as endpoint:
        bare_aws.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
        assert main(["--stage", "prod", "--region", "us-east-1"]) == 2
    assert error_line(capsys) == (
        "error: permission denied: AWS refused DescribeTable (AccessDeniedException); grant it "
        "to the identity in use. AWS said: User: arn:aws:iam::123456789012:user/dev is not "
        "authorized to perform: dynamodb:DescribeTable on resource: arn:aws:dynamodb:us-east-1:"
        "123456789012:table/switchboard-prod-connections")


def test_after_deploy_without_a_deployment_says_what_to_run_first(
    stage: StageConfig, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
):
    monkeypatch.setattr("deploy.provision.PROJECT", tmp_path)
    monkeypatch.setattr(StageConfig, "load", classmethod(lambda cls, name: stage))
    assert main(["--stage", "prod", "--after-deploy", "--region", "us-east-1"]) == 2
    assert error_line(capsys) == (
        "error: no .chalice/deployed/prod.json: run `chalice deploy --stage prod` first "
        "(this checkout's .chalice/deployed/ records it)")


def test_an_error_it_cannot_explain_keeps_its_traceback(stage: StageConfig):
    def broken(service: str) -> Any:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError):
        session.run(lambda: len(provision(stage, broken).lines))


@pytest.mark.parametrize("tool", [provision_module, smoke_module])
def test_every_option_says_what_it_does(tool: Any):
    parser = tool.parser()
    text = parser.format_help()
    options = re.findall(r"^  (--[\w-]+)", text, re.M)
    assert len(options) >= 5
    for option in options:
        described = re.search(rf"^  {option}[^\n]*?(?:  +|\n +)(\w[^\n]*)", text, re.M)
        assert described and len(described.group(1).split()) >= 3, option
