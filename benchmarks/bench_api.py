"""The HTTP API under load: 200 uploads from 8 concurrent clients against a real ``serve``.

A real ``ocr-pipeline serve INBOX OUTBOX`` (the daemon and the API in one process, one API token,
every other setting at its default: 2 workers on 2 cores, ``serve.rate_limit`` 120/minute,
``serve.max_waiting`` 200, detector at the default accuracy settings) runs on 127.0.0.1 in a
temporary folder. Eight client threads (httpx) share the token and submit 200 uploads between
them (25 each, back to back, ``POST /v1/jobs``), then poll each job's ``status_url`` until it is
``done`` or ``failed`` (first poll 0.5 s after the upload, then 1.5 times longer each time, at
most 3 s apart), and fetch each finished job's result once.

* Inputs: the eight small receipt crops of the daemon tests (``receipt_crops()``: a band of
  header lines, about 460 pixels wide and 91-175 high, PNG), each upload a distinct variant
  (``png_variant``: same pixels, a PNG text chunk naming the upload), so no upload repeats
  another's bytes (the daemon would reuse the earlier result).
* Back-pressure: a ``429`` (rate) or ``503`` (backlog) is honoured by waiting ``Retry-After``
  seconds and submitting again; those answers are counted and reported. With one token for all
  clients, the uploads past 120 in the first minute are refused with ``429`` and retried.
* Latency: the upload request (start to ``202``), and upload-to-result (start of the accepted
  upload to the first poll that sees a terminal status; also to the server's ``finished_at``,
  which the polling interval does not round up).
* Integrity: after the server has stopped (SIGTERM drains), the audit log must hold exactly one
  terminal record (``done``, ``partial``, ``duplicate`` or ``failed``) for every accepted
  upload (found by the inbox name in the job's record, ``OUTBOX/.ocr-pipeline/jobs/``), and
  none for a file no client uploaded; the outbox must hold one result per upload that was read,
  and the API's final status must agree with the audit log. Any upload lost, duplicated or
  unaccounted for, or unfinished at ``--timeout``, exits 1.

Prints a table and writes ``benchmarks/results/api.json``. Run from the repository root:

    .venv/bin/python -m benchmarks.bench_api [--uploads 200] [--clients 8] [--fast]

``--fast`` uses the daemon tests' smaller detector input (``detect.limit_type`` max,
``limit_side`` 640) instead of the default accuracy settings.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import heapq
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ocr_pipeline.settings import DetectSettings, ServeSettings

try:
    from tests.daemon_harness import free_port, png_variant, receipt_crops, wait_until
except ModuleNotFoundError as error:  # run as a file, or from elsewhere: no ``tests`` package
    if error.name != "tests":
        raise
    raise SystemExit(
        "run from the repository root: .venv/bin/python -m benchmarks.bench_api ..."
    ) from error

REPO = Path(__file__).resolve().parents[1]
TERMINAL_EVENTS = frozenset({"done", "partial", "duplicate", "failed"})
"""Audit events that end a file's life (docs/daemon.md): exactly one per file."""
READ_EVENTS = frozenset({"done", "partial", "duplicate"})
"""Terminal events with a result in the outbox (the API's status ``done``)."""
FAST_DETECT = {"OCR_PIPELINE_DETECT__LIMIT_TYPE": "max", "OCR_PIPELINE_DETECT__LIMIT_SIDE": "640"}
"""The daemon tests' smaller detector input (``--fast``)."""
START_SECONDS = 180
STOP_SECONDS = 60
REQUEST_TIMEOUT_SECONDS = 120


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile, ``share`` in 0..1; ``None`` without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def rounded(value: float | None, digits: int) -> float | None:
    """``value`` rounded, ``None`` kept."""
    return None if value is None else round(value, digits)


