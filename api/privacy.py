"""What the public may see (SPEC §6): delays, sensitive offenses, k-thresholds, complements.

Pure functions over filters and counts; the routes apply them to every response made for a
request without a key. docs/privacy.md explains each rule and where it comes from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

import h3
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

    def describe(self, withheld: bool) -> dict[str, Any]:
        """The ``privacy`` block of a public response."""
        return {
            "k": self.k,
            "withheld": withheld,
            "sensitive_excluded": self.sensitive_excluded,
            "published_until": self.published_until.isoformat(),
        }


def publication(
    flt: Filters,
    unit: Unit | None,
    rules: PublicRules,
    today: date,
    monthly: bool = True,
    sensitive_pairs: frozenset[tuple[str, str]] | None = None,
) -> Publication:
    """Narrow a public request: recent days out; sensitive offenses only coarse and monthly.

    ``monthly`` says whether the response's own time grain allows sensitive offenses (a
    monthly time series, or counts over whole months). ``sensitive_pairs``, the store's
    sensitive (offense, category) pairs, lets a request whose offense or category filters
    select none of them be answered with the ordinary threshold.
    """
    cutoff = today - timedelta(days=rules.delay_days)
    end = min(flt.end, cutoff) if flt.end is not None else cutoff
    selects = flt.include_sensitive and (
        sensitive_pairs is None or _selects_sensitive(flt, sensitive_pairs)
    )
    fine_time = (
        flt.hour_from is not None
        or bool(flt.weekdays)
        or not month_aligned(flt.start)
        or not month_aligned(flt.end)
        or not monthly
    )
    sensitive = selects and rules.coarse(unit) and not fine_time
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
        sensitive_excluded=selects and not sensitive,
        published_until=end,
    )


@dataclass(frozen=True)
class Group:
    """Cells whose sum can be known elsewhere (a total, a parent cell, a month).

    ``unlisted`` counts the units that belong to the group without being listed (units
    with no incident).
    """

    cells: Indices
    unlisted: int = 0


def _selects_sensitive(flt: Filters, pairs: frozenset[tuple[str, str]]) -> bool:
    """Whether the filters' offenses and categories can match a sensitive record."""
    return any(
        (not flt.offenses or offense in flt.offenses)
        and (not flt.categories or category in flt.categories)
        for offense, category in pairs
    )


def suppress(
    values: Sequence[int] | npt.NDArray[np.int64], k: int, groups: Sequence[Group]
) -> npt.NDArray[np.bool_]:
    """Cells to withhold: every count below ``k`` (zeros too), and complements.

    Withheld cells look alike whatever their count, zero included, so a reader knows of
    each only that it is in ``[0, k)``, unless it is a complement. In a group whose sum is
    public elsewhere, the withheld cells' sum R is known; they are pinned down when there
    is one of them (with R > 0), or when R reaches its maximum (every one at ``k - 1``).
    Then the smallest shown cell of the group is withheld too, until every group holds.
    """
    v = np.asarray(values, dtype=np.int64)
    hidden = v < k
    changed = True
    while changed:
        changed = False
        for group in groups:
            inside = group.cells[hidden[group.cells]]
            total = int(v[inside].sum())
            m = inside.size + group.unlisted
            complement = bool((v[inside] >= k).any())
            if total == 0 or (m >= 2 and (complement or total < m * (k - 1))):
                continue
            shown = group.cells[~hidden[group.cells] & (v[group.cells] > 0)]
            if shown.size == 0:
                continue  # nothing of the group is shown: nothing to subtract from its sum
            hidden[shown[np.argmin(v[shown])]] = True
            changed = True
    return hidden


def unit_groups(
    unit: Unit, ids: Sequence[str], units: int | None, with_outside: bool
) -> list[Group]:
    """Groups of an aggregate's cells whose sums are public elsewhere.

    All cells together (the total, or a coarser unit covering them), of a layer with
    ``units`` units (None: unbounded, as H3 cells are); for H3 cells also the descendants
    of each coarser cell down to resolution 5. ``with_outside`` adds one more cell at the
    end: the count outside every unit.
    """
    n = len(ids) + (1 if with_outside else 0)
    unlisted = max(units - len(ids), 0) if units is not None else _UNBOUNDED
    groups = [Group(np.arange(n), unlisted)]
    if unit.kind == "h3" and ids:
        assert unit.res is not None
        cells = hex_to_cells(list(ids))
        for res in range(H3_MIN, unit.res):
            parents = cells_to_parents(cells, res)
            for members in _by_key(parents, singles=True):
                size = h3.cell_to_children_size(h3.int_to_str(int(parents[members[0]])), unit.res)
                groups.append(Group(members, size - members.size))
    return groups


_UNBOUNDED = 1_000_000


def period_groups(periods: Sequence[date], interval: str) -> list[Group]:
    """Groups of a time series' periods whose sums are public elsewhere.

    The whole series; the calendar years of months; the months and ISO weeks of days.
    Every period is listed (zeros included), so no unit goes unlisted.
    """
    groups = [Group(np.arange(len(periods)))]
    keys: list[npt.NDArray[Any]] = []
    if interval in ("day", "month"):
        keys.append(np.array([p.year for p in periods]))
    if interval == "day":
        keys.append(np.array([p.year * 12 + p.month for p in periods]))
        # ISO weeks: day 1 of the proleptic calendar (0001-01-01) was a Monday.
        keys.append(np.array([(p.toordinal() - 1) // 7 for p in periods]))
    for key in keys:
        groups.extend(Group(g) for g in _by_key(key))
    return groups


def _by_key(keys: npt.NDArray[Any], singles: bool = False) -> list[Indices]:
    if keys.size == 0:
        return []
    order = np.argsort(keys, kind="stable")
    bounds = np.flatnonzero(keys[order][1:] != keys[order][:-1]) + 1
    return [g for g in np.split(order, bounds) if singles or g.size > 1]
