"""Signing keys that follow a rotation: cached with a TTL, re-read (rate-limited) on an
unknown signature, the last ones kept when a read fails; then a rotation end to end."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from chalicelib import keys, runtime
from chalicelib.identity import TokenVerifier, issue_token
from chalicelib.keys import REFRESH_SECONDS, SigningKeys
from chalicelib.runtime import Services
from switchboard_local.testing import WebsocketTestClient

OLD = "old-signing-key-0123456789abcdef0123"
NEW = "new-signing-key-0123456789abcdef0123"
TTL = 300.0


class Loader:
    """A stored value, counting its reads; ``broken`` makes the next reads fail."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.reads = 0
        self.broken = False

    def __call__(self) -> str:
        self.reads += 1
        if self.broken:
            raise RuntimeError("SSM is unavailable")
        return self.value


@pytest.fixture
def clock() -> list[float]:
    return [1000.0]


def test_keys_are_read_once_then_again_after_their_ttl(clock: list[float]) -> None:
    stored = Loader(OLD)
    source = SigningKeys(stored, TTL, clock=lambda: clock[0])
    stored.value = NEW
    clock[0] += TTL - 1
    assert source.current() == (OLD,) and stored.reads == 1
    clock[0] += 1
    assert source.current() == (NEW,) and stored.reads == 2


def test_an_unknown_signature_re_reads_at_most_once_per_refresh_interval(
    clock: list[float],
) -> None:
    stored = Loader(OLD)
    source = SigningKeys(stored, TTL, clock=lambda: clock[0])
    clock[0] += REFRESH_SECONDS
    assert source.refresh() is False  # read again: nothing new
    for _ in range(100):  # a stream of forged tokens
        assert source.refresh() is False
    assert stored.reads == 2
    stored.value = f"{NEW},{OLD}"
    clock[0] += REFRESH_SECONDS
    assert source.refresh() is True
    assert source.current() == (NEW, OLD) and stored.reads == 3


def test_a_failed_read_keeps_the_last_keys_and_tries_again_soon(
    clock: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    stored = Loader(OLD)
    source = SigningKeys(stored, TTL, clock=lambda: clock[0])
    stored.broken = True
    clock[0] += TTL
    assert source.current() == (OLD,)
    assert "could not be read again (RuntimeError)" in caplog.text
    stored.broken, stored.value = False, NEW
    clock[0] += REFRESH_SECONDS - 1
    assert source.current() == (OLD,)
    clock[0] += 1
    assert source.current() == (NEW,)


def test_a_first_read_without_a_key_fails_loudly() -> None:
    with pytest.raises(ValueError):
        SigningKeys(Loader(" , "), TTL)


def test_the_verifier_retries_a_bad_signature_with_the_keys_read_again(
    clock: list[float],
) -> None:
    stored = Loader(OLD)
    verifier = TokenVerifier(source=SigningKeys(stored, TTL, clock=lambda: clock[0]))
    assert verifier.verify(issue_token(OLD, "alice")).user_id == "alice"
    stored.value = f"{NEW},{OLD}"
    clock[0] += REFRESH_SECONDS
    assert verifier.verify(issue_token(NEW, "bob")).user_id == "bob"
    assert stored.reads == 2


# -- a rotation through $connect, the keys in moto's SSM ------------------------------------


@pytest.fixture
def parameter(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", moto_endpoint)
    ssm = boto3.client("ssm", endpoint_url=moto_endpoint)
    name = f"/switchboard/test/token-secret-{uuid.uuid4().hex[:8]}"
    ssm.put_parameter(Name=name, Value=OLD, Type="SecureString")

    def store(value: str) -> None:
        ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)

    store.name = name  # type: ignore[attr-defined]
    yield store
    ssm.delete_parameter(Name=name)


def test_a_rotation_takes_effect_in_warm_containers(
    services: Services, client: WebsocketTestClient, parameter: Any, clock: list[float],
    dynamodb_calls: Any,
) -> None:
    """NEW,OLD: NEW is accepted on its first use; NEW alone: OLD is refused once the TTL
    has passed. One container throughout (the services are built once)."""
    reads: list[int] = []
    load = keys.parameter(parameter.name)

    def counted() -> str:
        reads.append(1)
        return load()

    source = SigningKeys(counted, TTL, clock=lambda: clock[0])
    runtime.use(dataclasses.replace(services, verifier=TokenVerifier(source=source)))

    def status(key: str, user: str) -> int:
        return client.connect(query={"token": issue_token(key, user)}).status

    assert status(OLD, "before") == 200
    parameter(f"{NEW},{OLD}")
    clock[0] += REFRESH_SECONDS  # the container has been warm a while
    assert status(NEW, "first-new") == 200  # at once: one read of the parameter
    assert status(OLD, "still-old") == 200
    assert len(reads) == 2
    parameter(NEW)
    clock[0] += TTL - 1  # the keys were last read at NEW's first use
    assert status(OLD, "old-inside-the-ttl") == 200
    clock[0] += 1
    assert status(OLD, "old-after-the-ttl") == 403
    assert status(NEW, "new") == 200
    assert len(reads) == 3


def test_a_stage_reads_its_parameter_through_the_same_keys(
    services: Services, parameter: Any, app_module: Any
) -> None:
    settings = dataclasses.replace(
        services.settings, token_secret=None, token_secret_parameter=parameter.name
    )
    built = runtime.build_services(settings, app_module.app.websocket_api)
    assert isinstance(built.verifier.source, SigningKeys)
    assert built.verifier.keys == (OLD,)
