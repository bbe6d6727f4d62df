"""Smoke-test a stage: connect with a minted token, ping, message yourself, push; show answers.

Run it after the first deploy and after every one::

    python -m deploy.smoke --stage prod
    python -m deploy.smoke --stage prod --stack switchboard-prod      # CloudFormation path
    python -m deploy.smoke --stage prod --url wss://... --push-function NAME   # any path
    python -m deploy.smoke --local http://127.0.0.1:8000              # `make run`

Four checks, each printed with the frames that answered it: the handshake is
accepted; ``ping`` is answered with ``pong``; a ``sendMessage`` to the smoke
user itself comes back as a ``message`` and its ``ack``; the ``push`` function
invoked for the smoke user reaches the socket as a ``push`` frame. Exit status
0 when all pass, 1 when one fails, 2 when the stage cannot be reached at all.

Where things come from, on AWS: the WebSocket URL from ``--url``, else the
CloudFormation stack's ``WebsocketConnectEndpointURL`` output (``--stack``),
else ``.chalice/deployed/STAGE.json`` (``chalice deploy``); the token is signed
with the stage's key read from its SSM parameter (``TOKEN_SECRET_PARAMETER``;
you need ``ssm:GetParameter`` on it) and lives five minutes; ``push`` is invoked
with ``lambda:InvokeFunction``. With ``--local``, the running gateway's
``/_local/config``, ``/_local/token`` and ``/_local/invoke/push`` serve the same.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from deploy import project, session

PROJECT = Path(__file__).resolve().parent.parent
TOKEN_SECONDS = 300
SMOKE_TEXT = "smoke test"
Frame = dict[str, Any]
DEFAULT_TIMEOUT = 10.0
CHECKS = 4
FAILED = 1
"""Exit status when a check failed."""
UNREACHABLE = 2
"""Exit status when the stage cannot be reached at all (as for a missing region or key)."""


class Target(Protocol):
    """Where a stage is and how to act on it; the checks are the same for every target."""

    def describe(self) -> str: ...

    def websocket_url(self) -> str: ...

    def token(self, user_id: str) -> str: ...

    def push(self, event: dict[str, Any]) -> Any: ...


@dataclass
class LocalTarget:
    """A running local gateway (``make run``, ``switchboard-local``)."""

    base: str
    timeout: float = DEFAULT_TIMEOUT

    def describe(self) -> str:
        return f"the local gateway at {self.base}"

    def websocket_url(self) -> str:
        return str(self._get("/_local/config")["websocketUrl"])

    def token(self, user_id: str) -> str:
        return str(self._get("/_local/token?" + urllib.parse.urlencode({"userId": user_id}))
                   ["token"])

    def push(self, event: dict[str, Any]) -> Any:
        return self._request("/_local/invoke/push", json.dumps(event).encode())

    def _get(self, path: str) -> Any:
        return self._request(path, None)

    def _request(self, path: str, body: bytes | None) -> Any:
        request = urllib.request.Request(
            self.base.rstrip("/") + path, data=body,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return json.load(answer)
        except urllib.error.HTTPError as error:
            raise session.ToolError(
                f"{self.base}{path} answered {error.code}: {error.read().decode()[:200]}"
            ) from None
        except OSError as error:
            raise session.ToolError(f"no gateway answers at {self.base}: {error}") from None


@dataclass
class AwsTarget:
    """A deployed stage, found through its deployment record or stack outputs."""

    stage: str
    region: str | None = None
    url: str | None = None
    push_function: str | None = None
    stack: str | None = None
    _aws: Any = field(default=None, repr=False)
    _outputs: dict[str, str] | None = field(default=None, repr=False)

    def describe(self) -> str:
        return f"stage {self.stage} in {self._session().region_name}"

    def websocket_url(self) -> str:
        if self.url:
            return self.url
        if self.stack:
            return self._output("WebsocketConnectEndpointURL")
        return str(self._deployed("websocket_api")["websocket_api_url"])

    def token(self, user_id: str) -> str:
        from chalicelib.identity import issue_token

        environment = self._stage_environment()
        parameter = environment.get("TOKEN_SECRET_PARAMETER")
        if not parameter:
            raise session.ToolError(f"stage {self.stage} sets no TOKEN_SECRET_PARAMETER")
        ssm = self._session().client("ssm")
        try:
            value = ssm.get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"]
        except ssm.exceptions.ParameterNotFound:
            raise session.ToolError(
                f"no parameter {parameter}: run `python -m deploy.provision --stage "
                f"{self.stage}` first"
            ) from None
        return issue_token(
            str(value), user_id, lifetime_seconds=TOKEN_SECONDS,
            issuer=environment.get("TOKEN_ISSUER") or None,
            audience=environment.get("TOKEN_AUDIENCE") or None,
        )

    def push(self, event: dict[str, Any]) -> Any:
        name = self.push_function or (
            self._output("PushFunctionName") if self.stack
            else str(self._deployed("push")["lambda_arn"])
        )
        answer = self._session().client("lambda").invoke(
            FunctionName=name, InvocationType="RequestResponse",
            Payload=json.dumps(event).encode(),
        )
        payload = json.loads(answer["Payload"].read() or b"null")
        if answer.get("FunctionError"):
            raise session.ToolError(f"the push function failed: {payload}")
        return payload

    def _session(self) -> Any:
        if self._aws is None:
            self._aws = session.session(self.region)
        return self._aws

    def _stage_environment(self) -> dict[str, str]:
        try:
            return dict(project.load(self.stage, PROJECT).environment)
        except project.StageError as error:
            raise session.ToolError(str(error)) from None

    def _deployed(self, name: str) -> dict[str, Any]:
        path = PROJECT / ".chalice" / "deployed" / f"{self.stage}.json"
        if not path.is_file():
            raise session.ToolError(
                f"no {path.relative_to(PROJECT)}: deployed with CloudFormation or Terraform? "
                "Pass --stack, or --url and --push-function"
            )
        resources = {r["name"]: r for r in json.loads(path.read_text()).get("resources", [])}
        if name not in resources:
            raise session.ToolError(f"{path.relative_to(PROJECT)} has no {name}")
        return dict(resources[name])

    def _output(self, key: str) -> str:
        if self._outputs is None:
            stacks = self._session().client("cloudformation").describe_stacks(
                StackName=self.stack)["Stacks"]
            self._outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
        if key not in self._outputs:
            raise session.ToolError(f"stack {self.stack} has no output {key}")
        return self._outputs[key]


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    unreachable: bool = False
    """The stage did not answer at all (no connection, no TLS, no HTTP answer)."""


def smoke(target: Target, timeout: float = DEFAULT_TIMEOUT, out: Any = None) -> list[Check]:
    """Run the four checks against ``target``, printing each as it ends (to stdout)."""
    from websockets.exceptions import InvalidHandshake, InvalidStatus
    from websockets.sync.client import connect

    user = f"smoke-{uuid.uuid4().hex[:8]}"
    url = target.websocket_url()
    checks: list[Check] = []

    def report(check: Check) -> None:
        checks.append(check)
        print(f"{'ok' if check.ok else 'FAILED':<7}{check.name:<10}{check.detail}",
              file=out or sys.stdout, flush=True)

    token = target.token(user)
    separator = "&" if "?" in url else "?"
    started = time.perf_counter()
    try:
        socket = connect(f"{url}{separator}token={token}", open_timeout=timeout,
                         close_timeout=timeout)
    except InvalidStatus as error:
        report(Check("connect", False, f"{url} refused the handshake: "
                                       f"{error.response.status_code}"))
        return checks
    except (OSError, InvalidHandshake) as error:
        report(Check("connect", False, f"{url} cannot be reached: {error}", unreachable=True))
        return checks
    with socket:
        report(Check("connect", True, f"{url} as {user} ({_ms(started)})"))
        checks_to_run: list[tuple[str, dict[str, Any], Callable[[list[Frame]], bool]]] = [
            ("ping", {"action": "ping", "id": "smoke-ping"}, _ponged),
            ("message", {"action": "sendMessage", "targetUserId": user, "text": SMOKE_TEXT,
                         "id": "smoke-message"}, _came_back),
        ]
        for name, frame, passed in checks_to_run:
            started = time.perf_counter()
            socket.send(json.dumps(frame))
            frames = _until(socket, timeout, _answering(str(frame["id"])))
            report(Check(name, passed(frames), f"{_frames(frames)} ({_ms(started)})"))
        started = time.perf_counter()
        nonce = uuid.uuid4().hex
        try:
            answer = target.push({"userId": user, "data": {"smoke": nonce}})
        except Exception as error:
            report(Check("push", False, session.explain(error)
                         or f"{type(error).__name__}: {error}"))
            return checks
        frames = _until(socket, timeout,
                        lambda f: f.get("type") == "push" and f.get("data") == {"smoke": nonce})
        ok = bool(frames) and frames[-1].get("type") == "push" and isinstance(answer, dict) \
            and answer.get("ok") is True
        report(Check("push", ok, f"answer {json.dumps(answer)}; {_frames(frames)} "
                                 f"({_ms(started)})"))
    return checks


def _ponged(frames: list[Frame]) -> bool:
    return any(frame.get("type") == "pong" for frame in frames)


def _came_back(frames: list[Frame]) -> bool:
    """The message to oneself arrived, and so did its ack."""
    return any(f.get("type") == "message" and f.get("text") == SMOKE_TEXT for f in frames) \
        and any(f.get("type") == "ack" for f in frames)


def _answering(frame_id: str) -> Callable[[Frame], bool]:
    return lambda frame: frame.get("id") == frame_id


def _until(socket: Any, timeout: float, last: Callable[[dict[str, Any]], bool]
           ) -> list[dict[str, Any]]:
    """Frames received until one matches ``last`` (included) or the time runs out."""
    frames: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            frame = json.loads(socket.recv(timeout=left))
        except TimeoutError:
            break
        frames.append(frame)
        if last(frame):
            break
    return frames


def _frames(frames: list[dict[str, Any]]) -> str:
    return " ".join(json.dumps(f, separators=(",", ":")) for f in frames) or "nothing came back"


def _ms(started: float) -> str:
    return f"{(time.perf_counter() - started) * 1000:.0f} ms"


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deploy.smoke", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stage", help="the deployed Chalice stage to test (dev, prod)")
    where.add_argument("--local", metavar="URL",
                       help="test a running local gateway instead, e.g. http://127.0.0.1:8000 "
                       "(`make run`)")
    parser.add_argument("--region", help="the stage's AWS region; default: AWS_REGION, "
                        "AWS_DEFAULT_REGION, then your AWS profile's region")
    parser.add_argument("--stack", help="read the URL and the push function from this "
                        "CloudFormation stack's outputs (the CloudFormation path)")
    parser.add_argument("--url", help="the stage's WebSocket URL (wss://...), overriding the "
                        "deployment record or stack")
    parser.add_argument("--push-function", help="the push function's name or ARN, overriding "
                        "the deployment record or stack")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds to wait for each answer (default: {DEFAULT_TIMEOUT:g})")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    target: Target = (
        LocalTarget(args.local, args.timeout) if args.local
        else AwsTarget(args.stage, args.region, args.url, args.push_function, args.stack)
    )

    def run() -> int:
        print(f"Smoke test of {target.describe()}", flush=True)
        checks = smoke(target, args.timeout)
        passed = sum(check.ok for check in checks)
        print(f"{passed} of {CHECKS} checks passed", flush=True)
        if any(check.unreachable for check in checks):
            return UNREACHABLE
        return 0 if passed == CHECKS else FAILED

    return session.run(run)


if __name__ == "__main__":
    sys.exit(main())
