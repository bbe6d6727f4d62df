"""Merge templates read for local use: parameters, names, intrinsics, and what is not emulated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from switchboard_local.project import ProjectError
from switchboard_local.template import QUEUE, TABLE, Template, Unresolvable, function_logical_id
from tests.gateways import REPO


def template(document: dict[str, Any], tmp_path: Path, **parameters: str) -> Template:
    path = tmp_path / "template.json"
    path.write_text(json.dumps(document))
    return Template.load(path, stage="dev", app_name="app", region="eu-west-1",
                         parameter_values=parameters)


def test_this_repositorys_template_names_its_resources_for_the_stage() -> None:
    loaded = Template.load(REPO / "deploy" / "cloudformation.json", stage="dev",
                           app_name="switchboard", region="us-east-1")
    assert loaded.parameters == {"StageName": "dev", "ThrottlingRateLimit": "100",
                                 "ThrottlingBurstLimit": "200", "AlarmTopicArn": "",
                                 "LogRetentionDays": "30", "RefusedConnectsPercent": "25",
                                 "ThrottledPostsPerFiveMinutes": "100",
                                 "FailedPostsPerFiveMinutes": "10",
                                 "WorkerMessageAgeSeconds": "300"}
    assert [r.logical_id for r in loaded.resources(TABLE)] == ["ConnectionsTable"]
    assert [r.logical_id for r in loaded.resources(QUEUE)] == ["FanoutDeadLetterQueue",
                                                               "FanoutQueue"]
    assert loaded.attributes["FanoutQueue"] == {
        "QueueName": "switchboard-dev-fanout",
        "Arn": "arn:aws:sqs:us-east-1:123456789012:switchboard-dev-fanout",
    }
    environments = loaded.function_environments()
    assert set(environments) == {"FanoutWorker", "WebsocketConnect", "WebsocketMessage",
                                 "WebsocketDisconnect", "Push", "ServerApi", "ExpireConnections"}
    assert environments["Push"] == {"CONNECTIONS_TABLE": "switchboard-dev-connections",
                                    "FANOUT_QUEUE_NAME": "switchboard-dev-fanout"}
    assert loaded.reports_batch_item_failures("fanout_worker")
    assert not loaded.reports_batch_item_failures("push")
    # Deploy-only overrides (each function's name, its role's policy, the stack's queue for
    # the subscription, the stage's throttling) are merged into Chalice's resources and have
    # no local meaning: one line for all of them.
    functions = ["ExpireConnections", "FanoutWorker", "Push", "ServerApi", "WebsocketConnect",
                 "WebsocketDisconnect", "WebsocketMessage"]
    [merged] = [w for w in loaded.warnings if "merged into resources Chalice generates" in w]
    assert merged.startswith("cloudformation.json: 16 properties merged into resources Chalice "
                             "generates are not emulated: ")
    listed = dict(
        item.rstrip(")").split(" (") for item in merged.split("not emulated: ")[1].split("; ")
    )
    assert {key: sorted(ids.split(", ")) for key, ids in listed.items()} == {
        "Properties.FunctionName": functions,
        "Properties.Policies": [f + "Role" for f in functions],
        "Properties.Events.FanoutWorkerSqsEventSource.Properties.Queue": ["FanoutWorker"],
        "Properties.DefaultRouteSettings": ["WebsocketAPIStage"],
    }
    assert set(loaded.warnings) - {merged} == {
        "cloudformation.json: 23 monitoring resources (AWS::CloudWatch::Alarm, "
        "AWS::CloudWatch::Dashboard, AWS::Logs::LogGroup, AWS::Logs::MetricFilter) watch AWS "
        "only: not created locally",
    }


def test_function_logical_ids_are_chalices() -> None:
    assert function_logical_id("fanout_worker") == "FanoutWorker"
    assert function_logical_id("websocket_message") == "WebsocketMessage"
    assert function_logical_id("api_handler") == "APIHandler"


DOCUMENT: dict[str, Any] = {
    "Parameters": {
        "Stage": {"Type": "String"},
        "Size": {"Type": "Number", "Default": 3},
        "Suffix": {"Type": "String"},
    },
    "Mappings": {"Sizes": {"dev": {"Batch": "5"}}},
    "Conditions": {
        "IsDev": {"Fn::Equals": [{"Ref": "Stage"}, "dev"]},
        "IsProd": {"Fn::Not": [{"Condition": "IsDev"}]},
        "Both": {"Fn::And": [{"Condition": "IsDev"}, {"Fn::Or": [{"Condition": "IsProd"},
                                                                   {"Condition": "IsDev"}]}]},
    },
    "Resources": {
        "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
        "OnlyInProd": {"Type": "AWS::SQS::Queue", "Condition": "IsProd", "Properties": {}},
        "Jobs": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "jobs", "FifoQueue": True}},
        "Param": {"Type": "AWS::SSM::Parameter",
                  "Properties": {"Name": {"Fn::Sub": "/${AWS::StackName}/p"}, "Type": "String",
                                 "Value": "v"}},
        "Bucket": {"Type": "AWS::S3::Bucket"},
        "ErrorsAlarm": {"Type": "AWS::CloudWatch::Alarm"},
        "LatencyAlarm": {"Type": "AWS::CloudWatch::Alarm"},
        "Logs": {"Type": "AWS::Logs::LogGroup"},
        "Worker": {"Properties": {
            "ReservedConcurrentExecutions": 2,
            "Environment": {"Variables": {
                "TABLE": {"Ref": "Table"},
                "TABLE_ARN": {"Fn::GetAtt": "Table.Arn"},
                "QUEUE_ARN": {"Fn::GetAtt": ["Jobs", "Arn"]},
                "SUB": {"Fn::Sub": ["${Name}-${Stage}-${Jobs.QueueName}-${!Literal}",
                                    {"Name": {"Ref": "AWS::Region"}}]},
                "JOINED": {"Fn::Join": [",", [{"Ref": "Size"}, "b"]]},
                "SELECTED": {"Fn::Select": [1, {"Fn::Split": ["/", "a/b/c"]}]},
                "MAPPED": {"Fn::FindInMap": ["Sizes", {"Ref": "Stage"}, "Batch"]},
                "CHOSEN": {"Fn::If": ["Both", "yes", "no"]},
                "ENCODED": {"Fn::Base64": "hi"},
                "GONE": {"Fn::If": ["IsProd", "x", {"Ref": "AWS::NoValue"}]},
                "IMPORTED": {"Fn::ImportValue": "elsewhere"},
                "MISSING": {"Ref": "Suffix"},
                "URL": {"Ref": "Jobs"},
            }},
        }},
    },
}


def test_intrinsics_resolve_to_local_values(tmp_path: Path) -> None:
    loaded = template(DOCUMENT, tmp_path)
    assert loaded.parameters == {"Stage": "dev", "Size": "3"}
    loaded.attributes["Jobs"].update(Ref="http://local/123456789012/jobs.fifo")
    environment = loaded.function_environments()["Worker"]
    assert environment == {
        "TABLE": "app-dev-Table",
        "TABLE_ARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/app-dev-Table",
        "QUEUE_ARN": "arn:aws:sqs:eu-west-1:123456789012:jobs.fifo",
        "SUB": "eu-west-1-dev-jobs.fifo-${Literal}",
        "JOINED": "3,b",
        "SELECTED": "b",
        "MAPPED": "5",
        "CHOSEN": "yes",
        "ENCODED": "aGk=",
        "URL": "http://local/123456789012/jobs.fifo",
    }
    assert loaded.attributes["Param"]["Ref"] == "/app-dev/p"
    assert "OnlyInProd" not in loaded.attributes  # its condition is false
    warnings = "\n".join(loaded.warnings)
    for expected in (
        "parameter Suffix has no value: pass --parameter Suffix=VALUE",
        "resource Bucket (AWS::S3::Bucket) is not created locally",
        "3 monitoring resources (AWS::CloudWatch::Alarm, AWS::Logs::LogGroup) watch AWS only",
        "1 property merged into resources Chalice generates is not emulated: "
        "Properties.ReservedConcurrentExecutions (Worker)",
        "Worker: variable IMPORTED: Fn::ImportValue is not emulated",
        "Worker: variable MISSING: Suffix is not a parameter or a resource created locally",
    ):
        assert expected in warnings
    assert "ErrorsAlarm" not in warnings, "monitoring resources are reported in one line"


def test_parameters_given_win_and_unknown_ones_are_reported(tmp_path: Path) -> None:
    loaded = template(DOCUMENT, tmp_path, Stage="prod", Suffix="x", Nope="1")
    assert loaded.parameters == {"Stage": "prod", "Size": "3", "Suffix": "x"}
    assert "OnlyInProd" in loaded.attributes
    assert any("--parameter Nope" in warning for warning in loaded.warnings)


def test_a_value_outside_allowed_values_is_reported(tmp_path: Path) -> None:
    document = {"Parameters": {"StageName": {"Type": "String", "AllowedValues": ["prod"]}},
                "Resources": {}}
    assert any("not one of its AllowedValues" in w for w in template(document, tmp_path).warnings)


def test_an_unknown_attribute_is_unresolvable(tmp_path: Path) -> None:
    loaded = template(DOCUMENT, tmp_path)
    with pytest.raises(Unresolvable, match=r"Fn::GetAtt Table\.StreamArn has no local value"):
        loaded.resolve({"Fn::GetAtt": ["Table", "StreamArn"]})
    with pytest.raises(Unresolvable, match="Fn::GetAZs is not emulated"):
        loaded.resolve({"Fn::GetAZs": ""})


@pytest.mark.parametrize("text", ["{not json", "[]", '{"Resources": []}'])
def test_an_unreadable_template_is_a_clear_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "t.json"
    path.write_text(text)
    with pytest.raises(ProjectError, match="merge template"):
        Template.load(path, stage="dev", app_name="a", region="us-east-1")
