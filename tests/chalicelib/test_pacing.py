"""The pacer: a burst, then one slot per 1/rate, each slot taken once, never past the deadline."""

from __future__ import annotations

import threading

import pytest

from chalicelib.invocation import Deadline
from chalicelib.pacing import UNPACED, Pacer
from chalicelib.settings import Settings, SettingsError

BASE = {"CONNECTIONS_TABLE": "t", "TOKEN_SECRET": "s"}


class Frozen:
    """A clock that never moves; sleeps are recorded, not slept."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return 100.0

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.pauses.append(seconds)


def far() -> Deadline:
    return Deadline(expires_at=10_000.0, clock=lambda: 100.0)


def test_a_burst_goes_at_once_then_one_post_per_interval() -> None:
    clock = Frozen()
    pacer = Pacer(rate=50, burst=5, clock=clock, sleep=clock.sleep)
    assert all(pacer.wait(far()) for _ in range(8))
    assert clock.pauses == pytest.approx([0.02, 0.04, 0.06])  # posts 6-8 wait their slots


def test_concurrent_posts_never_share_a_slot() -> None:
    clock = Frozen()
    pacer = Pacer(rate=1000, burst=1, clock=clock, sleep=clock.sleep)
    start = threading.Barrier(8)

    def take() -> None:
        start.wait()
        for _ in range(25):
            assert pacer.wait(far())

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    slots = sorted(round(pause * 1000) for pause in clock.pauses)
    assert slots == list(range(1, 200))  # 200 posts: the first free, then 1 ms apart


def test_a_slot_after_the_deadline_is_not_taken() -> None:
    clock = Frozen()
    pacer = Pacer(rate=10, burst=1, clock=clock, sleep=clock.sleep)
    soon = Deadline(expires_at=100.15, clock=clock)
    assert pacer.wait(soon)  # free
    assert pacer.wait(soon)  # at +0.1 s
    assert not pacer.wait(soon)  # +0.2 s is past the deadline: refused, nothing reserved
    assert pacer.wait(far())  # so the next caller still gets +0.2 s
    assert clock.pauses == pytest.approx([0.1, 0.2])


def test_idle_time_refills_the_burst_but_no_more() -> None:
    now = [0.0]
    pauses: list[float] = []
    pacer = Pacer(rate=10, burst=3, clock=lambda: now[0], sleep=pauses.append)
    deadline = Deadline(expires_at=1e9, clock=lambda: now[0])
    for _ in range(3):
        assert pacer.wait(deadline)
    now[0] = 60.0  # a long pause
    for _ in range(4):
        assert pacer.wait(deadline)
    assert pauses == pytest.approx([0.1])  # three free again, the fourth waits


def test_unpaced_refuses_only_past_the_deadline() -> None:
    assert UNPACED.wait(far())
    assert not UNPACED.wait(Deadline(expires_at=0.0, clock=lambda: 1.0))


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rate"):
        Pacer(rate=0)


def test_each_invocation_gets_its_share_of_the_stage_budget() -> None:
    settings = Settings.from_environ(
        {**BASE, "MANAGEMENT_RPS": "9000", "FANOUT_WORKER_CONCURRENCY": "6"}
    )
    assert settings.invocation_rps == 1500
    assert Pacer(settings.invocation_rps).burst == 750


@pytest.mark.parametrize(
    ("name", "value"),
    [("MANAGEMENT_RPS", "0"), ("MANAGEMENT_RPS", "fast"), ("FANOUT_WORKER_CONCURRENCY", "-1"),
     ("MANAGEMENT_TRANSPORT", "udp")],
)
def test_bad_pacing_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_environ({**BASE, name: value})
