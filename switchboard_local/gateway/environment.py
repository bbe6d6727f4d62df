"""The environment the app runs with, as a deployed function's would be.

In containers each function gets its own: the variables the gateway was
started with, a region and dummy credentials
when there are none, the store's endpoints, the function's variables as
Chalice resolves them (top level, stage, its ``lambda_functions`` entry),
what the merge template merges into it, and the variables Lambda defines
for every function. On threads, handlers share this process and read its
``os.environ``: the gateway sets the stage's variables merged for every
function (:func:`merge_functions`) and restores the previous values when it
stops (which matters when the gateway is embedded in tests).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

DEFAULT_REGION = "us-east-1"


def local_aws_defaults() -> dict[str, str]:
    """Variables the gateway sets only when absent: a region, and dummy credentials.

    Real credentials are never replaced; dummy ones exist so botocore can sign
    requests to the local store and management API without a profile.
    """
    region = current_region()
    defaults = {"AWS_REGION": region, "AWS_DEFAULT_REGION": region}
    if not _has_credentials():
        defaults.update(AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local")
    return {name: value for name, value in defaults.items() if not os.environ.get(name)}


def current_region() -> str:
    """The region this process's environment names, else :data:`DEFAULT_REGION`."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def _has_credentials() -> bool:
    return bool(
        os.environ.get("AWS_ACCESS_KEY_ID")
        or os.environ.get("AWS_PROFILE")
        or os.environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    )


def merge_functions(
    base: Mapping[str, str], functions: Mapping[str, Mapping[str, str]]
) -> tuple[dict[str, str], list[str]]:
    """One environment for every function, and a warning for each variable they disagree on.

    All functions share this process, so a variable that differs between them
    gets the value of the first function (in the order given) that sets it.
    """
    merged = dict(base)
    owner: dict[str, str] = {}
    warnings = []
    for function, variables in functions.items():
        for name, value in variables.items():
            if name in owner and merged[name] != value:
                warnings.append(
                    f"{name} is {merged[name]!r} for {owner[name]} but {value!r} for "
                    f"{function}: all functions share one process, so all get {merged[name]!r}"
                )
                continue
            owner.setdefault(name, function)
            merged[name] = value
    return merged, warnings


@contextmanager
def process_environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Set variables until the block ends, then restore the previous values."""
    previous = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def lambda_variables(function_name: str, memory_mb: int, task_root: str) -> dict[str, str]:
    """What Lambda defines in every function's environment (its reserved variables)."""
    return {
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "local",
        "LAMBDA_TASK_ROOT": task_root,
    }
