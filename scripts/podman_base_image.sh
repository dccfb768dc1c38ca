#!/usr/bin/env bash
# Make the local base image the container test builds the Dockerfile on, with no registry:
# Debian bookworm (debootstrap, minbase) + python3 (3.11) + venv, imported into podman as
# localhost/ocr-pipeline-base:bookworm. Idempotent; needs root, podman, runc and debootstrap.
#   bash scripts/podman_base_image.sh          # then: pytest tests/test_container.py -k podman
set -euo pipefail
IMAGE=localhost/ocr-pipeline-base:bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if podman image exists "$IMAGE"; then
    echo "$IMAGE exists"
    exit 0
fi
root=$(mktemp -d /var/tmp/ocr-pipeline-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$root" "$MIRROR" >"$root.log" 2>&1 || { tail -20 "$root.log"; exit 1; }
rm -f "$root.log"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$IMAGE"
echo "made $IMAGE"
