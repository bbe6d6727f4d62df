"""Declared resources in the embedded store, as their templates describe them, and the state dir."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from switchboard_local.gateway import state
from tests.gateways import Running, start, stop

TINY = Path(__file__).parent / "tiny" / "app.py"


@pytest.fixture
def declared(tmp_path: Path) -> Iterator[tuple[Running, str]]:
    """The tiny app with a template declaring one resource of each kind, uniquely named."""
    from switchboard_local.gateway.server import GatewayOptions

    suffix = uuid.uuid4().hex[:8]
    (tmp_path / ".chalice").mkdir()
    (tmp_path / "app.py").write_text(TINY.read_text())
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps({
        "version": "2.0", "app_name": "tiny",
        "environment_variables": {"TINY_EVENTS": str(tmp_path / "events.jsonl")},
        "stages": {"dev": {}},
    }))
    key = [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    (tmp_path / "template.json").write_text(json.dumps({"Resources": {
        "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {
            "TableName": f"t-{suffix}",
            "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"}
                                     for n in ("pk", "sk", "other")],
            "KeySchema": key,
            "ProvisionedThroughput": {"ReadCapacityUnits": 2, "WriteCapacityUnits": 3},
            "LocalSecondaryIndexes": [{
                "IndexName": "byOther",
                "KeySchema": [key[0], {"AttributeName": "other", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"}}],
            "GlobalSecondaryIndexes": [{
                "IndexName": "inverted",
                "KeySchema": [{"AttributeName": "sk", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
                "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}}],
            "StreamSpecification": {"StreamViewType": "NEW_IMAGE"},
            "TimeToLiveSpecification": {"AttributeName": "expires", "Enabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        }},
        "Fifo": {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": f"q-{suffix}", "FifoQueue": True, "ContentBasedDeduplication": True,
            "DelaySeconds": 2, "SqsManagedSseEnabled": True}},
        "Setting": {"Type": "AWS::SSM::Parameter", "Properties": {
            "Name": f"/tiny/{suffix}", "Type": "StringList", "Value": "a,b"}},
    }}))
    options = GatewayOptions(project_dir=tmp_path, port=0, autoreload=False,
                             merge_template=tmp_path / "template.json")
    thread, running = start(options, tmp_path)
    try:
        yield running, suffix
    finally:
        # moto's state belongs to the test process: leave nothing for the next test.
        boto3.client("dynamodb").delete_table(TableName=f"t-{suffix}")
        sqs = boto3.client("sqs")
        sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=f"q-{suffix}.fifo")["QueueUrl"])
        boto3.client("ssm").delete_parameter(Name=f"/tiny/{suffix}")
        stop(thread)


def test_tables_queues_and_parameters_as_declared(declared: tuple[Running, str]) -> None:
    running, suffix = declared
    dynamodb = boto3.client("dynamodb")
    table = dynamodb.describe_table(TableName=f"t-{suffix}")["Table"]
    assert table["ProvisionedThroughput"]["WriteCapacityUnits"] == 3
    assert [i["IndexName"] for i in table["LocalSecondaryIndexes"]] == ["byOther"]
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["inverted"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    ttl = dynamodb.describe_time_to_live(TableName=f"t-{suffix}")["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires")
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=f"q-{suffix}.fifo")["QueueUrl"]  # FIFO names end so
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (attributes["FifoQueue"], attributes["ContentBasedDeduplication"],
            attributes["DelaySeconds"]) == ("true", "true", "2")
    parameter = boto3.client("ssm").get_parameter(Name=f"/tiny/{suffix}")["Parameter"]
    assert (parameter["Type"], parameter["Value"]) == ("StringList", "a,b")
    assert f"table t-{suffix} (created)" in running.gateway.created
    assert not running.gateway.warnings  # PITR and SSE are accepted without effect


def test_the_state_file_restores_tables_items_and_parameters(
    declared: tuple[Running, str], tmp_path: Path
) -> None:
    _, suffix = declared
    dynamodb = boto3.client("dynamodb")
    item: dict[str, Any] = {
        "pk": {"S": "p"}, "sk": {"S": "s"}, "other": {"S": "o"}, "n": {"N": "1.5"},
        "blob": {"B": b"\x00\xff"}, "blobs": {"BS": [b"\x01", b"\x02"]}, "set": {"SS": ["x"]},
        "nested": {"M": {"B": {"S": "a map key named B"}, "l": {"L": [{"BOOL": True}]}}},
    }
    dynamodb.put_item(TableName=f"t-{suffix}", Item=item)
    saved = state.save(tmp_path / "state")
    dynamodb.delete_table(TableName=f"t-{suffix}")
    boto3.client("ssm").delete_parameter(Name=f"/tiny/{suffix}")

    summary = state.restore(tmp_path / "state")

    assert summary is not None and summary.endswith(str(saved))
    restored = dynamodb.get_item(TableName=f"t-{suffix}", Key={"pk": {"S": "p"}, "sk": {"S": "s"}})
    assert restored["Item"] == item
    table = dynamodb.describe_table(TableName=f"t-{suffix}")["Table"]
    assert [i["IndexName"] for i in table["LocalSecondaryIndexes"]] == ["byOther"]
    ttl = dynamodb.describe_time_to_live(TableName=f"t-{suffix}")["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires"
    assert boto3.client("ssm").get_parameter(Name=f"/tiny/{suffix}")["Parameter"]["Value"] == "a,b"


def test_a_state_file_of_another_format_is_not_read(tmp_path: Path) -> None:
    (tmp_path / state.STATE_FILE).write_text(json.dumps({"format": 99}))
    assert state.restore(tmp_path) is None
    assert state.restore(tmp_path / "nothing-saved") is None
