#!/usr/bin/env bash
# Set up the project in .venv (idempotent), fetch the pinned models, copy the sample scans from
# examples/ into inbox/ and OCR them into outbox/ (one-shot run; exits when done; the originals
# are then in archive/).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
# The checkout's own model store (git-ignored models/) instead of the per-user data folder.
export OCR_PIPELINE_MODELS__DIR="$PWD/models"
.venv/bin/ocr-pipeline models fetch
mkdir -p inbox outbox
cp examples/*.jpg inbox/
.venv/bin/ocr-pipeline run inbox outbox
for txt in outbox/*.txt; do
  printf '\n=== %s ===\n' "$txt"
  cat "$txt"
done
