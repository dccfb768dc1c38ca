"""A real ``ocr-pipeline watch`` subprocess on temp folders: the tests' and the benchmark's harness.

The daemon is driven only from outside: its command line and environment, the folders, the
audit log and the status file. By default it runs with the real models and a small detector
input (``limit_side`` 640, ``max``; ``FAST_ENV``) so hundreds of small receipt crops take
seconds, not minutes; the folder contract does not depend on accuracy.
``benchmarks/bench_daemon.py`` passes its own environment (default accuracy settings) instead.
Waits are bounded polls of the folders, the audit log and the status file.
:func:`run_cli` (and :func:`cli_command`, :func:`cli_env`, which :class:`DaemonProcess` uses
too) is the one way the tests start the command line: this interpreter, ``-m ocr_pipeline.cli``,
the caller's environment (which holds ``OCR_PIPELINE_MODELS__DIR``, set by ``tests/conftest``).

Used by ``tests/`` (``from tests.daemon_harness import ...``) and by the benchmark, run from the
repository root as ``python -m benchmarks.bench_daemon``: both then import it as ``tests.*``.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
from PIL import Image, PngImagePlugin

from tests.conftest import SROIE_DEV

FAST_ENV = {
    "OCR_PIPELINE_DETECT__LIMIT_TYPE": "max",
    "OCR_PIPELINE_DETECT__LIMIT_SIDE": "640",
    "OCR_PIPELINE_DAEMON__WORKERS": "2",
    "OCR_PIPELINE_DAEMON__SETTLE_SECONDS": "0.5",
    "OCR_PIPELINE_DAEMON__SETTLE_AFTER_CLOSE_SECONDS": "0.3",
    "OCR_PIPELINE_DAEMON__STATUS_SECONDS": "0.5",
    "OCR_PIPELINE_DAEMON__RESCAN_SECONDS": "5",
    "OCR_PIPELINE_DAEMON__GRACE_SECONDS": "8",
    "OCR_PIPELINE_LOG__FORMAT": "json",
}
BASE_IMAGES = 8


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    *,
    interval: float = 0.05,
    abort: Callable[[], str | None] | None = None,
) -> None:
    """Poll ``predicate`` every ``interval`` seconds until true.

    Args:
        predicate: The condition awaited.
        timeout: Seconds before giving up.
        what: What is awaited, for the error message.
        interval: Seconds between polls.
        abort: Asked after each false poll; a message it returns ends the wait at once (e.g. the
            daemon exited, so the condition can no longer come true).

    Raises:
        AssertionError: still false after ``timeout`` seconds, or ``abort`` gave a reason
            (message says what was awaited).

    """
    deadline = time.monotonic() + timeout
    while not predicate():
        reason = abort() if abort is not None else None
        if reason is not None:
            raise AssertionError(f"{reason} while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a server the test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli_command(*args: str | Path) -> list[str]:
    """The command line of ``ocr-pipeline ARGS``: this interpreter, ``-m ocr_pipeline.cli``.

    Not the ``ocr-pipeline`` script of the environment: its interpreter line names the Python it
    was installed with, which need not be this one.
    """
    return [sys.executable, "-m", "ocr_pipeline.cli", *map(str, args)]


def cli_env(env: Mapping[str, str] | None = None, *, unset: Iterable[str] = ()) -> dict[str, str]:
    """The environment of a command: the caller's, then ``env`` over it, without ``unset``.

    The caller's environment carries ``OCR_PIPELINE_MODELS__DIR`` (``tests/conftest`` sets it);
    pass ``FAST_ENV`` (or ``{**FAST_ENV, ...}``) for the daemon tests' preset.
    """
    merged = {**os.environ, **(env or {})}
    for name in unset:
        merged.pop(name, None)
    return merged


def run_cli(
    args: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    unset: Iterable[str] = (),
    timeout: float = 300,
    cwd: Path | None = None,
    prefix: Sequence[str] = (),
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``ocr-pipeline ARGS`` to its end; its exit code and its output, captured as text.

    Args:
        args: The arguments after ``ocr-pipeline``.
        env: Variables over the caller's environment (:func:`cli_env`).
        unset: Variables to remove from it.
        timeout: Seconds before ``subprocess.TimeoutExpired``.
        cwd: The working folder (default: the caller's).
        prefix: A command to run it under, e.g. ``["setpriv", ..., "--"]``.
        preexec_fn: Called in the child before the command starts (e.g. pin its CPUs).

    """
    return subprocess.run(
        [*prefix, *cli_command(*args)],
        env=cli_env(env, unset=unset),
        cwd=cwd,
        preexec_fn=preexec_fn,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def receipt_crops() -> list[bytes]:
    """PNG bytes of ``BASE_IMAGES`` small crops (a band of header lines) of dev receipts."""
    crops = []
    for number in range(BASE_IMAGES):
        image = cv2.imread(str(SROIE_DEV / "images" / f"{number:03d}.jpg"))
        height = image.shape[0]
        band = image[int(height * 0.3) : int(height * 0.45)]
        ok, encoded = cv2.imencode(".png", band)
        assert ok
        crops.append(encoded.tobytes())
    return crops


def png_variant(png: bytes, tag: str) -> bytes:
    """The same pixels with a text chunk naming ``tag``: other bytes (sha256), same OCR text."""
    image = Image.open(io.BytesIO(png))
    info = PngImagePlugin.PngInfo()
    info.add_text("variant", tag)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def jpeg_variant(jpeg: bytes, tag: str) -> bytes:
    """The JPEG with ``tag`` appended after its end-of-image marker (decoders ignore it).

    Other bytes (sha256: the daemon would otherwise reuse the result of an equal file), same pixels.
    """
    return jpeg + tag.encode()


@dataclass
class Layout:
    """A temp base folder with the default layout: inbox, outbox, archive, failed, logs."""

    base: Path

    def __post_init__(self) -> None:
        self.inbox.mkdir(parents=True, exist_ok=True)

    @property
    def inbox(self) -> Path:
        return self.base / "inbox"

    @property
    def outbox(self) -> Path:
        return self.base / "outbox"

    @property
    def archive(self) -> Path:
        return self.base / "archive"

    @property
    def failed(self) -> Path:
        return self.base / "failed"

    @property
    def audit_log(self) -> Path:
        return self.base / "logs" / "audit.jsonl"

    def audit(self) -> list[dict[str, Any]]:
        """The audit records so far (the log is JSON lines, read here, not by the package)."""
        if not self.audit_log.is_file():
            return []
        lines = self.audit_log.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line]

    def events(self, event: str) -> list[dict[str, Any]]:
        """Audit records of one event type."""
        return [r for r in self.audit() if r["event"] == event]

    def done_times(self) -> dict[str, float]:
        """Source -> Unix time of its ``done`` record (the last one, should there be several)."""
        return {
            r["source"]: datetime.datetime.fromisoformat(r["time"]).timestamp()
            for r in self.events("done")
        }

    def files(self, folder: Path) -> list[str]:
        """Relative paths of the non-hidden files under ``folder``."""
        if not folder.is_dir():
            return []
        return sorted(
            p.relative_to(folder).as_posix()
            for p in folder.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        )

    def work_files(self) -> list[str]:
        """Input files inside any work folder (claimed, not terminal)."""
        work = self.inbox / ".ocr-pipeline" / "work"
        if not work.is_dir():
            return []
        return sorted(p.name for p in work.rglob("*") if p.is_file() and not p.name.startswith("."))

    def results(self) -> list[str]:
        """Result JSON paths in the outbox, relative."""
        return [name for name in self.files(self.outbox) if name.endswith(".json")]

    def terminal_count(self) -> int:
        """Inputs that reached a terminal state (archived originals + failed originals)."""
        failed = [n for n in self.files(self.failed) if not n.endswith(".error.json")]
        return len(self.files(self.archive)) + len(failed)


