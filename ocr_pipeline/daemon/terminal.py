"""The one writer of terminal states: results, then the original's disposal, then the audit record.

Every claimed file leaves the work folder through here, in that fixed order:

* done: the outputs (:mod:`ocr_pipeline.writers`, the JSON record last) into the outbox, then
  the original archived, deleted or kept (``daemon.on_success``), then the ``done`` record;
* partial (a document some of whose pages could not be read): as done, with
  ``failed/<name>.error.json`` naming those pages written before the original moves, and a
  ``partial`` record;
* duplicate: the earlier result copied under this file's name (if its name differs), then the
  original disposed of as on success, then the ``duplicate`` record;
* failed: ``<name>.error.json`` into failed/, then the original beside it, then the ``failed``
  record;
* released (draining, or a writer still writing): back into the inbox, then ``released``.

Before the original moves, the audit record to come is saved in the claim
(:meth:`~ocr_pipeline.claims.Claim.intend`). A crash between the move and the record leaves the
claim folder with that *pending* record, and the next start writes it (:meth:`complete`), so
every input gets exactly one terminal record even under ``kill -9``.

A step that fails stops there and the method returns False: the file stays claimed and the
daemon tries again later (doubling pauses, :mod:`ocr_pipeline.daemon.service`). An error the
file system will keep giving for this name (too long, a file where a folder must be) is not
waited out: the file goes to failed/ with a :class:`~ocr_pipeline.errors.ResultWriteError`.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ocr_pipeline import __version__
from ocr_pipeline.audit import AuditLog, get_logger
from ocr_pipeline.claims import Claim, release_claim
from ocr_pipeline.daemon.status import StatusBoard
from ocr_pipeline.errors import ResultWriteError
from ocr_pipeline.executors import JobOutcome
from ocr_pipeline.folders import Folders, move_file, place
from ocr_pipeline.results import DocumentResult, ErrorReport, utc_now, write_error_report
from ocr_pipeline.settings import DaemonSettings, OutputName
from ocr_pipeline.state import KeptLedger, ResultsIndex
from ocr_pipeline.writers import write_outputs

WAIT_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.EIO,
        errno.EAGAIN,
        errno.EBUSY,
        errno.ESTALE,
        errno.ETIMEDOUT,
    }
)
"""Errors an operator can clear (free space, permissions, a remount): wait and try again."""

KILL_AT_ENV = "OCR_PIPELINE_TEST_KILL_AT"
"""Test-only fault injection: ``disposed`` SIGKILLs the daemon after an original has moved and
before its audit record is written; ``recorded`` after the record and before the claim folder
is removed. Unset in production."""

REPORT_SUFFIX = ".error.json"


def worth_waiting(exc: BaseException) -> bool:
    """True for an error that may go away without touching the file (:data:`WAIT_ERRNOS`)."""
    return isinstance(exc, OSError) and exc.errno in WAIT_ERRNOS


class TerminalWriter:
    """Brings claims to their terminal state (see the module docstring).

    Args:
        folders: the daemon's folders.
        index: results by input sha256 (duplicate detection).
        kept: originals kept in the inbox (policy ``keep``).
        audit: the audit log.
        board: counters and last error.
        daemon: ``on_success`` policy.
        outputs: output formats to write (``outputs`` setting).

    """

    def __init__(
        self,
        folders: Folders,
        index: ResultsIndex,
        kept: KeptLedger,
        audit: AuditLog,
        board: StatusBoard,
        daemon: DaemonSettings,
        outputs: Sequence[OutputName],
    ) -> None:
        self.folders = folders
        self.index = index
        self.kept = kept
        self.audit = audit
        self.board = board
        self.on_success = daemon.on_success
        self.outputs = list(outputs)
        self.log = get_logger(__name__)

    def use(self, daemon: DaemonSettings, outputs: Sequence[OutputName]) -> None:
        """Apply reloaded settings to later files."""
        self.on_success = daemon.on_success
        self.outputs = list(outputs)

    # ----------------------------------------------------------------- done and duplicate

    def done(self, claim: Claim, outcome: JobOutcome) -> bool:
        """Write the results, dispose of the original, record ``done``; False if a step failed."""
        if claim.pending is not None:
            return self.complete(claim)
        result = outcome.result
        sha = result.source.sha256
        relative = claim.relative.as_posix()
        try:
            stem = self.index.stem_for(claim.relative, sha)
            write_outputs(
                result, claim.path, self.folders.outbox, stem, self.outputs, outcome.rendered
            )
            self.index.add(sha, stem)
        except OSError as exc:
            return self._cannot_write(claim, exc)
        confidences = [line.confidence for page in result.pages for line in page.lines]
        fields: dict[str, Any] = {
            "source": relative,
            "sha256": sha,
            "bytes": result.source.bytes,
            "pages": len(result.pages),
            "lines": len(confidences),
            "mean_confidence": (
                round(sum(confidences) / len(confidences), 4) if confidences else None
            ),
            "min_confidence": round(min(confidences), 4) if confidences else None,
            "corrections": sum(
                len(line.corrections) for page in result.pages for line in page.lines
            ),
            "models": {role: ref.sha256 for role, ref in result.models.items()},
            "timings_ms": result.timings_ms,
            "worker_pid": outcome.worker_pid,
            "generation": outcome.generation,
            "attempt": claim.started,
            "result": f"{stem}.json",
        }
        event = "done"
        if result.outcome == "partial":
            event = "partial"
            if not self._report_missing_pages(claim, result, stem, fields):
                return False
        if not self._dispose_on_success(claim, sha, event, fields):
            return False
        self.log.info(
            event,
            file=relative,
            pages=len(result.pages),
            boxes=len(confidences),
            seconds=round(result.timings_ms.get("total", 0.0) / 1000, 3),
        )
        for page in result.pages:  # rendered at a lower dpi, input quality too low: never fatal
            for warning in page.warnings:
                self.log.warning(
                    "page warning", file=relative, page=page.index + 1, warning=warning
                )
        return self._finish(claim)

    def _report_missing_pages(
        self, claim: Claim, result: DocumentResult, stem: str, fields: dict[str, Any]
    ) -> bool:
        """Write ``failed/<name>.error.json`` naming the pages that could not be read.

        The original is archived like a success (most of it was read); the report is where an
        operator looks for trouble. Adds ``failed_pages`` and ``message`` to ``fields``.
        """
        relative = claim.relative.as_posix()
        failed = [page for page in result.pages if page.error is not None]
        numbers = [page.index + 1 for page in failed]
        first = failed[0].error
        assert first is not None
        listed = ", ".join(str(number) for number in numbers)
        message = (
            f"{relative}: page{'s' if len(numbers) > 1 else ''} {listed} of "
            f"{len(result.pages)} could not be read (first: {first.message}); the other pages "
            f"are in {stem}.json and the original is archived. Fix or re-scan those pages and "
            "drop the file into the inbox again"
        )
        report = ErrorReport(
            source=relative,
            error_type=first.type,
            message=message,
            traceback=[],
            attempts=max(claim.started, 1),
            failed_at=utc_now(),
            pipeline_version=__version__,
            failed_pages=numbers,
            result=f"{stem}.json",
        )
        try:
            target = place(self.folders.failed, claim.relative, "partial", len(REPORT_SUFFIX))
            write_error_report(report, target.with_name(f"{target.name}{REPORT_SUFFIX}"))
        except OSError as exc:
            self.stuck(relative, exc, "the error report of its missing pages was not written")
            return False
        fields.update(failed_pages=numbers, error_type=first.type, message=message)
        return True

    def duplicate(self, claim: Claim, sha: str, earlier: str) -> bool:
        """Reuse the result ``earlier`` (a stem) of the same bytes; False if a step failed."""
        if claim.pending is not None:
            return self.complete(claim)
        relative = claim.relative.as_posix()
        try:
            stem = self.index.stem_for(claim.relative, sha)
            if stem != earlier:
                original = DocumentResult.model_validate_json(
                    (self.folders.outbox / f"{earlier}.json").read_bytes()
                )
                renamed = original.model_copy(update={"source": original.source.renamed(relative)})
                write_outputs(renamed, claim.path, self.folders.outbox, stem, self.outputs)
                self.index.add(sha, stem)
        except OSError as exc:
            return self._cannot_write(claim, exc)
        except ValueError as exc:
            self.stuck(relative, exc, f"the earlier result {earlier}.json cannot be read")
            return False
        fields: dict[str, Any] = {
            "source": relative,
            "sha256": sha,
            "bytes": _size(claim),
            "result": f"{stem}.json",
            "message": f"same bytes as the input of {earlier}.json; result reused",
        }
        if not self._dispose_on_success(claim, sha, "duplicate", fields):
            return False
        self.log.info("duplicate", file=relative, result=f"{stem}.json", same_as=f"{earlier}.json")
        return self._finish(claim)

    def _cannot_write(self, claim: Claim, exc: OSError) -> bool:
        """Results not written: wait when the disk may recover, else fail the file."""
        relative = claim.relative.as_posix()
        if worth_waiting(exc):
            self.stuck(
                relative, exc, "results not written; the file stays claimed and is tried again"
            )
            return False
        error = ResultWriteError(
            f"{relative}: its results cannot be written to the outbox {self.folders.outbox} "
            f"({exc}); rename the file (shorter, without characters the outbox's file system "
            "refuses) or move what is in the way, then drop it into the inbox again"
        )
        return self.failed(claim, error, [])

    def _dispose_on_success(
        self, claim: Claim, sha: str, event: str, fields: dict[str, Any]
    ) -> bool:
        """Archive, delete or keep the original per policy, its record saved first."""
        relative = claim.relative.as_posix()
        try:
            how, target = self._success_target(claim, sha)
            fields["target"] = str(target) if target is not None else None
            claim.intend(event, fields, fields["target"])
            self._dispose(claim, how, target)
        except OSError as exc:
            self.stuck(
                relative,
                exc,
                "results written, but the original could not be moved out of the work folder; "
                "it stays claimed and is tried again (check the archive folder's permissions "
                "and free space)",
            )
            return False
        return True

    def _success_target(self, claim: Claim, sha: str) -> tuple[str, Path | None]:
        """Where the original goes on success: ``(how, path)``; how is archive/delete/keep."""
        if self.on_success == "delete" or not claim.present():
            return "delete", None
        if self.on_success == "keep":
            back = self.folders.inbox / claim.relative
            if not os.path.lexists(back):
                return "keep", back
        return "archive", place(self.folders.archive, claim.relative, sha[:8])

    def _dispose(self, claim: Claim, how: str, target: Path | None) -> None:
        """Move the original as decided (nothing when it is already gone)."""
        if not claim.present():
            return
        if how == "delete" or target is None:
            claim.path.unlink()
        elif how == "keep":
            target.parent.mkdir(parents=True, exist_ok=True)
            # Recorded before it reappears (a rename keeps size and mtime), so the watcher
            # never sees the original back in the inbox without its ledger entry.
            self.kept.add(claim.relative, claim.path.lstat())
            os.rename(claim.path, target)
        elif os.path.lexists(target):
            claim.path.unlink()  # a cross-device move copied it, then the daemon died
        else:
            move_file(claim.path, target)
        _kill_point("disposed")

    # ----------------------------------------------------------------- failed and released

    def failed(self, claim: Claim, error: BaseException, frames: list[str]) -> bool:
        """Move the original and its error report to failed/, record ``failed``.

        Args:
            claim: the claimed file.
            error: why it failed; its message should name the file (else it is prefixed).
            frames: the innermost traceback lines for the report (empty when not useful).

        Returns:
            False when failed/ could not be written (the file stays claimed).

        """
        if claim.pending is not None:
            return self.complete(claim)
        relative = claim.relative.as_posix()
        text = str(error)
        message = text if relative in text or claim.relative.name in text else f"{relative}: {text}"
        sha = claim.sha256
        tag = (sha or f"{time.time_ns():x}")[:8]
        report = ErrorReport(
            source=relative,
            error_type=type(error).__name__,
            message=message,
            traceback=frames,
            attempts=max(claim.started, 1),
            failed_at=utc_now(),
            pipeline_version=__version__,
        )
        fields: dict[str, Any] = {
            "source": relative,
            "sha256": sha,
            "bytes": _size(claim),
            "attempt": claim.started,
            "error_type": type(error).__name__,
            "message": message,
        }
        try:
            target = place(self.folders.failed, claim.relative, tag, len(REPORT_SUFFIX))
            write_error_report(report, target.with_name(f"{target.name}{REPORT_SUFFIX}"))
            present = claim.present()
            fields["target"] = str(target) if present else None
            claim.intend("failed", fields, fields["target"])
            self._dispose(claim, "failed", target if present else None)
        except OSError as os_error:
            self.stuck(relative, os_error, "cannot move to failed/; the file stays claimed")
            return False
        self.log.error("failed", file=relative, error_type=type(error).__name__, error=message)
        return self._finish(claim)

    def release(self, claim: Claim, why: str = "back in the inbox") -> bool:
        """Give an unfinished claim back to the inbox (draining, or a writer still writing).

        The claim stays in the work folder for the restart when the inbox has a new file of
        that name. Returns True when it is back in the inbox.
        """
        try:
            released = release_claim(claim, self.folders.inbox)
        except OSError:
            released = False
        self._record(
            "released",
            {
                "source": claim.relative.as_posix(),
                "message": why if released else "left in the work folder for restart",
            },
        )
        return released

    # ----------------------------------------------------------------- records

    def complete(self, claim: Claim) -> bool:
        """Finish a claim whose terminal record is pending: move the original, write the record.

        The record was saved before a crash or a failed write; the original is moved only if it
        is still in the claim folder.

        Returns:
            False when a step failed again (the claim stays; try later).

        """
        pending = claim.pending or {}
        event = str(pending.get("event", ""))
        target = pending.get("target")
        try:
            if claim.present() and (target is not None or event != "failed"):
                how = "failed" if event == "failed" else "archive"
                if target is None:
                    how = "delete"
                elif Path(target).is_relative_to(self.folders.inbox):
                    how = "keep"
                self._dispose(claim, how, Path(target) if target else None)
        except OSError as exc:
            self.stuck(
                claim.relative.as_posix(), exc, "cannot move the original; tried again later"
            )
            return False
        if self.audit.has_claim_record(claim.claim_dir.name):
            claim.discard()  # the crash came after the record: it is not written twice
            return True
        return self._finish(claim)

    def _finish(self, claim: Claim) -> bool:
        """Write the pending record, count it, and remove the claim folder."""
        pending = claim.pending or {}
        event = str(pending.get("event", ""))
        fields = dict(pending.get("fields") or {})
        if not self._record(event, fields):
            return False
        _kill_point("recorded")
        claim.discard()
        relative = str(fields.get("source", claim.relative.as_posix()))
        if event == "done":
            self.board.done(relative, dict(fields.get("timings_ms") or {}))
        elif event == "partial":
            timings = dict(fields.get("timings_ms") or {})
            self.board.partial(relative, str(fields.get("message", "")), timings)
        elif event == "duplicate":
            self.board.duplicate(relative)
        elif event == "failed":
            self.board.failed(relative, str(fields.get("message", "")))
        return True

    def _record(self, event: str, fields: dict[str, Any]) -> bool:
        try:
            self.audit.record(event, **fields)
        except OSError as exc:
            self.stuck(
                str(fields.get("source", "")),
                exc,
                f"the audit log {self.audit.path} cannot be written; the {event} record waits",
            )
            return False
        return True

    def stuck(self, relative: str, exc: BaseException, what: str) -> None:
        """Log and show an error that leaves a file claimed (the daemon tries it again)."""
        message = f"{relative}: {what}: {exc}"
        self.board.error(relative, message)
        self.log.error("error", file=relative, error=message)


def _size(claim: Claim) -> int | None:
    """Bytes of the claimed file (its link, for a symlink), ``None`` when it is gone."""
    try:
        return claim.path.lstat().st_size
    except OSError:
        return None


def _kill_point(name: str) -> None:
    if os.environ.get(KILL_AT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
