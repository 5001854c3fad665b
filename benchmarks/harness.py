"""What the HTTP benchmarks share: running the CLI and a server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
CUADRA = [sys.executable, "-m", "api.entry"]
CDMX = ROOT.parent / "shared" / "data" / "cdmx"
POINTS = CDMX / "fgj_carpetas_2019_2024_points.parquet"


def run(args: list[str]) -> str:
    """Run a ``cuadra`` command from the checkout; its standard output."""
    done = subprocess.run([*CUADRA, *args], cwd=ROOT, check=True, capture_output=True, text=True)
    return done.stdout


def measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one process (``os.wait4``'s rusage)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"{' '.join(cmd)} failed ({status}): {err[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def build_cdmx_store(root: Path) -> str:
    """A store of the real records (colonias + the 2019-2024 points); an analyst key."""
    run(["boundaries", "add", "colonia", str(CDMX / "colonias_iecm.gpkg"), "--id-field", "CVEUT",
         "--name-field", "NOMUT", "--population-field", "SUMPOB1", "--store", str(root)])  # fmt: skip
    run(["ingest", str(POINTS), "--profile", "fgj-cdmx", "--store", str(root), "--json"])
    made = json.loads(run(["keys", "create", "--role", "analyst", "--store", str(root), "--json"]))
    return str(made["key"])


def free_port() -> int:
    """A port nothing listens on now, on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``cuadra serve`` over a store on a free port; the process and its URL."""
    port = free_port()
    proc = subprocess.Popen([*CUADRA, "serve", "--store", str(root), "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


def wait_for_release(url: str, timeout: float = 600) -> float:
    """Wait until the server's public release is built (``/health``); seconds waited."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        state = httpx.get(f"{url}/health", timeout=5).json().get("release")
        if state == "ready":
            return time.perf_counter() - t0
        if state == "failed":
            raise SystemExit("the public release failed to build (see the server log)")
        time.sleep(0.5)
    raise SystemExit("the public release was not ready in time")


def get_when_ready(
    client: httpx.Client, path: str, params: dict[str, str], timeout: float = 600
) -> httpx.Response:
    """GET until the answer is not 503 (a public table built on the server's worker)."""
    t0 = time.perf_counter()
    while True:
        response = client.get(path, params=params)
        if response.status_code != 503 or time.perf_counter() - t0 > timeout:
            response.raise_for_status()
            return response
        time.sleep(min(float(response.headers.get("Retry-After", "1")), 5.0))


def write_redated_profile(work: Path) -> Path:
    """``work/profile.toml``: the fgj-cdmx profile without its start date, which the
    re-dated copies of the scale benchmarks precede."""
    profile = (ROOT / "data" / "profiles" / "fgj-cdmx.toml").read_text(encoding="utf-8")
    profile = "\n".join(ln for ln in profile.splitlines() if not ln.startswith("start_date"))
    path = work / "profile.toml"
    path.write_text(profile, encoding="utf-8")
    return path


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (1..99) of the values."""
    return statistics.quantiles(values, n=100)[int(q) - 1]
