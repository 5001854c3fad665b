"""Local date and time: parsing, filler times, time zones, and date sanity checks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ingest.coords import Codes, Mask, _reject
from ingest.profiles import Profile
from ingest.reasons import Reason

US_PER_DAY = 86_400_000_000
_EXTRA_FIELD_TIME = r"^\d{1,2}:\d{2}:\d{2}:\d{2}$"


@dataclass
class LocalTimes:
    """Parsed local wall-clock times and what was imputed or repaired."""

    local_us: npt.NDArray[np.int64]  # microseconds since 1970-01-01, local wall clock
    utc: pa.Array  # timestamp[us, UTC]
    imputed: Mask
    time_from_date: Mask


def _text(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_timestamp(arr.type) or pa.types.is_date(arr.type):
        return arr
    return pc.utf8_trim_whitespace(pc.cast(arr, pa.string()))


def _missing(text: pa.Array, profile: Profile) -> Mask:
    nulls = pa.array(profile.parse.null_values, pa.string())
    if not pa.types.is_string(text.type):
        return np.asarray(pc.is_null(text))
    return np.asarray(pc.fill_null(pc.or_(pc.is_null(text), pc.is_in(text, nulls)), True))


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
        sub = text.take(pa.array(todo)) if todo.size < n else text
        ts = pc.strptime(sub, format=fmt, unit="us", error_is_null=True)
        ok = ~np.asarray(pc.is_null(ts))
        vals = ts.cast(pa.int64()).fill_null(0).to_numpy()
        out[todo[ok]] = vals[ok]
        parsed[todo[ok]] = True
        if "%H" in fmt:
            has_time[todo[ok]] = True
    return out, parsed, has_time


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
    text = _text(date_col)
    n = len(text)
    _reject(codes, _missing(text, profile), Reason.MISSING_DATE)
    if pa.types.is_timestamp(text.type) or pa.types.is_date(text.type):
        local = pc.cast(pc.cast(text, pa.timestamp("us")), pa.int64()).fill_null(0).to_numpy()
        parsed = ~np.asarray(pc.is_null(text))
        has_time = np.full(n, pa.types.is_timestamp(text.type))
    else:
        local, parsed, has_time = _strptime_any(text, parse.date_format)
    _reject(codes, ~parsed, Reason.MALFORMED_DATE)
    local = np.asarray(local, dtype=np.int64)
    time_of_day_from_date = local % US_PER_DAY
    day_us = local - time_of_day_from_date

    imputed = ~has_time.copy()
    from_date = np.zeros(n, dtype=bool)
    if time_col is not None:
        ttext = _text(time_col)
        tmissing = _missing(ttext, profile)
        prefixed = pc.binary_join_element_wise(
            pa.scalar("2000-01-01 "), pc.cast(ttext, pa.string()), ""
        )
        tod, tparsed, _ = _strptime_any(prefixed, [f"%Y-%m-%d {f}" for f in parse.time_format])
        tod = tod - 946_684_800_000_000  # 2000-01-01 in µs
        extra = np.asarray(
            pc.fill_null(pc.match_substring_regex(pc.cast(ttext, pa.string()), _EXTRA_FIELD_TIME), False)
        )
        # Time field present and valid: it must agree with a time in the date field.
        both = tparsed & has_time
        _reject(codes, both & (tod != time_of_day_from_date), Reason.AMBIGUOUS_TIME)
        use_time = tparsed & ~has_time
        # Time field like 06:30:00:00: fine only if it starts with the date field's time.
        bad_time = ~tmissing & ~tparsed
        if bad_time.any():
            head = pc.utf8_slice_codeunits(pc.cast(ttext, pa.string()), 0, 8)
            head_tod, head_ok, _ = _strptime_any(
                pc.binary_join_element_wise(pa.scalar("2000-01-01 "), head, ""),
                ["%Y-%m-%d %H:%M:%S"],
            )
            agree = head_ok & (head_tod - 946_684_800_000_000 == time_of_day_from_date)
            from_date = bad_time & extra & has_time & agree
            _reject(codes, bad_time & extra & ~from_date, Reason.AMBIGUOUS_TIME)
            _reject(codes, bad_time & ~extra, Reason.MALFORMED_TIME)
        local = np.where(use_time, day_us + tod, local)
        imputed = np.where(tparsed | has_time, False, True)
        imputed &= ~from_date
    if parse.filler_times:
        tod_final = local % US_PER_DAY
        fillers = np.array([_time_us(t) for t in parse.filler_times], dtype=np.int64)
        imputed |= np.isin(tod_final, fillers)

    tz = ZoneInfo(profile.timezone)
    today_local = now.astimezone(tz).replace(tzinfo=None)
    now_us = int((today_local - datetime(1970, 1, 1)).total_seconds() * 1_000_000)
    _reject(codes, local > now_us, Reason.FUTURE_DATE)
    if parse.start_date is not None:
        start_us = _date_us(parse.start_date)
        _reject(codes, local < start_us, Reason.BEFORE_SOURCE_START)

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
