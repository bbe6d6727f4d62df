"""What Switchboard merges into the templates ``chalice package`` writes, derived from the app.

For every function of the app (:mod:`deploy.project`), whatever its kind:

* CloudFormation (entries of the merge template ``deploy/cloudformation.json``):
  the function's name, ``<app>-<stage>-<function>`` as ``chalice deploy`` and
  Terraform name it (so its log group and its logs permission do not depend
  on the stack's name); the stack's table and queue in its variables (which
  also orders their creation); its role's own policy, scoped to this stack's
  API, table and queue (:mod:`deploy.policies`); for a subscription to the
  fan-out queue, the stack's queue and partial batch responses. The WebSocket
  stage gets its throttling.
* Terraform (``deploy/terraform/switchboard_override.tf.json``, an override
  file: Terraform allows one ``required_providers`` per module and
  ``chalice.tf.json`` already has one): the version constraints, each role's
  own policy scoped to this API, partial batch responses and the stage's
  throttling.

Both are shared by every stage: stage names appear as ``${StageName}`` and
``${local.switchboard_stage}``, and the generator refuses stages the one
template cannot describe.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from chalice.utils import to_cfn_resource_name

from deploy import operations, policies
from deploy.policies import Names
from deploy.project import Function, Stage

CFN_STAGE = "${StageName}"
TF_STAGE = "${local.switchboard_stage}"
# The merge template's own resources standing for what a stage variable names.
CFN_VARIABLES = {
    "CONNECTIONS_TABLE": {"Ref": "ConnectionsTable"},
    "FANOUT_QUEUE_NAME": {"Fn::GetAtt": ["FanoutQueue", "QueueName"]},
}
CFN_QUEUE = "FanoutQueue"
TF_QUEUE = "aws_sqs_queue.fanout"
TF_TABLE = "aws_dynamodb_table.connections"
PARTIAL_BATCH_RESPONSES = ["ReportBatchItemFailures"]
CFN_API_STAGE = "WebsocketAPIStage"
TF_API_STAGE = "websocket_api_stage"
TF_API = "aws_apigatewayv2_api.websocket_api"
# Chalice 1.34's chalice.tf.json requires Terraform >= 0.12.26, < 1.4.0 and the AWS
# provider >= 3.61.0, < 5; these files need Terraform 1.x and AWS provider 4.67 (the
# last 4.x, for the SQS subscription's scaling_config). An override file's constraint
# replaces the original's for the same component, so these must lie inside Chalice's.
TERRAFORM_VERSION = ">= 1.0.0, < 1.4.0"
TERRAFORM_PROVIDERS = {
    "aws": {"source": "hashicorp/aws", "version": ">= 4.67.0, < 5.0.0"},
    "null": {"source": "hashicorp/null", "version": ">= 2.0.0, < 4.0.0"},
}
THROTTLING = (("ThrottlingRateLimit", "throttling_rate_limit"),
              ("ThrottlingBurstLimit", "throttling_burst_limit"))
"""The stage's default route throttling: CloudFormation parameters, Terraform variables."""


def in_stage(value: str, stage: Stage, token: str) -> str:
    """``value`` with the stage's name, where it stands as a word, written as ``token``."""
    return re.sub(rf"(?<![A-Za-z0-9]){re.escape(stage.name)}(?![A-Za-z0-9])",
                  lambda _: token, value)


def cloudformation_names(stage: Stage) -> Names:
    fanout = stage.environment.get(policies.RESOURCE_VARIABLES["sqs"])
    return Names(
        partition="${AWS::Partition}", region="${AWS::Region}", account="${AWS::AccountId}",
        api="${WebsocketAPI}",
        api_stage=in_stage(stage.api_gateway_stage, stage, CFN_STAGE),
        table="${ConnectionsTable}",
        queue=lambda name: (f"${{{CFN_QUEUE}.QueueName}}" if name == fanout
                            else in_stage(name, stage, CFN_STAGE)),
        function=lambda function: f"{stage.app_name}-{CFN_STAGE}-{function.name}",
        parameter=lambda name: in_stage(name, stage, CFN_STAGE),
    )


