"""Races of rooms: numbering, recovery and presence, each played with real threads.

What must hold whatever the interleaving:

* concurrent senders in one room get distinct, consecutive ``seq`` numbers;
* a join (with ``since``) racing messages loses none: each reaches the joiner
  live or replayed, and only a message in flight during the join (``seq`` at
  most the ack's) can reach it both ways, with the same ``seq``;
* presence is per user: of two devices racing in or out, exactly one event;
  a last device leaving while another joins ends with the user present.

Races that rely on DynamoDB's atomic single-item writes run on dynalite only:
moto's server applies an update expression without holding a lock, so two
concurrent updates of one item can both read the old value there.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

import pytest

from switchboard_local.testing import TestConnection, WebsocketTestClient
from tests.chalicelib.test_races import answers, together

ROUNDS = 5


def of_type(frames: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [frame for frame in frames if frame["type"] == kind]


def frame(action: str, **fields: Any) -> str:
    return json.dumps({"action": action, **fields})


@pytest.mark.engines("dynalite")
def test_concurrent_senders_get_distinct_consecutive_seqs(
    client: WebsocketTestClient, connect: Any
) -> None:
    senders = [connect(f"s{i}") for i in range(6)]
    for sender in senders:
        sender.request({"action": "joinRoom", "room": "r"})
    listener = connect("listener")
    listener.request({"action": "joinRoom", "room": "r"})
    for sender in senders:
        sender.new_frames()
    per_sender = 4

    def burst(sender: TestConnection) -> None:
        for n in range(per_sender):
            client.send(sender.id, frame("sendToRoom", room="r", text=f"{sender.id}-{n}"))

    together(*[lambda s=s: burst(s) for s in senders])
    acks = [f for s in senders for f in answers(client, s.id) if f["type"] == "ack"
            and f["action"] == "sendToRoom"]
    total = len(senders) * per_sender
    assert sorted(ack["seq"] for ack in acks) == list(range(1, total + 1))
    assert len({ack["epoch"] for ack in acks}) == 1
    received = of_type(listener.new_frames(), "message")
    assert sorted(m["seq"] for m in received) == list(range(1, total + 1))
    for index in range(len(senders)):  # one sender's messages arrive in its order, numbered so
        mine = [m for m in received if m["from"] == f"s{index}"]
        assert [m["seq"] for m in mine] == sorted(m["seq"] for m in mine)
        assert [m["text"].rsplit("-", 1)[1] for m in mine] == [str(n) for n in range(per_sender)]


def test_a_join_racing_messages_loses_none(
    client: WebsocketTestClient, connect: Any
) -> None:
    sender = connect("sender")
    first = sender.request({"action": "joinRoom", "room": "r"})
    sent = 0
    for _ in range(ROUNDS):
        position = {"epoch": first["epoch"], "seq": sent}
        joiner = connect("joiner")

        def send_three() -> None:
            for n in range(3):
                client.send(sender.id, frame("sendToRoom", room="r", text=f"m{n}"))

        together(send_three, lambda j=joiner, p=position: client.send(
            j.id, frame("joinRoom", room="r", since=p)))
        sent += 3
        check_recovery(joiner.frames, since=position["seq"], last=sent)
        joiner.disconnect()


@pytest.mark.engines("dynalite")  # two senders: their seqs need atomic updates
def test_recovery_racing_live_delivery_loses_none(
    client: WebsocketTestClient, connect: Any
) -> None:
    """A rejoin with a gap to replay while messages keep coming from two senders."""
    a, b = connect("a"), connect("b")
    for sender in (a, b):
        sender.request({"action": "joinRoom", "room": "r"})
    reader = connect("reader")
    joined = reader.request({"action": "joinRoom", "room": "r"})
    reader.disconnect()
    for n in range(10):  # missed while away
        a.request({"action": "sendToRoom", "room": "r", "text": f"missed{n}"})
    start = threading.Barrier(3)
    back = connect("reader")

    def keep_sending(sender: TestConnection) -> None:
        start.wait()
        for n in range(6):
            client.send(sender.id, frame("sendToRoom", room="r", text=f"{sender.id}{n}"))

    def rejoin() -> None:
        start.wait()
        since = {"epoch": joined["epoch"], "seq": 2}  # 8 of the missed ones to replay
        client.send(back.id, frame("joinRoom", room="r", since=since))

    threads = [threading.Thread(target=t) for t in
               (lambda: keep_sending(a), lambda: keep_sending(b), rejoin)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    check_recovery(back.frames, since=2, last=22)


def check_recovery(frames: list[dict[str, Any]], since: int, last: int) -> None:
    """Every seq after ``since`` arrived; only one in flight during the join came twice.

    In flight means numbered before the joiner read the room's position (so at
    most the ack's ``seq``) and sent to the members after its membership was
    written: it comes live, and replayed too when it was stored in time. A
    message numbered after that comes once, live.
    """
    [ack] = [f for f in frames if f["type"] == "ack" and f["action"] == "joinRoom"]
    assert ack["recovered"] is True, ack
    messages = of_type(frames, "message")
    seqs = Counter(m["seq"] for m in messages)
    assert sorted(seqs) == list(range(since + 1, last + 1)), sorted(seqs)
    for seq, count in seqs.items():
        if count > 1:
            assert count == 2 and seq <= ack["seq"], (seq, count, ack)
            copies = [m for m in messages if m["seq"] == seq]
            assert copies[0] == copies[1]


@pytest.mark.engines("dynalite")
def test_two_devices_joining_at_once_are_one_join(
    client: WebsocketTestClient, connect: Any
) -> None:
    watcher = connect("watcher")
    watcher.request({"action": "joinRoom", "room": "r"})
    for round_ in range(ROUNDS):
        user = f"alice{round_}"
        phone, laptop = connect(user), connect(user)
        together(*[lambda d=d: client.send(d.id, frame("joinRoom", room="r"))
                   for d in (phone, laptop)])
        events = of_type(watcher.new_frames(), "presence")
        assert [(e["userId"], e["event"]) for e in events] == [(user, "join")]
        together(*[lambda d=d: client.send(d.id, frame("leaveRoom", room="r"))
                   for d in (phone, laptop)])
        events = of_type(watcher.new_frames(), "presence")
        assert [(e["userId"], e["event"]) for e in events] == [(user, "leave")]


@pytest.mark.engines("dynalite")
def test_a_last_device_leaving_while_another_joins(
    client: WebsocketTestClient, connect: Any
) -> None:
    watcher = connect("watcher")
    watcher.request({"action": "joinRoom", "room": "r"})
    for round_ in range(ROUNDS):
        user = f"bob{round_}"
        phone, laptop = connect(user), connect(user)
        phone.request({"action": "joinRoom", "room": "r"})
        assert [e["event"] for e in of_type(watcher.new_frames(), "presence")] == ["join"]
        together(lambda p=phone: client.send(p.id, frame("leaveRoom", room="r")),
                 lambda q=laptop: client.send(q.id, frame("joinRoom", room="r")))
        events = sorted(e["event"] for e in of_type(watcher.new_frames(), "presence"))
        assert events in ([], ["join", "leave"]), events
        members = watcher.request({"action": "presence", "room": "r"})["members"]
        assert {"userId": user, "connections": 1} in members
        laptop.disconnect()
        assert [e["event"] for e in of_type(watcher.new_frames(), "presence")] == ["leave"]


@pytest.mark.engines("dynalite")
def test_the_room_cap_holds_under_concurrent_joins(
    client: WebsocketTestClient, connect: Any, restage: Any
) -> None:
    """API Gateway runs one connection's frames concurrently: every join reads the same
    empty ``rooms`` at first, and only the conditional ADD keeps the cap."""
    services = restage(max_rooms_per_connection=5)
    alice = connect("alice")
    rooms = [f"r{i:02d}" for i in range(20)]
    together(*[lambda room=room: client.send(alice.id, frame("joinRoom", room=room))
               for room in rooms])
    got = answers(client, alice.id)
    assert len(got) == len(rooms)  # one answer each
    joined = sorted(f["room"] for f in got if f["type"] == "ack")
    refused = [f for f in got if f["type"] == "error"]
    assert len(joined) == 5
    assert {(f["code"], f["message"]) for f in refused} == {
        ("bad_request", "a connection may be in at most 5 rooms")
    }
    found = services.registry.get_connection(alice.id)
    assert found is not None and sorted(found.rooms) == joined
    # A refused join wrote nothing: only the joined rooms have the member.
    assert [r for r in rooms if services.registry.room_connections(r)] == joined
