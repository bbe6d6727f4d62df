"""Large audiences go through SQS (moto) and the ``fanout_worker`` Lambda.

The worker is driven the way Lambda's event source mapping drives it: receive
up to ten messages, invoke the handler Chalice registered with an SQS event,
delete what succeeded and leave the reported failures for redelivery.
Source: "Handling errors for an SQS event source in Lambda", partial batch responses
(https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html): with
``ReportBatchItemFailures`` the function returns ``{"batchItemFailures": [{"itemIdentifier"}]}``
and only those messages become visible again; the batch size of an SQS mapping is at most 10
for a standard queue receive (``ReceiveMessage``'s ``MaxNumberOfMessages``).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from typing import Any

import pytest

from chalicelib import registry as registry_module
from chalicelib.fanout_queue import Batch, encode
from chalicelib.registry import Connection, connection_key
from chalicelib.runtime import Services
from switchboard_local.events import ConnectionContext, sqs_record
from switchboard_local.testing import LambdaContext, WebsocketTestClient

AUDIENCE = 5000
ENDPOINT = "https://local00001.execute-api.us-east-1.amazonaws.com/api"


@pytest.fixture
def extra_settings(fanout_queue: str) -> dict[str, str]:
    return {
        "FANOUT_QUEUE_NAME": fanout_queue,
        "FANOUT_QUEUE_THRESHOLD": "10",
        "FANOUT_BATCH_TARGETS": "500",
        "FANOUT_RETRY_DELAY_SECONDS": "0",
    }


def seed(services: Services, client: WebsocketTestClient, users: int) -> list[str]:
    """Register open connections with batched writes, far faster than $connect each."""
    ids: list[str] = []
    items = []
    expires = int(time.time()) + 3600
    for number in range(users):
        context = ConnectionContext(client.api)
        client.emulator.open(context)
        ids.append(context.connection_id)
        connection = Connection(
            context.connection_id, f"user-{number}", (), frozenset(),
            "2024-01-01T00:00:00Z", ENDPOINT, expires,
        )
        items.append({"PutRequest": {"Item": registry_module._connection_item(connection)}})
    table = services.settings.connections_table
    dynamodb = services.registry._client
    for start in range(0, len(items), 25):
        dynamodb.batch_write_item(RequestItems={table: items[start:start + 25]})
    return ids


def drain(sqs: Any, queue_name: str, app_module: Any, rounds: int = 200) -> list[dict[str, Any]]:
    """Run the worker until the queue is empty; returns every answer it gave."""
    url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    answers = []
    for _ in range(rounds):
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0
        ).get("Messages", [])
        if not messages:
            return answers
        answer = app_module.fanout_worker(sqs_event(messages), LambdaContext("fanout_worker"))
        answers.append(answer)
        failed = {item["itemIdentifier"] for item in answer["batchItemFailures"]}
        for message in messages:
            if message["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    raise AssertionError("the queue did not drain")


def sqs_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The event Lambda's event source mapping builds from received messages."""
    arn = "arn:aws:sqs:us-east-1:123456789012:fanout"
    return {"Records": [sqs_record(message, arn, "us-east-1") for message in messages]}


def broadcasts(client: WebsocketTestClient, connection_id: str) -> list[dict[str, Any]]:
    frames = [json.loads(text) for text in client.emulator.received(connection_id)]
    return [frame for frame in frames if frame["type"] == "broadcast"]


def test_broadcast_to_5000_connections_delivers_exactly_once_through_sqs(
    app_module, client: WebsocketTestClient, services: Services, connect, sqs, fanout_queue
):
    audience = seed(services, client, AUDIENCE)
    admin = connect("operator", "admin")
    flaky = audience[::250]  # 20 targets whose first post is refused
    for connection_id in flaky:
        client.emulator.inject(connection_id, 403)

    ack = admin.request({"action": "broadcastAll", "text": "hello, everyone", "id": "b1"})

    assert ack == {"type": "ack", "action": "broadcastAll", "id": "b1",
                   "delivered": 0, "queued": AUDIENCE + 1}
    answers = drain(sqs, fanout_queue, app_module)
    assert all(answer == {"batchItemFailures": []} for answer in answers)
    counts = Counter(len(broadcasts(client, cid)) for cid in [*audience, admin.id])
    assert counts == {1: AUDIENCE + 1}
    assert broadcasts(client, audience[0])[0]["text"] == "hello, everyone"


def test_push_to_a_large_room_goes_through_the_queue(
    app_module, client: WebsocketTestClient, services: Services, connect, sqs, fanout_queue
):
    members = [connect(f"member-{n}") for n in range(12)]
    for member in members:
        member.request({"action": "joinRoom", "room": "stadium"})

    posts = client.emulator.posts
    result = app_module.push({"room": "stadium", "data": {"goal": 1}}, LambdaContext("push"))

    assert (result["delivered"], result["queued"]) == (0, 12)
    assert client.emulator.posts == posts  # nothing posted inline
    drain(sqs, fanout_queue, app_module)
    for member in members:
        assert [f["data"] for f in member.new_frames() if f["type"] == "push"] == [{"goal": 1}]


