"""``--state-dir``: the embedded store kept across restarts, through the public APIs.

moto keeps everything in memory and its objects cannot be pickled, so the
gateway saves what it reads back through the services' own APIs when it stops
— every DynamoDB table (definition, TTL and items), every SSM parameter
(values decrypted) and every SQS queue with its attributes — and restores it
before the declared resources are created, which then find them and keep
them. Messages waiting in queues are not kept (receiving them to save them
would change them).

A gateway that is killed (SIGKILL, a crash) saves nothing, and what its last
stop saved is then older than what its clients saw: restoring those items
would hand out again positions (a stream's ``seq``, say) that clients already
hold for other data. So a running gateway leaves a marker beside the state,
which a clean stop removes; a restore that finds it keeps the tables'
definitions, the parameters and the queues, and starts the tables empty.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

logger = logging.getLogger("switchboard_local.gateway")

STATE_FILE = "store.json"
RUNNING_MARKER = "running"
"""Present while a gateway runs on the state: found at start, the last run was killed."""
FORMAT = 1


def save(directory: Path) -> Path:
    """Write the store's tables, parameters and queues to ``directory/store.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, "tables": _tables(), "parameters": _parameters(),
             "queues": _queues()}
    path = directory / STATE_FILE
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(state, default=str))
    partial.replace(path)
    (directory / RUNNING_MARKER).unlink(missing_ok=True)
    return path


def restore(directory: Path) -> str | None:
    """Recreate what :func:`save` wrote; a summary line, or None when nothing was saved."""
    path = directory / STATE_FILE
    marker = directory / RUNNING_MARKER
    killed = marker.is_file()
    directory.mkdir(parents=True, exist_ok=True)
    marker.touch()
    if not path.is_file():
        return None
    state = json.loads(path.read_text())
    if state.get("format") != FORMAT:
        logger.warning("%s has format %s, not %s: starting empty", path, state.get("format"),
                       FORMAT)
        return None
    if killed:
        logger.warning(
            "the last gateway on %s was not stopped cleanly: its saved items are older than "
            "what clients saw, so the tables start empty", directory,
        )
        state["tables"] = [{**table, "items": []} for table in state["tables"]]
    for table in state["tables"]:
        _restore_table(table)
    ssm = boto3.client("ssm")
    for parameter in state["parameters"]:
        ssm.put_parameter(**parameter, Overwrite=True)
    sqs = boto3.client("sqs")
    for queue in state["queues"]:
        try:
            sqs.create_queue(QueueName=queue["name"], Attributes=queue["attributes"])
        except ClientError:  # it exists with other attributes: the saved ones win
            url = sqs.get_queue_url(QueueName=queue["name"])["QueueUrl"]
            sqs.set_queue_attributes(QueueUrl=url, Attributes=queue["attributes"])
    items = sum(len(t["items"]) for t in state["tables"])
    return (f"restored {len(state['tables'])} tables ({items} items), "
            f"{len(state['parameters'])} parameters, {len(state['queues'])} queues from {path}")


def _tables() -> list[dict[str, Any]]:
    client = boto3.client("dynamodb")
    tables = []
    for page in client.get_paginator("list_tables").paginate():
        for name in page["TableNames"]:
            description = client.describe_table(TableName=name)["Table"]
            ttl = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            items = [
                item
                for scan in client.get_paginator("scan").paginate(TableName=name)
                for item in scan["Items"]
            ]
            tables.append({
                "definition": _create_arguments(description),
                "ttl": ttl.get("AttributeName") if ttl.get("TimeToLiveStatus") == "ENABLED"
                else None,
                "items": [json.loads(json.dumps(item, default=_bytes)) for item in items],
            })
    return tables


def _create_arguments(description: dict[str, Any]) -> dict[str, Any]:
    provisioned = description.get("BillingModeSummary", {}).get("BillingMode") != "PAY_PER_REQUEST"
    arguments: dict[str, Any] = {
        "TableName": description["TableName"],
        "KeySchema": description["KeySchema"],
        "AttributeDefinitions": description["AttributeDefinitions"],
    }

    def throughput(source: dict[str, Any]) -> dict[str, int]:
        values = source.get("ProvisionedThroughput", {})
        return {"ReadCapacityUnits": int(values.get("ReadCapacityUnits") or 5),
                "WriteCapacityUnits": int(values.get("WriteCapacityUnits") or 5)}

    if provisioned:
        arguments["ProvisionedThroughput"] = throughput(description)
    else:
        arguments["BillingMode"] = "PAY_PER_REQUEST"
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if description.get(key):
            arguments[key] = [
                {
                    "IndexName": index["IndexName"], "KeySchema": index["KeySchema"],
                    "Projection": index["Projection"],
                    **({"ProvisionedThroughput": throughput(index)}
                       if provisioned and key.startswith("Global") else {}),
                }
                for index in description[key]
            ]
    if description.get("StreamSpecification", {}).get("StreamEnabled"):
        arguments["StreamSpecification"] = description["StreamSpecification"]
    return arguments


def _bytes(value: Any) -> Any:
    """Items are kept in DynamoDB's typed JSON; binary values as base64 text."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    raise TypeError(type(value).__name__)


def _revive(value: Any) -> Any:
    """The typed JSON of :func:`_bytes` back into what the client sends (bytes for B, BS)."""
    if isinstance(value, dict):
        return {
            key: base64.b64decode(item) if key == "B" and isinstance(item, str)
            else [base64.b64decode(v) for v in item]
            if key == "BS" and isinstance(item, list) else _revive(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_revive(item) for item in value]
    return value


def _restore_table(table: dict[str, Any]) -> None:
    client = boto3.client("dynamodb")
    name = table["definition"]["TableName"]
    with contextlib.suppress(client.exceptions.ResourceInUseException):
        client.create_table(**table["definition"])
    client.get_waiter("table_exists").wait(TableName=name,
                                           WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    if table["ttl"]:
        client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True,
                                                     "AttributeName": table["ttl"]},
        )
    items = [_revive(item) for item in table["items"]]
    for start in range(0, len(items), 25):
        requests = [{"PutRequest": {"Item": item}} for item in items[start:start + 25]]
        pending: dict[str, Any] = {name: requests}
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


def _parameters() -> list[dict[str, Any]]:
    client = boto3.client("ssm")
    names = [
        parameter["Name"]
        for page in client.get_paginator("describe_parameters").paginate()
        for parameter in page["Parameters"]
    ]
    saved = []
    for start in range(0, len(names), 10):
        answer = client.get_parameters(Names=names[start:start + 10], WithDecryption=True)
        saved += [{"Name": p["Name"], "Value": p["Value"], "Type": p["Type"]}
                  for p in answer["Parameters"]]
    return saved


def _queues() -> list[dict[str, Any]]:
    client = boto3.client("sqs")
    saved = []
    for url in client.list_queues().get("QueueUrls", []):
        attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
            "Attributes"]
        kept = {k: v for k, v in attributes.items() if k in _SETTABLE}
        saved.append({"name": url.rsplit("/", 1)[-1], "attributes": kept})
    # Dead-letter queues first, so a redrive policy finds its target.
    return sorted(saved, key=lambda q: "RedrivePolicy" in q["attributes"])


_SETTABLE = (
    "DelaySeconds", "MaximumMessageSize", "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds", "VisibilityTimeout", "RedrivePolicy", "FifoQueue",
    "ContentBasedDeduplication",
)
