"""The app as Chalice deploys it (``deploy/project.py``), and everything derived from it.

The functions are Chalice's own (its configuration loader and application
graph); a project given more functions — a lambda function, a schedule, a REST
route — gets their policies, log groups, alarms and template entries from
``python -m deploy.generate`` with no other edit.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chalicelib.settings import Settings
from deploy import project
from deploy.observability import MAX_ALARM_QUERIES

PROJECT = project.PROJECT
STAGES = project.stage_names()


def chalice_functions(app: Any) -> set[str]:
    """Chalice's names for an app's functions, read from the app's own registries."""
    routes = {"$connect": "websocket_connect", "$disconnect": "websocket_disconnect"}
    names = {routes.get(key, "websocket_message") for key in app.websocket_handlers}
    names |= {function.name for function in app.pure_lambda_functions}
    names |= {source.name for source in app.event_sources}
    return names | ({project.REST_HANDLER} if app.routes else set())


@pytest.mark.parametrize("name", STAGES)
def test_every_function_of_the_app_is_listed_with_its_deployed_name(name: str) -> None:
    import app

    stage = project.load(name)
    assert {f.name for f in stage.functions} == chalice_functions(app.app)
    for function in stage.functions:
        assert function.function_name == f"{stage.app_name}-{name}-{function.name}"
        assert function.log_group == f"/aws/lambda/{function.function_name}"
        assert callable(getattr(app, function.handler.removeprefix("app.")))
    routes = {f.websocket_route for f in stage.functions if f.websocket_route}
    assert routes == set(app.app.websocket_handlers)


@pytest.mark.parametrize("name", STAGES)
def test_the_worker_subscription_caps_the_workers_at_what_pacing_divides_by(name: str) -> None:
    """No reserved concurrency anywhere: the subscription's maximum concurrency (read from
    the stage's variables when Chalice loads app.py) is the pacing's divisor."""
    stage = project.load(name)
    settings = Settings.from_environ(stage.environment)
    subscribed = [f for f in stage.functions if f.subscription is not None]
    assert subscribed
    for function in subscribed:
        assert function.subscription is not None
        assert function.subscription.maximum_concurrency == settings.fanout_worker_concurrency
        assert function.subscription.queue == settings.fanout_queue_name
    assert all(f.reserved_concurrency is None for f in stage.functions)


def test_each_stage_loads_its_own_copy_of_the_app() -> None:
    dev, prod = project.load("dev"), project.load("prod")
    [dev_worker] = [f for f in dev.functions if f.subscription]
    [prod_worker] = [f for f in prod.functions if f.subscription]
    assert dev_worker.subscription and prod_worker.subscription
    assert (dev_worker.subscription.queue, prod_worker.subscription.queue) == (
        "switchboard-dev-fanout", "switchboard-prod-fanout")


def test_what_cannot_be_read_is_said_in_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(project.StageError, match=r"stage 'staging' is not in "
                       r"\.chalice/config\.json \(stages: dev, prod\)"):
        project.load("staging")
    (tmp_path / ".chalice").mkdir()
    with pytest.raises(project.StageError, match=r"cannot read .*config\.json"):
        project.load("dev", tmp_path)
    (tmp_path / ".chalice" / "config.json").write_text("{not json")
    with pytest.raises(project.StageError, match="is not valid JSON"):
        project.load("dev", tmp_path)
    (tmp_path / ".chalice" / "config.json").write_text('{"stages": {"dev": {}}}')
    with pytest.raises(project.StageError, match=r"is not a Chalice project: it has no app\.py"):
        project.load("dev", tmp_path)


# -- a project with more functions ------------------------------------------------------

MORE_FUNCTIONS = '''


@app.schedule("rate(1 minute)", name="close_expired")
def close_expired(event: Any) -> None:
    for page in _services().registry.all_connection_pages():
        for connection_id in page:
            app.websocket_api.close(connection_id)


@app.route("/health")
def health() -> dict[str, bool]:
    return {"ok": True}


@app.lambda_function(name="report_a")
def report_a(event: Any, context: Any) -> None:
    return None


@app.lambda_function(name="report_b")
def report_b(event: Any, context: Any) -> None:
    return None
'''


