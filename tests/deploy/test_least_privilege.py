"""Every function, run against moto over HTTP, makes no AWS operation its policy lacks.

Each function of the app (``deploy/project.py``) runs in a fresh interpreter,
as a new Lambda container would (``tests/deploy/exercise.py``), on events of
its kind: ``$connect`` for users whose posts succeed, are gone (410) or fail;
``$default`` with every action of the action table, a bad frame and a frame
from an unregistered connection; a lambda function with each audience
``push`` takes and an empty event; the queue's consumer with the batches
``push`` really queued (read back from SQS) and an unreadable one;
``$disconnect``; a schedule with a scheduled event. DynamoDB, SQS and SSM are
moto's server; posts go to the management API stand-in (``harness.mgmt_server``,
TLS, 410 and 500 on request), or fail at a closed proxy where a handler posts
to the execute-api URL. Every botocore operation is recorded and must be in
what ``deploy/operations.py`` derived for that function, from which its policy
is written. ``test_policy.py`` checks the other direction statically.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from chalicelib.actions import ACTION_NAMES
from chalicelib.identity import issue_token
from chalicelib.push import AUDIENCES
from deploy import operations, project
from deploy.provision import StageConfig, provision
from harness.mgmt_server import FAULT_PREFIX, ManagementServer
from switchboard_local.events import ApiContext, ConnectionContext, sqs_record
from tests.deploy.offline import PROJECT

STAGE = "dev"
ROOM = "lobby"
SINCE = {"epoch": "e", "seq": 0}
SCHEDULED_EVENT = {"version": "0", "id": "1", "detail-type": "Scheduled Event",
                   "source": "aws.events", "account": "123456789012",
                   "time": "2026-01-01T00:00:00Z", "region": "us-east-1", "resources": [],
                   "detail": {}}


class Exercise:
    """The stage's resources on moto, the management stand-in, and the users' connections."""

    def __init__(self, moto: str, management: ManagementServer) -> None:
        suffix = uuid.uuid4().hex[:10]
        self.names = StageConfig(
            stage=STAGE, app_name="switchboard", api_gateway_stage=STAGE,
            table=f"switchboard-{suffix}-connections", queue=f"switchboard-{suffix}-fanout",
            secret_parameter=f"/switchboard/{suffix}/token-secret")
        self.moto = moto
        provision(self.names, self.client)
        self.secret = self.client("ssm").get_parameter(
            Name=self.names.secret_parameter, WithDecryption=True)["Parameter"]["Value"]
        self.management = management
        api = ApiContext(api_id="rehearsal1", stage=STAGE,
                         domain_name="rehearsal1.execute-api.us-east-1.amazonaws.com")
        self.users = {
            "alice": ConnectionContext(api, connection_id="alice-1"),
            "bob": ConnectionContext(api, connection_id=f"{FAULT_PREFIX}410-bob"),
            "carol": ConnectionContext(api, connection_id=f"{FAULT_PREFIX}500-carol"),
        }
        self.stranger = ConnectionContext(api, connection_id="never-connected")

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.moto)  # type: ignore[call-overload]

    def environment(self, function: project.Function) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("AWS_", "POWERTOOLS_", "APIGW_"))}
        return {
            **base, **function.environment,
            "CONNECTIONS_TABLE": self.names.table,
            "FANOUT_QUEUE_NAME": str(self.names.queue),
            "TOKEN_SECRET_PARAMETER": str(self.names.secret_parameter),
            "FANOUT_QUEUE_THRESHOLD": "1",  # every audience goes through the queue
            "MANAGEMENT_TRANSPORT": "botocore",  # posts are botocore operations, recorded
            "APIGW_MANAGEMENT_ENDPOINT": self.management.url(STAGE),
            "AWS_CA_BUNDLE": self.management.ca_bundle,
            "AWS_ENDPOINT_URL_DYNAMODB": self.moto, "AWS_ENDPOINT_URL_SQS": self.moto,
            "AWS_ENDPOINT_URL_SSM": self.moto,
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
            "NO_PROXY": "127.0.0.1,localhost", "POWERTOOLS_METRICS_DISABLED": "true",
        }

    def events(self, function: project.Function) -> list[dict[str, Any]]:
        """Events of the function's kind, reaching as many of its paths as they can."""
        if function.websocket_route == "$connect":
            return [*(c.connect_event(query={"token": issue_token(self.secret, user)})
                      for user, c in self.users.items()),
                    self.users["alice"].connect_event(
                        query={"token": issue_token(self.secret, "alice")}),  # a retried connect
                    self.stranger.connect_event(query={"token": "not-a-token"})]
        if function.websocket_route == "$default":
            joins = [c.message_event(json.dumps({"action": "joinRoom", "room": ROOM}))
                     for c in self.users.values()]
            alice = self.users["alice"]
            every_action = [alice.message_event(json.dumps({
                "action": name, "id": name, "room": ROOM, "text": "hi",
                "targetUserId": "bob", "since": SINCE})) for name in ACTION_NAMES]
            return [*joins, *every_action, alice.message_event("not json"),
                    self.stranger.message_event(json.dumps({"action": "ping"}))]
        if function.websocket_route == "$disconnect":
            return [c.disconnect_event(1000) for c in self.users.values()]
        if function.subscription is not None:
            return [{"Records": [*self.queued(), {**self.queued_record("not a batch")}]}]
        if function.schedule is not None:
            return [SCHEDULED_EVENT]
        audiences = [{audience: True if audience == "all" else
                      (ROOM if audience == "room" else "alice"), "data": {"n": 1}}
                     for audience in AUDIENCES]
        return [*audiences, {}]

    def queued(self) -> list[dict[str, Any]]:
        """What is waiting in the fan-out queue, as Lambda would hand it to the consumer."""
        sqs = self.client("sqs")
        url = sqs.get_queue_url(QueueName=self.names.queue)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                       AttributeNames=["All"]).get("Messages", [])
        return [sqs_record(message, arn, "us-east-1") for message in messages]

    def queued_record(self, body: str) -> dict[str, Any]:
        return sqs_record({"MessageId": str(uuid.uuid4()), "ReceiptHandle": "r", "Body": body},
                          f"arn:aws:sqs:us-east-1:123456789012:{self.names.queue}", "us-east-1")

    def run(self, function: project.Function) -> set[str]:
        request = {"handler": function.handler.removeprefix("app."),
                   "function": function.function_name, "events": self.events(function)}
        result = subprocess.run([sys.executable, "-m", "tests.deploy.exercise"], cwd=PROJECT,
                                input=json.dumps(request), capture_output=True, text=True,
                                timeout=120, env=self.environment(function))
        assert result.returncode == 0, result.stderr
        return set(json.loads(result.stdout.splitlines()[-1]))


