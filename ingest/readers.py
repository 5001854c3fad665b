"""Reading source files into Arrow tables, keeping every source value as published.

CSV columns are read as text so that a rejected row can be written back exactly as it
came; Parquet and vector formats keep their types. Rows a CSV parser cannot split into the
header's number of fields (a file cut mid-line, a stray quote) are returned separately
with their raw text, to be rejected with reason ``malformed_row``.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ingest.errors import IngestError
from ingest.profiles import Profile

CSV_SUFFIXES = (".csv", ".csv.gz", ".txt", ".txt.gz", ".tsv", ".tsv.gz")
VECTOR_SUFFIXES = (".geojson", ".json", ".gpkg", ".shp", ".fgb")
PARQUET_SUFFIXES = (".parquet", ".geoparquet", ".pq")


@dataclass
class SourceTable:
    """What a reader returns: the rows, the unsplittable lines, and the file's digest.

    For Parquet, ``table`` holds only the columns the profile maps (the rest are read back
    by ``full_rows`` for the few rows that go to the rejects file).
    """

    table: pa.Table
    path: str
    sha256: str
    malformed: list[tuple[int, str]] = field(default_factory=list)
    has_geometry: bool = False
    projected: bool = False
    offset: int = 0  # rows of the file before this part (streamed reading)

    @property
    def input_rows(self) -> int:
        """Rows in the input: parsed rows plus malformed lines."""
        return self.table.num_rows + len(self.malformed)

    def full_rows(self, rows: npt.NDArray[np.int64]) -> pa.Table:
        """Every source column of the given rows (0-based positions), as published."""
        held = self.table.take(pa.array(rows))
        if not self.projected:
            return held
        # Only the columns not held are read back, from the row groups that hold the rows.
        pf = pq.ParquetFile(self.path)
        names = pf.schema_arrow.names
        unread = [name for name in names if name not in held.column_names]
        at = rows + self.offset  # positions in the file
        starts = np.cumsum(
            [0] + [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)]
        )
        groups = sorted(set(np.searchsorted(starts, at, side="right") - 1))
        if not groups:
            return pf.schema_arrow.empty_table()
        part = pf.read_row_groups(groups, columns=unread)
        base = np.concatenate([np.arange(starts[g], starts[g + 1]) for g in groups])
        extra = part.take(pa.array(np.searchsorted(base, at)))
        return pa.table(
            {
                name: held.column(name) if name in held.column_names else extra.column(name)
                for name in names
            }
        )


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_source(path: str | Path, profile: Profile) -> SourceTable:
    """Read one input file according to its format and the profile's parse options."""
    p = Path(path)
    if not p.exists():
        raise IngestError(f"input file {str(p)!r} does not exist")
    if p.is_dir():
        raise IngestError(f"input {str(p)!r} is a folder; give files")
    name = p.name.lower()
    digest = file_sha256(p)
    if name.endswith(CSV_SUFFIXES):
        table, malformed = _read_csv(p, profile)
        return SourceTable(table, str(p), digest, malformed)
    if name.endswith(PARQUET_SUFFIXES):
        try:
            schema = pq.read_schema(p)
            wanted = [c for c in _mapped_columns(profile) if c in schema.names]
            missing = [c for c in _mapped_columns(profile) if c not in schema.names]
            # A missing column is reported by the pipeline with the file's column list.
            # Dates, times and offense names are few distinct values: read them as Arrow
            # dictionaries straight from Parquet's dictionary pages.
            # ParquetFile, not read_table: read_table loads pyarrow.dataset, and with it
            # pandas, which costs a third of a second at every start.
            table = pq.ParquetFile(
                p, read_dictionary=[c for c in _repetitive_columns(profile) if c in schema.names]
            ).read(columns=None if missing else wanted)
        except (pa.ArrowInvalid, OSError) as exc:
            raise IngestError(f"{str(p)!r} is not a readable Parquet file: {exc}") from exc
        has_geom = b"geo" in (schema.metadata or {})
        return SourceTable(
            table, str(p), digest, has_geometry=has_geom, projected=len(wanted) < len(schema.names)
        )
    if name.endswith(VECTOR_SUFFIXES):
        return SourceTable(_read_vector(p, profile), str(p), digest, has_geometry=True)
    raise IngestError(
        f"cannot tell the format of {p.name!r}: expected one of "
        f"{', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES + VECTOR_SUFFIXES)}"
    )


