"""End to end through ``make run``: the Python and JavaScript clients obey the server API.

A backend's calls go to ``POST /_local/invoke/server_api``, as its SDK's Invoke
reaches the function; the clients are the repository's own, on real sockets.

* After ``unsubscribe`` and a forced drop (the management API's ``DELETE``),
  the client reconnects without the room: the server holds no membership.
* After ``disconnect`` with ``reconnect: false`` the client ends ``closed``
  and opens no connection in the next 10 s.
* With tokens that expire a minute after they are issued (the clients refresh
  60 s before ``exp``, so every few seconds) the connection takes three new
  tokens with ``refresh`` and stays the same, with every room message in order.

The JavaScript client runs the same three in Node (``server_api_clients.mjs``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from switchboard_client import Client, Options

from tests.clients.node import node, websocket_flags
from tests.clients.test_python_gateway import Inbox
from tests.e2e.test_recovery_e2e import Gateway
from tests.e2e.test_server_api_e2e import server_api
from tests.gateways import WAIT, unique
from tests.switchboard_local.installed import Served

NODE_SCENARIOS = Path(__file__).with_name("server_api_clients.mjs")
QUIET_SECONDS = 10.0
"""How long a client told not to reconnect is watched for a new connection."""
REFRESHING_LIFETIME = 62
"""Seconds a token lives: the clients refresh it 60 s before ``exp``, so every ~2 s."""
REFRESHES = 3
FAST = Options(backoff_base=0.05, backoff_cap=0.3, request_timeout=WAIT)
T = TypeVar("T")


def run(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(asyncio.wait_for(scenario(), QUIET_SECONDS + 6 * WAIT))


def tokens(
    gateway: Gateway, user: str, lifetime: int | None = None
) -> Callable[[], Awaitable[str]]:
    """A token function that asks the gateway for a fresh token each time; counts its calls."""
    query = {"userId": user, **({"lifetime": str(lifetime)} if lifetime else {})}
    url = f"{gateway.base}/_local/token?{urllib.parse.urlencode(query)}"
    calls: list[float] = []

    def fetch() -> str:
        with urllib.request.urlopen(url, timeout=WAIT) as answer:
            return str(json.load(answer)["token"])

    async def token() -> str:
        calls.append(time.monotonic())
        return await asyncio.to_thread(fetch)

    token.calls = calls  # type: ignore[attr-defined]
    return token


async def until(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("not reached in time")
        await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
def gateway(make_run: Served) -> Gateway:
    return Gateway.of(make_run)


# -- Python ------------------------------------------------------------------------------------


def test_python_after_unsubscribe_the_room_is_gone_across_a_forced_drop(
    gateway: Gateway,
) -> None:
    user, room = unique("bob"), unique("room")

    async def scenario() -> None:
        async with Client(gateway.websocket_url, token=tokens(gateway, user),
                          options=FAST) as bob:
            events = Inbox(bob)
            await bob.join_room(room)
            await asyncio.to_thread(server_api, gateway, "unsubscribe", userId=user, room=room,
                                    reason="kicked")
            await until(lambda: bool(events.of("unsubscribed")))
            assert bob.rooms == []
            connection_id = (await bob.whoami())["connectionId"]
            await asyncio.to_thread(_delete, gateway, connection_id)  # the forced drop
            await until(lambda: bob.stats()["connections"] == 2 and bob.state == "open")
            assert (await bob.whoami())["rooms"] == []
            assert bob.rooms == []
        stats = await asyncio.to_thread(server_api, gateway, "presenceStats", room=room)
        assert stats == {"connections": 0, "users": 0}

    run(scenario)


def test_python_after_disconnect_without_reconnect_no_connection_is_opened(
    gateway: Gateway,
) -> None:
    user = unique("carol")

    async def scenario() -> None:
        carol = Client(gateway.websocket_url, token=tokens(gateway, user), options=FAST)
        await carol.connect()
        events = Inbox(carol)
        answer = await asyncio.to_thread(server_api, gateway, "disconnect", userId=user,
                                         reason="banned", reconnect=False)
        assert answer == {"connections": 1}
        await until(lambda: carol.state == "closed")
        await asyncio.sleep(QUIET_SECONDS)
        assert carol.state == "closed" and carol.stats()["connections"] == 1
        assert events.of("disconnect") == [
            {"type": "disconnect", "reason": "banned", "reconnect": False}]
        # Nothing of carol's is registered: a second disconnect finds no connection.
        again = await asyncio.to_thread(server_api, gateway, "disconnect", userId=user)
        assert again == {"connections": 0}

    run(scenario)


def test_python_short_lived_tokens_are_refreshed_with_no_message_lost(gateway: Gateway) -> None:
    user, room = unique("dave"), unique("room")

    async def scenario() -> None:
        token = tokens(gateway, user, REFRESHING_LIFETIME)
        async with Client(gateway.websocket_url, token=tokens(gateway, unique("sender")),
                          options=FAST) as sender, \
                Client(gateway.websocket_url, token=token, options=FAST) as dave:
            events = Inbox(dave)
            await dave.join_room(room)
            await sender.join_room(room)
            sent = 0
            while len(token.calls) < 1 + REFRESHES:  # type: ignore[attr-defined]
                sent += 1
                await sender.send_to_room(room, f"m{sent}")
                await asyncio.sleep(0.2)
            for _ in range(3):
                sent += 1
                await sender.send_to_room(room, f"m{sent}")
            await until(lambda: len(events.of("message")) == sent)
            assert [m["text"] for m in events.of("message")] == [f"m{n}" for n in
                                                                  range(1, sent + 1)]
            assert dave.stats()["connections"] == 1  # refreshed, never reconnected
            assert events.of("error") == []

    run(scenario)


def _delete(gateway: Gateway, connection_id: str) -> None:
    url = f"{gateway.management_url}/@connections/{urllib.parse.quote(connection_id, safe='')}"
    with urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=WAIT):
        pass


# -- JavaScript ---------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["unsubscribe", "disconnect", "refresh"])
def test_javascript_obeys_the_same_calls(gateway: Gateway, scenario: str) -> None:
    result = subprocess.run(
        [node(), *websocket_flags(), str(NODE_SCENARIOS), scenario, f"{gateway.base}/",
         gateway.websocket_url, gateway.management_url, str(QUIET_SECONDS),
         str(REFRESHING_LIFETIME), str(REFRESHES)],
        capture_output=True, text=True, timeout=QUIET_SECONDS + 6 * WAIT, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if scenario == "unsubscribe":
        assert report["unsubscribed"] == [{"type": "unsubscribed", "room": report["room"],
                                           "reason": "kicked"}]
        assert report["rooms"] == [] and report["whoamiRooms"] == []
        assert report["connections"] == 2
        assert report["stats"] == {"connections": 0, "users": 0}
    elif scenario == "disconnect":
        assert report["disconnect"] == [{"type": "disconnect", "reason": "banned",
                                         "reconnect": False}]
        assert report["state"] == "closed" and report["connections"] == 1
        assert report["again"] == {"connections": 0}
    else:
        assert report["texts"] == [f"m{n}" for n in range(1, report["sent"] + 1)]
        assert report["tokenCalls"] >= 1 + REFRESHES
        assert report["connections"] == 1 and report["errors"] == []
