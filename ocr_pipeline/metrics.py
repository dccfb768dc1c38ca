"""Optional Prometheus endpoint (prometheus-client): jobs by outcome, stage latency, queue, workers.

Off unless ``daemon.metrics_port`` is set. Metric names follow Prometheus conventions (base
units: seconds; ``_total`` for counters):

* ``ocr_pipeline_jobs_total{outcome="done|partial|failed|duplicate|retried"}`` (partial: some
  pages of a document could not be read, the others were)
* ``ocr_pipeline_stage_seconds{stage="decode|preprocess|detect|...|total"}`` (histogram)
* ``ocr_pipeline_queue_depth``, ``ocr_pipeline_jobs_in_flight``, ``ocr_pipeline_workers_alive``
"""

from __future__ import annotations

from collections.abc import Mapping
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

STAGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""Histogram buckets, seconds: from one small stage of one page to a long PDF."""


class Metrics:
    """The daemon's metrics; a no-op when created with ``port=0``.

    Raises:
        OSError: the port cannot be bound (in use, or privileged).

    """

    def __init__(self, port: int, host: str) -> None:
        self.enabled = port > 0
        self.registry = CollectorRegistry()
        self.jobs = Counter(
            "ocr_pipeline_jobs", "Jobs by outcome.", ["outcome"], registry=self.registry
        )
        self.stages = Histogram(
            "ocr_pipeline_stage_seconds",
            "Time per pipeline stage of one file, seconds.",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "ocr_pipeline_queue_depth",
            "Files settling or waiting for a worker.",
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "ocr_pipeline_jobs_in_flight", "Jobs running in workers.", registry=self.registry
        )
        self.workers_alive = Gauge(
            "ocr_pipeline_workers_alive", "Live worker processes.", registry=self.registry
        )
        self._server: WSGIServer | None = None
        if self.enabled:
            self._server, _ = start_http_server(port, addr=host, registry=self.registry)

    def job(self, outcome: str, timings_ms: Mapping[str, float] | None = None) -> None:
        """Count one job outcome and observe its stage timings (milliseconds)."""
        self.jobs.labels(outcome=outcome).inc()
        for stage, ms in (timings_ms or {}).items():
            self.stages.labels(stage=stage).observe(ms / 1000.0)

    def gauges(self, queue_depth: int, in_flight: int, workers_alive: int) -> None:
        """Set the current queue depth, jobs in flight and live workers."""
        self.queue_depth.set(queue_depth)
        self.in_flight.set(in_flight)
        self.workers_alive.set(workers_alive)

    def close(self) -> None:
        """Stop the HTTP server."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
