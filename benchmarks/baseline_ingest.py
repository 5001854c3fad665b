"""The pipeline a competent analyst writes by hand with geopandas (the baseline).

read -> points_from_xy -> sjoin x2 (colonias, cuadrantes) -> sjoin_nearest to the streets in
EPSG:32614 within 50 m -> per-row h3.latlng_to_cell -> to_parquet. Run as its own process by
benchmarks/ingest.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import geopandas as gpd
import h3
import pandas as pd


def main(data: Path, out: Path) -> None:
    df = pd.read_parquet(data / "fgj_carpetas_2019_2024_points.parquet")
    points = gpd.GeoDataFrame(
        df, geometry=gpd.points_from_xy(df["longitud"], df["latitud"]), crs="EPSG:4326"
    )
    colonias = gpd.read_file(data / "colonias_iecm.gpkg")[["CVEUT", "geometry"]]
    cuadrantes = gpd.read_file(data / "cuadrantes_2023.gpkg")[["Nomenclatu", "geometry"]]
    streets = gpd.read_file(data / "streets_geochicas_person_named_2018.geojson")[["geometry"]]
    points = gpd.sjoin(points, colonias, how="left", predicate="within").drop(columns="index_right")
    points = points[~points.index.duplicated()]
    points = gpd.sjoin(points, cuadrantes, how="left", predicate="within").drop(
        columns="index_right"
    )
    points = points[~points.index.duplicated()]
    metric = points.to_crs(32614)
    near = gpd.sjoin_nearest(
        metric[["geometry"]], streets.to_crs(32614), how="left", max_distance=50
    )
    near = near[~near.index.duplicated()]
    points["street"] = near["index_right"]
    points["h3"] = [
        h3.latlng_to_cell(lat, lon, 15)
        for lat, lon in zip(points["latitud"], points["longitud"], strict=True)
    ]
    points.to_parquet(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
