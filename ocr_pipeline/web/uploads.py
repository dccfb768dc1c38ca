"""Uploads into the inbox: type by magic bytes, a server-made name, an atomic arrival.

An upload is streamed to ``INBOX/.ocr-pipeline/uploads/<job id>.part`` (hidden: the watcher
never takes it), counted against ``decode.max_bytes`` as it arrives, checked (type from its
first bytes, then the page and pixel limits from its headers, as the daemon will check them),
fsynced, and only then renamed into the inbox as ``<job id>-<sanitised name><suffix>``. The
daemon therefore sees a complete file or nothing, and the client's name never chooses the path:
it is reduced to its last component, NFC-normalised, stripped of separators, control
characters and leading dots, and cut to :data:`MAX_STEM_BYTES`. The suffix is the one of the
type the bytes are (a PDF named ``scan.jpg`` arrives as ``.pdf``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ocr_pipeline.atomic import fsync_dir
from ocr_pipeline.documents import DecodeLimits, open_document
from ocr_pipeline.errors import CorruptInputError, InputTooLargeError, UnsupportedFormatError

UPLOADS_DIR = Path(".ocr-pipeline") / "uploads"
"""Where uploads are written before they arrive, relative to the inbox (hidden)."""
MAX_STEM_BYTES = 120
"""Longest sanitised name stem kept from the client's file name, UTF-8 bytes (the job id,
suffix and the daemon's own tags fit beside it within a 255-byte file name)."""
JOB_ID = re.compile(r"^[0-9a-f]{16}$")
"""A job id: 16 lowercase hex digits (64 random bits)."""

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", ".pdf"),
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
)
_BMP_HEADER_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})
"""DIB header sizes of the BMP versions (BITMAPCOREHEADER to BITMAPV5HEADER), bytes."""
_UNSAFE = re.compile(r"[^\w.\- ()+,=@\[\]]")
"""Characters replaced by ``_`` in a name: anything but letters and digits of any script,
``_``, and a few punctuation marks that are safe in every shell and file system."""


