"""The ingest pipeline: read, validate, normalise, enrich, deduplicate, commit.

Every input row ends in exactly one of three places: accepted, rejected (with one reason,
in the rejects file) or duplicate, so ``input_rows == accepted + sum(rejected) +
duplicates`` always holds, and the report says so.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import shapely

from geo.cells import points_to_cells
from geo.types import BBox
from ingest.arrays import constant_dictionary, pandas_skipped, to_bool
from ingest.coords import Jurisdiction, check_coordinates, geometry_points, parse_number
from ingest.engines import PartContext, run_dask, run_local
from ingest.enrich import Enrichment
from ingest.errors import IngestError
from ingest.ids import record_ids
from ingest.parts import PartResult
from ingest.profiles import Profile
from ingest.readers import SourceTable, file_sha256, iter_source
from ingest.reasons import CODE, REASONS, Reason, Repair
from ingest.taxonomy import Taxonomy, trimmed_dictionary
from ingest.times import parse_local_times
from store import Store
from store.snapshots import Batch, DataFile, Manifest

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
REJECTS = "rejects"
# A part's peak memory is about 0.6 KB a row: parts of a million rows keep an ingest under
# about 1 GB however large its input (benchmarks/RESULTS.md, "Scale").
DEFAULT_BATCH_ROWS = 1_000_000
ENGINES = ("local", "dask")


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


@dataclass
class IngestReport:
    """What an ingest did (written as JSON by ``--report``)."""

    status: str
    source: str
    inputs: list[str]
    batch: str
    snapshot: int | None
    input_rows: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    duplicates_within_input: int = 0
    duplicates_already_stored: int = 0
    repairs: dict[str, int] = field(default_factory=dict)
    time_imputed: int = 0
    unknown_offenses: dict[str, int] = field(default_factory=dict)
    assigned: dict[str, int] = field(default_factory=dict)
    rejects_file: str | None = None
    parts: int = 0  # the input was read and written in this many parts
    engine: str = "local"
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def rejected_total(self) -> int:
        """Sum of rejected rows over reasons."""
        return sum(self.rejected.values())

    def balanced(self) -> bool:
        """The invariant: every input row is accepted, rejected or a duplicate."""
        return self.input_rows == self.accepted + self.rejected_total + self.duplicates

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the invariant's check."""
        out = dict(self.__dict__)
        out["rejected_total"] = self.rejected_total
        out["balanced"] = self.balanced()
        return out


