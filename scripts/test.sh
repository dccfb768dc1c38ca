#!/usr/bin/env bash
# Set up the project in .venv (idempotent), fetch the pinned models, then lint, type-check and test.
# Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
.venv/bin/ocr-pipeline models fetch
.venv/bin/ruff check ocr_pipeline tests benchmarks
.venv/bin/mypy ocr_pipeline
.venv/bin/python -m pytest "$@"
