"""The one writer of terminal states: results, then the original's disposal, then the audit record.

Every claimed file leaves the work folder through here, in that fixed order:

* done: the outputs (:mod:`ocr_pipeline.writers`, the JSON record last) into the outbox, then
  the original archived, deleted or kept (``daemon.on_success``), then the ``done`` record;
* duplicate: the earlier result copied under this file's name (if its name differs), then the
  original disposed of as on success, then the ``duplicate`` record;
* failed: ``<name>.error.json`` into failed/, then the original beside it, then the ``failed``
  record;
* released (draining): back into the inbox, then the ``released`` record.

A step that fails (full or read-only disk) stops there: the file stays claimed, the error is
logged and shown in the heartbeat, and a restart requeues it, so no file is ever lost and each
reaches exactly one terminal state. The audit record comes last, so an audit reader that sees
``done`` finds the results in place.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from ocr_pipeline import __version__
from ocr_pipeline.audit import AuditLog, get_logger
from ocr_pipeline.claims import Claim, release_claim
from ocr_pipeline.daemon.status import StatusBoard
from ocr_pipeline.executors import JobOutcome
from ocr_pipeline.folders import Folders, file_size, free_name, move_file
from ocr_pipeline.results import DocumentResult, ErrorReport, utc_now, write_error_report
from ocr_pipeline.settings import DaemonSettings, OutputName
from ocr_pipeline.state import KeptLedger, ResultsIndex
from ocr_pipeline.writers import write_outputs


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
        result = outcome.result
        sha = result.source.sha256
        relative = claim.relative.as_posix()
        try:
            stem = self.index.stem_for(claim.relative, sha)
            write_outputs(result, claim.path, self.folders.outbox, stem, self.outputs)
            self.index.add(sha, stem)
        except OSError as exc:
            self.stuck(relative, exc, "results not written; the file stays claimed")
            return False
        try:
            target = self._dispose_original(claim, sha)
        except OSError as exc:
            self.stuck(
                relative,
                exc,
                "results written, but the original could not be moved out of the work folder; "
                "it stays claimed (check the archive folder's permissions and free space)",
            )
            return False
        claim.discard()
        confidences = [line.confidence for page in result.pages for line in page.lines]
        self.audit.record(
            "done",
            source=relative,
            sha256=sha,
            bytes=result.source.bytes,
            pages=len(result.pages),
            lines=len(confidences),
            mean_confidence=round(sum(confidences) / len(confidences), 4) if confidences else None,
            min_confidence=round(min(confidences), 4) if confidences else None,
            corrections=sum(len(line.corrections) for page in result.pages for line in page.lines),
            models={role: ref.sha256 for role, ref in result.models.items()},
            timings_ms=result.timings_ms,
            worker_pid=outcome.worker_pid,
            generation=outcome.generation,
            attempt=claim.attempts,
            result=f"{stem}.json",
            target=target,
        )
        self.board.done(relative, result.timings_ms)
        self.log.info(
            "done",
            file=relative,
            pages=len(result.pages),
            lines=len(confidences),
            seconds=round(result.timings_ms.get("total", 0.0) / 1000, 3),
        )
        return True

    def duplicate(self, claim: Claim, sha: str, earlier: str) -> bool:
        """Reuse the result ``earlier`` (a stem) of the same bytes; False if a step failed."""
        relative = claim.relative.as_posix()
        try:
            stem = self.index.stem_for(claim.relative, sha)
            if stem != earlier:
                original = DocumentResult.model_validate_json(
                    (self.folders.outbox / f"{earlier}.json").read_bytes()
                )
                source = original.source.model_copy(
                    update={"name": claim.relative.name, "relative_path": relative}
                )
                renamed = original.model_copy(update={"source": source})
                write_outputs(renamed, claim.path, self.folders.outbox, stem, self.outputs)
                self.index.add(sha, stem)
            target = self._dispose_original(claim, sha)
        except (OSError, ValueError) as exc:
            self.stuck(relative, exc, "duplicate not resolved; the file stays claimed")
            return False
        claim.discard()
        self.audit.record(
            "duplicate",
            source=relative,
            sha256=sha,
            bytes=file_size(target),
            result=f"{stem}.json",
            message=f"same bytes as the input of {earlier}.json; result reused",
            target=target,
        )
        self.board.duplicate(relative)
        self.log.info("duplicate", file=relative, result=f"{stem}.json", same_as=f"{earlier}.json")
        return True

    def _dispose_original(self, claim: Claim, sha: str) -> str | None:
        """Archive, delete or keep the original per policy; returns where it went."""
        if self.on_success == "delete":
            claim.path.unlink()
            return None
        if self.on_success == "keep":
            back = self.folders.inbox / claim.relative
            if not back.exists():
                back.parent.mkdir(parents=True, exist_ok=True)
                # Recorded before it reappears (a rename keeps size and mtime), so the watcher
                # never sees the original back in the inbox without its ledger entry.
                self.kept.add(claim.relative, claim.path.stat())
                os.rename(claim.path, back)
                return str(back)
        target = free_name(self.folders.archive / claim.relative, sha[:8])
        move_file(claim.path, target)
        return str(target)

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
        relative = claim.relative.as_posix()
        text = str(error)
        message = text if relative in text or claim.relative.name in text else f"{relative}: {text}"
        sha = claim.sha256
        target = free_name(self.folders.failed / claim.relative, (sha or f"{time.time_ns():x}")[:8])
        report = ErrorReport(
            source=relative,
            error_type=type(error).__name__,
            message=message,
            traceback=frames,
            attempts=max(claim.attempts, 1),
            failed_at=utc_now(),
            pipeline_version=__version__,
        )
        try:
            write_error_report(report, target.with_name(f"{target.name}.error.json"))
            move_file(claim.path, target)
        except OSError as os_error:
            self.stuck(relative, os_error, "cannot move to failed/; the file stays claimed")
            return False
        claim.discard()
        self.audit.record(
            "failed",
            source=relative,
            sha256=sha,
            bytes=file_size(target),
            attempt=claim.attempts,
            error_type=type(error).__name__,
            message=message,
            target=str(target),
        )
        self.board.failed(relative, message)
        self.log.error("failed", file=relative, error_type=type(error).__name__, error=message)
        return True

    def release(self, claim: Claim) -> None:
        """Give an unfinished claim back to the inbox (draining), or leave it for the restart."""
        try:
            released = release_claim(claim, self.folders.inbox)
        except OSError:
            released = False
        self.audit.record(
            "released",
            source=claim.relative.as_posix(),
            message="back in the inbox" if released else "left in the work folder for restart",
        )

    def stuck(self, relative: str, exc: BaseException, what: str) -> None:
        """Log and show an error that leaves a file claimed (it is requeued at restart)."""
        message = f"{relative}: {what}: {exc}"
        self.board.error(relative, message)
        self.log.error("error", file=relative, error=message)