def ingest(
    store: Store,
    paths: list[str],
    profile: Profile,
    *,
    expect_rows: int | None = None,
    sha256: str | None = None,
    now: datetime | None = None,
    progress: Progress | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    engine: str = "local",
    scheduler: str | None = None,
) -> IngestReport:
    """Ingest input files through a profile and commit them as one snapshot.

    Parameters
    ----------
    store
        The store to commit to.
    paths
        Input files (CSV, CSV.gz, Parquet/GeoParquet, GeoJSON, GeoPackage, Shapefile).
    profile
        The source profile.
    expect_rows, sha256
        Integrity checks of the whole input (override the profile's ``[expect]``); a
        mismatch aborts before anything is written.
    now
        The reference time for "future" dates (default: the current time).
    progress
        Called with a short message at each stage.
    batch_rows
        Rows read, validated and written at a time (memory follows this, not the input).
    engine, scheduler
        ``local`` (this process) or ``dask`` (tasks on a Dask LocalCluster, or on the
        scheduler at ``scheduler``); both commit the same snapshot.

    Returns
    -------
    IngestReport
    """
    started = time.perf_counter()
    stages: dict[str, float] = {}
    last = [started]
    inform = progress or (lambda _msg: None)

    def say(stage: str) -> None:
        # Each call closes the previous stage; the report keeps the wall-clock split.
        now_ = time.perf_counter()
        if stages or stage != "reading":
            stages[list(stages)[-1] if stages else "reading"] = round(now_ - last[0], 3)
        stages.setdefault(stage, 0.0)
        last[0] = now_
        inform(stage)

    if not paths:
        raise IngestError("give at least one input file")
    now = now or datetime.now(UTC)
    expect_rows = expect_rows if expect_rows is not None else profile.expect.rows
    sha256 = sha256 or profile.expect.sha256

    say("reading")
    _warm_imports()
    for path in paths:
        _check_path(path)
    digests = [file_sha256(Path(p)) for p in paths]
    if sha256 is not None:
        _check_digest(paths, digests, sha256)
    batch_id = _batch_id(profile, digests)

    with store.writing() as parent:
        if parent is not None and batch_id in parent.batches:
            return _already(parent, batch_id, profile, paths, started)
        ctx = PartContext(
            root=str(store.root),
            snapshot=parent.snapshot if parent else None,
            profile=profile,
            now=now,
            batch_id=batch_id,
            layers=tuple(parent.boundary_layers if parent else ()),
            specs=tuple(store.cube_specs(parent)),
        )
        if engine == "local" and parent is not None:
            # Load the layers on a worker while this thread reads the input.
            _workers().submit(_preload_layers, store, parent)
        existing = store.existing_ids(parent, profile.name)
        stored = None
        if len(existing):
            import polars as pl

            stored = pl.Series("e", existing)
        say("validating, enriching and writing")
        parts = (part for path in paths for part in iter_source(path, profile, batch_rows))
        if engine == "dask":
            results = run_dask(prepare_part, ctx, parts, stored, scheduler)
        else:
            results = run_local(prepare_part, ctx, parts, stored)
        files = [f for r in results for f in r.files]
        input_rows = sum(r.input_rows for r in results)
        if expect_rows is not None and input_rows != expect_rows:
            _discard(store, files)
            raise IngestError(
                f"expected {expect_rows} data rows, the input has {input_rows}: the file may be "
                "truncated or not the one declared; nothing was ingested"
            )
        say("committing")
        within = sum(r.duplicates + r.across for r in results)
        stored_dups = sum(r.stored for r in results)
        accepted = sum(r.accepted for r in results)
        assigned = {
            name: sum(r.assigned.get(name, 0) for r in results)
            for name in ([*parent.boundary_layers, "street_id"] if parent else [])
            if name != "street_id" or parent.street_layer  # type: ignore[union-attr]
        }
        report = IngestReport(
            status="committed",
            source=profile.name,
            inputs=[str(Path(p)) for p in paths],
            batch=batch_id,
            snapshot=None,
            input_rows=input_rows,
            accepted=accepted,
            rejected=dict(sum((r.rejected for r in results), Counter())),
            duplicates=within + stored_dups,
            duplicates_within_input=within,
            duplicates_already_stored=stored_dups,
            repairs=dict(sum((r.repairs for r in results), Counter())),
            time_imputed=sum(r.time_imputed for r in results),
            unknown_offenses=dict(sum((r.unknown for r in results), Counter())),
            assigned=assigned,
            parts=len(results),
            engine=engine,
        )
        rejects = [r.rejects for r in results if r.rejects.num_rows]
        if rejects:
            report.rejects_file = _write_rejects(store, batch_id, rejects)
        if not report.balanced():  # a bug, never the input's fault
            _discard(store, files)
            raise IngestError(f"row accounting does not balance: {report.to_dict()}")
        batch = Batch(
            batch=batch_id,
            source=profile.name,
            inputs=report.inputs,
            input_rows=report.input_rows,
            accepted=report.accepted,
            rejected=report.rejected_total,
            duplicates=report.duplicates,
            report="",
            rejects=report.rejects_file,
        )
        manifest = store.commit_files(parent, files, batch)
        report.snapshot = manifest.snapshot
    say("done")
    stages.pop("done", None)
    report.stage_seconds = stages
    report.seconds = round(time.perf_counter() - started, 3)
    return report


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
def _workers() -> ThreadPoolExecutor:
    # One pool for the life of the process: new threads for every part would each leave
    # an abandoned allocator heap behind, and memory would grow with the number of parts.
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="cuadra-ingest")


