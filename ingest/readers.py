"""Reading source files into Arrow tables, keeping every source value as published.

CSV columns are read as text so that a rejected row can be written back exactly as it
came; Parquet and vector formats keep their types. Rows a CSV parser cannot split into the
header's number of fields (a file cut mid-line, a stray quote) are returned separately
with their raw text, to be rejected with reason ``malformed_row``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

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
    """What a reader returns: the rows, the unsplittable lines, and the file's digest."""

    table: pa.Table
    path: str
    sha256: str
    malformed: list[tuple[int, str]] = field(default_factory=list)
    has_geometry: bool = False

    @property
    def input_rows(self) -> int:
        """Rows in the input: parsed rows plus malformed lines."""
        return self.table.num_rows + len(self.malformed)


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
            table = pq.read_table(p)
        except (pa.ArrowInvalid, OSError) as exc:
            raise IngestError(f"{str(p)!r} is not a readable Parquet file: {exc}") from exc
        has_geom = b"geo" in (table.schema.metadata or {})
        return SourceTable(table, str(p), digest, has_geometry=has_geom)
    if name.endswith(VECTOR_SUFFIXES):
        return SourceTable(_read_vector(p, profile), str(p), digest, has_geometry=True)
    raise IngestError(
        f"cannot tell the format of {p.name!r}: expected one of "
        f"{', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES + VECTOR_SUFFIXES)}"
    )


def _read_csv(path: Path, profile: Profile) -> tuple[pa.Table, list[tuple[int, str]]]:
    parse = profile.parse
    malformed: list[tuple[int, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        malformed.append((int(row.number or 0), row.text))
        return "skip"

    header = _csv_header(path, parse.encoding, parse.delimiter)
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(encoding=parse.encoding, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(
                delimiter=parse.delimiter, invalid_row_handler=on_invalid, newlines_in_values=True
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        msg = str(exc)
        if "UTF8" in msg or "utf-8" in msg.lower():
            raise IngestError(
                f"{path.name!r} is not valid {parse.encoding}: {msg}. If the file comes from "
                "Excel or an older system, set [parse] encoding = \"cp1252\" (or \"latin-1\") "
                "in the profile."
            ) from exc
        raise IngestError(f"cannot read {path.name!r} as CSV: {msg}") from exc
    return table, malformed


def _csv_header(path: Path, encoding: str, delimiter: str) -> list[str]:
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding=encoding, newline="") as fh:  # type: ignore[operator]
            first = fh.readline()
    except UnicodeDecodeError as exc:
        raise IngestError(
            f"the header of {path.name!r} is not valid {encoding}; set [parse] encoding"
        ) from exc
    except (OSError, EOFError) as exc:
        raise IngestError(f"cannot read {path.name!r}: {exc}") from exc
    import csv

    names = next(csv.reader([first], delimiter=delimiter), [])
    if not names:
        raise IngestError(f"{path.name!r} is empty: no header line")
    return [n.lstrip("\ufeff") for n in names]


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
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"crs": crs.encode()})
    return table
