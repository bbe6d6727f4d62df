"""Each stage's IAM policy grants exactly what the code calls, on scoped resources.

The AWS operations are found by reading ``app.py`` and ``chalicelib/``: the
services the code builds clients for (``boto3.client("<service>")``), every
method call whose name is an operation of one of those services in botocore's
model, and Chalice's ``websocket_api.send/close/info`` (the management API).
Operations map to IAM actions through the service model's signing name, with
the few exceptions IAM has. What the platform calls for the functions (Lambda's
logs and its SQS poller) is listed below with the reason.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore import xform_name

from chalicelib.registry import table_definition
from switchboard_local.project import read_stage

PROJECT = Path(__file__).resolve().parents[2]
SOURCES = [PROJECT / "app.py", *sorted((PROJECT / "chalicelib").glob("*.py"))]
CHALICE_WEBSOCKET = {"send": "PostToConnection", "close": "DeleteConnection",
                     "info": "GetConnection"}
TRANSACT_ITEMS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                  "ConditionCheck": "ConditionCheckItem"}
# IAM authorises some operations under another action.
IAM_ACTION = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
}
# Called for the functions by AWS, not by the code.
PLATFORM = {
    "logs:CreateLogGroup": "Lambda writes the functions' logs",
    "logs:CreateLogStream": "Lambda writes the functions' logs",
    "logs:PutLogEvents": "Lambda writes the functions' logs",
    "sqs:ReceiveMessage": "the event source mapping polls the fan-out queue",
    "sqs:DeleteMessage": "the event source mapping deletes handled records",
    "sqs:GetQueueAttributes": "the event source mapping reads the queue",
}
# An SSM SecureString is decrypted by SSM on the caller's behalf.
IMPLIED = {"ssm:GetParameter": ["kms:Decrypt"]}


def trees() -> Iterator[ast.Module]:
    for path in SOURCES:
        yield ast.parse(path.read_text(), str(path))


def client_services(modules: list[ast.Module]) -> set[str]:
    return {
        node.args[0].value
        for module in modules for node in ast.walk(module)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and node.func.attr == "client" and node.args
        and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
    }


def called_methods(module: ast.Module) -> set[str]:
    """Methods called, or referenced to be called later (``call = client.batch_get_item``)."""
    return {node.attr for node in ast.walk(module) if isinstance(node, ast.Attribute)}


def transact_item_kinds(module: ast.Module) -> set[str]:
    return {
        key.value for node in ast.walk(module) if isinstance(node, ast.Dict)
        for key in node.keys
        if isinstance(key, ast.Constant) and key.value in TRANSACT_ITEMS
    }


def iam_prefix(model: Any) -> str:
    return str(model.metadata.get("signingName") or model.metadata["endpointPrefix"])


def code_actions() -> set[str]:
    """The IAM actions the code needs, derived from its calls."""
    session = botocore.session.get_session()
    modules = list(trees())
    models = {name: session.get_service_model(name) for name in client_services(modules)}
    models["apigatewaymanagementapi"] = session.get_service_model("apigatewaymanagementapi")
    actions: set[str] = set()
    for module in modules:
        methods = called_methods(module)
        for model in models.values():
            by_method = {xform_name(op): op for op in model.operation_names}
            for method in methods & set(by_method):
                operation = by_method[method]
                if operation == "TransactWriteItems":
                    actions |= {f"dynamodb:{TRANSACT_ITEMS[k]}"
                                for k in transact_item_kinds(module)}
                    continue
                action = f"{iam_prefix(model)}:{operation}"
                actions.add(IAM_ACTION.get(action, action))
        if methods & set(CHALICE_WEBSOCKET) and _uses_websocket_api(module):
            actions.add("execute-api:ManageConnections")
    for action, implied in IMPLIED.items():
        if action in actions:
            actions.update(implied)
    return {a.replace("apigatewaymanagementapi:", "execute-api:") for a in actions
            if not a.startswith("execute-api:") or a == "execute-api:ManageConnections"}


def _uses_websocket_api(module: ast.Module) -> bool:
    """Chalice's WebsocketAPI is held as ``_api`` (delivery) or ``websocket_api``."""
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and node.func.attr in CHALICE_WEBSOCKET and isinstance(node.func.value, ast.Attribute)
        and node.func.value.attr in ("_api", "websocket_api")
        for node in ast.walk(module)
    )