def _preload_layers(store: Store, parent: Manifest) -> None:
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
    p = _prepare(store, parent, src, profile, taxonomy, jurisdiction, ctx.now, _workers())
    result = PartResult(index, p.input_rows, p.rejected, p.repairs, p.unknown, p.duplicates,
                        p.rejects)  # fmt: skip
    return result, p.records


def _discard(store: Store, files: list[DataFile]) -> None:
    """Remove written files that will not be published (an aborted ingest)."""
    for f in files:
        for rel in (f.path, *f.cubes.values()):
            (store.root / rel).unlink(missing_ok=True)


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


def _warm_imports() -> None:
    """Import pandas on the side while the input is read (I/O, GIL released).

    pyarrow imports pandas (when installed) at its first conversion from numpy, a third
    of a second spent with the GIL held; done here it overlaps reading and hashing.
    """
    import importlib
    import threading

    if pandas_skipped():
        return
    threading.Thread(target=importlib.import_module, args=("pandas",), daemon=True).start()


def _batch_id(profile: Profile, digests: list[str]) -> str:
    digest = hashlib.sha256(profile.name.encode())
    for d in sorted(digests):
        digest.update(d.encode())
    return digest.hexdigest()


def _check_path(path: str) -> None:
    p = Path(path)
    if not p.exists():
        raise IngestError(f"input file {str(p)!r} does not exist")
    if p.is_dir():
        raise IngestError(f"input {str(p)!r} is a folder; give files")