def iter_source(path: str | Path, profile: Profile, batch_rows: int) -> Iterator[SourceTable]:
    """Read one input file in parts of about ``batch_rows`` rows: memory stays bounded.

    Parquet files, whose row count is known, are cut into equal parts of at most 1.5 ×
    ``batch_rows``; CSV files into parts of ``batch_rows`` (the last fewer). CSV and
    Parquet are streamed; vector formats (GeoJSON, GeoPackage, Shapefile) are
    read whole (they are boundary-sized in practice). A file that fits in one part gives
    exactly what :func:`read_source` gives. Every part carries the file's digest.
    """
    p = Path(path)
    name = p.name.lower()
    if not p.exists() or p.is_dir() or not name.endswith(CSV_SUFFIXES + PARQUET_SUFFIXES):
        yield read_source(p, profile)
        return
    if name.endswith(PARQUET_SUFFIXES):
        try:
            pf = pq.ParquetFile(p)
            rows = pf.metadata.num_rows
        except (pa.ArrowInvalid, OSError) as exc:
            raise IngestError(f"{str(p)!r} is not a readable Parquet file: {exc}") from exc
        # Parts of equal size, each at most 1.5 x batch_rows: a file a little over one
        # part is read whole rather than as a full part and a sliver.
        parts = max(1, round(rows / batch_rows))
        if parts == 1:
            yield read_source(p, profile)
            return
        yield from _parquet_parts(p, profile, -(-rows // parts))
        return
    yield from _csv_parts(p, profile, batch_rows)


def _parts(
    batches: Iterator[pa.RecordBatch], schema: pa.Schema, batch_rows: int
) -> Iterator[tuple[int, pa.Table]]:
    """Group record batches into tables of at least ``batch_rows`` rows (the last fewer)."""
    held: list[pa.RecordBatch] = []
    count = offset = 0
    for rb in batches:
        held.append(rb)
        count += rb.num_rows
        if count >= batch_rows:
            # Dictionaries differ from batch to batch: one per column, as read_source's.
            yield offset, pa.Table.from_batches(held, schema).unify_dictionaries()
            offset += count
            held, count = [], 0
    if held or offset == 0:  # the rest, or an empty file's empty table
        yield offset, pa.Table.from_batches(held, schema).unify_dictionaries()


def _parquet_parts(p: Path, profile: Profile, batch_rows: int) -> Iterator[SourceTable]:
    digest = file_sha256(p)
    schema = pq.read_schema(p)
    wanted = [c for c in _mapped_columns(profile) if c in schema.names]
    missing = [c for c in _mapped_columns(profile) if c not in schema.names]
    pf = pq.ParquetFile(
        p, read_dictionary=[c for c in _repetitive_columns(profile) if c in schema.names]
    )
    has_geom = b"geo" in (schema.metadata or {})
    columns = None if missing else wanted
    batches = pf.iter_batches(batch_size=65_536, columns=columns)
    first = next(batches)  # the file has more rows than a part: there is a batch
    batches = itertools.chain([first], batches)
    arrow_schema = first.schema
    for offset, table in _parts(batches, arrow_schema, batch_rows):
        yield SourceTable(
            table,
            str(p),
            digest,
            has_geometry=has_geom,
            projected=len(wanted) < len(schema.names),
            offset=offset,
        )


def _csv_parts(p: Path, profile: Profile, batch_rows: int) -> Iterator[SourceTable]:
    digest = file_sha256(p)
    malformed: list[tuple[int, str]] = []
    try:
        # Blocks of about a tenth of a part (CSV rows run 100-300 bytes), 1-16 MB.
        block = int(min(1 << 24, max(1 << 20, batch_rows * 20)))
        options = _csv_options(p, profile, malformed, block)
        reader = pacsv.open_csv(p, **options)  # type: ignore[arg-type]
        for offset, table in _parts(iter(reader), reader.schema, batch_rows):
            # Lines that could not be split belong to the part read when they were met.
            part, malformed[:] = list(malformed), []
            yield SourceTable(table, str(p), digest, part, offset=offset)
    except pa.ArrowInvalid as exc:
        raise _csv_error(p, profile, exc) from exc


def _mapped_columns(profile: Profile) -> list[str]:
    cols = profile.columns
    names = [cols.id, cols.lat, cols.lon, cols.x, cols.y, cols.geometry, cols.date]
    names += [cols.datetime, cols.time, cols.offense]
    return list(dict.fromkeys(n for n in names if n is not None))


def _repetitive_columns(profile: Profile) -> list[str]:
    cols = profile.columns
    names = [cols.date, cols.datetime, cols.time, cols.offense]
    return list(dict.fromkeys(n for n in names if n is not None))


def _csv_options(
    path: Path, profile: Profile, malformed: list[tuple[int, str]], block_size: int = 1 << 24
) -> dict[str, object]:
    parse = profile.parse

    def on_invalid(row: pacsv.InvalidRow) -> str:
        malformed.append((int(row.number or 0), row.text))
        return "skip"

    header = _csv_header(path, parse.encoding, parse.delimiter)
    repetitive = set(_repetitive_columns(profile))
    return {
        "read_options": pacsv.ReadOptions(encoding=parse.encoding, block_size=block_size),
        "parse_options": pacsv.ParseOptions(
            delimiter=parse.delimiter, invalid_row_handler=on_invalid, newlines_in_values=True
        ),
        "convert_options": pacsv.ConvertOptions(
            column_types={
                name: pa.dictionary(pa.int32(), pa.string()) if name in repetitive else pa.string()
                for name in header
            },
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    }


def _csv_error(path: Path, profile: Profile, exc: pa.ArrowInvalid) -> IngestError:
    msg = str(exc)
    if "UTF8" in msg or "utf-8" in msg.lower():
        return IngestError(_encoding_hint(path.name, profile.parse.encoding, msg))
    return IngestError(f"cannot read {path.name!r} as CSV: {msg}")


def _read_csv(path: Path, profile: Profile) -> tuple[pa.Table, list[tuple[int, str]]]:
    malformed: list[tuple[int, str]] = []
    try:
        table = pacsv.read_csv(path, **_csv_options(path, profile, malformed))  # type: ignore[arg-type]
    except pa.ArrowInvalid as exc:
        raise _csv_error(path, profile, exc) from exc
    return table, malformed


def _encoding_hint(name: str, encoding: str, detail: str) -> str:
    return (
        f"{name!r} is not valid {encoding} ({detail}). If the file comes from Excel or an "
        'older system, set [parse] encoding = "cp1252" (or "latin-1") in the profile.'
    )


def _csv_header(path: Path, encoding: str, delimiter: str) -> list[str]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            first = fh.readline()
    except (OSError, EOFError) as exc:
        raise IngestError(f"cannot read {path.name!r}: {exc}") from exc
    try:
        line = first.decode(encoding)
    except UnicodeDecodeError as exc:
        raise IngestError(_encoding_hint(path.name, encoding, f"header: {exc}")) from exc
    names = next(csv.reader([line], delimiter=delimiter), [])
    if not names:
        raise IngestError(f"{path.name!r} is empty: no header line")
    return [n.lstrip("\ufeff").strip("\r\n") for n in names]


def _read_vector(path: Path, profile: Profile) -> pa.Table:
    import pyogrio

    try:
        meta, table = pyogrio.read_arrow(path, layer=profile.parse.layer)
    except Exception as exc:  # pyogrio raises several GDAL error types
        raise IngestError(f"cannot read {path.name!r} with GDAL: {exc}") from exc
    geom_name = meta.get("geometry_name") or "wkb_geometry"
    if geom_name in table.column_names and geom_name != "geometry":
        table = table.rename_columns(
            ["geometry" if c == geom_name else c for c in table.column_names]
        )
    crs = meta.get("crs")
    if crs:
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), b"crs": crs.encode()}
        )
    return table
