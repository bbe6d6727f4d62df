"""Schedule expressions alone: what EventBridge accepts, and when each one fires.

Source: EventBridge's "Schedule expressions for rules" (rate and cron syntax,
UTC, ``?`` in one day field, ``L``, ``W``, ``#``, days counted from 1 = Sunday).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from switchboard_local.schedule import Cron, Rate, ScheduleError, parse


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fires(expression: str, start: str, count: int = 3) -> list[str]:
    schedule = parse(expression)
    started = moment = at(start)
    found = []
    for _ in range(count):
        moment = schedule.next_after(moment, started)
        found.append(moment.strftime("%Y-%m-%d %H:%M %a"))
    return found


def test_a_rate_fires_one_period_after_the_rule_exists_then_every_period() -> None:
    assert isinstance(parse("rate(5 minutes)"), Rate)
    assert fires("rate(5 minutes)", "2026-01-01T10:02:30") == [
        "2026-01-01 10:07 Thu", "2026-01-01 10:12 Thu", "2026-01-01 10:17 Thu",
    ]
    assert fires("rate(1 day)", "2026-01-01T00:00:00", 2) == [
        "2026-01-02 00:00 Fri", "2026-01-03 00:00 Sat",
    ]


@pytest.mark.parametrize(("expression", "expected"), [
    ("cron(0/15 * * * ? *)", ["2026-03-02 09:15 Mon", "2026-03-02 09:30 Mon",
                              "2026-03-02 09:45 Mon"]),
    ("cron(0 10 * * ? *)", ["2026-03-02 10:00 Mon", "2026-03-03 10:00 Tue",
                            "2026-03-04 10:00 Wed"]),
    ("cron(15 12 ? * MON-FRI *)", ["2026-03-02 12:15 Mon", "2026-03-03 12:15 Tue",
                                   "2026-03-04 12:15 Wed"]),
    ("cron(0 18 ? * 6 *)", ["2026-03-06 18:00 Fri", "2026-03-13 18:00 Fri",
                            "2026-03-20 18:00 Fri"]),  # 6 = Friday: days start at Sunday
    ("cron(0 8 1 * ? *)", ["2026-04-01 08:00 Wed", "2026-05-01 08:00 Fri",
                           "2026-06-01 08:00 Mon"]),
    ("cron(0 0 L * ? *)", ["2026-03-31 00:00 Tue", "2026-04-30 00:00 Thu",
                           "2026-05-31 00:00 Sun"]),
    ("cron(0 0 ? * 6L *)", ["2026-03-27 00:00 Fri", "2026-04-24 00:00 Fri",
                            "2026-05-29 00:00 Fri"]),  # the last Friday
    ("cron(0 0 ? * 3#2 *)", ["2026-03-10 00:00 Tue", "2026-04-14 00:00 Tue",
                             "2026-05-12 00:00 Tue"]),  # the second Tuesday
    ("cron(0 0 15W * ? *)", ["2026-03-16 00:00 Mon", "2026-04-15 00:00 Wed",
                             "2026-05-15 00:00 Fri"]),  # the 15th fell on a Sunday
    ("cron(0 0 LW * ? *)", ["2026-03-31 00:00 Tue", "2026-04-30 00:00 Thu",
                            "2026-05-29 00:00 Fri"]),
    ("cron(30 9 ? JAN,JUL MON 2027)", ["2027-01-04 09:30 Mon", "2027-01-11 09:30 Mon",
                                       "2027-01-18 09:30 Mon"]),
])
def test_cron_fires_at_the_minutes_it_matches(expression: str, expected: list[str]) -> None:
    assert isinstance(parse(expression), Cron)
    assert fires(expression, "2026-03-02T09:00:00") == expected


@pytest.mark.parametrize(("expression", "reason"), [
    ("rate(0 minutes)", "positive"),
    ("rate(1 minutes)", "singular"),
    ("rate(5 minute)", "singular"),
    ("rate(5 weeks)", "not rate"),
    ("every 5 minutes", "not rate"),
    ("cron(0 10 * * *)", "six fields"),
    ("cron(0 10 * * * *)", "exactly one"),
    ("cron(0 10 ? * ? *)", "exactly one"),
    ("cron(60 10 * * ? *)", "outside 0-59"),
    ("cron(0 10 * FOO ? *)", "not a number"),
    ("cron(0 10 ? * 8 *)", "outside 1-7"),
    ("cron(0 10 5-2 * ? *)", "ends before"),
    ("cron(0 0 1 1 ? 2020)", "never fires"),
])
def test_what_eventbridge_refuses_is_refused_with_the_reason(expression: str, reason: str
                                                             ) -> None:
    with pytest.raises(ScheduleError, match=reason):
        parse(expression).next_after(at("2026-03-02T09:00:00"), at("2026-03-02T09:00:00"))
