"""ocr-pipeline against RapidOCR and Tesseract, and against its own model-only floor, in one run.

Engines (``--engines``, default all):

* ``ocr-pipeline``: the product with its defaults, as a subprocess ``ocr-pipeline run INBOX
  OUTBOX`` over a temporary copy of the pages (``OCR_PIPELINE_*`` variables removed from the
  environment; each copy gets distinct trailing bytes after the image data, so byte-identical
  pages are OCRed rather than reused as duplicates). All cores: its own pool (one worker per
  core, workers x threads = cores). One core: ``--workers 1`` and
  ``OCR_PIPELINE_RUNTIME__INTRA_OP_THREADS=1``. Texts are the outbox JSON's ``text``; per-page
  seconds are its ``timings_ms.total`` (read, decode, OCR).
* ``ocr-pipeline-ort-fp32``, ``ocr-pipeline-ov-fp32``, ``ocr-pipeline-ov-bf16``: the product
  as above with one runtime setting changed (:data:`PIPELINE_VARIANTS`: ONNX Runtime fp32, or
  OpenVINO at fp32 or bf16), so both backends and precisions are measured in the same rounds;
  ``ocr-pipeline-1-thread``: one intra-op thread per worker instead of borrowing idle CPUs.
  Not in the default engine list; name them in ``--engines``.
* ``rapidocr-3.10`` (``rapidocr==3.10.0``: its defaults, i.e. the bundled PP-OCRv6 small det/rec,
  byte-identical to ours, plus the mobile v2 line classifier) and ``rapidocr-onnxruntime-1.4.4``
  (its defaults: bundled PP-OCRv4 det/rec plus classifier), each in its own virtual environment
  ``benchmarks/.peers/<name>/`` made here when missing (``python -m venv``, then pip installs the
  pinned package and the same onnxruntime version as ours), run by
  ``benchmarks/peers/run_rapidocr.py``. All cores: one process per core, pages dealt by
  pixel count (:func:`deal`), ONE intra-op thread each: RapidOCR's default (ONNX Runtime's
  own thread count in every process) over-subscribes the cores and measured 1.5x slower here.
  One core: one process, one intra-op thread. Also ``defaults``: one process with RapidOCR's
  own threading (ONNX Runtime's default intra-op threads), as a user who just calls
  ``RapidOCR()`` runs it; reported as ``pages_per_second_defaults``.
* ``tesseract``: Debian's Tesseract 5 CLI (apt-installed here when missing), ``tesseract IMAGE
  stdout -l eng`` (``chi_sim+eng`` for pages whose ground truth ``lang`` is zh), one process per
  page with ``OMP_THREAD_LIMIT=1``. All cores: one process per core at a time. One core: one at
  a time; seconds per page are each process's wall time (its start-up included: that is how
  the CLI works).
* ``floor``: the model-only floor. Our engine (default settings, as one of the product's
  all-core workers gets them) OCRs every page once, in one child process per core, through the
  worker's own path (``jobs.ocr_file``), while the ``run`` method of every model the engine
  holds (each an ``InferenceBackend``: detector, recognizer, and any other stage's model, e.g.
  page orientation) is wrapped to record the exact tensors passed; this run is not timed. Then
  only those forward passes are replayed, in call order, on models loaded afresh
  (``load_model``) with the product's runtime settings:
  ``2x1`` (one process per core, one intra-op thread each, pages dealt by tensor volume), ``1x2``
  (one process, one thread per core), and ``1x1`` (one process, one thread, on one core). The
  capture run's texts are compared with ocr-pipeline's outbox texts (they should be identical).

The package is run from a copy of ``ocr_pipeline/``, ``config/`` and the model registry made
at start (on ``PYTHONPATH``), so edits others make to the tree during the run do not mix
versions.

Pages are split into batches (``--batch``, default 10); in each round every engine OCRs the
round's batch, all cores then one core, in an order rotated every round, so machine noise hits
all engines alike. "One core" means a single thread of computation AND the process pinned to
one CPU (``sched_setaffinity``), so helper threads (OpenCV, ONNX Runtime) cannot borrow
another core.

Reported per engine: case-folded CER, word F1 and character F1 (``evaluation.Score``) of the
all-core run; pages per second on all cores over the processing window (first page started
to last page finished, each engine's own timestamps; start-up, model load and ocr-pipeline's
2 s settle wait excluded), and also over the whole command wall time (start-up included);
seconds per page on one core (in-process wall time per page, start-up excluded, Tesseract
excepted); peak RSS in MiB per process: the largest process of the engine's process tree
(``ru_maxrss`` from ``os.wait4`` of each launched command, which covers its reaped
descendants, e.g. ocr-pipeline's worker processes), for the all-core and one-core runs. The
floor's best pages/s is set against ocr-pipeline's all-core pages/s. Prints Markdown tables
and writes JSON (also: per-page figures and texts, CPU seconds per page of every configuration
from ``os.wait4`` (start-up included; robust to other load on the machine), the load average
per round, the peers' ``pip freeze``, our commit and uncommitted files, the CPU's model name
and its instruction-set flags that matter for inference: AVX2, AVX-512, VNNI, BF16, AMX), and
ocr-pipeline's pages/s over RapidOCR 3.10's in both of its settings.

    .venv/bin/python benchmarks/compare.py                      # everything on sroie-dev
    .venv/bin/python benchmarks/compare.py --limit 4 --engines ocr-pipeline floor
"""

