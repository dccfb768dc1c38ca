"""Streaming ``multipart/form-data`` reading: the ``file`` field goes straight to an upload sink.

Starlette's form parser spools a whole upload to a temporary file before the endpoint sees it,
so a 50 GB body would be written to disk before being refused. Here the body is parsed as it
arrives (python-multipart's :class:`~python_multipart.multipart.MultipartParser`, RFC 7578),
the ``file`` part's bytes are handed to :class:`~ocr_pipeline.web.uploads.UploadSink` chunk by
chunk, and the sink refuses the upload the moment it passes ``decode.max_bytes``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from python_multipart.multipart import MultipartParser, parse_options_header

from ocr_pipeline.web.uploads import UploadRefused, UploadSink

FILE_FIELD = "file"
"""The form field holding the scan."""
MAX_OTHER_BYTES = 64 * 1024
"""Most bytes of all other form fields together; they are read and ignored."""


class _Parts:
    """Parser callbacks: headers of each part, the ``file`` part's data into the sink."""

    def __init__(self, open_sink: Callable[[], UploadSink]) -> None:
        self.open_sink = open_sink
        self.sink: UploadSink | None = None
        self.filename: str | None = None
        self._field = b""
        self._value = b""
        self._headers: dict[bytes, bytes] = {}
        self._in_file = False
        self._other_bytes = 0

    def on_part_begin(self) -> None:
        self._headers = {}
        self._in_file = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._field.strip().lower()] = self._value.strip()
        self._field = self._value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if options.get(b"name") == FILE_FIELD.encode() and self.sink is None:
            self.filename = options.get(b"filename", b"upload").decode("utf-8", "replace")
            self.sink = self.open_sink()
            self._in_file = True

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            assert self.sink is not None
            self.sink.write(data[start:end])
            return
        self._other_bytes += end - start
        if self._other_bytes > MAX_OTHER_BYTES:
            raise UploadRefused(413, f"form fields besides {FILE_FIELD!r} are over 64 KiB")

    def on_part_end(self) -> None:
        self._in_file = False


async def stream_file_field(
    content_type: str, body: AsyncIterator[bytes], open_sink: Callable[[], UploadSink]
) -> tuple[UploadSink, str]:
    """Read a ``multipart/form-data`` body, writing its ``file`` field into a new sink.

    Args:
        content_type: the request's ``Content-Type`` header (with the boundary).
        body: the request body's chunks (``Request.stream()``).
        open_sink: makes the sink when the ``file`` part starts.

    Returns:
        The sink holding the file's bytes (the caller arrives or discards it) and the client's
        file name (``upload`` when none was sent).

    Raises:
        UploadRefused: 400 no boundary, a malformed body or no ``file`` field; 413 over the
            byte limit (the sink, if opened, is discarded).

    """
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise UploadRefused(400, "multipart/form-data without a boundary")
    parts = _Parts(open_sink)
    parser = MultipartParser(boundary, callbacks=_callbacks(parts))  # type: ignore[arg-type]
    try:
        async for chunk in body:
            parser.write(chunk)
        parser.finalize()
    except UploadRefused:
        if parts.sink is not None:
            parts.sink.discard()
        raise
    except Exception as exc:  # python-multipart's MultipartParseError and friends
        if parts.sink is not None:
            parts.sink.discard()
        raise UploadRefused(400, f"malformed multipart/form-data body ({exc})") from exc
    if parts.sink is None:
        raise UploadRefused(
            400, f"no {FILE_FIELD!r} field in the form; send the scan as -F {FILE_FIELD}=@scan.jpg"
        )
    return parts.sink, parts.filename or "upload"


def _callbacks(parts: _Parts) -> dict[str, Callable[..., None]]:
    return {
        "on_part_begin": parts.on_part_begin,
        "on_header_field": parts.on_header_field,
        "on_header_value": parts.on_header_value,
        "on_header_end": parts.on_header_end,
        "on_headers_finished": parts.on_headers_finished,
        "on_part_data": parts.on_part_data,
        "on_part_end": parts.on_part_end,
    }
