"""``switchboard-local``: serve a Chalice project locally, or talk to a running gateway.

    switchboard-local [--stage dev] [--port 8000] [--merge-template FILE] ...
    switchboard-local invoke NAME '{"json": "event"}'
    switchboard-local token USER_ID [--roles a,b] [--lifetime SECONDS] [--websocket]

Run it from a Chalice project's directory (or give ``--project-dir``). Every
serving option has an environment variable, so ``make run`` and CI can set
them without a command line. ``invoke`` and ``token`` find the running
gateway as :mod:`switchboard_local.gateway.discovery` says.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from switchboard_local.gateway import discovery
from switchboard_local.gateway.concurrency import DEFAULT_ACCOUNT_LIMIT
from switchboard_local.gateway.guard import ExposureRefused
from switchboard_local.project import ProjectError
from switchboard_local.stage import Limits

PROG = "switchboard-local"
CLIENT_TIMEOUT_SECONDS = 930.0  # Lambda's longest run, and a margin


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or default


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} must look like KEY=VALUE")
    return key, value


def serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Serve a Chalice project locally: its WebSocket stage (ws://HOST:PORT/<stage>) and "
            "@connections API, REST routes, lambda functions and SQS consumers, on an embedded "
            "store holding the resources its merge template declares. Also: "
            f"`{PROG} invoke NAME EVENT` and `{PROG} token USER_ID` against a running gateway."
        ),
    )
    add = parser.add_argument
    add("--project-dir", type=Path, default=Path(_env("LOCAL_GATEWAY_PROJECT_DIR", ".") or "."),
        help="the Chalice project (app.py, .chalice/config.json); "
        "env LOCAL_GATEWAY_PROJECT_DIR; default: the current directory")
    add("--stage", default=_env("LOCAL_GATEWAY_STAGE", "dev"),
        help="the Chalice stage to run; env LOCAL_GATEWAY_STAGE; default: dev")
    add("--host", default=_env("HOST", "127.0.0.1"),
        help="address to listen on; env HOST; default: 127.0.0.1 (a non-loopback address "
        "needs --expose)")
    add("--expose", action="store_true",
        default=(_env("LOCAL_GATEWAY_EXPOSE", "") or "").lower() in ("1", "true", "yes", "on"),
        help="allow a --host beyond loopback, which other machines reach (/_local/token and "
        "the store still answer loopback peers only); env LOCAL_GATEWAY_EXPOSE=1")
    add("--allow-host", action="append", metavar="NAME",
        default=[h for h in (_env("LOCAL_GATEWAY_ALLOW_HOSTS", "") or "").split(",") if h],
        help="also answer requests whose Host is NAME (besides localhost, 127.0.0.1, [::1] "
        "and the --host address); repeatable; env LOCAL_GATEWAY_ALLOW_HOSTS=a,b")
    add("--port", type=int, default=int(_env("PORT", "8000") or 8000),
        help="port (0 picks a free one); env PORT; default: 8000")
    add("--merge-template", type=Path, default=None,
        help="the CloudFormation merge template whose tables, queues and parameters to create "
        "and whose function environment to use; default: [tool.switchboard-local] "
        "merge-template in the project's pyproject.toml")
    add("--parameter", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
        help="a template parameter's value; repeatable (a parameter named like the stage gets "
        "the stage's name, others their Default)")
    add("--state-dir", type=Path, default=_env("LOCAL_GATEWAY_STATE_DIR"),
        help="keep the embedded store (tables and items, parameters, queues) here across "
        "restarts; env LOCAL_GATEWAY_STATE_DIR; default: in memory")
    add("--no-autoreload", dest="autoreload", action="store_false",
        help="do not reload the app when its code changes")
    add("--dynamodb-endpoint", default=_env("LOCAL_GATEWAY_DYNAMODB_ENDPOINT"),
        help="use this DynamoDB (DynamoDB Local, dynalite, ...) instead of the embedded one; "
        "env LOCAL_GATEWAY_DYNAMODB_ENDPOINT")
    add("--idle-timeout", type=float,
        default=float(_env("LOCAL_GATEWAY_IDLE_TIMEOUT", "600") or 600),
        help="seconds without a message before closing with 1001; default: 600 (AWS)")
    add("--max-duration", type=float,
        default=float(_env("LOCAL_GATEWAY_MAX_DURATION", "7200") or 7200),
        help="seconds a connection may last before closing with 1001; default: 7200 (AWS)")
    add("--containers", action=argparse.BooleanOptionalAction,
        default=(_env("LOCAL_GATEWAY_CONTAINERS", "0") or "0") not in ("0", "false", "no"),
        help="run each function in containers, processes of their own that handle one event "
        "at a time, as Lambda does (module state per container, the function's own "
        "environment, its lambda_timeout enforced); --no-containers runs them on threads of "
        "the gateway; env LOCAL_GATEWAY_CONTAINERS=1|0; default: threads")
    add("--concurrency", type=_positive_int,
        default=_env("LOCAL_GATEWAY_CONCURRENCY", str(DEFAULT_ACCOUNT_LIMIT)),
        help="the account's concurrency limit: invocations beyond it are throttled; env "
        f"LOCAL_GATEWAY_CONCURRENCY; default: {DEFAULT_ACCOUNT_LIMIT} (AWS's default quota)")
    add("--log-level", default=_env("LOCAL_GATEWAY_LOG_LEVEL", "INFO"),
        help="env LOCAL_GATEWAY_LOG_LEVEL; default: INFO")
    return parser


def _client_parser(command: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"{PROG} {command}", description=description)
    parser.add_argument("--url", default=None,
                        help="the running gateway; default: http://$HOST:$PORT when either is "
                        "set, else the gateway recorded in .switchboard-local/gateway.json "
                        "(here or above) while it runs, else http://127.0.0.1:8000")
    return parser


def _locate(url: str | None) -> discovery.Located | None:
    try:
        return discovery.locate(url, os.environ, Path.cwd())
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return None


def _unreachable(located: discovery.Located, error: OSError) -> int:
    print(f"error: no gateway answers at {located.url} ({located.how}): {error}",
          file=sys.stderr)
    return 2


def invoke_parser() -> argparse.ArgumentParser:
    parser = _client_parser("invoke", "Invoke an @app.lambda_function or @app.schedule "
                            "function of a running gateway and print its answer as JSON (a "
                            "schedule gets the event its rule sends now, with the given "
                            "event's fields over it).")
    parser.add_argument("name", help="the function's name")
    parser.add_argument("event", nargs="?", default="{}",
                        help="the event as JSON; - reads it from standard input; default: {}")
    return parser


def token_parser() -> argparse.ArgumentParser:
    parser = _client_parser("token", "Print a token from a running gateway's /_local/token.")
    parser.add_argument("user_id")
    parser.add_argument("--roles", default="", help="comma-separated roles")
    parser.add_argument("--lifetime", type=int, default=None, metavar="SECONDS",
                        help="how long the token lasts; default: the project's signer's")
    parser.add_argument("--websocket", action="store_true",
                        help="print the stage's WebSocket URL with the token in its query "
                        "string, ready for a terminal client")
    return parser


def _request(url: str, data: bytes | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=CLIENT_TIMEOUT_SECONDS) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()


def invoke(argv: Sequence[str]) -> int:
    args = invoke_parser().parse_args(argv)
    text = sys.stdin.read() if args.event == "-" else args.event
    try:
        json.loads(text)
    except ValueError as error:
        print(f"error: the event is not JSON: {error}", file=sys.stderr)
        return 2
    located = _locate(args.url)
    if located is None:
        return 2
    url = f"{located.url}/_local/invoke/{urllib.parse.quote(args.name, safe='')}"
    try:
        status, body = _request(url, text.encode())
    except OSError as error:
        return _unreachable(located, error)
    if status == 200:
        print(body)
        return 0
    print(body, file=sys.stderr)
    return 1


def token(argv: Sequence[str]) -> int:
    args = token_parser().parse_args(argv)
    located = _locate(args.url)
    if located is None:
        return 2
    query = {"userId": args.user_id, "roles": args.roles}
    if args.lifetime is not None:
        query["lifetime"] = str(args.lifetime)
    try:
        status, body = _request(f"{located.url}/_local/token?{urllib.parse.urlencode(query)}")
        if status == 200 and args.websocket:
            config_status, config = _request(f"{located.url}/_local/config")
            status, body = (status, body) if config_status == 200 else (config_status, config)
    except OSError as error:
        return _unreachable(located, error)
    if status != 200:
        print(f"error: the gateway at {located.url} answered {status}: {body}", file=sys.stderr)
        return 1
    issued = json.loads(body)["token"]
    if args.websocket:
        issued = f"{json.loads(config)['websocketUrl']}?{urllib.parse.urlencode({'token': issued})}"
    print(issued)
    return 0


def _as_typed(path: str, name: str | None = None) -> str:
    """How a user would type this program: its bare name when that is what PATH finds,
    a path relative to the current directory when under it, else the absolute path."""
    absolute = Path(os.path.abspath(path))
    typed = name or absolute.name
    found = shutil.which(typed)
    if found is not None and Path(os.path.abspath(found)) == absolute:
        return typed
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


async def serve(options: object) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly."""
    from switchboard_local.gateway.server import Gateway, GatewayOptions

    assert isinstance(options, GatewayOptions)
    gateway = Gateway(options)
    await gateway.start()
    record = discovery.Record(gateway.local_url, options.stage, os.getpid())
    discovery.write(gateway.project.project_dir, record)
    for label, value in gateway.banner(_as_typed(sys.argv[0], PROG), _as_typed(sys.executable)):
        print(f"{label:<10} {value}", flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        discovery.remove(gateway.project.project_dir, record.pid)
        print("Stopping: closing every connection...", flush=True)
        await gateway.stop()
        print("Stopped.", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["invoke"]:
        return invoke(arguments[1:])
    if arguments[:1] == ["token"]:
        return token(arguments[1:])
    args = serve_parser().parse_args(arguments)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s %(message)s")
    for noisy in ("werkzeug", "botocore.credentials", "botocore.configprovider", "watchfiles"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from switchboard_local.gateway.server import GatewayOptions

    options = GatewayOptions(
        project_dir=args.project_dir,
        stage=args.stage,
        host=args.host,
        port=args.port,
        merge_template=args.merge_template,
        parameters=dict(args.parameter),
        state_dir=Path(args.state_dir) if args.state_dir else None,
        autoreload=args.autoreload,
        dynamodb_endpoint=args.dynamodb_endpoint,
        limits=Limits(idle_timeout=args.idle_timeout, max_duration=args.max_duration),
        expose=args.expose,
        allowed_hosts=tuple(args.allow_host),
        containers=args.containers,
        concurrency=args.concurrency,
    )
    try:
        asyncio.run(serve(options))
    except (ProjectError, ExposureRefused) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    return 0
