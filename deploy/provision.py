"""Provision what ``chalice deploy`` does not create, idempotently.

Chalice creates functions, roles and the WebSocket API, but no table, no queue
and no secret, and it cannot enable partial batch responses or stage
throttling. Run before the first deploy (and any time after: it only creates
what is missing and says what already existed)::

    python -m deploy.provision --stage prod

and once after each ``chalice deploy`` to finish what Chalice leaves out::

    python -m deploy.provision --stage prod --after-deploy

The CloudFormation and Terraform paths create the table and the queues
themselves; they need only the signing key, which no template holds::

    python -m deploy.provision --stage prod --only-signing-key

Names come from the stage's variables in ``.chalice/config.json``, the same
ones the functions read and the stage's policy files grant access to.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib.registry import TTL_ATTRIBUTE, table_definition
from deploy import project, session

PROJECT = Path(__file__).resolve().parent.parent
QUEUE_VISIBILITY_SECONDS = 360  # six times the worker's 60 s timeout, as AWS advises
QUEUE_RETENTION_SECONDS = 3600
DLQ_RETENTION_SECONDS = 14 * 24 * 3600
MAX_RECEIVE_COUNT = 5
DEFAULT_RATE_LIMIT = 100.0
DEFAULT_BURST_LIMIT = 200
Clients = Callable[[str], Any]


@dataclass(frozen=True)
class StageConfig:
    """The names one Chalice stage uses, from ``.chalice/config.json``."""

    stage: str
    app_name: str
    api_gateway_stage: str
    table: str
    queue: str | None
    secret_parameter: str | None
    subscriptions: tuple[str, ...] = ()
    """Chalice's names of the app's SQS subscriptions (``fanout_worker-sqs-event-source``)."""

    @property
    def dead_letter_queue(self) -> str | None:
        return None if self.queue is None else f"{self.queue}-dlq"

    @classmethod
    def load(cls, stage: str, project_dir: Path = PROJECT) -> StageConfig:
        try:
            chalice_stage = project.load(stage, project_dir)
        except project.StageError as error:
            raise SystemExit(str(error)) from None
        env = chalice_stage.environment
        if "CONNECTIONS_TABLE" not in env:
            raise SystemExit(f"stage {stage!r} sets no CONNECTIONS_TABLE")
        return cls(
            stage=stage,
            app_name=chalice_stage.app_name,
            api_gateway_stage=chalice_stage.api_gateway_stage,
            table=env["CONNECTIONS_TABLE"],
            queue=env.get("FANOUT_QUEUE_NAME"),
            secret_parameter=env.get("TOKEN_SECRET_PARAMETER"),
            subscriptions=tuple(f.subscription.resource_name for f in chalice_stage.functions
                                if f.subscription is not None),
        )


@dataclass
class Report:
    """What a run did and what was already there, one line each."""

    lines: list[str] = field(default_factory=list)

    def created(self, what: str) -> None:
        self.lines.append(f"created: {what}")

    def existed(self, what: str) -> None:
        self.lines.append(f"already there: {what}")


def provision(stage: StageConfig, clients: Clients, only_signing_key: bool = False) -> Report:
    """The stage's table, queues and signing key; only the key for the template paths."""
    report = Report()
    if not only_signing_key:
        ensure_table(clients("dynamodb"), stage.table, report)
        if stage.queue is not None and stage.dead_letter_queue is not None:
            ensure_queues(clients("sqs"), stage.queue, stage.dead_letter_queue, report)
    if stage.secret_parameter is not None:
        ensure_signing_key(clients("ssm"), stage.secret_parameter, report)
    elif only_signing_key:
        raise session.ToolError(f"stage {stage.stage} sets no TOKEN_SECRET_PARAMETER: "
                                "it has no signing key to create")
    return report


