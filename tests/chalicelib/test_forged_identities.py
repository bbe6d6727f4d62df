"""Forged identities: every attack on the ``$connect`` token is refused and writes nothing.

tests/chalicelib/test_identity.py covers the verifier alone; here each forged token goes
through the real ``$connect`` handler, and the proof that it was refused is
twofold: the handshake's status, and a table with no item and a client that
made no write. Issuer and audience are checked with a stage configured for them.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chalicelib import runtime
from chalicelib.identity import MAX_TOKEN_LENGTH, issue_token
from chalicelib.runtime import Services, build_services
from chalicelib.settings import Settings
from switchboard_local.testing import WebsocketTestClient
from tests.chalicelib.conftest import table_items
from tests.conftest import TEST_SECRET

ISSUER = "https://auth.example.com/switchboard-prod"
AUDIENCE = "switchboard-api-prod"
TOKEN_FUZZ_EXAMPLES = 150
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
Forge = Callable[[], str]


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def segments(header: dict[str, Any], claims: dict[str, Any], signature: str = "") -> str:
    return f"{b64(json.dumps(header))}.{b64(json.dumps(claims))}.{signature}"


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"sub": "mallory", "iat": now, "exp": now + 600}
    base.update(extra)
    return {name: value for name, value in base.items() if value is not None}


def signed(payload: dict[str, Any], key: Any = TEST_SECRET, alg: str = "HS256",
           headers: dict[str, Any] | None = None) -> str:
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def hand_signed(payload: dict[str, Any], key: str) -> str:
    """HS256 by hand, for claims and keys PyJWT itself refuses to encode."""
    unsigned = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}))}.{b64(json.dumps(payload))}"
    mac = hmac.new(key.encode(), unsigned.encode(), hashlib.sha256).digest()
    return f"{unsigned}.{b64(mac)}"


def swap_payload(token: str, payload: dict[str, Any]) -> str:
    header, _, signature = token.split(".")
    return f"{header}.{b64(json.dumps(payload))}.{signature}"


def flip_signature(token: str) -> str:
    header, payload, signature = token.split(".")
    middle = len(signature) // 2
    replacement = "A" if signature[middle] != "A" else "B"
    return f"{header}.{payload}.{signature[:middle]}{replacement}{signature[middle + 1:]}"


def rsa_token() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return signed(claims(), key, "RS256")


def ec_token() -> str:
    return signed(claims(), ec.generate_private_key(ec.SECP256R1()), "ES256")


def good() -> str:
    return signed(claims())


ATTACKS: dict[str, Forge] = {
    # the algorithm
    "alg none": lambda: segments({"alg": "none", "typ": "JWT"}, claims()),
    "alg None": lambda: segments({"alg": "None"}, claims()),
    "alg NONE": lambda: segments({"alg": "NONE"}, claims()),
    "alg none with a real signature": lambda: segments(
        {"alg": "none"}, claims(), good().split(".")[2]
    ),
    "alg missing": lambda: segments({"typ": "JWT"}, claims(), good().split(".")[2]),
    "HS384 with the stage key": lambda: signed(claims(), alg="HS384"),
    "HS512 with the stage key": lambda: signed(claims(), alg="HS512"),
    "RS256 with an attacker key": rsa_token,
    "ES256 with an attacker key": ec_token,
    "embedded jwk header": lambda: signed(
        claims(), "attacker-key-0123456789abcdef0123", headers={"jwk": {"kty": "oct", "k": "x"}}
    ),
    "empty key": lambda: hand_signed(claims(), ""),
    # the payload and the signature
    "tampered sub": lambda: swap_payload(good(), claims(sub="alice")),
    "tampered roles": lambda: swap_payload(good(), claims(roles=["admin"])),
    "tampered exp": lambda: swap_payload(signed(claims(exp=1)), claims()),
    "tampered signature": lambda: flip_signature(good()),
    "truncated signature": lambda: good()[:-6],
    "signature stripped": lambda: good().rsplit(".", 1)[0] + ".",
    "another stage's key": lambda: issue_token("staging-signing-key-0123456789abcdef", "mallory"),
    # the claims
    "expired": lambda: signed(claims(exp=int(time.time()) - 1)),
    "expired long ago": lambda: signed(claims(exp=0)),
    "not yet valid (nbf)": lambda: signed(claims(nbf=int(time.time()) + 600)),
    "issued in the future (iat)": lambda: signed(claims(iat=int(time.time()) + 600)),
    "exp not a number": lambda: signed(claims(exp="tomorrow")),
    "no exp": lambda: signed(claims(exp=None)),
    "no sub": lambda: signed(claims(sub=None)),
    "empty sub": lambda: signed(claims(sub="")),
    "numeric sub": lambda: signed(claims(sub=42)),
    "object sub": lambda: signed(claims(sub={"id": "alice"})),
    "129-character sub": lambda: signed(claims(sub="m" * 129)),
    "sub with a lone surrogate": lambda: hand_signed(claims(sub="ev\ud800il"), TEST_SECRET),
    "role with a lone surrogate": lambda: hand_signed(claims(roles=["\udfff"]), TEST_SECRET),
    "exp a numeric string": lambda: signed(claims(exp=str(int(time.time()) + 600))),
    "nbf a numeric string": lambda: signed(claims(nbf=str(int(time.time()) - 60))),
    "roles a string": lambda: signed(claims(roles="admin")),
    "roles with a non-string": lambda: signed(claims(roles=["admin", 1])),
    "oversized token": lambda: signed(claims(roles=["r" * 100] * 40)),
    # the encoding
    "garbage": lambda: "garbage",
    "three dots": lambda: "a.b.c",
    "only dots": lambda: "..",
    "two segments": lambda: ".".join(good().split(".")[:2]),
    "five segments": lambda: good() + ".x.y",
    "header not JSON": lambda: f"{b64('nope')}.{b64(json.dumps(claims()))}.sig",
    "payload a JSON array": lambda: signed(claims()).split(".")[0] + "." + b64("[1]") + ".x",
    "Bearer prefix": lambda: "Bearer " + good(),
    "trailing newline": lambda: good() + "\n",
    "non-ASCII": lambda: good() + "é",
    "4 KiB of junk": lambda: "x" * (MAX_TOKEN_LENGTH + 1),
}

STAGE_ATTACKS: dict[str, Forge] = {
    "no iss or aud": lambda: signed(claims()),
    "another stage's issuer": lambda: signed(
        claims(iss="https://auth.example.com/switchboard-staging", aud=AUDIENCE)
    ),
    "another stage's audience": lambda: signed(claims(iss=ISSUER, aud="switchboard-api-staging")),
    "audience list without ours": lambda: signed(claims(iss=ISSUER, aud=["a", "b"])),
    "no iss": lambda: signed(claims(aud=AUDIENCE)),
    "no aud": lambda: signed(claims(iss=ISSUER)),
    "issuer with a trailing slash": lambda: signed(claims(iss=ISSUER + "/", aud=AUDIENCE)),
    "issuer as a list": lambda: hand_signed(claims(iss=[ISSUER], aud=AUDIENCE), TEST_SECRET),
}


def assert_refused(
    client: WebsocketTestClient, services: Services, dynamodb: Any,
    calls: Counter[str], token: str,
) -> None:
    calls.clear()
    status = client.connect(query={"token": token}).status
    assert status in (401, 403), status
    assert not WRITES & set(calls), calls
    assert table_items(services, dynamodb) == []


@pytest.fixture
def stage_services(
    client: WebsocketTestClient, settings: Settings, dynamodb: Any, app_module: Any
) -> Services:
    """The app on a stage that checks the token's issuer and audience."""
    strict = dataclasses.replace(settings, token_issuer=ISSUER, token_audience=AUDIENCE)
    built = build_services(strict, app_module.app.websocket_api, dynamodb)
    runtime.use(built)
    return built


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_forged_tokens_are_refused_and_write_nothing(
    client: WebsocketTestClient, services: Services, dynamodb: Any,
    dynamodb_calls: Counter[str], attack: str,
) -> None:
    assert_refused(client, services, dynamodb, dynamodb_calls, ATTACKS[attack]())


