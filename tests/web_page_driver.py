"""Drive the web page of ``ocr-pipeline serve`` in headless Chromium, end to end.

Run by ``tests/test_web_page.py`` inside a private network namespace (``unshare -n``) where
127.0.0.1 is the only address, because Chromium reaches out to the network on its own. It starts
``ocr-pipeline serve`` on a free loopback port with an API token, then uses the page as a person
would: enters the token (a wrong one first), uploads an SROIE receipt, a Chinese page, a
two-page TIFF and a text file (with ``--docs`` also the two sample scans of ``examples/``),
waits for their jobs to end, opens each result and checks the drawn boxes and the text against
the result JSON, the line/box highlighting, the page switcher, a download, and asking for the
token again after a 401. Screenshots: ``receipt.png``, ``chinese.png`` (dev data, whose terms
allow measuring OCR quality, not publishing: they stay out of the repository) and, with
``--docs``, ``web-receipt.png``, ``web-chinese.png`` (the sample scans: docs/images/).

Prints one JSON summary line on stdout (``ok``, ``checks``, ``error``, ``screenshots``,
``seconds``) and exits 0 when every check passed, 1 when one failed, 2 when the server could not
be started.

Usage (as root or with user namespaces), the docs screenshots included:

    unshare -n bash -c 'ip link set lo up && exec .venv/bin/python tests/web_page_driver.py \
        --out /tmp/web --docs' && cp /tmp/web/web-*.png docs/images/
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
from playwright.sync_api import Page, sync_playwright

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
TOKEN = "test-token"
RECEIPT = 5
"""SROIE dev receipt used (``images/005.jpg``: 35 lines, fits a screen)."""
CHINESE = 0
"""zh-dev page used (``images/000.jpg``: a slide, 9 lines)."""
EXAMPLES = {"bilingual": "receipt-bilingual", "notice": "notice-zh"}
"""The sample scans of ``examples/`` (with ``NAME.gt.txt``), shown in docs/web.md."""
DOCS_SCREENSHOTS = {"bilingual": "web-receipt.png", "notice": "web-chinese.png"}
SERVER_START_SECONDS = 90.0
JOBS_SECONDS = 120.0
UI_TIMEOUT_MS = 20_000
CHINESE_CHARS = re.compile(r"[\u3400-\u9fff]")


class CheckFailed(AssertionError):
    """A check of the page did not hold."""


class ServerError(RuntimeError):
    """``ocr-pipeline serve`` exited or did not answer in time."""


class Report:
    """The checks made, for the JSON summary."""

    def __init__(self) -> None:
        self.checks: list[dict[str, Any]] = []

    def check(self, name: str, ok: bool, detail: Any = None) -> None:
        """Record a check; raise :class:`CheckFailed` when it does not hold."""
        self.checks.append({"name": name, "ok": bool(ok), "detail": detail})
        if not ok:
            raise CheckFailed(f"{name}: {detail}")


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the namespace is private: nobody takes it meanwhile)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, token: str | None = TOKEN, timeout: float = 10.0) -> tuple[int, bytes]:
    """GET ``url`` with the token; (status, body), HTTP errors included."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@contextmanager
