"""The public release: a fixed table of published counts per unit family and year (SPEC §6).

Public figures are cells of one lattice, never the answer to an ad hoc query:

- **periods**: a calendar year, its quarters and its months;
- **crime**: a forest of offense sets — ``*`` (every non-sensitive offense) over the
  categories' non-sensitive parts over non-sensitive offenses; each wholly sensitive
  category over its offenses; the sensitive offenses of mixed categories on their own;
- **units**: every unit of a family (a boundary layer, the streets, H3 cells of every
  public resolution, or the whole area) and the count outside every unit.

Which cells are withheld is decided once per (snapshot, family, year) over every relation
of the lattice — a family's units and the outside count sum to the whole area; H3 children
to their parent; months to their quarter and quarters to their year; offenses to their
category and categories to ``*`` — treating every such sum as known. A request only picks
cells out of the table, so no two public responses, however filtered, differ by anything
but published cells: withheld counts stay unrecoverable across queries, not just within one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

import duckdb
import h3
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from cachetools import LRUCache

from api.privacy import PublicRules, suppress_members
from store.aggregate import H3_MIN, Unit
from store.cubes import h3_parent
from store.filters import FilterError, Filters, quote
from store.query import offense_triples
from store.snapshots import Manifest

TOTAL = "total"  # the family of the whole area: one unit
ALL = "*"
YEAR, QUARTERS, MONTHS = 0, 1, 5  # period codes: 0 the year, 1..4 quarters, 5..16 months
N_PERIODS = 17
_UNBOUNDED = 1_000_000  # unlisted members of a group with no fixed size (H3 cells)

Ints = npt.NDArray[np.int64]


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
        return _add_months(self.start, months)

    @classmethod
    def month(cls, day: date) -> Period:
        """The month of a day."""
        return cls(day.year, MONTHS + day.month - 1)

    @classmethod
    def parse(cls, start: date, end: date) -> Period:
        """The period ``[start, end)`` names; FilterError unless it is exactly one."""
        if start.day == 1:
            if start.month == 1 and end == date(start.year + 1, 1, 1):
                return cls(start.year, YEAR)
            if start.month % 3 == 1 and end == _add_months(start, 3):
                return cls(start.year, QUARTERS + (start.month - 1) // 3)
            if end == _add_months(start, 1):
                return cls.month(start)
        raise FilterError(
            "end",
            end.isoformat(),
            f"public figures cover one calendar year, quarter or month (start {start} "
            "on its first day, end the day after its last); an API key opens any window",
        )


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Forest:
    """The offense sets of the public lattice, by node: ``*``, ``c:<category>``, ``o:<offense>``."""

    names: tuple[str, ...]
    parent: Ints  # -1 for a root
    sensitive: npt.NDArray[np.bool_]
    children: Ints
    index: dict[str, int]
    mixed: frozenset[str]  # categories with sensitive and other offenses
    category_of: dict[str, str]

    def node(self, flt: Filters) -> tuple[int, bool]:
        """The node a public request's offense filters name (-1: none).

        Also whether that leaves sensitive offenses out; FilterError for more than one
        value of either.
        """
        for name, values in (("offense", flt.offenses), ("category", flt.categories)):
            if len(values) > 1:
                raise FilterError(
                    name,
                    ", ".join(values),
                    f"public figures are per one {name}; an API key opens any set",
                )
        if flt.offenses:
            offense = flt.offenses[0]
            if flt.categories and self.category_of.get(offense) != flt.categories[0]:
                return -1, False
            return self.index.get("o:" + offense, -1), False
        if flt.categories:
            category = flt.categories[0]
            return self.index.get("c:" + category, -1), category in self.mixed
        return self.index[ALL], bool(self.sensitive.any())


@lru_cache(maxsize=8)
def _forest(triples: tuple[tuple[str, str, bool], ...]) -> Forest:
    """The node forest of a snapshot's (offense, category, sensitive) triples."""
    sensitive_offense: dict[str, bool] = {}
    category_of: dict[str, str] = {}
    for offense, category, flag in sorted(triples):
        sensitive_offense[offense] = sensitive_offense.get(offense, False) or flag
        category_of.setdefault(offense, category)
    cats: dict[str, set[bool]] = {}
    for offense, category in category_of.items():
        cats.setdefault(category, set()).add(sensitive_offense[offense])
    names = [ALL]
    parent = [-1]
    flags = [False]
    for category in sorted(cats):
        names.append("c:" + category)
        wholly = cats[category] == {True}
        parent.append(-1 if wholly else 0)
        flags.append(wholly)
    index = {n: i for i, n in enumerate(names)}
    for offense in sorted(category_of):
        category = category_of[offense]
        flag = sensitive_offense[offense]
        mixed_part = flag and cats[category] != {True}
        names.append("o:" + offense)
        parent.append(-1 if mixed_part else index["c:" + category])
        flags.append(flag)
    index = {n: i for i, n in enumerate(names)}
    parents = np.array(parent, dtype=np.int64)
    children = np.bincount(parents[parents >= 0], minlength=len(names)).astype(np.int64)
    mixed = frozenset(c for c, f in cats.items() if len(f) == 2)
    return Forest(tuple(names), parents, np.array(flags, dtype=bool), children, index, mixed,
                  category_of)  # fmt: skip