def iso_seconds(text: str | None) -> float | None:
    """Unix seconds of an ISO 8601 time (``...Z``), ``None`` kept."""
    if not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class Server:
    """A running ``ocr-pipeline serve``, its own process group, on ``base/inbox`` and ``outbox``."""

    process: subprocess.Popen[bytes]
    url: str
    base: Path

    @property
    def log(self) -> Path:
        """The server's stdout and stderr."""
        return self.base / "serve.log"

    def exited(self) -> str | None:
        """Why the server can no longer answer (exit code and log tail), else ``None``."""
        code = self.process.poll()
        if code is None:
            return None
        tail = self.log.read_text(encoding="utf-8", errors="replace")[-2000:]
        return f"serve exited with code {code}:\n{tail}"

    def stop(self) -> int:
        """SIGTERM (the daemon drains); past ``STOP_SECONDS`` SIGKILL of the group. Exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()


def start_server(base: Path, env: dict[str, str]) -> Server:
    """``ocr-pipeline serve`` on a free port, once ``/readyz`` answers 200."""
    (base / "inbox").mkdir(parents=True)
    port = free_port()
    command = [sys.executable, "-m", "ocr_pipeline.cli", "serve"]
    command += [str(base / "inbox"), str(base / "outbox"), "--port", str(port)]
    with (base / "serve.log").open("wb") as sink:
        process = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(process, f"http://127.0.0.1:{port}", base)

    def ready() -> bool:
        try:
            return httpx.get(server.url + "/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(
            ready, START_SECONDS, f"/readyz of {server.url}", interval=0.2, abort=server.exited
        )
    except BaseException:
        server.stop()
        raise
    return server


@dataclass
class Upload:
    """One upload and what its client saw of it."""

    index: int
    name: str
    data: bytes
    first_try: float | None = None
    """Unix time of the first submission attempt."""
    started: float | None = None
    """Unix time the accepted submission started."""
    request_seconds: float | None = None
    """Duration of the accepted submission (to its ``202``)."""
    refused: Counter[int] = field(default_factory=Counter)
    """Answers 429 and 503 by status."""
    first_refused: float | None = None
    """Unix time of the first 429 or 503 answer."""
    waited_seconds: float = 0.0
    """Time spent honouring ``Retry-After``."""
    job: dict[str, Any] | None = None
    """The job as the ``202`` returned it."""
    final: dict[str, Any] | None = None
    """The job as the first poll that saw a terminal status returned it."""
    seen_terminal: float | None = None
    """Unix time that poll's answer arrived."""
    polls: int = 0
    result_status: int | None = None
    """HTTP status of fetching ``result_url`` (done jobs)."""
    error: str | None = None
    """Why the upload was not accepted (a status other than 202, 429, 503; a transport error)."""


@dataclass
class ClientStats:
    """Request timings and errors of one client thread."""

    poll_seconds: list[float] = field(default_factory=list)
    poll_errors: list[str] = field(default_factory=list)