from __future__ import annotations

import argparse
import datetime
import functools
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATASET = REPO.parent / "shared" / "data" / "sroie-dev"
PEERS_DIR = REPO / "benchmarks" / ".peers"
RUNNER = REPO / "benchmarks" / "peers" / "run_rapidocr.py"
CPUS = sorted(os.sched_getaffinity(0))
CORES = len(CPUS)
ONE_CPU = CPUS[-1]
"""The CPU one-core runs are pinned to."""
PEER_THREADS_ALL_CORES = 1
"""Intra-op threads per peer process in the all-core runs (one process per core)."""


@dataclass(frozen=True)
class Peer:
    """A peer Python engine installed in its own virtual environment."""

    venv: str
    package: str
    requirement: str
    models: str


PEERS = {
    "rapidocr-3.10": Peer(
        "rapidocr", "rapidocr", "rapidocr==3.10.0", "PP-OCRv6 small det/rec + v2 cls (bundled)"
    ),
    "rapidocr-onnxruntime-1.4.4": Peer(
        "rapidocr-onnxruntime",
        "rapidocr_onnxruntime",
        "rapidocr-onnxruntime==1.4.4",
        "PP-OCRv4 det/rec + v2 cls (bundled)",
    ),
}
PIPELINE_VARIANTS: dict[str, dict[str, str]] = {
    "ocr-pipeline": {},
    "ocr-pipeline-ort-fp32": {"OCR_PIPELINE_RUNTIME__BACKEND": "onnxruntime"},
    "ocr-pipeline-1-thread": {"OCR_PIPELINE_RUNTIME__INTRA_OP_THREADS": "1"},
    "ocr-pipeline-ov-fp32": {
        "OCR_PIPELINE_RUNTIME__BACKEND": "openvino",
        "OCR_PIPELINE_RUNTIME__PRECISION": "fp32",
    },
    "ocr-pipeline-ov-bf16": {
        "OCR_PIPELINE_RUNTIME__BACKEND": "openvino",
        "OCR_PIPELINE_RUNTIME__PRECISION": "bf16",
    },
}
"""ocr-pipeline as shipped, and with one setting forced (backend and precision, or one intra-op
thread per worker instead of borrowing idle CPUs): name -> environment."""
ENGINES = [*PIPELINE_VARIANTS, *PEERS, "tesseract", "floor"]
DEFAULT_ENGINES = ["ocr-pipeline", *PEERS, "tesseract", "floor"]
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
"""Instruction-set flags of ``/proc/cpuinfo`` that decide what the runtimes can use."""
REFERENCE_PEER = "rapidocr-3.10"
"""The peer the speed-up is quoted against (same models as ours)."""
FLOOR_CONFIGS = {"2x1": (CORES, 1), "1x2": (1, CORES), "1x1": (1, 1)}
"""Floor replay configurations: name -> (processes, intra-op threads each)."""


@dataclass(frozen=True)
class Page:
    """One ground-truth page."""

    image: Path
    relative: str
    """Path relative to the dataset (unique key)."""
    text: str
    lang: str


@dataclass
class Pass:
    """One engine configuration over one batch of pages."""

    texts: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    """Per page (relative path), seconds of in-process work."""
    window: float = 0.0
    """First page started to last page finished, seconds."""
    wall: float = 0.0
    """First command launched to last command exited, seconds."""
    peak_rss_mib: float = 0.0
    cpu_seconds: float = 0.0
    """CPU time of all launched processes (start-up included)."""
    models: str = ""
    """The models the engine reports it used (ocr-pipeline only)."""


@dataclass
class Tally:
    """Passes of one engine configuration summed over rounds."""

    pages: int = 0
    window: float = 0.0
    wall: float = 0.0
    peak_rss_mib: float = 0.0
    cpu_seconds: float = 0.0
    models: str = ""
    texts: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, result: Pass, pages: int) -> None:
        """Accumulate one round's pass over ``pages`` pages."""
        self.pages += pages
        self.window += result.window
        self.wall += result.wall
        self.peak_rss_mib = max(self.peak_rss_mib, result.peak_rss_mib)
        self.cpu_seconds += result.cpu_seconds
        self.models = result.models or self.models
        self.texts.update(result.texts)
        self.seconds.update(result.seconds)


# --- launching and measuring commands ------------------------------------------------------


@dataclass(frozen=True)
class Launched:
    """A finished command: exit code, wall seconds, peak RSS of its largest process."""

    returncode: int
    wall: float
    start: float
    end: float
    peak_rss_mib: float
    cpu_seconds: float
    """User plus system CPU time of the process tree."""


def clean_env(**extra: str) -> dict[str, str]:
    """Our environment without ``OCR_PIPELINE_*`` variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCR_PIPELINE_")}
    env.update(extra)
    return env


def start(
    command: list[str], env: dict[str, str], log: Path, stdout: Path | None, cpu: int | None
) -> subprocess.Popen[bytes]:
    """Start ``command`` with stdout to a file (or the log) and stderr to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as err, (stdout or log).open("ab") as out:
        return subprocess.Popen(
            command,
            env=env,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None,
        )


