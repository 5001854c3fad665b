"""What the public sees of a change between two snapshots: two releases, side by side.

A public caller never sees records move; it sees the release cells each snapshot
publishes for one period and offense set (the same cells ``/v1/aggregate`` answers with
``as_of``), and the difference of the cells both publish. A cell withheld on either side
is counted, not shown. Since a published month is read from the store as it stood on its
publication day (docs/privacy.md, "Revisions"), the cells of a month both snapshots
publish are equal: a revision reaches the public only through months published later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from disclosure.rules import PublicRules
from publication.figures import PublicView, public_view, published_counts
from store.aggregate import Unit, unit_names
from store.engine import Cursor
from store.filters import Filters
from store.snapshot import Snapshot


@dataclass(frozen=True)
class ReleasedDiff:
    """The published cells of one period in two snapshots."""

    view: PublicView
    rows: list[dict[str, Any]]  # unit_id, name, before, after, net: cells that differ
    unchanged: int  # cells both publish with the same value
    withheld: int  # cells published by one snapshot only (withheld in the other)
    totals: tuple[int | None, int | None]  # the whole area's published count, each side


def released_diff(
    before: Snapshot,
    after: Snapshot,
    unit: Unit,
    flt: Filters,
    rules: PublicRules,
    cursor: Cursor,
) -> ReleasedDiff:
    """The release cells of ``flt``'s period (``after``'s default without one) on both sides."""
    view = public_view(after, rules, flt, unit)
    earlier = public_view(before, rules, flt, unit, period=view.period)
    counts = []
    for snap, side in ((before, earlier), (after, view)):
        shown = published_counts(snap, unit, side.filters, side, rules, cursor)
        ids = shown.table.column("unit_id").to_pylist()
        values = shown.table.column("count").to_pylist()
        counts.append((dict(zip(ids, values, strict=True)), shown.total))
    (old, old_total), (new, new_total) = counts
    names = unit_names(after, unit)
    both = sorted(set(old) & set(new))
    rows = [
        {"unit_id": u, "name": names.get(u), "before": old[u], "after": new[u]}
        for u in both
        if new[u] != old[u]
    ]
    for row in rows:
        row["net"] = row["after"] - row["before"]
    rows.sort(key=lambda r: (-abs(r["net"]), r["unit_id"]))
    return ReleasedDiff(
        view,
        rows,
        unchanged=len(both) - len(rows),
        withheld=len(set(old) ^ set(new)),
        totals=(old_total, new_total),
    )
