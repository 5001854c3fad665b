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

    @property
    def input_rows(self) -> int:
        """Rows in the input: parsed rows plus malformed lines."""
        return self.table.num_rows + len(self.malformed)

    def full_rows(self, rows: npt.NDArray[np.int64]) -> pa.Table:
        """Every source column of the given rows (0-based positions), as published."""
        if not self.projected:
            return self.table.take(pa.array(rows))
        pf = pq.ParquetFile(self.path)
        starts = np.cumsum(
            [0] + [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)]
        )
        groups = sorted(set(np.searchsorted(starts, rows, side="right") - 1))
        if not groups:
            return pf.schema_arrow.empty_table()
        part = pf.read_row_groups(groups)
        base = np.concatenate([np.arange(starts[g], starts[g + 1]) for g in groups])
        return part.take(pa.array(np.searchsorted(base, rows)))


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


def _mapped_columns(profile: Profile) -> list[str]:
    cols = profile.columns
    names = [cols.id, cols.lat, cols.lon, cols.x, cols.y, cols.geometry, cols.date]
    names += [cols.datetime, cols.time, cols.offense]
    return list(dict.fromkeys(n for n in names if n is not None))


def _repetitive_columns(profile: Profile) -> list[str]:
    cols = profile.columns
    names = [cols.date, cols.datetime, cols.time, cols.offense]
    return list(dict.fromkeys(n for n in names if n is not None))


def _read_csv(path: Path, profile: Profile) -> tuple[pa.Table, list[tuple[int, str]]]:
    parse = profile.parse
    malformed: list[tuple[int, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        malformed.append((int(row.number or 0), row.text))
        return "skip"

    header = _csv_header(path, parse.encoding, parse.delimiter)
    repetitive = set(_repetitive_columns(profile))
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(encoding=parse.encoding, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(
                delimiter=parse.delimiter, invalid_row_handler=on_invalid, newlines_in_values=True
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={
                    name: pa.dictionary(pa.int32(), pa.string())
                    if name in repetitive
                    else pa.string()
                    for name in header
                },
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        msg = str(exc)
        if "UTF8" in msg or "utf-8" in msg.lower():
            raise IngestError(_encoding_hint(path.name, parse.encoding, msg)) from exc
        raise IngestError(f"cannot read {path.name!r} as CSV: {msg}") from exc
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
