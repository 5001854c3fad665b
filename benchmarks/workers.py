"""Load by process count: public traffic against 1 and 4 server processes and a peer.

`cuadra serve --workers 1` and `--workers 4` on one store (the demo store, or one built
from the real records), and a DuckDB + Flask peer in one process (benchmarks/peer_flask.py),
each driven by locust on loopback (benchmarks/locust_public.py: colonia counts and heatmap
tiles, no think time) at 1, 4, 8, 16 and 32 users for --seconds each. For each server: the
throughput and p99 at each step, and the highest throughput whose p99 stays within 250 ms;
scaling efficiency = (throughput of 4 processes / that of 1) / 4. Load generator and servers
share the machine's cores. Writes the "Load by processes" section of benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/workers.py --store DIR [--seconds 15]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx
from harness import CUADRA, ROOT, free_port, wait_for_release
from results import replace_section

HERE = Path(__file__).resolve().parent
STEPS = (1, 4, 8, 16, 32)
P99_MS = 250


def _up(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit("the server ended")
        time.sleep(0.2)
    raise SystemExit("the server did not start")


def start(kind: str, store: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start a server: ``cuadra-1``, ``cuadra-4`` or ``peer``."""
    port = free_port()
    env = {**os.environ, "CUADRA_RATE_PUBLIC": "10000000/minute", "CUADRA_RATE_TILES": "10000000/minute",
           "CUADRA_RATE_PUBLIC_IN_FLIGHT": "1000"}  # fmt: skip
    if kind == "peer":
        cmd = [sys.executable, str(HERE / "peer_flask.py"), str(port)]
    else:
        cmd = [*CUADRA, "serve", "--store", str(store), "--port", str(port),
               "--workers", kind.split("-")[1]]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=HERE if kind == "peer" else ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    _up(url, proc)
    return proc, url


def step(url: str, users: int, seconds: int, work: Path) -> tuple[float, float, int]:
    """Requests a second, p99 (ms) and failures of one locust run."""
    prefix = work / f"s{users}"
    subprocess.run([sys.executable, "-m", "locust", "-f", str(HERE / "locust_public.py"), "--headless",
                    "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--host", url,
                    "--csv", str(prefix), "--only-summary"], cwd=ROOT, check=False,
                   capture_output=True)  # fmt: skip
    with open(f"{prefix}_stats.csv", newline="") as fh:
        total = next(r for r in csv.DictReader(fh) if r["Name"] == "Aggregated")
    return float(total["Requests/s"]), float(total["99%"]), int(total["Failure Count"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, required=True, help="a store of the real records")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    load_run(args.store, args.seconds, write=not args.no_write)


def load_run(store: Path, seconds: int, write: bool = True) -> None:
    """Drive 1 and 4 processes and the peer; print (and write) the "Load by processes"."""
    work = Path(tempfile.mkdtemp(prefix="cuadra-workers-"))
    results: dict[str, list[tuple[int, float, float, int]]] = {}
    for kind in ("cuadra-1", "cuadra-4", "peer"):
        proc, url = start(kind, store)
        try:
            if kind != "peer":
                # Routed to once the release is there (kept in the store: seconds).
                print(kind, f"release ready in {wait_for_release(url):.1f} s", flush=True)
            step(url, 4, 3, work)  # warm-up
            results[kind] = []
            for users in STEPS:
                rps, p99, failed = step(url, users, seconds, work)
                results[kind].append((users, rps, p99, failed))
                print(
                    kind,
                    users,
                    f"{rps:.0f}/s",
                    f"p99 {p99:.0f} ms",
                    f"failures {failed}",
                    flush=True,
                )
        finally:
            proc.terminate()
            proc.wait()
    best = {
        k: max([r[1] for r in v if r[2] <= P99_MS and not r[3]] or [0.0])
        for k, v in results.items()
    }
    efficiency = best["cuadra-4"] / best["cuadra-1"] / 4 if best["cuadra-1"] else 0.0
    names = {"cuadra-1": "Cuadra, 1 process", "cuadra-4": "Cuadra, 4 processes",
             "peer": "DuckDB + Flask, 1 process"}  # fmt: skip
    lines = [
        f"| {names[k]} | " + " | ".join(f"{rps:,.0f}/s (p99 {p99:,.0f} ms{', ' + str(f) + ' failed' if f else ''})"
                                       for _, rps, p99, f in v) + f" | **{best[k]:,.0f}/s** |"
        for k, v in results.items()
    ]  # fmt: skip
    summary = (f"Scaling efficiency of 4 processes: {efficiency:.2f} ({best['cuadra-4']:,.0f} / "
               f"{best['cuadra-1']:,.0f} / 4) on {os.cpu_count()} cores shared with locust; "
               + (f"1 process against the peer: {best['cuadra-1'] / best['peer']:.1f}× the "
                  f"throughput within p99 ≤ {P99_MS} ms." if best["peer"] else
                  f"the peer's p99 exceeded {P99_MS} ms (or it failed) at every step."))  # fmt: skip
    print(*lines, summary, sep="\n")
    if write:
        replace_section("Load by processes", [
            f"{date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores; `python "
            f"benchmarks/workers.py --store <demo store> --seconds {seconds}`: public traffic "
            "(colonia counts 1 : heatmap tiles 3, no think time), locust on the same machine, "
            f"each step {seconds} s. Cells: requests a second (p99).", "",
            "| server | " + " | ".join(f"{u} users" for u in STEPS) + f" | best with p99 ≤ {P99_MS} ms |",
            "|---" * (len(STEPS) + 2) + "|", *lines, "", summary, "",
        ])  # fmt: skip


if __name__ == "__main__":
    main()
