"""Revoked tokens are refused at ``$connect``; the revocation moment only moves forward."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from chalicelib.registry import revocation_key
from chalicelib.revocations import Revocations, refuses
from chalicelib.runtime import Services
from switchboard_local.testing import WebsocketTestClient
from tests.chalicelib.conftest import described, table_items
from tests.conftest import TEST_SECRET


@pytest.fixture
def revocations(services: Services, dynamodb: Any) -> Revocations:
    return Revocations(dynamodb, services.settings.connections_table)


@pytest.mark.parametrize(("issued_before", "issued_at", "refused"), [
    (None, 100, False),
    (None, None, False),
    (100, 99, True),
    (100, 100, False),
    (100, 101, False),
    (100, None, True),
])
def test_which_tokens_a_revocation_refuses(
    issued_before: int | None, issued_at: int | None, refused: bool
) -> None:
    assert refuses(issued_before, issued_at) is refused


def test_a_token_issued_before_the_revocation_is_refused_and_nothing_is_written(
    client: WebsocketTestClient, token: Any, revocations: Revocations, services: Services,
    dynamodb: Any,
) -> None:
    now = int(time.time())
    revocations.revoke("alice", now - 30)
    before = table_items(services, dynamodb)

    assert client.connect(query={"token": token("alice", now=now - 60)}).status == 403

    assert table_items(services, dynamodb) == before
    assert described(before) == set()  # only the revocation item, which is not the registry's
    assert client.connect(query={"token": token("alice", now=now - 30)}).status == 200
    assert client.connect(query={"token": token("bob", now=now - 60)}).status == 200


def test_a_token_without_iat_is_refused_once_its_user_is_revoked(
    client: WebsocketTestClient, revocations: Revocations
) -> None:
    undated = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, TEST_SECRET,
                         algorithm="HS256")
    assert client.connect(query={"token": undated}).status == 200
    revocations.revoke("alice", int(time.time()))
    assert client.connect(query={"token": undated}).status == 403


def test_the_moment_only_moves_forward(revocations: Revocations, dynamodb: Any,
                                       services: Services) -> None:
    assert revocations.issued_before("alice") is None
    assert revocations.revoke("alice", 200) == 200
    assert revocations.revoke("alice", 100) == 200
    assert revocations.revoke("alice", 300) == 300
    assert revocations.issued_before("alice") == 300
    item = dynamodb.get_item(TableName=services.settings.connections_table,
                             Key=revocation_key("alice"))["Item"]
    assert "ttl" not in item  # a revocation outlives any token it refuses


def test_a_failing_revocation_read_refuses_the_handshake_with_500(
    client: WebsocketTestClient, token: Any, services: Services,
    monkeypatch: pytest.MonkeyPatch, dynamodb: Any,
) -> None:
    revocations = services.revocations
    assert revocations is not None

    def unavailable(user_id: str, issued_at: int | None) -> bool:
        raise RuntimeError("table unavailable")

    monkeypatch.setattr(revocations, "refuses", unavailable)
    assert client.connect(query={"token": token("alice")}).status == 500
    assert table_items(services, dynamodb) == []
