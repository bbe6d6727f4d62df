"""The Python client obeys the server: subscriptions a backend makes, ``disconnect``, token
lifetime, notices, rate limits, occupancy, paged presence and new message fields.

Scripted over real sockets (``fake_server.py``), since these are the frames of the
contract in ``docs/clients.md`` ("What the server may decide"); the same cases run
for the JavaScript client in ``clients/js/test/server-rules.test.js``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from switchboard_client import Client, SwitchboardError
from switchboard_client.tokens import claims, refresh_at

from .fake_server import FakeServer
from .test_python_client import FAST, joined, next_event, opened, reconnected, run, session, state


def jwt(**payload: Any) -> str:
    """A token shaped like a JWT (the client reads it, never verifies it)."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(payload)}.c2ln"


# -- what a backend decides about rooms ------------------------------------------------------


def test_a_subscription_is_kept_rejoined_with_its_position_and_reported() -> None:
    async def scenario() -> None:
        async with session() as (server, client, first):
            await first.send({"type": "subscribed", "room": "news", "seq": 3, "epoch": "N"})
            assert await next_event(client) == {
                "type": "subscribed", "room": "news", "seq": 3, "epoch": "N"}
            assert client.rooms == ["news"]
            assert client.position("news") == {"epoch": "N", "seq": 3}
            await first.message(4, epoch="N", room="news")
            assert (await next_event(client, "message"))["text"] == "m4"
            first.abort()
            second, _ = await reconnected(server)
            join = await second.expect("joinRoom", room="news", since={"epoch": "N", "seq": 4})
            await second.ack(join, room="news", epoch="N", seq=4, recovered=True)
            assert client.rooms == ["news"]

    run(scenario)


def test_an_unsubscription_forgets_the_room_and_is_reported() -> None:
    async def scenario() -> None:
        async with session() as (server, client, first):
            await joined(client, first, "lobby", epoch="A", seq=0)
            await first.send({"type": "unsubscribed", "room": "lobby", "reason": "banned"})
            assert await next_event(client) == {
                "type": "unsubscribed", "room": "lobby", "reason": "banned"}
            assert client.rooms == []
            await first.message(1, room="lobby")  # raced the unsubscription: dropped
            first.abort()
            second, _ = await reconnected(server)
            with pytest.raises(TimeoutError):  # resumed only: the room is not joined again
                await second.receive(timeout=0.3)
            assert client.rooms == []

    run(scenario)


# -- the server's disconnect -------------------------------------------------------------------


def test_a_disconnect_without_reconnect_ends_the_client_with_the_reason() -> None:
    async def scenario() -> None:
        async with session() as (server, client, first):
            pending = asyncio.create_task(client.whoami())
            await first.expect("whoami")
            await first.send({"type": "disconnect", "reason": "account closed",
                              "reconnect": False})
            await first.close(1000)
            assert (await next_event(client))["type"] == "disconnect"
            error = await next_event(client, "error")
            assert error["code"] == "disconnected"
            closed = await state(client, "closed")
            assert closed == {"type": "state", "state": "closed", "code": "disconnected",
                              "message": "the server disconnected: account closed"}
            with pytest.raises(SwitchboardError) as failed:
                await pending
            assert failed.value.code == "disconnected"
            await server.no_connection(within=0.5)
            assert [event async for event in client] == []

    run(scenario)


def test_a_disconnect_with_reconnect_reconnects_as_after_a_drop() -> None:
    async def scenario() -> None:
        async with session() as (server, client, first):
            await joined(client, first, "lobby", epoch="A", seq=2)
            await first.send({"type": "disconnect", "reason": "redeploy", "reconnect": True})
            second = await server.accept()  # the client closes without waiting for the server
            await second.recover(rooms={"lobby": {"epoch": "A", "seq": 2, "recovered": True}})
            reconnecting = await state(client, "reconnecting")
            assert reconnecting["reason"] == "the server disconnected: redeploy"
            await state(client, "open")

    run(scenario)


# -- token lifetime ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("iat", "exp", "obtained", "expected"),
    [
        (0, 3600, 0, 2880.0),  # 80 % of an hour is earlier than a minute before
        (0, 100, 0, 40.0),  # a minute before is earlier than 80 % of 100 s
        (None, 1000, 500, 900.0),  # no iat: the lifetime counts from when it was obtained
    ],
)
def test_a_token_is_refreshed_at_80_percent_or_a_minute_before_expiry(
    iat: int | None, exp: int, obtained: float, expected: float
) -> None:
    token = jwt(sub="alice", exp=exp, **({"iat": iat} if iat is not None else {}))
    assert refresh_at(token, obtained) == expected


@pytest.mark.parametrize("token", ["opaque", "a.b.c", jwt(sub="alice"), jwt(exp="soon")])
def test_a_token_without_a_readable_exp_is_never_refreshed(token: str) -> None:
    assert refresh_at(token, 0.0) is None


