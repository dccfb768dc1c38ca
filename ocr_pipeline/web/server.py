"""``ocr-pipeline serve``: the daemon and the HTTP front in one process, or the front alone.

The daemon keeps the main thread (its signal handlers drain on SIGTERM and reload on SIGHUP);
uvicorn runs in a second thread, where it installs no signal handlers, and is told to stop once
the daemon has drained. With ``--front-only`` the HTTP server runs alone over the folders of a
daemon that runs elsewhere (another container on the same volume) and uvicorn handles signals.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import uvicorn

from ocr_pipeline.audit import get_logger
from ocr_pipeline.errors import ConfigError
from ocr_pipeline.metrics import Metrics
from ocr_pipeline.settings import Settings
from ocr_pipeline.web.app import create_app
from ocr_pipeline.web.security import check_bind, load_tokens

STARTUP_SECONDS = 30.0
"""Longest wait for the HTTP server to bind before ``serve`` gives up, seconds."""
SHUTDOWN_SECONDS = 10.0
"""Longest wait for the HTTP server to finish its requests after the daemon stopped, seconds."""


def _server(settings: Settings, app: object) -> uvicorn.Server:
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=settings.serve.host,
        port=settings.serve.port,
        log_config=None,  # the project's structlog set-up stays in charge
        access_log=False,  # requests are counted in /metrics, not logged one by one
        lifespan="off",
        timeout_graceful_shutdown=int(SHUTDOWN_SECONDS),
    )
    return uvicorn.Server(config)


def serve(
    settings: Settings, reload_settings: Callable[[], Settings], front_only: bool = False
) -> None:
    """Run the HTTP front (and, unless ``front_only``, the daemon) until SIGTERM or SIGINT.

    Raises:
        ConfigError: a non-loopback address without tokens, an unreadable token file, a bad
            rate limit, or an address that cannot be bound; and the daemon's own start-up
            errors (:meth:`ocr_pipeline.daemon.Daemon.run`).

    """
    from ocr_pipeline.daemon import Daemon

    check_bind(settings.serve, load_tokens(settings.serve))
    log = get_logger("ocr_pipeline.serve")
    where = f"http://{settings.serve.host}:{settings.serve.port}/"
    if front_only:
        server = _server(settings, create_app(settings))
        log.info("serving", url=where, daemon="elsewhere (front only)")
        server.run()
        return
    metrics = Metrics(0, settings.daemon.metrics_host)
    server = _server(settings, create_app(settings, metrics.registry))
    thread = threading.Thread(target=server.run, name="http", daemon=True)
    thread.start()
    _wait_started(server, thread, where)
    log.info("serving", url=where)
    try:
        Daemon(settings, watch=True, reload_settings=reload_settings, metrics=metrics).run()
    finally:
        server.should_exit = True
        thread.join(SHUTDOWN_SECONDS)


def _wait_started(server: uvicorn.Server, thread: threading.Thread, where: str) -> None:
    """Wait until uvicorn listens.

    Raises:
        ConfigError: the thread ended first (uvicorn could not bind) or the wait ran out.

    """
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        thread.join(0.05)  # wakes at once when the thread ends (bind failed)
    if not server.started:
        server.should_exit = True
        raise ConfigError(
            f"cannot serve {where}: the address is in use or not available (see the log "
            "above); choose another serve.port or serve.host"
        )
