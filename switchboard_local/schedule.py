"""EventBridge schedule expressions: the only code that parses them and says when they fire.

``@app.schedule`` takes what EventBridge takes (Chalice's ``Rate`` and ``Cron``
render to it): ``rate(VALUE UNIT)`` — a positive whole number of
``minute``/``minutes``, ``hour``/``hours``, ``day``/``days``, singular for 1 —
and ``cron(MINUTES HOURS DAY-OF-MONTH MONTH DAY-OF-WEEK YEAR)`` in UTC, with
``,`` ``-`` ``*`` ``/`` in every field, ``?`` in one of the two day fields
(exactly one of them), ``L`` and ``W`` in day-of-month (``L``, ``15W``,
``LW``), ``L`` and ``#`` in day-of-week (``6L``, ``3#2``), month and day
names (``JAN``, ``MON``; days count from ``1`` = Sunday). An expression
EventBridge would refuse is refused here with the reason
(:class:`ScheduleError`). A rate fires one period after the rule exists,
then every period; a cron at each minute it matches.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = {name: number for number, name in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1
)}
_DAYS = {name: number for number, name in enumerate(
    ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], 1
)}
_SEARCH_YEARS = 5


class ScheduleError(ValueError):
    """The expression is not one EventBridge accepts; the message says why."""


@dataclass(frozen=True)
class Rate:
    seconds: int
    expression: str

    def next_after(self, moment: datetime, started: datetime) -> datetime:
        """The first fire after ``moment`` of a rule that exists since ``started``."""
        periods = int((moment - started).total_seconds() // self.seconds) + 1
        return started + timedelta(seconds=periods * self.seconds)


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    months: frozenset[int]
    years: frozenset[int] | None
    day_of_month: str
    day_of_week: str
    expression: str

    def next_after(self, moment: datetime, started: datetime | None = None) -> datetime:
        """The first minute after ``moment`` (UTC) that the expression matches."""
        moment = moment.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = moment.date()
        for _ in range(366 * _SEARCH_YEARS):
            if self._day_matches(day.year, day.month, day.day):
                first = (moment.hour, moment.minute) if day == moment.date() else (0, 0)
                for hour in sorted(h for h in self.hours if h >= first[0]):
                    low = first[1] if hour == first[0] else 0
                    minutes = [m for m in sorted(self.minutes) if m >= low]
                    if minutes:
                        return datetime(day.year, day.month, day.day, hour, minutes[0],
                                        tzinfo=UTC)
            day += timedelta(days=1)
        raise ScheduleError(f"{self.expression} never fires in the next {_SEARCH_YEARS} years")

    def _day_matches(self, year: int, month: int, day: int) -> bool:
        if month not in self.months or (self.years is not None and year not in self.years):
            return False
        if self.day_of_month != "?":
            return _day_of_month_matches(self.day_of_month, year, month, day)
        return _day_of_week_matches(self.day_of_week, year, month, day)


Schedule = Rate | Cron


def parse(expression: str) -> Schedule:
    """A schedule expression, or :class:`ScheduleError` saying what is wrong with it."""
    text = expression.strip()
    rate = _RATE.match(text)
    if rate is not None:
        value, unit = int(rate.group(1)), rate.group(2)
        if value < 1:
            raise ScheduleError(f"{expression}: the value must be a positive whole number")
        if (value == 1) != (not unit.endswith("s")):
            raise ScheduleError(f"{expression}: EventBridge wants the singular unit for 1 "
                                "and the plural for more")
        return Rate(value * _UNITS[unit.rstrip("s")], text)
    cron = _CRON.match(text)
    if cron is None:
        raise ScheduleError(f"{expression}: not rate(VALUE UNIT) or cron(SIX FIELDS)")
    fields = cron.group(1).split()
    if len(fields) != 6:
        raise ScheduleError(f"{expression}: cron takes six fields, not {len(fields)}")
    minutes, hours, day_of_month, month, day_of_week, year = (f.upper() for f in fields)
    if (day_of_month == "?") == (day_of_week == "?"):
        raise ScheduleError(f"{expression}: exactly one of day-of-month and day-of-week must "
                            "be ?")
    if day_of_month != "?":
        _check_day_of_month(day_of_month, expression)
    else:
        _check_day_of_week(day_of_week, expression)
    return Cron(
        minutes=_values(minutes, 0, 59, {}, expression),
        hours=_values(hours, 0, 23, {}, expression),
        months=_values(month, 1, 12, _MONTHS, expression),
        years=None if year == "*" else _values(year, 1970, 2199, {}, expression),
        day_of_month=day_of_month,
        day_of_week=day_of_week,
        expression=text,
    )


def _values(field: str, low: int, high: int, names: dict[str, int], expression: str
            ) -> frozenset[int]:
    """The numbers a field with ``,`` ``-`` ``*`` ``/`` stands for."""
    values: set[int] = set()
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        step = _number(step_text, {}, expression) if step_text else 1
        if step < 1:
            raise ScheduleError(f"{expression}: a step must be positive")
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _number(first, names, expression), _number(last, names, expression)
        else:
            start = _number(base, names, expression)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high):
            raise ScheduleError(f"{expression}: {part} is outside {low}-{high}")
        if end < start:
            raise ScheduleError(f"{expression}: {part} is a range that ends before it starts")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _number(text: str, names: dict[str, int], expression: str) -> int:
    if text in names:
        return names[text]
    if not text.isdigit():
        raise ScheduleError(f"{expression}: {text!r} is not a number"
                            + (f" or one of {', '.join(names)}" if names else ""))
    return int(text)


def _check_day_of_month(field: str, expression: str) -> None:
    if field in ("L", "LW") or re.fullmatch(r"\d+W", field):
        if field.endswith("W") and field != "LW" and not 1 <= int(field[:-1]) <= 31:
            raise ScheduleError(f"{expression}: {field} is outside 1-31")
        return
    _values(field, 1, 31, {}, expression)


def _check_day_of_week(field: str, expression: str) -> None:
    special = re.fullmatch(r"(\w+)(L|#([1-5]))", field)
    if special is not None:
        if not 1 <= _number(special.group(1), _DAYS, expression) <= 7:
            raise ScheduleError(f"{expression}: {field} names no day of the week")
        return
    _values(field, 1, 7, _DAYS, expression)


def _day_of_month_matches(field: str, year: int, month: int, day: int) -> bool:
    last = calendar.monthrange(year, month)[1]
    if field == "L":
        return day == last
    if field.endswith("W"):
        target = last if field == "LW" else min(int(field[:-1]), last)
        return day == _nearest_weekday(year, month, target, last)
    return day in _values(field, 1, 31, {}, field)


def _nearest_weekday(year: int, month: int, target: int, last: int) -> int:
    """The weekday nearest ``target`` within its month (``W``)."""
    weekday = calendar.weekday(year, month, target)  # Monday = 0
    if weekday == 5:  # Saturday: the Friday before, or Monday after the 1st
        return target - 1 if target > 1 else target + 2
    if weekday == 6:  # Sunday: the Monday after, or the Friday before the last day
        return target + 1 if target < last else target - 2
    return target


def _day_of_week_matches(field: str, year: int, month: int, day: int) -> bool:
    aws_day = (calendar.weekday(year, month, day) + 1) % 7 + 1  # 1 = Sunday
    special = re.fullmatch(r"(\w+)(L|#([1-5]))", field)
    if special is None:
        return aws_day in _values(field, 1, 7, _DAYS, field)
    if aws_day != _number(special.group(1), _DAYS, field):
        return False
    if special.group(2) == "L":
        return day + 7 > calendar.monthrange(year, month)[1]
    return (day - 1) // 7 + 1 == int(special.group(3))
