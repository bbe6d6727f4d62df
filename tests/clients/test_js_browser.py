"""The JavaScript client in real headless Chromium, against the local gateway.

Pages load ``/_local/switchboard.js`` from the gateway and run clients in the
browser; the test drives them through Playwright and drops their connections
the ways API Gateway and networks do: a management ``DELETE``, a TCP reset
(:class:`TcpProxy`), and a gateway restart keeping or losing its store.
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Callable
from typing import Any

from tests.gateways import WAIT, Running, unique

from .conftest import PAGE_TIMEOUT_MS, GatewayProcess, delete_connection, figures
from .proxy import TcpProxy

FAST = {"backoffBase": 50, "backoffCap": 400, "requestTimeout": 15_000, "gapTimeout": 500}
ROOM_MESSAGES = 200
DIRECT_EVERY = 10

# Runs in the page: a Client per name, its events collected in window.clients[name].events.
START = """
async ({ name, user, url, options, token }) => {
  const { Client } = await import("/_local/switchboard.js");
  const fetchToken = async () => {
    const response = await fetch(`/_local/token?userId=${encodeURIComponent(user)}`);
    if (!response.ok) throw new Error(`token endpoint answered ${response.status}`);
    return (await response.json()).token;
  };
  const client = new Client(url, { token: token ?? fetchToken, ...options });
  const events = [];
  client.on("event", (event) => events.push(event));
  window.clients = window.clients || {};
  window.clients[name] = { client, events };
  try {
    await client.connect();
    return null;
  } catch (error) {
    return { code: error.code, message: error.detail, status: error.status };
  }
}
"""


class BrowserClient:
    """One JS client in a page, driven from the test."""

    def __init__(self, page: Any, name: str) -> None:
        self.page = page
        self.name = name

    def call(self, method: str, *args: Any) -> Any:
        return self.page.evaluate(
            "async ([name, method, args]) => {"
            "  try { return { value: await window.clients[name].client[method](...args) }; }"
            "  catch (error) { return { error: { code: error.code, message: error.detail } }; }"
            "}",
            [self.name, method, list(args)],
        )

    def value(self, method: str, *args: Any) -> Any:
        answer = self.call(method, *args)
        assert "error" not in answer, answer
        return answer.get("value")

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.page.evaluate(
            "(name) => window.clients[name].events", self.name
        )
        return [e for e in events if kind is None or e["type"] == kind]

    def texts(self, room: str | None = None) -> list[str]:
        return [m["text"] for m in self.events("message") if m.get("room") == room]

    def wait(self, predicate: str, *args: Any) -> None:
        """Wait until ``predicate(events, ...args)`` (JavaScript) is true."""
        self.page.wait_for_function(
            f"([name, args]) => ({predicate})(window.clients[name].events, ...args)",
            arg=[self.name, list(args)],
            timeout=PAGE_TIMEOUT_MS,
        )


def start_client(
    page: Any, name: str, user: str, url: str, token: str | None = None, **options: Any
) -> BrowserClient:
    failure = page.evaluate(
        START,
        {"name": name, "user": user, "url": url, "options": {**FAST, **options}, "token": token},
    )
    assert failure is None, failure
    return BrowserClient(page, name)


def pair(page: Any, receiver_url: str, sender_url: str) -> tuple[BrowserClient, BrowserClient, str]:
    """Bob (receiving) and Alice (sending) in one new room."""
    room = unique("room")
    receiver = start_client(page, "bob", unique("bob"), receiver_url)
    sender = start_client(page, "alice", unique("alice"), sender_url)
    receiver.value("joinRoom", room)
    sender.value("joinRoom", room)
    return receiver, sender, room


def count_messages(room: str | None, count: int) -> tuple[str, str | None, int]:
    predicate = (
        "(events, room, count) => events.filter("
        "(e) => e.type === 'message' && (e.room ?? null) === room).length >= count"
    )
    return predicate, room, count


# -- the basics ----------------------------------------------------------------------------------


def test_the_gateway_serves_the_client_module(gateway: Running) -> None:
    url = gateway.gateway.page_url + "_local/switchboard.js"
    with urllib.request.urlopen(url, timeout=WAIT) as response:
        assert "javascript" in response.headers["Content-Type"]  # what module scripts need
        assert b"export class Client" in response.read()


def test_the_js_client_speaks_to_the_gateway(gateway: Running, new_page: Any) -> None:
    page = new_page(gateway.gateway.page_url + "_local/config")
    alice, bob, room = unique("alice"), unique("bob"), unique("room")
    url = gateway.gateway.websocket_url
    sender = start_client(page, "alice", alice, url)
    receiver = start_client(page, "bob", bob, url)
    sender.value("joinRoom", room)
    assert receiver.value("joinRoom", room)["room"] == room
    assert sender.value("sendToRoom", room, "hello room")["delivered"] == 1
    assert sender.value("sendMessage", bob, "hello bob")["delivered"] == 1
    receiver.wait(*count_messages(None, 1))
    receiver.wait(*count_messages(room, 1))
    assert receiver.texts(room) == ["hello room"]
    assert receiver.texts() == ["hello bob"]
    refused = sender.call("sendToRoom", unique("elsewhere"), "x")
    assert refused["error"]["code"] == "forbidden"
    assert receiver.value("whoami")["rooms"] == [room]


def test_a_refused_token_ends_the_js_client_and_a_stopped_gateway_is_unreachable(
    gateway: Running, new_page: Any
) -> None:
    page = new_page(gateway.gateway.page_url + "_local/config")
    refused = page.evaluate(
        START,
        {"name": "bad", "user": "x", "url": gateway.gateway.websocket_url,
         "options": {**FAST, "maxRefusals": 2}, "token": "not-a-jwt"},
    )
    assert refused["code"] == "unauthorized"
    assert "2 times in a row" in refused["message"]
    # A port nothing listens on: retried as unreachable, never taken for a refusal.
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    failure = page.evaluate(
        START,
        {"name": "nowhere", "user": "x", "url": f"ws://127.0.0.1:{port}/dev",
         "options": {**FAST, "connectTimeout": 1500, "maxRefusals": 1}, "token": "t"},
    )
    assert failure["code"] == "not_connected"
    assert "gateway unreachable" in failure["message"]


# -- drops and recovery ---------------------------------------------------------------------------


def test_js_messages_sent_across_drops_arrive_exactly_once_and_in_order(
    gateway: Running, proxy: TcpProxy, new_page: Any
) -> None:
    page = new_page(gateway.gateway.page_url + "_local/config")
    receiver, sender, room = pair(page, proxy.url("/dev", "ws"), gateway.gateway.websocket_url)
    bob = receiver.value("whoami")["userId"]
    drops: list[str] = []
    direct = []
    for number in range(ROOM_MESSAGES):
        sender.value("sendToRoom", room, f"m{number}")
        if number % DIRECT_EVERY == 0:
            sender.value("sendMessage", bob, f"d{number}")
            direct.append(f"d{number}")
        if number % 25 == 12:
            if len(drops) % 2 == 0:
                connection_id = receiver.value("whoami")["connectionId"]
                assert delete_connection(gateway.gateway.management_url, connection_id) == 204
                drops.append("delete")
            else:
                assert proxy.abort_all() >= 1
                drops.append("abort")
    receiver.wait(*count_messages(room, ROOM_MESSAGES))
    receiver.wait(*count_messages(None, len(direct)))
    page.wait_for_timeout(1000)  # anything late would be a duplicate
    sent = [f"m{n}" for n in range(ROOM_MESSAGES)] + direct
    room_texts, direct_texts = receiver.texts(room), receiver.texts()
    found = figures("js", drops, sent, room_texts + direct_texts, receiver.value("stats"))
    assert room_texts == sent[:ROOM_MESSAGES]
    assert direct_texts == direct
    assert (found["lost"], found["duplicates_seen"]) == (0, 0)
    assert receiver.events("recovery_failed") == []


def test_js_recovers_across_a_gateway_restart_that_keeps_its_store(
    gateway_process: Callable[[str | None], GatewayProcess], moto_endpoint: str, new_page: Any
) -> None:
    server = gateway_process(moto_endpoint)
    # Relays turn the clients away while the gateway restarts, the receiver for longer.
    to_sender, to_receiver = TcpProxy(server.port).start(), TcpProxy(server.port).start()
    try:
        page = new_page(server.page_url + "_local/config")
        receiver, sender, room = pair(page, to_receiver.url("/dev", "ws"),
                                      to_sender.url("/dev", "ws"))
        sent = []
        for number in range(10):
            sent.append(f"before-{number}")
            sender.value("sendToRoom", room, sent[-1])
        with to_receiver.closed_to_new():
            with to_sender.closed_to_new():
                server.stop()
                server.start()
            sender.value("ping")  # back on its own
            for number in range(10):
                sent.append(f"during-{number}")
                sender.value("sendToRoom", room, sent[-1])
        receiver.wait(*count_messages(room, len(sent)))
        page.wait_for_timeout(500)
        assert receiver.texts(room) == sent
        replayed = [m["text"] for m in receiver.events("message") if m.get("replayed")]
        assert replayed == sent[10:]
        assert receiver.events("recovery_failed") == []
    finally:
        to_sender.stop()
        to_receiver.stop()


def test_js_reports_recovery_failed_after_a_restart_that_loses_the_store(
    gateway_process: Callable[[str | None], GatewayProcess], new_page: Any
) -> None:
    server = gateway_process(None)
    proxy = TcpProxy(server.port).start()
    try:
        page = new_page(server.page_url + "_local/config")
        url = proxy.url("/dev", "ws")
        receiver, sender, room = pair(page, url, url)
        sender.value("sendToRoom", room, "before")
        receiver.wait(*count_messages(room, 1))
        with proxy.closed_to_new():
            server.stop()
            server.start()
        receiver.wait(
            "(events) => events.filter((e) => e.type === 'recovery_failed').length >= 2"
        )
        failures = {e.get("room", "personal"): e for e in receiver.events("recovery_failed")}
        assert set(failures) == {room, "personal"}
        sender.value("sendToRoom", room, "after")
        receiver.wait(*count_messages(room, 2))
        assert receiver.texts(room) == ["before", "after"]
    finally:
        proxy.stop()
