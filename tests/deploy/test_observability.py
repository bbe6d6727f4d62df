"""Alarms, dashboard and log groups: written from one definition, watching metrics the code emits.

``deploy/observability.py`` defines them once, for every function of the app
(``deploy/project.py``), and ``python -m deploy.generate`` writes both formats
(``test_policy.py`` checks the committed files are what it writes); here every
alarm and dashboard line of the stage's namespace is checked to name a metric
:mod:`chalicelib.metrics` declares (with one of its dimension sets), and the
Terraform files to declare the tool versions the deployment guide states.
``tests/deploy/test_package.py`` runs cfn-lint on the packaged template and
Terraform itself on the Terraform files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import hcl2
import pytest
from packaging.specifiers import SpecifierSet

from chalicelib import metrics
from deploy import observability, project, templates
from deploy.observability import LOG_METRICS, NAMESPACE_PREFIX

PROJECT = Path(__file__).resolve().parents[2]
TEMPLATE = json.loads((PROJECT / "deploy/cloudformation.json").read_text())
TERRAFORM = json.loads((PROJECT / "deploy/terraform/switchboard_observability.tf.json").read_text())
DECLARED = {metric.name: metric for metric in (*metrics.METRICS, *LOG_METRICS)}
STAGE_NAMESPACE = {"Fn::Sub": NAMESPACE_PREFIX + "${StageName}"}
TF_NAMESPACE = NAMESPACE_PREFIX + "${local.switchboard_stage}"
FUNCTIONS = [f.logical_id for f in project.every_stage()[0].functions]
# The versions docs/deploy.md tells users to install for the Terraform path.
TERRAFORM_VERSION = "1.3.10"
AWS_PROVIDER_VERSION = "4.67.0"


def alarms() -> dict[str, dict[str, Any]]:
    return {name: resource["Properties"] for name, resource in TEMPLATE["Resources"].items()
            if resource.get("Type") == "AWS::CloudWatch::Alarm"}


def queries(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """Every metric an alarm reads, as {Namespace, MetricName, Dimensions}."""
    if "Metrics" not in alarm:
        return [{"Namespace": alarm["Namespace"], "MetricName": alarm["MetricName"],
                 "Dimensions": alarm.get("Dimensions", [])}]
    return [{"Dimensions": [], **query["MetricStat"]["Metric"]}
            for query in alarm["Metrics"] if "MetricStat" in query]


def check_declared(name: str, dimension_names: set[str]) -> None:
    assert name in DECLARED, f"{name} is not a metric chalicelib.metrics or a filter emits"
    metric = DECLARED[name]
    if metric in LOG_METRICS:
        assert dimension_names == set(), name
    else:
        allowed = [{metrics.SERVICE_DIMENSION, *group} for group in metric.dimensions]
        assert dimension_names in allowed, (name, dimension_names)


def test_every_alarm_of_the_stage_namespace_reads_a_metric_the_code_emits() -> None:
    ours = 0
    for name, alarm in alarms().items():
        for query in queries(alarm):
            if query["Namespace"] == STAGE_NAMESPACE:
                ours += 1
                dimensions = {d["Name"]: d["Value"] for d in query["Dimensions"]}
                check_declared(query["MetricName"], set(dimensions))
                if metrics.SERVICE_DIMENSION in dimensions:
                    assert dimensions[metrics.SERVICE_DIMENSION] == metrics.DEFAULT_SERVICE
            else:
                assert query["Namespace"] in ("AWS/SQS", "AWS/Lambda"), name
    assert ours >= 5


def test_the_alarms_operators_ask_for_are_there() -> None:
    read = {(q["Namespace"] if isinstance(q["Namespace"], str) else "ours", q["MetricName"],
             json.dumps(q["Dimensions"], sort_keys=True))
            for alarm in alarms().values() for q in queries(alarm)}
    names = {(namespace, metric) for namespace, metric, _ in read}
    dlq = json.dumps([{"Name": "QueueName",
                       "Value": {"Fn::GetAtt": ["FanoutDeadLetterQueue", "QueueName"]}}])
    queue = dlq.replace("FanoutDeadLetterQueue", "FanoutQueue")
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", dlq) in read
    assert ("AWS/SQS", "ApproximateAgeOfOldestMessage", queue) in read
    assert {("ours", "ConnectsRefused"), ("ours", "PostsThrottled"), ("ours", "PostsFailed"),
            ("ours", "LoggedErrors")} <= names
    for metric in ("Errors", "Throttles"):
        watched = {json.loads(d)[0]["Value"]["Ref"] for n, m, d in read
                   if (n, m) == ("AWS/Lambda", metric)}
        assert watched == set(FUNCTIONS), metric


def test_every_alarm_notifies_the_optional_topic() -> None:
    topic = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    assert TEMPLATE["Parameters"]["AlarmTopicArn"]["Default"] == ""
    assert len(alarms()) == len(observability.alarms())
    for alarm in alarms().values():
        assert alarm["AlarmActions"] == topic and alarm["OKActions"] == topic


def substituted(text: str) -> Any:
    """The dashboard body with every placeholder given a plain value, parsed."""
    return json.loads(re.sub(r"\$\{[^}]+\}", "x", text))


def dashboard_lines(body: Any) -> list[list[Any]]:
    return [line for widget in body["widgets"] if widget["type"] == "metric"
            for line in widget["properties"]["metrics"]]


def test_the_dashboard_shows_declared_metrics_and_every_alarm() -> None:
    body = substituted(TEMPLATE["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"])
    shown = set()
    for line in dashboard_lines(body):
        if isinstance(line[0], dict):
            expression = line[0]["expression"]
            found = re.fullmatch(r"SEARCH\('\{Switchboard/x,([\w,]+)\} MetricName=\"(\w+)\"', "
                                 r"'\w+', \d+\)", expression)
            assert found, expression
            check_declared(found.group(2), set(found.group(1).split(",")))
            shown.add(found.group(2))
        elif line[0] == "Switchboard/x":
            pairs = [item for item in line[2:] if isinstance(item, str)]
            check_declared(line[1], set(pairs[::2]))
            shown.add(line[1])
    assert shown == set(DECLARED), set(DECLARED) - shown
    [alarm_widget] = [w for w in body["widgets"] if w["type"] == "alarm"]
    assert len(alarm_widget["properties"]["alarms"]) == len(alarms())
    api = [line for line in dashboard_lines(body) if line[0] == "AWS/ApiGateway"]
    assert api and api[0][1] == "ConnectCount"


def test_log_groups_and_error_filters_for_every_function() -> None:
    resources = TEMPLATE["Resources"]
    for each in project.every_stage()[0].functions:
        function = each.logical_id
        group = resources[f"{function}LogGroup"]["Properties"]
        # The name every path gives the function (the merge template sets it).
        assert group["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/switchboard-${{StageName}}-"
                                                    f"{each.name}"}
        assert resources[function]["Properties"]["FunctionName"] == {
            "Fn::Sub": f"switchboard-${{StageName}}-{each.name}"}
        assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        errors = resources[f"{function}ErrorsFilter"]["Properties"]
        assert errors["LogGroupName"] == {"Ref": f"{function}LogGroup"}
        [transformation] = errors["MetricTransformations"]
        assert transformation["MetricName"] == observability.LOGGED_ERRORS.name
        assert transformation["MetricNamespace"] == STAGE_NAMESPACE


def test_terraform_has_the_same_alarms_as_cloudformation() -> None:
    tf_alarms = TERRAFORM["resource"]["aws_cloudwatch_metric_alarm"]
    cfn = {p["AlarmName"]["Fn::Sub"].replace("${StageName}", "S"): p for p in alarms().values()}
    tf = {a["alarm_name"].replace("${local.switchboard_stage}", "S"): a
          for a in tf_alarms.values()}
    assert set(tf) == set(cfn)
    for name, alarm in tf.items():
        if "metric_query" in alarm:
            tf_metrics = [q["metric"]["metric_name"] for q in alarm["metric_query"]
                          if "metric" in q]
            for q in alarm["metric_query"]:
                if "metric" in q and q["metric"]["namespace"] == TF_NAMESPACE:
                    check_declared(q["metric"]["metric_name"],
                                   set(q["metric"].get("dimensions", {})))
        else:
            tf_metrics = [alarm["metric_name"]]
            if alarm["namespace"] == TF_NAMESPACE:
                check_declared(alarm["metric_name"], set(alarm.get("dimensions", {})))
        assert tf_metrics == [q["MetricName"] for q in queries(cfn[name])], name
        assert alarm["evaluation_periods"] == cfn[name]["EvaluationPeriods"]
    dashboard = TERRAFORM["resource"]["aws_cloudwatch_dashboard"]["switchboard"]
    body = substituted(dashboard["dashboard_body"])
    assert len(dashboard_lines(body)) == len(dashboard_lines(substituted(
        TEMPLATE["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"])))


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_each_stage_writes_to_the_namespace_its_alarms_read(stage: str) -> None:
    config = json.loads((PROJECT / ".chalice/config.json").read_text())
    variables = {**config["environment_variables"],
                 **config["stages"][stage]["environment_variables"]}
    assert variables[metrics.NAMESPACE_VARIABLE] == NAMESPACE_PREFIX + stage
    assert variables[metrics.SERVICE_VARIABLE] == metrics.DEFAULT_SERVICE
    assert stage in TEMPLATE["Parameters"]["StageName"]["AllowedValues"]


def constraint(text: str) -> SpecifierSet:
    """A Terraform version constraint (``>= 1.0, < 1.4``) as a PEP 440 specifier set."""
    return SpecifierSet(",".join(part.replace(" ", "") for part in text.split(",")))


def unquoted(value: str) -> str:
    return value.strip('"')


def terraform_block() -> dict[str, Any]:
    """The version constraints: in the override file (one ``required_providers`` a module)."""
    override = json.loads((PROJECT / "deploy/terraform/switchboard_override.tf.json").read_text())
    with (PROJECT / "deploy/terraform/switchboard.tf").open() as source:
        assert "terraform" not in hcl2.load(source), "a second terraform block cannot load"
    return dict(override["terraform"])


def test_terraform_files_declare_the_versions_the_guide_states() -> None:
    block = terraform_block()
    assert block["required_providers"] == templates.TERRAFORM_PROVIDERS
    required = constraint(unquoted(block["required_version"]))
    aws = block["required_providers"]["aws"]
    assert unquoted(aws["source"]) == "hashicorp/aws"
    assert TERRAFORM_VERSION in required
    assert "1.4.0" not in required and "0.12.31" not in required
    assert AWS_PROVIDER_VERSION in constraint(unquoted(aws["version"]))
    assert "5.0.0" not in constraint(unquoted(aws["version"]))
    guide = (PROJECT / "docs/deploy.md").read_text()
    assert f"Terraform {TERRAFORM_VERSION}" in guide
    assert f"AWS provider {AWS_PROVIDER_VERSION}" in guide


def test_every_terraform_variable_used_is_declared() -> None:
    declared = set(TERRAFORM["variable"])
    with (PROJECT / "deploy/terraform/switchboard.tf").open() as source:
        parsed = hcl2.load(source)
    declared |= {unquoted(name) for block in parsed["variable"] for name in block}
    texts = json.dumps(TERRAFORM) + (PROJECT / "deploy/terraform/switchboard_override.tf.json"
                                     ).read_text()
    used = set(re.findall(r"var\.(\w+)", texts))
    assert used <= declared, used - declared


def test_the_operations_guide_lists_every_metric_and_alarm() -> None:
    guide = (PROJECT / "docs/operations.md").read_text()
    for name in DECLARED:
        assert f"| `{name}` |" in guide, name
    for alarm in observability.alarms():
        assert f"| `{alarm.slug}` |" in guide, alarm.slug
