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
from datetime import date
from typing import Any

import duckdb
import h3
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from cachetools import LRUCache

from disclosure import periods
from disclosure.offenses import Forest
from disclosure.offenses import forest as offense_forest
from disclosure.periods import MONTHS, N_PERIODS, QUARTERS, Period
from disclosure.rules import PublicRules
from disclosure.suppression import suppress_members
from disclosure.table import PublishedTable as Block
from disclosure.table import expand
from store.aggregate import H3_MIN, Unit
from store.cubes import h3_parent
from store.filters import quote
from store.query import offense_triples
from store.snapshots import Manifest

TOTAL = "total"  # the family of the whole area: one unit
_UNBOUNDED = 1_000_000  # unlisted members of a group with no fixed size (H3 cells)

Ints = npt.NDArray[np.int64]


def forest(store: Any, manifest: Manifest) -> Forest:
    """The offense forest of a snapshot (its offenses read once per snapshot)."""
    return offense_forest(offense_triples(store, manifest))


def family(unit: Unit | None) -> str:
    """The family a unit's cells belong to (None: the whole area)."""
    if unit is None:
        return TOTAL
    if unit.kind == "h3":
        return "h3"
    assert unit.layer is not None
    return "street" if unit.kind == "street" else unit.layer


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
    unit, period, node, value = expand(unit0, MONTHS + month - 1, offense, count, up_unit, tree)
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
    return periods.cutoff(rules.delay_days, today)


def default_period(manifest: Manifest, until: date) -> Period:
    """The public default: the last whole calendar year of records that is published."""
    if manifest.files:
        first = date.fromisoformat(min(f.min_date for f in manifest.files))
        last = date.fromisoformat(max(f.max_date for f in manifest.files))
        return periods.default_period(first, last, until)
    return periods.default_period(None, None, until)
