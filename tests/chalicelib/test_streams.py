"""Message streams against both engines over HTTP: numbering, epochs, expiry, retention."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from chalicelib.protocol import Message, Position
from chalicelib.streams import Stream, StreamError, Streams, message_key

TTL = 86400
ROOM = Stream.of_room("lobby")


@pytest.fixture
def clock() -> list[float]:
    return [time.time()]


@pytest.fixture
def epochs() -> Any:
    """Epochs that say in which order they were made."""
    made: list[str] = []

    def make() -> str:
        made.append(f"epoch-{len(made)}")
        return made[-1]

    return make


@pytest.fixture
def streams(dynamodb: Any, table_name: str, clock: list[float], epochs: Any) -> Streams:
    return Streams(dynamodb, table_name, TTL, 5, clock=lambda: clock[0], epochs=epochs)


def append(streams: Streams, text: str, stream: Stream = ROOM) -> Message:
    return streams.append(stream, Message("alice", text, "2025-01-01T00:00:00.000Z"))


def test_a_new_stream_numbers_from_one_in_one_epoch(streams: Streams) -> None:
    stored = [append(streams, text) for text in "abc"]
    assert [m.position for m in stored] == [Position("epoch-0", n) for n in (1, 2, 3)]
    assert all(m.room == "lobby" for m in stored)
    assert streams.position(ROOM) == Position("epoch-0", 3)


def test_a_position_read_starts_a_stream_the_first_message_continues(streams: Streams) -> None:
    assert streams.position(ROOM) == Position("epoch-0", 0)
    assert streams.position(ROOM) == Position("epoch-0", 0)
    assert append(streams, "a").position == Position("epoch-0", 1)


def test_rooms_and_users_have_separate_streams(streams: Streams) -> None:
    append(streams, "room")
    direct = append(streams, "direct", Stream.of_user("lobby"))
    assert direct.position is not None and direct.position.seq == 1
    assert direct.room is None
    assert [m.text for m in streams.page(Stream.of_user("lobby"), None, 10).messages] == ["direct"]


def test_an_expired_head_not_yet_deleted_starts_a_new_epoch(
    streams: Streams, clock: list[float], dynamodb_calls: Counter[str]
) -> None:
    append(streams, "old")
    clock[0] += TTL + 1
    dynamodb_calls.clear()
    fresh = append(streams, "new")
    assert fresh.position == Position("epoch-2", 1)
    # The update's condition fails on the expired head; a conditional put starts the epoch.
    assert dynamodb_calls == Counter({"UpdateItem": 1, "PutItem": 2})
    assert [m.text for m in streams.page(ROOM, None, 10).messages] == ["new"]


def test_only_the_newest_maximum_is_read(streams: Streams) -> None:
    for n in range(8):
        append(streams, f"m{n}")
    page = streams.page(ROOM, None, 10)
    assert ([m.text for m in page.messages], page.has_more) == ([f"m{n}" for n in range(3, 8)],
                                                                  False)
    assert streams.recover(ROOM, Position("epoch-0", 3), 100).missed is not None
    assert streams.recover(ROOM, Position("epoch-0", 2), 100).missed is None


def test_recovery_answers(streams: Streams) -> None:
    for text in "abc":
        append(streams, text)
    recovery = streams.recover(ROOM, Position("epoch-0", 1), 100)
    assert recovery.position == Position("epoch-0", 3)
    assert [m.text for m in recovery.missed or []] == ["b", "c"]
    assert streams.recover(ROOM, Position("epoch-0", 3), 100).missed == []
    assert streams.recover(ROOM, Position("epoch-9", 1), 100).missed is None
    assert streams.recover(ROOM, Position("epoch-0", 4), 100).missed is None
    assert streams.recover(ROOM, Position("epoch-0", 0), 2).missed is None
    assert streams.recover(ROOM, Position("epoch-0", 1), 2).missed is not None


def test_a_failed_send_leaves_a_gap_that_recovery_and_history_step_over(
    streams: Streams, dynamodb: Any, table_name: str
) -> None:
    for text in "abc":
        append(streams, text)
    dynamodb.delete_item(TableName=table_name,
                         Key=message_key(Stream.of_room("lobby"), 2))
    assert [m.text for m in streams.recover(ROOM, Position("epoch-0", 1), 100).missed or []] == [
        "c"
    ]
    assert [m.text for m in streams.page(ROOM, None, 10).messages] == ["a", "c"]
    # Seen up to the missing one: the next one kept proves the gap whole.
    assert [m.text for m in streams.recover(ROOM, Position("epoch-0", 2), 100).missed or []] == [
        "c"
    ]


class AlwaysRaced:
    """A client on which every conditional write loses a race (a live head keeps appearing)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.exceptions = client.exceptions

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_item(self, **kwargs: Any) -> dict[str, Any]:
        return {}

    def update_item(self, **kwargs: Any) -> dict[str, Any]:
        raise self._conflict("UpdateItem")

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        raise self._conflict("PutItem")

    def _conflict(self, operation: str) -> Exception:
        error = {"Error": {"Code": "ConditionalCheckFailedException", "Message": "raced"}}
        return self.exceptions.ConditionalCheckFailedException(error, operation)


def test_a_stream_that_cannot_be_started_or_numbered_raises(
    dynamodb: Any, table_name: str
) -> None:
    raced = Streams(AlwaysRaced(dynamodb), table_name, TTL, 5)
    with pytest.raises(StreamError, match="could not start"):
        raced.position(ROOM)
    with pytest.raises(StreamError, match="could not assign"):
        append(raced, "x")


