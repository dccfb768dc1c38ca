"""The container image, tested as far as this machine allows (no Docker engine here).

``hadolint`` lints the Dockerfile. Then the image's own install and start commands run in a
clean virtual environment: the build stage's wheel build and non-editable install of that wheel,
its ``models fetch`` line into a store of its own, and the ``ENTRYPOINT`` +
``CMD`` with the image's ``ENV`` (its ``/data`` paths moved to a temp folder), as the image's
non-root UID (``setpriv``). The daemon must process a dropped file into results owned by that UID,
report healthy, report unhealthy when wedged (SIGSTOP), and stop on SIGTERM within its grace
period. ``tini`` (the image's PID 1) is left out: it only forwards the signal.

Then the image itself: built with podman on a Debian base made with debootstrap
(``scripts/podman_base_image.sh``) and run with the folders bind-mounted, checking the same
behaviour through the container's own user, HEALTHCHECK and STOPSIGNAL. It skips, saying why,
where podman or the base image is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocr_pipeline.evaluation import Score, load_ground_truth
from tests.conftest import REPO as PROJECT_ROOT
from tests.conftest import SROIE_DEV
from tests.daemon_harness import wait_until
from tests.test_package import build_wheel

DOCKERFILE = PROJECT_ROOT / "Dockerfile"
IMAGE_MODELS_DIR = "/opt/ocr-pipeline/models"
IMAGE_UID = 10001
GRACE_SECONDS = 8.0
NEEDS_ROOT = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="switching UID needs root"
)


def _dockerfile() -> str:
    return DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")


def _image_env() -> dict[str, str]:
    """``OCR_PIPELINE_*`` variables the runtime stage sets."""
    env: dict[str, str] = {}
    for line in _dockerfile().splitlines():
        if line.startswith("ENV "):
            env.update(pair.split("=", 1) for pair in shlex.split(line[4:]) if "=" in pair)
    return {k: v for k, v in env.items() if k.startswith("OCR_PIPELINE_")}


def _exec_form(instruction: str) -> list[str]:
    match = re.search(rf"^{instruction} (\[.*\])$", _dockerfile(), re.MULTILINE)
    assert match, f"{instruction} in exec form"
    value: list[str] = json.loads(match.group(1))
    return value


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    completed = subprocess.run(
        [hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_image_declares_what_operators_rely_on() -> None:
    text = _dockerfile()
    assert f"ARG UID={IMAGE_UID}" in text and "USER ${UID}:${GID}" in text
    assert _exec_form("ENTRYPOINT")[:2] == ["tini", "--"]
    assert "STOPSIGNAL SIGTERM" in text
    assert 'CMD ["ocr-pipeline", "health", "/data/outbox"]' in text
    for folder in ("inbox", "outbox", "archive", "failed", "logs"):
        assert f'"/data/{folder}"' in text


def test_image_installs_the_wheel_and_keeps_no_source_tree() -> None:
    text = _dockerfile()
    assert re.search(r"pip wheel --no-deps --wheel-dir (\S+) \.", text), "a wheel is built"
    assert re.search(r"pip install \"\$\(ls /\S+/ocr_pipeline-\*\.whl\)\[\$\{EXTRAS\}\]\"", text), (
        "and installed with the extras of the EXTRAS build argument"
    )
    assert "ARG EXTRAS=web" in text, "the web extra (serve) by default; web,ray for a cluster"
    assert "pip install -e" not in text and "COPY --from=build /app" not in text
    # The models folder is fixed and named in both stages: fetched there, read from there.
    assert text.count(f"OCR_PIPELINE_MODELS__DIR={IMAGE_MODELS_DIR}") == 2
    assert f"COPY --from=build {IMAGE_MODELS_DIR} {IMAGE_MODELS_DIR}" in text
    assert _image_env()["OCR_PIPELINE_MODELS__DIR"] == IMAGE_MODELS_DIR


def _python_for_image_user() -> str | None:
    """A Python 3.11 the image's UID can run whole.

    A pyenv build under ``/root`` starts for another UID but cannot read its own standard
    library, so it silently takes the system's: its ``sys.base_prefix`` differs between root
    and that UID, and such an interpreter is refused.
    """
    probe = "import sys, venv; assert sys.version_info[:2] == (3, 11); print(sys.base_prefix)"
    as_user = ["setpriv", f"--reuid={IMAGE_UID}", f"--regid={IMAGE_UID}", "--clear-groups"]
    for python in ("/usr/bin/python3.11", getattr(sys, "_base_executable", sys.executable)):
        if not Path(python).exists():
            continue
        runs = [
            subprocess.run(
                [*prefix, python, "-c", probe],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            for prefix in ([], as_user)
        ]
        if all(r.returncode == 0 for r in runs) and runs[0].stdout == runs[1].stdout:
            return python
    return None


@pytest.fixture(scope="module")
def clean_venv() -> Iterator[Path]:
    """A new virtual environment with the project installed as the build stage does.

    The wheel is built from a clean copy of the sources the build stage copies
    (``pip wheel --no-deps``, :func:`tests.test_package.build_wheel`) and installed, not editable;
    the build stage's ``models fetch`` line then fills a store of its own beside the venv.
    """
    python = _python_for_image_user()
    if python is None:
        pytest.skip(f"no Python 3.11 that UID {IMAGE_UID} may run")
    root = Path(tempfile.mkdtemp(prefix="ocr-image-venv-"))
    os.chmod(root, 0o755)  # the image's user must reach the venv
    venv = root / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "pip"), "--disable-pip-version-check"]
    wheel = build_wheel(root)
    subprocess.run([*pip, "install", "--quiet", str(wheel)], cwd=root, check=True, timeout=1200)
    models = re.search(r"ocr-pipeline (models fetch [^&]*)&&", _dockerfile())
    assert models
    # A store of its own, holding only what the build line fetches (not the project's store).
    store = root / "models"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCR_PIPELINE_")}
    subprocess.run(
        [str(venv / "bin" / "ocr-pipeline"), *shlex.split(models.group(1))],
        env={**env, "OCR_PIPELINE_MODELS__DIR": str(store)},
        cwd=root,
        check=True,
        timeout=600,
    )
    yield venv
    shutil.rmtree(root, ignore_errors=True)


def _health(venv: Path, outbox: Path, max_age: float) -> int:
    command = [str(venv / "bin" / "ocr-pipeline"), "health", str(outbox)]
    return subprocess.run(
        [*command, "--max-age", str(max_age)], capture_output=True, timeout=60, check=False
    ).returncode


@NEEDS_ROOT
def test_image_start_command_as_non_root_user(clean_venv: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="ocr-image-data-"))
    os.chmod(base, 0o755)
    data = base / "data"
    for folder in ("inbox", "outbox", "archive", "failed", "logs"):
        (data / folder).mkdir(parents=True)
        os.chown(data / folder, IMAGE_UID, IMAGE_UID)
    env = {
        "PATH": f"{clean_venv / 'bin'}:/usr/bin:/bin",
        "PYTHONUNBUFFERED": "1",
        "HOME": str(base),
        **{k: v.replace("/data", str(data)) for k, v in _image_env().items()},
        "OCR_PIPELINE_DAEMON__STATUS_SECONDS": "0.5",
        "OCR_PIPELINE_DAEMON__SETTLE_SECONDS": "0.5",
        "OCR_PIPELINE_MODELS__DIR": str(clean_venv.parent / "models"),
    }
    entrypoint = _exec_form("ENTRYPOINT")[2:] + _exec_form("CMD")
    command = ["setpriv", f"--reuid={IMAGE_UID}", f"--regid={IMAGE_UID}", "--clear-groups"]
    log = (base / "daemon.log").open("wb")
    daemon = subprocess.Popen([*command, *entrypoint], env=env, cwd=data, stdout=log, stderr=log)
    outbox = data / "outbox"
    try:
        status = outbox / ".ocr-pipeline" / "status.json"
        wait_until(status.is_file, 120, "the daemon's heartbeat")
        assert json.loads(status.read_text(encoding="utf-8"))["pid"] == daemon.pid
        shutil.copyfile(SROIE_DEV / "images" / "005.jpg", data / "inbox" / "scan.jpg")
        wait_until((outbox / "scan.json").is_file, 120, "the result")
        assert (outbox / "scan.json").stat().st_uid == IMAGE_UID
        assert (outbox / "scan.txt").stat().st_uid == IMAGE_UID
        assert (data / "archive" / "scan.jpg").is_file()
        assert _health(clean_venv, outbox, 3) == 0

        os.kill(daemon.pid, signal.SIGSTOP)  # wedged: alive, but no heartbeat
        try:
            wait_until(lambda: _health(clean_venv, outbox, 3) == 1, 30, "health to say unhealthy")
        finally:
            os.kill(daemon.pid, signal.SIGCONT)
        wait_until(lambda: _health(clean_venv, outbox, 3) == 0, 30, "health to recover")

        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
        assert time.monotonic() - started < GRACE_SECONDS + 2
    finally:
        if daemon.poll() is None:
            daemon.kill()
        log.close()
        print((base / "daemon.log").read_text(encoding="utf-8", errors="replace")[-3000:])
        shutil.rmtree(base, ignore_errors=True)


# --- the image itself, built and run with podman ---------------------------------------------

PODMAN_BASE = "localhost/ocr-pipeline-base:bookworm"  # scripts/podman_base_image.sh makes it
PODMAN_TAG = "localhost/ocr-pipeline:test"
PODMAN_UID = 4321  # not the default 10001: the build argument must be honoured
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Podman 4.3 (Debian 12) on this VM: crun 1.8.1 refuses the hybrid cgroup v1/v2 layout, so runc
# runs the containers; without CAP_SYS_RESOURCE podman's default rlimits (1048576 open files)
# cannot be set, so lower ones are given.
PODMAN = ["podman", "--runtime", "runc"]
LIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]


def _podman_ready() -> str | None:
    """Why the podman test cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "podman without root needs subuid ranges; run as root"
    for tool in ("podman", "runc"):
        if not shutil.which(tool):
            return f"{tool} not installed (scripts/test.sh installs it as root with apt)"
    exists = subprocess.run(["podman", "image", "exists", PODMAN_BASE], check=False, timeout=60)
    if exists.returncode != 0:
        return f"no base image {PODMAN_BASE}: run scripts/podman_base_image.sh"
    return None