def test_claims_reads_the_payload_without_verifying() -> None:
    assert claims(jwt(sub="alice", exp=5)) == {"sub": "alice", "exp": 5}


def test_the_token_function_refreshes_the_connection_before_expiry() -> None:
    async def scenario() -> None:
        issued = [jwt(sub="alice", iat=0, exp=100), jwt(sub="alice", iat=50, exp=10_000)]
        now = [39.8]  # the first token is due at 40 (a minute before its exp)

        async with FakeServer() as server:
            client = Client(server.url, token=lambda: issued.pop(0), options=FAST,
                            clock=lambda: now[0])
            connection = await opened(server, client)
            assert connection.token is not None and claims(connection.token)["exp"] == 100
            refresh = await connection.expect("refresh", timeout=5)
            assert claims(refresh["token"]) == {"sub": "alice", "iat": 50, "exp": 10_000}
            await connection.ack(refresh, expiresAt=10_000)
            # The next refresh is due at 7960 (80 %): nothing more for now.
            with pytest.raises(TimeoutError):
                await connection.receive(timeout=0.5)
            await client.close()

    run(scenario)


def test_a_static_token_is_never_refreshed() -> None:
    async def scenario() -> None:
        async with FakeServer() as server:
            client = Client(server.url, token=jwt(sub="a", iat=0, exp=1), options=FAST,
                            clock=lambda: 1000.0)
            connection = await opened(server, client)
            with pytest.raises(TimeoutError):
                await connection.receive(timeout=0.5)
            await client.close()

    run(scenario)


def test_token_expired_reconnects_with_a_fresh_token_and_resends_the_refused_request() -> None:
    async def scenario() -> None:
        tokens = iter(["t1", "t2", "t3"])
        async with FakeServer() as server:
            client = Client(server.url, token=lambda: next(tokens), options=FAST)
            first = await opened(server, client)
            sending = asyncio.create_task(client.send_message("bob", "hi"))
            send = await first.expect("sendMessage")
            await first.send({"type": "error", "code": "token_expired",
                              "message": "the token expired", "id": send["id"]})
            second, _ = await reconnected(server)
            assert (first.token, second.token) == ("t1", "t2")
            again = await second.expect("sendMessage", text="hi")  # refused, so sent again
            await second.ack(again, delivered=1, stored=True)
            assert (await sending)["stored"] is True
            await second.send({"type": "error", "code": "token_expired", "message": "expired"})
            event = await next_event(client, "error")
            assert event["code"] == "token_expired"
            third, _ = await reconnected(server)
            assert third.token == "t3"
            reconnecting = await state(client, "reconnecting")
            assert reconnecting["reason"] == "the token expired"
            await state(client, "open")
            await client.close()

    run(scenario)


# -- notices ---------------------------------------------------------------------------------


def test_a_notice_has_no_id_and_is_not_held_without_a_connection() -> None:
    async def scenario() -> None:
        async with FakeServer() as server:
            client = Client(server.url, options=FAST)
            assert client.notify("typing", {"room": "lobby"}) is False  # not connected
            connection = await opened(server, client)
            assert client.notify("typing", {"room": "lobby"}) is True
            assert await connection.receive() == {"room": "lobby", "action": "typing"}
            with pytest.raises(ValueError, match="managed by the client"):
                client.notify("joinRoom", {"room": "x"})
            await client.close()

    run(scenario)


def test_coalesced_notices_send_the_first_at_once_and_the_latest_at_the_interval() -> None:
    async def scenario() -> None:
        async with session() as (_server, client, connection):
            coalesce = {"key": "cursor", "interval": 0.4}
            for x in range(10):
                assert client.notify("cursor", {"x": x}, coalesce=coalesce)  # type: ignore[arg-type]
            client.notify("typing", {"room": "r"})  # another key: not held back
            assert (await connection.receive())["x"] == 0
            assert (await connection.receive())["action"] == "typing"
            assert (await connection.receive())["x"] == 9  # the latest; 1-8 never sent
            with pytest.raises(TimeoutError):
                await connection.receive(timeout=0.6)
            with pytest.raises(ValueError, match="interval"):
                client.notify("cursor", {}, coalesce={"key": "k", "interval": 0})

    run(scenario)


def test_an_error_without_an_id_is_an_event_and_rejects_no_request() -> None:
    async def scenario() -> None:
        async with session() as (_server, client, connection):
            pending = asyncio.create_task(client.whoami())
            who = await connection.expect("whoami")
            client.notify("typing", {"room": "nowhere"})
            await connection.receive()
            await connection.send({"type": "error", "code": "forbidden", "message": "not a member",
                                   "action": "typing"})
            assert (await next_event(client, "error"))["code"] == "forbidden"
            await connection.answer(who, "whoami", userId="me")
            assert (await pending)["userId"] == "me"

    run(scenario)


