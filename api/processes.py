"""How `cuadra serve` runs the app: one uvicorn process, or workers forked from a warm parent.

With ``--workers N`` gunicorn's arbiter holds the port and forks the workers (uvicorn's
own worker class inside each) from a parent that has already imported and built the app.
A worker started later (one replacing a killed one, or the next after a restart signal)
is a fork of that parent: it answers in a fraction of a second instead of importing for
one and a half seconds first, and the imported code is shared between the processes'
memory. Each worker runs the app's lifespan itself (store, query engine, threads), so
nothing opened before the fork is shared.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from fastapi import FastAPI
from gunicorn.app.base import BaseApplication
from uvicorn_worker import UvicornWorker

from api.main import create_app, warm_process
from api.settings import ServerSettings

# A worker that has not reported for this long is replaced. Generous: a worker reports
# from its event loop, which a long table build in its threads may hold back a while.
WORKER_TIMEOUT_S = 120


class _Arbiter(BaseApplication):  # type: ignore[misc]  # gunicorn is untyped
    """Gunicorn driven from code: our options, our (preloaded) app."""

    def __init__(self, app: FastAPI, options: dict[str, Any]) -> None:
        self._app = app
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for name, value in self._options.items():
            self.cfg.set(name, value)

    def load(self) -> FastAPI:
        return self._app


class _Worker(UvicornWorker):  # type: ignore[misc]  # uvicorn-worker is untyped
    """Uvicorn's gunicorn worker that also stops at once when the arbiter stops quickly."""

    def _install_sigquit_handler(self) -> None:
        # The arbiter's quick stop (Ctrl-C or SIGQUIT to it) sends its workers SIGQUIT, on
        # which uvicorn's worker only marks itself stopping and is killed 30 s later.
        # Stop as on SIGTERM instead: uvicorn's own graceful shutdown, lifespan included.
        asyncio.get_running_loop().add_signal_handler(
            signal.SIGQUIT, os.kill, os.getpid(), signal.SIGTERM
        )


def _worker_class(settings: ServerSettings) -> type[UvicornWorker]:
    """The worker class, configured as ``uvicorn_options`` configures one process."""
    config = {"loop": "auto", "http": "auto", "lifespan": "on", "access_log": False,
              "proxy_headers": bool(settings.trusted_proxies)}  # fmt: skip
    return type("CuadraWorker", (_Worker,), {"CONFIG_KWARGS": config})


def uvicorn_options(settings: ServerSettings) -> dict[str, Any]:
    """Uvicorn's options for one server process of ``settings``."""
    proxies = ",".join(settings.trusted_proxies)
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": "info",
        # The app writes one structured record per request itself.
        "access_log": False,
        # Forwarded headers only from a configured proxy: uvicorn trusts them from 127.0.0.1
        # by default, and a client on the host could then pick its own address for the
        # rate limit.
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies or None,
    }


def run(settings: ServerSettings) -> None:
    """Serve ``settings`` until stopped: uvicorn alone for one process, else gunicorn."""
    import uvicorn

    app = create_app(settings, serving=True)
    # Before listening: a load balancer routes to the process once it answers, and its
    # first answers should not wait. With workers, in the parent: every fork inherits it.
    warm_process(app)
    if settings.workers == 1:
        uvicorn.run(app, **uvicorn_options(settings))
        return
    _Arbiter(
        app,
        {
            "bind": f"{settings.host}:{settings.port}",
            "workers": settings.workers,
            "worker_class": _worker_class(settings),
            "preload_app": True,
            "timeout": WORKER_TIMEOUT_S,
            "loglevel": "info",
            "accesslog": None,
            # Forwarded headers only from a configured proxy (see uvicorn_options).
            "forwarded_allow_ips": ",".join(settings.trusted_proxies),
            # gunicorn's control socket (a file under $HOME) is not part of Cuadra's set-up.
            "control_socket_disable": True,
        },
    ).run()
