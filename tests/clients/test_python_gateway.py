"""The Python client against the local gateway running this app, over real sockets.

Connections are dropped the three ways API Gateway and networks drop them: a
management ``DELETE`` (what a backend or API Gateway's limits do), a TCP reset
(:class:`TcpProxy`), and a gateway restart, keeping its store or losing it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from switchboard_client import Client, Options, SwitchboardError

from tests.gateways import Running, unique

from .conftest import GatewayProcess, delete_connection, figures
from .proxy import TcpProxy

FAST = Options(backoff_base=0.05, backoff_cap=0.4, request_timeout=15.0, gap_timeout=0.5)
ROOM_MESSAGES = 200
DIRECT_EVERY = 10


def run(scenario: Callable[[], Awaitable[None]], timeout: float = 120) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout))  # type: ignore[arg-type]


def client_for(
    gateway: Running | GatewayProcess, user: str, url: str | None = None, **options: Any
) -> Client:
    """A client whose token function asks the gateway for a fresh token on every connect."""

    async def token() -> str:
        return await asyncio.to_thread(gateway.token, user)

    if url is None:
        url = (
            gateway.gateway.websocket_url if isinstance(gateway, Running)
            else gateway.websocket_url
        )
    chosen = Options(**{**FAST.__dict__, **options})
    return Client(url, token=token, options=chosen)


class Inbox:
    """Collects a client's events in the background."""

    def __init__(self, client: Client) -> None:
        self.events: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._collect(client))

    async def _collect(self, client: Client) -> None:
        async for event in client:
            self.events.append(event)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["type"] == kind]

    def texts(self, room: str | None = None) -> list[str]:
        return [m["text"] for m in self.of("message") if m.get("room") == room]

    async def wait(self, predicate: Callable[[Inbox], bool], timeout: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate(self):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"not reached in time; last events: {self.events[-5:]}")
            await asyncio.sleep(0.02)


def has_messages(room: str | None, count: int) -> Callable[[Inbox], bool]:
    return lambda inbox: len(inbox.texts(room)) >= count


async def drop(how: str, running: Running, client: Client, proxy: TcpProxy) -> None:
    if how == "delete":
        connection_id = (await client.whoami())["connectionId"]
        management = running.gateway.management_url
        assert await asyncio.to_thread(delete_connection, management, connection_id) == 204
    else:
        assert await asyncio.to_thread(proxy.abort_all) >= 1


# -- the basics ------------------------------------------------------------------------------


def test_the_client_speaks_to_the_gateway(gateway: Running) -> None:
    async def scenario() -> None:
        alice, bob, room = unique("alice"), unique("bob"), unique("room")
        async with client_for(gateway, alice) as sender, client_for(gateway, bob) as receiver:
            inbox = Inbox(receiver)
            await sender.join_room(room)
            joined = await receiver.join_room(room)
            assert (joined["type"], joined["action"], joined["room"]) == ("ack", "joinRoom", room)
            ack = await sender.send_to_room(room, "hello room")
            assert ack["delivered"] == 1
            assert (await sender.send_message(bob, "hello bob"))["delivered"] == 1
            await inbox.wait(lambda i: len(i.of("message")) == 2)
            assert inbox.texts(room) == ["hello room"]
            assert inbox.texts() == ["hello bob"]
            assert (await receiver.whoami())["rooms"] == [room]
            with pytest.raises(SwitchboardError) as refused:
                await sender.send_to_room(unique("elsewhere"), "x")
            assert refused.value.code == "forbidden"
            with pytest.raises(SwitchboardError) as admin_only:
                await sender.broadcast("x")
            assert "admin" in admin_only.value.message
            await receiver.leave_room(room)
            assert (await receiver.whoami())["rooms"] == []

    run(scenario)


@pytest.mark.parametrize(("token", "status"), [(None, 401), ("not-a-jwt", 403)])
def test_a_refused_handshake_ends_the_client(
    gateway: Running, token: str | None, status: int
) -> None:
    async def scenario() -> None:
        client = Client(gateway.gateway.websocket_url, token=token, options=FAST)
        with pytest.raises(SwitchboardError) as refused:
            await client.connect()
        assert (refused.value.code, refused.value.status) == ("unauthorized", status)
        assert [e["type"] for e in [event async for event in client]][-2:] == ["error", "state"]

    run(scenario)