def test_send_to_room_at_the_threshold_is_delivered_inline(
    app_module, client: WebsocketTestClient, services: Services, connect, sqs, fanout_queue
):
    sender, *members = [connect(f"member-{n}") for n in range(11)]
    for connection in (sender, *members):
        connection.request({"action": "joinRoom", "room": "small"})

    ack = sender.request({"action": "sendToRoom", "room": "small", "text": "hi"})

    assert ack["delivered"] == 10
    assert "queued" not in ack
    assert drain(sqs, fanout_queue, app_module) == []


def test_send_to_room_above_the_threshold_is_queued(
    app_module, client: WebsocketTestClient, services: Services, connect, sqs, fanout_queue
):
    sender, *members = [connect(f"member-{n}") for n in range(12)]
    for connection in (sender, *members):
        connection.request({"action": "joinRoom", "room": "big"})

    ack = sender.request({"action": "sendToRoom", "room": "big", "text": "hi"})

    assert (ack["delivered"], ack["queued"]) == (0, 11)
    drain(sqs, fanout_queue, app_module)
    for member in members:
        assert [f["text"] for f in member.new_frames() if f["type"] == "message"] == ["hi"]


def test_only_unreadable_records_are_reported_as_failures(
    app_module, client: WebsocketTestClient, services: Services, connect, sqs, fanout_queue,
    caplog: pytest.LogCaptureFixture,
):
    alice = connect("alice")
    url = sqs.get_queue_url(QueueName=fanout_queue)["QueueUrl"]
    frame = '{"type":"push","data":{},"sentAt":"2024-01-01T00:00:00Z"}'
    sqs.send_message(QueueUrl=url, MessageBody=encode(Batch(frame, (alice.id,))))
    sqs.send_message(QueueUrl=url, MessageBody="not a batch")
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 2

    with caplog.at_level(logging.INFO, "switchboard.events"):
        answer = app_module.fanout_worker(sqs_event(messages), LambdaContext("fanout_worker"))

    bad = next(m["MessageId"] for m in messages if m["Body"] == "not a batch")
    assert answer == {"batchItemFailures": [{"itemIdentifier": bad}]}
    assert [f["type"] for f in alice.new_frames()] == ["push"]
    # The worker has the one shape of every function: an event line of its own.
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "switchboard.events"]
    assert [(line["records"], line["failures"]) for line in lines
            if line["route"] == "fanout_worker"] == [(2, 1)]


def test_targets_failing_every_attempt_are_given_up_not_looped(
    app_module, client: WebsocketTestClient, services: Services, connect, sqs, fanout_queue
):
    alice, bob = connect("alice"), connect("bob")
    client.emulator.inject(bob.id, *[403] * 10)  # botocore never retries a 403
    url = sqs.get_queue_url(QueueName=fanout_queue)["QueueUrl"]
    frame = '{"type":"push","data":{},"sentAt":"2024-01-01T00:00:00Z"}'
    sqs.send_message(QueueUrl=url, MessageBody=encode(Batch(frame, (alice.id, bob.id))))

    answers = drain(sqs, fanout_queue, app_module)

    assert len(answers) == 5  # the first attempt and four re-queued retries of bob alone
    assert len(alice.new_frames()) == 1
    assert bob.new_frames() == []


def test_the_worker_deletes_a_gone_targets_membership_of_the_queued_room(
    app_module, client: WebsocketTestClient, services: Services, connect, sqs, fanout_queue,
    dynamodb,
):
    """A membership orphaned by a join racing ``$disconnect`` goes with the queued send."""
    sender, *members = [connect(f"member-{n}") for n in range(12)]
    for connection in (sender, *members):
        connection.request({"action": "joinRoom", "room": "big"})
    ghost = members[0]
    ghost.vanish()
    # The race's outcome: the connection item is gone, its membership is not.
    dynamodb.delete_item(
        TableName=services.settings.connections_table,
        Key=connection_key(ghost.id),
    )
    assert ghost.id in services.registry.room_connections("big")

    ack = sender.request({"action": "sendToRoom", "room": "big", "text": "hi"})
    assert ack["queued"] == 11
    drain(sqs, fanout_queue, app_module)

    assert ghost.id not in services.registry.room_connections("big")
    assert len(services.registry.room_connections("big")) == 11


def test_the_queue_message_carries_the_room_and_refuses_a_bad_one() -> None:
    from chalicelib.fanout_queue import BadMessage, decode

    batch = Batch('{"type":"message"}', ("a", "b"), 2, "lobby")
    assert decode(encode(batch)) == batch
    assert "room" not in json.loads(encode(Batch("{}", ("a",))))
    with pytest.raises(BadMessage, match="room"):
        decode(json.dumps({"v": 1, "frame": "{}", "targets": [], "attempt": 0, "room": 7}))
