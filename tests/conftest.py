"""Shared fixtures: the real data in ../shared/data, and stores built from it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.layers import add_boundary_file, add_street_file
from store import Store

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
CDMX = DATA / "cdmx"
SAMPLE_CSV = CDMX / "fgj_carpetas_sample_50k.csv.gz"
POINTS = CDMX / "fgj_carpetas_2019_2024_points.parquet"
COLONIAS = CDMX / "colonias_iecm.gpkg"
CUADRANTES = CDMX / "cuadrantes_2023.gpkg"
STREETS = CDMX / "streets_geochicas_person_named_2018.geojson"
SSP_CSV = CDMX / "ssp_crime_lat_long_2013_2016.csv.gz"
# What the second of two simulated releases does to the first (two_releases).
RECLASSIFIED, DELETED = 60, 30


def pytest_sessionstart(session: pytest.Session) -> None:
    # Tests send hundreds of requests a minute from one "address"; the rate limit has its
    # own test with its own settings.
    os.environ.setdefault("CUADRA_RATE_PUBLIC", "100000/minute")
    os.environ.setdefault("CUADRA_RATE_KEYED", "100000/minute")
    if not SAMPLE_CSV.exists():
        raise pytest.UsageError(
            f"the real data is missing: expected {DATA} beside the checkout (see README)"
        )


def add_cdmx_layers(store: Store) -> None:
    """colonia (IECM), cuadrante (SSC 2023) and the Geochicas streets."""
    add_boundary_file(store, "colonia", COLONIAS, id_field="CVEUT", name_field="NOMUT",
                      population_field="SUMPOB1")  # fmt: skip
    add_boundary_file(store, "cuadrante", CUADRANTES, id_field="Nomenclatu")
    add_street_file(store, "calles", STREETS, name_field="name", id_field="id")


def sample_head(path: Path, rows: int) -> Path:
    """The first ``rows`` records of the 50k sample, as a gzip CSV at ``path`` (an earlier release)."""
    import gzip

    with gzip.open(SAMPLE_CSV, "rt", encoding="utf-8", newline="") as src:
        lines = [next(src) for _ in range(rows + 1)]  # the header too
    with gzip.open(path, "wt", encoding="utf-8", newline="") as out:
        out.writelines(lines)
    return path


def two_releases(
    csv: Path, tmp: Path, rows: int, columns: tuple[str, str, str]
) -> tuple[tuple[Path, Path], int]:
    """Release 1 and 2 of a seeded sample of a real file, as CSV files, and the late count.

    Release 1 lacks half of the sample's last month (cases reported late); release 2 has
    them, RECLASSIFIED earlier records under another real offense of the file, and
    DELETED earlier records fewer.

    ``columns``: the file's date, offense and latitude columns (rows without coordinates,
    which ingest rejects, are left out of the sample).
    """
    import numpy as np
    import pandas as pd

    date_column, offense, lat = columns
    rng = np.random.default_rng(20261204)
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    frame = frame[pd.to_numeric(frame[lat], errors="coerce").notna()]
    frame = frame.iloc[np.sort(rng.choice(len(frame), rows, replace=False))].reset_index(drop=True)
    last_month = frame[date_column].str[:7].max()
    in_last = np.flatnonzero(frame[date_column].str[:7].to_numpy() == last_month)
    late = rng.choice(in_last, len(in_last) // 2, replace=False)
    earlier = np.setdiff1d(np.arange(len(frame)), in_last)
    picked = rng.choice(earlier, RECLASSIFIED + DELETED, replace=False)
    reclassified, deleted = picked[:RECLASSIFIED], picked[RECLASSIFIED:]
    second = frame.copy()
    offenses = sorted(set(frame[offense]))
    # Each picked record gets another real offense of the file.
    for i in reclassified:
        old = second.at[i, offense]
        second.at[i, offense] = next(o for o in offenses if o != old)
    second = second.drop(index=deleted)
    first = frame.drop(index=late)
    paths = tmp / "release-1.csv", tmp / "release-2.csv"
    first.to_csv(paths[0], index=False)
    second.to_csv(paths[1], index=False)
    return paths, len(late)


def ingest_two_releases(
    store: Store, tmp: Path, csv: Path, rows: int, columns: tuple[str, str, str], profile: str
) -> tuple[int, int, int]:
    """Release 1 ingested, then release 2 with ``--replace`` (two_releases): both snapshots
    and the number of late cases."""
    from ingest.pipeline import ingest
    from ingest.profiles import load_profile

    (one, two), late = two_releases(csv, tmp, rows, columns)
    prof = load_profile(profile)
    first = ingest(store, [str(one)], prof).snapshot
    second = ingest(store, [str(two)], prof, replace=True).snapshot
    assert first is not None and second is not None
    return first, second, late


@pytest.fixture(scope="session")
def layers_store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding the CDMX layers and no incidents (built once per session)."""
    root = tmp_path_factory.mktemp("layers") / "store"
    add_cdmx_layers(Store(root))
    return root


@pytest.fixture
def layers_store(layers_store_template: Path, tmp_path: Path) -> Iterator[Store]:
    """A private copy of the layers-only store."""
    root = tmp_path / "store"
    shutil.copytree(layers_store_template, root)
    yield Store(root)


@pytest.fixture
def empty_store(tmp_path: Path) -> Store:
    """A store with nothing in it."""
    return Store(tmp_path / "store")


@pytest.fixture(scope="session")
def sample_store(layers_store_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The CDMX layers and the 50k sample (snapshot 4); shared read-only by API tests."""
    from ingest.pipeline import ingest
    from ingest.profiles import load_profile

    root = tmp_path_factory.mktemp("sample") / "store"
    shutil.copytree(layers_store_template, root)
    store = Store(root)
    ingest(store, [str(SAMPLE_CSV)], load_profile("fgj-cdmx"))
    return store


@pytest.fixture(scope="session")
def analyst_key(sample_store: Store) -> str:
    """An analyst key (all sources) of the sample store: exact, unsuppressed figures."""
    from store.keys import KeyRing, Role

    with sample_store.writing():
        _, text = KeyRing(sample_store.root).create(Role.analyst, note="tests")
    return text


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's standalone S3 server on loopback (a real S3 protocol peer), and a bucket.

    Sets the ``AWS_*`` variables that the store's client (and each `cuadra` process the
    tests start) reads; yields the bucket's URL.
    """
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "cuadra",
           "AWS_SECRET_ACCESS_KEY": "cuadra-tests", "AWS_REGION": "us-east-1",
           "AWS_ALLOW_HTTP": "true"}  # fmt: skip
    before = {k: os.environ.get(k) for k in [*env, "CUADRA_CACHE"]}
    os.environ.update(env)
    os.environ["CUADRA_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.2)
        # A bucket is made with a plain S3 call (PUT /bucket): the store never makes one.
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/cuadra", method="PUT"))
        yield "s3://cuadra"
    finally:
        proc.terminate()
        proc.wait()
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
