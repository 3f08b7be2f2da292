"""What a job handler gets from the worker: the database, where files go, and the worker's backbone cache.

Kept apart from the worker loop (`runner`) so handlers never import the loop that imports them.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

# A job whose Ray cluster failed is retried this many times (a run resumes from its last finished round).
RAY_RETRIES = int(os.environ.get("LIST_RAY_RETRIES", "2"))


class MadeWay(Exception):
    """Raised by background work (`Job.background`) between two steps when a job the user waits for is queued in
    its lane: the worker puts it back in the queue, behind that job."""


@dataclass
class JobContext:
    db: sqlite_utils.Database
    runs_dir: Path
    worker_id: str
    kinds: tuple[str, ...] = ()  # the job kinds of this worker's lane
    backbones: OrderedDict[str, Any] = field(default_factory=OrderedDict)  # name -> Backbone, least recent first
    shutting_down: threading.Event = field(default_factory=threading.Event)  # set: a stop is an interruption

    def backbone(self, name: str):
        """Load a backbone once per worker, keeping the `LIST_BACKBONE_CACHE` (default 2) most recently used.
        Models on a cached backbone own their adapters by name, so jobs sharing it never disturb each other."""
        import torch

        from list_core.backbone import load_backbone

        if name in self.backbones:
            self.backbones.move_to_end(name)
            return self.backbones[name]
        keep = max(1, int(os.environ.get("LIST_BACKBONE_CACHE", "2")))
        while len(self.backbones) >= keep:  # free the least recently used before loading another
            self.backbones.popitem(last=False)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        self.backbones[name] = load_backbone(name)
        return self.backbones[name]

    def make_way(self, job: Any) -> None:
        """Between two steps of background work: raise `MadeWay` if a job the user waits for is queued in this lane."""
        from storage import jobs as jobq

        if job.background and jobq.user_job_waiting(self.db, self.kinds):
            raise MadeWay(f"job {job.id} ({job.kind}) makes way for a queued job")

    def scorer(self, address: str | None):
        """The forward-pass engine for `address` (or $LIST_RAY_ADDRESS): the process's shared `RayScorer` for that
        cluster (its actors stay up between jobs), or None for this process. Ray is imported only for an address."""
        if not (address or os.environ.get("LIST_RAY_ADDRESS", "")).strip():
            return None
        from list_core.distributed import shared_scorer

        return shared_scorer(address)

    def drop_scorer(self, address: str | None) -> None:
        """Forget a cluster's scorer after it failed (its actors and connection too), so the next job connects
        afresh."""
        import sys

        if "ray" in sys.modules:  # no cluster was ever used otherwise
            from list_core.distributed import drop_shared

            drop_shared(address)
