"""The HTTP API (``/v1``) and the web page (``/``) in front of one daemon's folders.

A thin layer over the folder contract: an upload is written atomically into the inbox
(:mod:`~ocr_pipeline.web.uploads`), a job's state and result are read from the outbox, the
failed folder and the audit log (:mod:`~ocr_pipeline.web.jobbook`). Nothing is OCRed here; the
daemon (in the same ``serve`` process, or another one on a shared volume) does that.

Endpoints (docs/api.md has ``curl`` examples; ``/docs`` and ``/openapi.json`` describe them):

* ``POST /v1/jobs``: multipart ``file``, or JSON ``{"name", "content_base64"}``: ``202`` + job;
* ``GET /v1/jobs/{id}``: ``queued | processing | done | failed`` (with the error report);
* ``GET /v1/jobs/{id}/result`` (JSON), ``/result.txt`` and every configured output;
* ``GET /v1/jobs/{id}/pages/{n}``: page ``n`` (0-based) as a JPEG, in the pixels of the result;
* ``POST /v1/ocr?wait=SECONDS``: submit and wait: ``200`` + result, or ``202`` + job;
* ``GET /v1/info``, ``GET /healthz``, ``GET /readyz``, ``GET /metrics``.
"""

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import cv2
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ocr_pipeline import __version__
from ocr_pipeline.documents import SUPPORTED_SUFFIXES, open_document
from ocr_pipeline.folders import Folders
from ocr_pipeline.jobs import decode_limits
from ocr_pipeline.settings import Settings
from ocr_pipeline.state import check_health
from ocr_pipeline.web.jobbook import JobBook, JobRecord, JobView, utc_iso
from ocr_pipeline.web.multipart import stream_file_field
from ocr_pipeline.web.security import RateLimit, load_tokens, token_key
from ocr_pipeline.web.uploads import JOB_ID, Arrival, UploadRefused, UploadSink, new_job_id
from ocr_pipeline.writers import WRITERS

JSON_OVERHEAD_BYTES = 64 * 1024
"""Room for the JSON wrapper around a base64 upload, bytes."""
WAIT_POLL_SECONDS = 0.2
"""How often ``POST /v1/ocr?wait=`` looks at the audit log, seconds."""
JobId = Annotated[str, PathParam(pattern=JOB_ID.pattern, description="16 hex digits.")]

UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}},
            }
        },
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["content_base64"],
                "properties": {
                    "name": {"type": "string", "description": "Original file name."},
                    "content_base64": {"type": "string", "description": "The file, base64."},
                },
            }
        },
    },
}


