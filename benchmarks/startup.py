"""Start-up: how soon a new server process answers, and answers the public.

`cuadra serve` on a store whose public release is already kept (the demo store after one
server has run on it), started afresh --runs times. For each run, seconds from the start
of the process to: the first `/health` answer, the release `ready`, and the first answer of
each public kind a map asks at load (the map page, colonia counts, a heatmap tile), asked
one after another as soon as the release is ready. Then, with `--workers 2`, one worker is
killed (-9) and the seconds until its replacement's "Application startup complete" are
timed (from the server's log). Also the import time of the app alone (`python -c "import
api.main"`). Writes the "Start-up" section of benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/startup.py --store DIR [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx
import psutil
from harness import CUADRA, ROOT, free_port
from results import replace_section

FIRST_ASKS = {
    "map page": ("/map", {}),
    "colonia counts": ("/v1/aggregate", {"unit": "colonia", "start": "2024-01-01", "end": "2025-01-01"}),
    "heatmap tile": ("/v1/tiles/heatmap/13/1838/3645.png", {"start": "2024-01-01", "end": "2025-01-01"}),
}  # fmt: skip
POLL = 0.02


def _import_seconds() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import api.main"], cwd=ROOT, check=True)
    return time.perf_counter() - t0


def _replace_one(proc: subprocess.Popen[bytes], log: Path) -> float:
    """Kill one worker (-9); seconds until the replacement says its start is complete."""
    victim = psutil.Process(proc.pid).children()[0].pid
    t0 = time.perf_counter()
    os.kill(victim, signal.SIGKILL)
    while time.perf_counter() - t0 < 60:
        pids = re.findall(r"\[(\d+)\] \[INFO\] Application startup complete", log.read_text())
        if any(int(p) not in (victim, *_first_pids(log)) for p in pids):
            return time.perf_counter() - t0
        time.sleep(POLL / 4)
    raise SystemExit("no worker replaced the killed one in a minute")


def _first_pids(log: Path) -> list[int]:
    text = log.read_text()
    return [int(p) for p in re.findall(r"Booting worker with pid: (\d+)", text)][:2]


def one_start(store: Path, workers: int, log: Path) -> dict[str, float]:
    """Seconds from `cuadra serve` to each milestone, for one fresh process."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen([*CUADRA, "serve", "--store", str(store), "--port", str(port),
                                 "--workers", str(workers)], cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    seen: dict[str, float] = {}
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            while "release ready" not in seen:
                if proc.poll() is not None:
                    raise SystemExit("the server ended")
                if time.perf_counter() - t0 > 600:
                    raise SystemExit("the server was not ready in 10 minutes")
                try:
                    state = client.get("/health").json().get("release")
                except httpx.TransportError:
                    time.sleep(POLL)
                    continue
                seen.setdefault("health", time.perf_counter() - t0)
                if state == "ready":
                    seen["release ready"] = time.perf_counter() - t0
                else:
                    time.sleep(POLL)
            for name, (path, params) in FIRST_ASKS.items():
                response = client.get(path, params=params)
                if response.status_code not in (200, 204):
                    raise SystemExit(f"{name}: {response.status_code} {response.text[:200]}")
                seen[name] = time.perf_counter() - t0
        if workers > 1:
            seen["worker replaced"] = _replace_one(proc, log)
    finally:
        proc.terminate()
        proc.wait()
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, required=True, help="a store with a kept release")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    imports = statistics.median(_import_seconds() for _ in range(args.runs))
    print(f"import api.main: {imports:.2f} s", flush=True)
    rows = []
    log = Path(tempfile.mkdtemp(prefix="cuadra-startup-")) / "server.log"
    for workers in (1, 2):
        one_start(args.store, workers, log)  # the release kept, the OS's file cache warm
        runs = [one_start(args.store, workers, log) for _ in range(args.runs)]
        medians = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"--workers {workers}:", ", ".join(f"{k} {v:.2f} s" for k, v in medians.items()))
        rows.append(f"| `--workers {workers}` | " + " | ".join(f"{v:.2f}" for v in medians.values())
                    + (" |" if workers > 1 else " | – |"))  # fmt: skip
    if not args.no_write:
        header = ["health", "release ready", *FIRST_ASKS, "a killed worker replaced"]
        replace_section("Start-up", [
            f"{date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores; `python "
            f"benchmarks/startup.py --store <demo store> --runs {args.runs}`: a fresh `cuadra "
            "serve` on a store whose release is kept; seconds from the process's start (median "
            f"of {args.runs}), each first ask made once the release is ready. `import api.main` "
            f"alone: {imports:.2f} s.", "",
            "| server | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|", *rows, "",
        ])  # fmt: skip


if __name__ == "__main__":
    main()
