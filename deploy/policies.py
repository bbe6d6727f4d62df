"""One least-privilege IAM policy per function, derived from its code: the only code writing one.

Each function's actions are its code's AWS operations
(:mod:`deploy.operations`) mapped to IAM actions, plus what AWS does on its
behalf (Lambda writes its logs; an SQS subscription receives and deletes the
queue's messages), each on the one resource the stage names for it:

* DynamoDB on ``CONNECTIONS_TABLE`` (``Query``/``Scan`` also on its indexes);
* SQS on ``FANOUT_QUEUE_NAME`` and on the queue a subscription consumes;
* ``ssm:GetParameter`` on ``TOKEN_SECRET_PARAMETER``, and ``kms:Decrypt`` only
  through SSM for that parameter;
* ``execute-api:ManageConnections`` on the stage's ``@connections`` with only
  the HTTP methods the code uses (``POST`` to post, ``DELETE`` to close,
  ``GET`` to read): any API's in ``chalice deploy``'s files, which are written
  before the API exists; this API's in the CloudFormation and Terraform paths;
* the logs of the function's own log group.

Three renderings of the same statements: ``.chalice/policy-<stage>-<function>.json``
(``chalice deploy``, named per function in ``.chalice/config.json``), the
roles' policies in the merge template (``Fn::Sub`` over the stack's
resources) and in the Terraform override file (interpolations). A function
the generator has not seen yet falls back to ``.chalice/policy-<stage>.json``,
which grants nothing but its logs. ``python -m deploy.generate`` writes them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.registry import table_definition
from deploy import operations
from deploy.operations import Operation
from deploy.project import Function, Stage

# The stage variable naming the one resource each service's operations act on.
RESOURCE_VARIABLES = {
    "dynamodb": "CONNECTIONS_TABLE",
    "sqs": "FANOUT_QUEUE_NAME",
    "ssm": "TOKEN_SECRET_PARAMETER",
}
MANAGEMENT_SERVICE = "apigatewaymanagementapi"
# IAM authorises some operations under another action.
IAM_ACTION = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}
# Called for the functions by AWS, not by their code.
LOG_ACTIONS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")
"""Lambda writes each function's logs."""
SUBSCRIPTION_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
"""An SQS event source mapping polls the queue, deletes what was handled, reads the queue."""
INDEXED_ACTIONS = ("dynamodb:Query", "dynamodb:Scan")
IMPLIED_BY_SSM = "kms:Decrypt"
"""An SSM SecureString is decrypted by SSM with the caller's permission."""


class PolicyError(ValueError):
    """The code needs something no policy can be derived for; the message says what."""


@dataclass(frozen=True)
class Names:
    """How one format writes the parts of an ARN; literal names where it has no reference."""

    partition: str
    region: str
    account: str
    api: str
    api_stage: str
    table: str
    queue: Callable[[str], str]
    """The name of a queue, given its name in the stage."""
    function: Callable[[Function], str]
    parameter: Callable[[str], str]
    """An SSM parameter's name, given its name in the stage."""

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{resource}"


def chalice_names(stage: Stage) -> Names:
    """``chalice deploy``'s files: written before the API exists, for any region."""
    return Names(
        partition="aws", region="*", account="*", api="*",
        api_stage=stage.api_gateway_stage,
        table=stage.environment.get(RESOURCE_VARIABLES["dynamodb"], ""),
        queue=lambda name: name,
        function=lambda function: function.function_name,
        parameter=lambda name: name,
    )


@dataclass(frozen=True)
class Statement:
    sid: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    condition: Mapping[str, Mapping[str, str]] | None = None

    def document(self, resource: Callable[[str], Any]) -> dict[str, Any]:
        rendered: dict[str, Any] = {
            "Sid": self.sid,
            "Effect": "Allow",
            "Action": list(self.actions),
            "Resource": [resource(r) for r in self.resources],
        }
        if self.condition is not None:
            rendered["Condition"] = {
                test: {key: resource(value) for key, value in pairs.items()}
                for test, pairs in self.condition.items()
            }
        return rendered


def actions(function: Function, code: operations.Code | None = None) -> dict[str, set[str]]:
    """The IAM actions ``function`` needs, by the service whose resource they act on."""
    by_service: dict[str, set[str]] = {}
    for operation in operations.operations(function, code):
        by_service.setdefault(operation.service, set()).add(iam_action(operation))
    return by_service


def iam_action(operation: Operation) -> str:
    if operation.service == MANAGEMENT_SERVICE:
        return "execute-api:ManageConnections"
    model = operations.service_model(operation.service)
    prefix = str(model.metadata.get("signingName") or model.metadata["endpointPrefix"])
    action = f"{prefix}:{operation.name}"
    return IAM_ACTION.get(action, action)


def management_methods(function: Function, code: operations.Code | None = None) -> list[str]:
    """The HTTP methods ``function`` uses on ``@connections`` (botocore's model says which)."""
    model = operations.service_model(MANAGEMENT_SERVICE)
    return sorted({
        str(model.operation_model(operation.name).http["method"])
        for operation in operations.operations(function, code)
        if operation.service == MANAGEMENT_SERVICE
    })


