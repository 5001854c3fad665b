"""Evaluating every subscription against a snapshot: once per subscription and period.

The period of a ``surge`` rule is the last complete month (or ISO week) of the data; the
counts it needs (the period, the same season in the three years before, the last two
years' totals) come from one query per group of subscriptions that share a layer,
interval and selection (store/aggregate.unit_series), or one per drawn area. An
``any_new`` rule's period is the snapshot: the records its new data files bring.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

import numpy as np

from alerts.book import Book, Outcome, Subscription
from alerts.model import judge, pooled_dispersion
from geo.emerging import emerging
from store.aggregate import Unit, new_records, timeseries, unit_names, unit_series
from store.engine import Cursor
from store.filters import Circle, Filters
from store.shapes import shape_of
from store.snapshot import Snapshot
from store.study_area import study_area

YEARS = 3  # of baseline


@dataclass(frozen=True)
class Period:
    """A complete month or ISO week of the data and what its verdict compares it with."""

    key: str  # "2024-05" or "2024-W20"
    start: date
    end: date
    baseline: list[date]  # the starts of the same season's periods in earlier years
    recent: tuple[date, date]  # the year before the period
    earlier: tuple[date, date]  # the year before that


def _month(day: date, shift: int) -> date:
    k = day.year * 12 + day.month - 1 + shift
    return date(k // 12, k % 12 + 1, 1)


def last_period(last_day: date, interval: str) -> Period:
    """The last complete month (or ISO week) on or before ``last_day``."""
    if interval == "week":
        sunday = last_day - timedelta(days=(last_day.isoweekday() % 7))
        start = sunday - timedelta(days=6)
        year, week, _ = start.isocalendar()
        step = timedelta(days=7)
        base = [
            start - timedelta(weeks=52 * y) + k * step
            for y in range(1, YEARS + 1)
            for k in (-1, 0, 1)
        ]
        recent = (start - timedelta(weeks=52), start)
        earlier = (start - timedelta(weeks=104), start - timedelta(weeks=52))
        return Period(f"{year}-W{week:02d}", start, start + step, base, recent, earlier)
    following = _month(last_day + timedelta(days=1), 0)
    start = _month(following, -1) if following > last_day else _month(last_day, -1)
    base = [_month(start, -12 * y + k) for y in range(1, YEARS + 1) for k in (-1, 0, 1)]
    recent = (_month(start, -12), start)
    earlier = (_month(start, -24), _month(start, -12))
    return Period(start.strftime("%Y-%m"), start, _month(start, 1), base, recent, earlier)


COMPLETE_SHARE = 0.5  # of the median of the 12 months before


def published_until(snap: Snapshot, cursor: Cursor) -> date:
    """The last day of the data's last month published in full.

    Open files carry a few stragglers past their release (FGJ's 2019–2024 file holds 2
    records of January 2025 beside 13,620 of December 2024): the last month counts only if
    it holds at least half of the median of the 12 months before it; otherwise the month
    before is the last.
    """
    table = timeseries(snap, "month", Filters(), None, None, cursor)
    months = table.column("period").to_pylist()
    counts = table.column("count").to_pylist()
    last = max(date.fromisoformat(f.max_date) for f in snap.manifest.files)
    while len(counts) > 1:
        before = counts[-13:-1]
        if counts[-1] >= COMPLETE_SHARE * float(np.median(before)):
            break
        last = months[-1] - timedelta(days=1)
        months, counts = months[:-1], counts[:-1]
    return last


Released = Callable[[Subscription, list[date]], dict[date, int | None]]
"""A public subscription's published monthly counts (None: withheld) for these months."""


@dataclass(frozen=True)
class Release:
    """What public subscriptions are evaluated on: the release's cells, up to its cutoff."""

    counts: Released
    until: date  # the first day not published


