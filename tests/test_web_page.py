"""The web page of ``ocr-pipeline serve`` in a real headless browser (Debian's Chromium).

The browser and the server run in a private network namespace (``unshare -n``) where 127.0.0.1
is the only address: Chromium reaches out to the network on its own, and the page must work
offline. ``tests/web_page_driver.py`` does the driving and prints a JSON summary; this test
runs it and asserts on the summary. The screenshots ``receipt.png`` and ``chinese.png`` are
left in the test's ``tmp_path`` (those of docs/web.md come from the driver's ``--docs`` run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.netns import PRIVATE_NETWORK, private_network_problem

DRIVER = Path(__file__).with_name("web_page_driver.py")
CHROMIUM = Path("/usr/bin/chromium")
"""Debian's chromium package (never a browser downloaded by ``playwright install``)."""
DRIVER_SECONDS = 200
"""Bound on the whole driver run (server start, OCR of four uploads, the browser)."""


def _unavailable() -> str | None:
    """Why the browser test cannot run here, or ``None``."""
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing (Debian: apt-get install chromium)"
    return private_network_problem()


@pytest.mark.daemon
def test_web_page_in_chromium(tmp_path: Path) -> None:
    """Token, uploads, job states, result view (boxes, text, highlight, pages), downloads."""
    reason = _unavailable()
    if reason:
        pytest.skip(reason)
    command = [
        *PRIVATE_NETWORK,
        sys.executable,
        str(DRIVER),
        "--out",
        str(tmp_path),
        "--chromium",
        str(CHROMIUM),
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=DRIVER_SECONDS,
        env=dict(os.environ),
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"no summary (exit {done.returncode}); stderr:\n{done.stderr[-3000:]}"
    summary = json.loads(lines[-1])
    failed = [check for check in summary["checks"] if not check["ok"]]
    assert summary["ok"] and done.returncode == 0, (
        f"exit {done.returncode}: {summary['error']}\nfailed: {failed}\n"
        f"stderr:\n{done.stderr[-3000:]}"
    )
    assert len(summary["checks"]) >= 30, [check["name"] for check in summary["checks"]]
    for name in ("receipt.png", "chinese.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
