"""Health sees the workers from the start, and says so when there are none for a while."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ocr_pipeline.state import check_health, write_status
from tests.daemon_harness import DaemonProcess, Layout, run_cli


def test_workers_are_up_before_the_first_file(tmp_path: Path) -> None:
    daemon = DaemonProcess(Layout(tmp_path), env={"OCR_PIPELINE_DAEMON__WORKERS": "2"}).start()
    try:
        daemon.wait(
            lambda: daemon.status().get("workers_alive") == 2, 60, "two live workers, no file"
        )
        health = run_cli(["health", daemon.layout.outbox], timeout=60)
        assert health.returncode == 0, health.stdout + health.stderr
        assert "2 workers" in health.stdout
        assert daemon.status()["jobs"]["done"] == 0
    finally:
        daemon.stop()


def _status(path: Path, started_seconds_ago: float, workers: int) -> None:
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - started_seconds_ago))
    write_status(path, {"pid": 1, "state": "running", "started": started, "workers_alive": workers})


def test_no_worker_for_longer_than_the_heartbeat_limit_is_unhealthy(tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    _status(status, started_seconds_ago=2, workers=0)
    assert check_health(status, max_age_seconds=10)[0]  # just started: workers are loading
    _status(status, started_seconds_ago=60, workers=0)
    healthy, reason = check_health(status, max_age_seconds=10)
    assert not healthy and "no live worker" in reason
    _status(status, started_seconds_ago=60, workers=1)
    assert check_health(status, max_age_seconds=10)[0]
    assert json.loads(status.read_text())["workers_alive"] == 1