def forest(store: Any, manifest: Manifest) -> Forest:
    """The offense forest of a snapshot (its offenses read once per snapshot)."""
    return _forest(offense_triples(store, manifest))


def family(unit: Unit | None) -> str:
    """The family a unit's cells belong to (None: the whole area)."""
    if unit is None:
        return TOTAL
    if unit.kind == "h3":
        return "h3"
    assert unit.layer is not None
    return "street" if unit.kind == "street" else unit.layer


@dataclass(frozen=True)
class Block:
    """The published table of one family and year: every cell and whether it is withheld.

    Cells are sorted by (period, node, resolution, unit); ``slices`` maps each such
    (period, node, resolution) to its range.
    """

    ids: list[str | None]  # by unit code; None for the count outside every unit
    unit: npt.NDArray[np.int32]
    period: npt.NDArray[np.int8]
    node: npt.NDArray[np.int16]
    value: npt.NDArray[np.int32]
    hidden: npt.NDArray[np.bool_]
    units: int | None  # units of the family (None: unbounded)
    slices: dict[tuple[int, int, int], tuple[int, int]]
    # Derived in __post_init__: ids as an array, each id's code, the outside's code (-1).
    names: npt.NDArray[np.object_] = field(init=False, repr=False)
    codes: dict[str, int] = field(init=False, repr=False)
    outside: int = field(init=False)

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

    def value_of(self, unit_id: str | None, period: int, node: int, res: int = 0) -> int | None:
        """The published count of one cell (None: withheld, or zero)."""
        span = self.cells(period, node, res)
        code = self.outside if unit_id is None else self.codes.get(unit_id, -2)
        at = np.flatnonzero(self.unit[span.start : span.stop] == code)
        if at.size == 0 or self.hidden[span.start + at[0]]:
            return None
        return int(self.value[span.start + at[0]])

    def __post_init__(self) -> None:
        names = np.empty(len(self.ids), dtype=object)
        names[:] = self.ids
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "codes", {u: i for i, u in enumerate(self.ids) if u is not None})
        object.__setattr__(self, "outside", self.ids.index(None) if None in self.ids else -1)


def _atoms_sql(fam: str, finest_h3: int) -> str:
    if fam == TOTAL:
        return "''"
    if fam == "h3":
        unused = (1 << (3 * (15 - finest_h3))) - 1
        return f"(h3 & ~(15::UBIGINT << 52)) | ({finest_h3}::UBIGINT << 52) | {unused}::UBIGINT"
    if fam == "street":
        return "street_id"
    return quote(fam)


