"""Alarms, a dashboard and log groups: defined once, written for CloudFormation and Terraform.

What an operator watches is described here, in one place, with metric names
taken from :mod:`chalicelib.metrics` (the only code that names a metric); two
renderers write it in each deployment format:

* the observability resources, parameters and condition of the merge template
  ``deploy/cloudformation.json`` (the rest of that file is left as it is);
* all of ``deploy/terraform/switchboard_observability.tf.json`` (Terraform's
  JSON syntax, beside the ``chalice.tf.json`` that ``chalice package`` writes).

Every function of the app is watched (its log group, error filter, errors
and throttles), as :mod:`deploy.project` lists them. After changing anything
here or adding a function, run ``python -m deploy.generate``; the tests fail
while a file differs from what it writes.

Alarms: the fan-out DLQ not empty; the share of refused handshakes; management
API posts throttled (429) and failed; function errors and throttles; the age
of the oldest fan-out message; lines logged at ERROR. Each notifies the SNS
topic given as a parameter, if any. The dashboard (``switchboard-<stage>``)
shows those figures and the connection activity over time.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib import metrics
from chalicelib.metrics import COUNT, Metric
from deploy import project

NAMESPACE_PREFIX = "Switchboard/"
"""The stage's namespace is this plus the stage name (``POWERTOOLS_METRICS_NAMESPACE``)."""

LOGGED_ERRORS = Metric(
    "LoggedErrors", COUNT,
    "lines any function logged at ERROR (metric filters on the functions' log groups)",
)
LOG_METRICS: tuple[Metric, ...] = (LOGGED_ERRORS,)
"""Metrics that metric filters make from the logs, beside what the code emits as EMF."""
ERROR_LINES = '"[ERROR]"'
"""The filter pattern: Lambda's Python runtime starts every ERROR record with ``[ERROR]``."""

MAX_ALARM_QUERIES = 10
"""CloudWatch reads at most this many metrics in one alarm (the sum of every function's)."""


@functools.cache
def _stage() -> project.Stage:
    """The first stage: every stage has the same functions (:func:`project.every_stage`)."""
    return project.every_stage()[0]


@functools.cache
def functions() -> dict[str, str]:
    """The app's functions: Chalice's name (Terraform's) -> CloudFormation's logical id."""
    return {f.name: f.logical_id for f in _stage().functions}


def _log_group(name: str) -> str:
    """A function's log group, by the name every path gives the function."""
    return f"/aws/lambda/{_stage().app_name}-@@stage@@-{name}"

# -- references, rendered per format -----------------------------------------------
#
# A reference is a token such as "function:push" or "param:LogRetentionDays";
# inside the dashboard's text it is written "@@token@@".


@dataclass(frozen=True)
class Parameter:
    name: str
    """The CloudFormation parameter; Terraform's variable is its snake_case."""
    type: str  # "String" or "Number"
    default: str | int
    description: str
    allowed: tuple[int, ...] = ()
    minimum: int | None = None

    @property
    def variable(self) -> str:
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.name).lower()


RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                  2192, 2557, 2922, 3288, 3653)
PARAMETERS = (
    Parameter("AlarmTopicArn", "String", "",
              "An SNS topic ARN every alarm notifies (on ALARM and back to OK); empty: none."),
    Parameter("LogRetentionDays", "Number", 30,
              "Days the functions' log groups keep their logs.", allowed=RETENTION_DAYS),
    Parameter("RefusedConnectsPercent", "Number", 25,
              "Alarm when more than this percentage of handshakes is refused (of at least 10 "
              "in 5 minutes), in 2 of 3 periods.", minimum=1),
    Parameter("ThrottledPostsPerFiveMinutes", "Number", 100,
              "Alarm when more management API posts than this are throttled (429, retried) in "
              "5 minutes, in 2 of 3 periods.", minimum=1),
    Parameter("FailedPostsPerFiveMinutes", "Number", 10,
              "Alarm when more management API posts than this fail for good in 5 minutes.",
              minimum=0),
    Parameter("WorkerMessageAgeSeconds", "Number", 300,
              "Alarm when the oldest fan-out message has waited longer than this for "
              "3 minutes.", minimum=1),
)