class _HttpMetrics:
    """Request counts and latencies by route template (Prometheus)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ocr_pipeline_http_requests",
            "HTTP requests by method, route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ocr_pipeline_http_request_seconds",
            "HTTP request latency by method and route, seconds.",
            ["method", "route"],
            registry=self.registry,
        )


class Front:
    """The state the endpoints share: settings, folders, job book, tokens, rate limit.

    Raises:
        ConfigError: the token file cannot be read, or the rate limit is malformed.

    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.folders = Folders.from_settings(settings)
        self.book = JobBook(self.folders)
        self.limits = decode_limits(settings.decode)
        self.tokens = load_tokens(settings.serve)
        self.rate = RateLimit(settings.serve.rate_limit)
        self.http = _HttpMetrics()

    def caller(self, request: Request) -> str:
        """The caller's rate-limit key; without tokens configured, the client address.

        Raises:
            HTTPException: 401 without a valid ``Authorization: Bearer`` token.

        """
        if not self.tokens:
            return "addr:" + (request.client.host if request.client else "unknown")
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        key = token_key(presented.strip() if scheme.lower() == "bearer" else None, self.tokens)
        if key is None:
            raise HTTPException(
                401,
                "missing or wrong API token; send 'Authorization: Bearer TOKEN' with a token "
                "from serve.tokens or serve.token_file",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return key

    def admit(self, key: str) -> None:
        """Refuse a submission over the caller's rate or over the inbox backlog.

        Raises:
            HTTPException: 429 (rate) or 503 (backlog), each with ``Retry-After``.

        """
        limit = self.settings.serve.max_waiting
        if self.book.count_waiting(limit) > limit:  # first: a refused upload costs no rate
            after = self.settings.serve.retry_after_seconds
            raise HTTPException(
                503,
                f"more than {limit} files are waiting for OCR (serve.max_waiting); retry in "
                f"{after} s",
                headers={"Retry-After": str(after)},
            )
        wait = self.rate.retry_after(key)
        if wait is not None:
            raise HTTPException(
                429,
                f"rate limit {self.settings.serve.rate_limit} reached; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )

    async def receive(self, request: Request) -> JobView:
        """Take an upload into the inbox and record its job.

        Raises:
            HTTPException: 400, 413, 415 for a refused upload.

        """
        job_id = new_job_id()
        declared = request.headers.get("content-length")
        is_json = request.headers.get("content-type", "").startswith("application/json")
        room = self.limits.max_bytes * 4 // 3 + JSON_OVERHEAD_BYTES if is_json else None
        most = room or self.limits.max_bytes + JSON_OVERHEAD_BYTES
        if declared is not None and declared.isdigit() and int(declared) > most:
            raise HTTPException(
                413,
                f"upload larger than {self.limits.max_bytes} bytes (decode.max_bytes); split "
                "the document or ask the operator to raise the limit",
            )
        try:
            if is_json:
                sink, name = await self._json_upload(request, job_id, room or 0)
            else:
                sink, name = await stream_file_field(
                    request.headers.get("content-type", ""),
                    request.stream(),
                    lambda: UploadSink(self.folders.inbox, self.limits, job_id),
                )
            arrival: Arrival = await run_in_threadpool(sink.arrive, name)
        except UploadRefused as exc:
            raise HTTPException(exc.status, str(exc)) from exc
        record = JobRecord(
            job_id=job_id,
            name=name,
            inbox_name=arrival.inbox_name,
            bytes=arrival.bytes,
            submitted_at=utc_iso(),
        )
        await run_in_threadpool(self.book.add, record)
        return JobView(record=record, status="queued", terminal=None)

    async def _json_upload(
        self, request: Request, job_id: str, room: int
    ) -> tuple[UploadSink, str]:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > room:
                raise UploadRefused(413, f"upload larger than {self.limits.max_bytes} bytes")
        try:
            payload = json.loads(body)
            content = base64.b64decode(payload["content_base64"], validate=True)
            name = str(payload.get("name") or "upload")
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise UploadRefused(
                400, 'a JSON upload is {"name": "scan.jpg", "content_base64": "..."}'
            ) from exc
        sink = UploadSink(self.folders.inbox, self.limits, job_id)
        try:
            sink.write(content)
        except UploadRefused:
            sink.discard()
            raise
        return sink, name

    def view(self, job_id: str) -> JobView:
        """The job's state.

        Raises:
            HTTPException: 404 for an unknown job.

        """
        view = self.book.view(job_id)
        if view is None:
            raise HTTPException(404, f"no job {job_id}")
        return view

    def job_json(self, view: JobView) -> dict[str, Any]:
        """The job as the API shows it (see docs/api.md)."""
        job_id = view.record.job_id
        base = f"/v1/jobs/{job_id}"
        outputs = {
            name: f"{base}/result" if name == "json" else f"{base}/result{WRITERS[name].suffix}"
            for name in self.settings.outputs
        }
        return {
            "job_id": job_id,
            "name": view.record.name,
            "status": view.status,
            "outcome": view.outcome,
            "submitted_at": view.record.submitted_at,
            "finished_at": (view.terminal or {}).get("time"),
            "status_url": base,
            "result_url": f"{base}/result",
            "outputs": outputs,
            "pages_url": f"{base}/pages",
            "error": self.book.error_report(view),
        }

    def output_path(self, view: JobView, suffix: str) -> Path:
        """The job's result file with ``suffix``.

        Raises:
            HTTPException: 409 not finished or failed; 404 the file is gone.

        """
        stem = view.result_stem
        if view.status != "done" or stem is None:
            raise HTTPException(
                409,
                f"job {view.record.job_id} is {view.status}; results exist once it is done "
                "(poll its status_url)",
            )
        path = self.folders.outbox / f"{stem}{suffix}"
        if not path.is_file():
            raise HTTPException(404, f"the result {path.name} is no longer in the outbox")
        return path

    def page_jpeg(self, view: JobView, index: int) -> bytes:
        """Page ``index`` of the job's original as delivered to the engine, JPEG bytes.

        Raises:
            HTTPException: 404 when the original is no longer kept or has no such page.

        """
        original = self.book.original(view)
        if original is None:
            raise HTTPException(404, "the original is no longer kept (daemon.on_success)")
        with open_document(original.read_bytes(), view.record.inbox_name, self.limits) as doc:
            if not 0 <= index < doc.page_count:
                raise HTTPException(404, f"no page {index}: the document has {doc.page_count}")
            page = doc.page(index)
        ok, encoded = cv2.imencode(".jpg", page.image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            raise HTTPException(500, "the page could not be encoded as JPEG")
        return bytes(encoded)

    def readiness(self) -> tuple[bool, str]:
        """Ready: the daemon's heartbeat is fresh, a worker is up, the backlog under its limit."""
        max_age = max(3 * self.settings.daemon.status_seconds, 10.0)
        healthy, reason = check_health(self.folders.status_file, max_age)
        if not healthy:
            return False, reason
        try:
            status = json.loads(self.folders.status_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False, "the status file vanished"
        if not status.get("workers_alive"):
            return False, "no worker process is up yet"
        limit = self.settings.serve.max_waiting
        if self.book.count_waiting(limit) > limit:
            return False, f"more than {limit} files wait (serve.max_waiting)"
        return True, reason


def create_app(settings: Settings, daemon_registry: CollectorRegistry | None = None) -> FastAPI:
    """The FastAPI application over the folders of ``settings``.

    Args:
        settings: the daemon's settings (folders, decode limits, outputs, ``serve``).
        daemon_registry: the in-process daemon's Prometheus registry, exposed at ``/metrics``
            beside the HTTP metrics (``serve``; ``None`` for a front alone).

    Raises:
        ConfigError: the token file cannot be read, or the rate limit is malformed.

    """
    front = Front(settings)
    app = FastAPI(
        title="ocr-pipeline",
        version=__version__,
        description="Submit scans to the OCR daemon's inbox and read their results.",
    )
    app.state.front = front
    _add_metrics_middleware(app, front)
    # No ``from __future__ import annotations`` in this module: FastAPI reads these local
    # annotations at run time.
    caller = Annotated[str, Depends(front.caller)]

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The HTTP process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """200 when the daemon can take work, else 503 with the reason.

        Ready: a fresh heartbeat, a worker up, the backlog under ``serve.max_waiting``.
        """
        ready, reason = front.readiness()
        return JSONResponse({"ready": ready, "reason": reason}, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["health"])
    def metrics() -> Response:
        """Prometheus metrics: HTTP requests and latencies, and the daemon's (``serve``)."""
        body = generate_latest(front.http.registry)
        if daemon_registry is not None:
            body += generate_latest(daemon_registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/info", tags=["jobs"])
    def info() -> dict[str, Any]:
        """What the server accepts: whether a token is needed, the byte limit, the types."""
        return {
            "version": __version__,
            "auth_required": bool(front.tokens),
            "max_bytes": front.limits.max_bytes,
            "supported_suffixes": sorted(SUPPORTED_SUFFIXES),
            "outputs": list(settings.outputs),
        }

    @app.get("/v1/auth", tags=["jobs"])
    def auth(key: caller) -> dict[str, bool]:
        """200 when the request's token is accepted (or none is needed), else 401."""
        return {"authenticated": True}

    @app.post(
        "/v1/jobs", status_code=202, tags=["jobs"], openapi_extra={"requestBody": UPLOAD_BODY}
    )
    async def submit(request: Request, key: caller) -> dict[str, Any]:
        """Submit a scan; it is written into the inbox and OCRed by the daemon."""
        await run_in_threadpool(front.admit, key)
        return front.job_json(await front.receive(request))

    @app.get("/v1/jobs/{job_id}", tags=["jobs"])
    def job(job_id: JobId, key: caller) -> dict[str, Any]:
        """A job's state: queued, processing, done or failed (with its error report)."""
        return front.job_json(front.view(job_id))

    @app.get("/v1/jobs/{job_id}/result", tags=["jobs"])
    def result(job_id: JobId, key: caller) -> FileResponse:
        """The result JSON (``ocr-pipeline schema``)."""
        path = front.output_path(front.view(job_id), ".json")
        return FileResponse(path, media_type="application/json")

    @app.get("/v1/jobs/{job_id}/result.{output}", tags=["jobs"])
    def output(job_id: JobId, output: str, key: caller) -> FileResponse:
        """Another result file of the job: ``txt`` and every other configured output."""
        writer = WRITERS.get(output)
        if writer is None or output not in settings.outputs:
            raise HTTPException(404, f"no output {output!r}; configured: {settings.outputs}")
        path = front.output_path(front.view(job_id), writer.suffix)
        return FileResponse(path, media_type=writer.media_type)

    @app.get("/v1/jobs/{job_id}/pages/{index}", tags=["jobs"])
    def page(job_id: JobId, index: int, key: caller) -> Response:
        """Page ``index`` (0-based) as the engine read it, JPEG, in the result's pixels."""
        return Response(front.page_jpeg(front.view(job_id), index), media_type="image/jpeg")

    @app.post("/v1/ocr", tags=["jobs"], openapi_extra={"requestBody": UPLOAD_BODY})
    async def ocr(
        request: Request,
        key: caller,
        wait: Annotated[float, Query(ge=0, description="Seconds to wait for the result.")] = 60,
    ) -> Response:
        """Submit and wait for the result.

        200 with the result JSON when done in time, 422 with the job (and its error report)
        when it failed, else 202 with the job to poll.
        """
        await run_in_threadpool(front.admit, key)
        view = await front.receive(request)
        deadline = time.monotonic() + min(wait, settings.serve.max_wait_seconds)
        while view.status not in ("done", "failed") and time.monotonic() < deadline:
            await asyncio.sleep(WAIT_POLL_SECONDS)
            view = await run_in_threadpool(front.view, view.record.job_id)
        if view.status == "done":
            path = front.output_path(view, ".json")
            return FileResponse(path, media_type="application/json")
        status = 422 if view.status == "failed" else 202
        return JSONResponse(front.job_json(view), status_code=status)

    static = Path(str(resources.files("ocr_pipeline.web") / "static"))
    if static.is_dir():
        app.mount("/static", StaticFiles(directory=static), name="static")

        @app.get("/", include_in_schema=False)
        def index() -> FileResponse:
            return FileResponse(static / "index.html", media_type="text/html")

    return app


def _add_metrics_middleware(app: FastAPI, front: Front) -> None:
    @app.middleware("http")
    async def count(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        front.http.requests.labels(request.method, route, str(response.status_code)).inc()
        front.http.latency.labels(request.method, route).observe(time.perf_counter() - start)
        return response