@dataclass
class DaemonProcess:
    """``ocr-pipeline watch INBOX OUTBOX`` (:func:`cli_command`) in its own process group."""

    layout: Layout
    env: dict[str, str] = field(default_factory=dict)
    """Variables over ``base_env`` (and over the caller's environment)."""
    instance: str = "default"
    global_args: list[str] = field(default_factory=list)
    """Options before the sub-command, e.g. ``["--config", FILE]``."""
    base_env: dict[str, str] = field(default_factory=lambda: dict(FAST_ENV))
    """The settings preset: ``FAST_ENV`` for the tests, the benchmark's own for measurements."""
    poll_seconds: float = 0.05
    """Interval of the start-up wait and of ``wait``."""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def status_file(self) -> Path:
        name = "status.json" if self.instance == "default" else f"status-{self.instance}.json"
        return self.layout.outbox / ".ocr-pipeline" / name

    @property
    def log_file(self) -> Path:
        return self.layout.base / f"daemon-{self.instance}.log"

    def status(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.status_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data

    def start(self, timeout: float = 90) -> DaemonProcess:
        """Start the daemon and wait for its first heartbeat in state ``running``."""
        env = cli_env({**self.base_env, **self.env})
        if self.instance != "default":
            env["OCR_PIPELINE_DAEMON__INSTANCE"] = self.instance
        self.status_file.unlink(missing_ok=True)
        command = cli_command(*self.global_args, "watch", self.layout.inbox, self.layout.outbox)
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                command, env=env, stdout=log, stderr=log, start_new_session=True
            )
        self.wait(
            lambda: self.status().get("state") == "running", timeout, "the daemon's first heartbeat"
        )
        assert self.proc.poll() is None, self.exited()
        return self

    def exited(self) -> str | None:
        """Why the daemon can no longer do anything (its exit code and log tail), else None."""
        assert self.proc is not None
        code = self.proc.poll()
        if code is None:
            return None
        return f"the daemon exited with code {code} ({self.log_file}):\n{self.log_tail()}\n"

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """``wait_until`` every ``poll_seconds``, failing at once should the daemon exit.

        Raises:
            AssertionError: the daemon exited or ``timeout`` passed before ``predicate`` held.

        """
        wait_until(predicate, timeout, what, interval=self.poll_seconds, abort=self.exited)

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 60, *, force: bool = False) -> int:
        """SIGTERM, then wait for the exit code.

        Args:
            timeout: Seconds to wait for the exit.
            force: Past ``timeout``, SIGKILL the process group (as ``kill_all``) and return
                the exit code instead of raising.

        Raises:
            subprocess.TimeoutExpired: still running after ``timeout`` (without ``force``).

        """
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            if not force:
                raise
        with contextlib.suppress(ProcessLookupError):  # the group may just have gone
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.wait()

    def kill_all(self) -> None:
        """``kill -9`` the daemon and its workers (the whole process group), like a power cut."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def log_tail(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")[-4000:]