@dataclass(frozen=True)
class Dialect:
    """How one format writes references: as a value, and inside a template string."""

    value: Callable[[str], Any]
    placeholder: Callable[[str], str]
    actions: Any
    sub: Callable[[str], Any]
    """A string with placeholders, as a value."""

    def text(self, template: str) -> str:
        return re.sub(r"@@([^@]+)@@", lambda m: self.placeholder(m.group(1)), template)

    def dimension(self, template: str) -> Any:
        """A dimension's value: the reference itself when it is nothing but one."""
        whole = re.fullmatch(r"@@([^@]+)@@", template)
        return self.value(whole.group(1)) if whole else self.sub(template)


def _cfn_placeholder(token: str) -> str:
    kind, _, name = token.partition(":")
    match kind:
        case "function":
            return f"${{{functions()[name]}}}"
        case "queue":
            return f"${{{_CFN_QUEUES[name]}.QueueName}}"
        case "api":
            return "${WebsocketAPI}"
        case "stage" | "param":
            return f"${{{name or 'StageName'}}}"
        case "region":
            return "${AWS::Region}"
        case "namespace":
            return NAMESPACE_PREFIX + "${StageName}"
        case "alarm":
            return f"${{{name}.Arn}}"
    raise ValueError(f"unknown reference {token!r}")


def _cfn_value(token: str) -> Any:
    kind, _, name = token.partition(":")
    if kind == "function":
        return {"Ref": functions()[name]}
    if kind == "queue":
        return {"Fn::GetAtt": [_CFN_QUEUES[name], "QueueName"]}
    if kind == "param":
        return {"Ref": name}
    return {"Fn::Sub": _cfn_placeholder(token)}


def _cfn_sub(template: str) -> Any:
    text = CFN.text(template)
    return {"Fn::Sub": text} if "${" in text else text


_CFN_QUEUES = {"fanout": "FanoutQueue", "dlq": "FanoutDeadLetterQueue"}
_TF_QUEUES = {"fanout": "fanout", "dlq": "fanout_dlq"}
_PARAMETERS = {parameter.name: parameter for parameter in PARAMETERS}


def _tf_placeholder(token: str) -> str:
    kind, _, name = token.partition(":")
    match kind:
        case "function":
            return f"${{aws_lambda_function.{name}.function_name}}"
        case "queue":
            return f"${{aws_sqs_queue.{_TF_QUEUES[name]}.name}}"
        case "api":
            return "${aws_apigatewayv2_api.websocket_api.id}"
        case "stage":
            return "${local.switchboard_stage}"
        case "region":
            return "${data.aws_region.chalice.name}"
        case "namespace":
            return NAMESPACE_PREFIX + "${local.switchboard_stage}"
        case "alarm":
            return f"${{aws_cloudwatch_metric_alarm.{_tf_alarm_name(name)}.arn}}"
        case "param":
            return f"${{var.{_PARAMETERS[name].variable}}}"
    raise ValueError(f"unknown reference {token!r}")


def _tf_sub(template: str) -> str:
    return TF.text(template)


