"""What the public may see (SPEC §6): delays, sensitive offenses, k-thresholds, complements.

Pure functions over filters and counts; the routes apply them to every response made for a
request without a key. docs/privacy.md explains each rule and where it comes from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from api.settings import ServerSettings
from geo.cells import cells_to_parents, hex_to_cells
from store.aggregate import H3_MIN, Unit
from store.cubes import month_aligned
from store.filters import FilterError, Filters

Indices = npt.NDArray[np.intp]


@dataclass(frozen=True)
class PublicRules:
    """The thresholds and delays of public outputs (settings ``CUADRA_PRIVACY_*``)."""

    k: int = 5
    k_sensitive: int = 10
    delay_days: int = 7
    coarse_layers: tuple[str, ...] = ("colonia", "alcaldia")
    coarse_h3: int = 7

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> PublicRules:
        """The rules a server was configured with."""
        return cls(
            k=settings.privacy_k,
            k_sensitive=settings.privacy_k_sensitive,
            delay_days=settings.privacy_delay_days,
            coarse_layers=tuple(settings.privacy_coarse_layers),
            coarse_h3=settings.privacy_coarse_h3,
        )

    def coarse(self, unit: Unit | None) -> bool:
        """Whether sensitive offenses may be shown on this unit (None: the whole area)."""
        if unit is None:
            return True
        if unit.kind == "h3":
            assert unit.res is not None
            return unit.res <= self.coarse_h3
        return unit.kind == "layer" and unit.layer in self.coarse_layers


@dataclass(frozen=True)
class Publication:
    """The filters a public request is answered with, and its threshold."""

    filters: Filters
    k: int
    sensitive_excluded: bool
    published_until: date  # the first day not published

    def describe(self, suppressed: int) -> dict[str, Any]:
        """The ``privacy`` block of a public response."""
        return {
            "k": self.k,
            "suppressed": suppressed,
            "sensitive_excluded": self.sensitive_excluded,
            "published_until": self.published_until.isoformat(),
        }


def publication(
    flt: Filters, unit: Unit | None, rules: PublicRules, today: date, monthly: bool = True
) -> Publication:
    """Narrow a public request: recent days out; sensitive offenses only coarse and monthly.

    ``monthly`` says whether the response's own time grain allows sensitive offenses (a
    monthly time series, or counts over whole months).
    """
    cutoff = today - timedelta(days=rules.delay_days)
    end = min(flt.end, cutoff) if flt.end is not None else cutoff
    fine_time = (
        flt.hour_from is not None
        or bool(flt.weekdays)
        or not month_aligned(flt.start)
        or not month_aligned(flt.end)
        or not monthly
    )
    sensitive = flt.include_sensitive and rules.coarse(unit) and not fine_time
    if sensitive:
        # Sensitive offenses in whole months only: the delay may not cut a month in two.
        end = min(end, cutoff.replace(day=1))
    if flt.start is not None and flt.start >= end:
        raise FilterError(
            "start",
            flt.start.isoformat(),
            f"public figures end before {end.isoformat()} ({rules.delay_days}-day delay"
            f"{', whole months for sensitive offenses' if sensitive else ''})",
        )
    return Publication(
        filters=replace(flt, end=end, include_sensitive=sensitive),
        k=rules.k_sensitive if sensitive else rules.k,
        sensitive_excluded=flt.include_sensitive and not sensitive,
        published_until=end,
    )


def suppress(
    values: Sequence[int] | npt.NDArray[np.int64], k: int, groups: Sequence[Indices]
) -> npt.NDArray[np.bool_]:
    """Cells to hide: counts in ``(0, k)``, and complements so none can be recovered.

    Each group is a set of cells whose sum can be known (a published total, a parent
    cell, a year): within it, hidden cells are either none, or at least two whose sum is
    more than their number (so that no single hidden value is pinned down by
    subtraction). Where that fails, the smallest published non-zero cell of the group is
    hidden too, until every group holds.
    """
    v = np.asarray(values, dtype=np.int64)
    hidden = (v > 0) & (v < k)
    changed = True
    while changed:
        changed = False
        for group in groups:
            inside = group[hidden[group]]
            if inside.size == 0 or (inside.size >= 2 and int(v[inside].sum()) > inside.size):
                continue
            rest = group[~hidden[group] & (v[group] > 0)]
            if rest.size == 0:
                continue  # nothing of the group is published: there is nothing to subtract
            hidden[rest[np.argmin(v[rest])]] = True
            changed = True
    return hidden


def unit_groups(unit: Unit, ids: Sequence[str], with_outside: bool) -> list[Indices]:
    """Groups of an aggregate's cells whose sums are public elsewhere.

    All cells together (the total, or a coarser unit covering them), plus, for H3 cells,
    the children of each coarser cell down to resolution 5. ``with_outside`` adds one
    more cell at the end: the count outside every unit.
    """
    n = len(ids) + (1 if with_outside else 0)
    groups = [np.arange(n)]
    if unit.kind == "h3" and ids:
        assert unit.res is not None
        cells = hex_to_cells(list(ids))
        for res in range(H3_MIN, unit.res):
            groups.extend(_by_key(cells_to_parents(cells, res)))
    return groups


def period_groups(periods: Sequence[date], interval: str) -> list[Indices]:
    """Groups of a time series' periods whose sums are public elsewhere.

    The whole series; the calendar years of months; the months and ISO weeks of days.
    """
    groups = [np.arange(len(periods))]
    if interval in ("day", "month"):
        groups.extend(_by_key(np.array([p.year for p in periods])))
    if interval == "day":
        groups.extend(_by_key(np.array([p.year * 12 + p.month for p in periods])))
        # ISO weeks: day 1 of the proleptic calendar (0001-01-01) was a Monday.
        groups.extend(_by_key(np.array([(p.toordinal() - 1) // 7 for p in periods])))
    return groups


def _by_key(keys: npt.NDArray[Any]) -> list[Indices]:
    if keys.size == 0:
        return []
    order = np.argsort(keys, kind="stable")
    bounds = np.flatnonzero(keys[order][1:] != keys[order][:-1]) + 1
    return [g for g in np.split(order, bounds) if g.size > 1]
