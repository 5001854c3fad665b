"""The published table of one unit family and year: every cell, and whether it is withheld.

Public figures are cells of one lattice, never the answer to an ad hoc query:

- **periods**: a calendar year, its quarters and its months (only whole ones published);
- **crime**: the offense forest (:mod:`disclosure.offenses`);
- **units**: every unit of a family (a boundary layer, the streets, H3 cells of every
  public resolution, or the whole area) and the count outside every unit.

Which cells are withheld is decided once per table over every relation of the lattice, a
first pass of threshold and complementary suppression (:mod:`disclosure.suppression`)
and then the attacker's audit (:mod:`disclosure.audit`), which withholds more until every
withheld cell with a case keeps its whole range ``[0, k-1]``. A request only picks cells
out of the table, so two public responses differ only by published cells.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from disclosure.audit import Audit, Relations, audit
from disclosure.offenses import Forest
from disclosure.periods import MONTHS, N_PERIODS, QUARTERS, YEAR
from disclosure.rules import PublicRules
from disclosure.suppression import suppress_members
from geo.arrays import group_sum
from geo.cells import cells_are_pentagons, cells_resolution, cells_to_hex, cells_to_parents

TOTAL = "total"  # the family of the whole area: one unit
H3 = "h3"
H3_MIN = 5
_UNBOUNDED = 1_000_000  # unlisted members of a group with no fixed size (H3 cells)

Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Counts:
    """Incidents per (unit, month, offense) of one family and year: the release's input.

    ``units`` holds H3 cells (uint64, at the finest public resolution) for the H3 family,
    unit ids (None outside every unit) for the others, one empty id for the whole area.
    """

    units: npt.NDArray[np.uint64] | list[str | None]
    month: Ints  # 1..12
    offense: Ints  # positions in offense_names
    offense_names: list[str]
    count: Ints


@dataclass(frozen=True)
class Family:
    """What the table needs to know of a unit family."""

    name: str  # TOTAL, H3, or a layer's name
    size: int | None  # units of the family (None: unbounded, H3)
    coarse: bool  # whether sensitive offenses may be shown on its units (H3: by resolution)
    parent: Nesting | None = None  # the layer this one nests in (colonias in alcaldías)


@dataclass(frozen=True)
class Nesting:
    """A coarser layer whose every unit is exactly a set of this layer's units."""

    table: PublishedTable  # the coarser layer's published table, audited first
    of: dict[str, str]  # each unit's parent unit


@dataclass(frozen=True)
class PublishedTable:
    """Every cell of a family and year, sorted by (period, node, resolution, unit).

    ``slices`` maps each (period, node, resolution) to its range of cells.
    """

    ids: list[str | None]  # by unit code; None for the count outside every unit
    unit: npt.NDArray[np.int32]
    period: npt.NDArray[np.int8]
    node: npt.NDArray[np.int16]
    value: npt.NDArray[np.int32]
    hidden: npt.NDArray[np.bool_]
    units: int | None  # units of the family (None: unbounded)
    slices: dict[tuple[int, int, int], tuple[int, int]]
    checked: Audit | None = None  # the audit's outcome (bounds kept for the whole area only)
    names: npt.NDArray[np.object_] = field(init=False, repr=False)
    codes: dict[str, int] = field(init=False, repr=False)
    outside: int = field(init=False)

    def __post_init__(self) -> None:
        names = np.empty(len(self.ids), dtype=object)
        names[:] = self.ids
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "codes", {u: i for i, u in enumerate(self.ids) if u is not None})
        object.__setattr__(self, "outside", self.ids.index(None) if None in self.ids else -1)

    def cells(self, period: int, node: int, res: int = 0) -> range:
        """Positions of the cells of one period, node and resolution."""
        lo, hi = self.slices.get((period, node, res), (0, 0))
        return range(lo, hi)

    def shown(
        self, period: int, node: int, res: int = 0
    ) -> tuple[list[str], npt.NDArray[np.int32], bool, int | None]:
        """Published unit ids and counts, whether anything was withheld, and the outside count."""
        span = self.cells(period, node, res)
        unit = self.unit[span.start : span.stop]
        value = self.value[span.start : span.stop]
        hidden = self.hidden[span.start : span.stop]
        inside = unit != self.outside
        keep = inside & ~hidden
        outside: int | None = None
        at = np.flatnonzero(~inside)
        if at.size and not hidden[at[0]]:
            outside = int(value[at[0]])
        listed = int(inside.sum())
        withheld = bool(hidden.any()) or self.units is None or listed < self.units
        return self.names[unit[keep]].tolist(), value[keep], withheld, outside

    def position(self, unit_id: str | None, period: int, node: int, res: int = 0) -> int:
        """The position of one cell (-1: not in the table, a zero)."""
        span = self.cells(period, node, res)
        code = self.outside if unit_id is None else self.codes.get(unit_id, -2)
        at = np.flatnonzero(self.unit[span.start : span.stop] == code)
        return span.start + int(at[0]) if at.size else -1

    def value_of(self, unit_id: str | None, period: int, node: int, res: int = 0) -> int | None:
        """The published count of one cell (None: withheld, or zero)."""
        at = self.position(unit_id, period, node, res)
        if at < 0 or self.hidden[at]:
            return None
        return int(self.value[at])

    @property
    def nbytes(self) -> int:
        """Memory held by the table's arrays (for the cache's size)."""
        arrays = (self.unit, self.period, self.node, self.value, self.hidden)
        return sum(a.nbytes for a in arrays) + 64 * len(self.ids)


