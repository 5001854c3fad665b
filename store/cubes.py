"""Pre-aggregated cubes: incident counts per unit × month × source × offense.

Every incident data file gets one cube file per unit family (each boundary layer, the
street network, and H3 cells at ``CUBE_H3_RES``), written and fsync'd beside it before the
snapshot that names them is published, so a cube always describes exactly its file.
Counts are additive across files, and a query's cost follows the number of occupied
(unit, month, offense) rows it touches rather than the number of incidents.

Why months and offenses: on Mexico City's records, coarser grains shrink little (colonia ×
day × category: 1.06×) while colonia × month × offense shrinks 1.5×, streets 3.2×, and
alcaldías 11×; more to the point, cube rows are sorted by offense then month, so a question
about one offense in one year reads only that offense's rows instead of every incident of
the year. Queries that need finer time (an hour window, weekdays, non-month dates) or
points (a bbox) read the incident files instead, with identical results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from geo.cells import cells_to_parents
from store.errors import StoreError
from store.snapshots import fsync_file

CUBES = "cubes"
H3_FAMILY = "h3"
STREET_FAMILY = "street"
# Cells of this resolution answer h3:5..8 by their parents' bits; finer cells barely
# shrink against the records (benchmarks/RESULTS.md), so those queries read the incidents.
CUBE_H3_RES = 8
ROW_GROUP_SIZE = 32_768


@dataclass(frozen=True)
class CubeSpec:
    """A unit family, the incident column holding its unit ids, and the layer's ids.

    Cubes of layers store each unit as its position in the layer version's feature list
    (``ids``): integers group several times faster than strings, and the layer's names and
    populations are looked up by position.
    """

    family: str
    column: str
    ids: pa.Array | None = None


def cube_specs(layer_ids: dict[str, pa.Array], street_ids: pa.Array | None) -> list[CubeSpec]:
    """The cube families of a store with these boundary layers (and streets)."""
    specs = [CubeSpec(name, name, ids) for name, ids in layer_ids.items()]
    if street_ids is not None:
        specs.append(CubeSpec(STREET_FAMILY, "street_id", street_ids))
    specs.append(CubeSpec(H3_FAMILY, "h3"))
    return specs


def h3_parent(cells: npt.NDArray[np.uint64], res: int) -> npt.NDArray[np.uint64]:
    """Parents at ``res`` of finer H3 cells (geo's one bit-arithmetic implementation)."""
    return cells_to_parents(cells, res)


def _codes(column: pa.ChunkedArray | pa.Array) -> tuple[npt.NDArray[np.int64], pa.Array]:
    """Dictionary indices (-1 for null) and the dictionary of a string column."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_dictionary(arr.type):
        arr = pc.dictionary_encode(arr)
    indices = pc.fill_null(arr.indices, -1).to_numpy(zero_copy_only=False)
    return indices.astype(np.int64, copy=False), arr.dictionary


def build_cubes(part: pa.Table, specs: Sequence[CubeSpec]) -> dict[str, pa.Table]:
    """Counts of one year's incidents per (offense, month, source, unit), offense-major.

    Offenses are ordered alphabetically so that the Parquet statistics of each row group
    cover a narrow range of offense names and a filter on one offense skips the rest.
    """
    offense, offense_dict = _codes(part.column("offense"))
    # Rank the dictionary alphabetically: the cube's sort order is by name, not by index.
    names = np.asarray(offense_dict.to_pylist(), dtype=object)
    order = np.argsort(names, kind="stable")
    rank = np.empty(order.size, np.int64)
    rank[order] = np.arange(order.size)
    sorted_names = pa.array(names[order], pa.string())
    source, source_dict = _codes(part.column("source"))
    dates = part.column("local_date")
    months = (
        pc.add(pc.multiply(pc.year(dates), 12), pc.subtract(pc.month(dates), 1))
        .to_numpy()
        .astype(np.int64)
    )
    first_month = int(months.min()) if months.size else 0
    n_month = int(months.max()) - first_month + 1 if months.size else 1
    n_source = len(source_dict)
    # First day of each month of the part, as date32 days: a lookup per row instead of a
    # calendar conversion per row.
    month_day = (
        (np.arange(first_month, first_month + n_month) - 12 * 1970)
        .astype("datetime64[M]")
        .astype("datetime64[D]")
        .astype(np.int32)
    )
    # Category and sensitivity follow from the offense (one taxonomy entry each).
    category, category_dict = _codes(part.column("category"))
    category_of = np.zeros(len(offense_dict), np.int64)
    category_of[offense] = category
    sensitive_of = np.zeros(len(offense_dict), bool)
    sensitive_of[offense] = part.column("sensitive").to_numpy()
    base = (rank[offense] * n_month + (months - first_month)) * n_source + source
    n_base = len(offense_dict) * n_month * n_source
    out = {}
    for spec in specs:
        unit, n_unit, cells = _unit_codes(part, spec)
        key = base * n_unit + (unit + 1)
        keys, counts = _count_keys(key, n_base * n_unit)
        unit_code = keys % n_unit - 1
        rest = keys // n_unit
        source_code = rest % n_source
        rest //= n_source
        month = rest % n_month + first_month
        offense_code = rest // n_month
        missing = unit_code < 0
        unit_index = np.maximum(unit_code, 0)
        if cells is not None:
            unit_col = pa.array(cells[unit_index], pa.uint64(), mask=missing)
        else:
            unit_col = pa.array(unit_index.astype(np.int32), pa.int32(), mask=missing)
        original = order[offense_code]
        out[spec.family] = pa.table(
            {
                "offense": pa.DictionaryArray.from_arrays(
                    pa.array(offense_code.astype(np.int32)), sorted_names
                ),
                "month": pa.Array.from_buffers(
                    pa.date32(), month.size, [None, pa.py_buffer(month_day[month - first_month])]
                ),
                "source": pa.DictionaryArray.from_arrays(
                    pa.array(source_code.astype(np.int32)), source_dict
                ),
                "category": pa.DictionaryArray.from_arrays(
                    pa.array(category_of[original].astype(np.int32)), category_dict
                ),
                "sensitive": pa.array(sensitive_of[original]),
                "cell" if cells is not None else "unit": unit_col,
                "n": pa.array(counts.astype(np.int32)),
            }
        )
    return out


def _unit_codes(
    part: pa.Table, spec: CubeSpec
) -> tuple[npt.NDArray[np.int64], int, npt.NDArray[np.uint64] | None]:
    """Each row's unit code (-1: none) and how many codes there are, "none" included.

    For H3, also the distinct cells the codes index.
    """
    if spec.family == H3_FAMILY:
        cells, unit = _distinct(h3_parent(part.column("h3").to_numpy(), CUBE_H3_RES))
        return unit, cells.size + 1, cells
    assert spec.ids is not None
    codes, values = _codes(part.column(spec.column))
    position = pc.index_in(values, value_set=spec.ids)
    if position.null_count:
        missing_id = values.filter(pc.is_null(position))[0]
        raise StoreError(f"{spec.family} id {missing_id} is not in the layer")
    # Dictionary index -> position in the layer (-1 stays "no unit").
    lookup = np.append(position.to_numpy(zero_copy_only=False), -1).astype(np.int64)
    return lookup[codes], len(spec.ids) + 1, None


def _distinct(
    values: npt.NDArray[np.uint64],
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """Distinct values, ascending, and each value's index among them.

    Incident files are sorted by cell, so their parents come sorted: one pass instead of
    the sort ``np.unique`` does.
    """
    if values.size and bool(np.all(values[1:] >= values[:-1])):
        new = np.r_[True, values[1:] != values[:-1]]
        return values[new], np.cumsum(new) - 1
    distinct, inverse = np.unique(values, return_inverse=True)
    return distinct, inverse.astype(np.int64)


# Below this many possible keys a bincount (no sort) is fastest.
_DENSE_KEYS = 1 << 24


def _count_keys(
    key: npt.NDArray[np.int64], n_keys: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Distinct keys in ``[0, n_keys)``, ascending, and how often each occurs."""
    if n_keys <= min(_DENSE_KEYS, 8 * key.size):
        return _count_dense(key, n_keys)
    return _count_sorted(key)


def _count_dense(
    key: npt.NDArray[np.int64], n_keys: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    bins = np.bincount(key, minlength=n_keys)
    keys = np.flatnonzero(bins)
    return keys.astype(np.int64), bins[keys].astype(np.int64)


def _count_sorted(
    key: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    ordered = np.sort(key)
    if not ordered.size:
        return ordered, ordered
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    counts = np.diff(np.r_[starts, ordered.size])
    return ordered[starts], counts.astype(np.int64)


def write_cube(root: Path, rel: Path, cube: pa.Table) -> str:
    """Write a cube file (zstd, small row groups for pruning) and fsync it."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        cube,
        path,
        compression="zstd",
        row_group_size=ROW_GROUP_SIZE,
        # Dictionaries for the names only (units and counts are small integers), and
        # statistics for the columns that filters prune on.
        use_dictionary=["offense", "source", "category"],
        write_statistics=["offense", "month", "source", "category"],
    )
    fsync_file(path)
    return rel.as_posix()


def cube_path(data_file: Path, family: str) -> Path:
    """Where the cube of a data file lives (relative to the store root)."""
    # incidents/year=2023/part-x.parquet -> cubes/colonia/year=2023/part-x.parquet
    return Path(CUBES) / family / data_file.parent.name / data_file.name


def month_aligned(day: date | None) -> bool:
    """True for no bound or the first day of a month (a cube's time grain)."""
    return day is None or day.day == 1


YEAR = "@year"  # suffix of a family's year-grain rollup in a manifest


def rollup_key(family: str, yearly: bool) -> str:
    """The manifest key of a family's rollup: month grain, or year grain."""
    return family + YEAR if yearly else family


def year_aligned(day: date | None) -> bool:
    """True for no bound or the first of January (a year rollup's grain)."""
    return day is None or (day.month == 1 and day.day == 1)


def build_rollup(root: Path, inputs: list[str], family: str, rel: Path, yearly: bool) -> str:
    """Sum cube files of one family into a single cube file (DuckDB); its path.

    ``inputs`` are store-relative cube (or rollup) paths. With ``yearly`` the months are
    truncated to 1 January: whole-year questions then read a twelfth of the rows, however
    many years the store spans. Rows come out offense-major, then by date, as every cube's,
    so that zone maps prune a question to its offenses and dates (readers aggregate, so
    the order within an offense and year is free, and sorting on more costs time). DuckDB's
    memory is capped (it runs after the parts are written and freed) and spills to the
    store's temporary folder beyond that. The cap is 1 GB: less made the sort spill, more
    made the rollups the ingest's peak (benchmarks/RESULTS.md, "Figures behind settings").
    """
    import duckdb

    unit = "cell" if family == H3_FAMILY else "unit"
    month = "date_trunc('year', month)::DATE" if yearly else "month"
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    spill = root / ".tmp"
    spill.mkdir(exist_ok=True)
    con = duckdb.connect(
        config={
            "threads": 2,
            "memory_limit": "1GB",
            "temp_directory": str(spill),
            "preserve_insertion_order": False,
        }
    )
    try:
        con.execute(
            f"COPY (SELECT offense, {month} AS month, source, category, sensitive, {unit}, "
            "sum(n)::BIGINT AS n FROM read_parquet(?) GROUP BY ALL "
            "ORDER BY offense, month) "
            f"TO ? (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_SIZE})",
            [[str(root / p) for p in inputs], str(path)],
        )
    finally:
        con.close()
    fsync_file(path)
    return rel.as_posix()
