"""The public API for a team's own actions and REST routes, written in the team's own modules.

Everything a team's code imports from Switchboard is here, and this is what
upgrades keep working: the team's files live in ``chalicelib/product/`` (any
module there is loaded when ``app.py`` is, by :mod:`chalicelib.loader`), so no
file of Switchboard's is edited and an upgrade never conflicts with them.
``docs/extending.md`` walks through three complete examples.

An **action** is a function declared with :func:`action`: its name, its fields
(typed readers from :mod:`chalicelib.fields`), the room permissions it needs,
whether the caller must be a member of the room, its kind and an optional rate
limit. Built-in actions are entries of the same table, dispatched the same way:
the frame is parsed, the permissions are checked in the room its ``room``
field names, the rate is judged, then the handler runs with a :class:`Context`
(who is calling, the room, ``publish``/``deliver``/``store``/``annotate``/
``get``, ``ack``/``reply``) and the declared fields as keyword arguments.

* A ``REQUEST`` is answered exactly once: the handler's answer (an ``ack`` by
  default), or the error that refused it.
* A ``NOTICE`` (typing, a cursor) is fire and forget: answered only when it is
  refused, or when the frame carries an ``id``.

A **REST route** is a view of a :class:`Routes` blueprint declared with
:meth:`Routes.backend`: it authenticates the caller's bearer token, checks a
role, reads the declared fields of the JSON body and path, and runs with a
:class:`Backend` that publishes, delivers and stores. Any Chalice
``Blueprint`` at the top level of a module in ``chalicelib/product/`` is
registered on the app, so its routes and functions deploy with it.

Importing this module creates no AWS client and imports nothing of the
handlers: team modules are imported when ``app.py`` is, inside the Lambda init.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from chalice.app import Blueprint, Response

from chalicelib import entry, loader
from chalicelib.fields import (
    Boolean,
    Enum,
    Integer,
    Json,
    Reader,
    Room,
    Seq,
    Since,
    String,
    Text,
    UserId,
    check_names,
    parser,
)
from chalicelib.invocation import Deadline
from chalicelib.permissions import ADMIN_ROLE, HISTORY, JOIN, PERMISSIONS, PRESENCE, PUBLISH
from chalicelib.protocol import (
    BAD_REQUEST,
    FORBIDDEN,
    NOT_FOUND,
    TOO_LARGE,
    Fields,
    Message,
    Position,
    ProtocolError,
)
from chalicelib.ratelimit import Rate, RateError

__all__ = [
    "ADMIN_ROLE", "BAD_REQUEST", "FORBIDDEN", "HISTORY", "JOIN", "NOTICE", "NOT_FOUND",
    "PRESENCE", "PUBLISH", "REQUEST", "TOO_LARGE", "Answer", "Backend", "Boolean", "Context",
    "Enum", "Integer", "Json", "Message", "Position", "Reader", "Refused", "Room", "Routes",
    "Seq", "Since", "Stored", "String", "Text", "UserId", "action",
]

REQUEST = "request"
NOTICE = "notice"
KINDS = (REQUEST, NOTICE)
ROOM_FIELD = "room"


class ExtensionError(TypeError):
    """A declaration that cannot work; the message says which and why."""


class Refused(ProtocolError):
    """Raise in a handler to refuse the frame: its ``code`` (``bad_request``,
    ``forbidden``, ``not_found``, ``too_large``) and ``message`` answer the
    caller. What the handler did before raising stays done."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)


