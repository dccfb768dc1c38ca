#!/usr/bin/env bash
# Set up the project in .venv (idempotent), fetch the pinned models, copy the sample scans from
# examples/ into inbox/ and OCR them into outbox/ (one-shot run; exits when done; the originals
# are then in archive/).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
# pip's and setuptools' notices go to .venv/install.log; shown only if the install fails.
echo "installing into .venv (log: .venv/install.log) ..."
{ .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip \
    && .venv/bin/python -m pip install --quiet --disable-pip-version-check -e . ; } \
    > .venv/install.log 2>&1 || { cat .venv/install.log; exit 1; }
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
printf '\nDone. Each scan has outbox/<name>.json (every line with its box and confidence) beside\n'
printf 'the .txt above; the originals are in archive/, the audit log in logs/audit.jsonl.\n'
printf 'Next: .venv/bin/ocr-pipeline watch inbox outbox   (the daemon: drop files into inbox/)\n'
printf '      docs/quickstart.md, docs/daemon.md\n'
