"""What an application does with the Python client's types. ``mypy --strict`` must accept it
(tests/clients/test_types.py); each ``type: ignore[...]`` marks a mistake the types must catch
(with ``--warn-unused-ignores``, one they miss fails the check)."""

from __future__ import annotations

from switchboard_client import Client, Event, Message, Since, SwitchboardError


async def chat(client: Client) -> Since | None:
    joined = await client.join_room("lobby", since={"epoch": "5c1e", "seq": 41})
    position: int | None = joined.get("seq")
    sent = await client.send_to_room("lobby", "hi")
    delivered: int | None = sent.get("delivered")
    me = await client.whoami()
    connection_id: str = me["connectionId"]
    everyone = await client.presence("lobby", limit=50)
    counts: list[int] = [member["connections"] for member in everyone["members"]]
    page = await client.history("lobby", before_seq=10, limit=20)
    first: Message = page["messages"][0]
    noticed: bool = client.notify("typing", {"room": "lobby"},
                                  coalesce={"key": "typing", "interval": 1.0})
    print(position, delivered, connection_id, counts, first, noticed, client.stats()["drops"])
    try:
        await client.broadcast("everyone")
    except SwitchboardError as error:
        wait: int | None = error.retry_after_ms
        print(error.code, wait)
    async for event in client:
        describe(event)
    await client.join_room(42)  # type: ignore[arg-type]
    client.notify("typing", coalesce={"key": "typing"})  # type: ignore[arg-type]
    await client.history(before=3)  # type: ignore[call-arg]
    return client.position("lobby")


def describe(event: Event) -> str:
    if event["type"] == "message":
        sender: str = event["from"]
        replayed: bool = event.get("replayed", False)
        return f"{sender}: {event['text']} {replayed}"
    if event["type"] == "presence":
        return f"{event['userId']} {event['event']} {event['room']}"
    if event["type"] == "occupancy":
        return str(event["users"] + event["connections"])
    if event["type"] == "state":
        return f"{event['state']} {event.get('attempt')} {event.get('reason')}"
    if event["type"] == "disconnect":
        reconnect: bool = event["reconnect"]
        return f"{event['reason']} {reconnect}"
    kind: str = event["type"]  # an application's own frames come too
    if kind == "reaction":
        return "a reaction"
    return kind


def mistaken(message: Message) -> str:
    return str(message["userId"])  # type: ignore[typeddict-item]
