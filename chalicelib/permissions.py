"""Who may do what in which room: the only code that knows room patterns and permission names.

A token may carry a ``rooms`` claim mapping room patterns to permissions::

    {"rooms": {"lobby": ["join", "publish", "presence", "history"],
               "team-42:*": ["join"],
               "*": ["presence"]}}

A pattern is an exact room name, or a prefix ending in ``*`` (``*`` alone
matches every room). Permissions from every matching pattern add up:

* ``join`` — join the room and receive its messages;
* ``publish`` — ``sendToRoom``;
* ``presence`` — see its members (``presence``) and presence events;
* ``history`` — read its history and recover missed messages.

A token with the claim gets exactly what it grants; a token without it gets
the stage's ``DEFAULT_ROOM_PERMISSIONS`` everywhere. The ``admin`` role may do
everything. Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from chalicelib.protocol import ROOM_PATTERN

JOIN = "join"
PUBLISH = "publish"
PRESENCE = "presence"
HISTORY = "history"
PERMISSIONS = (JOIN, PUBLISH, PRESENCE, HISTORY)
ADMIN_ROLE = "admin"
"""The role that may do everything, in every room (and ``broadcastAll``)."""

WILDCARD = "*"
MAX_PATTERNS = 100
_PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{0,63}")


class PermissionsError(ValueError):
    """A malformed ``rooms`` claim or permission list; the message says what is wrong."""


@dataclass(frozen=True)
class RoomGrants:
    """What a token grants, pattern by pattern (permissions of matching patterns add up)."""

    patterns: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def everywhere(cls, permissions: Iterable[str]) -> RoomGrants:
        """The same permissions in every room: a stage's defaults."""
        granted = frozenset(permissions)
        return cls({WILDCARD: granted} if granted else {})

    def permissions_for(self, room: str) -> frozenset[str]:
        granted: set[str] = set()
        for pattern, permissions in self.patterns.items():
            if _matches(pattern, room):
                granted |= permissions
        return frozenset(granted)

    def allows(self, room: str, permission: str) -> bool:
        return permission in self.permissions_for(room)


def may(roles: Iterable[str], grants: RoomGrants, room: str, permission: str) -> bool:
    """Whether a connection with these roles and grants holds ``permission`` in ``room``."""
    return ADMIN_ROLE in roles or grants.allows(room, permission)


def parse_claim(claim: object) -> RoomGrants:
    """Validate a token's ``rooms`` claim; :class:`PermissionsError` names what is wrong."""
    if not isinstance(claim, dict):
        raise PermissionsError("'rooms' must be an object mapping room patterns to permissions")
    if len(claim) > MAX_PATTERNS:
        raise PermissionsError(f"'rooms' may name at most {MAX_PATTERNS} patterns")
    patterns: dict[str, frozenset[str]] = {}
    for pattern, permissions in claim.items():
        _check_pattern(pattern)
        if not isinstance(permissions, list):
            raise PermissionsError(f"the permissions of {pattern!r} must be a list")
        granted = parse_permissions(permissions, f"the permissions of {pattern!r}")
        if granted:
            patterns[pattern] = granted
    return RoomGrants(patterns)


def parse_permissions(names: Iterable[object], where: str) -> frozenset[str]:
    """Permission names, each one of :data:`PERMISSIONS`; ``where`` names the source in errors."""
    granted: set[str] = set()
    for name in names:
        if name not in PERMISSIONS:
            raise PermissionsError(
                f"{where}: unknown permission {str(name)[:32]!r}; "
                f"expected some of {', '.join(PERMISSIONS)}"
            )
        granted.add(str(name))
    return frozenset(granted)


def _check_pattern(pattern: str) -> None:
    if pattern.endswith(WILDCARD):
        if _PREFIX_PATTERN.fullmatch(pattern[:-1]):
            return
    elif ROOM_PATTERN.fullmatch(pattern):
        return
    raise PermissionsError(
        f"room pattern {pattern[:70]!r} must be a room name, or a prefix of one ending in '*'"
    )


def _matches(pattern: str, room: str) -> bool:
    if pattern.endswith(WILDCARD):
        return room.startswith(pattern[:-1])
    return room == pattern
