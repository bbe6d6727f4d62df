"""The project's declared resources, created in the store; the local signing key.

Each ``AWS::DynamoDB::Table`` (keys, GSIs, LSIs, streams, TTL),
``AWS::SQS::Queue`` (attributes, redrive to its DLQ) and ``AWS::SSM::Parameter``
of the merge template is created through the same endpoints the app uses (the
``AWS_ENDPOINT_URL*`` variables the gateway set), so the app finds them under
the names its functions' environment gives. What exists already (a kept store,
an external DynamoDB) is kept. Properties without a local meaning (billing
details, point-in-time recovery, encryption keys, tags) are accepted and
ignored.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from functools import partial
from pathlib import Path
from typing import Any

import boto3

from switchboard_local.gateway.workdir import local_dir
from switchboard_local.template import PARAMETER, QUEUE, TABLE, Resource, Template, Unresolvable

logger = logging.getLogger("switchboard_local.gateway")

_QUEUE_ATTRIBUTES = (
    "DelaySeconds", "MaximumMessageSize", "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds", "VisibilityTimeout", "FifoQueue",
    "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit",
    "RedrivePolicy", "RedriveAllowPolicy",
)
_DEFAULT_THROUGHPUT = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
KEY_FILE = "signing-key"


def create_declared(template: Template, dynamodb_endpoint: str | None = None) -> list[str]:
    """Create every table, queue and parameter the template declares; returns a line each.

    ``dynamodb_endpoint`` overrides the environment's for the tables.
    """
    created: list[str] = []
    for resource in template.resources(TABLE):
        created.append(_attempt(template, resource, partial(_table, endpoint=dynamodb_endpoint)))
    for resource in template.resources(PARAMETER):
        created.append(_attempt(template, resource, _parameter))
    queues = template.resources(QUEUE)
    for resource in sorted(queues, key=lambda r: "RedrivePolicy" in r.properties):
        created.append(_attempt(template, resource, _queue))
    return [line for line in created if line]


def _attempt(template: Template, resource: Resource, create: Any) -> str:
    try:
        return str(create(template, resource))
    except Unresolvable as error:
        template.warn(f"resource {resource.logical_id} not created: {error}")
    except Exception as error:  # a refused definition must not stop the gateway
        template.warn(f"resource {resource.logical_id} not created: {error}")
    return ""


def _table(template: Template, resource: Resource, endpoint: str | None = None) -> str:
    properties = template.resolve(resource.properties)
    name = template.attributes[resource.logical_id]["Ref"]
    client = boto3.client("dynamodb", endpoint_url=endpoint)
    provisioned = properties.get("BillingMode", "PROVISIONED") != "PAY_PER_REQUEST"
    arguments: dict[str, Any] = {
        "TableName": name,
        "KeySchema": properties["KeySchema"],
        "AttributeDefinitions": properties["AttributeDefinitions"],
    }
    if provisioned:
        arguments["ProvisionedThroughput"] = properties.get(
            "ProvisionedThroughput", _DEFAULT_THROUGHPUT
        )
    else:
        arguments["BillingMode"] = "PAY_PER_REQUEST"
    if properties.get("GlobalSecondaryIndexes"):
        arguments["GlobalSecondaryIndexes"] = [
            _index(index, provisioned) for index in properties["GlobalSecondaryIndexes"]
        ]
    if properties.get("LocalSecondaryIndexes"):
        arguments["LocalSecondaryIndexes"] = [
            _index(index, False) for index in properties["LocalSecondaryIndexes"]
        ]
    stream = properties.get("StreamSpecification")
    if stream:
        arguments["StreamSpecification"] = {
            "StreamEnabled": True, "StreamViewType": stream["StreamViewType"],
        }
    try:
        client.create_table(**arguments)
        what = "created"
    except client.exceptions.ResourceInUseException:
        what = "kept"
    client.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    ttl = properties.get("TimeToLiveSpecification") or {}
    if ttl.get("Enabled") in (True, "true"):
        try:
            client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        except Exception as error:  # dynalite has no UpdateTimeToLive; DynamoDB refuses twice
            if "already enabled" not in str(error):
                template.warn(f"resource {resource.logical_id}: TTL not enabled: {error}")
    return f"table {name} ({what})"


def _index(index: dict[str, Any], provisioned: bool) -> dict[str, Any]:
    copied: dict[str, Any] = {
        key: index[key] for key in ("IndexName", "KeySchema", "Projection") if key in index
    }
    if provisioned:
        copied["ProvisionedThroughput"] = index.get("ProvisionedThroughput", _DEFAULT_THROUGHPUT)
    return copied


def _queue(template: Template, resource: Resource) -> str:
    properties = template.resolve(resource.properties)
    name = template.attributes[resource.logical_id]["QueueName"]
    attributes = {
        key: _attribute_text(properties[key]) for key in _QUEUE_ATTRIBUTES if key in properties
    }
    client = boto3.client("sqs")
    try:
        url = str(client.get_queue_url(QueueName=name)["QueueUrl"])
        if attributes:
            client.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        what = "kept"
    except client.exceptions.QueueDoesNotExist:
        url = str(client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])
        what = "created"
    template.attributes[resource.logical_id].update(Ref=url, QueueUrl=url)
    return f"queue {name} ({what})"


def _attribute_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _parameter(template: Template, resource: Resource) -> str:
    properties = template.resolve(resource.properties)
    name = template.attributes[resource.logical_id]["Ref"]
    client = boto3.client("ssm")
    client.put_parameter(
        Name=name, Value=str(properties["Value"]), Type=properties.get("Type", "String"),
        Overwrite=True,
    )
    template.attributes[resource.logical_id].update(
        Type=properties.get("Type", "String"), Value=str(properties["Value"])
    )
    return f"parameter {name}"


# -- the local signing key ---------------------------------------------------------------


def ensure_signing_key(parameter: str, project_dir: Path) -> str:
    """The SSM parameter holding the signing keys, created when the store lacks it.

    Its first value is random and kept in ``.switchboard-local/signing-key``
    (mode 0600), so tokens survive a restart; a parameter the store already
    holds (a kept state directory, a rotation made locally) is left as it is.
    """
    client = boto3.client("ssm")
    try:
        client.get_parameter(Name=parameter, WithDecryption=True)
        return f"signing key parameter {parameter} (kept)"
    except client.exceptions.ParameterNotFound:
        pass
    key_file = local_dir(project_dir) / KEY_FILE
    if not key_file.is_file():
        # Written whole, then linked into place: a gateway starting beside this one
        # sees either no file or the complete key, and the first link wins.
        draft = key_file.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(48) + "\n")
        try:
            os.link(draft, key_file)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    client.put_parameter(
        Name=parameter, Value=key_file.read_text().strip(), Type="SecureString", Overwrite=False,
        Description="local signing keys: the first signs, all verify",
    )
    return f"signing key parameter {parameter} (from {key_file.relative_to(project_dir)})"


def read_signing_keys(parameter: str) -> str:
    """The parameter's value as the app reads it (one key, or several comma-separated)."""
    answer = boto3.client("ssm").get_parameter(Name=parameter, WithDecryption=True)
    return str(answer["Parameter"]["Value"])
