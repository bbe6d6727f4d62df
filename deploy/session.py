"""The AWS session of the deploy tools, and the one-line errors they print instead of tracebacks.

``python -m deploy.provision`` and ``python -m deploy.smoke`` run on an
operator's machine, where a missing region, missing credentials or a missing
permission is the usual first failure. Each becomes one line saying what is
missing and where it comes from; anything else keeps its traceback.

The region comes from ``--region``, else ``AWS_REGION`` / ``AWS_DEFAULT_REGION``,
else the ``region`` of the AWS profile in use (``aws configure``); credentials
from botocore's usual chain (environment, ``AWS_PROFILE`` and
``~/.aws/credentials``, SSO, instance or container roles).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import boto3
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
    TokenRetrievalError,
)

NO_REGION = (
    "no AWS region: pass --region, set AWS_REGION (or AWS_DEFAULT_REGION), or give your "
    "AWS profile a region (aws configure)"
)
NO_CREDENTIALS = (
    "no AWS credentials: run `aws configure` (or `aws sso login`), or set AWS_PROFILE, "
    "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
)
DENIED_CODES = frozenset({
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError",
    "UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken",
    "ExpiredTokenException", "InvalidSignatureException", "SignatureDoesNotMatch",
})


class ToolError(Exception):
    """A failure the operator can fix; the message is the one line to print."""


def session(region: str | None) -> boto3.session.Session:
    """A session with a region and credentials, or a :class:`ToolError` saying which is missing."""
    region = region or os.environ.get("AWS_REGION") or None  # botocore reads only the DEFAULT
    try:
        made = boto3.session.Session(region_name=region)
    except ProfileNotFound as error:
        raise ToolError(f"{error}: check AWS_PROFILE and ~/.aws/config") from None
    if not made.region_name:
        raise ToolError(NO_REGION)
    if made.get_credentials() is None:
        raise ToolError(NO_CREDENTIALS)
    return made


def explain(error: Exception) -> str | None:
    """The one line for a failure the operator can fix; None for anything else."""
    if isinstance(error, ToolError):
        return str(error)
    if isinstance(error, NoRegionError):
        return NO_REGION
    if isinstance(error, NoCredentialsError | TokenRetrievalError):
        return NO_CREDENTIALS
    if isinstance(error, EndpointConnectionError):
        return f"cannot reach AWS: {error}"
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = str(details.get("Code", ""))
        if code in DENIED_CODES:
            message = " ".join(str(details.get("Message", "")).split())
            return (f"permission denied: AWS refused {error.operation_name} ({code}); "
                    f"grant it to the identity in use. AWS said: {message}")
    return None


def run(main: Callable[[], int]) -> int:
    """Run a tool's main; a failure :func:`explain` knows is one line on stderr and exit 2."""
    try:
        return main()
    except Exception as error:
        line = explain(error)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        return 2
