"""The built-in profiles on their real files, and the offense taxonomy."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ingest.errors import IngestError
from ingest.pipeline import ingest
from ingest.profiles import builtin_profiles, load_profile
from ingest.taxonomy import TAXONOMY_DIR, Taxonomy, fold
from store import Store
from tests.conftest import CDMX, DATA, POINTS


def test_builtin_profiles() -> None:
    assert {"fgj-cdmx", "ssp-cdmx", "police-uk"} <= set(builtin_profiles())
    for name in builtin_profiles():
        assert load_profile(name).name == name


def test_bad_profile_names_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('name = "x"\ntimezone = "Mars/Olympus"\n[columns]\noffense = "d"\n')
    with pytest.raises(IngestError, match="lat and lon"):
        load_profile(str(path))
    with pytest.raises(IngestError, match="unknown profile 'nope'"):
        load_profile("nope")


def test_every_published_offense_has_a_category() -> None:
    taxonomy = Taxonomy.load()
    fgj = pq.read_table(POINTS, columns=["delito"]).column(0).unique().to_pylist()
    assert len(fgj) == 321
    missing = [name for name in fgj if fold(name) not in taxonomy.table]
    assert missing == []
    with open(TAXONOMY_DIR / "categories.csv", encoding="utf-8") as fh:
        categories = {r["category"] for r in csv.DictReader(fh)}
    assert {cat for cat, _ in taxonomy.table.values()} <= categories
    sensitive = {name for name in fgj if taxonomy.table[fold(name)][1]}
    for name in ("VIOLACION", "ABUSO SEXUAL", "VIOLENCIA FAMILIAR", "PERDIDA DE LA VIDA POR SUICIDIO",
                 "CORRUPCION DE MENORES E INCAPACES", "FEMINICIDIO"):  # fmt: skip
        assert name in sensitive
    for name in ("ROBO A TRANSEUNTE EN VIA PUBLICA CON VIOLENCIA", "FRAUDE", "HOMICIDIO DOLOSO"):
        assert name not in sensitive


def test_ssp_file(empty_store: Store) -> None:
    report = ingest(empty_store, [str(CDMX / "ssp_crime_lat_long_2013_2016.csv.gz")],
                    load_profile("ssp-cdmx"))  # fmt: skip
    assert report.input_rows == 132_692 and report.balanced()
    # "NA" coordinates are missing, never parsed.
    assert report.rejected.get("missing_coordinates", 0) >= 1_551
    assert report.unknown_offenses == {}


def test_police_uk_month_dates_and_identical_rows(empty_store: Store) -> None:
    path = DATA / "west_yorkshire" / "2018-07-west-yorkshire-street.csv.gz"
    report = ingest(empty_store, [str(path)], load_profile("police-uk"))
    assert report.input_rows == 31_635 and report.balanced()
    assert report.rejected == {"missing_coordinates": 883}
    # Identical anti-social-behaviour rows are distinct incidents: none dropped.
    assert report.duplicates == 0
    table = empty_store.read(empty_store.require_manifest(), ["local_date", "time_imputed"])
    assert set(map(str, table.column("local_date").to_pylist())) == {"2018-07-01"}
    assert all(table.column("time_imputed").to_pylist())