class Client(threading.Thread):
    """Submits its uploads back to back (honouring 429/503), polling its pending jobs meanwhile."""

    def __init__(
        self,
        number: int,
        url: str,
        token: str,
        uploads: list[Upload],
        deadline: float,
        poll_first: float,
        poll_max: float,
    ) -> None:
        super().__init__(name=f"client-{number}", daemon=True)
        self.url = url
        self.token = token
        self.uploads = uploads
        self.deadline = deadline
        self.poll_first = poll_first
        self.poll_max = poll_max
        self.stats = ClientStats()

    def run(self) -> None:
        """Until every upload is terminal or refused, or the deadline (monotonic) passed."""
        headers = {"Authorization": f"Bearer {self.token}"}
        waiting = list(self.uploads)
        waiting.reverse()  # pop() from the end: in order
        next_submit = 0.0
        pending: list[tuple[float, int, float, Upload]] = []  # (due, index, interval, upload)
        with httpx.Client(
            base_url=self.url, headers=headers, timeout=REQUEST_TIMEOUT_SECONDS
        ) as http:
            while (waiting or pending) and time.monotonic() < self.deadline:
                now = time.monotonic()
                if waiting and now >= next_submit:
                    upload = waiting[-1]
                    retry_after = self.submit(http, upload)
                    if retry_after is None:
                        waiting.pop()
                        if upload.job is not None:
                            due = time.monotonic() + self.poll_first
                            heapq.heappush(pending, (due, upload.index, self.poll_first, upload))
                    else:
                        upload.waited_seconds += retry_after
                        next_submit = time.monotonic() + retry_after
                    continue
                if pending and pending[0][0] <= now:
                    _, _, interval, upload = heapq.heappop(pending)
                    if not self.poll(http, upload):
                        interval = min(self.poll_max, interval * 1.5)
                        due = time.monotonic() + interval
                        heapq.heappush(pending, (due, upload.index, interval, upload))
                    continue
                wake = [self.deadline]
                if waiting:
                    wake.append(next_submit)
                if pending:
                    wake.append(pending[0][0])
                time.sleep(max(0.0, min(wake) - time.monotonic()))

    def submit(self, http: httpx.Client, upload: Upload) -> float | None:
        """One attempt; seconds to wait before the next for a 429/503, else ``None``."""
        start, clock = time.time(), time.perf_counter()
        if upload.first_try is None:
            upload.first_try = start
        try:
            answer = http.post("/v1/jobs", files={"file": (upload.name, upload.data, "image/png")})
        except httpx.HTTPError as exc:
            upload.error = f"{type(exc).__name__}: {exc}"
            return None
        seconds = time.perf_counter() - clock
        if answer.status_code in (429, 503):
            upload.refused[answer.status_code] += 1
            if upload.first_refused is None:
                upload.first_refused = start
            return float(answer.headers.get("retry-after", "1"))
        if answer.status_code != 202:
            upload.error = f"HTTP {answer.status_code}: {answer.text[:300]}"
            return None
        upload.started, upload.request_seconds, upload.job = start, seconds, answer.json()
        return None

    def poll(self, http: httpx.Client, upload: Upload) -> bool:
        """One look at the job; True once it is terminal (its result then fetched once)."""
        assert upload.job is not None
        clock = time.perf_counter()
        try:
            answer = http.get(upload.job["status_url"])
        except httpx.HTTPError as exc:
            self.stats.poll_errors.append(f"{type(exc).__name__}: {exc}")
            return False
        self.stats.poll_seconds.append(time.perf_counter() - clock)
        upload.polls += 1
        if answer.status_code != 200:
            self.stats.poll_errors.append(f"HTTP {answer.status_code}: {answer.text[:300]}")
            return False
        state = answer.json()
        if state["status"] not in ("done", "failed"):
            return False
        upload.seen_terminal, upload.final = time.time(), state
        if state["status"] == "done":
            try:
                upload.result_status = http.get(state["result_url"]).status_code
            except httpx.HTTPError as exc:
                self.stats.poll_errors.append(f"result: {type(exc).__name__}: {exc}")
        return True


def make_uploads(count: int) -> list[Upload]:
    """``count`` uploads: the receipt crops in turn, each a distinct PNG variant."""
    crops = receipt_crops()
    return [
        Upload(i, f"crop-{i:04d}.png", png_variant(crops[i % len(crops)], f"bench-api-{i}"))
        for i in range(count)
    ]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of ``path`` (none if it does not exist)."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def visible_files(folder: Path) -> list[Path]:
    """Files under ``folder`` outside hidden folders, not hidden themselves."""
    if not folder.is_dir():
        return []
    return [
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]


def http_counts(metrics: str) -> dict[str, int]:
    """``METHOD route status`` -> count, from the server's ``ocr_pipeline_http_requests_total``."""
    counts = {}
    pattern = re.compile(
        r'^ocr_pipeline_http_requests_total\{method="(\w+)",route="([^"]*)",status="(\d+)"\}'
        r" ([0-9.e+]+)$",
        re.MULTILINE,
    )
    for method, route, status, value in pattern.findall(metrics):
        counts[f"{method} {route} {status}"] = int(float(value))
    return counts