def build_table(
    counts: Counts,
    tree: Forest,
    rules: PublicRules,
    family: Family,
    months: int = 12,
    whole: PublishedTable | None = None,
) -> PublishedTable:
    """Count, expand, suppress and audit the cells of one family and year.

    ``months`` is how many months of the year are published (the current year's first
    ones); quarters and the year appear only once whole. ``whole`` is the whole area's
    table of the same year, whose published (or audited) counts tie each family's units.
    """
    lookup = np.array([tree.index["o:" + o] for o in counts.offense_names], dtype=np.int64)
    month = np.asarray(counts.month, dtype=np.int64)
    count = np.asarray(counts.count, dtype=np.int64)
    published = month <= months
    ids, res_of, unit0, up_unit = _units(family.name, counts.units, rules)
    offense = lookup[counts.offense[published]] if lookup.size else counts.offense[:0]
    unit0, month, count = unit0[published], month[published], count[published]
    unit, period, node, value = expand(unit0, MONTHS + month - 1, offense, count, up_unit, tree)
    whole_period = np.ones(N_PERIODS, dtype=bool)
    whole_period[QUARTERS : QUARTERS + 4] = np.arange(1, 5) * 3 <= months
    whole_period[YEAR] = months >= 12
    coarse = (
        np.asarray(res_of <= rules.coarse_h3)
        if family.name == H3
        else np.full(res_of.size, family.coarse)
    )
    keep = whole_period[period] & (coarse[unit] | ~tree.sensitive[node])
    unit, period, node, value = unit[keep], period[keep], node[keep], value[keep]
    res = res_of[unit]
    order = np.lexsort((unit, res, node, period))
    unit, node, period, value, res = (
        unit[order],
        node[order],
        period[order],
        value[order],
        res[order],
    )
    ks = np.where(tree.sensitive[node], rules.k_sensitive, rules.k).astype(np.int64)
    relations = _relations(unit, period, node, res, ids, family, tree, up_unit)
    plus = relations.coef > 0
    first = suppress_members(value, ks, relations.rel[plus], relations.cell[plus], relations.slack)
    k_of_node = np.where(tree.sensitive, rules.k_sensitive, rules.k).astype(np.int64)
    checked = _audit(value, ks, first, relations, k_of_node, len(tree.names), whole, family.parent)
    slices = _slices(period, node, res)
    n = unit.size
    # Bounds are kept where other tables sum to these cells (all but H3's, the largest).
    kept = (
        checked
        if family.name != H3
        else Audit(
            checked.hidden[:0],
            checked.lo[:0],
            checked.hi[:0],
            checked.rounds,
            checked.covers,
            checked.unresolved,
            checked.first_provable,
        )
    )
    # Compact types: a table of H3 cells over a year of Mexico City holds ~1.4 M cells.
    return PublishedTable(
        ids=ids,
        unit=unit.astype(np.int32),
        period=period.astype(np.int8),
        node=node.astype(np.int16),
        value=value.astype(np.int32),
        hidden=checked.hidden[:n].copy(),
        units=family.size,
        slices=slices,
        checked=kept,
    )