def stage_config(stage: str) -> tuple[dict[str, Any], dict[str, str]]:
    read = read_stage(PROJECT, stage)
    config = {"iam_policy_file": read.config.iam_policy_file, "app_name": read.app_name,
              "api_gateway_stage": read.api_gateway_stage}
    return config, dict(read.environment)


def expected_actions(env: dict[str, str]) -> set[str]:
    """The code's actions, less those a stage's settings switch off."""
    actions = code_actions() | set(PLATFORM)
    if "TOKEN_SECRET_PARAMETER" not in env:
        actions -= {"ssm:GetParameter", "kms:Decrypt"}
    if "FANOUT_QUEUE_NAME" not in env:
        actions = {a for a in actions if not a.startswith("sqs:")}
    return actions


def policy(stage: str) -> dict[str, Any]:
    cfg, _ = stage_config(stage)
    return dict(json.loads((PROJECT / ".chalice" / cfg["iam_policy_file"]).read_text()))


def granted(document: dict[str, Any]) -> dict[str, list[str]]:
    """Each granted action and the resources it is granted on."""
    grants: dict[str, list[str]] = {}
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        for action in statement["Action"]:
            grants.setdefault(action, []).extend(statement["Resource"])
    return grants


STAGES = ["dev", "prod"]


def test_the_analysis_finds_the_calls_it_should():
    actions = code_actions()
    assert {"dynamodb:PutItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:BatchWriteItem",
            "dynamodb:UpdateItem", "sqs:SendMessage", "sqs:GetQueueUrl", "ssm:GetParameter",
            "kms:Decrypt", "execute-api:ManageConnections"} <= actions
    assert "dynamodb:TransactWriteItems" not in actions  # not an IAM action


@pytest.mark.parametrize("stage", STAGES)
def test_policy_grants_exactly_what_the_code_and_platform_call(stage: str):
    _, env = stage_config(stage)
    grants = set(granted(policy(stage)))
    expected = expected_actions(env)

    assert expected - grants == set(), "missing from the policy"
    assert grants - expected == set(), "granted but nothing calls it"


@pytest.mark.parametrize("stage", STAGES)
def test_every_grant_is_scoped_to_the_stage_resources(stage: str):
    cfg, env = stage_config(stage)
    table, queue = env["CONNECTIONS_TABLE"], env["FANOUT_QUEUE_NAME"]
    allowed_by_service = {
        "dynamodb": {f"arn:aws:dynamodb:*:*:table/{table}"} | {
            f"arn:aws:dynamodb:*:*:table/{table}/index/{index['IndexName']}"
            for index in table_definition(table)["GlobalSecondaryIndexes"]},
        "sqs": {f"arn:aws:sqs:*:*:{queue}"},
        "execute-api": {f"arn:aws:execute-api:*:*:*/{cfg['api_gateway_stage']}"
                        f"/{method}/@connections/*" for method in ("POST", "DELETE")},
        "logs": {f"arn:aws:logs:*:*:log-group:/aws/lambda/{cfg['app_name']}-{stage}-*"},
        "ssm": {f"arn:aws:ssm:*:*:parameter{env.get('TOKEN_SECRET_PARAMETER')}"},
        "kms": {"arn:aws:kms:*:*:key/*"},
    }
    for action, resources in granted(policy(stage)).items():
        assert "*" not in resources, action
        assert set(resources) <= allowed_by_service[action.split(":")[0]], action


def test_kms_decrypt_only_through_ssm_for_the_signing_key():
    _, env = stage_config("prod")
    [statement] = [s for s in policy("prod")["Statement"] if "kms:Decrypt" in s["Action"]]
    condition = statement["Condition"]["StringLike"]
    assert condition["kms:ViaService"] == "ssm.*.amazonaws.com"
    assert condition["kms:EncryptionContext:PARAMETER_ARN"] == (
        f"arn:aws:ssm:*:*:parameter{env['TOKEN_SECRET_PARAMETER']}"
    )
