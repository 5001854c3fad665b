"""The public release as public alert subscriptions see it: published monthly cells only.

Alerts never import the publication layer (SPEC §1): the API composes it here, for the
server's evaluation after an ingest and for `cuadra alerts run`.
"""

from __future__ import annotations

from datetime import date

from alerts.book import Subscription
from alerts.evaluate import Release
from disclosure.periods import Period as ReleasePeriod
from disclosure.rules import PublicRules
from publication import tables
from publication.figures import public_view, series, today
from store.aggregate import Unit
from store.engine import Cursor
from store.filters import FilterError, Filters
from store.snapshot import Snapshot


def release_for(snap: Snapshot, rules: PublicRules, cursor: Cursor) -> Release:
    """The published monthly cells public subscriptions are judged on (None: withheld)."""
    until = tables.cutoff(rules, today())

    def counts(sub: Subscription, months: list[date]) -> dict[date, int | None]:
        shown = [m for m in months if m < until]
        if not shown:
            return {}
        unit = Unit("layer", layer=sub.place["unit"])
        family = tables.unit_family(unit)
        for year in sorted({m.year for m in shown}):
            tables.published_table(snap, family, year, rules, cursor, until, wait=True)
        chosen = Filters(categories=sub.categories, offenses=sub.offenses)
        try:
            view = public_view(snap, rules, chosen, unit, ReleasePeriod.month(shown[0]))
        except FilterError:  # an offense the release no longer names: nothing published
            return {}
        values = series(snap, view, rules, unit, sub.place["id"], shown, cursor)
        return dict(zip(shown, values, strict=True))

    return Release(counts, until)
