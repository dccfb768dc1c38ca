"""Measurements on ``../shared/data``: scripts, and modules run from the repository root.

A package so that ``python -m benchmarks.bench_daemon`` (which imports ``tests.daemon_harness``,
the tests' daemon harness) resolves to this folder, with the repository root on ``sys.path``.
"""