class Unauthorized(Exception):
    """A REST caller whose token is missing (401) or not accepted (403)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Answer:
    """What a handler answers with: an ``ack`` with more fields, or a frame of its own."""

    fields: Mapping[str, Any]
    is_ack: bool = True


@dataclass(frozen=True)
class Stored:
    """A message kept in a room's stream (``message.position``: its ``seq``/``epoch``;
    None with history off) and how many connections it was delivered to."""

    message: Message
    delivered: int


class Context(Protocol):
    """What an action's handler gets: who is calling, the room, and what it may do there.

    Every method that takes ``room`` defaults to the action's room (its
    ``room`` field). Frames are JSON objects with a ``type``; they are posted as
    given, without an ``id``.
    """

    @property
    def user_id(self) -> str:
        """The caller's user id, as its token said at ``$connect`` (never the frame's)."""

    @property
    def connection_id(self) -> str: ...

    @property
    def roles(self) -> tuple[str, ...]:
        """The token's roles."""

    @property
    def rooms(self) -> frozenset[str]:
        """The rooms this connection has joined."""

    @property
    def room(self) -> str | None:
        """The room the action acts in: its ``room`` field, where permissions were checked."""

    @property
    def request_id(self) -> str | None:
        """The frame's ``id``: None for a notice that wants no answer."""

    def may(self, permission: str, room: str | None = None) -> bool:
        """Whether the caller holds ``permission`` (``JOIN``, ``PUBLISH``...) in the room."""

    def publish(self, frame: Mapping[str, Any], room: str | None = None,
                *, echo: bool = False) -> int:
        """Post ``frame`` to the room's member connections but the caller's (all with
        ``echo``); not stored. Returns how many it reached."""

    def deliver(self, frame: Mapping[str, Any], *, user: str) -> int:
        """Post ``frame`` to every connection of one user; not stored."""

    def store(self, room: str | None = None, *, text: str | None = None,
              kind: str | None = None, data: Any = None, reply_to: int | None = None) -> Stored:
        """Keep a message (``text`` and/or ``kind`` + ``data``, optionally replying to a
        ``seq``) in the room's stream, then deliver it to the room's other members as a
        ``message`` frame, as ``sendToRoom`` does."""

    def get(self, seq: int, room: str | None = None, *, epoch: str | None = None
            ) -> Message | None:
        """The room's message at ``seq`` (of ``epoch``, when given), with its annotations."""

    def annotate(self, seq: int, name: str, value: str, room: str | None = None, *,
                 remove: bool = False, epoch: str | None = None) -> Message:
        """Add (``remove``: take back) the caller's ``value`` of annotation ``name``
        (``"reaction"``, ``"👍"``) on the room's message at ``seq``; a user counts once
        per value. Returns the message with its new summary; ``not_found`` when the
        message is not kept."""

    def ack(self, **fields: Any) -> Answer:
        """The answer ``{"type": "ack", "action", "id"?, **fields}``."""

    def reply(self, frame: Mapping[str, Any]) -> Answer:
        """An answer of the handler's own ``type`` (its ``id`` added)."""


class Backend(Protocol):
    """What a REST route's view gets: the authenticated caller, and delivery to connections."""

    @property
    def caller(self) -> str:
        """The user id (``sub``) of the bearer token."""

    @property
    def roles(self) -> tuple[str, ...]: ...

    def publish(self, room: str, frame: Mapping[str, Any]) -> int:
        """Post ``frame`` to every member connection of the room; not stored."""

    def deliver(self, frame: Mapping[str, Any], *, user: str) -> int:
        """Post ``frame`` to every connection of one user; not stored."""

    def store(self, room: str, *, text: str | None = None, kind: str | None = None,
              data: Any = None, reply_to: int | None = None) -> Stored:
        """Keep a message from the caller in the room's stream, then deliver it to every
        member connection as a ``message`` frame."""

    def get(self, room: str, seq: int, *, epoch: str | None = None) -> Message | None: ...


class Gate(Protocol):
    """How REST routes reach the container's services (``app.py`` hands one to
    :func:`chalicelib.loader.load`)."""

    @property
    def max_text_bytes(self) -> int: ...

    def open(self, token: str | None, deadline: Deadline) -> Backend:
        """A backend for the holder of ``token``; raises :class:`Unauthorized`."""


# -- actions ----------------------------------------------------------------------------

Handler = Callable[..., "Answer | None"]