def evaluate(
    book: Book,
    snap: Snapshot,
    cursor: Cursor,
    base_url: str = "",
    release: Release | None = None,
) -> list[str]:
    """Evaluate every active subscription not yet evaluated for its period; new alert ids.

    Public subscriptions need ``release`` (the published cells); without it they wait.
    """
    subs = book.subscriptions()
    if not subs or not snap.manifest.files:
        return []
    first = min(date.fromisoformat(f.min_date) for f in snap.manifest.files)
    last = published_until(snap, cursor)
    periods = {i: last_period(last, i) for i in ("month", "week")}
    # The release's last month that the data also hold in full.
    shown = min(release.until - timedelta(days=1), last) if release else None
    released = last_period(shown, "month") if shown is not None else None
    keys = {s.id: _key(s, snap, periods, released) for s in subs}
    done = book.evaluated([(s.id, k) for s in subs if (k := keys[s.id]) is not None])
    todo = [s for s in subs if keys[s.id] is not None and (s.id, keys[s.id]) not in done]
    outcomes: list[Outcome] = []
    groups: dict[tuple[Any, ...], list[Subscription]] = defaultdict(list)
    hot: dict[tuple[Any, ...], list[Subscription]] = defaultdict(list)
    for s in todo:
        if s.public and release is not None and released is not None:
            outcomes.append(_public(snap, s, released, release.counts, base_url))
        elif s.rule == "any_new":
            outcomes.append(_any_new(snap, s, f"snapshot-{snap.id}", cursor, base_url))
        elif s.rule == "hotspot":
            hot[(s.place["unit"], s.categories, s.offenses, s.sources)].append(s)
        elif "unit" in s.place:
            groups[(s.place["unit"], s.interval, s.categories, s.offenses, s.sources)].append(s)
        else:
            outcomes.append(_drawn(snap, s, periods[s.interval], first, cursor, base_url))
    for (layer, interval, *_), members in groups.items():
        outcomes.extend(_units(snap, layer, members, periods[interval], first, cursor, base_url))
    for (layer, *_), members in hot.items():
        outcomes.extend(_hot_spots(snap, layer, members, periods["month"], cursor, base_url))
    return book.record(outcomes, snap.id)


def _key(
    s: Subscription, snap: Snapshot, periods: dict[str, Period], released: Period | None
) -> str | None:
    """The period a subscription is evaluated for now (None: a public one without a release)."""
    if s.public:
        return released.key if released is not None else None
    if s.rule == "any_new":
        return f"snapshot-{snap.id}"
    return periods[s.interval].key


def _public(snap: Snapshot, s: Subscription, p: Period, counts: Released, base_url: str) -> Outcome:
    """The surge rule on published cells only.

    A withheld month of the baseline is unknown; a withheld month itself has no verdict
    (it is never published later).
    """
    window = sorted({*p.baseline, p.start, *_months(p.earlier[0], p.recent[1])})
    shown = counts(s, window)

    def total(lo: date, hi: date) -> int | None:
        values = [shown.get(m) for m in window if lo <= m < hi]
        return None if any(v is None for v in values) else sum(v for v in values if v is not None)

    observed = shown.get(p.start)
    if observed is None:
        return Outcome(s, p.key, False, None)
    base = [float(v) if (v := shown.get(m)) is not None else np.nan for m in p.baseline]
    recent, earlier = total(*p.recent), total(*p.earlier)
    if recent is None or earlier is None:
        recent = earlier = 0  # a withheld month: no trend, rather than a guessed one
    name = _name(snap, s.place)
    return _verdicts([s], [(float(observed), base, recent, earlier)], p, snap, base_url, [name])[0]


def _months(lo: date, hi: date) -> list[date]:
    out, day = [], lo
    while day < hi:
        out.append(day)
        day = _month(day, 1)
    return out


def _selection(s: Subscription, start: date | None = None, end: date | None = None) -> Filters:
    return Filters(
        start=start, end=end, categories=s.categories, offenses=s.offenses, sources=s.sources
    )


Counts = tuple[float, list[float], int, int]


def _counts_of(series: dict[date, int], p: Period, first: date) -> Counts:
    """The period's count, its baseline (NaN before the data), the two years' totals."""
    base = [float(series.get(d, 0)) if d >= first else np.nan for d in p.baseline]
    recent = sum(n for d, n in series.items() if p.recent[0] <= d < p.recent[1])
    earlier = sum(n for d, n in series.items() if p.earlier[0] <= d < p.earlier[1])
    return float(series.get(p.start, 0)), base, recent, earlier


def _units(
    snap: Snapshot,
    layer: str,
    subs: list[Subscription],
    p: Period,
    first: date,
    cursor: Cursor,
    base_url: str,
) -> list[Outcome]:
    """Surge verdicts of the subscriptions to units of one layer, from one query."""
    unit = Unit("layer", layer=layer)
    s0 = subs[0]
    since = min([*p.baseline, p.earlier[0]])
    got = unit_series(snap, unit, s0.interval, _selection(s0, since, p.end), cursor)
    by_unit: dict[str, dict[date, int]] = defaultdict(dict)
    for uid, at, n in zip(got.unit_ids, got.period_index, got.counts, strict=True):
        by_unit[uid][got.periods[at]] = n
    rows = [_counts_of(by_unit.get(s.place["id"], {}), p, first) for s in subs]
    every = [_counts_of(series, p, first)[1] for series in by_unit.values()]
    floor = pooled_dispersion(np.array(every, dtype=np.float64)) if every else 1.0
    layer_names = unit_names(snap, unit)  # a dict of the layer's names: built once
    names = [layer_names.get(s.place["id"]) for s in subs]
    return _verdicts(subs, rows, p, snap, base_url, names, floor)


HOT_MONTHS = 24  # the emerging hot spot analysis behind the hotspot rule
BECOMING = ("new_hot", "intensifying_hot")


