"""Progress of long work: a bar on a terminal, plain log lines otherwise.

:class:`RunProgress` counts the files a ``run`` finishes, by outcome. Where a person watches a
terminal (stderr is a TTY and the log format is ``console``: :func:`progress_enabled`) it draws a
`tqdm <https://tqdm.github.io>`_ bar on stderr: files finished of the total, percentage, elapsed
time, ETA, rate in files per second and the counts by outcome. Everywhere else (a pipe, a file,
the journal, ``--log-format json``) it writes a structlog ``info`` event ``progress`` at the first
file finished at least :data:`LOG_INTERVAL_SECONDS` (10 s) after the previous line (or after the
start), and at :meth:`RunProgress.close` when files finished since the last line: at most one
line per 10 s whatever the speed (no timer thread: a line is written when a file finishes), e.g.
``progress files=120 of=500 done=115 partial=0 failed=2 duplicate=3 rate_per_s=0.7 eta_s=543``.

While the bar is drawn, structlog events are routed through the bar (it is cleared, the line
written, the bar redrawn), so the per-file log lines and the bar do not overwrite each other;
:meth:`RunProgress.close` puts the previous logger factory back.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, Literal, TextIO, cast, get_args

import structlog
from tqdm import tqdm

from ocr_pipeline.audit import get_logger

Outcome = Literal["done", "partial", "failed", "duplicate"]
"""How a file ended (the terminal states of the daemon that count as finished)."""

OUTCOMES: Final[tuple[str, ...]] = get_args(Outcome)

LOG_INTERVAL_SECONDS: Final = 10.0
"""Least time between two plain ``progress`` lines, in seconds."""

_BAR_KNOWN = (
    "{desc}: {percentage:3.0f}%|{bar}| {n_fmt} of {total_fmt} files "
    "[{elapsed}<{remaining}, {rate_fmt}{postfix}]"
)
_BAR_UNKNOWN = "{desc}: {n_fmt} of ? files [{elapsed}, {rate_fmt}{postfix}]"


def _is_tty(stream: TextIO | None) -> bool:
    """Whether ``stream`` is an open terminal (a closed or replaced stream is not)."""
    isatty = getattr(stream, "isatty", None)
    if isatty is None:
        return False
    try:
        return bool(isatty())
    except (OSError, ValueError):  # closed
        return False


def progress_enabled(log_format: str, stream: TextIO | None = None) -> bool:
    """Whether to draw a progress bar: the log format is ``console`` and stderr a terminal.

    Args:
        log_format: ``settings.log.format`` (``console`` or ``json``).
        stream: the stream the bar would be drawn on (default: ``sys.stderr``).

    Returns:
        ``True``: draw a bar; ``False``: write plain log lines (a pipe, a file, json logs).

    """
    return log_format == "console" and _is_tty(sys.stderr if stream is None else stream)


class _BarSafeStream:
    """A text stream that writes whole lines with the bars on ``target`` cleared, then redraws.

    structlog's ``PrintLogger`` writes a message and its newline in two calls; the stream keeps
    a partial line until its newline so a bar is never redrawn in the middle of a log line.
    """

    def __init__(self, target: TextIO) -> None:
        self._target = target
        self._pending = ""

    def write(self, text: str) -> int:
        """Buffer ``text``; write what ends with a newline around the bars; return its length."""
        self._pending += text
        head, newline, tail = self._pending.rpartition("\n")
        if newline:
            self._pending = tail
            with tqdm.external_write_mode(file=self._target):
                self._target.write(head + newline)
                self._target.flush()
        return len(text)

    def flush(self) -> None:
        """Flush the target (a partial line stays buffered until its newline)."""
        self._target.flush()

    def isatty(self) -> bool:
        """Whether the target is a terminal."""
        return _is_tty(self._target)


class RunProgress:
    """Files finished of a total, as a bar on a terminal or as periodic log lines.

    Meant for one thread (the daemon's loop); a lock makes concurrent calls safe, not ordered.
    Each :meth:`advance` costs a few counter updates and, with the bar, a redraw at most every
    ``redraw_seconds``.

    Args:
        total: files expected, or ``None`` while unknown (``run`` learns it from its scan; call
            :meth:`set_total` then).
        enabled: draw a bar (``True``; see :func:`progress_enabled`) or write plain ``progress``
            log lines (``False``).
        file: the stream of the bar (default: ``sys.stderr``); unused for log lines.
        log_interval_seconds: least seconds between two plain lines.
        redraw_seconds: least seconds between two redraws of the bar (tqdm's ``mininterval``).
        clock: monotonic time in seconds for the plain lines (tests pass a fake one).

    """

    def __init__(
        self,
        total: int | None,
        enabled: bool,
        *,
        file: TextIO | None = None,
        log_interval_seconds: float = LOG_INTERVAL_SECONDS,
        redraw_seconds: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.enabled = enabled
        self.counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self.files = 0
        """Files finished so far, all outcomes."""
        self.last: str | None = None
        """Inbox-relative path of the last file finished."""
        self._clock = clock
        self._started = clock()
        self._last_line_at = self._started
        self._files_at_last_line = 0
        self._interval = log_interval_seconds
        self._lock = threading.Lock()
        self._closed = False
        self._log = get_logger(__name__)
        self._bar: tqdm[Any] | None = None
        self._saved_factory: Any = None
        if enabled:
            stream = sys.stderr if file is None else file
            self._bar = tqdm(
                total=total,
                file=stream,
                desc="OCR",
                unit="file",
                bar_format=_BAR_KNOWN if total is not None else _BAR_UNKNOWN,
                dynamic_ncols=True,
                leave=True,
                mininterval=redraw_seconds,
                miniters=1,
            )
            self._saved_factory = structlog.get_config()["logger_factory"]
            structlog.configure(
                logger_factory=structlog.PrintLoggerFactory(
                    file=cast(TextIO, _BarSafeStream(stream))
                )
            )

    def set_total(self, total: int) -> None:
        """Set the number of files expected (never below the files already finished)."""
        with self._lock:
            self.total = max(total, self.files)
            if self._bar is not None:
                self._bar.total = self.total
                self._bar.bar_format = _BAR_KNOWN
                self._bar.refresh()

    def advance(self, outcome: str, relative: str) -> None:
        """Count one finished file.

        Args:
            outcome: ``done``, ``partial``, ``failed`` or ``duplicate``.
            relative: its inbox-relative path (kept as :attr:`last`, shown in log lines).

        Raises:
            ValueError: an unknown outcome.

        """
        if outcome not in self.counts:
            raise ValueError(f"unknown outcome {outcome!r}; expected one of {', '.join(OUTCOMES)}")
        with self._lock:
            if self._closed:
                return
            self.counts[outcome] += 1
            self.files += 1
            self.last = relative
            if self.total is not None and self.files > self.total:
                self.total = self.files
                if self._bar is not None:
                    self._bar.total = self.total
            if self._bar is not None:
                self._bar.set_postfix_str(self._counts_text(), refresh=False)
                self._bar.update(1)
                return
            now = self._clock()
            if now - self._last_line_at >= self._interval:
                self._write_line(now)

    def close(self) -> None:
        """Finish: leave the bar's final state on screen, or write the last plain line."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._bar is not None:
                self._bar.set_postfix_str(self._counts_text(), refresh=False)
                self._bar.close()
                structlog.configure(logger_factory=self._saved_factory)
            elif self.files > self._files_at_last_line:
                self._write_line(self._clock())

    def __enter__(self) -> RunProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def rate_per_second(self, now: float | None = None) -> float:
        """Files finished per second since the start (0.0 before the first)."""
        elapsed = (self._clock() if now is None else now) - self._started
        return self.files / elapsed if elapsed > 0 else 0.0

    def _counts_text(self) -> str:
        """The non-zero counts by outcome, ``done=3, failed=1`` (the bar's postfix)."""
        return ", ".join(f"{name}={count}" for name, count in self.counts.items() if count)

    def _write_line(self, now: float) -> None:
        """Log one ``progress`` event (called with the lock held)."""
        rate = self.rate_per_second(now)
        eta: float | None = None
        if self.total is not None and rate > 0:
            eta = round((self.total - self.files) / rate)
        self._log.info(
            "progress",
            files=self.files,
            of=self.total,
            **self.counts,
            rate_per_s=round(rate, 2),
            eta_s=eta,
            elapsed_s=round(now - self._started, 1),
            last=self.last,
        )
        self._last_line_at = now
        self._files_at_last_line = self.files