def server(work: Path, port: int) -> Iterator[str]:
    """``ocr-pipeline serve`` on 127.0.0.1:``port`` over ``work``'s inbox and outbox.

    Yields the base URL once ``/healthz`` answers; stops the server (SIGTERM, then SIGKILL to
    its process group) on exit. Its log goes to ``work/server.log``.

    Raises:
        ServerError: the server exited or did not answer in time.

    """
    command = [
        str(Path(sys.executable).with_name("ocr-pipeline")),
        "serve",
        str(work / "inbox"),
        str(work / "outbox"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    env = dict(os.environ)
    # The checkout's model store, as tests/conftest.py sets it, unless the caller chose one.
    env.setdefault("OCR_PIPELINE_MODELS__DIR", str(REPO / "models"))
    env["OCR_PIPELINE_SERVE__TOKENS"] = json.dumps([TOKEN])
    env["OCR_PIPELINE_DAEMON__SETTLE_SECONDS"] = "0.2"
    env["OCR_PIPELINE_DAEMON__SETTLE_AFTER_CLOSE_SECONDS"] = "0"
    log = (work / "server.log").open("wb")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            if process.poll() is not None:
                raise ServerError(f"ocr-pipeline serve exited with {process.returncode}")
            try:
                if get(f"{base}/healthz", token=None, timeout=2.0)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"ocr-pipeline serve did not answer in {SERVER_START_SECONDS} s")
            time.sleep(0.2)  # polling the health endpoint; bounded by the deadline
        yield base
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        log.close()


def make_inputs(folder: Path, docs: bool) -> dict[str, Path]:
    """The files to upload, under names that tell them apart in the job list."""
    folder.mkdir(parents=True, exist_ok=True)
    receipt = folder / f"receipt-{RECEIPT:03d}.jpg"
    shutil.copyfile(DATA / "sroie-dev" / "images" / f"{RECEIPT:03d}.jpg", receipt)
    chinese = folder / f"中文-{CHINESE:03d}.jpg"
    shutil.copyfile(DATA / "zh-dev" / "images" / f"{CHINESE:03d}.jpg", chinese)
    # Two pages: the top and the second quarter of another receipt (a few lines each).
    image = cv2.imread(str(DATA / "sroie-dev" / "images" / "001.jpg"))
    if image is None:
        raise FileNotFoundError("sroie-dev/images/001.jpg")
    quarter = image.shape[0] // 4
    tiff = folder / "two-pages.tif"
    if not cv2.imwritemulti(str(tiff), [image[:quarter], image[quarter : 2 * quarter]]):
        raise RuntimeError("cannot write the two-page TIFF")
    text = folder / "notes.txt"
    text.write_text("not a scan\n", encoding="utf-8")
    inputs = {"receipt": receipt, "chinese": chinese, "tiff": tiff, "text": text}
    # With --docs, the project's own sample scans, for the screenshots in docs/ (the dev
    # data's terms allow measuring OCR quality with it, not publishing it).
    for key, name in EXAMPLES.items() if docs else ():
        inputs[key] = folder / f"{name}.jpg"
        shutil.copyfile(REPO / "examples" / f"{name}.jpg", inputs[key])
    return inputs


def ground_truth(dataset: str, number: int) -> dict[str, Any]:
    """The ground-truth record of ``images/NNN.jpg`` in ``shared/data/<dataset>``."""
    for line in (DATA / dataset / "gt.jsonl").read_text(encoding="utf-8").splitlines():
        record: dict[str, Any] = json.loads(line)
        if record["image"] == f"images/{number:03d}.jpg":
            return record
    raise KeyError(number)


def example_truth(name: str) -> list[str]:
    """The rendered text lines of ``examples/NAME.jpg``."""
    text = (REPO / "examples" / f"{name}.gt.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def squash(text: str) -> str:
    """Case-folded, without whitespace (line breaks and word gaps differ between readers)."""
    return re.sub(r"\s+", "", text).casefold()


def row(page: Page, name: str) -> Any:
    """The job row of the upload named ``name``."""
    return page.locator('[data-testid="job-row"]', has_text=name)


def open_result(page: Page, name: str) -> tuple[str, dict[str, Any]]:
    """Open the job of ``name``; its job id and its result JSON (fetched with the token)."""
    job = row(page, name)
    job_id = job.get_attribute("data-job-id")
    job.locator('[data-testid="job-open"]').click()
    wait_page_ready(page, job_id, 0)
    base = page.url.rstrip("/")
    status, body = get(f"{base}/v1/jobs/{job_id}/result")
    if status != 200:
        raise CheckFailed(f"GET result of {name}: {status} {body[:200]!r}")
    return str(job_id), json.loads(body)


def wait_page_ready(page: Page, job_id: str | None, index: int) -> None:
    """Wait until the result view shows page ``index`` of ``job_id``, image and boxes drawn."""
    page.wait_for_selector(
        f'[data-testid="result-view"][data-state="ready"][data-job-id="{job_id}"]'
        f'[data-page="{index}"]',
        timeout=UI_TIMEOUT_MS,
    )


def check_page(report: Report, page: Page, label: str, result_page: dict[str, Any]) -> None:
    """The drawn page matches the result: image size, one box and one text line per line."""
    lines = result_page["lines"]
    boxes = page.locator('[data-testid="line-box"]')
    texts = page.locator('[data-testid="text-line"]')
    report.check(
        f"{label}: one box per line",
        boxes.count() == len(lines),
        {"boxes": boxes.count(), "lines": len(lines)},
    )
    report.check(
        f"{label}: one text line per line",
        texts.count() == len(lines),
        {"text_lines": texts.count(), "lines": len(lines)},
    )
    shown = [
        t.strip() for t in page.locator('[data-testid="text-line"] .line-text').all_inner_texts()
    ]
    expected = [(line["text"] or "\u00a0").strip() for line in lines]
    report.check(
        f"{label}: text in reading order",
        shown == expected,
        {"first_shown": shown[:3], "first_expected": expected[:3]},
    )
    size = page.locator('[data-testid="page-image"]').evaluate(
        "img => [img.naturalWidth, img.naturalHeight, img.complete]"
    )
    report.check(
        f"{label}: page image at result pixels",
        size == [result_page["width"], result_page["height"], True],
        {"image": size, "result": [result_page["width"], result_page["height"]]},
    )
    image_box = page.locator('[data-testid="page-image"]').bounding_box()
    overlay_box = page.locator('[data-testid="page-overlay"]').bounding_box()
    aligned = (
        image_box is not None
        and overlay_box is not None
        and all(
            abs(image_box[key] - overlay_box[key]) <= 1.0 for key in ("x", "y", "width", "height")
        )
    )
    report.check(
        f"{label}: boxes drawn over the image",
        aligned,
        {"image": image_box, "overlay": overlay_box},
    )


def check_selection(report: Report, page: Page, label: str, count: int) -> None:
    """Clicking a text line highlights its box; clicking a box highlights and shows its line."""
    if count < 2:
        report.check(f"{label}: enough lines to click", False, count)
    target = count // 2
    page.locator(f'[data-testid="text-line"][data-index="{target}"]').click()
    selected = page.locator('[data-testid="line-box"][data-selected="true"]')
    report.check(
        f"{label}: clicking a line highlights its box",
        selected.count() == 1 and selected.get_attribute("data-index") == str(target),
        {"selected": selected.count(), "index": selected.first.get_attribute("data-index")},
    )
    # A box whose centre shows that very box (not one drawn over it), other than the target;
    # from two thirds down the page on (for the screenshot).
    point = page.evaluate(
        """([target]) => {
            const boxes = [...document.querySelectorAll('[data-testid="line-box"]')]
                .sort((a, b) => a.dataset.index - b.dataset.index);
            const from = Math.floor(boxes.length * 2 / 3);
            for (const box of boxes.slice(from).concat(boxes.slice(0, from))) {
                if (box.dataset.index === String(target)) continue;
                const r = box.getBoundingClientRect();
                const x = r.left + r.width / 2, y = r.top + r.height / 2;
                if (x < 0 || y < 0 || x > innerWidth || y > innerHeight) continue;
                const hit = document.elementFromPoint(x, y);
                if (hit === box) return [Number(box.dataset.index), x, y];
            }
            return null;
        }""",
        [target],
    )
    report.check(f"{label}: a box to click is visible", point is not None, point)
    index, x, y = point
    page.mouse.click(x, y)
    line = page.locator(f'[data-testid="text-line"][data-index="{index}"]')
    line.and_(page.locator('[aria-current="true"]')).wait_for(timeout=UI_TIMEOUT_MS)
    box = page.locator(f'[data-testid="line-box"][data-index="{index}"]')
    report.check(
        f"{label}: clicking a box highlights it",
        box.get_attribute("data-selected") == "true",
        index,
    )
    visible = page.wait_for_function(
        """(i) => {
            const line = document.querySelector(`[data-testid="text-line"][data-index="${i}"]`);
            const list = document.querySelector('[data-testid="text-lines"]');
            const a = line.getBoundingClientRect(), b = list.getBoundingClientRect();
            return a.top >= b.top - 1 && a.bottom <= b.bottom + 1
                && a.top >= -1 && a.bottom <= innerHeight + 1;
        }""",
        arg=index,
        timeout=UI_TIMEOUT_MS,
    )
    report.check(
        f"{label}: clicking a box scrolls its line into view", bool(visible.json_value()), index
    )
    # The keyboard: the box's line has the focus; arrow keys move the selection.
    key, step = ("ArrowUp", -1) if index == count - 1 else ("ArrowDown", 1)
    page.keyboard.press(key)
    moved = page.locator('[data-testid="line-box"][data-selected="true"]').get_attribute(
        "data-index"
    )
    report.check(
        f"{label}: {key} selects the next line",
        moved == str(index + step),
        {"from": index, "to": moved},
    )
    page.keyboard.press("ArrowDown" if step == -1 else "ArrowUp")


def words(text: str) -> list[str]:
    """Case-folded words of 4+ letters or digits."""
    return [w for w in re.findall(r"[A-Za-z0-9]{4,}", text.casefold())]


def run(out: Path, chromium: str, docs: bool, report: Report, screenshots: list[str]) -> None:
    """The whole scenario (raises on the first failed check)."""
    inputs = make_inputs(out / "uploads", docs)
    work = out / "server"
    (work / "inbox").mkdir(parents=True, exist_ok=True)
    (work / "outbox").mkdir(parents=True, exist_ok=True)
    with server(work, free_port()) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, timeout=60_000)
        page: Page | None = None
        try:
            context = browser.new_context(
                viewport={"width": 1440, "height": 900}, accept_downloads=True, locale="en-GB"
            )
            page = context.new_page()
            page.set_default_timeout(UI_TIMEOUT_MS)
            problems: list[str] = []
            foreign: list[str] = []
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on(
                "console",
                lambda msg: (
                    problems.append(f"console: {msg.text}")
                    if msg.type == "error" and "Failed to load resource" not in msg.text
                    else None
                ),
            )
            page.on(
                "request",
                lambda req: (
                    None
                    if req.url.startswith((base + "/", "blob:", "data:"))
                    else foreign.append(req.url)
                ),
            )
            scenario(report, page, base, inputs, out, screenshots)
            report.check("no script errors", not problems, problems[:5])
            report.check("no request outside the server", not foreign, foreign[:5])
        except BaseException:
            try:
                if page is not None:
                    page.screenshot(path=str(out / "failure.png"))
                    screenshots.append(str(out / "failure.png"))
            except Exception:  # the screenshot is a courtesy
                pass
            raise
        finally:
            browser.close()


def scenario(
    report: Report,
    page: Page,
    base: str,
    inputs: dict[str, Path],
    out: Path,
    screenshots: list[str],
) -> None:
    """What a person does on the page, with the checks."""
    page.goto(base + "/")
    dialog = page.get_by_test_id("token-dialog")
    dialog.wait_for(state="visible")
    report.check("asks for the token", True)
    page.get_by_test_id("token-input").fill("wrong-token")
    page.get_by_test_id("token-submit").click()
    page.get_by_test_id("token-error").wait_for(state="visible")
    report.check("refuses a wrong token", dialog.is_visible())
    page.get_by_test_id("token-input").fill(TOKEN)
    page.get_by_test_id("token-submit").click()
    dialog.wait_for(state="hidden")
    stored = page.evaluate("() => sessionStorage.getItem('ocr-pipeline.token')")
    report.check("keeps the token in session storage", stored == TOKEN, stored)

    names = {key: path.name for key, path in inputs.items()}
    page.get_by_test_id("file-input").set_input_files([str(p) for p in inputs.values()])
    rows = page.locator('[data-testid="job-row"]')
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=\"job-row\"]').length === n",
        arg=len(inputs),
    )
    start = time.monotonic()
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="job-row"]')]
                .every(r => r.dataset.status === 'done' || r.dataset.status === 'failed')""",
        timeout=JOBS_SECONDS * 1000,
    )
    report.check("jobs finish", True, {"seconds": round(time.monotonic() - start, 1)})
    statuses = {key: row(page, name).get_attribute("data-status") for key, name in names.items()}
    report.check(
        "scans done, the text file refused",
        statuses == {key: "failed" if key == "text" else "done" for key in names},
        statuses,
    )
    refusal = row(page, names["text"]).get_by_test_id("job-error").inner_text()
    report.check("a refused upload shows why", bool(refusal.strip()), refusal)
    live = page.get_by_test_id("announcer").get_attribute("aria-live")
    report.check("job states are announced", live == "polite" and rows.count() == len(names), live)

    # The receipt: boxes, text, ground-truth words, selection, a download.
    _, result = open_result(page, names["receipt"])
    check_page(report, page, "receipt", result["pages"][0])
    panel = page.get_by_test_id("text-lines").inner_text().casefold()
    truth = [w for w in words(ground_truth("sroie-dev", RECEIPT)["text"]) if not w.isdigit()]
    found = [w for w in truth if w in panel]
    report.check(
        "receipt: ground-truth words in the text panel",
        len(truth) >= 10 and len(found) >= 0.6 * len(truth),
        {"found": len(found), "of": len(truth), "missing": sorted(set(truth) - set(found))[:10]},
    )
    report.check(
        "receipt: page indicator",
        page.get_by_test_id("page-indicator").inner_text() == "Page 1 of 1",
        page.get_by_test_id("page-indicator").inner_text(),
    )
    check_selection(report, page, "receipt", len(result["pages"][0]["lines"]))
    page.screenshot(path=str(out / "receipt.png"))
    screenshots.append(str(out / "receipt.png"))
    with page.expect_download(timeout=UI_TIMEOUT_MS) as download:
        page.get_by_test_id("download-txt").click()
    saved = Path(download.value.path()).read_bytes()
    job_id = row(page, names["receipt"]).get_attribute("data-job-id")
    status, txt = get(f"{base}/v1/jobs/{job_id}/result.txt")
    report.check(
        "receipt: TXT download",
        status == 200 and saved == txt,
        {"name": download.value.suggested_filename, "bytes": len(saved)},
    )
    report.check(
        "receipt: download named after the scan",
        download.value.suggested_filename == f"receipt-{RECEIPT:03d}.txt",
        download.value.suggested_filename,
    )

    # The Chinese page.
    _, result = open_result(page, names["chinese"])
    check_page(report, page, "chinese", result["pages"][0])
    panel = page.get_by_test_id("text-lines").inner_text()
    first = result["pages"][0]["lines"][0]["text"]
    report.check("chinese: first line shown", first in panel, first)
    truth_chars = set(CHINESE_CHARS.findall(ground_truth("zh-dev", CHINESE)["text"]))
    shown_chars = set(CHINESE_CHARS.findall(panel))
    report.check(
        "chinese: ground-truth characters in the text panel",
        len(truth_chars & shown_chars) >= 0.6 * len(truth_chars),
        {"found": len(truth_chars & shown_chars), "of": len(truth_chars)},
    )
    lang = page.locator('[data-testid="text-line"] .line-text').first.get_attribute("lang")
    report.check("chinese: lines marked lang=zh", lang == "zh", lang)
    check_selection(report, page, "chinese", len(result["pages"][0]["lines"]))
    page.screenshot(path=str(out / "chinese.png"))
    screenshots.append(str(out / "chinese.png"))

    # Two pages: the switcher.
    job_id, result = open_result(page, names["tiff"])
    indicator = page.get_by_test_id("page-indicator")
    report.check(
        "tiff: two pages",
        len(result["pages"]) == 2 and indicator.inner_text() == "Page 1 of 2",
        indicator.inner_text(),
    )
    check_page(report, page, "tiff page 1", result["pages"][0])
    report.check("tiff: no previous page", page.get_by_test_id("page-prev").is_disabled())
    page.get_by_test_id("page-next").click()
    wait_page_ready(page, job_id, 1)
    report.check(
        "tiff: second page", indicator.inner_text() == "Page 2 of 2", indicator.inner_text()
    )
    check_page(report, page, "tiff page 2", result["pages"][1])
    page.get_by_test_id("page-prev").click()
    wait_page_ready(page, job_id, 0)

    # The sample scans (Chinese and English): the screenshots of docs/web.md.
    for key, name in EXAMPLES.items():
        if key not in names:
            continue
        _, result = open_result(page, names[key])
        check_page(report, page, key, result["pages"][0])
        # Words, not lines: a table row of the ground truth is several boxes on the page.
        panel = squash(page.get_by_test_id("text-lines").inner_text())
        truth = [squash(w) for line in example_truth(name) for w in line.split() if len(w) > 1]
        found = [word for word in truth if word in panel]
        report.check(
            f"{key}: ground-truth words in the text panel",
            len(found) >= 0.8 * len(truth),
            {"found": len(found), "of": len(truth)},
        )
        check_selection(report, page, key, len(result["pages"][0]["lines"]))
        page.screenshot(path=str(out / DOCS_SCREENSHOTS[key]))
        screenshots.append(str(out / DOCS_SCREENSHOTS[key]))

    # A token that stops working: the page asks again, then carries on.
    page.evaluate("() => sessionStorage.setItem('ocr-pipeline.token', 'revoked-token')")
    page.reload()
    page.get_by_test_id("token-dialog").wait_for(state="visible")
    reason = page.get_by_test_id("token-reason").inner_text()
    report.check("asks again after a 401", "not accept" in reason, reason)
    page.get_by_test_id("token-input").fill(TOKEN)
    page.get_by_test_id("token-submit").click()
    page.wait_for_function(
        """n => { const rows = document.querySelectorAll('[data-testid="job-row"]');
                  return rows.length === n
                      && [...rows].every(r => r.dataset.status === 'done'); }""",
        arg=len(names) - 1,
    )
    report.check("jobs restored after a reload", True)


def main() -> int:
    """Run the scenario; print the JSON summary; 0 ok, 1 a check failed, 2 no server."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, required=True, help="screenshots and work folder")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium executable")
    parser.add_argument(
        "--docs",
        action="store_true",
        help="also upload examples/ and save web-receipt.png, web-chinese.png (docs/images)",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report = Report()
    screenshots: list[str] = []
    started = time.monotonic()
    error: str | None = None
    code = 0
    try:
        run(args.out, args.chromium, args.docs, report, screenshots)
    except ServerError as exc:
        error, code = f"{type(exc).__name__}: {exc}", 2
    except BaseException as exc:  # reported in the summary
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        code = 1
    if code:
        log = args.out / "server" / "server.log"
        if log.is_file():
            tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-30:]
            error = f"{error}\n--- server.log (last lines) ---\n" + "\n".join(tail)
    summary = {
        "ok": code == 0,
        "error": error,
        "checks": report.checks,
        "screenshots": screenshots,
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(summary, ensure_ascii=False))
    return code


if __name__ == "__main__":
    sys.exit(main())