def test_a_message_over_128_kib_is_reported_and_the_connection_comes_back(
    gateway: Running,
) -> None:
    async def scenario() -> None:
        # Raise the client's own limit so the frame reaches the gateway, which closes with 1009.
        async with client_for(gateway, unique("big"), max_message_bytes=1 << 20) as client:
            with pytest.raises(SwitchboardError) as error:
                await client.send_message(unique("bob"), "x" * (130 * 1024))
            assert error.value.code == "too_large"
            assert "1009" in error.value.message
            assert (await client.ping())["type"] == "pong"
            assert client.stats()["connections"] == 2

    run(scenario)


def test_the_heartbeat_keeps_an_idle_connection_open(
    gateway_factory: Callable[..., Running],
) -> None:
    idle = gateway_factory(idle_timeout=1.0)

    async def scenario() -> None:
        user = unique("idle")
        async with client_for(idle, user, heartbeat_interval=0.3) as beating, \
                client_for(idle, user, heartbeat_interval=60) as silent:
            inbox = Inbox(silent)
            await asyncio.sleep(3.5)
            assert beating.stats()["connections"] == 1
            assert beating.stats()["drops"] == 0
            # Without heartbeats the gateway closed the idle socket, and the client came back.
            assert silent.stats()["connections"] >= 2
            reasons = {e.get("reason") for e in inbox.of("state")}
            assert "closed with 1001 (Going away)" in reasons

    run(scenario)


def test_a_planned_reconnect_comes_before_the_gateway_limit(
    gateway_factory: Callable[..., Running],
) -> None:
    limited = gateway_factory(max_duration=2.0)

    async def scenario() -> None:
        async with client_for(limited, unique("aged"), max_connection_age=1.0) as client:
            inbox = Inbox(client)
            await asyncio.sleep(3.6)
            reasons = [e.get("reason") for e in inbox.of("state") if "reason" in e]
            assert reasons and set(reasons) == {"planned reconnect"}, reasons
            assert client.stats()["connections"] >= 3

    run(scenario)


def test_requests_made_while_the_gateway_is_unreachable_wait_for_it(
    gateway: Running, proxy: TcpProxy
) -> None:
    async def scenario() -> None:
        url = proxy.url("/dev", "ws")
        async with client_for(gateway, unique("patient"), url=url) as client:
            inbox = Inbox(client)
            with proxy.down():
                await inbox.wait(lambda i: any("unreachable" in str(e.get("reason"))
                                               for e in i.of("state")))
                waiting = asyncio.create_task(client.whoami())
                await asyncio.sleep(0.5)
                assert not waiting.done()
            assert (await waiting)["type"] == "whoami"

    run(scenario)


# -- drops and recovery (seq, epoch, since, resume) ---------------------------------------------


def test_messages_sent_across_drops_arrive_exactly_once_and_in_order(
    gateway: Running, proxy: TcpProxy
) -> None:
    async def scenario() -> None:
        alice, bob, room = unique("alice"), unique("bob"), unique("room")
        async with client_for(gateway, alice) as sender, \
                client_for(gateway, bob, url=proxy.url("/dev", "ws")) as receiver:
            inbox = Inbox(receiver)
            await receiver.join_room(room)
            await sender.join_room(room)
            drops: list[str] = []
            expected_direct = []
            for number in range(ROOM_MESSAGES):
                await sender.send_to_room(room, f"m{number}")
                if number % DIRECT_EVERY == 0:
                    await sender.send_message(bob, f"d{number}")
                    expected_direct.append(f"d{number}")
                if number % 25 == 12:  # drop the receiver mid-stream, both ways in turn
                    how = "delete" if len(drops) % 2 == 0 else "abort"
                    await drop(how, gateway, receiver, proxy)
                    drops.append(how)
            await inbox.wait(lambda i: len(i.texts(room)) >= ROOM_MESSAGES
                             and len(i.texts()) >= len(expected_direct))
            await asyncio.sleep(1.0)  # anything late would be a duplicate
            room_texts, direct_texts = inbox.texts(room), inbox.texts()
            stats = receiver.stats()
            sent = [f"m{n}" for n in range(ROOM_MESSAGES)] + expected_direct
            found = figures("python", drops, sent, room_texts + direct_texts, stats)
            assert (found["lost"], found["duplicates_seen"]) == (0, 0)
            assert room_texts == [f"m{n}" for n in range(ROOM_MESSAGES)]
            assert direct_texts == expected_direct
            assert inbox.of("recovery_failed") == []
            assert stats["connections"] == len(drops) + 1

    run(scenario)


