"""The chat page (``web/``) in real headless Chromium, as people use it: two users in a room
and in direct conversations, drops with visible reconnection and recovered messages,
conversations and unread counts that survive a reload, presence that does not flicker on a
quick reconnect, a page that says plainly when it is not connected, no message shown twice,
notices that go away, and Enter in every field.

Alice's page in the first test reaches the gateway through :class:`TcpProxy`, so the test
can take the gateway away from her (HTTP and WebSocket alike) while Bob keeps talking.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.clients.conftest import delete_connection
from tests.clients.proxy import TcpProxy
from tests.gateways import Running, unique

from .chat import (
    connect,
    conversation_keys,
    enter,
    join,
    message,
    ready,
    screenshot,
    send_as,
    texts,
    unread,
)


def test_two_users_chat_through_drops_with_every_field_on_enter(
    gateway: Running, proxy: TcpProxy, open_chat: Callable[..., Any]
) -> None:
    alice, bob, room = unique("alice"), unique("bob"), unique("room")
    alice_page = open_chat(proxy.url("/"))
    bob_page = open_chat(gateway.gateway.page_url)

    # Connect: Enter in the user field, and in the roles field.
    enter(alice_page, "#user", alice)
    bob_page.fill("#user", bob)
    enter(bob_page, "#roles", "")
    for page, user in ((alice_page, alice), (bob_page, bob)):
        page.wait_for_selector("#status[data-state=open]")
        assert page.inner_text("#status") == f"open as {user}"

    # A room, joined with Enter; the members panel fills from presence.
    for page in (alice_page, bob_page):
        enter(page, "#room", room)
        page.wait_for_selector(f"#conversations li[data-key='room:{room}'].current")
    for page in (alice_page, bob_page):
        page.wait_for_selector(f"#members li[data-user='{alice}']")
        page.wait_for_selector(f"#members li[data-user='{bob}']")

    # A room message, sent with Enter.
    enter(alice_page, "#text", "hello room")
    message(bob_page, "hello room")
    message(alice_page, "hello room", "mine")

    # A direct conversation, opened with Enter; Bob sees it arrive as unread.
    enter(alice_page, "#dm-user", bob)
    alice_page.wait_for_selector(f"#conversations li[data-key='user:{bob}'].current")
    enter(alice_page, "#text", "hello bob")
    bob_page.wait_for_selector(f"#conversations li[data-key='user:{alice}'] .unread")
    bob_page.click(f"#conversations li[data-key='user:{alice}'] button")
    message(bob_page, "hello bob")

    # The frame log is a toggle; a raw frame is sent with Enter and its answer logged.
    assert alice_page.is_hidden("#frames")
    alice_page.click("#toggle-frames")
    assert alice_page.is_visible("#frames")
    enter(alice_page, "#raw", '{"action":"whoami","id":"raw-1"}')
    alice_page.wait_for_selector("#log li.in:has-text('\"id\":\"raw-1\"')")
    enter(alice_page, "#raw", "not json")
    alice_page.wait_for_selector("#log li.error:has-text('bad_json')")

    # A forced drop: the gateway is unreachable for Alice while Bob talks in the room.
    for page in (alice_page, bob_page):
        page.click(f"#conversations li[data-key='room:{room}'] button")
    with proxy.down():
        alice_page.wait_for_selector("#status[data-state=reconnecting]")
        alice_page.wait_for_function(
            "document.getElementById('status').textContent.includes('gateway unreachable')"
        )
        status = alice_page.inner_text("#status")
        assert "reconnecting in" in status and "authentic" not in status
        for number in range(3):
            enter(bob_page, "#text", f"while you were away {number}")
            message(bob_page, f"while you were away {number}", "mine")
    alice_page.wait_for_selector("#status[data-state=open]")
    for number in range(3):
        message(alice_page, f"while you were away {number}", "recovered")
    bob_page.wait_for_selector(f"#members li[data-user='{alice}']")

    # After the drop the room works as before, and nothing arrived twice.
    enter(alice_page, "#text", "back again")
    message(bob_page, "back again")
    assert texts(alice_page) == ["hello room"] + [
        f"while you were away {n}" for n in range(3)] + ["back again"]


def test_direct_conversations_and_unread_counts_survive_a_reload(
    gateway: Running, open_chat: Callable[..., Any], tmp_path: Path
) -> None:
    alice, bob, carol = unique("alice"), unique("bob"), unique("carol")
    alice_page = open_chat(gateway.gateway.page_url)
    bob_page = open_chat(gateway.gateway.page_url)
    connect(alice_page, alice)
    connect(bob_page, bob)

    enter(alice_page, "#dm-user", bob)
    enter(alice_page, "#text", "hello bob")
    bob_page.wait_for_selector(f"#conversations li[data-key='user:{alice}'] .unread")
    assert unread(bob_page, f"user:{alice}") == "1"
    bob_page.click(f"#conversations li[data-key='user:{alice}'] button")
    message(bob_page, "hello bob")
    enter(bob_page, "#text", "hi alice")
    message(alice_page, "hi alice")

    # Bob reloads; while his page is away, Alice and Carol write to him (kept in his stream).
    bob_page.reload()
    ready(bob_page)
    assert send_as(gateway, alice, {"action": "sendMessage", "targetUserId": bob,
                                    "text": "are you there?"})["delivered"] == 0
    assert send_as(gateway, carol, {"action": "sendMessage", "targetUserId": bob,
                                    "text": "hey, it's carol"})["stored"] is True

    assert bob_page.input_value("#user") == bob  # this browser remembers who used it
    enter(bob_page, "#user", bob)
    bob_page.wait_for_selector("#status[data-state=open]")
    bob_page.wait_for_selector(f"#conversations li[data-key='user:{carol}'] .unread")
    bob_page.wait_for_selector(f"#conversations li[data-key='user:{alice}'] .unread")
    # Both unread: Alice's one new message (the first was read before the reload), Carol's.
    assert (unread(bob_page, f"user:{alice}"), unread(bob_page, f"user:{carol}")) == ("1", "1")
    # The latest conversation first.
    direct = [key for key in conversation_keys(bob_page) if key.startswith("user:")]
    assert direct == [f"user:{carol}", f"user:{alice}"]

    bob_page.click(f"#conversations li[data-key='user:{alice}'] button")
    message(bob_page, "are you there?")
    assert texts(bob_page) == ["hello bob", "hi alice", "are you there?"]
    assert bob_page.eval_on_selector_all(
        "#messages li.mine .text", "items => items.map(i => i.textContent)") == ["hi alice"]
    assert unread(bob_page, f"user:{alice}") is None
    screenshot(bob_page, "chat-reload.png", tmp_path)

    # What was read stays read: after another reload only Carol's conversation is unread.
    bob_page.reload()
    ready(bob_page)
    enter(bob_page, "#user", bob)
    bob_page.wait_for_selector(f"#conversations li[data-key='user:{carol}'] .unread")
    bob_page.wait_for_selector(f"#conversations li[data-key='user:{alice}']")
    assert unread(bob_page, f"user:{alice}") is None


def test_a_quick_reconnect_shows_no_leave_and_a_real_leave_shows_after_the_grace(
    gateway: Running, open_chat: Callable[..., Any]
) -> None:
    alice, bob, room = unique("alice"), unique("bob"), unique("room")
    alice_page = open_chat(gateway.gateway.page_url, "&presenceGrace=3000")
    bob_page = open_chat(gateway.gateway.page_url, "&backoffBase=50&backoffCap=100")
    connect(alice_page, alice)
    connect(bob_page, bob)
    join(alice_page, room)
    join(bob_page, room)
    alice_page.wait_for_selector(f"#members li[data-user='{bob}']")
    assert "shown as left only after 3 s" in alice_page.inner_text("#grace-note")
    message(alice_page, f"{bob} joined", "system")

    # API Gateway drops Bob's connection; his client is back within a fraction of a second.
    connection_id = bob_page.evaluate("window.switchboard.whoami().then(me => me.connectionId)")
    assert delete_connection(gateway.gateway.management_url, connection_id) == 204
    bob_page.wait_for_function("window.switchboard.stats().connections === 2")
    bob_page.wait_for_selector("#status[data-state=open]")
    alice_page.wait_for_timeout(4000)  # past the grace: a leave would show by now
    assert texts(alice_page, notices=True) == [f"{bob} joined"]
    assert alice_page.query_selector(f"#members li[data-user='{bob}']") is not None

    # Bob really goes: his leave shows once the grace is over, and his return again.
    bob_page.click("#disconnect")
    message(alice_page, f"{bob} left", "system")
    alice_page.wait_for_selector(f"#members li[data-user='{bob}']", state="detached")
    enter(bob_page, "#user", bob)
    bob_page.wait_for_selector("#status[data-state=open]")  # re-joins the remembered room
    alice_page.wait_for_function(  # the second "joined": the first is already on the page
        "(text) => [...document.querySelectorAll('#messages li.system .text')]"
        ".filter((item) => item.textContent === text).length === 2",
        arg=f"{bob} joined",
    )
    assert texts(alice_page, notices=True) == [f"{bob} joined", f"{bob} left", f"{bob} joined"]


def test_after_disconnect_nothing_looks_connected(
    gateway: Running, open_chat: Callable[..., Any]
) -> None:
    user, room = unique("dana"), unique("room")
    page = open_chat(gateway.gateway.page_url)
    connect(page, user)
    join(page, room)
    assert page.is_visible("#leave") and page.is_enabled("#text")
    page.click("#disconnect")
    page.wait_for_selector("#status[data-state=closed]")
    assert page.inner_text("#status") == "not connected"
    assert page.query_selector_all("#members li") == []
    assert page.inner_text("#members-note").startswith("Not connected")
    assert page.is_hidden("#leave")
    for control in ("#join", "#text", "#send", "#disconnect"):
        assert page.is_disabled(control), control
    for control in ("#connect", "#user", "#roles"):
        assert page.is_enabled(control), control
    # The conversation stays readable.
    assert page.is_visible(f"#conversations li[data-key='room:{room}']")


def test_the_sender_sees_a_broadcast_and_a_message_to_themselves_once(
    gateway: Running, open_chat: Callable[..., Any]
) -> None:
    admin, other = unique("admin"), unique("erin")
    page = open_chat(gateway.gateway.page_url)
    watcher = open_chat(gateway.gateway.page_url)
    connect(page, admin, "admin")
    connect(watcher, other)
    page.click("#conversations li[data-key='all:'] button")
    enter(page, "#text", "to everyone")
    page.wait_for_selector("#log li.in:has-text('\"type\":\"broadcast\"')", state="attached")
    watcher.click("#conversations li[data-key='all:'] button")
    message(watcher, "to everyone")
    page.wait_for_timeout(300)  # anything late would be a duplicate
    assert texts(page) == ["to everyone"]
    assert texts(watcher) == ["to everyone"]

    enter(page, "#dm-user", admin)
    enter(page, "#text", "note to self")
    page.wait_for_selector("#log li.in:has-text('note to self')", state="attached")
    page.wait_for_timeout(300)
    assert texts(page) == ["note to self"]
    # After a reload it comes back once, from the personal stream.
    page.reload()
    ready(page)
    connect(page, admin, "admin")
    page.click(f"#conversations li[data-key='user:{admin}'] button")
    message(page, "note to self")
    assert texts(page) == ["note to self"]


def test_a_notice_can_be_dismissed_and_clears_itself(
    gateway: Running, open_chat: Callable[..., Any]
) -> None:
    page = open_chat(gateway.gateway.page_url, "&noticeTimeout=1500")
    connect(page, unique("fay"))
    page.click("#toggle-frames")
    enter(page, "#raw", "not json")
    page.wait_for_selector("#notice:has-text('bad_json')")
    page.click("#dismiss")
    page.wait_for_selector("#notice", state="hidden")
    enter(page, "#raw", "not json again")
    page.wait_for_selector("#notice:has-text('bad_json')")
    page.wait_for_selector("#notice", state="hidden")  # by itself, after noticeTimeout


def test_a_refused_join_says_why_and_leaves_no_room_to_write_in(
    gateway: Running, open_chat: Callable[..., Any]
) -> None:
    page = open_chat(gateway.gateway.page_url)
    connect(page, unique("gus"))
    enter(page, "#room", "not a room!")
    page.wait_for_selector("#notice:has-text('could not join')")
    page.wait_for_selector("#conversations li.left[data-key='room:not a room!']")
    assert page.is_hidden("#leave") and page.is_disabled("#text")
