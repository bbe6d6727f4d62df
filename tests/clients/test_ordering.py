"""The ordering Stream against the shared cases in ``clients/spec/ordering.json``.

The JavaScript client runs the same cases (``clients/js/test/ordering.test.js``), so
both clients order, deduplicate and recover the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from switchboard_client.ordering import Position, Settled, Stream

CASES = json.loads(
    (Path(__file__).parents[2] / "clients" / "spec" / "ordering.json").read_text()
)["cases"]


def message(spec: list[Any]) -> dict[str, Any]:
    seq, epoch = spec[0], spec[1] if len(spec) > 1 else "A"
    frame: dict[str, Any] = {"type": "message", "from": "u", "text": f"m{seq}", "sentAt": "t"}
    if seq is not None:
        frame.update(seq=seq, epoch=epoch)
    return frame


def label(frame: dict[str, Any]) -> str:
    if "seq" not in frame:
        return "-"
    text = str(frame["seq"]) if frame["epoch"] == "A" else f"{frame['epoch']}:{frame['seq']}"
    return text + (" r" if frame.get("replayed") else "")


def position(value: Position | None) -> list[Any] | None:
    return None if value is None else [value.epoch, value.seq]


def apply(stream: Stream, step: dict[str, Any]) -> tuple[list[dict[str, Any]], Any]:
    """Run one step; returns what it released and its other answer."""
    op = step["op"]
    if op == "begin":
        return [], position(stream.begin())
    if op == "receive":
        return stream.receive(message(step["message"])), None
    if op == "seen":
        return stream.seen(message(step["message"])), None
    if op == "settle":
        settled = stream.settle(step["ack"])
        return settled.released, settled
    if op == "startFill":
        return [], stream.start_fill()
    if op == "fill":
        settled = stream.fill([message(m) for m in step["messages"]], step["complete"])
        return settled.released, settled
    if op == "covers":
        return [], stream.covers(step["oldest"])
    if op == "forget":
        stream.forget()
        return [], None
    raise AssertionError(f"unknown op {op}")


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_shared_ordering_case(case: dict[str, Any]) -> None:
    start = case.get("start")
    stream = Stream(Position(*start) if start else None)
    for number, step in enumerate(case["steps"]):
        where = f"step {number} ({step['op']})"
        released, answer = apply(stream, step)
        assert [label(frame) for frame in released] == step["released"], where
        if isinstance(answer, Settled):
            assert answer.failed == step.get("failed", answer.failed), where
            assert answer.fill_to == step.get("fillTo", answer.fill_to), where
        if "since" in step:
            assert answer == step["since"], where
        if "returns" in step:
            assert answer == step["returns"], where
        if "gap" in step:
            assert stream.has_gap == step["gap"], where
        if "position" in step:
            assert position(stream.position) == step["position"], where
        for counter in ("duplicates", "skipped"):
            if counter in step:
                assert getattr(stream, counter) == step[counter], f"{where}: {counter}"


def test_every_op_of_the_shared_cases_is_exercised() -> None:
    ops = {step["op"] for case in CASES for step in case["steps"]}
    assert ops == {"begin", "receive", "seen", "settle", "startFill", "fill", "covers", "forget"}


def test_frames_released_as_replayed_are_copies() -> None:
    stream = Stream(Position("A", 0))
    stream.begin()
    original = message([1])
    stream.receive(original)
    (released,) = stream.settle({"epoch": "A", "seq": 1, "recovered": True}).released
    assert released["replayed"] is True
    assert "replayed" not in original


@pytest.mark.parametrize(
    "frame",
    [
        {"seq": True, "epoch": "A"},
        {"seq": "1", "epoch": "A"},
        {"seq": 1},
        {"seq": -1, "epoch": "A"},
    ],
)
def test_a_frame_without_a_valid_position_is_released_unordered(frame: dict[str, Any]) -> None:
    stream = Stream(Position("A", 5))
    assert stream.receive(frame) == [frame]
    assert stream.position == Position("A", 5)
