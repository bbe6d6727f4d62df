"""One request's deliveries: inline or queued by the request's running total, tallied,
gone targets forgotten once and never posted to again."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chalicelib.delivery import DeliveryReport, Outcome
from chalicelib.invocation import Deadline
from chalicelib.outbox import Outbox


class Posts:
    """A delivery that reports some targets gone; counts what it was asked to post."""

    def __init__(self, gone: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.gone = set(gone)
        self.posted: list[str] = []
        self.deadlines: list[Deadline] = []

    def post_all(self, targets: Sequence[str], frame: str, deadline: Deadline) -> DeliveryReport:
        self.posted.extend(targets)
        return DeliveryReport(
            delivered=len([t for t in targets if t not in self.gone]),
            gone=tuple(t for t in targets if t in self.gone),
        )

    def send(self, target: str, frame: str, deadline: Deadline) -> Outcome:
        self.posted.append(target)
        self.deadlines.append(deadline)
        return Outcome.GONE if target in self.gone else Outcome.DELIVERED


class Forgets:
    def __init__(self) -> None:
        self.calls: list[tuple[list[str], str | None]] = []

    def forget(self, gone: Sequence[str], deadline: Deadline, room: str | None = None) -> bool:
        if gone:
            self.calls.append((list(gone), room))
        return True


class Queue:
    def __init__(self) -> None:
        self.batches: list[tuple[list[str], str | None]] = []

    def enqueue(self, targets: Sequence[str], frame: str, room: str | None = None) -> list[str]:
        self.batches.append((list(targets), room))
        return []


def outbox(posts: Posts, forgets: Forgets, queue: Queue | None = None, threshold: int = 0) -> Any:
    return Outbox(posts, forgets, Deadline.after(10), queue, threshold)  # type: ignore[arg-type]


def test_a_requests_deliveries_are_tallied_and_gone_targets_forgotten_in_their_room() -> None:
    posts, forgets = Posts(gone={"b"}), Forgets()
    box = outbox(posts, forgets)
    box.deliver(["a", "b"], "{}", room="lobby")
    box.deliver(["c"], "{}")
    assert box.report == DeliveryReport(delivered=2, gone=("b",))
    assert forgets.calls == [(["b"], "lobby")]
    assert box.audience == 3


def test_the_queue_takes_over_once_the_requests_total_passes_the_threshold() -> None:
    posts, queue = Posts(), Queue()
    box = outbox(posts, Forgets(), queue, threshold=3)
    box.deliver(["a", "b"], "{}")
    box.deliver(["c", "d"], "{}", room="r")  # 4 > 3: this page is queued
    assert posts.posted == ["a", "b"]
    assert queue.batches == [(["c", "d"], "r")]
    assert (box.report.delivered, box.report.queued) == (2, 2)


def test_a_connection_found_gone_is_not_posted_to_again() -> None:
    posts, forgets = Posts(gone={"me"}), Forgets()
    box = outbox(posts, forgets)
    assert box.send("me", "{}") is Outcome.GONE
    assert box.send("me", "{}") is Outcome.GONE
    assert posts.posted == ["me"]
    assert forgets.calls == [(["me"], None)]


def test_an_answer_may_use_a_deadline_of_its_own() -> None:
    posts = Posts()
    box = outbox(posts, Forgets())
    reserve = box.deadline.with_reserve()
    assert box.send("me", "{}", reserve) is Outcome.DELIVERED
    assert posts.deadlines == [reserve]
