"""The server ends a connection by telling it why, then closing it (``DELETE``)."""

from __future__ import annotations

from typing import Any

from chalicelib.closing import Closed
from chalicelib.invocation import Deadline
from chalicelib.runtime import Services
from switchboard_local.stage import State
from switchboard_local.testing import Fault, WebsocketTestClient
from tests.chalicelib.conftest import socket_state

FRAME = '{"type":"disconnect","reason":"bye","reconnect":true}'


def test_each_connection_gets_the_frame_then_is_closed(
    connect: Any, client: WebsocketTestClient, services: Services
) -> None:
    alice, bob = connect("alice"), connect("bob")
    closed = services.closer.end([alice.id, bob.id, alice.id], FRAME, Deadline.after(10))
    assert closed == Closed(closed=2)
    for connection in (alice, bob):
        assert [f["type"] for f in connection.frames] == ["disconnect"]
        assert socket_state(client, connection) is State.CLOSED
        assert services.registry.get_connection(connection.id) is None


def test_a_connection_whose_frame_failed_is_closed_all_the_same(
    connect: Any, client: WebsocketTestClient, services: Services
) -> None:
    alice = connect("alice")
    client.emulator.inject(alice.id, 500)
    assert services.closer.end([alice.id], FRAME, Deadline.after(10)) == Closed(closed=1)
    assert alice.frames == [] and socket_state(client, alice) is State.CLOSED


def test_connections_found_gone_are_forgotten(
    connect: Any, client: WebsocketTestClient, services: Services
) -> None:
    gone_before_the_frame, gone_before_the_close = connect("alice"), connect("bob")
    gone_before_the_frame.vanish()
    client.emulator.policy = lambda method, cid: (
        Fault(410) if method == "DELETE" and cid == gone_before_the_close.id else None)
    ids = [gone_before_the_frame.id, gone_before_the_close.id]
    # The one told why that left before its DELETE left as asked: it counts as closed.
    assert services.closer.end(ids, FRAME, Deadline.after(10)) == Closed(closed=1, gone=1)
    assert services.registry.get_connections(ids) == []
    assert services.closer.end([connect("carol").id], None, Deadline.after(10)) == Closed(
        closed=1)


def test_closing_without_a_frame_and_closing_nobody(
    connect: Any, client: WebsocketTestClient, services: Services
) -> None:
    alice = connect("alice")
    assert services.closer.end([], FRAME, Deadline.after(10)) == Closed()
    assert services.closer.end([alice.id], None, Deadline.after(10)) == Closed(closed=1)
    assert alice.frames == [] and socket_state(client, alice) is State.CLOSED
