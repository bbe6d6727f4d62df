"""The Python client's state machine against a scripted server over real sockets.

Each test scripts the server side exactly (``fake_server.py``): refusals, close
codes, out-of-order and replayed messages, declined recoveries. The same
behaviour against the real gateway is in ``test_python_gateway.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from switchboard_client import Client, Options, SwitchboardError

from .fake_server import FakeConnection, FakeServer

FAST = Options(
    backoff_base=0.01,
    backoff_cap=0.05,
    request_timeout=5.0,
    connect_timeout=10.0,
    gap_timeout=0.2,
)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 60))  # type: ignore[arg-type]


async def opened(
    server: FakeServer,
    client: Client,
    resume: dict[str, Any] | None = None,
    rooms: dict[str, dict[str, Any]] | None = None,
) -> FakeConnection:
    """Connect the client, answering its recovery; returns the server side."""
    connecting = asyncio.create_task(client.connect())
    connection = await server.accept()
    await connection.recover(resume, rooms)
    await connecting
    return connection


@contextlib.asynccontextmanager
async def session(
    options: Options = FAST,
    resume: dict[str, Any] | None = None,
    rooms: dict[str, dict[str, Any]] | None = None,
) -> AsyncIterator[tuple[FakeServer, Client, FakeConnection]]:
    """A fake server, a client connected to it, and the server side of its connection."""
    async with FakeServer() as server:
        client = Client(server.url, options=options)
        connection = await opened(server, client, resume, rooms)
        try:
            yield server, client, connection
        finally:
            await client.close()


async def reconnected(
    server: FakeServer,
    resume: dict[str, Any] | None = None,
    rooms: dict[str, dict[str, Any]] | None = None,
) -> tuple[FakeConnection, dict[str, dict[str, Any]]]:
    connection = await server.accept()
    return connection, await connection.recover(resume, rooms)


async def next_event(client: Client, kind: str | None = None) -> dict[str, Any]:
    """The next event that is not a state change (or the next of ``kind``)."""
    while True:
        event = await client.next_event(10)
        if kind is not None and event["type"] == kind:
            return event
        if kind is None and event["type"] != "state":
            return event


async def texts(client: Client, count: int) -> list[str]:
    """The next ``count`` messages, as text plus `` r`` when replayed."""
    found = []
    while len(found) < count:
        event = await next_event(client, "message")
        found.append(event["text"] + (" r" if event.get("replayed") else ""))
    return found


async def joined(
    client: Client, connection: FakeConnection, room: str, **ack: Any
) -> dict[str, Any]:
    joining = asyncio.create_task(client.join_room(room))
    request = await connection.expect("joinRoom", room=room)
    await connection.ack(request, room=room, **ack)
    return await joining


# -- connecting ------------------------------------------------------------------------


def test_connect_resumes_the_personal_stream_first_and_reports_states() -> None:
    async def scenario() -> None:
        async with FakeServer() as server:
            client = Client(server.url, token="t0", options=FAST)
            connection = await opened(server, client)
            assert connection.token == "t0"
            assert client.state == "open"
            assert await client.next_event(1) == {"type": "state", "state": "connecting"}
            assert await client.next_event(1) == {"type": "state", "state": "open"}
            assert client.position() == {"epoch": "P", "seq": 0}
            await client.close()
            assert await client.next_event(1) == {"type": "state", "state": "closed"}
            assert [event async for event in client] == []

    run(scenario)


@pytest.mark.parametrize("kind", ["plain", "async"])
def test_the_token_function_is_called_before_every_connect(kind: str) -> None:
    async def scenario() -> None:
        calls: list[int] = []

        def plain() -> str:
            calls.append(1)
            return f"t{len(calls)}"

        async def asynchronous() -> str:
            return plain()

        async with FakeServer() as server:
            token = plain if kind == "plain" else asynchronous
            client = Client(server.url + "?app=x", token=token, options=FAST)
            first = await opened(server, client)
            await first.close(1001)
            second, _ = await reconnected(server)
            assert (first.token, second.token) == ("t1", "t2")
            assert second.socket.request is not None
            assert "app=x" in second.socket.request.path

    run(scenario)


@pytest.mark.parametrize("status", [401, 403])
def test_a_401_or_403_ends_the_client_without_retrying(status: int) -> None:
    async def scenario() -> None:
        async with FakeServer() as server:
            server.refuse(status, status)
            client = Client(server.url, token="bad", options=FAST)
            with pytest.raises(SwitchboardError) as refused:
                await client.connect()
            assert (refused.value.code, refused.value.status) == ("unauthorized", status)
            assert f"HTTP {status}: refused with {status}" in refused.value.message
            assert server.handshakes == 1
            events = [event async for event in client]
            assert events[-2]["type"] == "error" and events[-2]["status"] == status
            assert events[-1] == {
                "type": "state", "state": "closed", "code": "unauthorized",
                "message": refused.value.message,
            }
            with pytest.raises(SwitchboardError, match="closed"):
                await client.whoami()

    run(scenario)


def test_a_refusing_token_function_ends_the_client_and_others_are_retried() -> None:
    async def scenario() -> None:
        answers: list[Any] = [RuntimeError("token service down"), "good"]

        def token() -> str:
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return str(answer)

        async with FakeServer() as server:
            client = Client(server.url, token=token, options=FAST)
            connection = await opened(server, client)
            assert connection.token == "good"
            retry = [e async for e in _until_open(client)][1]
            assert "the token function failed: RuntimeError: token service down" in retry["reason"]
            await client.close()

            def revoked() -> str:
                raise SwitchboardError("unauthorized", "user revoked")

            client = Client(server.url, token=revoked, options=FAST)
            with pytest.raises(SwitchboardError, match="user revoked"):
                await client.connect()
            assert server.handshakes == 1

    run(scenario)


async def _until_open(client: Client) -> Any:
    while True:
        event = await client.next_event(5)
        yield event
        if event.get("state") == "open":
            return


@pytest.mark.parametrize("status", [429, 500, 503])
def test_other_refusals_are_retried_with_full_jitter_backoff(status: int) -> None:
    async def scenario() -> None:
        delays: list[float] = []

        async def sleep(delay: float) -> None:
            delays.append(delay)

        async with FakeServer() as server:
            server.refuse(status, status, status, status, status)
            options = Options(backoff_base=1.0, backoff_cap=5.0, connect_timeout=10.0)
            client = Client(server.url, token="t", options=options, sleep=sleep,
                            random=lambda: 0.5)
            await opened(server, client)
            # attempt n waits random() * min(cap, base * 2**(n-1))
            assert delays == [0.5, 1.0, 2.0, 2.5, 2.5]
            states = [e async for e in _until_open(client)]
            assert [e.get("attempt") for e in states[1:-1]] == [1, 2, 3, 4, 5]
            assert all(f"HTTP {status}" in e["reason"] for e in states[1:-1])

    run(scenario)


def test_an_unreachable_gateway_is_retried_until_connect_timeout() -> None:
    async def scenario() -> None:
        async with FakeServer() as server:
            url = server.url
        options = Options(backoff_base=0.01, backoff_cap=0.05, connect_timeout=0.5)
        client = Client(url, token="t", options=options)
        with pytest.raises(SwitchboardError) as failed:
            await client.connect()
        assert failed.value.code == "not_connected"
        assert "gateway unreachable" in failed.value.message
        events = [event async for event in client]
        assert len([e for e in events if e.get("state") == "connecting"]) > 2
        assert events[-1] == {"type": "state", "state": "closed"}

    run(scenario)


def test_backoff_resets_after_a_connection_recovered() -> None:
    async def scenario() -> None:
        delays: list[float] = []

        async def sleep(delay: float) -> None:
            delays.append(delay)

        async with FakeServer() as server:
            server.refuse(503, 503)
            options = Options(backoff_base=1.0, backoff_cap=8.0)
            client = Client(server.url, options=options, sleep=sleep, random=lambda: 1.0)
            connection = await opened(server, client)
            await connection.close(1001)
            await reconnected(server)
            assert delays == [1.0, 2.0, 1.0]

    run(scenario)


# -- requests ----------------------------------------------------------------------------


def test_answers_are_matched_by_id_and_errors_raise_with_the_code() -> None:
    async def scenario() -> None:
        async with session() as (_server, client, connection):
            first = asyncio.create_task(client.whoami())
            second = asyncio.create_task(client.send_message("bob", "hi"))
            who = await connection.expect("whoami")
            send = await connection.expect("sendMessage", targetUserId="bob", text="hi")
            assert who["id"] != send["id"]
            await connection.error(send, "forbidden", "not you")
            await connection.answer(who, "whoami", userId="me")
            assert (await first)["userId"] == "me"
            with pytest.raises(SwitchboardError) as error:
                await second
            assert (error.value.code, error.value.message) == ("forbidden", "not you")
            assert error.value.frame is not None and error.value.frame["id"] == send["id"]

    run(scenario)


def test_an_unanswered_request_times_out() -> None:
    async def scenario() -> None:
        async with FakeServer() as server:
            options = Options(request_timeout=0.3, backoff_base=0.01, backoff_cap=0.05)
            client = Client(server.url, options=options)
            connection = await opened(server, client)
            with pytest.raises(SwitchboardError) as error:
                await client.broadcast("x")
            assert error.value.code == "timeout"
            late = await connection.expect("broadcastAll")
            await connection.ack(late, delivered=1)  # a late answer is ignored

    run(scenario)


def test_requests_made_while_reconnecting_wait_and_are_sent_after_the_recovery() -> None:
    async def scenario() -> None:
        async with session() as (server, client, first):
            await joined(client, first, "lobby", epoch="A", seq=0)
            first.abort()
            await state(client, "reconnecting")
            waiting = asyncio.create_task(client.send_to_room("lobby", "hi"))
            second = await server.accept()
            resume = await second.expect("resume")  # the recovery comes first...
            join = await second.expect("joinRoom", room="lobby", since={"epoch": "A", "seq": 0})
            with pytest.raises(TimeoutError):
                await second.receive(timeout=0.3)
            await second.ack(resume, epoch="P", seq=0, recovered=True)
            await second.ack(join, room="lobby", epoch="A", seq=0, recovered=True)
            send = await second.expect("sendToRoom", room="lobby", text="hi")  # ...then this
            await second.ack(send, delivered=0, seq=1, epoch="A")
            assert (await waiting)["seq"] == 1

    run(scenario)


async def state(client: Client, name: str) -> dict[str, Any]:
    """Skip events up to the next state change to ``name``."""
    while True:
        event = await next_event(client, "state")
        if event["state"] == name:
            return event


def test_requests_wait_for_the_recovery_even_when_resume_is_slow() -> None:
    async def scenario() -> None:
        async with session() as (server, client, first):
            first.abort()
            await state(client, "reconnecting")
            waiting = asyncio.create_task(client.whoami())
            second = await server.accept()
            resume = await second.expect("resume")
            with pytest.raises(TimeoutError):
                await second.receive(timeout=0.3)
            await second.ack(resume, epoch="P", seq=0, recovered=True)
            who = await second.expect("whoami")
            await second.answer(who, "whoami", userId="me")
            assert (await waiting)["userId"] == "me"

    run(scenario)


def test_a_request_that_never_found_a_connection_is_not_connected() -> None:
    async def scenario() -> None:
        async with FakeServer() as server:
            url = server.url
        client = Client(url, options=Options(request_timeout=0.3, connect_timeout=None))
        connecting = asyncio.create_task(client.connect())
        with pytest.raises(SwitchboardError) as error:
            await client.whoami()
        assert error.value.code == "not_connected"
        assert "was not sent" in error.value.message
        await client.close()
        with pytest.raises(SwitchboardError, match="closed"):
            await connecting

    run(scenario)


def test_a_drop_fails_unsafe_requests_and_resends_safe_ones() -> None:
    async def scenario() -> None:
        async with session() as (server, client, first):
            send = asyncio.create_task(client.send_message("bob", "hi"))
            who = asyncio.create_task(client.whoami())
            await first.expect("sendMessage")
            await first.expect("whoami")
            first.abort()
            with pytest.raises(SwitchboardError) as lost:
                await send
            assert lost.value.code == "connection_lost"
            second, _ = await reconnected(server)
            again = await second.expect("whoami")
            await second.answer(again, "whoami", userId="me")
            assert (await who)["userId"] == "me"

    run(scenario)


def test_a_frame_over_the_limit_is_refused_before_sending() -> None:
    async def scenario() -> None:
        async with FakeServer() as server:
            options = Options(max_message_bytes=1000, backoff_base=0.01, backoff_cap=0.05)
            client = Client(server.url, options=options)
            connection = await opened(server, client)
            with pytest.raises(SwitchboardError) as error:
                await client.send_message("bob", "é" * 600)
            assert error.value.code == "too_large"
            assert "the gateway accepts at most 1000" in error.value.message
            ping = asyncio.create_task(client.ping())
            await connection.answer(await connection.expect("ping"), "pong")
            assert (await ping)["type"] == "pong"

    run(scenario)


def test_a_1009_close_fails_the_large_request_without_resending_it() -> None:
    async def scenario() -> None:
        async with session() as (server, client, first):
            small = asyncio.create_task(client.whoami())
            large = asyncio.create_task(client.presence("x" * 5000))
            await first.expect("whoami")
            await first.expect("presence")
            await first.close(1009, "Message too big")
            with pytest.raises(SwitchboardError) as error:
                await large
            assert error.value.code == "too_large"
            assert "1009" in error.value.message
            assert (await next_event(client, "error"))["action"] == "presence"
            second, _ = await reconnected(server)
            again = await second.expect("whoami")  # the small one is sent again, not the large
            await second.answer(again, "whoami", userId="me")
            assert (await small)["userId"] == "me"
            with pytest.raises(TimeoutError):
                await second.receive(timeout=0.3)

    run(scenario)


def test_close_fails_pending_requests_with_closed() -> None:
    async def scenario() -> None:
        async with session() as (_server, client, connection):
            pending = asyncio.create_task(client.whoami())
            await connection.expect("whoami")
            await client.close()
            with pytest.raises(SwitchboardError, match="closed"):
                await pending
            await asyncio.wait_for(connection.closed.wait(), 5)
            assert connection.socket.close_code == 1000
            await client.close()  # twice is fine

    run(scenario)


def test_custom_actions_go_through_request_and_managed_ones_are_refused() -> None:
    async def scenario() -> None:
        async with session() as (_server, client, connection):
            typing = asyncio.create_task(client.request("typing", {"room": "lobby"}))
            frame = await connection.expect("typing", room="lobby")
            await connection.ack(frame)
            assert (await typing)["action"] == "typing"
            with pytest.raises(ValueError, match="join_room"):
                await client.request("joinRoom", {"room": "x"})

    run(scenario)


def test_server_frames_that_answer_nothing_become_events() -> None:
    async def scenario() -> None:
        async with session() as (_server, client, connection):
            await connection.send({"message": "Internal server error", "connectionId": "c",
                                   "requestId": "r"})
            await connection.socket.send("not json")
            await connection.send({"type": "presence", "room": "r", "userId": "u",
                                   "event": "join", "at": "t"})
            await connection.send({"type": "broadcast", "from": "admin", "text": "hey"})
            internal = await next_event(client)
            assert (internal["type"], internal["code"]) == ("error", "internal")
            assert (await next_event(client))["code"] == "bad_frame"
            assert (await next_event(client))["type"] == "presence"
            assert (await next_event(client))["type"] == "broadcast"

    run(scenario)


# -- heartbeat and planned reconnects ---------------------------------------------------


def test_an_idle_connection_pings_and_a_silent_one_is_replaced() -> None:
    async def scenario() -> None:
        async with FakeServer() as server:
            options = Options(heartbeat_interval=0.2, heartbeat_timeout=0.3,
                              backoff_base=0.01, backoff_cap=0.05, close_timeout=0.2)
            client = Client(server.url, options=options)
            first = await opened(server, client)
            ping = await first.expect("ping")
            await first.answer(ping, "pong")
            await first.expect("ping")  # not answered: the connection is deemed dead
            await reconnected(server)
            reconnecting = await state(client, "reconnecting")
            assert reconnecting["reason"] == "no answer to the heartbeat"

    run(scenario)


def test_a_connection_is_replaced_without_delay_at_its_age_limit() -> None:
    async def scenario() -> None:
        async with FakeServer() as server:
            options = Options(max_connection_age=0.3, backoff_base=5.0, backoff_cap=5.0)
            client = Client(server.url, options=options)
            first = await opened(server, client)
            await asyncio.wait_for(first.closed.wait(), 5)
            assert first.socket.close_code == 1000
            await reconnected(server)  # well before the 5 s backoff
            planned = await state(client, "reconnecting")
            assert (planned["delay"], planned["reason"]) == (0.0, "planned reconnect")

    run(scenario)


# -- rooms and recovery --------------------------------------------------------------------


def test_rooms_are_rejoined_with_since_and_replays_come_before_live_messages() -> None:
    async def scenario() -> None:
        async with session(resume={"epoch": "P", "seq": 4}) as (server, client, first):
            await joined(client, first, "lobby", epoch="A", seq=2)
            await first.message(3, room="lobby")
            assert await texts(client, 1) == ["m3"]
            first.abort()
            second = await server.accept()
            resume = await second.expect("resume", since={"epoch": "P", "seq": 4})
            join = await second.expect("joinRoom", room="lobby", since={"epoch": "A", "seq": 3})
            await second.message(6, room="lobby")  # live, racing the replays
            await second.message(4, room="lobby")
            await second.message(5, room="lobby")
            await second.message(4, room="lobby")  # delivered both ways
            await second.message(5, epoch="P")  # a direct message, replayed
            await second.ack(join, room="lobby", epoch="A", seq=5, recovered=True)
            await second.ack(resume, epoch="P", seq=5, recovered=True)
            assert await texts(client, 4) == ["m4 r", "m5 r", "m6", "m5 r"]
            assert client.position("lobby") == {"epoch": "A", "seq": 6}
            assert client.position() == {"epoch": "P", "seq": 5}
            assert client.stats()["duplicates_dropped"] == 1

    run(scenario)


def test_a_declined_recovery_is_filled_from_history_page_by_page() -> None:
    async def scenario() -> None:
        async with session() as (server, client, first):
            await joined(client, first, "lobby", epoch="A", seq=10)
            first.abort()
            second, _ = await reconnected(
                server, rooms={"lobby": {"epoch": "A", "seq": 160, "recovered": False}}
            )
            await second.message(161, room="lobby")
            newest = await second.expect("history", room="lobby", beforeSeq=161, limit=100)
            page = [_msg(seq) for seq in range(61, 161)]
            await second.answer(newest, "history", room="lobby", epoch="A", messages=page,
                                hasMore=True)
            older = await second.expect("history", room="lobby", beforeSeq=61, limit=50)
            page = [_msg(seq) for seq in range(11, 61)]
            await second.answer(older, "history", room="lobby", epoch="A", messages=page,
                                hasMore=True)
            got = await texts(client, 151)
            assert got == [f"m{seq} r" for seq in range(11, 161)] + ["m161"]
            assert client.stats()["recovery_failed"] == 0

    run(scenario)


def _msg(seq: int, epoch: str = "A", room: str = "lobby") -> dict[str, Any]:
    return {"type": "message", "from": "bob", "text": f"m{seq}", "sentAt": "t", "room": room,
            "seq": seq, "epoch": epoch}


def test_a_recovery_history_cannot_cover_fails_with_the_position_to_reload_from() -> None:
    async def scenario() -> None:
        async with session() as (server, client, first):
            await joined(client, first, "lobby", epoch="A", seq=10)
            first.abort()
            second, _ = await reconnected(
                server, rooms={"lobby": {"epoch": "A", "seq": 20, "recovered": False}}
            )
            request = await second.expect("history", room="lobby", beforeSeq=21, limit=10)
            await second.answer(request, "history", room="lobby", epoch="A",
                                messages=[_msg(s) for s in range(15, 21)], hasMore=False)
            failed = await next_event(client, "recovery_failed")
            assert failed == {"type": "recovery_failed", "room": "lobby", "epoch": "A", "seq": 20}
            await second.message(21, room="lobby")
            assert await texts(client, 1) == ["m21"]

    run(scenario)


def test_a_new_epoch_fails_the_recovery_of_the_room_and_of_the_personal_stream() -> None:
    async def scenario() -> None:
        async with session(resume={"epoch": "P", "seq": 3}) as (server, client, first):
            await joined(client, first, "lobby", epoch="A", seq=10)
            await first.close(1001)
            await reconnected(
                server,
                resume={"epoch": "Q", "seq": 0, "recovered": False},
                rooms={"lobby": {"epoch": "B", "seq": 0, "recovered": False}},
            )
            personal = await next_event(client, "recovery_failed")
            room = await next_event(client, "recovery_failed")
            assert personal == {"type": "recovery_failed", "epoch": "Q", "seq": 0}
            assert room == {"type": "recovery_failed", "room": "lobby", "epoch": "B", "seq": 0}

    run(scenario)


def test_a_live_gap_is_fetched_with_history_after_the_gap_timeout() -> None:
    async def scenario() -> None:
        async with session() as (_server, client, connection):
            await joined(client, connection, "lobby", epoch="A", seq=1)
            await connection.message(4, room="lobby")
            request = await connection.expect("history", room="lobby", beforeSeq=4, limit=2)
            await connection.message(5, room="lobby")
            await connection.answer(request, "history", room="lobby", epoch="A",
                                    messages=[_msg(2)], hasMore=True)
            assert await texts(client, 3) == ["m2 r", "m4", "m5"]  # 3 never existed
            assert client.stats()["skipped"] == 1

    run(scenario)


def test_a_gap_that_closes_in_time_fetches_nothing() -> None:
    async def scenario() -> None:
        async with session() as (_server, client, connection):
            await joined(client, connection, "lobby", epoch="A", seq=0)
            await connection.message(2, room="lobby")
            await connection.message(1, room="lobby")
            assert await texts(client, 2) == ["m1", "m2"]
            with pytest.raises(TimeoutError):
                await connection.receive(timeout=0.5)

    run(scenario)


def test_own_messages_take_their_seq_from_the_ack_and_are_not_delivered() -> None:
    async def scenario() -> None:
        options = Options(gap_timeout=0.1, request_timeout=5)
        async with session(options=options) as (_server, client, connection):
            await joined(client, connection, "lobby", epoch="A", seq=0)
            sending = asyncio.create_task(client.send_to_room("lobby", "mine"))
            send = await connection.expect("sendToRoom", room="lobby", text="mine")
            await connection.message(2, room="lobby")  # overtakes the ack of seq 1
            await asyncio.sleep(0.4)  # longer than the gap timeout: no fetch while sending
            await connection.ack(send, delivered=1, seq=1, epoch="A")
            assert (await sending)["seq"] == 1
            assert await texts(client, 1) == ["m2"]
            with pytest.raises(TimeoutError):
                await connection.receive(timeout=0.3)

    run(scenario)


def test_a_rejoin_without_history_permission_joins_without_since_and_reports() -> None:
    async def scenario() -> None:
        async with session() as (server, client, first):
            await joined(client, first, "lobby", epoch="A", seq=3)
            first.abort()
            second = await server.accept()
            await second.ack(await second.expect("resume"), epoch="P", seq=0)
            refused = await second.expect("joinRoom", since={"epoch": "A", "seq": 3})
            await second.error(refused, "forbidden", "joinRoom needs the 'history' permission")
            plain = await second.expect("joinRoom", room="lobby")
            assert "since" not in plain
            await second.ack(plain, room="lobby", epoch="A", seq=9)
            failed = await next_event(client, "recovery_failed")
            assert failed == {"type": "recovery_failed", "room": "lobby", "epoch": "A", "seq": 9}
            assert client.rooms == ["lobby"]

    run(scenario)


def test_a_room_the_server_refuses_on_rejoin_is_forgotten_with_an_error_event() -> None:
    async def scenario() -> None:
        async with session() as (server, client, first):
            await joined(client, first, "lobby")  # history off: no position
            first.abort()
            second = await server.accept()
            await second.ack(await second.expect("resume"), epoch="P", seq=0)
            join = await second.expect("joinRoom", room="lobby")
            await second.error(join, "forbidden", "joinRoom needs the 'join' permission")
            error = await next_event(client, "error")
            assert (error["code"], error["room"], error["action"]) == (
                "forbidden", "lobby", "joinRoom")
            assert client.rooms == []

    run(scenario)


def test_an_internal_error_during_recovery_reconnects() -> None:
    async def scenario() -> None:
        async with session() as (server, _client, first):
            first.abort()
            second = await server.accept()
            await second.error(await second.expect("resume"), "internal", "try again")
            await asyncio.wait_for(second.closed.wait(), 5)
            await reconnected(server)

    run(scenario)


def test_rooms_joined_before_connect_or_while_reconnecting_are_joined_once() -> None:
    async def scenario() -> None:
        async with FakeServer() as server:
            client = Client(server.url, options=FAST)
            early = asyncio.create_task(client.join_room("early"))
            first = await opened(server, client, rooms={"early": {"epoch": "A", "seq": 0}})
            assert (await early)["room"] == "early"
            first.abort()
            await state(client, "reconnecting")
            late = asyncio.create_task(client.join_room("late"))
            second, _ = await reconnected(server, rooms={"early": {"epoch": "A", "seq": 0,
                                                                     "recovered": True}})
            join = await second.expect("joinRoom", room="late")
            await second.ack(join, room="late", epoch="B", seq=0)
            assert (await late)["room"] == "late"
            assert client.rooms == ["early", "late"]
            assert await client.join_room("late") == await late  # already joined

    run(scenario)


def test_a_left_room_is_not_rejoined() -> None:
    async def scenario() -> None:
        async with session() as (server, client, first):
            await joined(client, first, "lobby", epoch="A", seq=0)
            leaving = asyncio.create_task(client.leave_room("lobby"))
            await first.ack(await first.expect("leaveRoom", room="lobby"))
            await leaving
            await first.message(1, room="lobby")  # raced the leave: dropped
            first.abort()
            second = await server.accept()
            await second.ack(await second.expect("resume"), epoch="P", seq=0)
            with pytest.raises(TimeoutError):
                await second.receive(timeout=0.3)
            assert client.rooms == []

    run(scenario)


def test_a_join_with_a_saved_position_recovers_from_it() -> None:
    async def scenario() -> None:
        async with session() as (_server, client, connection):
            joining = asyncio.create_task(
                client.join_room("lobby", since={"epoch": "A", "seq": 7})
            )
            join = await connection.expect("joinRoom", since={"epoch": "A", "seq": 7})
            await connection.send(_msg(8))
            await connection.ack(join, room="lobby", epoch="A", seq=8, recovered=True)
            assert (await joining)["recovered"] is True
            assert await texts(client, 1) == ["m8 r"]

    run(scenario)


# -- construction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"backoff_base": -1}, "backoff_base must be a finite number >= 0"),
        ({"heartbeat_interval": 0}, "heartbeat_interval must be greater than 0"),
        ({"request_timeout": float("inf")}, "request_timeout must be a finite number"),
        ({"gap_timeout": "1"}, "gap_timeout must be a number"),
        ({"fill_limit": True}, "fill_limit must be a number"),
        ({"backoff_base": 5, "backoff_cap": 1}, "backoff_cap must not be smaller"),
    ],
)
def test_bad_options_name_the_option(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Options(**fields)


def test_bad_urls_and_tokens_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="ws:// or wss://"):
        Client("http://localhost/dev")
    with pytest.raises(ValueError, match="token must be"):
        Client("ws://localhost/dev", token=42)  # type: ignore[arg-type]


def test_the_token_is_sent_url_encoded() -> None:
    async def scenario() -> None:
        async with FakeServer() as server:
            client = Client(server.url, token="a+b/c=&d", options=FAST)
            connection = await opened(server, client)
            assert connection.token == "a+b/c=&d"

    run(scenario)


def test_events_are_json_serialisable_dicts() -> None:
    async def scenario() -> None:
        async with FakeServer() as server:
            client = Client(server.url, options=FAST)
            await opened(server, client)
            await client.close()
            events = [event async for event in client]
            assert json.loads(json.dumps(events)) == events

    run(scenario)
