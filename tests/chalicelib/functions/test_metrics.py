"""The EMF lines every function prints, read as CloudWatch reads them.

The functions run through Chalice's own handlers (and `chalicelib.entry.run`), as
Lambda calls them; what they print to standard output is parsed into metric
points (:mod:`tests.emf`) and checked for names, units, dimensions and values
against what the session did. Every metric of :data:`chalicelib.metrics.METRICS`
must be emitted by some function — the table the templates' alarms are
checked against is the one the code really emits.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from chalicelib import metrics
from chalicelib.identity import issue_token
from chalicelib.protocol import Message
from chalicelib.streams import Stream, message_key
from switchboard_local.testing import LambdaContext, WebsocketTestClient
from tests.chalicelib.functions.test_worker import drain, sqs_event
from tests.emf import Point, points, total

NAMESPACE = "Switchboard/test"


@pytest.fixture
def extra_settings(fanout_queue: str) -> dict[str, str]:
    return {"FANOUT_QUEUE_NAME": fanout_queue, "FANOUT_QUEUE_THRESHOLD": "3",
            "FANOUT_RETRY_DELAY_SECONDS": "0"}


@pytest.fixture(autouse=True)
def namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "switchboard")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)


def emitted(capsys: pytest.CaptureFixture[str]) -> list[Point]:
    return points(capsys.readouterr().out)


@pytest.mark.engines("moto")
def test_connects_accepted_and_refused_by_reason(
    client: WebsocketTestClient, services: Any, token: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    services.revocations.revoke("carol", int(time.time()))
    capsys.readouterr()
    assert client.connect(query={"token": token("alice")}).status == 200
    refusals = {
        "revoked": {"token": token("carol", now=time.time() - 60)},
        "missing_token": {},
        "expired": {"token": token("bob", lifetime_seconds=-60)},
        "bad_signature": {"token": issue_token("another-key-0123456789abcdef0123", "mallory")},
        "token_too_long": {"token": "x" * 5000},
        "invalid_token": {"token": "not-a-jwt"},
    }
    for query in refusals.values():
        assert client.connect(query=query).status in (401, 403)
    found = emitted(capsys)

    assert total(found, "ConnectsAccepted") == 1
    assert total(found, "ConnectsRefused") == len(refusals)
    for reason in refusals:
        assert total(found, "ConnectsRefused", Reason=reason) == 1, reason
    assert {p.unit for p in found if p.name.startswith("Connects")} == {"Count"}
    assert {p.namespace for p in found} == {NAMESPACE}


@pytest.mark.engines("moto")
def test_frames_by_action_and_outcome_and_the_posts_they_caused(
    client: WebsocketTestClient, services: Any, connect: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    alice, bob = connect("alice"), connect("bob")
    capsys.readouterr()
    alice.send({"action": "ping"})
    alice.send("not json")
    alice.send({"action": "no-such-action"})
    alice.send({"action": "sendToRoom", "room": "lobby", "text": "not a member"})
    alice.send({"action": "sendMessage", "targetUserId": "bob", "text": "hi"})
    found = emitted(capsys)

    assert total(found, "Frames", Action="ping", Outcome="ok") == 1
    assert total(found, "Frames", Action="unparsed", Outcome="bad_json") == 1
    assert total(found, "Frames", Action="unparsed", Outcome="unknown_action") == 1
    assert total(found, "Frames", Action="sendToRoom", Outcome="forbidden") == 1
    assert total(found, "Frames", Action="sendMessage", Outcome="ok") == 1
    assert total(found, "Frames", Outcome="ok") == 2
    assert total(found, "Frames") == 0, "frames are only counted with an Outcome"
    # Five answers to alice, and the message to bob.
    assert total(found, "PostsDelivered") == 6
    assert total(found, "HistoryWrites") == 1
    durations = [p for p in found if p.name == "FanoutDuration"]
    assert durations and {p.unit for p in durations} == {"Milliseconds"}
    assert all(value >= 0 for p in durations for value in p.values)
    assert bob.frames


@pytest.mark.engines("moto")
def test_throttled_gone_and_failed_posts(
    client: WebsocketTestClient, services: Any, connect: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    alice, bob, carol, dave = (connect(name) for name in ("alice", "bob", "carol", "dave"))
    client.emulator.inject(bob.id, 429, 429)
    client.emulator.inject(carol.id, 410)
    client.emulator.inject(dave.id, 500)
    capsys.readouterr()
    for name in ("bob", "carol", "dave"):
        alice.send({"action": "sendMessage", "targetUserId": name, "text": "hi"})
    found = emitted(capsys)

    assert total(found, "PostsThrottled") == 2
    assert total(found, "PostsGone") == 1
    assert total(found, "PostsFailed") == 1
    assert total(found, "PostsDelivered") == 1 + 3  # bob, after his retries; alice's acks


@pytest.mark.engines("moto")
def test_disconnects_push_queue_and_worker(
    client: WebsocketTestClient, services: Any, connect: Any, app_module: Any, sqs: Any,
    fanout_queue: str, capsys: pytest.CaptureFixture[str],
) -> None:
    users = [connect(f"user-{n}") for n in range(5)]
    capsys.readouterr()
    answer = app_module.push({"all": True, "data": {"n": 1}}, LambdaContext("push"))
    assert answer["queued"] == 5
    pushed = emitted(capsys)
    assert total(pushed, "TargetsQueued") == 5
    assert total(pushed, "PostsDelivered") == 0

    drain(sqs, fanout_queue, app_module)
    bad = sqs_event([{"MessageId": "m-1", "ReceiptHandle": "r-1", "Body": "not a batch"}])
    assert app_module.fanout_worker(bad, LambdaContext("fanout_worker"))["batchItemFailures"]
    users[0].disconnect()
    found = emitted(capsys)

    assert total(found, "PostsDelivered") == 5
    assert total(found, "WorkerBatchFailures") == 1
    assert total(found, "Disconnects") == 1


@pytest.mark.engines("moto")
def test_every_declared_metric_is_emitted_with_its_unit_and_dimensions(
    client: WebsocketTestClient, services: Any, connect: Any, token: Any, app_module: Any,
    sqs: Any, fanout_queue: str, capsys: pytest.CaptureFixture[str], dynamodb: Any,
) -> None:
    """One session that makes every function emit every metric the table declares."""
    capsys.readouterr()
    client.connect(query={})
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    connect("dave"), connect("erin")
    client.emulator.inject(bob.id, 429)
    client.emulator.inject(carol.id, 410)
    client.emulator.inject(alice.id, 503)
    alice.send({"action": "ping"})  # its answer fails
    alice.send({"action": "sendMessage", "targetUserId": "bob", "text": "hi"})
    alice.send({"action": "sendMessage", "targetUserId": "carol", "text": "hi"})
    app_module.push({"all": True, "data": {}}, LambdaContext("push"))
    drain(sqs, fanout_queue, app_module)
    # A stream entry that cannot be decoded (its sentAt gone): history skips it.
    stored = services.streams.append(Stream.of_user("alice"), Message("x", "y", "2025-01-01"))
    dynamodb.update_item(  # the raw item, as a faulty tool might leave it
        TableName=services.settings.connections_table,
        Key=message_key(Stream.of_user("alice"), stored.position.seq),
        UpdateExpression="REMOVE sentAt",
    )
    alice.send({"action": "history"})
    alice.disconnect()
    found = emitted(capsys)

    declared = {metric.name: metric for metric in metrics.METRICS}
    assert {p.name for p in found} == set(declared)
    for point in found:
        metric = declared[point.name]
        assert point.unit == metric.unit, point
        names = tuple(sorted(name for name, _ in point.dimensions))
        assert names in {tuple(sorted(("service", *group))) for group in metric.dimensions}, point
        assert point.namespace == NAMESPACE


def test_nothing_recorded_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    metrics.flush(metrics.Recorder())
    assert capsys.readouterr().out == ""


def test_a_metric_takes_exactly_its_dimensions() -> None:
    recorder = metrics.Recorder()
    with pytest.raises(ValueError, match="Reason"):
        recorder.record(metrics.CONNECTS_REFUSED)
    with pytest.raises(ValueError, match="Colour"):
        recorder.record(metrics.DISCONNECTS, Colour="red")


def test_counts_are_summed_and_durations_kept(capsys: pytest.CaptureFixture[str]) -> None:
    recorder = metrics.Recorder()
    for _ in range(150):
        recorder.record(metrics.POSTS_DELIVERED)
    recorder.record(metrics.FANOUT_DURATION, 3.5)
    recorder.record(metrics.FANOUT_DURATION, 1.5)
    metrics.flush(recorder)
    found = points(capsys.readouterr().out)
    assert [p.values for p in found if p.name == "PostsDelivered"] == [(150.0,)]
    assert [p.values for p in found if p.name == "FanoutDuration"] == [(3.5, 1.5)]


def test_disabled_by_the_powertools_switch(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    recorder = metrics.Recorder()
    recorder.record(metrics.DISCONNECTS)
    metrics.flush(recorder)
    assert capsys.readouterr().out == ""


def test_a_failure_to_write_is_logged_never_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recorder = metrics.Recorder()
    recorder.record(metrics.DISCONNECTS)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("stdout is gone")

    monkeypatch.setattr("builtins.print", refuse)
    metrics.flush(recorder)
    assert "metrics could not be written (RuntimeError)" in caplog.text
    assert recorder.take() == {}