def _pod(*args: str, timeout: float = 120, check: bool = True) -> str:
    done = subprocess.run(
        [*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout.strip()


@pytest.fixture(scope="module")
def podman_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The Dockerfile built with podman on the debootstrapped base, for UID/GID 4321."""
    reason = _podman_ready()
    if reason:
        pytest.skip(reason)
    build_args = ["--build-arg", f"BASE_IMAGE={PODMAN_BASE}"]
    build_args += ["--build-arg", f"UID={PODMAN_UID}", "--build-arg", f"GID={PODMAN_UID}"]
    mounts: list[str] = []
    if HOST_CA_BUNDLE.is_file():
        # This machine reaches PyPI through a TLS-inspecting proxy whose CA only the host's
        # bundle holds; pip (certifi) is pointed at it for the build only, not baked in.
        pip_conf = tmp_path_factory.mktemp("pip") / "pip.conf"
        pip_conf.write_text(f"[global]\ncert = {HOST_CA_BUNDLE}\n", encoding="utf-8")
        mounts = ["-v", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
        mounts += ["-v", f"{pip_conf}:/etc/pip.conf:ro"]
    # --format docker keeps HEALTHCHECK, which the OCI image format has no field for.
    _pod(
        "build", "--format", "docker", *LIMITS, *mounts, *build_args, "-t", PODMAN_TAG,
        str(PROJECT_ROOT), timeout=1800,
    )  # fmt: skip
    return PODMAN_TAG


def _healthcheck(container: str) -> int:
    done = subprocess.run(
        [*PODMAN, "healthcheck", "run", container], capture_output=True, timeout=60, check=False
    )
    return done.returncode


_API_CLIENT = """
import base64, json, time, urllib.error, urllib.request
base = "http://127.0.0.1:8080"
deadline = time.monotonic() + 60
while True:
    try:
        urllib.request.urlopen(base + "/readyz", timeout=5)
        break
    except (urllib.error.URLError, OSError):
        if time.monotonic() > deadline:
            raise
        time.sleep(0.2)
body = {"name": "again.jpg", "content_base64": base64.b64encode(
    open("/data/archive/scan.jpg", "rb").read()).decode()}
request = urllib.request.Request(
    base + "/v1/ocr?wait=120", data=json.dumps(body).encode(),
    headers={"Content-Type": "application/json"})
print(urllib.request.urlopen(request, timeout=150).read().decode())
"""


def _api_in_the_container(name: str) -> None:
    """``serve --front-only`` in the running container answers from the daemon's folders.

    The front gets the archived scan again through the API (base64 JSON); the daemon finds the
    same bytes done before, so the answer is the earlier result, as a duplicate.
    """
    _pod("exec", "-d", name, "ocr-pipeline", "serve", "--front-only", "--port", "8080")
    answer = json.loads(_pod("exec", name, "python", "-c", _API_CLIENT, timeout=200))
    scan = (SROIE_DEV / "images" / "005.jpg").read_bytes()
    assert answer["source"]["sha256"] == hashlib.sha256(scan).hexdigest()
    assert len(answer["text"]) > 40


def test_podman_image_runs_as_its_uid_processes_a_scan_and_stops_on_sigterm(
    podman_image: str, tmp_path: Path
) -> None:
    inspect = json.loads(_pod("image", "inspect", podman_image))[0]
    assert inspect["Config"]["User"] == f"{PODMAN_UID}:{PODMAN_UID}"
    assert inspect["Config"]["StopSignal"] == "SIGTERM"
    health_command = inspect["Healthcheck"]["Test"]  # podman lists it beside "Config"
    assert health_command[-3:] == ["ocr-pipeline", "health", "/data/outbox"]

    os.chmod(tmp_path, 0o755)
    volumes: list[str] = []
    for folder in ("inbox", "outbox", "archive", "failed", "logs"):
        (tmp_path / folder).mkdir()
        os.chown(tmp_path / folder, PODMAN_UID, PODMAN_UID)
        volumes += ["-v", f"{tmp_path / folder}:/data/{folder}"]
    env = ["-e", "OCR_PIPELINE_DAEMON__STATUS_SECONDS=0.5"]
    env += ["-e", "OCR_PIPELINE_DAEMON__SETTLE_SECONDS=0.5"]
    name = f"ocr-pipeline-test-{os.getpid()}"
    _pod("run", "-d", "--name", name, *LIMITS, *env, *volumes, podman_image)
    outbox = tmp_path / "outbox"
    try:
        status = outbox / ".ocr-pipeline" / "status.json"
        wait_until(status.is_file, 120, "the daemon's heartbeat in the mounted outbox")
        assert _pod("exec", name, "id", "-u") == str(PODMAN_UID)
        # The wheel's package, no source tree; the models in the image's fixed folder.
        located = "import ocr_pipeline.resources as r; print(r.registry_file())"
        registry = _pod("exec", name, "python", "-c", located)
        assert registry.startswith("/opt/venv/") and "site-packages" in registry, registry
        _pod("exec", name, "sh", "-c", "test ! -e /app && test ! -e /src")
        _pod("exec", name, "ocr-pipeline", "models", "verify", "--configured")

        scan = tmp_path / "inbox" / "scan.jpg"
        shutil.copyfile(SROIE_DEV / "images" / "005.jpg", scan)
        os.chmod(scan, 0o444)  # dropped read-only, owned by root: still archived
        wait_until((tmp_path / "archive" / "scan.jpg").is_file, 120, "the scan archived")
        result = json.loads((outbox / "scan.json").read_text(encoding="utf-8"))
        (truth,) = (p for p in load_ground_truth(SROIE_DEV) if p.image.name == "005.jpg")
        score = Score()
        score.add(result["text"], truth.text)
        assert score.word_f1 > 0.8, f"the container reads the receipt (word F1 {score.word_f1})"
        for produced in (outbox / "scan.json", outbox / "scan.txt"):
            assert produced.stat().st_uid == PODMAN_UID
            assert produced.stat().st_mode & 0o044 == 0o044, "results readable by the group/others"
        assert _healthcheck(name) == 0
        _api_in_the_container(name)

        daemon_pid = json.loads(status.read_text(encoding="utf-8"))["pid"]
        _pod("exec", name, "sh", "-c", f"kill -STOP {daemon_pid}")  # wedged: no heartbeat
        try:
            wait_until(lambda: _healthcheck(name) == 1, 60, "the healthcheck to fail")
        finally:
            _pod("exec", name, "sh", "-c", f"kill -CONT {daemon_pid}")
        wait_until(lambda: _healthcheck(name) == 0, 60, "the healthcheck to pass again")

        started = time.monotonic()
        _pod("stop", "--time", "30", name, timeout=60)
        assert time.monotonic() - started < GRACE_SECONDS + 2
        assert _pod("inspect", "--format", "{{.State.ExitCode}}", name) == "0"
        assert not list((tmp_path / "inbox").glob("*.jpg"))
    finally:
        logs = subprocess.run(
            [*PODMAN, "logs", name], capture_output=True, text=True, timeout=60, check=False
        )
        print(logs.stdout[-3000:], logs.stderr[-3000:])
        _pod("rm", "--force", name, check=False)
