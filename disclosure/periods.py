"""Published periods: calendar years, their quarters and their months."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from disclosure.rules import NotPublished

YEAR, QUARTERS, MONTHS = 0, 1, 5  # period codes: 0 the year, 1..4 quarters, 5..16 months
N_PERIODS = 17


@dataclass(frozen=True)
class Period:
    """A published period: a calendar year, quarter or month."""

    year: int
    code: int

    @property
    def start(self) -> date:
        """First day."""
        if self.code == YEAR:
            return date(self.year, 1, 1)
        if self.code < MONTHS:
            return date(self.year, 3 * (self.code - QUARTERS) + 1, 1)
        return date(self.year, self.code - MONTHS + 1, 1)

    @property
    def end(self) -> date:
        """The day after the last one."""
        months = 12 if self.code == YEAR else 3 if self.code < MONTHS else 1
        return add_months(self.start, months)

    @classmethod
    def month(cls, day: date) -> Period:
        """The month of a day."""
        return cls(day.year, MONTHS + day.month - 1)

    @classmethod
    def parse(cls, start: date, end: date) -> Period:
        """The period ``[start, end)`` names; NotPublished unless it is exactly one."""
        if start.day == 1:
            if start.month == 1 and end == date(start.year + 1, 1, 1):
                return cls(start.year, YEAR)
            if start.month % 3 == 1 and end == add_months(start, 3):
                return cls(start.year, QUARTERS + (start.month - 1) // 3)
            if end == add_months(start, 1):
                return cls.month(start)
        raise NotPublished(
            "end",
            end.isoformat(),
            f"public figures cover one calendar year, quarter or month (start {start} "
            "on its first day, end the day after its last); an API key opens any window",
        )


def add_months(day: date, months: int) -> date:
    """The first day of the month ``months`` after ``day``'s."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def cutoff(delay_days: int, today: date) -> date:
    """The first day not published: the delay, rounded down to a whole month."""
    last = today - timedelta(days=delay_days)
    return last.replace(day=1)


def months_published(year: int, until: date) -> int:
    """How many months of ``year`` are published before the cutoff ``until`` (0..12)."""
    return max(0, min(12, (until.year - year) * 12 + until.month - 1))


def default_period(first_day: date | None, last_day: date | None, until: date) -> Period:
    """The public default: the last whole calendar year of records that is published."""
    if first_day is not None and last_day is not None:
        year = last_day.year if (last_day.month, last_day.day) == (12, 31) else last_day.year - 1
        earliest = first_day.year
    else:
        year = earliest = until.year - 1
    return Period(max(min(year, until.year - 1), min(earliest, until.year - 1)), YEAR)