CFN = Dialect(
    value=_cfn_value,
    placeholder=_cfn_placeholder,
    actions={"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]},
    sub=_cfn_sub,
)
TF = Dialect(
    value=_tf_placeholder,
    placeholder=_tf_placeholder,
    actions='${var.alarm_topic_arn == "" ? [] : [var.alarm_topic_arn]}',
    sub=_tf_sub,
)


def _tf_alarm_name(resource: str) -> str:
    """Terraform's name for the alarm CloudFormation calls ``resource`` (``...Alarm``)."""
    return _snake(resource.removesuffix("Alarm"))


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# -- alarms ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """One metric an alarm reads."""

    namespace: str
    """A literal namespace, or ``@@namespace@@`` for the stage's."""
    metric: str
    stat: str
    period: int
    dimensions: Mapping[str, str] = field(default_factory=dict)
    """Values are literals or ``@@token@@`` references."""


@dataclass(frozen=True)
class Alarm:
    resource: str
    """The CloudFormation logical id; Terraform's resource is its snake_case without 'Alarm'."""
    slug: str
    """The alarm is named ``switchboard-<stage>-<slug>``."""
    description: str
    queries: tuple[Query, ...]
    threshold: str | int
    """A number, or ``param:Name``."""
    evaluation_periods: int = 1
    datapoints: int = 1
    expression: str | None = None
    """Metric math over the queries (``m1``, ``m2``, ...); None reads the one query."""

    @property
    def terraform_name(self) -> str:
        return _tf_alarm_name(self.resource)


STAGE = "@@namespace@@"
SERVICE = {metrics.SERVICE_DIMENSION: metrics.DEFAULT_SERVICE}


def _ours(metric: Metric, stat: str = "Sum", period: int = 300) -> Query:
    return Query(STAGE, metric.name, stat, period, SERVICE)


def _over_functions(resource: str, slug: str, description: str, metric: str
                    ) -> tuple[Alarm, ...]:
    """Alarms on the sum of every function's ``metric``: one while the app's functions fit
    in one alarm, then one per group that does (the metric math counts as one metric)."""
    names = list(functions())
    size = MAX_ALARM_QUERIES - 1
    groups = [names[start:start + size] for start in range(0, len(names), size)]
    return tuple(
        Alarm(
            resource if n == 1 else resource.replace("Alarm", f"{n}Alarm"),
            slug if n == 1 else f"{slug}-{n}",
            description if len(groups) == 1
            else f"{description} Functions {', '.join(group)}.",
            tuple(Query("AWS/Lambda", metric, "Sum", 60,
                        {"FunctionName": f"@@function:{name}@@"}) for name in group),
            0,
            expression=" + ".join(f"FILL(m{i}, 0)" for i in range(1, len(group) + 1)),
        )
        for n, group in enumerate(groups, start=1)
    )


@functools.cache
def alarms() -> tuple[Alarm, ...]:
    """Every alarm; those over the functions' metrics watch every function of the app."""
    return (
        Alarm(
            "DeadLetterQueueAlarm", "fanout-dlq-not-empty",
            "Fan-out messages reached the dead-letter queue: their targets never got the frame.",
            (Query("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 60,
                   {"QueueName": "@@queue:dlq@@"}),),
            0,
        ),
        Alarm(
            "RefusedConnectsAlarm", "refused-connects",
            "A large share of WebSocket handshakes is refused (bad or expired tokens, "
            "registration failures); the Reason dimension of ConnectsRefused says which.",
            (_ours(metrics.CONNECTS_ACCEPTED), _ours(metrics.CONNECTS_REFUSED)),
            "param:RefusedConnectsPercent", 3, 2,
            "IF(FILL(m1, 0) + FILL(m2, 0) >= 10, "
            "100 * FILL(m2, 0) / (FILL(m1, 0) + FILL(m2, 0)), 0)",
        ),
        Alarm(
            "ManagementThrottledAlarm", "management-throttled",
            "API Gateway's management API answers 429 to many posts (the account's "
            "@connections throttle, or clients' full buffers); they are retried.",
            (_ours(metrics.POSTS_THROTTLED),), "param:ThrottledPostsPerFiveMinutes", 3, 2,
        ),
        Alarm(
            "ManagementFailuresAlarm", "management-failures",
            "Posts to connections failed for good (after retries, or at the deadline).",
            (_ours(metrics.POSTS_FAILED),), "param:FailedPostsPerFiveMinutes",
        ),
        *_over_functions(
            "FunctionErrorsAlarm", "function-errors",
            "A Switchboard function ended in an error (Lambda's Errors, all functions).",
            "Errors",
        ),
        *_over_functions(
            "FunctionThrottlesAlarm", "function-throttles",
            "Lambda throttled a Switchboard function (the account's concurrency, or a "
            "subscription's maximum concurrency).",
            "Throttles",
        ),
        Alarm(
            "WorkerMessageAgeAlarm", "worker-message-age",
            "The fan-out worker falls behind: the oldest queued batch is waiting too long.",
            (Query("AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum", 60,
                   {"QueueName": "@@queue:fanout@@"}),),
            "param:WorkerMessageAgeSeconds", 3, 3,
        ),
        Alarm(
            "LoggedErrorsAlarm", "logged-errors",
            "A function logged an error it handled (a failed action answered 'internal', a "
            "failed registration or cleanup): see the functions' logs.",
            (Query(STAGE, LOGGED_ERRORS.name, "Sum", 300),), 0,
        ),
    )


def _threshold(alarm: Alarm, dialect: Dialect) -> Any:
    if isinstance(alarm.threshold, str):
        return dialect.value(alarm.threshold)
    return alarm.threshold


def _cfn_alarm(alarm: Alarm) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "AlarmName": CFN.sub(f"switchboard-@@stage@@-{alarm.slug}"),
        "AlarmDescription": alarm.description,
    }
    if alarm.expression is None:
        [query] = alarm.queries
        properties.update(
            Namespace=CFN.sub(query.namespace),
            MetricName=query.metric,
            Dimensions=[{"Name": k, "Value": CFN.dimension(v)}
                        for k, v in query.dimensions.items()],
            Statistic=query.stat,
            Period=query.period,
        )
        if not properties["Dimensions"]:
            del properties["Dimensions"]
    else:
        properties["Metrics"] = [
            {"Id": "e1", "Expression": alarm.expression, "Label": alarm.slug, "ReturnData": True},
            *(
                {
                    "Id": f"m{n}",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": CFN.sub(q.namespace),
                            "MetricName": q.metric,
                            **({"Dimensions": [{"Name": k, "Value": CFN.dimension(v)}
                                               for k, v in q.dimensions.items()]}
                               if q.dimensions else {}),
                        },
                        "Period": q.period,
                        "Stat": q.stat,
                    },
                    "ReturnData": False,
                }
                for n, q in enumerate(alarm.queries, 1)
            ),
        ]
    properties.update(
        EvaluationPeriods=alarm.evaluation_periods,
        DatapointsToAlarm=alarm.datapoints,
        Threshold=_threshold(alarm, CFN),
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",
        AlarmActions=CFN.actions,
        OKActions=CFN.actions,
    )
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": properties}


