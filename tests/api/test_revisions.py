"""Revisions reveal nothing: a late report changes no public figure of a published month."""

from __future__ import annotations

import csv
import gzip
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ServerSettings
from ingest.pipeline import ingest
from ingest.profiles import load_profile
from publication import tables
from store import Store
from store.snapshot import Snapshot
from tests.api.test_privacy import FAMILY
from tests.conftest import SAMPLE_CSV

QUESTIONS = [
    {"unit": u, "offense": FAMILY, "start": s, "end": e}
    for u in ("colonia", "h3:6")
    for s, e in (("2023-07-01", "2023-08-01"), ("2023-07-01", "2023-10-01"),
                 ("2023-01-01", "2024-01-01"))
]  # fmt: skip


def late_report(tmp_path: Path) -> Path:
    """One real family-violence report of July 2023, filed again a minute later: a new record."""
    with gzip.open(SAMPLE_CSV, "rt", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        row = next(r for r in reader
                   if r["delito"] == FAMILY and r["fecha_hecho"].startswith("2023-07"))  # fmt: skip
        fields = reader.fieldnames
    assert fields is not None
    hour, minute = row["hora_hecho"][:2], int(row["hora_hecho"][3:5])
    row["hora_hecho"] = f"{hour}:{(minute + 1) % 60:02d}:00"
    path = tmp_path / "late.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerow(row)
    return path


def answers(client: TestClient, headers: dict[str, str] | None = None) -> list[object]:
    out = []
    for q in QUESTIONS:
        response = client.get("/v1/aggregate", params=q, headers=headers or {})
        assert response.status_code == 200, response.text
        body = response.json()
        out.append([body["rows"], body["total"], body["unassigned"]])
    return out


def test_a_late_report_changes_nothing_public(
    sample_store: Store, analyst_key: str, tmp_path: Path
) -> None:
    root = tmp_path / "store"
    shutil.copytree(sample_store.root, root)
    store = Store(root)
    old = store.require_manifest().snapshot
    tables.clear()
    key = {"X-API-Key": analyst_key}
    with TestClient(create_app(ServerSettings(store=root))) as client:
        public_before = answers(client)
        exact_before = answers(client, key)
    report = ingest(store, [str(late_report(tmp_path))], load_profile("fgj-cdmx"))
    assert report.accepted == 1
    tables.clear()
    with TestClient(create_app(ServerSettings(store=root))) as client:
        exact_after = answers(client, key)
        assert exact_after != exact_before  # the analyst sees the late report ...
        assert answers(client) == public_before  # ... the public sees no change at all
        as_of_old = [client.get("/v1/aggregate", params={**q, "as_of": old}).json()["rows"]
                     for q in QUESTIONS]  # fmt: skip
        assert as_of_old == [a[0] for a in public_before]


@pytest.mark.parametrize("delay", [7])
def test_each_month_is_read_from_its_publication_snapshot(sample_store: Store, delay: int) -> None:
    manifest = sample_store.require_manifest()
    from datetime import date

    froms = tables.sources(Snapshot(sample_store, manifest), 2023, date(2024, 1, 1), delay)
    assert len(froms) == 12
    # Every month of 2023 was published before this store existed: read from the first
    # snapshot that holds records of it (the ingest), not from later ones.
    assert set(froms) == {manifest.snapshot}
