"""``python -m switchboard_local.gateway``: run the local gateway, or print a token.

Every option has an environment variable, so ``make run`` and CI can set them
without a command line.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from switchboard_local.gateway.config import ConfigError, load_project_config, process_environment
from switchboard_local.gateway.connections import Limits
from switchboard_local.gateway.loader import project_on_path
from switchboard_local.gateway.server import Gateway, GatewayOptions
from switchboard_local.gateway.store import DEFAULT_TABLE_SPECS
from switchboard_local.gateway.tokens import (
    DEFAULT_SECRET_VARIABLE,
    DEFAULT_SIGNER,
    TokenIssuer,
    TokensUnavailable,
    parse_roles,
)


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or default


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m switchboard_local.gateway",
        description=(
            "A local API Gateway WebSocket stage for a Chalice app: ws://HOST:PORT/<stage> for "
            "clients, http://HOST:PORT/<stage>/@connections/{id} for the management API, a "
            "chat page at http://HOST:PORT/ and an embedded DynamoDB."
        ),
    )
    add = parser.add_argument
    add("--project-dir", default=_env("LOCAL_GATEWAY_PROJECT_DIR", "."),
        help="the Chalice project (with app.py and .chalice/config.json); "
        "env LOCAL_GATEWAY_PROJECT_DIR; default: the current directory")
    add("--stage", default=_env("LOCAL_GATEWAY_STAGE", "dev"),
        help="the Chalice stage whose environment variables the app gets; "
        "env LOCAL_GATEWAY_STAGE; default: dev")
    add("--host", default=_env("HOST", "127.0.0.1"),
        help="address to listen on; env HOST; default: 127.0.0.1")
    add("--port", type=int, default=int(_env("PORT", "8000") or 8000),
        help="port to listen on (0 picks a free one); env PORT; default: 8000")
    add("--dynamodb-endpoint", default=_env("LOCAL_GATEWAY_DYNAMODB_ENDPOINT"),
        help="use this DynamoDB (DynamoDB Local, dynalite, ...) instead of the embedded one; "
        "env LOCAL_GATEWAY_DYNAMODB_ENDPOINT")
    add("--table", action="append", dest="tables", metavar="NAME=module:function",
        help="create table NAME (or $VARIABLE from the stage) with module.function(NAME)'s "
        "CreateTable arguments; repeatable; default: "
        f"{' '.join(DEFAULT_TABLE_SPECS)} when the project has both")
    add("--no-tables", action="store_true", help="create no table")
    add("--idle-timeout", type=float,
        default=float(_env("LOCAL_GATEWAY_IDLE_TIMEOUT", "600") or 600),
        help="seconds without a message before closing with 1001; "
        "env LOCAL_GATEWAY_IDLE_TIMEOUT; default: 600 (AWS)")
    add("--max-duration", type=float,
        default=float(_env("LOCAL_GATEWAY_MAX_DURATION", "7200") or 7200),
        help="seconds a connection may last before closing with 1001; "
        "env LOCAL_GATEWAY_MAX_DURATION; default: 7200 (AWS)")
    add("--token-signer", default=DEFAULT_SIGNER,
        help=f"module:function(secret, user_id, roles) signing tokens; default: {DEFAULT_SIGNER}")
    add("--token-secret-variable", default=DEFAULT_SECRET_VARIABLE,
        help="stage variable holding the signing key; default: TOKEN_SECRET")
    add("--print-token", metavar="USER_ID",
        help="print a token for this user signed with the stage's key, and exit")
    add("--roles", default="", help="with --print-token: comma-separated roles")
    add("--log-level", default=_env("LOCAL_GATEWAY_LOG_LEVEL", "INFO"),
        help="env LOCAL_GATEWAY_LOG_LEVEL; default: INFO")
    return parser


def options_from(args: argparse.Namespace) -> GatewayOptions:
    tables = [] if args.no_tables else args.tables
    return GatewayOptions(
        project_dir=Path(args.project_dir),
        stage=args.stage,
        host=args.host,
        port=args.port,
        dynamodb_endpoint=args.dynamodb_endpoint,
        tables=tables,
        limits=Limits(idle_timeout=args.idle_timeout, max_duration=args.max_duration),
        token_signer=args.token_signer,
        token_secret_variable=args.token_secret_variable,
    )


def print_token(args: argparse.Namespace) -> int:
    project = load_project_config(args.project_dir, args.stage)
    issuer = TokenIssuer(project.environment, args.token_signer, args.token_secret_variable)
    with project_on_path(project.project_dir), process_environment(dict(project.environment)):
        print(issuer.issue(args.print_token, parse_roles([args.roles])))
    return 0


async def serve(options: GatewayOptions) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly."""
    gateway = Gateway(options)
    await gateway.start()
    print(f"WebSocket  {gateway.websocket_url}", flush=True)
    print(f"Chat page  {gateway.page_url}", flush=True)
    print(f"Management {gateway.management_url}/@connections/{{connectionId}}", flush=True)
    print(f"DynamoDB   {gateway.store.endpoint if gateway.store else '-'}", flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        print("Stopping: closing every connection...", flush=True)
        await gateway.stop()
        print("Stopped.", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s %(message)s")
    for noisy in ("werkzeug", "botocore.credentials"):  # the embedded store's request lines
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if args.print_token:
            return print_token(args)
        asyncio.run(serve(options_from(args)))
    except (ConfigError, TokensUnavailable) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    return 0
