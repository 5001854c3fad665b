"""Every bad-input class of SPEC §4, made by altering rows of the real sample.

Each altered row must be rejected with its own reason code (or accepted and flagged where
the SPEC allows a flagged repair), and every untouched row must be accepted.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from ingest.errors import IngestError
from ingest.pipeline import IngestReport, ingest
from ingest.profiles import PROFILES_DIR, load_profile
from store import Store
from tests.conftest import SAMPLE_CSV

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def sample_rows(n: int = 60) -> tuple[list[str], list[dict[str, str]]]:
    """The first n rows of the real 50k sample, as text, as the file has them."""
    with gzip.open(SAMPLE_CSV, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = [row for _, row in zip(range(n), reader, strict=False)]
        return list(reader.fieldnames or []), rows


def write_csv(path: Path, header: list[str], rows: list[dict[str, str]], *, delimiter: str = ",",
              encoding: str = "utf-8") -> Path:  # fmt: skip
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, delimiter=delimiter, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def profile_variant(tmp_path: Path, **parse: str) -> Path:
    """fgj-cdmx with some [parse] keys changed."""
    text = (PROFILES_DIR / "fgj-cdmx.toml").read_text(encoding="utf-8")
    lines = text.replace(
        "[parse]\n", "[parse]\n" + "".join(f'{k} = "{v}"\n' for k, v in parse.items())
    )
    path = tmp_path / "variant.toml"
    path.write_text(lines, encoding="utf-8")
    return path


def run(
    store: Store, path: Path, profile: str = "fgj-cdmx", **kw: object
) -> tuple[IngestReport, dict[int, str]]:
    report = ingest(store, [str(path)], load_profile(profile), now=NOW, **kw)  # type: ignore[arg-type]
    reasons: dict[int, str] = {}
    if report.rejects_file:
        for row in pacsv.read_csv(report.rejects_file).to_pylist():
            reasons[int(row["_row"]) - 1] = row["_reason"]
    return report, reasons


Alter = Callable[[dict[str, str]], None]
CASES: dict[str, tuple[Alter, str]] = {
    "missing lat": (lambda r: r.update(latitud=""), "missing_coordinates"),
    "NA lon": (lambda r: r.update(longitud="NA"), "missing_coordinates"),
    "text lon": (lambda r: r.update(longitud="-99.1x"), "non_numeric_coordinates"),
    "decimal comma": (lambda r: r.update(latitud=r["latitud"].replace(".", ",")), "decimal_comma"),
    "zero zero": (lambda r: r.update(latitud="0", longitud="0"), "sentinel_coordinates"),
    "9999": (lambda r: r.update(latitud="9999"), "sentinel_coordinates"),
    "projected": (lambda r: r.update(longitud="483512.2", latitud="2145190.7"), "projected_without_crs"),
    "outside": (lambda r: r.update(longitud="-100.232489101509"), "outside_jurisdiction"),
    "out of range": (lambda r: r.update(latitud="119.4"), "out_of_range"),
    "no date": (lambda r: r.update(fecha_hecho=""), "missing_date"),
    "bad date": (lambda r: r.update(fecha_hecho="2023-02-30"), "malformed_date"),
    "extra time field": (lambda r: r.update(hora_hecho="06:30:00:00"), "ambiguous_time"),
    "disagreeing times": (lambda r: r.update(fecha_hecho="2023-05-01 06:30:00", hora_hecho="07:00:00"), "ambiguous_time"),
    "bad time": (lambda r: r.update(hora_hecho="25:61"), "malformed_time"),
    "future": (lambda r: r.update(fecha_hecho="2027-01-01"), "future_date"),
    "before start": (lambda r: r.update(fecha_hecho="2009-06-01"), "before_source_start"),
    "no offense": (lambda r: r.update(delito="  "), "missing_offense"),
}  # fmt: skip


def test_each_bad_input_class_has_its_reason(empty_store: Store, tmp_path: Path) -> None:
    header, rows = sample_rows(len(CASES) + 20)
    expected: dict[int, str] = {}
    for i, (alter, reason) in enumerate(CASES.values()):
        alter(rows[i])
        expected[i] = reason
    report, reasons = run(empty_store, write_csv(tmp_path / "bad.csv", header, rows))
    assert reasons == expected
    assert report.accepted == len(rows) - len(CASES)  # nothing good rejected
    assert report.balanced()


def test_rejects_file_keeps_original_values(empty_store: Store, tmp_path: Path) -> None:
    header, rows = sample_rows(5)
    rows[2]["longitud"] = "-99.1x"
    report, _ = run(empty_store, write_csv(tmp_path / "one.csv", header, rows))
    assert report.rejects_file is not None
    rejected = pacsv.read_csv(report.rejects_file, convert_options=pacsv.ConvertOptions(
        column_types={h: "string" for h in header}))  # fmt: skip
    row = rejected.to_pylist()[0]
    assert row["_reason"] == "non_numeric_coordinates" and row["_row"] == 3
    assert {k: row[k] for k in header} == rows[2]


def test_swapped_coordinates_repaired_inside_jurisdiction(
    empty_store: Store, tmp_path: Path
) -> None:
    header, rows = sample_rows(10)
    lat, lon = rows[0]["latitud"], rows[0]["longitud"]
    rows[0]["latitud"], rows[0]["longitud"] = lon, lat
    report, reasons = run(empty_store, write_csv(tmp_path / "swap.csv", header, rows))
    assert reasons == {} and report.repairs == {"swapped_lat_lon": 1}
    table = empty_store.read(empty_store.require_manifest()).to_pylist()
    fixed = [r for r in table if r["repairs"] == "swapped_lat_lon"]
    assert len(fixed) == 1
    assert (fixed[0]["lon"], fixed[0]["lat"]) == (float(lon), float(lat))


def test_time_in_date_field_is_used_and_flagged(empty_store: Store, tmp_path: Path) -> None:
    header, rows = sample_rows(10)
    rows[0].update(fecha_hecho="2024-11-05 06:30:00", hora_hecho="06:30:00:00")
    report, reasons = run(empty_store, write_csv(tmp_path / "t.csv", header, rows))
    assert reasons == {} and report.repairs == {"time_from_date_field": 1}
    stored = [r for r in empty_store.read(empty_store.require_manifest()).to_pylist()
              if r["repairs"] == "time_from_date_field"]  # fmt: skip
    assert str(stored[0]["local_date"]) == "2024-11-05" and stored[0]["local_hour"] == 6
    assert stored[0]["occurred_at"].isoformat() == "2024-11-05T12:30:00+00:00"  # UTC-6, no DST


def test_filler_times_are_imputed(empty_store: Store, tmp_path: Path) -> None:
    header, rows = sample_rows(6)
    rows[0]["hora_hecho"] = "12:00:00"
    rows[1]["hora_hecho"] = "00:00:00"
    rows[2]["hora_hecho"] = ""
    rows[3]["hora_hecho"] = "12:01:00"
    run(empty_store, write_csv(tmp_path / "f.csv", header, rows))
    table = empty_store.read(empty_store.require_manifest())
    by_hour = {(r["local_hour"], r["time_imputed"]) for r in table.to_pylist()}
    assert (12, True) in by_hour and (0, True) in by_hour
    imputed = sum(table.column("time_imputed").to_pylist())
    others = sum(1 for r in rows[4:] if r["hora_hecho"][:8] in ("12:00:00", "00:00:00"))
    assert imputed == 3 + others


def test_decimal_commas_and_semicolons_when_declared(empty_store: Store, tmp_path: Path) -> None:
    header, rows = sample_rows(20)
    for r in rows:
        r["latitud"] = r["latitud"].replace(".", ",")
        r["longitud"] = r["longitud"].replace(".", ",")
    path = write_csv(tmp_path / "comma.csv", header, rows, delimiter=";")
    profile = profile_variant(tmp_path, decimal=",", delimiter=";")
    report, reasons = run(empty_store, path, str(profile))
    assert reasons == {} and report.accepted == 20


def test_cp1252_file(empty_store: Store, tmp_path: Path) -> None:
    header, rows = sample_rows(40)
    accented = [r for r in rows if any(ch in r["delito"] for ch in "ÁÉÍÓÚÑ")]
    assert accented, "the sample's first rows carry accented offense names"
    path = write_csv(tmp_path / "latin.csv", header, rows, encoding="cp1252")
    # Read as declared: accents intact.
    report, _ = run(empty_store, path, str(profile_variant(tmp_path, encoding="cp1252")))
    offenses = set(empty_store.read(empty_store.require_manifest()).column("offense").to_pylist())
    assert {r["delito"] for r in accented} <= offenses and report.unknown_offenses == {}
    # Read as UTF-8: a clear error that says what to set.
    with pytest.raises(IngestError, match='encoding = "cp1252"'):
        run(Store(tmp_path / "other"), path)


def test_mojibake_is_repaired_and_flagged(empty_store: Store, tmp_path: Path) -> None:
    header, rows = sample_rows(40)
    i = next(i for i, r in enumerate(rows) if "Ú" in r["delito"])
    original = rows[i]["delito"]
    rows[i]["delito"] = original.encode("utf-8").decode("cp1252")
    assert rows[i]["delito"] != original
    report, reasons = run(empty_store, write_csv(tmp_path / "m.csv", header, rows))
    assert reasons == {} and report.repairs == {"mojibake": 1} and report.unknown_offenses == {}
    flagged = [
        r for r in empty_store.read(empty_store.require_manifest()).to_pylist() if r["repairs"]
    ]
    assert [r["offense"] for r in flagged] == [original]


def test_unknown_offense_is_accepted_and_counted(empty_store: Store, tmp_path: Path) -> None:
    header, rows = sample_rows(10)
    rows[0]["delito"] = "DELITO SIN CATALOGAR"
    report, reasons = run(empty_store, write_csv(tmp_path / "u.csv", header, rows))
    assert reasons == {} and report.unknown_offenses == {"DELITO SIN CATALOGAR": 1}
    cats = empty_store.read(empty_store.require_manifest()).column("category").to_pylist()
    assert cats.count("unknown") == 1


def test_duplicates_within_and_across_files(empty_store: Store, tmp_path: Path) -> None:
    header, rows = sample_rows(10)
    a = write_csv(tmp_path / "a.csv", header, rows + [dict(rows[3])])
    report, _ = run(empty_store, a)
    assert (report.accepted, report.duplicates, report.input_rows) == (10, 1, 11)
    b = write_csv(tmp_path / "b.csv", header, rows[5:] + sample_rows(15)[1][10:])
    report, _ = run(empty_store, b)
    assert report.duplicates_already_stored == 5 and report.accepted == 5
    assert empty_store.require_manifest().rows == 15


def test_truncated_file_is_caught_when_declared(empty_store: Store, tmp_path: Path) -> None:
    header, rows = sample_rows(30)
    full = write_csv(tmp_path / "full.csv", header, rows)
    digest = hashlib.sha256(full.read_bytes()).hexdigest()
    cut = write_csv(tmp_path / "cut.csv", header, rows[:25])  # cut on a line boundary
    with pytest.raises(IngestError, match="expected 30 data rows, the input has 25"):
        run(empty_store, cut, expect_rows=30)
    # The parts were written before the count was known: the aborted transaction removed them.
    assert not [p for p in empty_store.root.rglob("*") if p.is_file() and p.suffix != ".lock"]
    with pytest.raises(IngestError, match="SHA-256"):
        run(empty_store, cut, sha256=digest)
    assert empty_store.manifest() is None  # nothing was committed
    report, _ = run(empty_store, full, expect_rows=30, sha256=digest)
    assert report.accepted == 30


def test_line_cut_mid_row_is_a_malformed_row(empty_store: Store, tmp_path: Path) -> None:
    header, rows = sample_rows(12)
    path = write_csv(tmp_path / "mid.csv", header, rows)
    data = path.read_bytes()
    path.write_bytes(data[: data.rstrip(b"\n").rfind(b",")])  # the last line loses fields
    report, reasons = run(empty_store, path)
    assert report.rejected == {"malformed_row": 1} and report.accepted == 11
    assert report.balanced()


def test_parquet_input_with_typed_columns(empty_store: Store, tmp_path: Path) -> None:
    table = pacsv.read_csv(SAMPLE_CSV).slice(0, 500)
    path = tmp_path / "typed.parquet"
    pq.write_table(table, path)  # latitud/longitud as doubles, anio as int
    report, reasons = run(empty_store, path)
    assert reasons == {} and report.accepted == 500


TWELVE_HOUR_PROFILE = """name = "us-12h"
timezone = "America/Los_Angeles"
[columns]
id = "IncidntNum"
lat = "Y"
lon = "X"
datetime = "Date"
offense = "Descript"
[parse]
date_format = ["%m/%d/%Y %I:%M:%S %p"]
"""


def test_twelve_hour_times_are_read_not_imputed(empty_store: Store, tmp_path: Path) -> None:
    """The usual US police export: 12-hour times with AM/PM, in either case."""
    profile = tmp_path / "us-12h.toml"
    profile.write_text(TWELVE_HOUR_PROFILE, encoding="utf-8")
    stamps = {
        "07/02/2012 09:05:00 PM": 21,
        "07/02/2012 12:30:00 AM": 0,
        "07/02/2012 12:30:00 PM": 12,
        "07/03/2012 01:15:00 am": 1,
        "07/03/2012 11:59:59 PM": 23,
    }
    header = ["IncidntNum", "Descript", "Date", "X", "Y"]
    rows = [
        {"IncidntNum": str(120522283 + i), "Descript": "STOLEN TRUCK", "Date": stamp,
         "X": "-122.419458073", "Y": "37.7844990198"}
        for i, stamp in enumerate(stamps)
    ]  # fmt: skip
    report, reasons = run(empty_store, write_csv(tmp_path / "sf.csv", header, rows), str(profile))
    assert reasons == {} and report.accepted == 5 and report.time_imputed == 0
    table = empty_store.read(empty_store.require_manifest(), ["incident_id", "local_hour"])
    got = dict(zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True))
    assert got == {str(120522283 + i): hour for i, hour in enumerate(stamps.values())}


@pytest.mark.parametrize(
    ("fmt", "has_time"),
    [("%Y-%m-%d %H:%M", True), ("%m/%d/%Y %I:%M %p", True), ("%Y-%m-%dT%T", True),
     ("%d/%m/%Y %R", True), ("%Y-%m-%d", False), ("%Y-%m", False), ("%d %%H %Y-%m-%d", False)],
)  # fmt: skip
def test_which_date_formats_carry_a_time(fmt: str, has_time: bool) -> None:
    from ingest.times import carries_time

    assert carries_time(fmt) is has_time
