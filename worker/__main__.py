"""`python -m worker --db data/list_studio.db`: run jobs until stopped (Ctrl-C or SIGTERM).

By default two lanes run side by side, each one job at a time: training runs, and the light jobs (prediction, prompt
scoring, export, diversity order) that must not wait behind a training run."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time

from storage import jobs as jobq

from .runner import Worker, run_lanes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    ap.add_argument("--db", default=None, help="database file (default: $LIST_DB or data/list_studio.db)")
    ap.add_argument("--runs-dir", default=None, help="checkpoints and exports (default: next to the database)")
    ap.add_argument("--poll", type=float, default=1.0, help="seconds between queue polls when idle")
    ap.add_argument("--stale", type=float, default=60.0, help="reclaim running jobs whose heartbeat is older than this")
    ap.add_argument("--lane", choices=["both", "all", *jobq.LANES], default="both",
                    help="both: a training lane and a light lane side by side (default); all: one lane for every "
                         "kind, first in first out; train or light: only that lane")  # fmt: skip
    ap.add_argument("--once", action="store_true", help="run at most one job (of any kind), then exit")
    ap.add_argument("--exit-when-idle", action="store_true", help="exit when the queue is empty")
    ap.add_argument("--parent-pid", type=int, default=None,
                    help="exit when this process (the app that started the worker) is gone; a worker started by "
                         "hand has none and runs until stopped")  # fmt: skip
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.parent_pid:
        threading.Thread(target=_exit_with_parent, args=(args.parent_pid, stop), daemon=True).start()
    if args.once:
        Worker(args.db, runs_dir=args.runs_dir, poll_s=args.poll, stale_after_s=args.stale).run_once()
        return 0
    lanes = list(jobq.LANES) if args.lane == "both" else [args.lane]
    run_lanes(lanes, stop, args.exit_when_idle, db=args.db, runs_dir=args.runs_dir, poll_s=args.poll,
              stale_after_s=args.stale)  # fmt: skip
    return 0


def _exit_with_parent(parent_pid: int, stop: threading.Event, grace_s: float = 10.0) -> None:
    """When the app that started this worker stops (Ctrl-C), stop too: at once when idle; a job still running after
    `grace_s` is left to be reclaimed, and a later worker resumes it from its last checkpoint."""
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    logging.getLogger("worker").info("the app that started this worker (pid %d) has stopped: exiting", parent_pid)
    stop.set()
    time.sleep(grace_s)
    os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