# -- rate limits ------------------------------------------------------------------------------


def test_rate_limited_requests_fail_with_the_wait_and_notices_report_it() -> None:
    async def scenario() -> None:
        async with session() as (_server, client, connection):
            sending = asyncio.create_task(client.send_message("bob", "hi"))
            send = await connection.expect("sendMessage")
            await connection.send({"type": "error", "code": "rate_limited", "message": "slow down",
                                   "retryAfterMs": 1500, "id": send["id"]})
            with pytest.raises(SwitchboardError) as limited:
                await sending
            assert (limited.value.code, limited.value.retry_after_ms) == ("rate_limited", 1500)
            await connection.send({"type": "error", "code": "rate_limited", "message": "slow down",
                                   "retryAfterMs": 200})
            event = await next_event(client, "error")
            assert (event["code"], event["retryAfterMs"]) == ("rate_limited", 200)

    run(scenario)


def test_a_rate_limited_rejoin_is_sent_again_after_the_wait() -> None:
    async def scenario() -> None:
        async with session() as (server, client, first):
            await joined(client, first, "lobby", epoch="A", seq=1)
            first.abort()
            second = await server.accept()
            await second.ack(await second.expect("resume"), epoch="P", seq=0)
            join = await second.expect("joinRoom", room="lobby")
            await second.send({"type": "error", "code": "rate_limited", "message": "slow down",
                               "retryAfterMs": 100, "id": join["id"]})
            again = await second.expect("joinRoom", room="lobby", since={"epoch": "A", "seq": 1})
            await second.ack(again, room="lobby", epoch="A", seq=1, recovered=True)
            await state(client, "open")
            assert client.rooms == ["lobby"]

    run(scenario)


# -- frames passed through -------------------------------------------------------------------------


def test_occupancy_unknown_frames_and_new_message_fields_pass_through() -> None:
    async def scenario() -> None:
        async with session() as (_server, client, connection):
            await joined(client, connection, "big", epoch="A", seq=0)
            occupancy = {"type": "occupancy", "room": "big", "users": 1200, "connections": 1500}
            await connection.send(occupancy)
            assert await next_event(client) == occupancy
            future = {"type": "reaction", "room": "big", "emoji": "+1"}
            await connection.send(future)
            assert await next_event(client) == future
            rich = {"type": "message", "from": "bob", "text": "see this", "sentAt": "t",
                    "room": "big", "seq": 1, "epoch": "A", "kind": "image",
                    "data": {"url": "https://example.com/a.png"}, "replyTo": 0,
                    "annotations": {"+1": 3}}
            await connection.send(rich)
            assert await next_event(client, "message") == rich

    run(scenario)


def test_presence_follows_the_pages_and_returns_every_member() -> None:
    async def scenario() -> None:
        async with session() as (_server, client, connection):
            asking = asyncio.create_task(client.presence("big", limit=2))
            first = await connection.expect("presence", room="big", limit=2)
            assert "after" not in first
            members = [{"userId": f"u{n}", "connections": 1} for n in range(5)]
            await connection.answer(first, "members", room="big", members=members[:2], next="c1")
            second = await connection.expect("presence", room="big", limit=2, after="c1")
            await connection.answer(second, "members", room="big", members=members[2:4],
                                    next="c2")
            third = await connection.expect("presence", room="big", limit=2, after="c2")
            await connection.answer(third, "members", room="big", members=members[4:])
            answer = await asking
            assert answer == {"type": "members", "room": "big", "members": members}
            unpaged = asyncio.create_task(client.presence("small"))
            request = await connection.expect("presence", room="small")
            assert "limit" not in request
            await connection.answer(request, "members", room="small", members=members[:1])
            assert (await unpaged)["members"] == members[:1]

    run(scenario)



def test_stored_entries_of_other_types_are_ordered_with_the_messages() -> None:
    async def scenario() -> None:
        async with session() as (_server, client, connection):
            await joined(client, connection, "lobby", epoch="A", seq=0)
            stored = {"type": "push", "data": {"order": 42}, "sentAt": "t", "room": "lobby",
                      "seq": 2, "epoch": "A"}
            await connection.send(stored)  # ahead of seq 1: held, not handed over yet
            await connection.message(1, room="lobby")
            assert await next_event(client) == {
                "type": "message", "from": "bob", "text": "m1", "sentAt": "t", "room": "lobby",
                "seq": 1, "epoch": "A"}
            assert await next_event(client) == stored
            await connection.send(stored)  # a duplicate, as a message's would be
            await connection.message(3, room="lobby")
            assert (await next_event(client))["text"] == "m3"
            assert client.stats()["duplicates_dropped"] == 1
            with pytest.raises(TimeoutError):  # no gap: nothing is fetched
                await connection.receive(timeout=0.4)

    run(scenario)
