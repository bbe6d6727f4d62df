"""The deploy rehearsal: every deploy path run as the guide writes it, against moto's server.

Path A for each stage: ``python -m deploy.provision``, ``chalice deploy``,
``python -m deploy.provision --after-deploy``, then ``chalice delete``, as
subprocesses in a copy of the project, offline (``tests/deploy/offline.py``),
with the region given only as ``AWS_DEFAULT_REGION``, against a moto server in
its own process (``harness.engines``) behind the stand-in for the two API
Gateway v2 operations moto lacks (``tests/deploy/apigateway.py``). What was
created is read back through the AWS APIs and compared with what the app
derives (``deploy/project.py``, the committed policy files); what ``chalice
delete`` removes is checked to be gone. Once more on a moto whose account
concurrency quota is at its minimum (``MOTO_LAMBDA_CONCURRENCY_QUOTA``: moto
keeps 100 unreserved, so a quota of 100 refuses any reservation, as AWS refuses
one on a new account with a quota of 10).

Path B: ``chalice package`` with the merge template, the deployment package in
S3 (what ``aws cloudformation package`` does), the SAM transform
(aws-sam-translator, which CloudFormation runs), and the resources moto's
CloudFormation supports created as a stack; the API Gateway v2 resources,
alarms and metric filters it does not support are left out, references to
them replaced by what they would name. docs/deploy.md says what this proves
and what only an AWS account can.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from chalicelib.registry import table_definition
from chalicelib.settings import Settings
from deploy import project
from harness.engines import EngineProcess, moto_process
from tests.deploy.apigateway import StandIn, standing_in
from tests.deploy.offline import offline_project

REGION = "eu-west-1"
MINIMUM_QUOTA = "100"
"""moto refuses a reservation leaving fewer than 100 unreserved: nothing can be reserved."""
ROUTE_SELECTION = "$request.body.action"


class Rehearsal:
    """A copy of the project, its environment, and clients, all on one moto server."""

    def __init__(self, root: Path, moto: EngineProcess, standin: StandIn) -> None:
        self.copy, env = offline_project(root)
        self.env = {**env, "NO_PROXY": "127.0.0.1,localhost", "AWS_ENDPOINT_URL": moto.endpoint,
                    "AWS_ENDPOINT_URL_APIGATEWAYV2": standin.endpoint,
                    "AWS_DEFAULT_REGION": REGION}
        self.moto = moto.endpoint
        self.standin = standin

    def run(self, *command: str) -> str:
        result = subprocess.run(list(command), cwd=self.copy, env=self.env, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
        return result.stdout

    def client(self, service: str) -> Any:
        endpoint = self.standin.endpoint if service == "apigatewayv2" else self.moto
        return boto3.client(service, region_name=REGION,  # type: ignore[call-overload]
                            endpoint_url=endpoint)


@pytest.fixture
def aws(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Rehearsal]:
    """moto's server in a process of its own (with a concurrency quota when the test is
    parametrized with one), the API Gateway v2 stand-in in front of it, a project copy."""
    quota = getattr(request, "param", None)
    with pytest.MonkeyPatch.context() as patch:
        if quota is not None:
            patch.setenv("MOTO_LAMBDA_CONCURRENCY_QUOTA", quota)
        else:
            patch.delenv("MOTO_LAMBDA_CONCURRENCY_QUOTA", raising=False)
        engine = moto_process()
        moto = engine.__enter__()
    try:
        with standing_in(moto.endpoint) as standin:
            yield Rehearsal(tmp_path, moto, standin)
    finally:
        engine.__exit__(None, None, None)


def path_a(aws: Rehearsal, stage: str) -> dict[str, Any]:
    """Path A as docs/deploy.md writes it; returns the deployment record."""
    python = sys.executable
    aws.run(python, "-m", "deploy.provision", "--stage", stage)
    aws.run("chalice", "deploy", "--stage", stage)
    finished = aws.run(python, "-m", "deploy.provision", "--stage", stage, "--after-deploy")
    assert finished.splitlines()[0] == "created: stage throttling 100.0/s, burst 200"
    return dict(json.loads((aws.copy / ".chalice" / "deployed" / f"{stage}.json").read_text()))


def check_deployed(aws: Rehearsal, stage: project.Stage, record: dict[str, Any]) -> None:
    """What path A created is what the app derives."""
    lambda_client, iam = aws.client("lambda"), aws.client("iam")
    deployed = {f["FunctionName"]: f for f in lambda_client.list_functions()["Functions"]}
    assert set(deployed) == {f.function_name for f in stage.functions}
    for function in stage.functions:
        actual = deployed[function.function_name]
        assert actual["Handler"] == function.handler
        assert (actual["Timeout"], actual["MemorySize"]) == (function.timeout,
                                                             function.memory_size)
        assert actual["Environment"]["Variables"] == dict(function.environment)
        concurrency = lambda_client.get_function_concurrency(
            FunctionName=function.function_name)
        assert "ReservedConcurrentExecutions" not in concurrency, function.name
        role = actual["Role"].rpartition("/")[2]
        assert role == function.function_name  # one role per function, named like it
        [policy_name] = iam.list_role_policies(RoleName=role)["PolicyNames"]
        document = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
        assert function.policy_file is not None
        committed = json.loads((project.PROJECT / ".chalice" / function.policy_file).read_text())
        assert document == committed, function.name

    settings = Settings.from_environ(stage.environment)
    [worker] = [f for f in stage.functions if f.subscription is not None]
    mapping = subscription_of(lambda_client, worker)
    assert mapping["EventSourceArn"].endswith(f":{settings.fanout_queue_name}")
    assert worker.subscription is not None
    assert mapping["BatchSize"] == worker.subscription.batch_size
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": settings.fanout_worker_concurrency}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]

    apigateway = aws.client("apigatewayv2")
    api_id = {r["name"]: r for r in record["resources"]}["websocket_api"]["websocket_api_id"]
    [api] = apigateway.get_apis()["Items"]
    assert (api["ApiId"], api["Name"], api["ProtocolType"], api["RouteSelectionExpression"]) == (
        api_id, f"{stage.app_name}-{stage.name}-websocket-api", "WEBSOCKET", ROUTE_SELECTION)
    integrations = {i["IntegrationId"]: i for i in apigateway.get_integrations(
        ApiId=api_id)["Items"]}
    routes = {r["RouteKey"]: r for r in apigateway.get_routes(ApiId=api_id)["Items"]}
    handlers = {f.websocket_route: f for f in stage.functions if f.websocket_route}
    assert set(routes) == set(handlers)
    for key, route in routes.items():
        integration = integrations[route["Target"].removeprefix("integrations/")]
        assert integration["IntegrationType"] == "AWS_PROXY"
        assert f":function:{handlers[key].function_name}/" in integration["IntegrationUri"]
        allowed = json.loads(lambda_client.get_policy(
            FunctionName=handlers[key].function_name)["Policy"])["Statement"]
        assert any(s["Principal"] == {"Service": "apigateway.amazonaws.com"}
                   and api_id in json.dumps(s["Condition"]) for s in allowed), key
    assert aws.standin.deployments[api_id], "chalice deploy deploys the API"
    deployed_stage = apigateway.get_stage(ApiId=api_id, StageName=stage.api_gateway_stage)
    assert deployed_stage["DefaultRouteSettings"] == {"ThrottlingRateLimit": 100.0,
                                                      "ThrottlingBurstLimit": 200}


def subscription_of(lambda_client: Any, function: project.Function) -> dict[str, Any]:
    [mapping] = [m for m in lambda_client.list_event_source_mappings()["EventSourceMappings"]
                 if m["FunctionArn"].endswith(f":function:{function.function_name}")]
    return dict(mapping)


def check_deleted(aws: Rehearsal, stage: project.Stage) -> None:
    """What `chalice delete` leaves: only what deploy.provision made (kept on purpose)."""
    lambda_client, iam = aws.client("lambda"), aws.client("iam")
    assert lambda_client.list_functions()["Functions"] == []
    assert lambda_client.list_event_source_mappings()["EventSourceMappings"] == []
    roles = [r["RoleName"] for r in iam.list_roles()["Roles"]]
    assert not [r for r in roles if r.startswith(stage.function_prefix)]
    assert aws.client("apigatewayv2").get_apis()["Items"] == []
    record = json.loads((aws.copy / ".chalice" / "deployed" / f"{stage.name}.json").read_text())
    assert record["resources"] == []
    tables = aws.client("dynamodb").list_tables()["TableNames"]
    assert stage.environment["CONNECTIONS_TABLE"] in tables


@pytest.mark.parametrize("stage_name", project.stage_names())
def test_path_a_deploys_and_deletes_the_stage(aws: Rehearsal, stage_name: str) -> None:
    stage = project.load(stage_name)
    record = path_a(aws, stage_name)
    check_deployed(aws, stage, record)
    aws.run("chalice", "delete", "--stage", stage_name)
    check_deleted(aws, stage)


@pytest.mark.parametrize("aws", [MINIMUM_QUOTA], indirect=True, ids=["minimum-quota"])
def test_path_a_deploys_on_an_account_that_can_reserve_no_concurrency(aws: Rehearsal) -> None:
    stage = project.load("prod")
    record = path_a(aws, "prod")
    check_deployed(aws, stage, record)
    lambda_client = aws.client("lambda")
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException,
                       match="UnreservedConcurrentExecution below its minimum"):
        lambda_client.put_function_concurrency(  # what reserved_concurrency: 5 made Chalice do
            FunctionName=stage.functions[0].function_name, ReservedConcurrentExecutions=5)
    aws.run("chalice", "delete", "--stage", "prod")
    check_deleted(aws, stage)


# -- path B ----------------------------------------------------------------------------


def supported_subset(template: dict[str, Any], supported: set[str],
                     named: dict[str, str]) -> dict[str, Any]:
    """The resources of types moto's CloudFormation creates; references to the others are
    replaced by the names they would have (``named``, or the logical id)."""
    left_out = {name for name, r in template["Resources"].items() if r["Type"] not in supported}

    def replace(node: Any) -> Any:
        if isinstance(node, dict):
            if node.keys() == {"Ref"} and node["Ref"] in left_out:
                return named.get(node["Ref"], node["Ref"])
            if node.keys() == {"Fn::GetAtt"} and node["Fn::GetAtt"][0] in left_out:
                return named.get(node["Fn::GetAtt"][0], node["Fn::GetAtt"][0])
            if node.keys() == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
                return {"Fn::Sub": re.sub(
                    r"\$\{(\w+)(\.\w+)?\}",
                    lambda m: named.get(m.group(1), m.group(1)) if m.group(1) in left_out
                    else m.group(0), node["Fn::Sub"])}
            return {key: replace(value) for key, value in node.items()
                    if key != "DependsOn" or not set(_listed(value)) <= left_out}
        if isinstance(node, list):
            return [replace(item) for item in node]
        return node

    kept = {name: replace(r) for name, r in template["Resources"].items() if name not in left_out}
    return {**template, "Resources": kept, "Outputs": replace(template.get("Outputs", {}))}


def _listed(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


def test_path_b_the_translated_template_creates_its_resources_on_moto(tmp_path: Path) -> None:
    from moto.cloudformation.parsing import get_model_map
    from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
    from samtranslator.translator.transform import transform

    stage = project.load("prod")
    with moto_process() as moto, standing_in(moto.endpoint) as standin:
        aws = Rehearsal(tmp_path, moto, standin)
        aws.run(sys.executable, "-m", "deploy.provision", "--stage", "prod", "--only-signing-key")
        aws.run("chalice", "package", "--stage", "prod", "--merge-template",
                "deploy/cloudformation.json", "out")
        template = json.loads((aws.copy / "out" / "sam.json").read_text())
        s3 = aws.client("s3")
        s3.create_bucket(Bucket="artifacts",
                         CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.upload_file(str(aws.copy / "out" / "deployment.zip"), "artifacts", "deployment.zip")
        for resource in template["Resources"].values():
            if resource["Type"] == "AWS::Serverless::Function":
                resource["Properties"]["CodeUri"] = "s3://artifacts/deployment.zip"
        parameters = {"StageName": "prod", "AWS::Region": REGION, "AWS::AccountId": "123456789012",
                      "AWS::Partition": "aws"}
        translated = transform(template, parameters, ManagedPolicyLoader(aws.client("iam")))
        api = aws.client("apigatewayv2").create_api(Name="stand-in", ProtocolType="WEBSOCKET",
                                                   RouteSelectionExpression=ROUTE_SELECTION)
        subset = supported_subset(translated, set(get_model_map()),
                                  {"WebsocketAPI": api["ApiId"]})
        cloudformation = aws.client("cloudformation")
        cloudformation.create_stack(
            StackName="chat-prod", TemplateBody=json.dumps(subset),
            Parameters=[{"ParameterKey": "StageName", "ParameterValue": "prod"}],
            Capabilities=["CAPABILITY_IAM"])
        [described] = cloudformation.describe_stacks(StackName="chat-prod")["Stacks"]
        assert described["StackStatus"] == "CREATE_COMPLETE", described
        check_stack(aws, stage, api["ApiId"], translated, subset)

        # What the guide used to say: provision everything, then the stack.
        cloudformation.delete_stack(StackName="chat-prod")
        aws.run(sys.executable, "-m", "deploy.provision", "--stage", "prod")
        try:
            cloudformation.create_stack(
                StackName="collides", TemplateBody=json.dumps(subset),
                Parameters=[{"ParameterKey": "StageName", "ParameterValue": "prod"}],
                Capabilities=["CAPABILITY_IAM"])
            [collided] = cloudformation.describe_stacks(StackName="collides")["Stacks"]
            failed = collided["StackStatus"] != "CREATE_COMPLETE"
        except (ClientError, ResponseParserError) as error:  # moto relays DynamoDB's error raw
            failed = "Table already exists" in str(error)
        assert failed, "a table provisioned first collides with the stack's"


def check_stack(aws: Rehearsal, stage: project.Stage, api_id: str, translated: dict[str, Any],
                subset: dict[str, Any]) -> None:
    left_out = {r["Type"] for name, r in translated["Resources"].items()
                if name not in subset["Resources"]}
    assert left_out <= {"AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Integration",
                        "AWS::ApiGatewayV2::Route", "AWS::ApiGatewayV2::Deployment",
                        "AWS::ApiGatewayV2::Stage", "AWS::CloudWatch::Alarm",
                        "AWS::Logs::MetricFilter"}, left_out
    env = stage.environment
    table = aws.client("dynamodb").describe_table(TableName=env["CONNECTIONS_TABLE"])["Table"]
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == [
        i["IndexName"] for i in table_definition("any")["GlobalSecondaryIndexes"]]
    queue = aws.client("sqs").get_queue_url(QueueName=env["FANOUT_QUEUE_NAME"])["QueueUrl"]
    lambda_client, iam = aws.client("lambda"), aws.client("iam")
    for function in stage.functions:
        # Named as every path names it, whatever the stack is called ("chat-prod" here).
        actual = lambda_client.get_function(FunctionName=function.function_name)
        variables = actual["Configuration"]["Environment"]["Variables"]
        assert variables["CONNECTIONS_TABLE"] == env["CONNECTIONS_TABLE"]
        assert variables["FANOUT_QUEUE_NAME"] == env["FANOUT_QUEUE_NAME"]
        role = actual["Configuration"]["Role"].rpartition("/")[2]
        [name] = iam.list_role_policies(RoleName=role)["PolicyNames"]
        text = json.dumps(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"])
        assert f"log-group:/aws/lambda/{function.function_name}:*" in text, function.name
        if "ManageConnections" in text:  # this API, this stage, not any API anywhere
            assert (f"arn:aws:execute-api:{REGION}:123456789012:{api_id}/"
                    f"{stage.api_gateway_stage}/POST/@connections/*") in text, function.name
        assert "${" not in text and ":*:*:" not in text, function.name
    groups = {g["logGroupName"]: g for g in aws.client("logs").describe_log_groups(
        logGroupNamePrefix=f"/aws/lambda/{stage.function_prefix}")["logGroups"]}
    assert set(groups) == {f.log_group for f in stage.functions}
    assert {g.get("retentionInDays") for g in groups.values()} == {30}
    [worker] = [f for f in stage.functions if f.subscription is not None]
    mapping = subscription_of(lambda_client, worker)
    attributes = aws.client("sqs").get_queue_attributes(QueueUrl=queue,
                                                        AttributeNames=["QueueArn"])
    assert mapping["EventSourceArn"] == attributes["Attributes"]["QueueArn"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    settings = Settings.from_environ(env)
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": settings.fanout_worker_concurrency}