def reap(proc: subprocess.Popen[bytes], started: float) -> Launched:
    """Wait for ``proc`` with ``os.wait4`` and return its figures (RSS in MiB)."""
    _, status, usage = os.wait4(proc.pid, 0)
    ended = time.time()
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return Launched(proc.returncode, ended - started, started, ended, usage.ru_maxrss / 1024, cpu)


def run_all(
    commands: list[list[str]],
    env: dict[str, str],
    logs: list[Path],
    outs: list[Path | None],
    cpu: int | None = None,
) -> list[Launched]:
    """Start all ``commands`` at once, wait for all; raise if any failed."""
    started = time.time()
    procs = [start(c, env, lg, o, cpu) for c, lg, o in zip(commands, logs, outs, strict=True)]
    results = [reap(p, started) for p in procs]
    for result, log in zip(results, logs, strict=True):
        if result.returncode != 0:
            tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise SystemExit(f"command failed ({result.returncode}), log {log}:\n{tail}")
    return results


def measured(launched: list[Launched]) -> Pass:
    """A pass with the wall time (first launch to last exit), peak RSS and CPU time filled in."""
    return Pass(
        wall=max(r.end for r in launched) - min(r.start for r in launched),
        peak_rss_mib=max(r.peak_rss_mib for r in launched),
        cpu_seconds=sum(r.cpu_seconds for r in launched),
    )


# --- environments ----------------------------------------------------------------------------


def ensure_peer(name: str) -> tuple[Path, list[str]]:
    """Create or update the peer's virtual environment; return its python and ``pip freeze``."""
    peer = PEERS[name]
    venv = PEERS_DIR / peer.venv
    python = venv / "bin" / "python"
    requirements = [peer.requirement, f"onnxruntime=={importlib.metadata.version('onnxruntime')}"]
    marker = venv / "compare-requirements.txt"
    wanted = "\n".join(requirements) + "\n"
    if not python.exists():
        print(f"creating {venv}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if not marker.is_file() or marker.read_text(encoding="utf-8") != wanted:
        print(f"pip install {' '.join(requirements)} into {venv}", flush=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                *requirements,
            ],
            check=True,
        )
        marker.write_text(wanted, encoding="utf-8")
    freeze = subprocess.run(
        [str(python), "-m", "pip", "freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return python, freeze


def snapshot_source(scratch: Path) -> dict[str, Any]:
    """Freeze our package for the whole run, whatever others edit meanwhile.

    ``ocr_pipeline/`` (with its package data) is copied to ``scratch/src``, and the checkout's
    model store to ``scratch/src/models`` (ONNX files are linked, not copied), which
    ``OCR_PIPELINE_MODELS__DIR`` names for this process and every child; ``src`` is put first
    on ``PYTHONPATH`` for every child process (ahead of the editable install's finder) and on
    ``sys.path`` here.

    Returns:
        The commit, uncommitted files, a sha256 of the copied sources, onnxruntime version.

    """
    root = scratch / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "ocr_pipeline", root / "ocr_pipeline", ignore=ignore)
    (root / "models").mkdir()
    for path in (REPO / "models").iterdir():
        if path.suffix == ".onnx":
            (root / "models" / path.name).symlink_to(path)
        elif path.is_file():
            shutil.copyfile(path, root / "models" / path.name)
    os.environ["OCR_PIPELINE_MODELS__DIR"] = str(root / "models")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p
    )
    sys.path.insert(0, str(root))
    digest = hashlib.sha256()
    for path in sorted((root / "ocr_pipeline").rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
        return done.stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted": git("status", "--porcelain", "--", "ocr_pipeline", "models").splitlines(),
        "source_sha256": digest.hexdigest(),
        "onnxruntime": importlib.metadata.version("onnxruntime"),
    }


def tesseract_langs() -> set[str]:
    """Languages the installed Tesseract has (empty when it is not installed)."""
    if shutil.which("tesseract") is None:
        return set()
    out = subprocess.run(
        ["tesseract", "--list-langs"], capture_output=True, text=True, check=False
    ).stdout
    return {line.strip() for line in out.splitlines()[1:] if line.strip()}


