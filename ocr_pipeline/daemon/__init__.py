"""The daemon: watch the inbox, claim settled files, OCR them, bring each to one terminal state.

The life of one file::

    inbox/x.jpg --settled--> claimed (work/<id>/x.jpg) --> executor (a worker runs the engine)
        --> done:   outbox/x.txt and x.json, then archive/x.jpg (or deleted, or kept: policy)
        --> failed: failed/x.jpg.error.json, then failed/x.jpg

A file leaves the work folder only into a terminal state (or back into the inbox on shutdown),
so a crash at any point leaves it claimable: at-least-once, and idempotent because results are
keyed by the input's sha256. Modules: :mod:`.service` (lifecycle, signals, the loop),
:mod:`.sources` (what to claim), :mod:`.policy` (pure decisions), :mod:`.terminal` (the one
writer of terminal states), :mod:`.status` (counters, heartbeat).
"""

from __future__ import annotations

from ocr_pipeline.daemon.service import Daemon, check_models
from ocr_pipeline.daemon.status import RunSummary

__all__ = ["Daemon", "RunSummary", "check_models"]