def _slices(period: Ints, node: Ints, res: Ints) -> dict[tuple[int, int, int], tuple[int, int]]:
    """Where each (period, node, resolution) run starts and stops in the sorted cells."""
    slices: dict[tuple[int, int, int], tuple[int, int]] = {}
    if period.size:
        trio = np.stack([period, node, res], axis=1)
        bounds = np.flatnonzero((trio[1:] != trio[:-1]).any(axis=1)) + 1
        starts = np.concatenate([[0], bounds])
        stops = np.concatenate([bounds, [period.size]])
        for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
            slices[(int(period[a]), int(node[a]), int(res[a]))] = (a, b)
    return slices


def _audit(
    value: Ints,
    ks: Ints,
    first: npt.NDArray[np.bool_],
    relations: Relations,
    k_of_node: Ints,
    n_nodes: int,
    whole: PublishedTable | None,
    parent: Nesting | None,
) -> Audit:
    """The audit over this table's cells and, fixed, the cells of other tables they sum to.

    External cells (numbered from ``len(value)``) are the whole area's count of each
    (period, node) and, for a nested layer, its parent unit's; each as its own table
    publishes or bounds it. A withheld one below k is protected here too.
    """
    n = value.size
    ext = relations.cell >= n
    if not ext.any():
        return audit(value, ks, first, relations)
    keys = relations.cell[ext] - n
    distinct, inverse = np.unique(keys, return_inverse=True)
    cell = relations.cell.copy()
    cell[ext] = n + inverse
    m = distinct.size
    e_val = np.zeros(m, dtype=np.int64)
    e_lo = np.full(m, np.nan)
    e_hi = np.full(m, np.nan)
    e_hidden = np.zeros(m, dtype=bool)
    e_k = np.zeros(m, dtype=np.int64)
    block = N_PERIODS * n_nodes
    for i, key in enumerate(distinct.tolist()):
        if key < block:
            table, unit_id = whole, ""
        else:
            assert parent is not None
            table, unit_id = parent.table, parent.table.ids[(key - block) // block]
        assert table is not None, "a family's table needs the whole area's"
        rest = key % block
        e_k[i] = k_of_node[rest % n_nodes]
        at = table.position(unit_id, rest // n_nodes, rest % n_nodes)
        if at < 0:  # not in the table: a zero
            e_lo[i] = e_hi[i] = 0.0
            continue
        e_val[i] = int(table.value[at])
        e_hidden[i] = bool(table.hidden[at])
        if table.checked is not None and table.checked.lo.size:
            e_lo[i], e_hi[i] = table.checked.lo[at], table.checked.hi[at]
        elif not e_hidden[i]:
            e_lo[i] = e_hi[i] = float(e_val[i])
    values = np.concatenate([value, e_val])
    lo = np.concatenate([np.full(n, np.nan), e_lo])
    hi = np.concatenate([np.full(n, np.nan), e_hi])
    hid = np.concatenate([first, e_hidden])
    fixed = np.concatenate([np.zeros(n, dtype=bool), np.ones(m, dtype=bool)])
    rel = Relations(relations.rel, cell, relations.coef, relations.slack)
    return audit(values, np.concatenate([ks, e_k]), hid, rel, lo, hi, fixed)


def _units(
    fam: str, units: npt.NDArray[np.uint64] | list[str | None], rules: PublicRules
) -> tuple[list[str | None], Ints, Ints, Ints]:
    """Unit ids by code, each code's H3 resolution, each count's unit code, each code's parent.

    H3 codes cover the finest public resolution and every parent down to 5 (parent -1 at
    5); other families have one level (parents all -1).
    """
    if fam == H3:
        fine = np.asarray(units, dtype=np.uint64)
        levels = [fine] + [
            cells_to_parents(fine, r) for r in range(rules.finest_h3 - 1, H3_MIN - 1, -1)
        ]
        distinct = np.unique(np.concatenate(levels)) if fine.size else np.zeros(0, np.uint64)
        hexes: list[str | None] = list(cells_to_hex(distinct))
        res_of = cells_resolution(distinct).astype(np.int64)
        up = np.full(distinct.size, -1, dtype=np.int64)
        for r in range(H3_MIN + 1, rules.finest_h3 + 1):
            at = np.flatnonzero(res_of == r)
            up[at] = np.searchsorted(distinct, cells_to_parents(distinct[at], r - 1))
        return hexes, res_of, np.searchsorted(distinct, fine).astype(np.int64), up
    listed = list(units)
    if fam == TOTAL:
        return [""], np.zeros(1, np.int64), np.zeros(len(listed), np.int64), np.full(1, -1)
    names: list[str | None] = sorted({u for u in listed if u is not None})
    index = {u: i for i, u in enumerate(names)}
    names.append(None)
    outside = len(names) - 1
    codes = np.array([index[u] if u is not None else outside for u in listed], dtype=np.int64)
    n = len(names)
    return names, np.zeros(n, np.int64), codes, np.full(n, -1, np.int64)


def expand(
    unit: Ints, period: Ints, node: Ints, count: Ints, up_unit: Ints, tree: Forest
) -> tuple[Ints, Ints, Ints, Ints]:
    """Every cell the counts (unit, month, offense) add to, with its count.

    One dimension at a time, each level summed from the one below it (offenses to
    categories to ``*``; months to quarters to the year; H3 cells to their parents), so
    each step sorts no more than the cells it starts from.
    """
    n_nodes = len(tree.names)
    up_node = tree.parent
    cells = [_sum(unit, period, node, count, n_nodes)]
    for _ in range(2):  # offense -> category -> *
        u, p, n, c = cells[-1]
        has = up_node[n] >= 0
        cells.append(_sum(u[has], p[has], up_node[n[has]], c[has], n_nodes))
    u, p, n, c = (np.concatenate(x) for x in zip(*cells, strict=True))
    quarter = _sum(u, QUARTERS + (p - MONTHS) // 3, n, c, n_nodes)
    year = _sum(quarter[0], np.full(quarter[0].size, YEAR), quarter[2], quarter[3], n_nodes)
    levels = [(u, p, n, c), quarter, year]
    u, p, n, c = (np.concatenate(x) for x in zip(*levels, strict=True))
    spaced: list[tuple[Ints, Ints, Ints, Ints]] = [(u, p, n, c)]
    while True:
        u, p, n, c = spaced[-1]
        has = up_unit[u] >= 0
        if not has.any():
            break
        spaced.append(_sum(up_unit[u[has]], p[has], n[has], c[has], n_nodes))
    u, p, n, c = (np.concatenate(x) for x in zip(*spaced, strict=True))
    return u, p, n, c


def _sum(
    unit: Ints, period: Ints, node: Ints, count: Ints, n_nodes: int
) -> tuple[Ints, Ints, Ints, Ints]:
    """Counts summed per (unit, period, node)."""
    keys, total = group_sum((unit * N_PERIODS + period) * n_nodes + node, count)
    node_of = keys % n_nodes
    rest = keys // n_nodes
    return rest // N_PERIODS, rest % N_PERIODS, node_of, total


def _relations(
    unit: Ints,
    period: Ints,
    node: Ints,
    res: Ints,
    ids: list[str | None],
    family: Family,
    tree: Forest,
    up_unit: Ints,
) -> Relations:
    """Every sum of the table a reader knows, as signed members (parts +1, their sum -1).

    A family's units and the outside count sum to the whole area's count, an external
    cell numbered ``len(unit) + period * nodes + node``; H3 children sum to their parent;
    months to their quarter, quarters to their year; offenses to their category, and
    categories to ``*``. Relations whose sum cell is not in the table (a quarter not yet
    whole) are left out.
    """
    n = unit.size
    n_nodes = len(tree.names)
    key = (unit * N_PERIODS + period) * n_nodes + node
    order = np.argsort(key)
    sorted_key = key[order]

    def find(k: Ints) -> Ints:
        at = np.searchsorted(sorted_key, k)
        at = np.minimum(at, max(n - 1, 0))
        hit = (sorted_key[at] == k) if n else np.zeros(k.size, dtype=bool)
        return np.where(hit, order[at] if n else -1, -1)

    rels: list[tuple[Ints, Ints, Ints, Ints]] = []  # (group key, part cells, sum cell, size)
    cells = np.arange(n, dtype=np.int64)
    if family.name != TOTAL:
        outside = np.array([i is None for i in ids] + [False])[unit]
        size = family.size if family.size is not None else _UNBOUNDED
        group = (period * n_nodes + node) * 16 + res
        total_cell = n + period * n_nodes + node
        rels.append(_group(group, cells, total_cell, np.full(n, size), ~outside))
    if family.name == H3:
        parent = up_unit[unit]
        finer = parent >= 0
        if finer.any():
            full = np.where(
                cells_are_pentagons(np.array([int(i or "0", 16) for i in ids], dtype=np.uint64)),
                6,
                7,
            )
            sum_cell = find((parent[finer] * N_PERIODS + period[finer]) * n_nodes + node[finer])
            rels.append(_group(sum_cell, cells[finer], sum_cell, full[parent[finer]]))
    if family.parent is not None:
        rels.append(_nested(unit, period, node, ids, family.parent, n, n_nodes, cells))
    months = period >= MONTHS
    quarter = QUARTERS + (period[months] - MONTHS) // 3
    sum_cell = find((unit[months] * N_PERIODS + quarter) * n_nodes + node[months])
    rels.append(_group(sum_cell, cells[months], sum_cell, np.full(int(months.sum()), 3)))
    quarters = (period >= QUARTERS) & (period < MONTHS)
    sum_cell = find((unit[quarters] * N_PERIODS + YEAR) * n_nodes + node[quarters])
    rels.append(_group(sum_cell, cells[quarters], sum_cell, np.full(int(quarters.sum()), 4)))
    up = tree.parent[node]
    child = up >= 0
    sum_cell = find((unit[child] * N_PERIODS + period[child]) * n_nodes + up[child])
    rels.append(_group(sum_cell, cells[child], sum_cell, tree.children[up[child]]))
    return _combine(rels)


def _nested(
    unit: Ints,
    period: Ints,
    node: Ints,
    ids: list[str | None],
    nesting: Nesting,
    n: int,
    n_nodes: int,
    cells: Ints,
) -> tuple[Ints, Ints, Ints, Ints]:
    """A parent unit's count is its children's sum: the parent cell an external member."""
    codes = nesting.table.codes
    up = np.array(
        [codes.get(nesting.of.get(i, ""), -1) if i is not None else -1 for i in ids], dtype=np.int64
    )
    parent = up[unit]
    inside = parent >= 0
    block = N_PERIODS * n_nodes
    sums = n + block + (parent[inside] * N_PERIODS + period[inside]) * n_nodes + node[inside]
    children = np.bincount(
        np.array([codes[p] for p in nesting.of.values() if p in codes], dtype=np.int64),
        minlength=len(nesting.table.ids),
    )  # a parent's children known to hold records: fewer than it has, so a stronger reader
    return _group(sums, cells[inside], sums, children[parent[inside]])


def _group(
    group: Ints,
    parts: Ints,
    sum_cell: Ints,
    size: Ints,
    counted: npt.NDArray[np.bool_] | None = None,
) -> tuple[Ints, Ints, Ints, Ints]:
    """Relations keyed by ``group``: parts, sum cell, unlisted parts; no sum cell (-1), none."""
    keep = sum_cell >= 0
    group, parts, sum_cell, size = group[keep], parts[keep], sum_cell[keep], size[keep]
    counted = None if counted is None else counted[keep]
    return group, parts, sum_cell.astype(np.int64), _unlisted(group, size, counted)


def _unlisted(group: Ints, size: Ints, counted: npt.NDArray[np.bool_] | None) -> Ints:
    """Per member: its group's size less the members listed (every member carries it)."""
    distinct, inverse = np.unique(group, return_inverse=True)
    listed = np.bincount(
        inverse, weights=None if counted is None else counted, minlength=distinct.size
    )
    first = np.unique(inverse, return_index=True)[1]
    full = size[first] if size.size else np.zeros(0, np.int64)
    return np.maximum(full - listed, 0).astype(np.int64)[inverse]


def _combine(rels: list[tuple[Ints, Ints, Ints, Ints]]) -> Relations:
    """One numbering of the relations of every kind, with each one's sum cell as a member."""
    rel_parts, cell_parts, coef_parts, slack_parts = [], [], [], []
    offset = 0
    for group, parts, sums, unlisted in rels:
        if parts.size == 0:
            continue
        distinct, inverse = np.unique(group, return_inverse=True)
        first = np.unique(inverse, return_index=True)[1]
        rel = inverse.astype(np.int64) + offset
        rel_parts += [rel, np.arange(distinct.size, dtype=np.int64) + offset]
        cell_parts += [parts, sums[first]]
        coef_parts += [np.ones(parts.size, np.int64), -np.ones(distinct.size, np.int64)]
        slack_parts.append(unlisted[first])
        offset += distinct.size
    if not rel_parts:
        empty = np.zeros(0, np.int64)
        return Relations(empty, empty, empty, empty)
    return Relations(
        np.concatenate(rel_parts),
        np.concatenate(cell_parts),
        np.concatenate(coef_parts),
        np.concatenate(slack_parts),
    )
