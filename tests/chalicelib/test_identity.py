"""Token verification at $connect: who gets in, and with which status the rest are refused."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from chalicelib.identity import AuthenticationError, TokenVerifier, issue_token, signing_keys

SECRET = "identity-test-secret-0123456789abcdef"
verifier = TokenVerifier(SECRET)


def refusal(token: str | None, check: TokenVerifier = verifier) -> int:
    with pytest.raises(AuthenticationError) as caught:
        check.verify(token)
    return caught.value.status


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_valid_token_yields_the_user_and_roles() -> None:
    identity = verifier.verify(issue_token(SECRET, "alice", ("admin",)))
    assert identity.user_id == "alice"
    assert identity.roles == ("admin",)


def test_no_token_is_401() -> None:
    assert refusal(None) == 401
    assert refusal("") == 401


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "a.b.c",
        issue_token("another-secret-0123456789abcdefghij", "alice"),
        issue_token(SECRET, "alice", lifetime_seconds=-10),
        jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, SECRET, algorithm="HS512"),
        jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256"),
        jwt.encode({"exp": int(time.time()) + 60}, SECRET, algorithm="HS256"),
        jwt.encode({"sub": "", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256"),
        jwt.encode({"sub": "u" * 129, "exp": int(time.time()) + 60}, SECRET, algorithm="HS256"),
        jwt.encode({"sub": 42, "exp": int(time.time()) + 60}, SECRET, algorithm="HS256"),
        jwt.encode(
            {"sub": "a", "exp": int(time.time()) + 60, "roles": "admin"}, SECRET, algorithm="HS256"
        ),
        b64({"alg": "none", "typ": "JWT"}) + "." + b64({"sub": "a", "exp": 9999999999}) + ".",
        "x" * 5000,
    ],
    ids=[
        "garbage", "three-parts", "wrong-key", "expired", "hs512", "no-exp", "no-sub",
        "empty-sub", "long-sub", "numeric-sub", "roles-not-list", "alg-none", "oversized",
    ],
)
def test_bad_tokens_are_403(token: str) -> None:
    assert refusal(token) == 403


def test_a_tampered_payload_is_403() -> None:
    header, _, signature = issue_token(SECRET, "alice").split(".")
    forged = b64({"sub": "admin", "exp": int(time.time()) + 60, "roles": ["admin"]})
    assert refusal(f"{header}.{forged}.{signature}") == 403


def test_issuer_and_audience_are_enforced_when_configured() -> None:
    strict = TokenVerifier(SECRET, issuer="switchboard", audience="prod")
    good = issue_token(SECRET, "alice", issuer="switchboard", audience="prod")
    assert strict.verify(good).user_id == "alice"
    assert refusal(issue_token(SECRET, "alice"), strict) == 403
    other_stage = issue_token(SECRET, "alice", issuer="switchboard", audience="dev")
    assert refusal(other_stage, strict) == 403


# -- key rotation: the first key signs, all verify ---------------------------------

NEW, OLD = "rotation-new-key-0123456789abcdef0123", "rotation-old-key-0123456789abcdef0123"


def test_during_a_rotation_tokens_of_every_key_verify_and_the_first_signs() -> None:
    rotating = TokenVerifier(f"{NEW}, {OLD}")
    old_token, new_token = issue_token(OLD, "alice"), issue_token(f"{NEW},{OLD}", "bob")
    assert rotating.verify(old_token).user_id == "alice"
    assert rotating.verify(new_token).user_id == "bob"
    assert TokenVerifier(NEW).verify(new_token).user_id == "bob"  # signed with the first
    assert refusal(old_token, TokenVerifier(NEW)) == 403  # the old key retired


def test_a_rotation_does_not_hide_other_failures() -> None:
    expired = issue_token(OLD, "alice", now=time.time() - 7200)
    with pytest.raises(AuthenticationError, match="expired"):
        TokenVerifier(f"{NEW},{OLD}").verify(expired)
    stranger = issue_token("another-key-0123456789abcdef0123456", "x")
    with pytest.raises(AuthenticationError, match="Signature verification failed"):
        TokenVerifier(f"{NEW},{OLD}").verify(stranger)


@pytest.mark.parametrize("value", ["", " , ,"])
def test_a_value_without_keys_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="no key"):
        signing_keys(value)


def test_a_rooms_claim_is_read_and_its_absence_kept_apart() -> None:
    claim = {"lobby": ["join", "publish"], "team:*": ["join"]}
    identity = verifier.verify(issue_token(SECRET, "alice", rooms=claim))
    assert identity.rooms is not None
    assert identity.rooms.permissions_for("lobby") == {"join", "publish"}
    assert identity.rooms.permissions_for("team:x") == {"join"}
    assert verifier.verify(issue_token(SECRET, "alice")).rooms is None
    empty = verifier.verify(issue_token(SECRET, "alice", rooms={})).rooms
    assert empty is not None and not empty.allows("lobby", "join")


@pytest.mark.parametrize(
    "claim",
    [["lobby"], {"lobby": "join"}, {"lobby": ["fly"]}, {"bad room": ["join"]}, None, 7],
    ids=["list", "not-a-list", "unknown-permission", "bad-pattern", "null", "number"],
)
def test_a_malformed_rooms_claim_is_403(claim: object) -> None:
    token = jwt.encode(
        {"sub": "alice", "exp": int(time.time()) + 60, "rooms": claim}, SECRET, algorithm="HS256"
    )
    with pytest.raises(AuthenticationError) as caught:
        verifier.verify(token)
    assert caught.value.status == 403
    assert "rooms claim" in caught.value.reason