def generate(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deploy.generate", *args], cwd=root,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def grown(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project whose app.py gained four functions (and a route), then generated:
    more than one alarm can sum."""
    root = tmp_path_factory.mktemp("grown")
    shutil.copy(PROJECT / "app.py", root / "app.py")
    for name in ("chalicelib", "deploy", ".chalice"):
        shutil.copytree(PROJECT / name, root / name,
                        ignore=shutil.ignore_patterns("__pycache__", "deployed", "deployments"))
    assert generate(root, "--check").returncode == 0
    with (root / "app.py").open("a") as app:
        app.write(MORE_FUNCTIONS)
    stale = generate(root, "--check")
    assert stale.returncode == 1
    assert ".chalice/config.json differs" in stale.stdout
    written = generate(root)
    assert written.returncode == 0, written.stdout + written.stderr
    assert generate(root, "--check").returncode == 0
    return root


def read(root: Path, path: str) -> Any:
    return json.loads((root / path).read_text())


def test_new_functions_get_their_own_policies_with_no_edit(grown: Path) -> None:
    config = read(grown, ".chalice/config.json")
    for stage in STAGES:
        named = config["stages"][stage]["lambda_functions"]
        assert {"close_expired", "api_handler"} <= set(named)
    closer = read(grown, ".chalice/policy-prod-close_expired.json")
    actions = {a: s["Resource"] for s in closer["Statement"] for a in s["Action"]}
    assert "dynamodb:Scan" in actions
    assert actions["execute-api:ManageConnections"] == [
        "arn:aws:execute-api:*:*:*/prod/DELETE/@connections/*"]  # closing, not posting
    assert not any(a.startswith("sqs:") for a in actions)
    health = read(grown, ".chalice/policy-prod-api_handler.json")
    assert {a for s in health["Statement"] for a in s["Action"]} == {
        "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}


def test_new_functions_get_log_groups_alarms_and_template_entries(grown: Path) -> None:
    template = read(grown, "deploy/cloudformation.json")["Resources"]
    # Chalice renames the REST function APIHandler, not its role (api_handler_role).
    for logical_id, role in (("CloseExpired", "CloseExpiredRole"),
                             ("APIHandler", "ApiHandlerRole")):
        assert template[f"{logical_id}LogGroup"]["Type"] == "AWS::Logs::LogGroup"
        assert template[logical_id]["Properties"]["FunctionName"]["Fn::Sub"].startswith(
            "switchboard-${StageName}-")
        assert "Policies" in template[role]["Properties"]
    functions = [name.removesuffix("LogGroup") for name, resource in template.items()
                 if resource.get("Type") == "AWS::Logs::LogGroup"]  # one per function
    assert len(functions) > MAX_ALARM_QUERIES - 1  # more than one alarm can sum
    for metric in ("Errors", "Throttles"):
        watched: list[str] = []
        for alarm in (f"Function{metric}Alarm", f"Function{metric}2Alarm"):
            metrics = template[alarm]["Properties"]["Metrics"]
            assert len(metrics) <= MAX_ALARM_QUERIES  # what CloudWatch reads in one alarm
            watched += [m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"]
                        for m in metrics if "MetricStat" in m]
        assert sorted(watched) == sorted(functions)  # each function once
        assert f"Function{metric}3Alarm" not in template
    terraform = read(grown, "deploy/terraform/switchboard_observability.tf.json")
    assert {"close_expired", "api_handler"} <= set(
        terraform["resource"]["aws_cloudwatch_log_group"])
    assert {"function_errors", "function_errors2"} <= set(
        terraform["resource"]["aws_cloudwatch_metric_alarm"])
    override = read(grown, "deploy/terraform/switchboard_override.tf.json")
    assert {"close_expired_role", "api_handler_role"} <= set(
        override["resource"]["aws_iam_role_policy"])


def test_a_removed_function_leaves_no_policy_behind(grown: Path, tmp_path: Path) -> None:
    root = tmp_path / "shrunk"
    shutil.copytree(grown, root)
    shutil.copy(PROJECT / "app.py", root / "app.py")
    stale = generate(root, "--check")
    assert stale.returncode == 1
    assert ".chalice/policy-prod-close_expired.json belongs to no function" in stale.stdout
    assert generate(root).returncode == 0
    assert not (root / ".chalice/policy-prod-close_expired.json").exists()
    assert read(root, ".chalice/config.json") == read(PROJECT, ".chalice/config.json")
    assert (root / "deploy/cloudformation.json").read_text() == (
        PROJECT / "deploy/cloudformation.json").read_text()


DIGEST = '''
import boto3
from chalice import Blueprint

jobs = Blueprint(__name__)


@jobs.schedule("rate(1 day)", name="digest")
def digest(event):
    boto3.client("dynamodb").describe_table(TableName="t")
'''


def test_a_function_of_a_teams_module_is_read_from_that_module(tmp_path: Path) -> None:
    """A blueprint's function in ``chalicelib/product`` deploys from its own module, and its
    policy is what that module's code does; app.py is not edited."""
    root = tmp_path / "team"
    root.mkdir()
    shutil.copy(PROJECT / "app.py", root / "app.py")
    for name in ("chalicelib", "deploy", ".chalice"):
        shutil.copytree(PROJECT / name, root / name,
                        ignore=shutil.ignore_patterns("__pycache__", "deployed", "deployments"))
    (root / "chalicelib" / "product" / "jobs.py").write_text(DIGEST)
    written = generate(root)
    assert written.returncode == 0, written.stdout + written.stderr
    config = read(root, ".chalice/config.json")
    assert "digest" in config["stages"]["prod"]["lambda_functions"]
    policy = read(root, ".chalice/policy-prod-digest.json")
    assert {a for s in policy["Statement"] for a in s["Action"]} == {
        "dynamodb:DescribeTable", "logs:CreateLogGroup", "logs:CreateLogStream",
        "logs:PutLogEvents"}
