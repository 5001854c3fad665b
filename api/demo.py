"""`cuadra demo`: find the Mexico City data, load it once, and say what was done."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console

from api.basemap import archive_path, build_store_basemap
from ingest.layers import add_boundary_file, add_street_file
from ingest.pipeline import ingest
from ingest.profiles import load_profile
from store import Store

POINTS = "fgj_carpetas_2019_2024_points.parquet"
COLONIAS = "colonias_iecm.gpkg"
CUADRANTES = "cuadrantes_2023.gpkg"
STREETS = "streets_geochicas_person_named_2018.geojson"


class DemoError(RuntimeError):
    """The demo data cannot be found or fetched."""


def find_data(explicit: Path | None) -> Path:
    """Locate the CDMX folder: --data, $CUADRA_DEMO_DATA, or ../shared/data/cdmx."""
    candidates = [explicit] if explicit else []
    if os.environ.get("CUADRA_DEMO_DATA"):
        candidates.append(Path(os.environ["CUADRA_DEMO_DATA"]))
    here = Path(__file__).resolve().parent.parent
    candidates += [
        here.parent / "shared" / "data" / "cdmx",
        Path.cwd().parent / "shared" / "data" / "cdmx",
    ]
    for c in candidates:
        if c is not None and (c / POINTS).exists():
            return c
    url = load_profile("fgj-cdmx").url
    raise DemoError(
        f"the Mexico City sample ({POINTS}) was not found in: "
        f"{', '.join(str(c) for c in candidates if c is not None)}. Download the official "
        f"open-data file from {url} (this machine may have no internet access), or point "
        "--data / CUADRA_DEMO_DATA at a folder holding it"
    )


def prepare_demo(store: Store, data_dir: Path | None, out: Console) -> None:
    """Load layers and incidents into the store unless they are already there."""
    folder = find_data(data_dir)
    manifest = store.manifest()
    layers = manifest.layers if manifest else {}
    boundaries = [
        ("colonia", "colonias (IECM)", COLONIAS, {"id_field": "CVEUT", "name_field": "NOMUT"}),
        (
            "alcaldia",
            "alcaldías (colonias dissolved by NOMDT)",
            COLONIAS,
            {"id_field": "NOMDT", "name_field": "NOMDT", "dissolve": True},
        ),
        (
            "cuadrante",
            "cuadrantes (SSC 2023)",
            CUADRANTES,
            {"id_field": "Nomenclatu", "name_field": "Nomenclatu"},
        ),
    ]
    for name, label, file, options in boundaries:
        if name not in layers:
            out.print(f"Adding {label} ...")
            add_boundary_file(store, name, folder / file, population_field="SUMPOB1", **options)  # type: ignore[arg-type]
    if "calles" not in layers:
        out.print("Adding streets (Geochicas, partial network) ...")
        add_street_file(store, "calles", folder / STREETS, name_field="name", id_field="id")
    if not archive_path(store).exists() or any(n not in layers for n, *_ in boundaries):
        out.print("Building the basemap from the layers ...")
        _, tiles = build_store_basemap(store)
        out.print(f"basemap: {tiles:,} tiles in {archive_path(store)}")
    out.print(f"Ingesting {POINTS} ...")
    report = ingest(store, [str(folder / POINTS)], load_profile("fgj-cdmx"))
    out.print(
        f"snapshot {report.snapshot}: {report.input_rows:,} rows, {report.accepted:,} accepted, "
        f"{report.rejected_total:,} rejected, {report.duplicates:,} duplicates ({report.status})"
    )