@dataclass(frozen=True)
class Declaration:
    """One declared action, as :func:`action` recorded it."""

    name: str
    handler: Handler
    fields: Mapping[str, Reader]
    needs: tuple[str, ...] = ()
    kind: str = REQUEST
    rate: Rate | None = None
    member: bool = False
    origin: str = field(default="", compare=False)

    @property
    def room_field(self) -> str | None:
        return ROOM_FIELD if ROOM_FIELD in self.fields else None


class Catalog:
    """Every declared action by name; the action table reads it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._declared: dict[str, Declaration] = {}
        self.version = 0

    def add(self, declaration: Declaration) -> None:
        with self._lock:
            existing = self._declared.get(declaration.name)
            if existing is not None and existing.origin != declaration.origin:
                raise ExtensionError(
                    f"action {declaration.name!r} is declared twice: in {existing.origin} "
                    f"and in {declaration.origin}"
                )
            self._declared[declaration.name] = declaration  # the same one, imported again
            self.version += 1

    def remove(self, name: str) -> None:
        with self._lock:
            if self._declared.pop(name, None) is not None:
                self.version += 1

    def declarations(self) -> tuple[Declaration, ...]:
        with self._lock:
            return tuple(self._declared.values())


CATALOG = Catalog()


def action(
    name: str,
    *,
    fields: Mapping[str, Reader] | None = None,
    needs: str | tuple[str, ...] = (),
    member: bool = False,
    kind: str = REQUEST,
    rate: str | None = None,
) -> Callable[[Handler], Handler]:
    """Declare the decorated function as the action ``name``.

    ``fields`` names the frame's fields and their readers (``{"room": Room()}``);
    the handler takes them as keyword arguments after the :class:`Context`.
    ``needs``: room permissions the caller must hold in the room its ``room``
    field names (checked before the handler, answered ``forbidden`` naming the
    missing one). ``member``: the caller must have joined that room. ``kind``:
    ``REQUEST`` or ``NOTICE``. ``rate``: a limit such as ``"20/s"`` or
    ``"600/min per user"``, shared by every container; without one, the stage's
    ``DEFAULT_ACTION_RATE``. Mistakes raise :class:`ExtensionError` at import.
    """
    declared = dict(fields or {})
    required = (needs,) if isinstance(needs, str) else tuple(needs)

    def declare(handler: Handler) -> Handler:
        origin = f"{handler.__module__}.{handler.__qualname__}"
        _check_declaration(name, declared, required, member, kind, origin)
        _check_signature(handler, declared, origin)
        CATALOG.add(Declaration(
            name, handler, declared, required, kind, _rate(rate, name), member, origin,
        ))
        return handler

    return declare


def _check_declaration(
    name: str, declared: Mapping[str, Reader], needs: tuple[str, ...], member: bool,
    kind: str, origin: str,
) -> None:
    if not isinstance(name, str) or not 1 <= len(name) <= 64 or not name.isprintable():
        raise ExtensionError(f"{origin}: an action's name is 1-64 printable characters")
    if kind not in KINDS:
        raise ExtensionError(f"{origin}: kind must be REQUEST or NOTICE, got {kind!r}")
    unknown = [permission for permission in needs if permission not in PERMISSIONS]
    if unknown:
        raise ExtensionError(
            f"{origin}: unknown permission {unknown[0]!r}; "
            f"expected some of {', '.join(PERMISSIONS)}"
        )
    if (needs or member) and not isinstance(declared.get(ROOM_FIELD), Room):
        raise ExtensionError(
            f"{origin}: 'needs' and 'member' apply in the action's room: declare "
            f"fields={{'{ROOM_FIELD}': Room(), ...}}"
        )
    try:
        check_names(declared)
    except TypeError as error:
        raise ExtensionError(f"{origin}: {error}") from None


def _check_signature(handler: Handler, declared: Mapping[str, Reader], origin: str,
                     first: str = "a Context") -> None:
    """The handler takes ``first``, then exactly the declared fields as keywords."""
    parameters = list(inspect.signature(handler).parameters.values())
    if not parameters or parameters[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD
    ):
        raise ExtensionError(f"{origin} must take {first} as its first argument")
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    taken = {p.name for p in parameters[1:]}
    if taken != set(declared):
        raise ExtensionError(
            f"{origin} takes {sorted(taken)} after {first}, but its fields are "
            f"{sorted(declared)}: they must be the same"
        )


def _rate(rate: str | None, name: str) -> Rate | None:
    if rate is None:
        return None
    try:
        return Rate.parse(rate)
    except RateError as error:
        raise ExtensionError(f"the rate of {name!r}: {error}") from None


# -- REST routes ---------------------------------------------------------------------------

View = Callable[..., Any]
_PATH_PARAMETER = re.compile(r"{(\w+)}")
_STATUS = {BAD_REQUEST: 400, FORBIDDEN: 403, NOT_FOUND: 404, TOO_LARGE: 413}


class Routes(Blueprint):
    """A Chalice blueprint whose views may be backend routes (:meth:`backend`).

    Declare one at the top level of a module in ``chalicelib/product/``; it is
    registered on the app when ``app.py`` is loaded.
    """

    def backend(
        self,
        path: str,
        *,
        role: str,
        methods: tuple[str, ...] = ("POST",),
        fields: Mapping[str, Reader] | None = None,
        **options: Any,
    ) -> Callable[[View], View]:
        """A route for backends: ``Authorization: Bearer <token>`` signed with the stage's
        key, whose ``roles`` hold ``role`` (or ``admin``); 401 without a token, 403
        otherwise. ``fields`` read the JSON body's fields and the path's parameters
        (``400``/``413`` with ``{"code", "message"}`` when one is wrong); the view takes
        a :class:`Backend`, then every path parameter and declared field as keywords,
        and returns what Chalice accepts (a dict is JSON). :class:`Refused` in the view
        answers its code's status: 400, 403, 404 or 413."""
        declared = dict(fields or {})

        def register(view: View) -> View:
            origin = f"{view.__module__}.{view.__qualname__}"
            try:
                check_names(declared)
            except TypeError as error:
                raise ExtensionError(f"{origin}: {error}") from None
            parameters = dict.fromkeys(_PATH_PARAMETER.findall(path), String())
            _check_signature(view, {**parameters, **declared}, origin, first="a Backend")
            read = parser(declared)

            @functools.wraps(view)
            def serve(**path: str) -> Any:
                return entry.run(
                    view.__name__, "-", self.lambda_context,
                    lambda call: _serve(self, view, read, role, path, call),
                )

            self.route(path, methods=list(methods), **options)(serve)
            return view

        return register