ORDER = {"$connect": 0, "$default": 1, None: 2, "$disconnect": 4}
"""Connections first, their messages, then pushes and the consumer of what they queued."""


def order(function: project.Function) -> int:
    return 3 if function.subscription is not None else ORDER[function.websocket_route]


@pytest.fixture(scope="module")
def recorded(moto_endpoint: str) -> Iterator[dict[str, set[str]]]:
    with ManagementServer() as management:
        exercise = Exercise(moto_endpoint, management)
        functions = sorted(project.load(STAGE).functions, key=order)
        yield {function.name: exercise.run(function) for function in functions}


@pytest.mark.parametrize("function", project.load(STAGE).functions, ids=lambda f: f.name)
def test_each_function_makes_only_operations_its_policy_was_derived_from(
    recorded: dict[str, set[str]], function: project.Function,
) -> None:
    derived = {str(op) for op in operations.operations(function)}
    assert recorded[function.name], "the exercise made no AWS operation at all"
    assert recorded[function.name] - derived == set(), "made, but missing from its policy"


def test_the_exercise_reaches_the_paths_that_matter(recorded: dict[str, set[str]]) -> None:
    """Scans, queue hand-offs, posts and the signing key are all recorded somewhere."""
    made = set().union(*recorded.values())
    assert {"dynamodb:Scan", "dynamodb:Query", "dynamodb:BatchWriteItem", "sqs:SendMessageBatch",
            "apigatewaymanagementapi:PostToConnection", "ssm:GetParameter"} <= made, made