def _tf_alarm(alarm: Alarm) -> dict[str, Any]:
    block: dict[str, Any] = {
        "alarm_name": TF.sub(f"switchboard-@@stage@@-{alarm.slug}"),
        "alarm_description": alarm.description,
    }
    if alarm.expression is None:
        [query] = alarm.queries
        block.update(namespace=TF.sub(query.namespace), metric_name=query.metric,
                     statistic=query.stat, period=query.period)
        if query.dimensions:
            block["dimensions"] = {k: TF.sub(v) for k, v in query.dimensions.items()}
    else:
        block["metric_query"] = [
            {"id": "e1", "expression": alarm.expression, "label": alarm.slug,
             "return_data": True},
            *(
                {
                    "id": f"m{n}",
                    "metric": {
                        "namespace": TF.sub(q.namespace),
                        "metric_name": q.metric,
                        "period": q.period,
                        "stat": q.stat,
                        **({"dimensions": {k: TF.sub(v) for k, v in q.dimensions.items()}}
                           if q.dimensions else {}),
                    },
                }
                for n, q in enumerate(alarm.queries, 1)
            ),
        ]
    block.update(
        evaluation_periods=alarm.evaluation_periods,
        datapoints_to_alarm=alarm.datapoints,
        threshold=_threshold(alarm, TF),
        comparison_operator="GreaterThanThreshold",
        treat_missing_data="notBreaching",
        alarm_actions=TF.actions,
        ok_actions=TF.actions,
    )
    return block