def check(base: Path, uploads: list[Upload]) -> dict[str, Any]:
    """Every accepted upload against the audit log, the job records and the outbox."""
    outbox = base / "outbox"
    records_dir = outbox / ".ocr-pipeline" / "jobs"
    audit = read_jsonl(base / "logs" / "audit.jsonl")
    terminal = [r for r in audit if r.get("event") in TERMINAL_EVENTS]
    per_source = Counter(str(r.get("source")) for r in terminal)
    event_of = {str(r.get("source")): str(r["event"]) for r in terminal}
    accepted = [u for u in uploads if u.job is not None]
    accepted_ids = {str(u.job["job_id"]) for u in accepted if u.job}
    outcomes: Counter[str] = Counter()
    lost, duplicated, disagree, no_record = [], [], [], []
    for upload in accepted:
        assert upload.job is not None
        job_id = str(upload.job["job_id"])
        record_file = records_dir / f"{job_id}.json"
        if not record_file.is_file():
            no_record.append(job_id)
            sources = [s for s in per_source if s.startswith(f"{job_id}-")]
        else:
            sources = [json.loads(record_file.read_text(encoding="utf-8"))["inbox_name"]]
        count = sum(per_source[s] for s in sources)
        if count == 0:
            lost.append(job_id)
            continue
        if count > 1:
            duplicated.append(job_id)
        event = event_of[sources[0]]
        outcomes[event] += 1
        if upload.final is not None:
            expected = "failed" if event == "failed" else "done"
            if upload.final["status"] != expected or upload.final["outcome"] != event:
                disagree.append(job_id)
    unaccounted = sorted({s for s in per_source if s[:16] not in accepted_ids})
    results = [p for p in visible_files(outbox) if p.suffix == ".json"]
    texts = [p for p in visible_files(outbox) if p.suffix == ".txt"]
    waiting = visible_files(base / "inbox") + visible_files(
        base / "inbox" / ".ocr-pipeline" / "work"
    )
    return {
        "accepted": len(accepted),
        "job_records": len(list(records_dir.glob("*.json"))) if records_dir.is_dir() else 0,
        "terminal_records": len(terminal),
        "outcomes": dict(sorted(outcomes.items())),
        "lost": lost,
        "duplicated": duplicated,
        "unaccounted_sources": unaccounted,
        "jobs_without_record": no_record,
        "api_disagrees_with_audit": disagree,
        "outbox_json_results": len(results),
        "outbox_txt_results": len(texts),
        "results_expected": sum(n for event, n in outcomes.items() if event in READ_EVENTS),
        "archived_originals": len(visible_files(base / "archive")),
        "still_waiting_after_stop": len(waiting),
    }


def summarise(
    uploads: list[Upload], clients: list[Client], wall: float, integrity: dict[str, Any]
) -> dict[str, Any]:
    """The figures of one run."""
    accepted = [u for u in uploads if u.job is not None and u.started is not None]
    finished = [u for u in accepted if u.seen_terminal is not None]
    request_ms = [1000 * u.request_seconds for u in accepted if u.request_seconds is not None]
    to_seen = [u.seen_terminal - u.started for u in finished if u.seen_terminal and u.started]
    to_finish = []
    for u in finished:
        end = iso_seconds((u.final or {}).get("finished_at"))
        if end is not None and u.started is not None:
            to_finish.append(end - u.started)
    first = min((u.first_try for u in uploads if u.first_try is not None), default=0.0)
    last_accept = max(
        (u.started + (u.request_seconds or 0) for u in accepted if u.started), default=first
    )
    refusals = [u.first_refused for u in uploads if u.first_refused is not None]
    before = [
        u for u in accepted if u.started is not None and u.started < min(refusals, default=1e18)
    ]
    burst_end = max(
        (u.started + (u.request_seconds or 0) for u in before if u.started), default=first
    )
    last_seen = max((u.seen_terminal for u in finished if u.seen_terminal), default=first)
    polls = [s for c in clients for s in c.stats.poll_seconds]
    refused = sum((u.refused for u in uploads), Counter())
    poll_errors = [e for c in clients for e in c.stats.poll_errors]
    return {
        "wall_seconds": round(wall, 1),
        "accepted": len(accepted),
        "not_accepted": {str(u.index): u.error for u in uploads if u.job is None},
        "upload_phase_seconds": round(last_accept - first, 1),
        "uploads_per_second_accepted": round(len(accepted) / max(last_accept - first, 1e-9), 2),
        "accepted_before_first_refusal": len(before),
        "burst_seconds": round(burst_end - first, 2),
        "burst_uploads_per_second": round(len(before) / max(burst_end - first, 1e-9), 2),
        "finished": len(finished),
        "unfinished": [str(u.job["job_id"]) for u in accepted if u.job and not u.seen_terminal],
        "jobs_per_second": round(len(finished) / max(last_seen - first, 1e-9), 3),
        "upload_request_ms_p50": rounded(percentile(request_ms, 0.5), 1),
        "upload_request_ms_p95": rounded(percentile(request_ms, 0.95), 1),
        "upload_request_ms_max": rounded(max(request_ms, default=None), 1),
        "result_latency_s_p50": rounded(percentile(to_seen, 0.5), 2),
        "result_latency_s_p95": rounded(percentile(to_seen, 0.95), 2),
        "finished_at_latency_s_p50": rounded(percentile(to_finish, 0.5), 2),
        "finished_at_latency_s_p95": rounded(percentile(to_finish, 0.95), 2),
        "answers_429": refused[429],
        "answers_503": refused[503],
        "uploads_retried": sum(1 for u in uploads if u.refused),
        "retry_after_waited_s": round(sum(u.waited_seconds for u in uploads), 1),
        "polls": len(polls),
        "poll_ms_p50": rounded(percentile([1000 * s for s in polls], 0.5), 1),
        "poll_ms_p95": rounded(percentile([1000 * s for s in polls], 0.95), 1),
        "poll_errors": poll_errors[:20],
        "poll_error_count": len(poll_errors),
        "results_fetched": sum(1 for u in finished if u.result_status == 200),
        "results_not_fetched": sum(
            1
            for u in finished
            if u.final and u.final["status"] == "done" and u.result_status != 200
        ),
        "integrity": integrity,
    }


