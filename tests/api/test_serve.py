"""`cuadra serve` as an operator runs it: settings from the environment, a busy port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from store import Store
from tests.conftest import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(store: Store, env: dict[str, str], output: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "api.entry", "serve", "--store", str(store.root)],
        cwd=ROOT,
        env={**os.environ, "CUADRA_WARM_RELEASE": "false", **env},
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_port_from_the_environment_and_a_busy_port_is_one_line(sample_store: Store) -> None:
    port = _free_port()
    env = {"CUADRA_PORT": str(port), "CUADRA_HOST": "127.0.0.1"}
    first = _serve(sample_store, env, subprocess.DEVNULL)
    try:
        for _ in range(150):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        else:
            raise AssertionError("the server did not listen on CUADRA_PORT")
        second = _serve(sample_store, env, subprocess.PIPE)
        out, _ = second.communicate(timeout=60)
        assert second.returncode == 2
        lines = [ln for ln in out.splitlines() if ln.strip()]
        assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0], out
        assert "Traceback" not in out
    finally:
        first.terminate()
        first.wait(timeout=30)
