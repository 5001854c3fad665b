"""The `cuadra` command line, in-process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from api.cli import app
from tests.conftest import CDMX, SAMPLE_CSV

runner = CliRunner()


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("ingest", "boundaries", "streets", "info", "keys", "serve", "demo"):
        assert command in result.output


def test_ingest_report_and_info(tmp_path: Path) -> None:
    store = tmp_path / "store"
    report_path = tmp_path / "report.json"
    result = runner.invoke(app, ["ingest", str(SAMPLE_CSV), "--profile", "fgj-cdmx",
                                 "--store", str(store), "--report", str(report_path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Committed" in result.output and "50,000" in result.output
    report = json.loads(report_path.read_text())
    for key in ("input_rows", "accepted", "rejected", "duplicates", "snapshot"):
        assert key in report
    assert (
        report["input_rows"]
        == report["accepted"] + sum(report["rejected"].values()) + report["duplicates"]
    )

    info = runner.invoke(app, ["info", "--store", str(store), "--json"])
    assert info.exit_code == 0, info.output
    data = json.loads(info.output)
    assert data["snapshot"] == report["snapshot"] == 1
    assert data["records"] == 50_000
    assert all(Path(f).exists() for f in data["files"]) and len(data["files"]) >= 6
    assert data["date_min"] >= "2019-01-01"

    # A data file no snapshot names (what a killed ingest leaves): listed, then deleted.
    stray = Path(data["files"][0]).with_name("stray.parquet")
    stray.write_bytes(Path(data["files"][0]).read_bytes())
    listed = runner.invoke(app, ["vacuum", "--store", str(store), "--dry-run", "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output)["files"] == [stray.relative_to(store).as_posix()]
    assert stray.exists()
    done = runner.invoke(app, ["vacuum", "--store", str(store)])
    assert done.exit_code == 0 and "deleted 1 file" in done.output, done.output
    assert not stray.exists() and all(Path(f).exists() for f in data["files"])


def test_errors_are_clear_and_exit_2(tmp_path: Path) -> None:
    store = tmp_path / "store"
    missing = runner.invoke(
        app, ["ingest", str(tmp_path / "nope.csv"), "-p", "fgj-cdmx", "--store", str(store)]
    )
    assert missing.exit_code == 2 and "does not exist" in missing.output
    profile = runner.invoke(app, ["ingest", str(SAMPLE_CSV), "-p", "nope", "--store", str(store)])
    assert profile.exit_code == 2 and "unknown profile" in profile.output
    empty = runner.invoke(app, ["info", "--store", str(store)])
    assert empty.exit_code == 2 and "empty" in empty.output


def test_boundaries_add_reassigns_stored_incidents(tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert (
        runner.invoke(
            app, ["ingest", str(SAMPLE_CSV), "-p", "fgj-cdmx", "--store", str(store)]
        ).exit_code
        == 0
    )
    result = runner.invoke(app, ["boundaries", "add", "cuadrante", str(CDMX / "cuadrantes_2016.geojson"),
                                 "--id-field", "cuadrante", "--store", str(store), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    # The 2016 file is EPSG:4979 with z = 0: the z is dropped, and said so.
    assert data["notes"]["dropped_z"] == 847 and data["records"] == 50_000
    info = json.loads(runner.invoke(app, ["info", "--store", str(store), "--json"]).output)
    assert info["layers"]["cuadrante"]["version"] == 1 and info["snapshot"] == 2


def test_duplicate_ids_need_dissolve(tmp_path: Path) -> None:
    store = tmp_path / "store"
    dup = runner.invoke(app, ["boundaries", "add", "alcaldia", str(CDMX / "colonias_iecm.gpkg"),
                              "--id-field", "NOMDT", "--store", str(store)])  # fmt: skip
    assert dup.exit_code == 2 and "--dissolve" in dup.output
    ok = runner.invoke(app, ["boundaries", "add", "alcaldia", str(CDMX / "colonias_iecm.gpkg"),
                             "--id-field", "NOMDT", "--population-field", "SUMPOB1",
                             "--dissolve", "--store", str(store), "--json"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["features"] == 16  # Mexico City's 16 alcaldías


def test_the_console_script_exits_2_on_errors(tmp_path: Path) -> None:
    # The installed entry point, as a shell script sees it (CliRunner bypasses main()).
    cuadra = [sys.executable, "-m", "api.entry"]
    store = str(tmp_path / "store")
    for args in (["ingest", str(tmp_path / "nope.csv"), "-p", "fgj-cdmx", "--store", store],
                 ["info", "--store", store], ["info", "--as-of", "x"],
                 ["keys", "create", "--role", "public", "--store", store]):  # fmt: skip
        done = subprocess.run([*cuadra, *args], capture_output=True, text=True, check=False)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
    ok = subprocess.run([*cuadra, "--help"], capture_output=True, text=True, check=False)
    assert ok.returncode == 0


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    from store.keys import KeyRing

    store = str(tmp_path / "store")
    made = runner.invoke(app, ["keys", "create", "--role", "analyst", "--scope", "fgj-cdmx",
                               "--note", "SSC analysts", "--store", store, "--json"])  # fmt: skip
    assert made.exit_code == 0, made.output
    key = json.loads(made.output)
    assert key["role"] == "analyst" and key["scopes"] == ["fgj-cdmx"]
    ring = KeyRing(store)
    stored = (Path(store) / "access" / "keys.json").read_text()
    assert key["key"] not in stored  # only the hash is kept
    found = ring.authenticate(key["key"])
    assert found is not None and found.id == key["id"]
    assert ring.authenticate(key["key"][:-1] + "x") is None
    listed = json.loads(runner.invoke(app, ["keys", "list", "--store", store, "--json"]).output)
    assert [k["id"] for k in listed] == [key["id"]] and "key" not in listed[0]
    revoked = runner.invoke(app, ["keys", "revoke", key["id"], "--store", store])
    assert revoked.exit_code == 0 and ring.authenticate(key["key"]) is None
    again = runner.invoke(app, ["keys", "revoke", key["id"], "--store", store])
    assert again.exit_code == 2 and "already revoked" in again.output


def test_ingest_replace_then_diff(layers_store_template: Path, tmp_path: Path) -> None:
    """A revised release through the command line, and `cuadra diff` saying what it changed."""
    import shutil

    from tests.conftest import DELETED, RECLASSIFIED, two_releases

    store = tmp_path / "store"
    shutil.copytree(layers_store_template, store)
    (one, two), late = two_releases(
        SAMPLE_CSV, tmp_path, 3000, ("fecha_hecho", "delito", "latitud")
    )
    for path, extra in ((one, []), (two, ["--replace"])):
        result = runner.invoke(
            app, ["ingest", str(path), "-p", "fgj-cdmx", "--store", str(store), *extra]
        )
        assert result.exit_code == 0, result.output
    assert "replaced batches" in result.output
    shown = runner.invoke(app, ["diff", "--store", str(store), "--unit", "alcaldia", "--rows", "5"])
    assert shown.exit_code == 2 and "unknown unit" in shown.output
    shown = runner.invoke(app, ["diff", "--store", str(store), "--rows", "5"])
    assert shown.exit_code == 0, shown.output
    assert "Snapshot 4 → 5 by colonia" in shown.output
    assert f"{late:,} new, {DELETED:,} deleted, {RECLASSIFIED:,} moved" in shown.output
    data = json.loads(
        runner.invoke(app, ["diff", "4", "5", "--store", str(store), "--json"]).output
    )
    assert data["totals"]["net"] == late - DELETED and len(data["rows"]) == 20
    for args, message in ((["4", "1"], "later"), (["9"], "no snapshot 9")):
        refused = runner.invoke(app, ["diff", *args, "--store", str(store)])
        assert refused.exit_code == 2 and message in refused.output, refused.output
