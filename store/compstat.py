"""CompStat periods and their counts, in one pass over the records.

A week, the 28 days to its end and the year to date, each against the same period a year
before. The week is an ISO week (Monday to Sunday). "A year before" is 52 weeks (364 days) earlier
for the week and the 28 days, so that weekdays line up (a Monday is compared with a
Monday), and the same calendar days of the year before for the year to date.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

import pyarrow as pa

from store.filters import FilterError, Filters
from store.snapshot import Snapshot
from store.sql import quote

WEEK_PATTERN = r"^\d{4}-W\d{2}$"
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
YEAR_DAYS = 364  # 52 weeks: the prior week starts on the same weekday


@dataclass(frozen=True)
class Window:
    """One CompStat period and the same period a year before, each [start, end)."""

    name: str  # "week", "28d", "ytd"
    current: tuple[date, date]
    prior: tuple[date, date]

    @property
    def days(self) -> int:
        """The length of the current period in days."""
        return (self.current[1] - self.current[0]).days

    @property
    def prior_days(self) -> int:
        """The length of the prior period (a day shorter for a year to date past 29 February)."""
        return (self.prior[1] - self.prior[0]).days


def windows(week: str) -> list[Window]:
    """The week, 28-day and year-to-date windows of an ISO week ``YYYY-Www``."""
    match = _WEEK.match(week)
    if match is None:
        raise FilterError("week", week, "an ISO week such as 2024-W20")
    try:
        monday = date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
    except ValueError as exc:
        raise FilterError("week", week, str(exc)) from None
    end = monday + timedelta(days=7)
    back = timedelta(days=YEAR_DAYS)
    last = end - timedelta(days=1)
    jan1 = date(last.year, 1, 1)
    try:
        prior_last = last.replace(year=last.year - 1)
    except ValueError:  # 29 February: the year before ends on the 28th
        prior_last = last.replace(year=last.year - 1, day=28)
    start28 = end - timedelta(days=28)
    prior_ytd = (date(last.year - 1, 1, 1), prior_last + timedelta(days=1))
    return [
        Window("week", (monday, end), (monday - back, end - back)),
        Window("28d", (start28, end), (start28 - back, end - back)),
        Window("ytd", (jan1, end), prior_ytd),
    ]


def period_counts(
    snap: Snapshot, flt: Filters, spans: list[tuple[date, date]], key: str | None, con: Any
) -> pa.Table:
    """Records per ``key`` column (``category``, a layer; None: one row) in each span.

    Columns: ``key`` and ``n0`` … ``n<k>``, one per span, in one scan of the records
    between the earliest start and the latest end (``flt``'s own dates are ignored).
    """
    first = min(s for s, _ in spans)
    last = max(e for _, e in spans)
    data = snap.files_between(first, last)
    where, params = replace(flt, start=first, end=last).where(snap.manifest.boundary_layers)
    group = f"{quote(key)}::VARCHAR" if key else "NULL::VARCHAR"
    parts = [
        f"count(*) FILTER (WHERE local_date >= ? AND local_date < ?)::BIGINT AS n{i}"
        for i in range(len(spans))
    ]
    names = ["key", *(f"n{i}" for i in range(len(spans)))]
    if not data:
        return pa.table({n: pa.array([], pa.string() if n == "key" else pa.int64()) for n in names})
    sql = f"SELECT {group} AS key, {', '.join(parts)} FROM read_parquet(?) WHERE {where} GROUP BY 1"
    bounds = [d for span in spans for d in span]
    files = [str(snap.path(f.path)) for f in data]
    table: pa.Table = con.sql(sql, params=[*bounds, files, *params]).to_arrow_table()
    return table