@pytest.mark.parametrize("attack", list(STAGE_ATTACKS))
def test_tokens_for_another_stage_are_refused_and_write_nothing(
    client: WebsocketTestClient, stage_services: Services, dynamodb: Any,
    dynamodb_calls: Counter[str], attack: str,
) -> None:
    assert_refused(client, stage_services, dynamodb, dynamodb_calls, STAGE_ATTACKS[attack]())


def test_the_stage_still_admits_its_own_tokens(
    client: WebsocketTestClient, stage_services: Services, dynamodb: Any
) -> None:
    """The control: the refusals above are not a stage that refuses everyone."""
    own = signed(claims(iss=ISSUER, aud=AUDIENCE))
    listed = signed(claims(sub="bob", iss=ISSUER, aud=["other", AUDIENCE]))
    assert client.connect(query={"token": own}).status == 200
    assert client.connect(query={"token": listed}).status == 200
    users = sorted(item["userId"]["S"] for item in table_items(stage_services, dynamodb))
    assert users == ["bob", "mallory"]


def test_the_oversized_attack_is_a_valid_signature_refused_for_size() -> None:
    """Guards the attack list: the oversized token would pass but for its length."""
    token = ATTACKS["oversized token"]()
    assert len(token) > MAX_TOKEN_LENGTH
    assert jwt.decode(token, TEST_SECRET, algorithms=["HS256"])["sub"] == "mallory"


BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@st.composite
def mutated_tokens(draw: st.DrawFn) -> str:
    """A valid token with one base64url character changed.

    The signature covers the header and payload *text*, so any change there
    must fail; in the signature, only its last character can carry unused
    padding bits, so it is left alone.
    """
    token = good()
    signature_end = len(token) - 1
    positions = [i for i, char in enumerate(token[:signature_end]) if char != "."]
    position = draw(st.sampled_from(positions))
    replacement = draw(st.sampled_from([c for c in BASE64URL if c != token[position]]))
    return token[:position] + replacement + token[position + 1:]


token_noise = st.text(max_size=300) | st.binary(max_size=300).map(
    lambda data: base64.urlsafe_b64encode(data).decode()
)


@pytest.mark.engines("moto")
@given(forged=mutated_tokens() | token_noise)
@hypothesis_settings(max_examples=TOKEN_FUZZ_EXAMPLES)
def test_no_mutated_or_random_token_gets_in(
    client: WebsocketTestClient, services: Services, dynamodb: Any,
    dynamodb_calls: Counter[str], forged: str,
) -> None:
    if not forged:
        forged = "x"
    assert_refused(client, services, dynamodb, dynamodb_calls, forged)