def build_block(
    store: Any,
    manifest: Manifest,
    fam: str,
    year: int,
    rules: PublicRules,
    con: duckdb.DuckDBPyConnection,
) -> Block:
    """Count, expand and suppress the cells of one family and year (see the module doc)."""
    tree = forest(store, manifest)
    files = [
        str(store.root / f.path)
        for f in store.files_between(manifest, date(year, 1, 1), date(year + 1, 1, 1))
    ]
    if files:
        atoms = con.sql(
            f"SELECT {_atoms_sql(fam, rules.finest_h3)} AS unit, month(local_date)::BIGINT AS m, "
            "'o:' || offense AS o, count(*) AS n FROM read_parquet(?) "
            "WHERE local_date >= ? AND local_date < ? GROUP BY ALL",
            params=[files, date(year, 1, 1), date(year + 1, 1, 1)],
        ).to_arrow_table()
    else:
        atoms = pa.table({"unit": pa.array([], pa.string()), "m": pa.array([], pa.int64()),
                          "o": pa.array([], pa.string()), "n": pa.array([], pa.int64())})  # fmt: skip
    o_names = atoms.column("o").combine_chunks().dictionary_encode()
    lookup = np.array([tree.index[n] for n in o_names.dictionary.to_pylist()], dtype=np.int64)
    offense = lookup[o_names.indices.to_numpy(zero_copy_only=False)] if len(atoms) else lookup[:0]
    month = atoms.column("m").to_numpy().astype(np.int64)
    count = atoms.column("n").to_numpy().astype(np.int64)
    ids, res_of, unit0, up_unit = _units(fam, atoms.column("unit"), rules)
    coarse_unit = _coarse_units(fam, res_of, rules)
    unit, period, node, value = _expand(unit0, MONTHS + month - 1, offense, count, up_unit, tree)
    # Sensitive offense sets only on coarse units.
    keep = coarse_unit[unit] | ~tree.sensitive[node]
    unit, period, node, value = unit[keep], period[keep], node[keep], value[keep]
    res = res_of[unit]
    # Sort by (period, node, resolution, unit) so that each request's cells are one range.
    order = np.lexsort((unit, res, node, period))
    unit, node, period, value, res = (
        unit[order],
        node[order],
        period[order],
        value[order],
        res[order],
    )
    ks = np.where(tree.sensitive[node], rules.k_sensitive, rules.k)
    size = _family_size(manifest, fam)
    groups = _groups(unit, period, node, res, ids, size, tree, fam, up_unit)
    hidden = suppress_members(value, ks, *groups)
    slices: dict[tuple[int, int, int], tuple[int, int]] = {}
    if unit.size:
        trio = np.stack([period, node, res], axis=1)
        bounds = np.flatnonzero((trio[1:] != trio[:-1]).any(axis=1)) + 1
        starts = np.concatenate([[0], bounds])
        stops = np.concatenate([bounds, [unit.size]])
        for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
            slices[(int(period[a]), int(node[a]), int(res[a]))] = (a, b)
    # Compact types: a block of H3 cells over a year of Mexico City holds ~1.4 M cells.
    return Block(ids, unit.astype(np.int32), period.astype(np.int8),
                 node.astype(np.int16), value.astype(np.int32), hidden, size, slices)  # fmt: skip


def _units(
    fam: str, column: pa.ChunkedArray, rules: PublicRules
) -> tuple[list[str | None], Ints, Ints, Ints]:
    """Unit ids by code, each code's H3 resolution, each atom's unit code, each code's parent.

    H3 codes cover the finest public resolution and every parent down to 5 (parent -1 at
    5); other families have one level (parents all -1).
    """
    if fam == "h3":
        fine = column.to_numpy().astype(np.uint64) if len(column) else np.zeros(0, np.uint64)
        levels = [fine] + [h3_parent(fine, r) for r in range(rules.finest_h3 - 1, H3_MIN - 1, -1)]
        distinct = np.unique(np.concatenate(levels)) if fine.size else np.zeros(0, np.uint64)
        hexes: list[str | None] = [format(int(c), "x") for c in distinct.tolist()]
        res_of = ((distinct >> np.uint64(52)) & np.uint64(15)).astype(np.int64)
        up = np.full(distinct.size, -1, dtype=np.int64)
        for r in range(H3_MIN + 1, rules.finest_h3 + 1):
            at = np.flatnonzero(res_of == r)
            up[at] = np.searchsorted(distinct, h3_parent(distinct[at], r - 1))
        return hexes, res_of, np.searchsorted(distinct, fine).astype(np.int64), up
    arr = column.combine_chunks()
    if fam == TOTAL:
        return [""], np.zeros(1, np.int64), np.zeros(len(arr), np.int64), np.full(1, -1)
    encoded = pc.dictionary_encode(arr.cast(pa.string()))
    names: list[str | None] = [*encoded.dictionary.to_pylist(), None]
    outside = len(names) - 1
    codes = pc.fill_null(encoded.indices, outside).to_numpy(zero_copy_only=False)
    n = len(names)
    return names, np.zeros(n, np.int64), codes.astype(np.int64), np.full(n, -1, np.int64)