def terraform_names(stage: Stage) -> Names:
    fanout = stage.environment.get(policies.RESOURCE_VARIABLES["sqs"])
    return Names(
        partition="${data.aws_partition.chalice.partition}",
        region="${data.aws_region.chalice.name}",
        account="${data.aws_caller_identity.chalice.account_id}",
        api=f"${{{TF_API}.id}}",
        api_stage=in_stage(stage.api_gateway_stage, stage, TF_STAGE),
        table=f"${{{TF_TABLE}.name}}",
        queue=lambda name: (f"${{{TF_QUEUE}.name}}" if name == fanout
                            else in_stage(name, stage, TF_STAGE)),
        function=lambda function: f"{stage.app_name}-{TF_STAGE}-{function.name}",
        parameter=lambda name: in_stage(name, stage, TF_STAGE),
    )


def _cfn_sub(text: str) -> Any:
    return {"Fn::Sub": text} if "${" in text else text


def _shared(stages: list[Stage], name: str, what: str,
            render: Callable[[Stage, Function], Any]) -> Any:
    """What ``render`` makes of function ``name``, the same in every stage."""
    return policies.same_for_every_stage(
        ((stage.name, render(stage, stage.function(name))) for stage in stages),
        f"{what} of {name}")


def cloudformation(stages: list[Stage], code: operations.Code | None = None) -> dict[str, Any]:
    """The merge template's entries for the app's functions, roles and stage."""
    resources: dict[str, Any] = {}
    for function in stages[0].functions:
        resources[function.logical_id] = _shared(
            stages, function.name, "the merge template's entry", _cfn_function)
        resources[function.role_logical_id] = _shared(
            stages, function.name, "the role's policy",
            lambda stage, each: _cfn_role(stage, each, code))
    if stages[0].websocket_api:
        resources[CFN_API_STAGE] = {"Properties": {"DefaultRouteSettings": {
            parameter: {"Ref": parameter} for parameter, _ in THROTTLING}}}
    return resources


def _cfn_function(stage: Stage, function: Function) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "FunctionName": {"Fn::Sub": f"{stage.app_name}-{CFN_STAGE}-{function.name}"},
    }
    variables = {name: value for name, value in CFN_VARIABLES.items()
                 if name in function.environment}
    if variables:
        properties["Environment"] = {"Variables": variables}
    fanout = stage.environment.get(policies.RESOURCE_VARIABLES["sqs"])
    if function.subscription is not None and function.subscription.queue == fanout:
        event = str(to_cfn_resource_name(function.subscription.resource_name))
        properties["Events"] = {event: {"Properties": {
            # Chalice writes the queue's ARN as an Fn::Sub; the merge replaces its text.
            "Queue": {"Fn::Sub": f"${{{CFN_QUEUE}.Arn}}"},
            "FunctionResponseTypes": PARTIAL_BATCH_RESPONSES,
        }}}
    return {"Properties": properties}


def _cfn_role(stage: Stage, function: Function, code: operations.Code | None) -> dict[str, Any]:
    document = policies.document(stage, function, cloudformation_names(stage), _cfn_sub, code)
    return {"Properties": {"Policies": [
        {"PolicyName": f"{function.role_logical_id}Policy", "PolicyDocument": document},
    ]}}


def terraform(stages: list[Stage], code: operations.Code | None = None) -> dict[str, Any]:
    """The whole override file."""
    resource: dict[str, Any] = {}
    fanout = stages[0].environment.get(policies.RESOURCE_VARIABLES["sqs"])
    for function in stages[0].functions:
        document = _shared(
            stages, function.name, "the role's policy",
            lambda stage, each: policies.document(stage, each, terraform_names(stage), str, code))
        resource.setdefault("aws_iam_role_policy", {})[function.role_name] = {
            "policy": json.dumps(document, indent=2)}
        subscription = function.subscription
        if subscription is not None and subscription.queue == fanout:
            resource.setdefault("aws_lambda_event_source_mapping", {})[
                subscription.resource_name] = {
                "event_source_arn": f"${{{TF_QUEUE}.arn}}",
                "function_response_types": PARTIAL_BATCH_RESPONSES,
            }
    if stages[0].websocket_api:
        resource["aws_apigatewayv2_stage"] = {TF_API_STAGE: {"default_route_settings": {
            variable: f"${{var.{variable}}}" for _, variable in THROTTLING}}}
    return {
        "terraform": {"required_version": TERRAFORM_VERSION,
                      "required_providers": TERRAFORM_PROVIDERS},
        "resource": resource,
    }
