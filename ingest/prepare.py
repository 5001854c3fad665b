"""One part of an input through the stages: validate, enrich, to records.

Every row of a part ends accepted (a record), rejected (one reason code, and its source
row in the rejects table) or a duplicate within the part. ``prepare_part`` runs in any
process (a Dask worker too) and opens what it needs of the store once per process.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from geo.cells import points_to_cells
from geo.types import BBox
from ingest.arrays import constant_dictionary, to_bool
from ingest.coords import (
    Coordinates,
    Jurisdiction,
    check_coordinates,
    geometry_points,
    parse_number,
)
from ingest.engines import PartContext
from ingest.enrich import Enrichment
from ingest.errors import IngestError
from ingest.ids import record_ids
from ingest.parts import PartResult
from ingest.profiles import Profile
from ingest.readers import SourceTable
from ingest.reasons import CODE, REASONS, Reason, Repair
from ingest.taxonomy import Taxonomy, trimmed_dictionary
from ingest.times import LocalTimes, parse_local_times
from store import Store
from store.snapshots import Manifest

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """One input file after validation: accepted records and rejected source rows."""

    records: pa.Table
    rejects: pa.Table
    input_rows: int
    rejected: Counter[str]
    repairs: Counter[str]
    unknown: Counter[str]
    time_imputed: int
    duplicates: int


@lru_cache(maxsize=4)
def _part_state(
    root: str, snapshot: int | None, profile_json: str, taxonomy: str | None
) -> tuple[Store, Manifest | None, Taxonomy, Jurisdiction | None]:
    # Per process (a Dask worker prepares many parts): the store's layers, once.
    profile = Profile.model_validate_json(profile_json)
    store = Store(Path(root))
    parent = store.manifest(snapshot) if snapshot is not None else None
    return store, parent, Taxonomy.load(taxonomy), _jurisdiction(store, parent, profile)


@lru_cache(maxsize=1)
def worker_pool() -> ThreadPoolExecutor:
    """The two threads that work beside the one preparing a part."""
    # One pool for the life of the process: new threads for every part would each leave
    # an abandoned allocator heap behind, and memory would grow with the number of parts.
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="cuadra-ingest")


def preload_layers(store: Store, parent: Manifest) -> None:
    """Load (and cache) the boundary and street layers an enrichment will use."""
    store.streets(parent)
    for name in parent.boundary_layers:
        store.boundary(parent, name)


def prepare_part(ctx: PartContext, src: SourceTable, index: int) -> tuple[PartResult, pa.Table]:
    """Validate, normalise and enrich one part of an input (in any process)."""
    profile = ctx.profile
    where = _taxonomy_path(profile)
    store, parent, taxonomy, jurisdiction = _part_state(
        ctx.root, ctx.snapshot, profile.model_dump_json(), str(where) if where else None
    )
    p = _prepare(store, parent, src, profile, taxonomy, jurisdiction, ctx.now, worker_pool())
    result = PartResult(
        index, p.input_rows, p.rejected, p.repairs, p.unknown, p.duplicates, p.rejects
    )
    return result, p.records


def _year_cell_order(years: np.ndarray, rank: np.ndarray, n: int) -> np.ndarray:
    """The permutation that sorts rows by year, then by cell, in linear time.

    ``rank`` is each row's distinct rank in cell order among ``n`` points: scattering rows
    by rank lists them in cell order, and a stable sort by year (a radix sort on 16-bit
    keys) keeps that order within each year.
    """
    slot = np.full(n, -1, dtype=np.intp)
    slot[rank] = np.arange(rank.size)
    by_cell = slot[slot >= 0]
    year16 = (np.asarray(years, dtype=np.int64)[by_cell] + 70).clip(0, 4095).astype(np.uint16)
    return by_cell[np.argsort(year16, kind="stable")]


def _taxonomy_path(profile: Profile) -> Path | None:
    if profile.taxonomy.file is None:
        return None
    path = Path(profile.taxonomy.file)
    if not path.is_absolute() and profile.path:
        path = Path(profile.path).parent / path
    return path


def _jurisdiction(store: Store, parent: Manifest | None, profile: Profile) -> Jurisdiction | None:
    bounds = profile.bounds
    tests: list[Jurisdiction] = []
    if bounds.bbox is not None:
        box = BBox(*bounds.bbox)
        tests.append(box.contains)
    if bounds.layer is not None:
        if parent is None or bounds.layer not in parent.layers:
            raise IngestError(
                f"profile {profile.name!r} bounds its jurisdiction by layer {bounds.layer!r}, "
                "which the store does not have: run `cuadra boundaries add` first"
            )
        loaded = store.boundary(parent, bounds.layer)

        def in_layer(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
            return loaded.index.assign(lon, lat, points_to_cells(lon, lat)) >= 0

        tests.append(in_layer)
    if not tests:
        return None

    def inside(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        mask = np.ones(lon.shape, dtype=bool)
        for test in tests:
            idx = np.flatnonzero(mask)
            mask[idx] = test(lon[idx], lat[idx])
        return mask

    return inside


def _column(src: SourceTable, name: str | None, what: str) -> pa.ChunkedArray | None:
    if name is None:
        return None
    if name not in src.table.column_names:
        raise IngestError(
            f"{Path(src.path).name!r} has no column {name!r} ({what}); its columns are: "
            f"{', '.join(src.table.column_names)}"
        )
    return src.table.column(name)


class _Clock:
    """Debug-level timings of the stages of one input file."""

    def __init__(self) -> None:
        self.last = time.perf_counter()

    def lap(self, what: str) -> None:
        now = time.perf_counter()
        log.debug("%s: %.3f s", what, now - self.last)
        self.last = now


def _prepare(
    store: Store,
    parent: Manifest | None,
    src: SourceTable,
    profile: Profile,
    taxonomy: Taxonomy,
    jurisdiction: Jurisdiction | None,
    now: datetime,
    pool: ThreadPoolExecutor,
) -> Prepared:
    """One part through the stages: validate, enrich, to records.

    The executor plan, on this thread and the two workers of ``pool``:

    ========================  ==========================================================
    workers                   this thread
    ========================  ==========================================================
    dates and times           coordinates (parse, CRS, swaps, ranges, jurisdiction)
    streets, boundary layers  H3 cells; offenses; ids; duplicates; (year, cell) order;
                              columns that need no layer
    the rejects table         the layer columns, once the workers are done
    ========================  ==========================================================

    Arrow kernels, GEOS, numpy and h3ronpy release the GIL, so the columns overlap.
    """
    clock = _Clock()
    codes = np.zeros(src.table.num_rows, dtype=np.int8)
    dates = _Dates(src, profile, now, pool)
    coords = _check_coordinates(src, profile, jurisdiction, codes)
    clock.lap("coordinates")
    # Every located row is enriched now, while the rest of validation goes on.
    located = np.flatnonzero(codes == 0)
    enrichment = Enrichment(pool, store, parent, coords.lon[located], coords.lat[located])
    times = dates.merge_into(codes)
    offenses = _check_offenses(src, profile, codes)
    clock.lap("dates, times and offenses")
    # The codes are final: a worker gathers the rejected rows while this thread goes on.
    rejects = pool.submit(_rejects_table, src, codes)
    built = _to_records(
        src, profile, taxonomy, codes, coords, times, offenses, located, enrichment, clock
    )
    rejected = Counter(
        {
            REASONS[c - 1].value: int(k)
            for c, k in zip(*np.unique(codes[codes != 0], return_counts=True), strict=True)
        }
    )
    if src.malformed:
        rejected[Reason.MALFORMED_ROW.value] += len(src.malformed)
    return Prepared(
        records=built.records,
        rejects=rejects.result(),
        input_rows=src.input_rows,
        rejected=rejected,
        repairs=built.repairs,
        unknown=built.unknown,
        time_imputed=built.time_imputed,
        duplicates=built.duplicates,
    )


class _Dates:
    """Dates and times parsed on a worker (their reject codes kept apart until merged)."""

    def __init__(
        self, src: SourceTable, profile: Profile, now: datetime, pool: ThreadPoolExecutor
    ) -> None:
        cols = profile.columns
        date_col = _column(src, cols.date or cols.datetime, "date")
        assert date_col is not None
        time_col = _column(src, cols.time, "time")
        self._codes = np.zeros(src.table.num_rows, dtype=np.int8)
        self._future = pool.submit(parse_local_times, date_col, time_col, profile, self._codes, now)

    def merge_into(self, codes: npt.NDArray[np.int8]) -> LocalTimes:
        """Wait for the parse; add its reject codes where a row has none yet."""
        times = self._future.result()
        codes[:] = np.where(codes == 0, self._codes, codes)
        return times


def _check_coordinates(
    src: SourceTable, profile: Profile, jurisdiction: Jurisdiction | None, codes: np.ndarray
) -> Coordinates:
    """Parse and validate the points (WGS84 lon/lat); reject codes set in ``codes``."""
    cols = profile.columns
    source_crs = None
    if cols.geometry is not None:
        geom = _column(src, cols.geometry, "geometry")
        assert geom is not None
        x, y = geometry_points(geom, codes)
        crs_meta = (src.table.schema.metadata or {}).get(b"crs")
        source_crs = crs_meta.decode() if crs_meta else None
    else:
        xname = cols.lon if cols.lon is not None else cols.x
        yname = cols.lat if cols.lat is not None else cols.y
        xcol = _column(src, xname, "longitude / x")
        ycol = _column(src, yname, "latitude / y")
        assert xcol is not None and ycol is not None
        # Parse both, then let the first failing axis decide the reason.
        codes_y = codes.copy()
        x = parse_number(xcol, profile, codes)
        y = parse_number(ycol, profile, codes_y)
        codes[:] = np.where(codes == 0, codes_y, codes)
    return check_coordinates(x, y, profile, codes, jurisdiction, source_crs)


def _check_offenses(src: SourceTable, profile: Profile, codes: np.ndarray) -> pa.DictionaryArray:
    """The offense column, trimmed; rows without one get their reject code."""
    off_col = _column(src, profile.columns.offense, "offense")
    assert off_col is not None
    off = trimmed_dictionary(off_col)
    blank = to_bool(pc.equal(off.dictionary, ""), True)
    index = off.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    no_offense = (index < 0) | blank[np.maximum(index, 0)]
    codes[(codes == 0) & no_offense] = CODE[Reason.MISSING_OFFENSE]
    return off


@dataclass
class _Built:
    """A part's accepted records and what was counted while building them."""

    records: pa.Table
    repairs: Counter[str]
    unknown: Counter[str]
    time_imputed: int
    duplicates: int


