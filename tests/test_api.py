"""The HTTP API against real servers on 127.0.0.1: ``ocr-pipeline serve`` with the real daemon
and engine, and ``serve --front-only`` over folders no daemon reads (backlog, names).

Every status code the API promises is provoked for real: 202/200 on real receipts, 401, 413
(declared and streamed), 415, 429 and 503 with ``Retry-After``, 422 for a file that fails.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from ocr_pipeline.evaluation import Score, load_ground_truth
from tests.conftest import SROIE_DEV
from tests.daemon_harness import cli_command, cli_env, free_port, wait_until

TOKEN = "api-test-token"
RATE_TOKEN = "rate-test-token"
MAX_BYTES = 3_000_000
RATE = 12  # per token: above what the other tests submit with TOKEN
SAFE_NAME = re.compile(r"^[0-9a-f]{16}-[\w.\- ()+,=@\[\]]+\.(jpg|png|pdf|tif|webp|bmp)$")


@dataclass
class Server:
    """A running ``ocr-pipeline serve`` and its folders."""

    process: subprocess.Popen[bytes]
    url: str
    base: Path
    log: Path

    @property
    def inbox(self) -> Path:
        return self.base / "inbox"

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def _start(base: Path, *extra: str, env: dict[str, str], ready: str) -> Server:
    (base / "inbox").mkdir(parents=True)
    port = free_port()
    log = base / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            cli_command("serve", base / "inbox", base / "outbox", "--port", str(port), *extra),
            env=cli_env(env),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, f"http://127.0.0.1:{port}", base, log)

    def up() -> bool:
        try:
            return httpx.get(server.url + ready, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def exited() -> str | None:
        code = process.poll()
        return None if code is None else f"serve exited {code}: {log.read_text()[-2000:]}"

    wait_until(up, 180, f"{ready} of {server.url}", interval=0.2, abort=exited)
    return server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The daemon and the API together, one worker, two tokens, a small byte limit."""
    env = {
        "OCR_PIPELINE_SERVE__TOKENS": json.dumps([TOKEN, RATE_TOKEN]),
        "OCR_PIPELINE_SERVE__RATE_LIMIT": f"{RATE}/minute",
        "OCR_PIPELINE_DECODE__MAX_BYTES": str(MAX_BYTES),
        "OCR_PIPELINE_DAEMON__WORKERS": "1",
        "OCR_PIPELINE_DAEMON__SETTLE_AFTER_CLOSE_SECONDS": "0.2",
    }
    server = _start(tmp_path_factory.mktemp("served"), env=env, ready="/readyz")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The API alone over folders no daemon reads: uploads stay queued in the inbox."""
    env = {"OCR_PIPELINE_SERVE__MAX_WAITING": "3", "OCR_PIPELINE_SERVE__RATE_LIMIT": "1000/minute"}
    server = _start(tmp_path_factory.mktemp("front"), "--front-only", env=env, ready="/healthz")
    yield server
    server.stop()


def _receipt(number: int) -> tuple[bytes, str]:
    truth = next(r for r in load_ground_truth(SROIE_DEV) if r.image.stem == f"{number:03d}")
    return truth.image.read_bytes(), truth.text


def _word_f1(text: str, truth: str) -> float:
    score = Score()
    score.add(text, truth)
    return score.word_f1


def _png(width: int = 64, height: int = 32) -> bytes:
    ok, encoded = cv2.imencode(".png", np.full((height, width, 3), 255, np.uint8))
    assert ok
    return encoded.tobytes()


def test_ocr_wait_returns_the_receipt_text(served: Server) -> None:
    data, truth = _receipt(1)
    with served.client() as client:
        answer = client.post("/v1/ocr", params={"wait": 90}, files={"file": ("001.jpg", data)})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["outcome"] == "done"
    assert _word_f1(result["text"], truth) > 0.8
    assert re.match(r"^[0-9a-f]{16}-001\.jpg$", result["source"]["name"])


def test_job_polling_reaches_done_with_every_output(served: Server) -> None:
    data, truth = _receipt(2)
    with served.client() as client:
        submitted = client.post("/v1/jobs", files={"file": ("receipt two.jpg", data)})
        assert submitted.status_code == 202, submitted.text
        job = submitted.json()
        assert job["status"] in ("queued", "processing") and job["name"] == "receipt two.jpg"
        seen = {job["status"]}

        def done() -> bool:
            state = client.get(job["status_url"]).json()
            seen.add(state["status"])
            return bool(state["status"] in ("done", "failed"))

        wait_until(done, 120, "the job to finish", interval=0.2)
        state = client.get(job["status_url"]).json()
        assert state["status"] == "done" and state["outcome"] == "done", state
        assert state["finished_at"] and state["error"] is None
        result = client.get(state["result_url"]).json()
        txt = client.get(state["outputs"]["txt"])
        page = client.get(f"{state['pages_url']}/0")
    assert _word_f1(result["text"], truth) > 0.8
    assert txt.headers["content-type"].startswith("text/plain")
    assert txt.text == result["text"] + "\n"
    image = cv2.imdecode(np.frombuffer(page.content, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[:2] == (result["pages"][0]["height"], result["pages"][0]["width"])


def test_base64_json_upload(served: Server) -> None:
    data, truth = _receipt(3)
    body = {"name": "three.jpg", "content_base64": base64.b64encode(data).decode()}
    with served.client() as client:
        answer = client.post("/v1/ocr", params={"wait": 90}, json=body)
    assert answer.status_code == 200, answer.text
    assert _word_f1(answer.json()["text"], truth) > 0.8


def test_a_damaged_file_fails_with_its_report(served: Server) -> None:
    damaged = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8  # a JPEG header, then noise
    with served.client() as client:
        answer = client.post("/v1/ocr", params={"wait": 90}, files={"file": ("bad.jpg", damaged)})
    assert answer.status_code == 422, answer.text
    job = answer.json()
    assert job["status"] == "failed" and job["outcome"] == "failed"
    assert job["error"]["error_type"] == "CorruptInputError"
    assert "bad.jpg" in job["error"]["message"]
    failed = served.base / "failed"
    assert (failed / f"{job['job_id']}-bad.jpg").is_file()  # the original, kept
    assert (failed / f"{job['job_id']}-bad.jpg.error.json").is_file()


def test_no_token_is_401_and_info_says_so(served: Server) -> None:
    with served.client(token=None) as client:
        missing = client.post("/v1/jobs", files={"file": ("x.png", _png())})
        wrong = client.get("/v1/jobs/0123456789abcdef", headers={"Authorization": "Bearer x"})
        info = client.get("/v1/info").json()
    assert missing.status_code == 401 and wrong.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert info["auth_required"] is True and info["max_bytes"] == MAX_BYTES


def test_too_large_is_413_declared_or_streamed(served: Server) -> None:
    big = _png() + bytes(MAX_BYTES)

    def chunks() -> Iterator[bytes]:
        boundary = b"--b0undary\r\n"
        yield boundary + b'Content-Disposition: form-data; name="file"; filename="big.png"\r\n\r\n'
        for start in range(0, len(big), 1 << 16):
            yield big[start : start + (1 << 16)]
        yield b"\r\n--b0undary--\r\n"

    with served.client() as client:
        declared = client.post("/v1/jobs", files={"file": ("big.png", big)})
        streamed = client.post(  # chunked: no Content-Length to refuse it by
            "/v1/jobs",
            content=chunks(),
            headers={"Content-Type": "multipart/form-data; boundary=b0undary"},
        )
    assert declared.status_code == 413, declared.text
    assert streamed.status_code == 413, streamed.text
    assert "decode.max_bytes" in streamed.json()["detail"]
    assert not list((served.inbox / ".ocr-pipeline" / "uploads").iterdir())


def test_unsupported_type_is_415(served: Server) -> None:
    with served.client() as client:
        text = client.post("/v1/jobs", files={"file": ("notes.jpg", b"just some text\n" * 10)})
    assert text.status_code == 415, text.text
    assert "not a supported file type" in text.json()["detail"]


def test_rate_limit_is_429_with_retry_after(served: Server) -> None:
    with served.client(token=RATE_TOKEN) as client:
        codes = [
            client.post("/v1/jobs", files={"file": ("t.jpg", b"text, not a scan")}).status_code
            for _ in range(RATE + 1)
        ]
        refused = client.post("/v1/jobs", files={"file": ("t.jpg", b"text")})
    assert codes[:RATE] == [415] * RATE and codes[RATE] == 429
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1


def test_health_ready_metrics_and_openapi(served: Server) -> None:
    with served.client(token=None) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz").json()
        metrics = client.get("/metrics").text
        paths = client.get("/openapi.json").json()["paths"]
    assert ready["ready"] is True
    assert 'ocr_pipeline_http_requests_total{method="POST",route="/v1/ocr"' in metrics
    assert 'ocr_pipeline_jobs_total{outcome="done"}' in metrics
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/ocr"} <= set(paths)


def test_backlog_is_503_with_retry_after(front: Server) -> None:
    with front.client(token=None) as client:
        codes = [
            client.post("/v1/jobs", files={"file": (f"{i}.png", _png(64 + i))}).status_code
            for i in range(5)
        ]
        refused = client.post("/v1/jobs", files={"file": ("late.png", _png())})
    assert codes[:4] == [202] * 4 and codes[4] == 503, codes
    assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
    assert len(list(front.inbox.glob("*.png"))) == 4


def test_hostile_names_land_inside_the_inbox_under_safe_names(front: Server) -> None:
    hostile = [
        "../../escape.png",
        "/etc/passwd.png",
        "..\\..\\windows.png",
        "a\x00b.png",
        "x" * 1000 + ".png",
        ".hidden.png",
        "spaces and 中文 名字.png",
        "-rf .png",
    ]
    for waiting in front.inbox.glob("*.png"):  # what the backlog test left
        waiting.unlink()
    before = set(front.base.rglob("*"))
    names = []
    with front.client(token=None) as client:
        for name in hostile:
            answer = client.post("/v1/jobs", files={"file": (name, _png())})
            assert answer.status_code == 202, answer.text
            job_id = answer.json()["job_id"]
            arrived = [p for p in front.inbox.iterdir() if p.name.startswith(job_id)]
            assert len(arrived) == 1
            names.append(arrived[0].name)
            arrived[0].unlink()  # keeps the backlog under serve.max_waiting
    for name in names:
        assert SAFE_NAME.match(name), name
        assert len(name.encode()) <= 160
    assert "spaces and 中文 名字" in names[6]
    new = set(front.base.rglob("*")) - before
    outside = [
        p
        for p in new
        if not p.is_relative_to(front.inbox) and not p.is_relative_to(front.base / "outbox")
    ]
    assert outside == []


def test_serve_refuses_an_open_address_without_a_token(tmp_path: Path) -> None:
    result = subprocess.run(
        cli_command("serve", tmp_path / "in", tmp_path / "out", "--host", "0.0.0.0"),
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    assert "no API token is configured" in result.stderr
