"""An item a read cannot decode is left out, logged by its key and counted, never fatal."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from chalicelib import metrics, readable


def decode(item: dict[str, Any]) -> str:
    return str(item["name"]["S"])


@pytest.fixture
def recorded() -> metrics.Recorder:
    metrics.RECORDER.take()
    return metrics.RECORDER


def unreadable_counted(recorder: metrics.Recorder) -> float:
    return sum(
        values[0] for document in recorder.take().values()
        for metric, values in document.items() if metric is metrics.UNREADABLE_ITEMS
    )


def test_a_readable_item_is_decoded(recorded: metrics.Recorder) -> None:
    assert readable.each([{"name": {"S": "é\U0001f600"}}], decode, "t") == ["é\U0001f600"]
    assert unreadable_counted(recorded) == 0


@pytest.mark.parametrize("item", [
    {"PK": {"S": "p"}, "SK": {"S": "ev\ud800il"}, "name": {"S": "x"}},
    {"PK": {"S": "p"}, "SK": {"S": "x"}, "name": {"S": "\udfff"}},
    {"PK": {"S": "p"}, "SK": {"S": "x"}, "name": {"S": "x"},
     "m": {"M": {"\ud800": {"N": "1"}}}},
    {"PK": {"S": "p"}, "SK": {"S": "x"}, "tags": {"SS": ["ok", "\ud800"]}, "name": {"S": "x"}},
    {"PK": {"S": "p"}, "SK": {"S": "x"}},  # no name: KeyError
])
def test_an_unreadable_item_is_skipped_logged_and_counted(
    item: dict[str, Any], recorded: metrics.Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    good = {"name": {"S": "fine"}}
    with caplog.at_level(logging.ERROR, "switchboard.reads"):
        assert readable.each([good, item, good], decode, "room r") == ["fine", "fine"]
        assert readable.one(item, decode, "room r") is None
    assert unreadable_counted(recorded) == 2
    assert "skipped an unreadable item ('p'," in caplog.text
    assert "\ud800" not in caplog.text  # keys are logged ASCII-safe
