"""Room patterns and permissions, without I/O: what a ``rooms`` claim grants."""

from __future__ import annotations

import pytest

from chalicelib.permissions import (
    PERMISSIONS,
    PermissionsError,
    RoomGrants,
    may,
    parse_claim,
    parse_permissions,
)

CLAIM = {
    "lobby": ["join", "publish", "presence", "history"],
    "team-42:*": ["join"],
    "*": ["presence"],
}


def test_the_issue_example_grants_what_it_says() -> None:
    grants = parse_claim(CLAIM)
    assert grants.permissions_for("lobby") == frozenset(PERMISSIONS)
    assert grants.permissions_for("team-42:design") == {"join", "presence"}
    assert grants.permissions_for("team-42:") == {"join", "presence"}
    assert grants.permissions_for("team-43:design") == {"presence"}
    assert grants.permissions_for("lobby2") == {"presence"}


def test_a_prefix_pattern_is_a_prefix_and_an_exact_name_is_exact() -> None:
    grants = parse_claim({"a*": ["join"], "b": ["publish"]})
    assert grants.allows("a", "join") and grants.allows("abc", "join")
    assert not grants.allows("ba", "join")
    assert grants.allows("b", "publish") and not grants.allows("bb", "publish")


def test_permissions_of_every_matching_pattern_add_up() -> None:
    grants = parse_claim({"*": ["join"], "r*": ["publish"], "room": ["history"]})
    assert grants.permissions_for("room") == {"join", "publish", "history"}


def test_an_empty_claim_grants_nothing() -> None:
    grants = parse_claim({})
    assert all(not grants.allows("lobby", p) for p in PERMISSIONS)
    assert parse_claim({"lobby": []}) == RoomGrants({})


def test_admin_may_everything_whatever_the_grants() -> None:
    nothing = RoomGrants({})
    assert may(("admin",), nothing, "anywhere", "publish")
    assert not may(("editor",), nothing, "anywhere", "publish")


def test_the_stage_default_applies_everywhere() -> None:
    defaults = RoomGrants.everywhere({"join", "publish"})
    assert defaults.allows("any-room", "publish") and not defaults.allows("x", "history")
    assert RoomGrants.everywhere(()) == RoomGrants({})


@pytest.mark.parametrize(
    ("claim", "complaint"),
    [
        (["lobby"], "object"),
        ("lobby", "object"),
        ({"lobby": "join"}, "must be a list"),
        ({"lobby": ["join", "fly"]}, "unknown permission 'fly'"),
        ({"lobby": [1]}, "unknown permission"),
        ({"lob by": ["join"]}, "room pattern"),
        ({"a#x": ["join"]}, "room pattern"),
        ({"a*b": ["join"]}, "room pattern"),
        ({"**": ["join"]}, "room pattern"),
        ({"": ["join"]}, "room pattern"),
        ({"r" * 65: ["join"]}, "room pattern"),
        ({"r" * 64 + "*": ["join"]}, "room pattern"),
        ({f"r{i}": ["join"] for i in range(101)}, "at most 100"),
    ],
)
def test_a_malformed_claim_says_what_is_wrong(claim: object, complaint: str) -> None:
    with pytest.raises(PermissionsError, match=complaint):
        parse_claim(claim)


def test_the_longest_patterns_are_accepted() -> None:
    grants = parse_claim({"r" * 64: ["join"], "p" * 63 + "*": ["join"]})
    assert grants.allows("r" * 64, "join") and grants.allows("p" * 64, "join")


def test_permission_lists_name_their_source_in_errors() -> None:
    assert parse_permissions(["join", "join"], "X") == {"join"}
    with pytest.raises(PermissionsError, match=r"^DEFAULT_ROOM_PERMISSIONS: unknown"):
        parse_permissions(["joined"], "DEFAULT_ROOM_PERMISSIONS")