def _expand(
    unit: Ints, period: Ints, node: Ints, count: Ints, up_unit: Ints, tree: Forest
) -> tuple[Ints, Ints, Ints, Ints]:
    """Every cell the atoms (unit, month, offense) count in, with its count.

    One dimension at a time, each level summed from the one below it (offenses to
    categories to ``*``; months to quarters to the year; H3 cells to their parents), so
    each step sorts no more than the cells it starts from.
    """
    n_nodes = len(tree.names)
    up_node = tree.parent
    cells = [(unit, period, node, count)]
    for _ in range(2):  # offense -> category -> *
        u, p, n, c = cells[-1]
        has = up_node[n] >= 0
        cells.append(_sum(u[has], p[has], up_node[n[has]], c[has], n_nodes))
    crime = [np.concatenate(x) for x in zip(*cells, strict=True)]
    u, p, n, c = crime
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
    key = (unit * N_PERIODS + period) * n_nodes + node
    cells, inverse = np.unique(key, return_inverse=True)
    total = np.bincount(inverse, weights=count, minlength=cells.size)
    node_of = cells % n_nodes
    rest = cells // n_nodes
    return rest // N_PERIODS, rest % N_PERIODS, node_of, np.rint(total).astype(np.int64)


def _coarse_units(fam: str, res_of: Ints, rules: PublicRules) -> npt.NDArray[np.bool_]:
    """Which units may show sensitive offenses."""
    if fam == "h3":
        return np.asarray(res_of <= rules.coarse_h3)
    coarse = fam == TOTAL or fam in rules.coarse_layers
    return np.full(res_of.size, coarse)


def _family_size(manifest: Manifest, fam: str) -> int | None:
    if fam == TOTAL:
        return 1
    if fam == "h3":
        return None
    layer = manifest.street_layer if fam == "street" else fam
    return int(manifest.layers[layer].features) if layer in manifest.layers else None