def statements(stage: Stage, function: Function, names: Names,
               code: operations.Code | None = None) -> list[Statement]:
    """What ``function`` may do in ``stage``, each action on its one resource."""
    found = actions(function, code)
    env = stage.environment
    unknown = set(found) - set(RESOURCE_VARIABLES) - {MANAGEMENT_SERVICE}
    if unknown:
        raise PolicyError(
            f"{function.name} calls {', '.join(sorted(unknown))}: say in deploy/policies.py "
            "(RESOURCE_VARIABLES) which stage variable names the resource it acts on")
    result: list[Statement] = []
    table = env.get(RESOURCE_VARIABLES["dynamodb"])
    if "dynamodb" in found and table:
        result.append(Statement("ConnectionRegistry", tuple(sorted(found["dynamodb"])),
                                (names.arn("dynamodb", f"table/{names.table}"),)))
        indexed = sorted(found["dynamodb"] & set(INDEXED_ACTIONS))
        if indexed:
            result.append(Statement("ConnectionRegistryIndexes", tuple(indexed), tuple(
                names.arn("dynamodb", f"table/{names.table}/index/{index}")
                for index in _indexes())))
    methods = management_methods(function, code)
    if methods:
        result.append(Statement("ManageConnections", ("execute-api:ManageConnections",), tuple(
            names.arn("execute-api", f"{names.api}/{names.api_stage}/{method}/@connections/*")
            for method in methods)))
    parameter = env.get(RESOURCE_VARIABLES["ssm"])
    if "ssm" in found and parameter:
        arn = names.arn("ssm", f"parameter{names.parameter(parameter)}")
        result.append(Statement("TokenSigningKey", tuple(sorted(found["ssm"])), (arn,)))
        if "ssm:GetParameter" in found["ssm"]:
            result.append(Statement(
                "DecryptTokenSigningKeyThroughSsm", (IMPLIED_BY_SSM,),
                (names.arn("kms", "key/*"),),
                {"StringLike": {"kms:ViaService": f"ssm.{names.region}.amazonaws.com",
                                "kms:EncryptionContext:PARAMETER_ARN": arn}},
            ))
    queues: dict[str, set[str]] = {}
    queue = env.get(RESOURCE_VARIABLES["sqs"])
    if "sqs" in found and queue:
        queues.setdefault(queue, set()).update(found["sqs"])
    if function.subscription is not None:
        consumed = function.subscription.queue.rpartition(":")[2]
        queues.setdefault(consumed, set()).update(SUBSCRIPTION_ACTIONS)
    for n, (name, queue_actions) in enumerate(sorted(queues.items())):
        result.append(Statement("FanoutQueue" if n == 0 else f"Queue{n}",
                                tuple(sorted(queue_actions)),
                                (names.arn("sqs", names.queue(name)),)))
    log_group = names.arn("logs", f"log-group:/aws/lambda/{names.function(function)}")
    result.append(Statement("Logs", LOG_ACTIONS, (log_group, f"{log_group}:*")))
    return result


def document(stage: Stage, function: Function, names: Names | None = None,
             resource: Callable[[str], Any] = str,
             code: operations.Code | None = None) -> dict[str, Any]:
    """The policy document of ``function``'s role in ``stage``."""
    names = names or chalice_names(stage)
    return {"Version": "2012-10-17",
            "Statement": [s.document(resource) for s in statements(stage, function, names, code)]}


def fallback_document(stage: Stage) -> dict[str, Any]:
    """The stage's ``iam_policy_file``: a function no generator run has seen may only log."""
    log_groups = f"arn:aws:logs:*:*:log-group:/aws/lambda/{stage.function_prefix}*"
    return {"Version": "2012-10-17",
            "Statement": [Statement("Logs", LOG_ACTIONS, (log_groups,)).document(str)]}


def policy_file(stage: Stage, function: Function) -> str:
    """The file ``.chalice/config.json`` names for ``function`` in ``stage``."""
    return f"policy-{stage.name}-{function.name}.json"


def fallback_file(stage: Stage) -> str:
    return f"policy-{stage.name}.json"


def _indexes() -> list[str]:
    """The registry table's indexes, as the code defines the table."""
    definition = table_definition("any")
    return [str(index["IndexName"]) for index in definition.get("GlobalSecondaryIndexes", [])]


def same_for_every_stage(rendered: Iterable[tuple[str, Any]], what: str) -> Any:
    """The one rendering every stage agrees on (a template shared by all stages)."""
    values = dict(rendered)
    texts = {stage: json.dumps(value, sort_keys=True) for stage, value in values.items()}
    if len(set(texts.values())) != 1:
        raise PolicyError(f"{what} differs between stages {', '.join(sorted(texts))}: "
                          "one template cannot hold both")
    return next(iter(values.values()))