def test_a_gateway_restart_that_keeps_its_store_recovers_everything(
    gateway_process: Callable[[str | None], GatewayProcess], moto_endpoint: str
) -> None:
    server = gateway_process(moto_endpoint)
    # Each client reaches the gateway through a relay that turns it away while it restarts
    # (a stopping gateway still accepts handshakes), and the receiver for longer.
    to_sender, to_receiver = TcpProxy(server.port).start(), TcpProxy(server.port).start()

    async def scenario() -> None:
        alice, bob, room = unique("alice"), unique("bob"), unique("room")
        sender = client_for(server, alice, url=to_sender.url("/dev", "ws"))
        receiver = client_for(server, bob, url=to_receiver.url("/dev", "ws"))
        async with sender, receiver:
            inbox = Inbox(receiver)
            await receiver.join_room(room)
            await sender.join_room(room)
            sent = []
            for round_ in range(3):
                for number in range(20):
                    text = f"r{round_}-{number}"
                    await sender.send_to_room(room, text)
                    sent.append(text)
                if round_ == 2:
                    break
                with to_receiver.closed_to_new():
                    with to_sender.closed_to_new():
                        await asyncio.to_thread(server.stop)  # both get 1001
                        await asyncio.to_thread(server.start)
                    await sender.ping()  # the sender is back (it reconnected on its own)
                    for number in range(10):
                        text = f"r{round_}-late-{number}"
                        await sender.send_to_room(room, text)
                        sent.append(text)
                await inbox.wait(has_messages(room, len(sent)))
            await inbox.wait(has_messages(room, len(sent)))
            await asyncio.sleep(0.5)
            assert inbox.texts(room) == sent
            assert inbox.of("recovery_failed") == []
            replayed = [m for m in inbox.of("message") if m.get("replayed")]
            assert [m["text"] for m in replayed] == [t for t in sent if "late" in t]
            closes = [e for e in inbox.of("state")
                      if str(e.get("reason")).startswith("closed with 1001")]
            assert len(closes) == 2

    try:
        run(scenario, timeout=300)
    finally:
        to_sender.stop()
        to_receiver.stop()


def test_a_gateway_restart_that_loses_its_store_reports_recovery_failed(
    gateway_process: Callable[[str | None], GatewayProcess],
) -> None:
    server = gateway_process(None)
    proxy = TcpProxy(server.port).start()

    async def scenario() -> None:
        bob, room = unique("bob"), unique("room")
        url = proxy.url("/dev", "ws")
        async with client_for(server, unique("alice"), url=url) as sender, \
                client_for(server, bob, url=url) as receiver:
            inbox = Inbox(receiver)
            await receiver.join_room(room)
            await sender.join_room(room)
            await sender.send_to_room(room, "before")
            await sender.send_message(bob, "direct before")
            await inbox.wait(lambda i: len(i.of("message")) == 2)
            with proxy.closed_to_new():
                await asyncio.to_thread(server.stop)
                await asyncio.to_thread(server.start)
            await inbox.wait(lambda i: len(i.of("recovery_failed")) == 2)
            failures = {e.get("room", "personal"): e for e in inbox.of("recovery_failed")}
            assert set(failures) == {room, "personal"}
            assert failures[room]["seq"] == 0  # the new store's stream is empty
            await sender.send_to_room(room, "after")
            await inbox.wait(lambda i: "after" in i.texts(room))
            assert inbox.texts(room) == ["before", "after"]

    try:
        run(scenario, timeout=300)
    finally:
        proxy.stop()
