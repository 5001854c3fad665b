"""The README's five-minute tour, run top to bottom as written (in a temporary store)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

from tests.conftest import ROOT

# What the test changes, and only this: where the store, the report and the server live,
# that a failed request fails the script, and that opening a page in a browser is a GET.
PRELUDE = """set -euo pipefail
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
curl() { command curl -fsS --retry-connrefused --retry 40 --max-time 600 "$@" > /dev/null; }
xdg-open() { curl "$1"; }
"""


def _tour() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## A five-minute tour", 1)[1]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = _tour().replace("/tmp/cuadra-tour", str(tmp_path / "store"))
    script = script.replace("/tmp/report.json", str(tmp_path / "report.json"))
    script = script.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    assert "cuadra serve &" in script and script.count("curl") >= 6
    env = {**os.environ, "CUADRA_PORT": str(port)}
    done = subprocess.run(["bash", "-c", PRELUDE + script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1500)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "already_ingested" in done.stdout or "already" in done.stdout
    assert (tmp_path / "report.json").exists()