class UploadRefused(Exception):
    """An upload the server will not take; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def new_job_id() -> str:
    """A fresh job id: 16 hex digits from :func:`secrets.token_hex` (64 random bits)."""
    return secrets.token_hex(8)


def sniff_suffix(head: bytes) -> str | None:
    """The suffix of the supported type the bytes start with, else ``None``.

    Args:
        head: the first bytes of the file (at least 26 for BMP, 12 for WebP).

    Returns:
        ``.pdf``, ``.png``, ``.jpg``, ``.tif``, ``.webp`` or ``.bmp``, from the signatures of
        the PDF 1.7 (ISO 32000-1, 7.5.2), PNG, JPEG (SOI + marker), TIFF 6.0, RIFF/WebP and
        BMP (``BM`` and a known DIB header size) specifications.

    """
    for magic, suffix in _MAGIC:
        if head.startswith(magic):
            return suffix
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return ".webp"
    dib_header_size = int.from_bytes(head[14:18], "little") if len(head) >= 18 else 0
    if head.startswith(b"BM") and dib_header_size in _BMP_HEADER_SIZES:
        return ".bmp"
    return None


def sanitise_stem(client_name: str) -> str:
    r"""A safe file name stem from whatever name a client sent.

    Keeps the last path component (``/`` and ``\\`` both count), NFC-normalises it, drops its
    suffix, replaces control characters, NUL and shell-hostile characters by ``_``, strips
    leading dots, dashes and spaces, and cuts it to :data:`MAX_STEM_BYTES` UTF-8 bytes on a
    character boundary. Never empty (``upload`` when nothing is left).
    """
    last = re.split(r"[/\\]", client_name)[-1]
    name = unicodedata.normalize("NFC", last)
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    stem = "".join("_" if unicodedata.category(c).startswith("C") else c for c in stem)
    stem = _UNSAFE.sub("_", stem).lstrip(". -").rstrip(" ")
    encoded = stem.encode("utf-8")[:MAX_STEM_BYTES]
    stem = encoded.decode("utf-8", errors="ignore").rstrip(" ")
    return stem or "upload"


def inbox_name(job_id: str, client_name: str, suffix: str) -> str:
    """The name an upload arrives under in the inbox: ``<job id>-<sanitised stem><suffix>``."""
    return f"{job_id}-{sanitise_stem(client_name)}{suffix}"


@dataclass(frozen=True)
class Arrival:
    """An upload that has arrived in the inbox."""

    job_id: str
    inbox_name: str
    """File name in the inbox (top level)."""
    bytes: int
    """Size, bytes."""


class UploadSink:
    """One upload being written: ``write`` chunks, then ``arrive`` or ``discard``.

    Args:
        inbox: the daemon's inbox folder.
        limits: the decoding limits (``decode`` settings) the daemon applies.
        job_id: the job the upload becomes.

    Raises:
        OSError: the temporary file cannot be created.

    """

    def __init__(self, inbox: Path, limits: DecodeLimits, job_id: str) -> None:
        self.inbox = inbox
        self.limits = limits
        self.job_id = job_id
        folder = inbox / UPLOADS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{job_id}.part"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        self._fd: int | None = os.open(self.path, flags, 0o644)
        self.size = 0
        self._head = b""

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``.

        Raises:
            UploadRefused: 413, the upload passes ``decode.max_bytes``.

        """
        if self._fd is None:
            raise ValueError("upload already finished")
        self.size += len(chunk)
        if self.size > self.limits.max_bytes:
            raise UploadRefused(
                413,
                f"upload larger than the limit of {self.limits.max_bytes} bytes "
                "(decode.max_bytes); split the document or ask the operator to raise it",
            )
        if len(self._head) < 64:
            self._head += chunk[: 64 - len(self._head)]
        view = memoryview(chunk)
        while view:
            view = view[os.write(self._fd, view) :]

    def arrive(self, client_name: str) -> Arrival:
        """Check the upload and link it into the inbox under its server-made name.

        Args:
            client_name: the name the client gave (only its sanitised stem is used).

        Raises:
            UploadRefused: 400 empty, 415 not a supported type, 413 over a page or pixel
                limit; the temporary file is removed.
            OSError: the inbox cannot be written (the temporary file is removed).

        """
        try:
            suffix = self._check()
            assert self._fd is not None
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
            name = inbox_name(self.job_id, client_name, suffix)
            target = self.inbox / name
            if os.path.lexists(target):  # 64 random bits: never in practice, but never clobber
                raise FileExistsError(errno.EEXIST, "an upload already has this name", str(target))
            # A rename (not a link): the watcher sees a file moved into the inbox, complete,
            # and takes it after daemon.settle_after_close_seconds, not the full settle time.
            os.rename(self.path, target)
            fsync_dir(self.inbox)
            return Arrival(job_id=self.job_id, inbox_name=name, bytes=self.size)
        finally:
            self.discard()

    def _check(self) -> str:
        if self.size == 0:
            raise UploadRefused(400, "the upload is empty (0 bytes); send the file's content")
        suffix = sniff_suffix(self._head)
        if suffix is None:
            raise UploadRefused(
                415,
                "not a supported file type: the bytes are not a PDF, JPEG, PNG, TIFF, WebP or "
                "BMP; convert the document to PDF or an image first",
            )
        data = self.path.read_bytes()
        try:
            open_document(data, f"upload{suffix}", self.limits).close()
        except InputTooLargeError as exc:
            raise UploadRefused(413, str(exc).replace(f"upload{suffix}", "the upload")) from exc
        except UnsupportedFormatError as exc:
            raise UploadRefused(415, str(exc)) from exc
        except CorruptInputError:
            pass  # the daemon fails it with a report, like a damaged file dropped in a folder
        return suffix

    def discard(self) -> None:
        """Close and remove the temporary file (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