def _check_digest(paths: list[str], digests: list[str], sha256: str) -> None:
    if len(paths) != 1:
        raise IngestError("--sha256 checks a single input file; give one file")
    if digests[0].lower() != sha256.lower():
        raise IngestError(
            f"{Path(paths[0]).name!r} has SHA-256 {digests[0]}, expected "
            f"{sha256.lower()}: the file is not the one declared (truncated or altered)"
        )


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
    clock = _Clock()
    cols = profile.columns
    table = src.table
    n = table.num_rows
    codes = np.zeros(n, dtype=np.int8)
    # Dates are parsed by a worker (Arrow kernels release the GIL) while this thread
    # checks coordinates and indexes cells; date checks only add reject codes of their
    # own, merged once both are done.
    date_col = _column(src, cols.date or cols.datetime, "date")
    assert date_col is not None
    time_col = _column(src, cols.time, "time")
    date_codes = np.zeros(n, dtype=np.int8)
    times_future = pool.submit(parse_local_times, date_col, time_col, profile, date_codes, now)

    # Coordinates first: they are what a map cannot do without.
    source_crs = None
    if cols.geometry is not None:
        geom = _column(src, cols.geometry, "geometry")
        assert geom is not None
        x, y = geometry_points(geom, codes)
        crs_meta = (table.schema.metadata or {}).get(b"crs")
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
        codes = np.where(codes == 0, codes_y, codes).astype(np.int8)
    coords = check_coordinates(x, y, profile, codes, jurisdiction, source_crs)
    clock.lap("coordinates")
    # Enrich every located row now: streets on a worker at once, cells on this thread.
    located = np.flatnonzero(codes == 0)
    enrichment = Enrichment(pool, store, parent, coords.lon[located], coords.lat[located])
    times = times_future.result()
    codes = np.where(codes == 0, date_codes, codes).astype(np.int8)
    clock.lap("dates and times")

    off_col = _column(src, cols.offense, "offense")
    assert off_col is not None
    off = trimmed_dictionary(off_col)
    blank = to_bool(pc.equal(off.dictionary, ""), True)
    index = off.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    no_offense = (index < 0) | blank[np.maximum(index, 0)]
    codes[(codes == 0) & no_offense] = CODE[Reason.MISSING_OFFENSE]

    ok = codes == 0
    # The codes are final: the rejects (read back from the file for a projected read) are
    # gathered by a worker once it is done enriching, while this thread goes on.
    rejects_future = pool.submit(_rejects_table, src, codes)
    rows = np.flatnonzero(ok)
    offense = off.take(pa.array(rows))
    ids, id_key = _incident_ids(
        src, profile, rows, coords.lon[rows], coords.lat[rows], times.local_us[rows], offense
    )
    # Within-file duplicates go now, and rows are put in H3 order, before any column is
    # gathered: one gather per column, in the order the files are written.
    clock.lap("offenses and ids")
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
        "repairs": _repairs_column(
            swapped=coords.swapped[rows],
            from_date=times.time_from_date[rows],
            mojibake=classified.mojibake,
        ),
    }
    clock.lap("gathering columns")
    enriched = enrichment.result()
    clock.lap("waiting for enrichment")
    at_arr = pa.array(at)
    for name, values in enriched.layers.items():
        columns[name] = values.take(at_arr)
    columns["street_id"] = (
        enriched.street.take(at_arr)
        if enriched.street is not None
        else pa.nulls(rows.size, pa.dictionary(pa.int32(), pa.string()))
    )
    records = pa.table(columns)
    clock.lap("gathering enriched columns")
    duplicates = int((~first).sum())
    rejected = Counter(
        {
            REASONS[c - 1].value: int(k)
            for c, k in zip(*np.unique(codes[~ok], return_counts=True), strict=True)
        }
    )
    rejects = rejects_future.result()
    if src.malformed:
        rejected[Reason.MALFORMED_ROW.value] += len(src.malformed)
    repair_counts: Counter[str] = Counter()
    for name, mask in (
        (Repair.SWAPPED_LAT_LON, coords.swapped[rows]),
        (Repair.TIME_FROM_DATE_FIELD, times.time_from_date[rows]),
        (Repair.MOJIBAKE, classified.mojibake),
    ):
        if mask.any():
            repair_counts[name.value] = int(mask.sum())
    return Prepared(
        records=records,
        rejects=rejects,
        input_rows=src.input_rows,
        rejected=rejected,
        repairs=repair_counts,
        unknown=Counter(classified.unknown),
        time_imputed=int(times.imputed[rows].sum()),
        duplicates=duplicates,
    )


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


def _repairs_column(**masks: np.ndarray) -> pa.Array:
    """The ``repairs`` column: comma-joined repair codes per row, null for none."""
    names = {"swapped": Repair.SWAPPED_LAT_LON, "from_date": Repair.TIME_FROM_DATE_FIELD,
             "mojibake": Repair.MOJIBAKE}  # fmt: skip
    n = len(next(iter(masks.values())))
    bits = np.zeros(n, dtype=np.int32)
    for bit, mask in enumerate(masks.values()):
        bits |= mask.astype(np.int32) << bit
    # One dictionary entry per combination of repairs (at most 2**3).
    labels = [
        ",".join(names[key].value for b, key in enumerate(masks) if combo >> b & 1)
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


def _write_rejects(store: Store, batch_id: str, tables: list[pa.Table]) -> str:
    folder = store.root / REJECTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{batch_id[:16]}.csv"
    table = pa.concat_tables(tables, promote_options="default")
    pacsv.write_csv(table, path)
    return str(path)


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


def _already(
    parent: Manifest, batch_id: str, profile: Profile, paths: list[str], started: float
) -> IngestReport:
    old = parent.batches[batch_id]
    return IngestReport(
        status="already_ingested",
        source=profile.name,
        inputs=[str(Path(p)) for p in paths],
        batch=batch_id,
        snapshot=parent.snapshot,
        input_rows=old.input_rows,
        accepted=0,
        duplicates=old.input_rows,
        duplicates_already_stored=old.input_rows,
        seconds=round(time.perf_counter() - started, 3),
    )