STRUCTURED = Message(
    "alice", None, "2025-01-01T00:00:00.000Z", kind="reaction",
    data={"emoji": "👍", "n": [1, 2.5, None, {"é": True}]}, reply_to=1,
)
PUBLISHED = Message(None, None, "2025-01-01T00:00:01.000Z", type="announcement", data="hi")


def test_structured_entries_come_back_unchanged_from_every_read(streams: Streams) -> None:
    first = append(streams, "plain")
    entries = [first, streams.append(ROOM, STRUCTURED), streams.append(ROOM, PUBLISHED)]
    assert entries[1] == STRUCTURED.at("lobby", Position("epoch-0", 2))
    assert streams.page(ROOM, None, 10).messages == entries
    recovery = streams.recover(ROOM, Position("epoch-0", 0), 10)
    assert recovery.missed == entries
    assert [streams.get(ROOM, seq) for seq in (1, 2, 3)] == entries


def test_getting_an_entry_is_one_read_and_never_a_write(
    streams: Streams, dynamodb_calls: Counter[str]
) -> None:
    append(streams, "a")
    dynamodb_calls.clear()
    assert streams.get(ROOM, 1, epoch="epoch-0") is not None
    assert streams.get(ROOM, 1, epoch="another") is None
    assert streams.get(ROOM, 2) is None
    assert streams.get(Stream.of_room("never"), 1) is None
    assert dynamodb_calls == Counter({"GetItem": 4})


def test_an_expired_entry_is_not_got(streams: Streams, clock: list[float]) -> None:
    append(streams, "a")
    clock[0] += TTL + 1
    assert streams.get(ROOM, 1) is None


def test_annotating_is_one_update_counted_once_per_user_and_value(
    streams: Streams, dynamodb_calls: Counter[str]
) -> None:
    append(streams, "ship it")
    dynamodb_calls.clear()
    for user, emoji in (("bob", "👍"), ("bob", "👍"), ("carol", "👍"), ("carol", "🎉")):
        annotated = streams.annotate(ROOM, 1, ("reaction", emoji), user)
    assert dynamodb_calls == Counter({"UpdateItem": 4})
    assert annotated is not None and annotated.text == "ship it"
    assert annotated.annotations == {"reaction": {"👍": 2, "🎉": 1}}
    taken_back = streams.annotate(ROOM, 1, ("reaction", "🎉"), "carol", remove=True)
    assert taken_back is not None and taken_back.annotations == {"reaction": {"👍": 2}}
    again = streams.annotate(ROOM, 1, ("reaction", "🎉"), "carol", remove=True)
    assert again is not None and again.annotations == {"reaction": {"👍": 2}}
    expected = {"reaction": {"👍": 2}}
    assert streams.get(ROOM, 1) == taken_back
    assert [m.annotations for m in streams.page(ROOM, None, 10).messages] == [expected]
    recovered = streams.recover(ROOM, Position("epoch-0", 0), 10).missed
    assert recovered is not None and [m.annotations for m in recovered] == [expected]


def test_only_a_kept_entry_of_its_epoch_is_annotated(
    streams: Streams, clock: list[float], dynamodb: Any, table_name: str
) -> None:
    append(streams, "old")
    assert streams.annotate(ROOM, 2, ("reaction", "👍"), "bob") is None
    assert streams.annotate(ROOM, 1, ("reaction", "👍"), "bob", epoch="another") is None
    assert streams.annotate(ROOM, 1, ("reaction", "👍"), "bob", epoch="epoch-0") is not None
    clock[0] += TTL + 1
    assert streams.annotate(ROOM, 1, ("reaction", "🎉"), "bob") is None
    item = dynamodb.get_item(TableName=table_name, Key=message_key(ROOM, 2))
    assert "Item" not in item  # a refused annotation writes nothing
def test_a_restart_hides_everything_kept_and_numbers_from_one_again(streams: Streams) -> None:
    old = [append(streams, text) for text in ("a", "b", "c", "d")]
    first = old[0].position
    assert first is not None
    restarted = streams.restart(ROOM)
    assert restarted.seq == 0 and restarted.epoch != first.epoch
    assert streams.position(ROOM) == restarted
    assert streams.page(ROOM, None, 10).messages == []
    assert streams.recover(ROOM, first, 10).missed is None  # another epoch
    again = append(streams, "fresh")
    assert again.position == Position(restarted.epoch, 1)
    assert [m.text for m in streams.page(ROOM, None, 10).messages] == ["fresh"]
    assert streams.recover(ROOM, restarted, 10).missed == [again]
    assert streams.position(Stream.of_user("lobby")).seq == 0  # other streams untouched


@pytest.mark.engines("dynalite")  # moto's server refuses to store a lone surrogate
def test_annotating_an_unreadable_entry_answers_none_as_every_read_does(
    streams: Streams, dynamodb: Any, table_name: str
) -> None:
    """An entry an older version stored with a lone surrogate is skipped by `get` and pages;
    annotating it must not raise out of the handler either."""
    append(streams, "fine")
    dynamodb.update_item(TableName=table_name, Key=message_key(ROOM, 1),
                         UpdateExpression="SET #t = :t", ExpressionAttributeNames={"#t": "text"},
                         ExpressionAttributeValues={":t": {"S": "ev\ud800il"}})
    assert streams.get(ROOM, 1) is None
    assert streams.annotate(ROOM, 1, ("reaction", "x"), "bob") is None