def table(report: dict[str, Any]) -> str:
    """The run as a Markdown table."""
    run, integrity = report["run"], report["run"]["integrity"]
    outcomes = integrity["outcomes"]
    rows = [
        ("inputs", report["inputs"]),
        ("detector", report["detector"]),
        ("uploads / clients", f"{report['uploads']} / {report['clients']} (one token)"),
        ("wall seconds", run["wall_seconds"]),
        (
            "uploads/s accepted",
            f"{run['uploads_per_second_accepted']} ({run['accepted']} in "
            f"{run['upload_phase_seconds']} s; before the first refusal "
            f"{run['burst_uploads_per_second']}: {run['accepted_before_first_refusal']} in "
            f"{run['burst_seconds']} s)",
        ),
        ("jobs completed/s", run["jobs_per_second"]),
        (
            "upload request p50 / p95 ms",
            f"{run['upload_request_ms_p50']} / {run['upload_request_ms_p95']}",
        ),
        (
            "upload-to-result p50 / p95 s",
            f"{run['result_latency_s_p50']} / {run['result_latency_s_p95']} (to finished_at: "
            f"{run['finished_at_latency_s_p50']} / {run['finished_at_latency_s_p95']})",
        ),
        (
            "429 / 503 answers retried",
            f"{run['answers_429']} / {run['answers_503']} ({run['uploads_retried']} uploads, "
            f"Retry-After honoured)",
        ),
        (
            "status polls, p50 / p95 ms",
            f"{run['polls']}, {run['poll_ms_p50']} / {run['poll_ms_p95']}",
        ),
        (
            "terminal: done / partial / duplicate / failed",
            " / ".join(str(outcomes.get(k, 0)) for k in ("done", "partial", "duplicate", "failed")),
        ),
        (
            "lost / duplicated / unaccounted",
            f"{len(integrity['lost'])} / {len(integrity['duplicated'])} / "
            f"{len(integrity['unaccounted_sources'])}",
        ),
        (
            "results in outbox (json / txt), fetched",
            f"{integrity['outbox_json_results']} / {integrity['outbox_txt_results']}, "
            f"{run['results_fetched']}",
        ),
    ]
    lines = ["| measure | value |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def main() -> int:
    """Run the benchmark; 1 if any upload was lost, duplicated, unaccounted for or unfinished."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--fast", action="store_true", help="detect.limit_type max, limit_side 640")
    parser.add_argument("--timeout", type=float, default=1200, help="global bound, seconds")
    parser.add_argument("--poll-first", type=float, default=0.5, help="first poll after, s")
    parser.add_argument("--poll-max", type=float, default=3.0, help="longest poll interval, s")
    parser.add_argument("--rate-limit", help="serve.rate_limit (default: the setting's default)")
    parser.add_argument("--max-waiting", type=int, help="serve.max_waiting (default: its default)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/api.json")
    parser.add_argument("--keep-temp", action="store_true")
    args = parser.parse_args()

    token = secrets.token_urlsafe(24)
    env = {"OCR_PIPELINE_SERVE__TOKENS": json.dumps([token]), "OCR_PIPELINE_LOG__LEVEL": "warning"}
    if args.fast:
        env.update(FAST_DETECT)
    if args.rate_limit:
        env["OCR_PIPELINE_SERVE__RATE_LIMIT"] = args.rate_limit
    if args.max_waiting:
        env["OCR_PIPELINE_SERVE__MAX_WAITING"] = str(args.max_waiting)
    detect = DetectSettings()
    serve = ServeSettings()
    report: dict[str, Any] = {
        "command": " ".join([".venv/bin/python -m benchmarks.bench_api", *sys.argv[1:]]),
        "cpu_count": os.cpu_count(),
        "uploads": args.uploads,
        "clients": args.clients,
        "inputs": "PNG variants of the 8 receipt crops of tests/daemon_harness.receipt_crops()",
        "detector": (
            "detect.limit_type max, limit_side 640 (--fast)"
            if args.fast
            else f"default accuracy settings (detect.limit_type {detect.limit_type}, "
            f"limit_side {detect.limit_side}, max_side {detect.max_side})"
        ),
        "serve": {
            "rate_limit": args.rate_limit or serve.rate_limit,
            "max_waiting": args.max_waiting or serve.max_waiting,
            "retry_after_seconds": serve.retry_after_seconds,
            "workers": "default (the CPUs)",
        },
        "poll": {"first_s": args.poll_first, "factor": 1.5, "max_s": args.poll_max},
        "load_average_before": os.getloadavg(),
    }
    uploads = make_uploads(args.uploads)
    scratch = Path(tempfile.mkdtemp(prefix="ocr-bench-api-"))
    failed = True
    try:
        server = start_server(scratch / "run", env)
        try:
            deadline = time.monotonic() + args.timeout
            clients = [
                Client(
                    n,
                    server.url,
                    token,
                    uploads[n :: args.clients],
                    deadline,
                    args.poll_first,
                    args.poll_max,
                )
                for n in range(args.clients)
            ]
            began = time.monotonic()
            for client in clients:
                client.start()
            for client in clients:
                client.join()
            wall = time.monotonic() - began
            try:
                metrics = httpx.get(server.url + "/metrics", timeout=30).text
            except httpx.HTTPError:
                metrics = ""
        finally:
            exit_code = server.stop()
        report["load_average_after"] = os.getloadavg()
        report["serve_exit_code"] = exit_code
        log = server.log.read_text(encoding="utf-8", errors="replace").splitlines()
        report["serve_log_lines"] = len(log)
        report["serve_log_head"] = log[:20]
        report["server_http_requests"] = http_counts(metrics)
        report["run"] = summarise(uploads, clients, wall, check(server.base, uploads))
        integrity = report["run"]["integrity"]
        failed = bool(
            integrity["lost"]
            or integrity["duplicated"]
            or integrity["unaccounted_sources"]
            or report["run"]["unfinished"]
        )
        print(table(report))
        for problem in ("lost", "duplicated", "unaccounted_sources", "api_disagrees_with_audit"):
            if integrity[problem]:
                print(f"{problem}: {integrity[problem]}")
        if report["run"]["unfinished"]:
            print(f"unfinished at --timeout {args.timeout:g} s: {report['run']['unfinished']}")
        if report["run"]["not_accepted"]:
            print(f"not accepted: {report['run']['not_accepted']}")
        if log:
            print(f"serve log ({len(log)} lines, warnings and errors), first lines:")
            print("\n".join(log[:10]))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.out}")
    finally:
        if args.keep_temp:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