def _to_records(
    src: SourceTable,
    profile: Profile,
    taxonomy: Taxonomy,
    codes: np.ndarray,
    coords: Coordinates,
    times: LocalTimes,
    off: pa.DictionaryArray,
    located: np.ndarray,
    enrichment: Enrichment,
    clock: _Clock,
) -> _Built:
    """The accepted rows as records: ids, first occurrences, (year, cell) order, columns."""
    rows = np.flatnonzero(codes == 0)
    offense = off.take(pa.array(rows))
    ids, id_key = _incident_ids(
        src, profile, rows, coords.lon[rows], coords.lat[rows], times.local_us[rows], offense
    )
    # Within-file duplicates go now, and rows are put in H3 order, before any column is
    # gathered: one gather per column, in the order the files are written.
    clock.lap("ids")
    first = _first_occurrences(ids, id_key)
    keep = np.flatnonzero(first)
    classified_unsorted = taxonomy.classify(offense)
    # Position of each accepted row among the located ones (accepted rows are located
    # rows: as many means the same rows).
    at = np.arange(rows.size) if rows.size == located.size else np.searchsorted(located, rows)
    clock.lap("duplicates and categories")
    # Files are per year, rows by cell within: sort by (year, cell) so that the writer
    # can slice instead of filter. The cells are this thread's own work, done already;
    # the columns that need no layer are gathered while the workers finish the layers.
    rank = enrichment.cell_rank()
    year = (
        (times.local_us[rows[keep]] // 86_400_000_000)
        .astype("datetime64[D]")
        .astype("datetime64[Y]")
        .astype(np.int64)
    )
    keep = keep[_year_cell_order(year, rank[at[keep]], rank.size)]
    rows, at = rows[keep], at[keep]
    take = pa.array(rows)
    classified = classified_unsorted.take(keep)
    local = times.local_us[rows]
    repairs = {
        Repair.SWAPPED_LAT_LON: coords.swapped[rows],
        Repair.TIME_FROM_DATE_FIELD: times.time_from_date[rows],
        Repair.MOJIBAKE: classified.mojibake,
    }
    columns: dict[str, pa.Array] = {
        "incident_id": ids.take(pa.array(keep)),
        "source": constant_dictionary(profile.name, rows.size),
        "occurred_at": times.utc.take(take),
        "local_date": pa.array(local // 86_400_000_000, pa.int32()).cast(pa.date32()),
        "local_hour": pa.array(((local // 3_600_000_000) % 24).astype(np.int8)),
        "time_imputed": pa.array(times.imputed[rows]),
        "offense": classified.offense,
        "category": classified.category,
        "sensitive": pa.array(classified.sensitive),
        "lon": pa.array(coords.lon[rows]),
        "lat": pa.array(coords.lat[rows]),
        "h3": pa.array(enrichment.cells()[at], pa.uint64()),
        "repairs": _repairs_column(*repairs.values()),
    }
    clock.lap("gathering columns")
    records = pa.table({**columns, **_layer_columns(enrichment, at, clock)})
    return _Built(
        records=records,
        repairs=Counter({r.value: int(m.sum()) for r, m in repairs.items() if m.any()}),
        unknown=Counter(classified.unknown),
        time_imputed=int(times.imputed[rows].sum()),
        duplicates=int((~first).sum()),
    )


def _layer_columns(enrichment: Enrichment, at: np.ndarray, clock: _Clock) -> dict[str, pa.Array]:
    """Each boundary layer's id and the street id of the records, once the workers are done.

    ``at`` is each record's position among the located points the workers enriched.
    """
    enriched = enrichment.result()
    clock.lap("waiting for enrichment")
    take = pa.array(at)
    columns = {name: values.take(take) for name, values in enriched.layers.items()}
    columns["street_id"] = (
        enriched.street.take(take)
        if enriched.street is not None
        else pa.nulls(at.size, pa.dictionary(pa.int32(), pa.string()))
    )
    clock.lap("gathering enriched columns")
    return columns


def _incident_ids(
    src: SourceTable,
    profile: Profile,
    rows: np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
    local_us: np.ndarray,
    offense: pa.Array,
) -> tuple[pa.Array, np.ndarray | None]:
    """The source id where there is one, else the hash of the normalised record.

    Also returns a uint64 key per row when every id is a hash (None otherwise).
    """
    hashed, key = record_ids(
        profile.name, lon, lat, local_us, offense, profile.parse.identical_rows == "distinct"
    )
    if profile.columns.id is None:
        return hashed, key
    col = _column(src, profile.columns.id, "id")
    assert col is not None
    own = pc.utf8_trim_whitespace(pc.cast(col.combine_chunks().take(pa.array(rows)), pa.string()))
    nulls = pa.array(profile.parse.null_values, pa.string())
    empty = pc.fill_null(pc.or_(pc.is_null(own), pc.is_in(own, nulls)), True)
    # Hashed ids carry a prefix so that they can never equal a source's own id.
    ids = pc.if_else(empty, pc.binary_join_element_wise(pa.scalar("h:"), hashed, ""), own)
    return ids, None


def _repairs_column(swapped: np.ndarray, from_date: np.ndarray, mojibake: np.ndarray) -> pa.Array:
    """The ``repairs`` column: comma-joined repair codes per row, null for none."""
    masks = (swapped, from_date, mojibake)
    names = (Repair.SWAPPED_LAT_LON, Repair.TIME_FROM_DATE_FIELD, Repair.MOJIBAKE)
    bits = np.zeros(len(swapped), dtype=np.int32)
    for bit, mask in enumerate(masks):
        bits |= mask.astype(np.int32) << bit
    # One dictionary entry per combination of repairs (at most 2**3).
    labels = [
        ",".join(name.value for b, name in enumerate(names) if combo >> b & 1)
        for combo in range(1, 1 << len(masks))
    ]
    return pa.DictionaryArray.from_arrays(
        pa.array(bits - 1, pa.int32(), mask=bits == 0), pa.array(labels, pa.string())
    )


def _rejects_table(src: SourceTable, codes: np.ndarray) -> pa.Table:
    bad = np.flatnonzero(codes != 0)
    table = src.full_rows(bad) if bad.size else src.table.slice(0, 0)
    cols = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):
            # Geometry as WKT, readable in a spreadsheet.
            wkb = np.asarray(col.to_pylist(), dtype=object)
            col = pa.array(shapely.to_wkt(shapely.from_wkb(wkb)), pa.string())
        cols[name] = pc.cast(col, pa.string())
    out = pa.table(
        {
            "_row": pa.array(bad + 1 + src.offset, pa.int64()),
            "_reason": pa.array([REASONS[c - 1].value for c in codes[bad]], pa.string()),
            **cols,
        }
    )
    if src.malformed:
        extra = pa.table(
            {
                "_row": pa.array([line for line, _ in src.malformed], pa.int64()),
                "_reason": pa.array([Reason.MALFORMED_ROW.value] * len(src.malformed)),
                "_raw": pa.array([text for _, text in src.malformed], pa.string()),
            }
        )
        out = pa.concat_tables([out, extra], promote_options="default")
    file_col = pa.array([Path(src.path).name] * out.num_rows, pa.string())
    return out.add_column(0, "_file", file_col)


def _first_occurrences(ids: pa.Array, key: np.ndarray | None) -> np.ndarray:
    """True for the first row of each incident id.

    With a uint64 key (the ids' first 64 bits), rows are grouped by key with a sort, and
    only rows sharing a key are compared as strings.
    """
    if key is None:
        import polars as pl

        return pl.Series("id", ids).is_first_distinct().to_numpy()
    first = np.ones(key.size, dtype=bool)
    # A plain sort finds the repeated keys (few); no argsort of every row is needed.
    ordered = np.sort(key)
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    if not repeated.size:
        return first
    at = np.minimum(np.searchsorted(repeated, key), repeated.size - 1)
    shared = np.flatnonzero(repeated[at] == key)
    seen: set[str] = set()
    for i in shared:  # few rows: exact duplicates and (never seen) 64-bit collisions
        text = ids[int(i)].as_py()
        first[i] = text not in seen
        seen.add(text)
    return first
