"""The public extension API: declaring actions, and how the table carries them out.

Actions are declared here as a team declares them in its own module, then
driven through the real message handler (the in-process client). Mistakes in a
declaration fail at import, naming the function.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from chalice.app import Chalice
from chalice.test import Client as ChaliceClient

from chalicelib import extend, loader
from chalicelib.actions import ACTIONS, table
from chalicelib.extend import (
    JOIN,
    NOTICE,
    PUBLISH,
    Answer,
    Context,
    Enum,
    ExtensionError,
    Integer,
    Json,
    Refused,
    Room,
    String,
)
from chalicelib.runtime import Services

Declare = Callable[..., Callable[[Callable[..., Any]], Callable[..., Any]]]


@pytest.fixture
def declare() -> Iterator[Declare]:
    """``extend.action``, forgetting what it declared when the test ends."""
    declared: list[str] = []

    def action(name: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        declared.append(name)
        return extend.action(name, **options)

    yield action
    for name in declared:
        extend.CATALOG.remove(name)


@pytest.fixture
def room(connect: Any) -> tuple[Any, Any]:
    """alice and bob in the room ``r``, their join frames read."""
    alice, bob = connect("alice"), connect("bob")
    for member in (alice, bob):
        member.request({"action": "joinRoom", "room": "r"})
    alice.new_frames()
    return alice, bob


# -- declaring ---------------------------------------------------------------------------


def handler(ctx: Context, room: str) -> None:
    return None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fields": {"room": Room()}, "needs": "fly"}, "unknown permission 'fly'"),
        ({"fields": {"room": String()}, "needs": JOIN}, "declare fields={'room': Room()"),
        ({"fields": {"room": Room()}, "kind": "shout"}, "kind must be REQUEST or NOTICE"),
        ({"fields": {"room": Room()}, "rate": "fast"}, "the rate of 'x'"),
        ({"fields": {"room": Room(), "id": String()}}, "field name 'id'"),
        ({"fields": {"room": Room(), "x": Integer()}}, "takes ['room'] after a Context"),
        ({"fields": {}}, "takes ['room'] after a Context, but its fields are []"),
    ],
)
def test_a_mistaken_declaration_fails_at_import(
    declare: Declare, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ExtensionError, match=re.escape(message)):
        declare("x", **options)(handler)
    assert "x" not in table()


def test_an_action_is_declared_once(declare: Declare) -> None:
    declare("once", fields={"room": Room()})(handler)
    declare("once", fields={"room": Room()})(handler)  # the same module imported again

    def other(ctx: Context, room: str) -> None:
        return None

    with pytest.raises(ExtensionError, match="is declared twice"):
        declare("once", fields={"room": Room()})(other)


def test_a_built_in_name_cannot_be_declared(declare: Declare) -> None:
    declare("ping")(lambda ctx: None)
    with pytest.raises(ExtensionError, match="declares 'ping', a built-in action"):
        table()
    extend.CATALOG.remove("ping")
    assert table()["ping"] is next(a for a in ACTIONS if a.name == "ping")


# -- requests --------------------------------------------------------------------------------


def test_a_request_gets_its_fields_and_is_acked(declare: Declare, room: Any) -> None:
    alice, _ = room
    seen: list[dict[str, Any]] = []

    @declare("vote", fields={"room": Room(), "choice": Enum("yes", "no"),
                             "weight": Integer(1, 3, optional=True)}, needs=PUBLISH, member=True)
    def vote(ctx: Context, room: str, choice: str, weight: int | None) -> None:
        seen.append({"user": ctx.user_id, "room": room, "choice": choice, "weight": weight,
                     "ctx.room": ctx.room, "rooms": ctx.rooms, "id": ctx.request_id})

    assert alice.request({"action": "vote", "room": "r", "choice": "yes", "id": "v"}) == {
        "type": "ack", "action": "vote", "id": "v",
    }
    assert alice.request({"action": "vote", "room": "r", "choice": "no"}) == {
        "type": "ack", "action": "vote",
    }
    assert seen[0] == {"user": "alice", "room": "r", "choice": "yes", "weight": None,
                       "ctx.room": "r", "rooms": frozenset({"r"}), "id": "v"}
    refused = alice.request({"action": "vote", "room": "r", "choice": "maybe", "id": "w"})
    assert refused == {"type": "error", "code": "bad_request",
                       "message": "'choice' must be one of yes, no", "id": "w"}
    assert len(seen) == 2


def test_a_handler_answers_with_an_ack_of_its_own_or_a_frame(declare: Declare, room: Any) -> None:
    alice, _ = room

    @declare("count", fields={"n": Integer(0, 9)})
    def count(ctx: Context, n: int) -> Answer:
        return ctx.ack(next=n + 1) if n % 2 else ctx.reply({"type": "count", "n": n})

    assert alice.request({"action": "count", "n": 3, "id": "a"}) == {
        "type": "ack", "action": "count", "id": "a", "next": 4,
    }
    assert alice.request({"action": "count", "n": 2, "id": "b"}) == {
        "type": "count", "n": 2, "id": "b",
    }


def test_refused_and_failing_handlers_answer_once(
    declare: Declare, room: Any, caplog: pytest.LogCaptureFixture
) -> None:
    alice, _ = room

    @declare("pick", fields={"n": Integer(0, 9)})
    def pick(ctx: Context, n: int) -> Answer:
        if n == 0:
            raise Refused("not_found", "nothing at 0")
        if n == 1:
            return ctx.ack(type="mine")
        return ctx.reply({"kind": "no type"})

    assert alice.request({"action": "pick", "n": 0}) == {
        "type": "error", "code": "not_found", "message": "nothing at 0",
    }
    for n in (1, 2):
        assert alice.request({"action": "pick", "n": n})["code"] == "internal"
    assert "action failed" in caplog.text


def test_needs_and_membership_are_checked_before_the_handler(
    declare: Declare, client: Any, token: Any, connect: Any
) -> None:
    ran: list[str] = []

    @declare("shout", fields={"room": Room()}, needs=PUBLISH, member=True)
    def shout(ctx: Context, room: str) -> None:
        ran.append(room)

    reader = client.connect(query={"token": token("reader", rooms={"r": ["join"]})})
    reader.request({"action": "joinRoom", "room": "r"})
    assert reader.request({"action": "shout", "room": "r"})["message"] == (
        "shout needs the 'publish' permission for room 'r'"
    )
    assert connect("stranger").request({"action": "shout", "room": "r"})["message"] == (
        "join room 'r' before shout in it"
    )
    assert ran == []


# -- notices -------------------------------------------------------------------------------------


def test_a_notice_is_answered_only_when_asked_or_refused(declare: Declare, room: Any) -> None:
    alice, bob = room

    @declare("poke", fields={"room": Room(), "n": Integer(0, 9)}, member=True, kind=NOTICE)
    def poke(ctx: Context, room: str, n: int) -> Answer:
        return ctx.ack(delivered=ctx.publish({"type": "poke", "from": ctx.user_id, "n": n}))

    assert alice.send({"action": "poke", "room": "r", "n": 1}) == []
    assert bob.new_frames() == [{"type": "poke", "from": "alice", "n": 1}]
    assert alice.request({"action": "poke", "room": "r", "n": 2, "id": "p"}) == {
        "type": "ack", "action": "poke", "id": "p", "delivered": 1,
    }
    assert alice.request({"action": "poke", "room": "r", "n": 10}) == {
        "type": "error", "code": "bad_request", "message": "'n' must be an integer from 0 to 9",
    }


# -- what a handler can do -----------------------------------------------------------------------


def test_publish_deliver_and_store(declare: Declare, room: Any, connect: Any) -> None:
    alice, bob = room
    carol = connect("carol")

    @declare("act", fields={"room": Room(), "how": String()})
    def act(ctx: Context, room: str, how: str) -> Answer:
        frame = {"type": "act", "how": how}
        if how == "echo":
            return ctx.ack(delivered=ctx.publish(frame, echo=True))
        if how == "direct":
            return ctx.ack(delivered=ctx.deliver(frame, user="carol"))
        stored = ctx.store(kind="poll", data={"q": "lunch?"}, text="vote", reply_to=None)
        position = stored.message.position
        assert position is not None
        return ctx.ack(delivered=stored.delivered, seq=position.seq)

    echo, ack = alice.send({"action": "act", "room": "r", "how": "echo"})
    assert echo == {"type": "act", "how": "echo"} and ack["delivered"] == 2
    assert bob.new_frames() == [echo]
    assert alice.request({"action": "act", "room": "r", "how": "direct"})["delivered"] == 1
    assert carol.new_frames() == [{"type": "act", "how": "direct"}]
    ack = alice.request({"action": "act", "room": "r", "how": "store"})
    assert (ack["delivered"], ack["seq"]) == (1, 1)
    [live] = bob.new_frames()
    assert {k: live[k] for k in ("type", "from", "text", "kind", "data", "room", "seq")} == {
        "type": "message", "from": "alice", "text": "vote", "kind": "poll",
        "data": {"q": "lunch?"}, "room": "r", "seq": 1,
    }
    assert bob.request({"action": "history", "room": "r"})["messages"] == [live]


def test_annotations_are_kept_on_the_message_and_come_back_everywhere(
    declare: Declare, room: Any, connect: Any
) -> None:
    alice, bob = room

    @declare("react", fields={"room": Room(), "seq": Integer(1), "emoji": String(max_length=8),
                              "remove": extend.Boolean(optional=True)}, member=True)
    def react(ctx: Context, room: str, seq: int, emoji: str, remove: bool | None) -> Answer:
        message = ctx.annotate(seq, "reaction", emoji, remove=bool(remove))
        return ctx.ack(annotations=message.annotations)

    @declare("peek", fields={"room": Room(), "seq": Integer(1)})
    def peek(ctx: Context, room: str, seq: int) -> Answer:
        message = ctx.get(seq)
        return ctx.ack(annotations=None if message is None else message.annotations)

    first = alice.request({"action": "sendToRoom", "room": "r", "text": "ship it"})
    for member, emoji in ((bob, "👍"), (bob, "👍"), (alice, "👍"), (alice, "🎉")):
        member.request({"action": "react", "room": "r", "seq": 1, "emoji": emoji})
    assert bob.request({"action": "react", "room": "r", "seq": 1, "emoji": "🎉", "remove": True,
                        })["annotations"] == {"reaction": {"👍": 2, "🎉": 1}}
    assert alice.request({"action": "react", "room": "r", "seq": 1, "emoji": "🎉",
                          "remove": True})["annotations"] == {"reaction": {"👍": 2}}
    expected = {"reaction": {"👍": 2}}
    assert alice.request({"action": "peek", "room": "r", "seq": 1})["annotations"] == expected
    [kept] = bob.request({"action": "history", "room": "r"})["messages"]
    assert (kept["text"], kept["annotations"]) == ("ship it", expected)
    since = {"epoch": first["epoch"], "seq": 0}
    late = connect("late")
    replayed = late.send({"action": "joinRoom", "room": "r", "since": since})
    assert replayed[0]["annotations"] == expected
    missing = alice.request({"action": "react", "room": "r", "seq": 7, "emoji": "👍"})
    assert missing == {"type": "error", "code": "not_found",
                       "message": "room 'r' keeps no message 7"}
    assert alice.request({"action": "peek", "room": "r", "seq": 7})["annotations"] is None


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda ctx: ctx.annotate(1, "no spaces", "x"), "bad_request"),
        (lambda ctx: ctx.annotate(1, "reaction", "x" * 65), "bad_request"),
        (lambda ctx: ctx.store(text=""), "bad_request"),
        (lambda ctx: ctx.store(text="x" * 40_000), "too_large"),
        (lambda ctx: ctx.store(data={"x": 1}, kind="k" * 65), "bad_request"),
        (lambda ctx: ctx.store(data={"x": 1}, reply_to=0), "bad_request"),
        (lambda ctx: ctx.store(data={"x": 1}, reply_to=True), "bad_request"),
        (lambda ctx: ctx.store(data={"x": 1}, reply_to=2**53), "bad_request"),
        (lambda ctx: ctx.store(text="ev\ud800il"), "bad_request"),
        (lambda ctx: ctx.store(data={"x": 1}, kind="k\udfff"), "bad_request"),
        (lambda ctx: ctx.publish({"type": "big", "pad": "x" * 140_000}), "too_large"),
        (lambda ctx: ctx.publish({"type": "t"}, room="not a room"), "bad_request"),
        (lambda ctx: ctx.publish({"no": "type"}), "internal"),
        (lambda ctx: ctx.publish({"type": "t", "id": "looks like an answer"}), "internal"),
        (lambda ctx: ctx.store(), "internal"),
    ],
)
def test_what_a_handler_posts_or_stores_is_checked(
    declare: Declare, room: Any, call: Callable[[Context], Any], code: str
) -> None:
    alice, bob = room
    alice.request({"action": "sendToRoom", "room": "r", "text": "one"})
    bob.new_frames()

    @declare("try", fields={"room": Room()})
    def attempt(ctx: Context, room: str) -> None:
        call(ctx)

    assert alice.request({"action": "try", "room": "r"})["code"] == code
    assert bob.new_frames() == []


def test_a_frame_over_its_size_is_refused_by_the_json_reader(declare: Declare, room: Any) -> None:
    alice, _ = room

    @declare("save", fields={"doc": Json(max_bytes=32)})
    def save(ctx: Context, doc: dict[str, Any]) -> Answer:
        return ctx.ack(keys=sorted(doc))

    assert alice.request({"action": "save", "doc": {"a": 1}})["keys"] == ["a"]
    assert alice.request({"action": "save", "doc": {"a": "x" * 40}})["code"] == "too_large"


# -- a team's package: REST routes and blueprints ---------------------------------------------

ANNOUNCEMENTS = '''
from typing import Any

from chalicelib.extend import Backend, Refused, Routes, Text

routes = Routes(__name__)


@routes.backend("/rooms/{room}/announcements", role="announcer", fields={"text": Text()})
def announce(switchboard: Backend, room: str, text: str) -> dict[str, Any]:
    if text == "missing":
        raise Refused("not_found", "no such thing")
    stored = switchboard.store(room, kind="announcement", text=text)
    assert stored.message.position is not None
    return {"seq": stored.message.position.seq, "delivered": stored.delivered,
            "by": switchboard.caller}
'''
PLAIN = '''
from chalice import Blueprint

health = Blueprint(__name__)


@health.route("/health")
def healthy() -> dict[str, bool]:
    return {"ok": True}
'''


@pytest.fixture
def team_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A team's package (its own name, so tests never share it) with two modules."""
    name = f"team_{uuid.uuid4().hex[:8]}"
    package = tmp_path / name
    (package / "ops").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "ops" / "__init__.py").write_text("")
    (package / "ops" / "announcements.py").write_text(ANNOUNCEMENTS)
    (package / "health.py").write_text(PLAIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for module in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
        del sys.modules[module]


@pytest.fixture
def rest(team_package: str, services: Services) -> Iterator[Any]:
    """Chalice's test client on an app that loaded the team's package."""
    team_app = Chalice(app_name="team")
    loaded = loader.load(team_app, lambda: services.backends, package=team_package)
    assert loaded == [team_package, f"{team_package}.health", f"{team_package}.ops",
                      f"{team_package}.ops.announcements"]
    assert set(team_app.routes) == {"/health", "/rooms/{room}/announcements"}
    with ChaliceClient(team_app) as client:
        yield client


def post(rest: Any, path: str, body: Any, token: str | None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    answer = rest.http.post(path, headers=headers, body=json.dumps(body).encode())
    return answer.status_code, answer.json_body


def test_a_route_authenticates_checks_its_role_and_reads_its_fields(rest: Any, token: Any) -> None:
    path = "/rooms/lobby/announcements"
    body = {"text": "deploy at 5"}
    assert post(rest, path, body, None)[0] == 401
    assert post(rest, path, body, "forged")[0] == 403
    assert post(rest, path, body, token("bot")) == (403, {
        "code": "forbidden", "message": "this route needs a token with the 'announcer' role",
    })
    assert post(rest, path, {}, token("bot", "announcer")) == (400, {
        "code": "bad_request", "message": "'text' is required",
    })
    assert post(rest, path, {"text": "x" * 40_000}, token("bot", "announcer"))[0] == 413
    assert post(rest, "/rooms/a%20b/announcements", body, token("bot", "announcer"))[0] == 400
    assert post(rest, path, {"text": "missing"}, token("bot", "announcer")) == (404, {
        "code": "not_found", "message": "no such thing",
    })
    answer = rest.http.post(path, headers={"Authorization": f"Bearer {token('x', 'admin')}"},
                            body=b"not json")
    assert (answer.status_code, answer.json_body["code"]) == (400, "bad_request")
    assert rest.http.get("/health").json_body == {"ok": True}


def test_a_route_refuses_a_revoked_token_and_lets_a_later_one_in(
    rest: Any, token: Any, services: Services, clock: Any
) -> None:
    """The server API's ``revoke`` closes a user's REST routes too, not only their sockets."""
    path, body = "/rooms/lobby/announcements", {"text": "deploy at 5"}
    leaked = token("ops-bot", "announcer", now=clock() - 60)
    assert services.revocations is not None
    services.revocations.revoke("ops-bot", int(clock()))
    assert post(rest, path, body, leaked)[0] == 403
    assert post(rest, path, body, token("ops-bot", "announcer", now=clock()))[0] == 200


def test_a_route_stores_and_delivers_to_the_room(rest: Any, token: Any, room: Any) -> None:
    alice, bob = room
    status, answer = post(rest, "/rooms/r/announcements", {"text": "deploy at 5"},
                          token("ops-bot", "announcer"))
    assert (status, answer) == (200, {"seq": 1, "delivered": 2, "by": "ops-bot"})
    for member in (alice, bob):
        [frame] = member.new_frames()
        assert {k: frame[k] for k in ("type", "from", "kind", "text", "room", "seq")} == {
            "type": "message", "from": "ops-bot", "kind": "announcement",
            "text": "deploy at 5", "room": "r", "seq": 1,
        }
    assert alice.request({"action": "history", "room": "r"})["messages"][0]["text"] == (
        "deploy at 5"
    )


def test_a_route_of_an_app_that_did_not_load_it_fails_loudly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    routes = extend.Routes("orphan")

    @routes.backend("/x", role="r")
    def x(switchboard: extend.Backend) -> None:
        return None

    orphan = Chalice(app_name="orphan")
    orphan.register_blueprint(routes)
    with ChaliceClient(orphan) as client:
        assert client.http.post("/x").status_code == 500
    assert '"outcome":"exception","route":"x"' in caplog.text


def test_a_route_takes_a_backend_its_path_parameters_and_its_fields() -> None:
    routes = extend.Routes("mistaken")
    with pytest.raises(ExtensionError, match=r"takes \['room'\] after a Backend"):
        routes.backend("/rooms/{room}/x", role="r", fields={"text": extend.Text()})(
            lambda switchboard, room: None)