# -- the dashboard --------------------------------------------------------------------


def _line(metric: Metric, stat: str = "Sum", label: str | None = None) -> list[Any]:
    return [STAGE, metric.name, *_flat(SERVICE),
            {"stat": stat, "label": label or metric.name}]


def _flat(dimensions: Mapping[str, str]) -> list[str]:
    return [part for pair in dimensions.items() for part in pair]


def _search(metric: Metric, group: Sequence[str], stat: str = "Sum") -> list[Any]:
    keys = ",".join([STAGE, *group, metrics.SERVICE_DIMENSION])
    expression = f"SEARCH('{{{keys}}} MetricName=\"{metric.name}\"', '{stat}', 60)"
    return [{"expression": expression, "id": f"e_{metric.name.lower()}_{len(group)}"}]


def _graph(title: str, lines: list[list[Any]], x: int, y: int, width: int = 12,
           stat: str = "Sum") -> dict[str, Any]:
    return {
        "type": "metric", "x": x, "y": y, "width": width, "height": 6,
        "properties": {"title": title, "view": "timeSeries", "stacked": False,
                       "region": "@@region@@", "period": 60, "stat": stat,
                       "metrics": lines},
    }


def _per_function(metric: str, stat: str) -> list[list[Any]]:
    return [["AWS/Lambda", metric, "FunctionName", f"@@function:{name}@@",
             {"stat": stat, "label": f"{name} {metric}"}] for name in functions()]


def dashboard() -> dict[str, Any]:
    """The stage's dashboard body, with ``@@token@@`` references."""
    m = metrics
    return {"widgets": [
        _graph("Connections: accepted, refused, closed (per minute)", [
            _line(m.CONNECTS_ACCEPTED), _line(m.CONNECTS_REFUSED), _line(m.DISCONNECTS),
            ["AWS/ApiGateway", "ConnectCount", "ApiId", "@@api:@@", "Stage", "@@stage@@",
             {"stat": "Sum", "label": "API Gateway $connect requests"}],
        ], 0, 0),
        _graph("Refused handshakes by reason", [_search(m.CONNECTS_REFUSED, ["Reason"])],
               12, 0),
        _graph("Frames by outcome (ok or error code)", [_search(m.FRAMES, ["Outcome"])], 0, 6),
        _graph("Frames by action and outcome", [_search(m.FRAMES, ["Action", "Outcome"])],
               12, 6),
        _graph("Posts to connections", [
            _line(m.POSTS_DELIVERED), _line(m.POSTS_GONE), _line(m.POSTS_FAILED),
            _line(m.POSTS_THROTTLED, label="PostsThrottled (429, retried)"),
        ], 0, 12),
        _graph("Fan-out duration (ms)", [
            _line(m.FANOUT_DURATION, "p50", "p50"), _line(m.FANOUT_DURATION, "p99", "p99"),
            _line(m.FANOUT_DURATION, "Maximum", "max"),
        ], 12, 12),
        _graph("Fan-out queue", [
            _line(m.TARGETS_QUEUED), _line(m.WORKER_BATCH_FAILURES),
            ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", "@@queue:fanout@@",
             {"stat": "Maximum", "label": "oldest message (s)", "yAxis": "right"}],
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "@@queue:dlq@@",
             {"stat": "Maximum", "label": "dead-letter queue"}],
        ], 0, 18),
        _graph("History writes, unreadable items, logged errors", [
            _line(m.HISTORY_WRITES), _line(m.UNREADABLE_ITEMS), [STAGE, LOGGED_ERRORS.name,
                                     {"stat": "Sum", "label": LOGGED_ERRORS.name}],
        ], 12, 18),
        _graph("Function errors and throttles",
               _per_function("Errors", "Sum") + _per_function("Throttles", "Sum"), 0, 24),
        _graph("Function duration p99 (ms)", _per_function("Duration", "p99"), 12, 24),
        {
            "type": "alarm", "x": 0, "y": 30, "width": 24, "height": 4,
            "properties": {"title": "Alarms",
                           "alarms": [f"@@alarm:{alarm.resource}@@" for alarm in alarms()]},
        },
    ]}