def ensure_table(dynamodb: Any, name: str, report: Report) -> None:
    """The registry table with TTL and point-in-time recovery, as the templates describe it."""
    try:
        dynamodb.describe_table(TableName=name)
        report.existed(f"table {name}")
    except dynamodb.exceptions.ResourceNotFoundException:
        dynamodb.create_table(
            **table_definition(name),
            SSESpecification={"Enabled": True},
            Tags=[{"Key": "app", "Value": "switchboard"}],
        )
        dynamodb.get_waiter("table_exists").wait(
            TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
        report.created(f"table {name} (on-demand, encrypted with the AWS managed key)")
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        report.existed(f"TTL on {name}.{ttl.get('AttributeName')}")
    else:
        dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
        report.created(f"TTL on {name}.{TTL_ATTRIBUTE}")
    backups = dynamodb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    pitr = backups.get("PointInTimeRecoveryDescription", {})
    if pitr.get("PointInTimeRecoveryStatus") == "ENABLED":
        report.existed(f"point-in-time recovery on {name}")
    else:
        dynamodb.update_continuous_backups(
            TableName=name,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
        report.created(f"point-in-time recovery on {name}")


def ensure_queues(sqs: Any, name: str, dead_letter_name: str, report: Report) -> None:
    """The fan-out queue and its dead-letter queue, encrypted, with a redrive policy."""
    dlq_url = _ensure_queue(
        sqs, dead_letter_name, {"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)}, report
    )
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT})
    _ensure_queue(
        sqs,
        name,
        {
            "VisibilityTimeout": str(QUEUE_VISIBILITY_SECONDS),
            "MessageRetentionPeriod": str(QUEUE_RETENTION_SECONDS),
            "RedrivePolicy": redrive,
        },
        report,
    )


def _ensure_queue(sqs: Any, name: str, attributes: Mapping[str, str], report: Report) -> str:
    try:
        url = str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
        report.existed(f"queue {name}")
        return url
    except sqs.exceptions.QueueDoesNotExist:
        pass
    url = str(sqs.create_queue(
        QueueName=name, Attributes={**attributes, "SqsManagedSseEnabled": "true"}
    )["QueueUrl"])
    report.created(f"queue {name}")
    return url


def ensure_signing_key(ssm: Any, name: str, report: Report) -> None:
    """A random HS256 key as a SecureString (AWS managed key ``alias/aws/ssm``); never replaced."""
    try:
        ssm.get_parameter(Name=name)
        report.existed(f"signing key parameter {name}")
        return
    except ssm.exceptions.ParameterNotFound:
        pass
    ssm.put_parameter(
        Name=name,
        Value=secrets.token_urlsafe(48),
        Type="SecureString",
        Overwrite=False,
        Description="Switchboard HS256 token signing key",
    )
    report.created(f"signing key parameter {name} (SecureString, random 48-byte key)")


# -- after chalice deploy -----------------------------------------------------------


def after_deploy(
    stage: StageConfig,
    clients: Clients,
    deployed: Mapping[str, Any],
    rate_limit: float = DEFAULT_RATE_LIMIT,
    burst_limit: int = DEFAULT_BURST_LIMIT,
) -> Report:
    """Stage throttling and partial batch responses, which ``chalice deploy`` cannot set."""
    report = Report()
    resources = {r["name"]: r for r in deployed.get("resources", [])}
    api = resources.get("websocket_api")
    if api is None:
        raise SystemExit("no websocket_api in the deployed resources; run chalice deploy first")
    clients("apigatewayv2").update_stage(
        ApiId=api["websocket_api_id"],
        StageName=stage.api_gateway_stage,
        DefaultRouteSettings={
            "ThrottlingRateLimit": rate_limit,
            "ThrottlingBurstLimit": burst_limit,
        },
    )
    report.created(f"stage throttling {rate_limit}/s, burst {burst_limit}")
    for name in stage.subscriptions:
        mapping = resources.get(name)
        if mapping is None:
            raise session.ToolError(f"the deployment record has no {name}: run `chalice "
                                    f"deploy --stage {stage.stage}` again")
        clients("lambda").update_event_source_mapping(
            UUID=mapping["event_uuid"], FunctionResponseTypes=["ReportBatchItemFailures"]
        )
        report.created(f"ReportBatchItemFailures on {name}")
    return report


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deploy.provision", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", required=True,
                        help="the Chalice stage in .chalice/config.json (dev, prod) whose "
                        "table, queues and signing key to create")
    parser.add_argument("--region", default=None,
                        help="the AWS region; default: AWS_REGION, AWS_DEFAULT_REGION, "
                        "then your AWS profile's region")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--after-deploy", action="store_true",
                      help="instead, finish what `chalice deploy` left out (stage "
                      "throttling, partial batch responses), from .chalice/deployed/"
                      "STAGE.json; run it after every deploy")
    what.add_argument("--only-signing-key", action="store_true",
                      help="create only the signing key parameter: the CloudFormation and "
                      "Terraform paths create the table and the queues themselves")
    parser.add_argument("--rate-limit", type=float, default=DEFAULT_RATE_LIMIT,
                        help="with --after-deploy: messages per second the WebSocket stage "
                        f"accepts, all routes together (default: {DEFAULT_RATE_LIMIT:g})")
    parser.add_argument("--burst-limit", type=int, default=DEFAULT_BURST_LIMIT,
                        help="with --after-deploy: messages the stage accepts in a burst "
                        f"before throttling (default: {DEFAULT_BURST_LIMIT})")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return session.run(lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    stage = StageConfig.load(args.stage)
    aws = session.session(args.region)
    if args.after_deploy:
        deployed_file = PROJECT / ".chalice" / "deployed" / f"{args.stage}.json"
        if not deployed_file.is_file():
            raise session.ToolError(
                f"no {deployed_file.relative_to(PROJECT)}: run `chalice deploy --stage "
                f"{args.stage}` first (this checkout's .chalice/deployed/ records it)"
            )
        deployed = json.loads(deployed_file.read_text())
        report = after_deploy(stage, _clients(aws), deployed, args.rate_limit, args.burst_limit)
    else:
        report = provision(stage, _clients(aws), args.only_signing_key)
    print("\n".join(report.lines))
    return 0


def _clients(aws: Any) -> Clients:
    """The session's client factory, as the provisioning steps take it."""
    return lambda service: aws.client(service)


if __name__ == "__main__":
    sys.exit(main())
