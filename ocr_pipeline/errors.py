"""Exit codes and the domain exceptions that carry them.

Every error the pipeline raises on purpose derives from :class:`OcrPipelineError` and carries an
:class:`ExitCode`; the CLI maps exceptions to codes in one place (the habit of OCRmyPDF's
``exceptions.py``). Messages name the file or setting at fault and say what to do.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of the ``ocr-pipeline`` command."""

    ok = 0
    files_failed = 1
    """At least one input file failed; the others were processed."""
    unhealthy = 1
    """``health``: the daemon's heartbeat is missing, stale or says it stopped (same value)."""
    bad_args = 2
    config_error = 3
    model_error = 4
    internal_error = 15


class OcrPipelineError(Exception):
    """Base class of the errors this package raises on purpose."""

    exit_code: ExitCode = ExitCode.internal_error


class ConfigError(OcrPipelineError):
    """A setting is invalid or inconsistent (raised at start-up, before any file is touched)."""

    exit_code = ExitCode.config_error


class ModelError(OcrPipelineError):
    """A model file is missing, corrupt (sha256 mismatch) or cannot be loaded."""

    exit_code = ExitCode.model_error


class InputError(OcrPipelineError):
    """One input file cannot be processed: the file goes to failed/, the run goes on."""

    exit_code = ExitCode.files_failed


class UnsupportedFormatError(InputError):
    """The file's type is not one the pipeline reads."""


class CorruptInputError(InputError):
    """The file claims a supported type but its bytes cannot be decoded (empty, truncated)."""


class InputTooLargeError(InputError):
    """The file exceeds the byte limit or a page exceeds the pixel limit (decompression bombs)."""


class UnreadableInputError(InputError):
    """The daemon may not read the file (permissions), or it is not a regular file."""


class SymlinkRefusedError(InputError):
    """A symlink was dropped into the inbox and ``daemon.follow_symlinks`` does not allow it."""


class JobStoppedError(OcrPipelineError):
    """A job stopped between pages because its executor is closing (SIGTERM): not the file's fault.

    The daemon gives the file back to the inbox; the next start OCRs it from its first page.
    """

    exit_code = ExitCode.internal_error


class JobFailedError(OcrPipelineError):
    """A job failed for a reason outside the file's content as read (worker died, timeout)."""

    exit_code = ExitCode.files_failed


class WorkerLostError(JobFailedError):
    """The worker process running a job died (segfault, ``kill -9``, the OOM killer).

    Args:
        message: what happened.
        exitcode: the process's exit code (negative: killed by that signal), if known.

    """

    def __init__(self, message: str, exitcode: int | None = None) -> None:
        super().__init__(message)
        self.exitcode = exitcode


class WorkerCrashedError(JobFailedError):
    """Every try of a file killed its worker process: the file is set aside as poison."""


class JobTimeoutError(JobFailedError):
    """A file took longer than ``daemon.job_timeout``; its worker was killed."""


class ExecutorBrokenError(OcrPipelineError):
    """The executor lost its workers for a reason that is not the job's file.

    For example a worker died while idle, which breaks pebble's whole pool. The job is handed
    out again after a restart, without counting an attempt.
    """

    exit_code = ExitCode.internal_error


class PoolError(OcrPipelineError):
    """Worker processes cannot be kept running (they die as they start): the daemon stops."""

    exit_code = ExitCode.internal_error


class ResultWriteError(OcrPipelineError):
    """A file was read, but its results cannot be written where the folder contract puts them.

    The file system refuses the name for good; the original goes to failed/ with this report.
    """

    exit_code = ExitCode.files_failed


class OutputRenderError(OcrPipelineError):
    """A file was read, but one of the chosen output formats cannot be made of it.

    Raised in the worker, which renders the formats that embed the original's pages (the
    searchable PDF); the original goes to failed/ with this report, like any file that fails.
    """

    exit_code = ExitCode.files_failed


class InternalError(OcrPipelineError):
    """An unexpected error while handling one file (a bug).

    That file goes to failed/ with the traceback; the daemon goes on.
    """

    exit_code = ExitCode.internal_error