def dashboard_text() -> str:
    return json.dumps(dashboard(), separators=(",", ":"))


# -- log groups and metric filters ------------------------------------------------------


def cloudformation_resources() -> dict[str, Any]:
    resources: dict[str, Any] = {}
    for name, resource in functions().items():
        resources[f"{resource}LogGroup"] = {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {
                "LogGroupName": CFN.sub(_log_group(name)),
                "RetentionInDays": {"Ref": "LogRetentionDays"},
            },
        }
        resources[f"{resource}ErrorsFilter"] = {
            "Type": "AWS::Logs::MetricFilter",
            "Properties": {
                "LogGroupName": {"Ref": f"{resource}LogGroup"},
                "FilterPattern": ERROR_LINES,
                "MetricTransformations": [{
                    "MetricNamespace": CFN.sub(STAGE),
                    "MetricName": LOGGED_ERRORS.name,
                    "MetricValue": "1",
                    "DefaultValue": 0,
                    "Unit": LOGGED_ERRORS.unit,
                }],
            },
        }
    for alarm in alarms():
        resources[alarm.resource] = _cfn_alarm(alarm)
    resources["Dashboard"] = {
        "Type": "AWS::CloudWatch::Dashboard",
        "Properties": {
            "DashboardName": CFN.sub("switchboard-@@stage@@"),
            "DashboardBody": CFN.sub(dashboard_text()),
        },
    }
    return resources


def cloudformation_parameters() -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    for p in PARAMETERS:
        parameter: dict[str, Any] = {"Type": p.type, "Default": p.default,
                                     "Description": p.description}
        if p.allowed:
            parameter["AllowedValues"] = list(p.allowed)
        if p.minimum is not None:
            parameter["MinValue"] = p.minimum
        parameters[p.name] = parameter
    return parameters


CONDITIONS = {"HasAlarmTopic": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]}}
OUTPUTS = {
    "DashboardName": {"Value": {"Ref": "Dashboard"}},
}


def terraform() -> dict[str, Any]:
    variables = {}
    for p in PARAMETERS:
        variable: dict[str, Any] = {"description": p.description,
                                    "type": "number" if p.type == "Number" else "string",
                                    "default": p.default}
        variables[p.variable] = variable
    log_groups = {
        name: {"name": TF.sub(f"/aws/lambda/@@function:{name}@@"),
               "retention_in_days": "${var.log_retention_days}"}
        for name in functions()
    }
    filters = {
        f"{name}_errors": {
            "name": TF.sub(f"switchboard-@@stage@@-{name}-errors"),
            "pattern": ERROR_LINES,
            "log_group_name": f"${{aws_cloudwatch_log_group.{name}.name}}",
            "metric_transformation": [{
                "name": LOGGED_ERRORS.name,
                "namespace": TF.sub(STAGE),
                "value": "1",
                "default_value": "0",
                "unit": LOGGED_ERRORS.unit,
            }],
        }
        for name in functions()
    }
    return {
        "variable": variables,
        "resource": {
            "aws_cloudwatch_log_group": log_groups,
            "aws_cloudwatch_log_metric_filter": filters,
            "aws_cloudwatch_metric_alarm": {a.terraform_name: _tf_alarm(a) for a in alarms()},
            "aws_cloudwatch_dashboard": {
                "switchboard": {
                    "dashboard_name": TF.sub("switchboard-@@stage@@"),
                    "dashboard_body": TF.sub(dashboard_text()),
                },
            },
        },
        "output": {"dashboard_name": {
            "value": "${aws_cloudwatch_dashboard.switchboard.dashboard_name}"}},
    }