def _groups(
    unit: Ints,
    period: Ints,
    node: Ints,
    res: Ints,
    ids: list[str | None],
    units: int | None,
    tree: Forest,
    fam: str,
    up_unit: Ints,
) -> tuple[Ints, Ints, Ints]:
    """Every relation of the table as (member group, member cell, unlisted per group)."""
    parts: list[tuple[Ints, Ints, Ints]] = []
    cells = np.arange(unit.size, dtype=np.int64)

    def add(
        mask: npt.NDArray[np.bool_],
        key: Ints,
        size: Ints | int,
        counted: npt.NDArray[np.bool_] | None = None,
    ) -> None:
        if not mask.any():
            return
        members = cells[mask]
        groups, inverse = np.unique(key[mask], return_inverse=True)
        listed = np.bincount(inverse, weights=None if counted is None else counted[mask],
                             minlength=groups.size).astype(np.int64)  # fmt: skip
        full = (
            size if isinstance(size, int) else size[mask][np.unique(inverse, return_index=True)[1]]
        )
        parts.append((inverse.astype(np.int64), members, np.maximum(full - listed, 0)))

    every = np.ones(unit.size, dtype=bool)
    if fam != TOTAL:
        # Space: a family's units (and the outside count) sum to the whole area.
        outside = np.array([i is None for i in ids] + [False])[unit]
        add(every, (period * len(tree.names) + node) * 16 + res,
            units if units is not None else _UNBOUNDED, counted=~outside)  # fmt: skip
    if fam == "h3":
        # H3: the children of a cell sum to it.
        parent = up_unit[unit]
        finer = parent >= 0
        if finer.any():
            full = np.array([6 if i and h3.is_pentagon(i) else 7 for i in ids], dtype=np.int64)
            add(finer, (parent * N_PERIODS + period) * len(tree.names) + node, full[parent])
    # Time: months sum to their quarter, quarters to their year.
    months = period >= MONTHS
    add(months, ((unit * len(tree.names) + node) * 4 + (period - MONTHS) // 3), 3)
    quarters = (period >= QUARTERS) & (period < MONTHS)
    add(quarters, unit * len(tree.names) + node, 4)
    # Crime: offenses sum to their category, categories to *.
    up = tree.parent[node]
    child = up >= 0
    add(child, (unit * N_PERIODS + period) * len(tree.names) + up, tree.children[np.maximum(up, 0)])
    if not parts:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    offset = 0
    mg, mc, ul = [], [], []
    for g, c, u in parts:
        mg.append(g + offset)
        mc.append(c)
        ul.append(u)
        offset += u.size
    return np.concatenate(mg), np.concatenate(mc), np.concatenate(ul)


_blocks: LRUCache[tuple[Any, ...], Block] = LRUCache(maxsize=64)
_lock = threading.Lock()
_building: dict[tuple[Any, ...], threading.Lock] = {}


def block(
    store: Any,
    manifest: Manifest,
    fam: str,
    year: int,
    rules: PublicRules,
    con: duckdb.DuckDBPyConnection,
) -> Block:
    """The published table of a family and year, built once per snapshot and rules."""
    key = (str(store.root), manifest.snapshot, fam, year, rules)
    with _lock:
        hit = _blocks.get(key)
        if hit is not None:
            return hit
        building = _building.setdefault(key, threading.Lock())
    # One build per key; requests for other blocks go on meanwhile.
    with building:
        with _lock:
            hit = _blocks.get(key)
        if hit is None:
            hit = build_block(store, manifest, fam, year, rules, con)
            with _lock:
                _blocks[key] = hit
                _building.pop(key, None)
    return hit


_warm: dict[str, str] = {}  # store root -> "warming" | "ready" | "failed"


def warm(store: Any, rules: PublicRules, today: date) -> None:
    """Build every published year's blocks of every family, the default year first.

    A server's first public answers would otherwise wait for them (seconds for H3 cells
    over a year of Mexico City's records). ``status`` tells how far it got.
    """
    manifest = store.manifest()
    if manifest is None:
        return
    root = str(store.root)
    _warm[root] = "warming"
    until = cutoff(rules, today)
    first = default_period(manifest, until).year
    years = sorted({f.year for f in manifest.files if date(f.year, 1, 1) < until}, reverse=True)
    families = [TOTAL, *manifest.boundary_layers, "h3"]
    if manifest.street_layer:
        families.append("street")
    con = duckdb.connect(config={"threads": 1})
    try:
        for year in sorted(years, key=lambda y: y != first):
            for fam in families:
                block(store, manifest, fam, year, rules, con)
        _warm[root] = "ready"
    except Exception:
        _warm[root] = "failed"
        raise
    finally:
        con.close()


def status(root: Any) -> str:
    """How far the background build of a store's release got: none, warming, ready, failed."""
    return _warm.get(str(root), "none")


def clear() -> None:
    """Forget every cached block (tests; a store rebuilt in place)."""
    with _lock:
        _blocks.clear()


def cutoff(rules: PublicRules, today: date) -> date:
    """The first day not published: the delay, rounded down to a whole month."""
    last = today - timedelta(days=rules.delay_days)
    return last.replace(day=1)


def default_period(manifest: Manifest, until: date) -> Period:
    """The public default: the last whole calendar year of records that is published."""
    if manifest.files:
        latest = date.fromisoformat(max(f.max_date for f in manifest.files))
        year = latest.year if (latest.month, latest.day) == (12, 31) else latest.year - 1
        earliest = date.fromisoformat(min(f.min_date for f in manifest.files)).year
    else:
        year = earliest = until.year - 1
    return Period(max(min(year, until.year - 1), min(earliest, until.year - 1)), YEAR)