def _hot_spots(
    snap: Snapshot,
    layer: str,
    subs: list[Subscription],
    p: Period,
    cursor: Cursor,
    base_url: str,
) -> list[Outcome]:
    """An alert where a subscribed unit is a new or an intensifying hot spot.

    The emerging hot spot categories of the layer's units over the 24 months to the period
    (space-time Gi* and Mann-Kendall, as /v1/hotspots/emerging computes them).
    """
    unit = Unit("layer", layer=layer)
    s0 = subs[0]
    since = _month(p.start, 1 - HOT_MONTHS)
    series = unit_series(snap, unit, "month", _selection(s0, since, p.end), cursor)
    sa = study_area(snap, unit, None)
    steps = len(series.periods)
    cube = sa.cube(series.unit_ids, series.period_index, series.counts, steps)
    labels = emerging(cube, sa.weights).labels if steps >= 4 else None
    names = unit_names(snap, unit)
    out = []
    for s in subs:
        at = sa.position.get(s.place["id"])
        label = str(labels[at]) if labels is not None and at is not None else "no_pattern"
        body = None
        if label in BECOMING:
            body = _body(s, p.key, snap, names.get(s.place["id"]), base_url, (since, p.end))
            body["category"] = label
        out.append(Outcome(s, p.key, body is not None, body))
    return out


def _drawn(
    snap: Snapshot, s: Subscription, p: Period, first: date, cursor: Cursor, base_url: str
) -> Outcome:
    """A surge verdict for a circle or polygon (its own query)."""
    since = min([*p.baseline, p.earlier[0]])
    flt = _area(_selection(s, since, p.end), s.place)
    table = timeseries(snap, s.interval, flt, None, None, cursor)
    periods, counts = table.column("period").to_pylist(), table.column("count").to_pylist()
    series = dict(zip(periods, counts, strict=True))
    return _verdicts([s], [_counts_of(series, p, first)], p, snap, base_url, [None])[0]


def _area(flt: Filters, place: dict[str, Any]) -> Filters:
    """The selection in the subscription's place."""
    if "circle" in place:
        return replace(flt, circle=Circle(*place["circle"]))
    if "polygon" in place:
        return replace(flt, shape=shape_of(place["polygon"]))
    return replace(flt, within=(place["unit"], place["id"]))


def _verdicts(
    subs: list[Subscription],
    rows: list[Counts],
    p: Period,
    snap: Snapshot,
    base_url: str,
    names: list[str | None],
    floor: float = 1.0,
) -> list[Outcome]:
    """The model's verdict for every subscription at once (one vectorised call)."""
    if not subs:
        return []
    observed = np.array([r[0] for r in rows])
    v = judge(
        observed,
        np.array([r[1] for r in rows], dtype=np.float64),
        np.array([r[2] for r in rows]),
        np.array([r[3] for r in rows]),
        alpha=np.array([s.alpha for s in subs]),
        dispersion_floor=floor,
    )
    out = []
    for i, s in enumerate(subs):
        body = None
        if v.alert[i]:
            body = _body(s, p.key, snap, names[i], base_url, (p.start, p.end))
            body["observed"] = int(observed[i])
            body["expected"] = round(float(v.expected[i]), 2)
            body["p"] = float(v.p[i])
            body["alpha"] = s.alpha
        out.append(Outcome(s, p.key, bool(v.alert[i]), body))
    return out


def _any_new(snap: Snapshot, s: Subscription, key: str, cursor: Cursor, base_url: str) -> Outcome:
    """Whether the snapshot's new data files hold a record of the selection in the place."""
    n = new_records(snap, _area(_selection(s), s.place), cursor)
    body = None
    if n:
        body = _body(s, key, snap, _name(snap, s.place), base_url, None)
        body["new_records"] = n
    return Outcome(s, key, n > 0, body)


def _name(snap: Snapshot, place: dict[str, Any]) -> str | None:
    if "unit" not in place:
        return None
    return unit_names(snap, Unit("layer", layer=place["unit"])).get(place["id"])


def _body(
    s: Subscription,
    key: str,
    snap: Snapshot,
    name: str | None,
    base_url: str,
    span: tuple[date, date] | None,
) -> dict[str, Any]:
    """What an alert says: subscription, place, selection, period, snapshot, a map link."""
    link: list[tuple[str, str]] = []
    if span is not None:
        link += [("start", span[0].isoformat()), ("end", span[1].isoformat())]
    place = dict(s.place)
    if "unit" in place:
        link.append(("within", f"{place['unit']}:{place['id']}"))
        place["name"] = name
    link += [("category", c) for c in s.categories] + [("offense", o) for o in s.offenses]
    return {
        "subscription": s.id,
        "rule": s.rule,
        "period": key,
        "snapshot": snap.id,
        "place": place,
        "categories": list(s.categories),
        "offenses": list(s.offenses),
        "map": f"{base_url.rstrip('/')}/map?{urlencode(link)}",
    }
