"""`cuadra demo`: find the Mexico City data, load it once, and say what was done."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console

from ingest.layers import read_boundaries, read_streets
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
    if "colonia" not in layers:
        out.print("Adding colonias (IECM) ...")
        data, notes = read_boundaries(
            folder / COLONIAS, id_field="CVEUT", name_field="NOMUT", population_field="SUMPOB1"
        )
        with store.writing() as parent:
            store.add_boundary(
                parent,
                "colonia",
                data,
                id_field="CVEUT",
                name_field="NOMUT",
                population_field="SUMPOB1",
                source_file=str(folder / COLONIAS),
                notes=notes,
            )
    if "alcaldia" not in layers:
        out.print("Adding alcaldías (colonias dissolved by NOMDT) ...")
        data, notes = read_boundaries(
            folder / COLONIAS,
            id_field="NOMDT",
            name_field="NOMDT",
            population_field="SUMPOB1",
            dissolve=True,
        )
        with store.writing() as parent:
            store.add_boundary(
                parent,
                "alcaldia",
                data,
                id_field="NOMDT",
                name_field="NOMDT",
                population_field="SUMPOB1",
                source_file=str(folder / COLONIAS),
                notes=notes,
            )
    if "cuadrante" not in layers:
        out.print("Adding cuadrantes (SSC 2023) ...")
        data, notes = read_boundaries(
            folder / CUADRANTES,
            id_field="Nomenclatu",
            name_field="Nomenclatu",
            population_field="SUMPOB1",
        )
        with store.writing() as parent:
            store.add_boundary(
                parent,
                "cuadrante",
                data,
                id_field="Nomenclatu",
                name_field="Nomenclatu",
                population_field="SUMPOB1",
                source_file=str(folder / CUADRANTES),
                notes=notes,
            )
    if "calles" not in layers:
        out.print("Adding streets (Geochicas, partial network) ...")
        sdata, snotes = read_streets(folder / STREETS, name_field="name", id_field="id")
        with store.writing() as parent:
            store.add_streets(
                parent,
                "calles",
                sdata,
                name_field="name",
                source_file=str(folder / STREETS),
                notes=snotes,
            )
    out.print(f"Ingesting {POINTS} ...")
    report = ingest(store, [str(folder / POINTS)], load_profile("fgj-cdmx"))
    out.print(
        f"snapshot {report.snapshot}: {report.input_rows:,} rows, {report.accepted:,} accepted, "
        f"{report.rejected_total:,} rejected, {report.duplicates:,} duplicates ({report.status})"
    )
