"""Local date and time: parsing, filler times, time zones, and date sanity checks.

Date and time columns repeat a few thousand distinct values over millions of rows, so
every parse runs on the distinct values (Arrow dictionary) and is spread back by index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ingest.arrays import to_bool
from ingest.coords import Codes, Mask, _reject
from ingest.profiles import Profile
from ingest.reasons import Reason

US_PER_DAY = 86_400_000_000
_Y2000_US = 946_684_800_000_000
_EXTRA_FIELD_TIME = r"^\d{1,2}:\d{2}:\d{2}:\d{2}$"


@dataclass
class LocalTimes:
    """Parsed local wall-clock times and what was imputed or repaired."""

    local_us: npt.NDArray[np.int64]  # microseconds since 1970-01-01, local wall clock
    utc: pa.Array  # timestamp[us, UTC]
    imputed: Mask
    time_from_date: Mask


@dataclass
class _Distinct:
    """A text column as its distinct values and, per row, the value's position.

    A null row points one past the last value, where ``spread`` puts its fill value: one
    gather per spread, no masking.
    """

    values: pa.Array
    index: npt.NDArray[np.int32]

    def spread(self, per_value: np.ndarray, fill: Any) -> np.ndarray:
        return np.append(per_value, np.asarray([fill], dtype=per_value.dtype))[self.index]


def _distinct(column: pa.ChunkedArray | pa.Array) -> _Distinct:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_dictionary(arr.type):
        arr = pc.cast(arr, pa.string()).dictionary_encode()
    values = pc.utf8_trim_whitespace(pc.cast(arr.dictionary, pa.string()))
    index = arr.indices.cast(pa.int32()).fill_null(len(values)).to_numpy(zero_copy_only=False)
    return _Distinct(values, index)


def _missing(values: pa.Array, profile: Profile) -> Mask:
    nulls = pa.array(profile.parse.null_values, pa.string())
    return to_bool(pc.or_(pc.is_null(values), pc.is_in(values, nulls)), True)


# strptime directives that read a time of day: 24-hour and 12-hour hours, and the
# composites that hold one (%T = %H:%M:%S, %R = %H:%M, %r = %I:%M:%S %p, %X and %c).
TIME_DIRECTIVES = ("%H", "%I", "%T", "%R", "%r", "%X", "%c")


# Directives that read the day of the month (or a whole date): a format without any of
# them ("%Y-%m", police.uk's months) gives dates known to the month only.
DAY_DIRECTIVES = ("%d", "%e", "%j", "%x", "%c", "%D", "%F")


def carries_day(fmt: str) -> bool:
    """Whether a date format reads the day, not only the month."""
    return any(d in fmt.replace("%%", "") for d in DAY_DIRECTIVES)


def carries_time(fmt: str) -> bool:
    """Whether a date format reads the time of day too (its records need no imputed time)."""
    return any(d in fmt.replace("%%", "") for d in TIME_DIRECTIVES)


def _strptime_any(text: pa.Array, formats: list[str]) -> tuple[npt.NDArray[np.int64], Mask, Mask]:
    """Parse with the first matching format; return µs, parsed mask, has-time mask."""
    n = len(text)
    out = np.zeros(n, dtype=np.int64)
    parsed = np.zeros(n, dtype=bool)
    has_time = np.zeros(n, dtype=bool)
    for fmt in formats:
        todo = np.flatnonzero(~parsed)
        if todo.size == 0:
            break
        sub = text.take(pa.array(todo))
        ts = pc.strptime(sub, format=fmt, unit="s", error_is_null=True)
        # Arrow's strptime rolls impossible dates over (2023-02-30 -> 2023-03-02): accept a
        # parse only if formatting it back gives the same numbers as the text.
        back = pc.strftime(ts, format=fmt)
        # Case apart: "pm" reads as PM and comes back as "PM".
        ok = to_bool(pc.equal(pc.utf8_upper(_numbers(sub)), pc.utf8_upper(_numbers(back))))
        ts = ts.cast(pa.timestamp("us"))
        vals = ts.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
        out[todo[ok]] = vals[ok]
        parsed[todo[ok]] = True
        if carries_time(fmt):
            has_time[todo[ok]] = True
    return out, parsed, has_time


def _numbers(text: pa.Array) -> pa.Array:
    """The text with leading zeros of every number removed (so 2023-2-3 == 2023-02-03)."""
    return pc.replace_substring_regex(text, r"(^|\D)0+(\d)", r"\1\2")


def _parse_times(values: pa.Array, formats: list[str]) -> tuple[npt.NDArray[np.int64], Mask]:
    """Times of day (µs since midnight) of text values, with the parsed mask."""
    prefixed = pc.binary_join_element_wise(pa.scalar("2000-01-01 "), values, "")
    tod, ok, _ = _strptime_any(prefixed, [f"%Y-%m-%d {f}" for f in formats])
    return tod - _Y2000_US, ok


def parse_local_times(
    date_col: pa.ChunkedArray,
    time_col: pa.ChunkedArray | None,
    profile: Profile,
    codes: Codes,
    now: datetime,
) -> LocalTimes:
    """Parse dates and times as local wall-clock times and convert them to UTC.

    A time in the date field wins when the time field repeats it with extra fields
    (``2024-11-05 06:30:00`` with ``06:30:00:00``: FGJ late 2024); that row is flagged
    ``time_from_date_field``. Where they disagree the row is rejected as ambiguous.
    """
    parse = profile.parse
    raw = date_col.combine_chunks() if isinstance(date_col, pa.ChunkedArray) else date_col
    if pa.types.is_timestamp(raw.type) or pa.types.is_date(raw.type):
        n = len(raw)
        _reject(codes, to_bool(pc.is_null(raw)), Reason.MISSING_DATE)
        local = pc.cast(pc.cast(raw, pa.timestamp("us")), pa.int64()).fill_null(0).to_numpy()
        has_time = np.full(n, pa.types.is_timestamp(raw.type))
        if time_col is not None:
            # A typed timestamp at midnight beside a time column is a date.
            has_time &= local % US_PER_DAY != 0
    else:
        dates = _distinct(raw)
        n = len(dates.index)
        missing_v = _missing(dates.values, profile)
        _reject(codes, dates.spread(missing_v, True), Reason.MISSING_DATE)
        local_v, parsed_v, has_time_v = _strptime_any(dates.values, parse.date_format)
        _reject(codes, ~dates.spread(parsed_v, False), Reason.MALFORMED_DATE)
        local = dates.spread(local_v, 0)
        has_time = dates.spread(has_time_v, False)
    local = np.asarray(local, dtype=np.int64)
    date_tod = local % US_PER_DAY
    day_us = local - date_tod

    imputed = ~has_time
    from_date = np.zeros(n, dtype=bool)
    if time_col is not None:
        times = _distinct(time_col)
        tmissing = times.spread(_missing(times.values, profile), True)
        tod_v, tparsed_v = _parse_times(times.values, parse.time_format)
        tod = times.spread(tod_v, 0)
        tparsed = times.spread(tparsed_v, False)
        # A valid time field must agree with a time carried in the date field.
        _reject(codes, tparsed & has_time & (tod != date_tod), Reason.AMBIGUOUS_TIME)
        bad_time = ~tmissing & ~tparsed
        if bad_time.any():
            extra_v = to_bool(pc.match_substring_regex(times.values, _EXTRA_FIELD_TIME))
            head_v, head_ok_v = _parse_times(
                pc.utf8_slice_codeunits(times.values, 0, 8), ["%H:%M:%S"]
            )
            extra = times.spread(extra_v, False)
            head = times.spread(head_v, -1)
            head_ok = times.spread(head_ok_v, False)
            # "06:30:00:00" beside a date field carrying 06:30:00: the date field's time.
            from_date = bad_time & extra & has_time & head_ok & (head == date_tod)
            _reject(codes, bad_time & extra & ~from_date, Reason.AMBIGUOUS_TIME)
            _reject(codes, bad_time & ~extra, Reason.MALFORMED_TIME)
        local = np.where(tparsed & ~has_time, day_us + tod, local)
        imputed = ~(tparsed | has_time)
    if parse.filler_times:
        fillers = np.array([_time_us(t) for t in parse.filler_times], dtype=np.int64)
        imputed = imputed | np.isin(local % US_PER_DAY, fillers)

    tz = ZoneInfo(profile.timezone)
    now_local = now.astimezone(tz).replace(tzinfo=None)
    now_us = int((now_local - datetime(1970, 1, 1)).total_seconds() * 1_000_000)
    _reject(codes, local > now_us, Reason.FUTURE_DATE)
    if parse.start_date is not None:
        _reject(codes, local < _date_us(parse.start_date), Reason.BEFORE_SOURCE_START)

    naive = pa.array(local, pa.timestamp("us"))
    # A local time in a DST gap moves to the transition; an ambiguous one takes the
    # earlier instant (documented in docs/profiles.md).
    utc = pc.assume_timezone(
        naive, timezone=profile.timezone, ambiguous="earliest", nonexistent="earliest"
    ).cast(pa.timestamp("us", tz="UTC"))
    return LocalTimes(local_us=local, utc=utc, imputed=imputed, time_from_date=from_date)


def _time_us(text: str) -> int:
    parts = [int(p) for p in text.split(":")]
    while len(parts) < 3:
        parts.append(0)
    h, m, s = parts[:3]
    return ((h * 60 + m) * 60 + s) * 1_000_000


def _date_us(d: date) -> int:
    return (d - date(1970, 1, 1)).days * US_PER_DAY
