#!/usr/bin/env bash
# Set up the project in .venv (idempotent), fetch the pinned models, then lint, type-check and test.
# Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
# The orientation tests render vertical Chinese with Noto CJK (Debian fonts-noto-cjk).
if [ ! -f /usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc ] && command -v apt-get >/dev/null \
    && [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq fonts-noto-cjk >/dev/null || { apt-get update -qq && apt-get install -y -qq fonts-noto-cjk >/dev/null; }
fi
# The container test builds the Dockerfile with podman on a debootstrapped Debian base (no
# Docker engine or registry here). Best effort: without them that one test skips and says why.
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
        apt-get install -y -qq podman runc debootstrap >/dev/null 2>&1 \
            || { apt-get update -qq && apt-get install -y -qq podman runc debootstrap >/dev/null 2>&1; } \
            || echo "podman could not be installed: the podman container test will skip"
    fi
    if command -v podman >/dev/null && command -v debootstrap >/dev/null; then
        bash scripts/podman_base_image.sh || echo "no podman base image: the podman container test will skip"
    fi
fi
# The web page test drives Debian's Chromium (never `playwright install`) in a private network
# namespace (unshare: util-linux; ip: iproute2). Best effort: without them that test skips.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq chromium iproute2 >/dev/null 2>&1 \
        || { apt-get update -qq && apt-get install -y -qq chromium iproute2 >/dev/null 2>&1; } \
        || echo "chromium could not be installed: the web page test will skip"
fi
# The searchable PDF tests read our PDFs back with poppler (pdftotext, pdffonts) and qpdf.
# Best effort: without them those tests skip and say why.
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] \
    && { ! command -v pdftotext >/dev/null || ! command -v qpdf >/dev/null; }; then
    apt-get install -y -qq poppler-utils qpdf >/dev/null 2>&1 \
        || { apt-get update -qq && apt-get install -y -qq poppler-utils qpdf >/dev/null 2>&1; } \
        || echo "poppler-utils/qpdf could not be installed: the searchable PDF checks will skip"
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
# The checkout's own model store (git-ignored models/), not the per-user data folder an installed
# ocr-pipeline uses; tests/conftest.py defaults to the same folder for a bare `pytest`.
export OCR_PIPELINE_MODELS__DIR="$PWD/models"
.venv/bin/ocr-pipeline models fetch --all   # the benchmarks and some tests use every registered pair
.venv/bin/ruff check ocr_pipeline tests benchmarks
.venv/bin/mypy ocr_pipeline
.venv/bin/python -m pytest "$@"
