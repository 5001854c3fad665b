"""The command-line ingest skips pyarrow's pandas bridge, and nothing else changes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ingest.pipeline import ingest
from ingest.profiles import load_profile
from store import Store
from tests.conftest import ROOT, SAMPLE_CSV

PROBE = """
import sys
import numpy as np
import pyarrow as pa
from ingest.process import arrow_without_pandas
assert arrow_without_pandas()
table = pa.table({"n": pa.array(np.arange(3)), "s": ["a", "b", None]})
assert table.column("n").to_pylist() == [0, 1, 2]
assert "pandas" not in sys.modules
assert table.to_pandas()["n"].tolist() == [0, 1, 2]  # to_pandas imports it on demand
"""


def test_pyarrow_works_without_its_pandas_bridge() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _records(root: Path) -> pa.Table:
    store = Store(root)
    table = store.read(store.require_manifest()).drop_columns(["batch"])
    plain = {c: pc.cast(table[c], pa.string()) if pa.types.is_dictionary(table[c].type)
             else table[c] for c in table.column_names}  # fmt: skip
    return pa.table(plain).sort_by("incident_id")


@pytest.mark.parametrize("batch_rows", [1_000_000, 12_000])
def test_command_line_ingest_commits_what_an_in_process_one_does(
    layers_store_template: Path, tmp_path: Path, batch_rows: int
) -> None:
    # The console process tunes pyarrow and the heap for itself (and the heap again from
    # an input's second part on); the snapshot must not change, in one part or several.
    console, library = tmp_path / "console", tmp_path / "library"
    shutil.copytree(layers_store_template, console)
    shutil.copytree(layers_store_template, library)
    done = subprocess.run(
        [sys.executable, "-m", "api.entry", "ingest", str(SAMPLE_CSV), "--profile", "fgj-cdmx",
         "--store", str(console), "--batch-rows", str(batch_rows), "--json"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    parts = json.loads(done.stdout)["parts"]
    assert parts == 1 if batch_rows > 50_000 else parts > 1
    ingest(Store(library), [str(SAMPLE_CSV)], load_profile("fgj-cdmx"))
    a, b = _records(console), _records(library)
    assert a.num_rows > 45_000
    assert a.equals(b)
