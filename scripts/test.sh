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
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
.venv/bin/ocr-pipeline models fetch
.venv/bin/ruff check ocr_pipeline tests benchmarks
.venv/bin/mypy ocr_pipeline
.venv/bin/python -m pytest "$@"
