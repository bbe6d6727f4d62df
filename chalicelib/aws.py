"""Construction of AWS sessions and clients, tuned once for Lambda.

Nothing here runs at import time: cold start pays only for the clients an
invocation actually uses. Endpoints are never hard-coded, so the standard
``AWS_ENDPOINT_URL_<SERVICE>`` variables point any client at a local stand-in.
"""

from __future__ import annotations

from typing import Any

import boto3
import botocore.session
from botocore.config import Config

# DynamoDB calls keep botocore's standard retry mode: it backs off on
# ProvisionedThroughputExceeded and throttling, so a burst of $connect events
# is absorbed instead of refusing handshakes.
_DATA_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=2,
    read_timeout=5,
)


def management_session(pool_size: int) -> boto3.session.Session:
    """A session whose management API clients suit a concurrent fan-out.

    Chalice builds its ``apigatewaymanagementapi`` client from
    ``app.websocket_api.session`` without a config, so the connection pool and
    retry policy are set as the session's default client config. Retries are
    left to :mod:`chalicelib.delivery`, which knows the invocation's deadline.
    """
    core = botocore.session.get_session()
    core.set_default_client_config(
        Config(
            max_pool_connections=pool_size,
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=2,
            read_timeout=5,
            tcp_keepalive=True,
        )
    )
    return boto3.session.Session(botocore_session=core)


def dynamodb_client() -> Any:
    return boto3.client("dynamodb", config=_DATA_CLIENT_CONFIG)


def ssm_client() -> Any:
    return boto3.client("ssm", config=_DATA_CLIENT_CONFIG)


def sqs_client() -> Any:
    return boto3.client("sqs", config=_DATA_CLIENT_CONFIG)