def ensure_tesseract(needed: set[str]) -> str:
    """Install Debian's Tesseract (and Chinese data) with apt when missing; return its version."""
    if not needed <= tesseract_langs():
        packages = ["tesseract-ocr", "tesseract-ocr-eng", "tesseract-ocr-chi-sim"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        print(f"apt-get install {' '.join(packages)}", flush=True)
        command = ["apt-get", "install", "-y", "-q", *packages]
        if subprocess.run(command, env=env, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
            subprocess.run(command, env=env, check=True)
    missing = needed - tesseract_langs()
    if missing:
        raise SystemExit(f"tesseract lacks languages {sorted(missing)}")
    version = subprocess.run(["tesseract", "--version"], capture_output=True, text=True)
    return (version.stdout or version.stderr).splitlines()[0]


def tesseract_lang(page: Page) -> str:
    """``-l`` argument for a page: ``chi_sim+eng`` for Chinese ground truth, else ``eng``."""
    return "chi_sim+eng" if page.lang.lower().startswith("zh") else "eng"


# --- one pass per engine -----------------------------------------------------------------------


def cpu_description() -> dict[str, Any]:
    """The CPU's model name, its instruction-set flags, and OpenVINO's view of it.

    Flags: which of :data:`CPU_FLAGS` Linux's ``/proc/cpuinfo`` reports; OpenVINO's
    ``OPTIMIZATION_CAPABILITIES`` (``BF16`` among them where usable) when it is installed.
    """
    model, flags = "unknown", set()
    try:
        for raw in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            key, _, value = raw.partition(":")
            if key.strip() == "model name" and model == "unknown":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    found = {"model": model, "flags": [flag for flag in CPU_FLAGS if flag in flags]}
    try:  # hypervisors may hide flags from /proc/cpuinfo; OpenVINO asks the CPU itself
        import openvino

        capabilities = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        found["openvino_capabilities"] = sorted(str(c) for c in capabilities)
    except ImportError:
        pass
    return found


def pipeline_pass(batch: list[Page], work: Path, one_core: bool, variant: str) -> Pass:
    """``ocr-pipeline run`` over a temporary inbox holding copies of ``batch``.

    ``variant`` names the :data:`PIPELINE_VARIANTS` entry whose settings are set.
    """
    inbox, outbox = work / "inbox", work / "outbox"
    for page in batch:
        target = inbox / page.relative
        target.parent.mkdir(parents=True, exist_ok=True)
        # Distinct trailing bytes (ignored by decoders) so the daemon OCRs pages that are byte
        # copies of others (sroie-dev has two) instead of reusing the first result.
        target.write_bytes(page.image.read_bytes() + f"compare-{page.relative}".encode())
    command = [str(Path(sys.executable).parent / "ocr-pipeline"), "run", str(inbox), str(outbox)]
    env = clean_env(**PIPELINE_VARIANTS[variant])
    if one_core:
        command += ["--workers", "1"]
        env["OCR_PIPELINE_RUNTIME__INTRA_OP_THREADS"] = "1"
    (launched,) = run_all(
        [command], env, [work / "ocr-pipeline.log"], [None], ONE_CPU if one_core else None
    )
    result = measured([launched])
    for page in batch:
        record = json.loads(Path(outbox, page.relative).with_suffix(".json").read_text("utf-8"))
        result.texts[page.relative] = record["text"]
        result.seconds[page.relative] = record["timings_ms"]["total"] / 1000
        result.models = " + ".join(m["name"] for m in record["models"].values())
    starts, ends = [], []
    for raw in (work / "logs" / "audit.jsonl").read_text(encoding="utf-8").splitlines():
        event = json.loads(raw)
        if event["event"] == "done":
            done = datetime.datetime.fromisoformat(event["time"]).timestamp()
            ends.append(done)
            starts.append(done - event["timings_ms"]["total"] / 1000)
    if len(ends) != len(batch):
        raise SystemExit(f"ocr-pipeline finished {len(ends)} of {len(batch)} files, see {work}")
    result.window = max(ends) - min(starts)
    return result


def peer_pass(name: str, python: Path, batch: list[Page], work: Path, mode: str) -> Pass:
    """The peer runner in ``mode``.

    ``one``: one process on one core; ``all``: one process per core; ``defaults``: one process
    with the peer's own threading.
    """
    one_core = mode == "one"
    processes = 1 if mode != "all" else min(CORES, len(batch))
    threads = {"one": 1, "all": PEER_THREADS_ALL_CORES}.get(mode, 0)
    commands, logs, outs = [], [], []
    shares = deal(batch, processes, lambda page: pixel_count(page.image))
    for k in range(processes):
        listing = work / f"images-{k}.txt"
        listing.write_text("".join(f"{p.image}\n" for p in shares[k]), "utf-8")
        outs.append(work / f"pages-{k}.jsonl")
        logs.append(work / f"runner-{k}.log")
        options = ["--images", str(listing), "--out", str(outs[-1]), "--threads", str(threads)]
        commands.append([str(python), str(RUNNER), "--package", PEERS[name].package, *options])
    # The runner writes its --out file itself; its stdout goes to the log.
    cpu = ONE_CPU if one_core else None
    launched = run_all(commands, clean_env(), logs, [None] * processes, cpu)
    by_image = {str(p.image): p.relative for p in batch}
    result = measured(launched)
    starts, ends = [], []
    for out in outs:
        for raw in out.read_text(encoding="utf-8").splitlines():
            record = json.loads(raw)
            if "image" in record:
                key = by_image[record["image"]]
                result.texts[key] = record["text"]
                result.seconds[key] = record["seconds"]
                starts.append(record["start"])
                ends.append(record["end"])
    if len(result.texts) != len(batch):
        raise SystemExit(f"{name} answered {len(result.texts)} of {len(batch)} pages, see {work}")
    result.window = max(ends) - min(starts)
    return result


def tesseract_pass(batch: list[Page], work: Path, one_core: bool) -> Pass:
    """One ``tesseract`` process per page, one (one core) or one per core at a time."""
    env = clean_env(OMP_THREAD_LIMIT="1")

    def one(index: int) -> Launched:
        page = batch[index]
        command = ["tesseract", str(page.image), "stdout", "-l", tesseract_lang(page)]
        out, log = work / f"page-{index}.txt", work / f"page-{index}.log"
        (launched,) = run_all([command], env, [log], [out], ONE_CPU if one_core else None)
        return launched

    if one_core:
        launched = [one(i) for i in range(len(batch))]
    else:
        with ThreadPoolExecutor(max_workers=CORES) as pool:
            launched = list(pool.map(one, range(len(batch))))
    result = measured(launched)
    result.window = result.wall
    for index, (page, run) in enumerate(zip(batch, launched, strict=True)):
        text = (work / f"page-{index}.txt").read_text(encoding="utf-8", errors="replace")
        result.texts[page.relative] = text.replace("\f", "\n").strip()
        result.seconds[page.relative] = run.wall
    return result


def deal(batch: list[Page], processes: int, weight: Callable[[Page], float]) -> list[list[Page]]:
    """Share pages among processes so that each gets about the same work.

    ocr-pipeline's pool hands the next page to whichever worker is free, so its workers finish
    together; dealing pages round-robin to fixed processes instead left one of them idle for a
    large share of a batch (seen in the floor). Largest first, each page to the process with the
    least work so far (the LPT rule).
    """
    shares: list[list[Page]] = [[] for _ in range(processes)]
    loads = [0.0] * processes
    for page in sorted(batch, key=weight, reverse=True):
        k = loads.index(min(loads))
        shares[k].append(page)
        loads[k] += weight(page)
    return shares


@functools.cache
def pixel_count(image: Path) -> float:
    """Pixels of an image file (its first page), the work estimate for dealing a peer's pages."""
    import cv2

    decoded = cv2.imread(str(image), cv2.IMREAD_REDUCED_GRAYSCALE_2)
    return 4.0 * decoded.shape[0] * decoded.shape[1] if decoded is not None else 0.0


def floor_pass(
    batch: list[Page], capture: Path, work: Path, processes: int, threads: int, one_core: bool
) -> Pass:
    """Replay the captured forward passes of ``batch`` in ``processes`` x ``threads``."""
    processes = min(processes, len(batch))
    commands, logs, outs = [], [], []
    index = json.loads((capture / "capture.json").read_text(encoding="utf-8"))
    shares = deal(batch, processes, lambda page: float(index["pages"][page.relative]["mib"]))
    for k in range(processes):
        outs.append(work / f"floor-{k}.jsonl")
        logs.append(work / f"floor-{k}.log")
        listing = work / f"floor-{k}.pages"
        listing.write_text("".join(f"{p.relative}\n" for p in shares[k]), "utf-8")
        options = ["--pages", str(listing), "--threads", str(threads), "--out", str(outs[-1])]
        commands.append([sys.executable, __file__, "--floor-worker", str(capture), *options])
    cpu = ONE_CPU if one_core else None
    launched = run_all(commands, clean_env(), logs, [None] * processes, cpu)
    result = measured(launched)
    starts, ends = [], []
    for out in outs:
        for raw in out.read_text(encoding="utf-8").splitlines():
            record = json.loads(raw)
            result.seconds[record["page"]] = record["seconds"]
            starts.append(record["start"])
            ends.append(record["end"])
    result.window = max(ends) - min(starts)
    return result


def one_pass(
    engine: str, mode: str, batch: list[Page], work: Path, python: Path | None, captured: Path
) -> Pass:
    """Run ``engine`` in ``mode`` (``all``/``one``, or a floor configuration) over ``batch``."""
    one_core = mode in ("one", "1x1")
    if engine in PIPELINE_VARIANTS:
        return pipeline_pass(batch, work, one_core, engine)
    if engine in PEERS and python is not None:
        return peer_pass(engine, python, batch, work, mode)
    if engine == "tesseract":
        return tesseract_pass(batch, work, one_core)
    processes, threads = FLOOR_CONFIGS[mode]
    return floor_pass(batch, captured, work, processes, threads, one_core)


# --- the floor's capture and replay (child processes, in our venv) ---------------------------


def capture_worker(dataset: Path, listing: Path, out_dir: Path) -> None:
    """Run our engine over the pages of ``listing`` and save every tensor passed to its models.

    ``listing`` holds ``NUMBER<tab>RELATIVE-PATH`` lines; page NUMBER's tensors go to
    ``out_dir/NUMBER.npz``.

    Settings are the defaults as one of ``CORES`` product workers gets them
    (``executors.local.with_threads``), so the tensors and texts are the all-core run's.
    """
    import numpy as np

    from ocr_pipeline.engine import Engine
    from ocr_pipeline.engine.backend import InferenceBackend
    from ocr_pipeline.executors.local import with_threads
    from ocr_pipeline.jobs import decode_limits, ocr_file
    from ocr_pipeline.settings import load_settings

    settings = with_threads(load_settings(), CORES)
    engine = Engine.from_settings(settings)
    calls: list[tuple[str, Any]] = []
    models: dict[str, InferenceBackend] = {}  # every model the engine holds, by attribute name
    for name, part in vars(engine).items():
        model = part if isinstance(part, InferenceBackend) else getattr(part, "model", None)
        if isinstance(model, InferenceBackend):
            models[name] = model

    def wrap(role: str, original: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def run(batch: Any) -> Any:
            calls.append((role, np.array(batch, copy=True)))
            return original(batch)

        return run

    for role, model in models.items():
        model.run = wrap(role, model.run)  # type: ignore[method-assign]
    limits = decode_limits(settings.decode)
    index: dict[str, Any] = {"models": {r: str(m.path) for r, m in models.items()}, "pages": {}}
    for line in listing.read_text(encoding="utf-8").splitlines():
        number_text, relative = line.split("\t", 1)
        number = int(number_text)
        calls.clear()
        result = ocr_file(dataset / relative, engine, limits, relative)
        arrays = {f"{k:04d}_{role}": tensor for k, (role, tensor) in enumerate(calls)}
        np.savez(out_dir / f"{number:05d}.npz", **arrays)
        index["pages"][relative] = {
            "file": f"{number:05d}.npz",
            "text": result.text,
            "calls": {r: sum(role == r for role, _ in calls) for r in models},
            "mib": round(sum(t.nbytes for _, t in calls) / 2**20, 1),
        }
    (out_dir / f"capture-{os.getpid()}.json").write_text(json.dumps(index), encoding="utf-8")


def capture(pages: list[Page], dataset: Path, out_dir: Path, log_dir: Path) -> dict[str, Any]:
    """Capture the model inputs of ``pages`` in one process per core; return the merged index."""
    commands = []
    workers = min(CORES, len(pages))
    for k in range(workers):
        listing = log_dir / f"capture-{k}.pages"
        share = range(k, len(pages), workers)
        listing.write_text("".join(f"{i}\t{pages[i].relative}\n" for i in share), "utf-8")
        options = ["--dataset", str(dataset), "--pages", str(listing)]
        commands.append([sys.executable, __file__, "--capture-worker", str(out_dir), *options])
    logs = [log_dir / f"capture-{k}.log" for k in range(workers)]
    run_all(commands, clean_env(), logs, [None] * workers)
    index: dict[str, Any] = {"models": {}, "pages": {}}
    for part in sorted(out_dir.glob("capture-*.json")):
        data = json.loads(part.read_text(encoding="utf-8"))
        index["models"].update(data["models"])
        index["pages"].update(data["pages"])
    (out_dir / "capture.json").write_text(json.dumps(index), encoding="utf-8")
    return index


def floor_worker(capture: Path, listing: Path, threads: int, out: Path) -> None:
    """Load the captured tensors of the pages in ``listing``, then time only the forward passes."""
    import numpy as np

    from ocr_pipeline.engine.backend import load_model
    from ocr_pipeline.settings import load_settings

    index = json.loads((capture / "capture.json").read_text(encoding="utf-8"))
    settings = load_settings()
    runtime = settings.runtime.model_copy(update={"intra_op_threads": threads})
    sessions = {role: load_model(Path(p), runtime) for role, p in index["models"].items()}
    loaded = []
    for relative in listing.read_text(encoding="utf-8").splitlines():
        with np.load(capture / index["pages"][relative]["file"]) as archive:
            calls = [(key.split("_", 1)[1], archive[key]) for key in sorted(archive.files)]
        loaded.append((relative, calls))
    with out.open("w", encoding="utf-8") as sink:
        for relative, calls in loaded:
            began, tick = time.time(), time.perf_counter()
            for role, tensor in calls:
                sessions[role].run(tensor)
            seconds = time.perf_counter() - tick
            record = {"page": relative, "seconds": seconds, "start": began, "end": time.time()}
            sink.write(json.dumps(record) + "\n")


# --- the benchmark ---------------------------------------------------------------------------


def load_pages(dataset: Path, limit: int | None) -> list[Page]:
    """Ground-truth pages (``evaluation.load_ground_truth``) with their ``lang`` field."""
    from ocr_pipeline.evaluation import load_ground_truth

    truth = load_ground_truth(dataset)
    raw = [
        json.loads(line)
        for line in (dataset / "gt.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    pages = [
        Page(t.image, r["image"], t.text, str(r.get("lang", "en")))
        for t, r in zip(truth, raw, strict=True)
    ]
    return pages[:limit] if limit else pages


def score(pages: list[Page], texts: dict[str, str]) -> dict[str, Any]:
    """Corpus figures (``evaluation.Score``) and per-page CER and word F1."""
    from ocr_pipeline.evaluation import Score

    total = Score()
    per_page = {}
    for page in pages:
        total.add(texts[page.relative], page.text)
        one = Score()
        one.add(texts[page.relative], page.text)
        per_page[page.relative] = {"cer": round(one.cer, 4), "word_f1": round(one.word_f1, 4)}
    figures = {
        "cer": round(total.cer, 4),
        "word_f1": round(total.word_f1, 4),
        "char_f1": round(total.char_f1, 4),
    }
    return {**figures, "per_page": per_page}


def rate(tally: Tally, seconds: float) -> float:
    """Pages per second, 0 when nothing was timed."""
    return round(tally.pages / seconds, 3) if seconds > 0 else 0.0


def speedups(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each ocr-pipeline variant's pages/s over :data:`REFERENCE_PEER`'s, in both its settings.

    ``processes``: the peer as one process per core x 1 thread (its fastest here);
    ``defaults``: one process with its own threading. Empty without the peer.
    """
    peer = next((r for r in rows if r["engine"] == REFERENCE_PEER), None)
    if peer is None:
        return {}
    out = {}
    for row in rows:
        if row["engine"] in PIPELINE_VARIANTS:
            out[row["engine"]] = {
                "processes": round(row["pages_per_second"] / peer["pages_per_second"], 3),
                "defaults": round(
                    row["pages_per_second"] / peer.get("pages_per_second_defaults", 0.0), 3
                )
                if peer.get("pages_per_second_defaults")
                else 0.0,
            }
    return out


def main_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of the engines."""
    head = (
        "| engine | models | word F1 | CER | char F1 | pages/s all cores | "
        "pages/s incl. start-up | pages/s peer defaults | s/page 1 core | "
        "CPU s/page all / 1 core | peak RSS MiB all / 1 core |"
    )
    lines = [head, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        defaults = r.get("pages_per_second_defaults")
        lines.append(
            f"| {r['engine']} | {r['models']} | {r['word_f1']:.4f} | {r['cer']:.4f} | "
            f"{r['char_f1']:.4f} | {r['pages_per_second']:.3f} | "
            f"{r['pages_per_second_with_startup']:.3f} | "
            f"{'-' if defaults is None else f'{defaults:.3f}'} | "
            f"{r['seconds_per_page_one_core']:.3f} | "
            f"{r['cpu_seconds_per_page_all_cores']:.2f} / "
            f"{r['cpu_seconds_per_page_one_core']:.2f} | "
            f"{r['peak_rss_mib_all_cores']:.0f} / {r['peak_rss_mib_one_core']:.0f} |"
        )
    return "\n".join(lines)


def floor_table(floor: dict[str, Any]) -> str:
    """Markdown table of the floor's replay configurations."""
    lines = [
        "| floor (forward passes only) | pages/s | s/page per process | CPU s/page | "
        "peak RSS MiB |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, f in floor["configs"].items():
        processes, threads = FLOOR_CONFIGS[name]
        label = f"{processes} process(es) x {threads} thread(s)" + (
            ", one core" if name == "1x1" else ""
        )
        lines.append(
            f"| {label} | {f['pages_per_second']:.3f} | {f['seconds_per_page']:.3f} | "
            f"{f['cpu_seconds_per_page']:.2f} | {f['peak_rss_mib']:.0f} |"
        )
    return "\n".join(lines)


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Set up, run all rounds, and summarise."""
    scratch = Path(tempfile.mkdtemp(prefix="ocr-compare-"))
    setup: dict[str, Any] = {"ocr-pipeline": snapshot_source(scratch), "cpu": cpu_description()}
    pages = load_pages(args.dataset, args.limit)
    engines = [e for e in ENGINES if e in args.engines]
    pythons = {}
    for name in engines:
        if name in PEERS:
            pythons[name], setup[name] = ensure_peer(name)
    if "tesseract" in engines:
        setup["tesseract"] = ensure_tesseract({tesseract_lang(p).split("+")[0] for p in pages})
    captured = scratch / "capture"
    index: dict[str, Any] = {}
    capture_seconds = 0.0
    modes = {e: (["all", "one"] if e != "floor" else list(FLOOR_CONFIGS)) for e in engines}
    for name in engines:
        if name in PEERS:
            modes[name].append("defaults")
    tallies = {(e, m): Tally() for e in engines for m in modes[e]}
    loads = [os.getloadavg()]
    try:
        if "floor" in engines:
            captured.mkdir()
            print(f"floor: capturing the model inputs of {len(pages)} pages", flush=True)
            tick = time.perf_counter()
            index = capture(pages, args.dataset, captured, scratch)
            capture_seconds = time.perf_counter() - tick
        batches = [pages[i : i + args.batch] for i in range(0, len(pages), args.batch)]
        for number, batch in enumerate(batches):
            order = engines[number % len(engines) :] + engines[: number % len(engines)]
            print(f"round {number + 1}/{len(batches)}: {len(batch)} pages, {order}", flush=True)
            for engine in order:
                for mode in modes[engine]:
                    work = scratch / f"r{number}-{engine}-{mode}"
                    work.mkdir()
                    result = one_pass(engine, mode, batch, work, pythons.get(engine), captured)
                    tallies[(engine, mode)].add(result, len(batch))
                    print(
                        f"  {engine} {mode}: window {result.window:.1f} s, "
                        f"wall {result.wall:.1f} s, CPU {result.cpu_seconds:.1f} s",
                        flush=True,
                    )
            loads.append(os.getloadavg())
    except BaseException:
        shutil.rmtree(captured, ignore_errors=True)
        print(f"failed; logs kept in {scratch}", file=sys.stderr)
        raise
    if args.keep:
        print(f"scratch folder kept: {scratch}")
    else:
        shutil.rmtree(scratch)
    rows = []
    for engine in engines:
        if engine == "floor":
            continue
        every, one = tallies[(engine, "all")], tallies[(engine, "one")]
        figures = score(pages, every.texts)
        one_core_score = score(pages, one.texts)
        seconds = [one.seconds[p.relative] for p in pages]
        models = {
            **{
                v: f"{every.models} ({v.removeprefix('ocr-pipeline-') or 'defaults'})"
                for v in PIPELINE_VARIANTS
            },
            "ocr-pipeline": f"{every.models} (defaults)",
            "tesseract": "eng (chi_sim+eng for zh pages)",
        }.get(engine) or PEERS[engine].models
        rows.append(
            {
                "engine": engine,
                "models": models,
                "pages": len(pages),
                "cer": figures["cer"],
                "word_f1": figures["word_f1"],
                "char_f1": figures["char_f1"],
                "pages_per_second": rate(every, every.window),
                "pages_per_second_with_startup": rate(every, every.wall),
                "seconds_per_page_one_core": round(sum(seconds) / len(seconds), 3),
                "one_core_wall_seconds_per_page": round(one.wall / one.pages, 3),
                "cpu_seconds_per_page_all_cores": round(every.cpu_seconds / every.pages, 3),
                "cpu_seconds_per_page_one_core": round(one.cpu_seconds / one.pages, 3),
                "peak_rss_mib_all_cores": round(every.peak_rss_mib, 1),
                "peak_rss_mib_one_core": round(one.peak_rss_mib, 1),
                "one_core_run_score": {k: one_core_score[k] for k in ("cer", "word_f1", "char_f1")},
                "per_page": {
                    p.relative: {**figures["per_page"][p.relative], "seconds_one_core": round(s, 3)}
                    for p, s in zip(pages, seconds, strict=True)
                },
                "texts": every.texts,
            }
        )
        if (engine, "defaults") in tallies:
            defaults = tallies[(engine, "defaults")]
            rows[-1]["pages_per_second_defaults"] = rate(defaults, defaults.window)
    report: dict[str, Any] = {
        "dataset": str(args.dataset),
        "pages": len(pages),
        "batch": args.batch,
        "cores": CORES,
        "one_core_cpu": ONE_CPU,
        "peer_threads_all_cores": PEER_THREADS_ALL_CORES,
        "load_average_per_round": [[round(x, 2) for x in load] for load in loads],
        "setup": setup,
        "results": rows,
    }
    report["speedup_over_reference_peer"] = {"peer": REFERENCE_PEER, "by_variant": speedups(rows)}
    if "floor" in engines:
        configs = {}
        for mode in FLOOR_CONFIGS:
            tally = tallies[("floor", mode)]
            configs[mode] = {
                "pages_per_second": rate(tally, tally.window),
                "seconds_per_page": round(sum(tally.seconds.values()) / tally.pages, 3),
                "peak_rss_mib": round(tally.peak_rss_mib, 1),
                "cpu_seconds_per_page": round(tally.cpu_seconds / tally.pages, 3),
            }
        floor: dict[str, Any] = {
            "configs": configs,
            "capture_seconds": round(capture_seconds, 1),
            "captured_mib": round(sum(v["mib"] for v in index["pages"].values()), 1),
            "model_calls": {
                role: sum(v["calls"][role] for v in index["pages"].values())
                for role in index["models"]
            },
            "models": index["models"],
        }
        best = max(("2x1", "1x2"), key=lambda m: configs[m]["pages_per_second"])
        floor["best"] = best
        pipeline = next((r for r in rows if r["engine"] == "ocr-pipeline"), None)
        if pipeline is not None:
            floor["pipeline_fraction_of_floor"] = round(
                pipeline["pages_per_second"] / configs[best]["pages_per_second"], 3
            )
            floor["pipeline_fraction_of_floor_with_startup"] = round(
                pipeline["pages_per_second_with_startup"] / configs[best]["pages_per_second"], 3
            )
            floor["floor_one_core_fraction_of_pipeline_one_core"] = round(
                configs["1x1"]["seconds_per_page"] / pipeline["seconds_per_page_one_core"], 3
            )
            same = sum(
                index["pages"][p.relative]["text"] == pipeline["texts"][p.relative] for p in pages
            )
            floor["capture_texts_match_pipeline"] = f"{same}/{len(pages)}"
        report["floor"] = floor
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--limit", type=int, help="only the first N pages")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=DEFAULT_ENGINES)
    parser.add_argument("--batch", type=int, default=10, help="pages per round (default 10)")
    parser.add_argument(
        "--json", type=Path, default=REPO / "benchmarks" / "results" / "compare.json"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--capture-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--floor-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--pages", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.capture_worker is not None:
        capture_worker(args.dataset, args.pages, args.capture_worker)
        return
    if args.floor_worker is not None:
        floor_worker(args.floor_worker, args.pages, args.threads, args.out)
        return
    report = benchmark(args)
    cpu = report["setup"]["cpu"]
    print(f"dataset: {args.dataset} ({report['pages']} pages), {CORES} cores")
    print(f"CPU: {cpu['model']}; flags: {' '.join(cpu['flags']) or 'none of ' + str(CPU_FLAGS)}")
    if "openvino_capabilities" in cpu:
        print(f"OpenVINO capabilities: {' '.join(cpu['openvino_capabilities'])}")
    print(main_table(report["results"]))
    for variant, ratio in report["speedup_over_reference_peer"]["by_variant"].items():
        print(
            f"{variant} over {REFERENCE_PEER}: {ratio['processes']:.2f}x its {CORES} processes x "
            f"1 thread, {ratio['defaults']:.2f}x its defaults"
        )
    if "floor" in report:
        print()
        print(floor_table(report["floor"]))
        for key in (
            "pipeline_fraction_of_floor",
            "pipeline_fraction_of_floor_with_startup",
            "capture_texts_match_pipeline",
        ):
            if key in report["floor"]:
                print(f"{key}: {report['floor'][key]}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