def _serve(
    routes: Routes, view: View, read: Callable[[Fields], dict[str, Any]], role: str,
    path: Mapping[str, str], call: entry.Call,
) -> Any:
    gate = cast(Gate, loader.gate_of(routes.current_app))
    headers = routes.current_request.headers
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    try:
        backend = gate.open(token.strip() if scheme.lower() == "bearer" else None, call.deadline)
    except Unauthorized as refused:
        call.log.set(outcome="refused", status=refused.status, reason=refused.reason)
        return _error(refused.status, "unauthorized", refused.reason)
    call.log.set(userId=backend.caller)
    if role not in backend.roles and ADMIN_ROLE not in backend.roles:
        call.log.set(outcome="refused", status=403, reason="role")
        return _error(403, FORBIDDEN, f"this route needs a token with the {role!r} role")
    try:
        body = _json_body(routes)
        values = read(Fields({**body, **path}, gate.max_text_bytes))
        return view(backend, **{**path, **values})
    except ProtocolError as error:
        call.log.set(outcome="error", code=error.code)
        return _error(_STATUS.get(error.code, 400), error.code, error.message)


def _json_body(routes: Routes) -> dict[str, Any]:
    raw = routes.current_request.raw_body
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise ProtocolError(BAD_REQUEST, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ProtocolError(BAD_REQUEST, "the body must be a JSON object")
    return body


def _error(status: int, code: str, message: str) -> Response:
    return Response(body={"code": code, "message": message}, status_code=status)
