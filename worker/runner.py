"""The worker loop: claim a job, heartbeat while it runs, relay cancel requests, record the outcome."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
import uuid
from pathlib import Path

from storage import connect, db_path, features_dir
from storage import jobs as jobq
from storage.models import Job

from .context import RAY_RETRIES, JobContext, MadeWay

log = logging.getLogger("worker")
# A worker's write waits this long for the lock (an import in the UI may hold it for a while) before its job fails.
WRITE_WAIT_S = float(os.environ.get("LIST_WORKER_WRITE_WAIT", "900"))
PEEK_S = 0.2  # an idle lane looks for a queued job this often (a read) between its claims (every poll_s)


class Worker:
    """One job at a time, of one lane's kinds (`jobq.LANES`; "all": every kind). Many workers may share one
    database; `python -m worker` runs a training lane and a light lane side by side."""

    def __init__(
        self,
        db: str | os.PathLike | None = None,
        runs_dir: str | os.PathLike | None = None,
        poll_s: float = 1.0,
        heartbeat_s: float = 2.0,
        stale_after_s: float = jobq.STALE_AFTER_S,
        worker_id: str | None = None,
        lane: str = "all",
    ) -> None:
        if lane != "all" and lane not in jobq.LANES:
            raise ValueError(f"lane {lane!r} is not 'all' or one of {sorted(jobq.LANES)}")
        self.lane = lane
        self.kinds = jobq.KINDS if lane == "all" else jobq.LANES[lane]
        self.db_file = db_path(db)
        self.db = connect(self.db_file, write_wait_s=WRITE_WAIT_S)
        self.runs_dir = Path(runs_dir) if runs_dir else self.db_file.parent / "runs"
        self.poll_s = poll_s
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{lane}-{uuid.uuid4().hex[:6]}"
        self.context = JobContext(self.db, self.runs_dir, self.id, tuple(self.kinds))
        self.stop = threading.Event()  # set by run_forever's caller (SIGTERM, Ctrl-C, the app gone)  # shared by this worker's jobs (backbone cache)
        jobq.register_worker(self.db, self.id, os.getpid(), socket.gethostname())

    def run_forever(
        self, stop: threading.Event, exit_when_idle: bool = False, ready: threading.Event | None = None
    ) -> None:
        """Run jobs until `stop`; with `ready`, claim the first job only once it is set (the engine imported)."""
        self.stop = stop
        log.info("worker %s (%s jobs) on %s", self.id, ", ".join(self.kinds), self.db_file)
        try:
            while ready is not None and not ready.wait(self.poll_s):  # alive (heartbeats) while the engine imports
                if stop.is_set():
                    return
                jobq.worker_heartbeat(self.db, self.id)
            while not stop.is_set():
                jobq.worker_heartbeat(self.db, self.id)
                job = self.run_once()
                if job is None:
                    if exit_when_idle:
                        return
                    self._idle(stop)
        finally:
            jobq.unregister_worker(self.db, self.id)

    def _idle(self, stop: threading.Event) -> None:
        """Wait up to `poll_s` for the next claim (which also takes back dead workers' jobs, a write), looking for a
        queued job of this lane every `PEEK_S` meanwhile (a read): a job is claimed within about 0.2 s, not 1 s."""
        deadline = time.monotonic() + self.poll_s
        while not stop.wait(min(PEEK_S, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline or jobq.has_queued(self.db, self.kinds):
                return

    def run_once(self) -> Job | None:
        """Claim and run one job; None when the queue is empty."""
        job = jobq.claim(self.db, self.id, stale_after_s=self.stale_after_s, kinds=self.kinds)
        if job is None:
            return None
        log.info("job %s (%s) attempt %s", job.id, job.kind, job.attempts)
        cancel = threading.Event()
        done = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job.id, cancel, done), daemon=True)
        beat.start()
        from list_core.distributed import DistributedError
        from list_core.events import Cancelled, cancellable  # torch is imported only once a job runs
        from list_core.feature_cache import saved_in

        from .handlers import HANDLERS

        try:
            # the prompt tools' frozen features of the project's texts persist: a restarted worker reads them back
            features = features_dir(self.db, job.project_id) if job.project_id is not None else None
            with cancellable(cancel.is_set), saved_in(features):  # cancel: checked between batches of every forward
                result = HANDLERS[job.kind](self.context, job, cancel)
            jobq.finish(self.db, job.id, self.id, "succeeded", result=result)
        except DistributedError as e:  # the cluster failed: retry (a run resumes from its last round), then give up
            self.context.drop_scorer(job.payload.get("ray_address"))
            if job.attempts <= RAY_RETRIES:
                log.warning("job %s: %s; back in the queue (attempt %s)", job.id, e, job.attempts)
                jobq.retry_later(self.db, job.id, self.id, f"retrying after a cluster failure: {e}")
            else:
                jobq.finish(self.db, job.id, self.id, "failed", error=f"{e} (gave up after {job.attempts} attempts)")
        except MadeWay:  # background work: back in the queue, claimed again after the user's job
            jobq.make_way(self.db, job.id, self.id)
            log.info("job %s (%s) made way for a queued job", job.id, job.kind)
        except Cancelled:
            if self.context.shutting_down.is_set():  # the worker stops: the job waits for the next worker
                jobq.release(self.db, job.id, self.id)
                log.info("job %s interrupted by the worker's stop; back in the queue", job.id)
            else:
                jobq.finish(self.db, job.id, self.id, "cancelled", error="cancelled by the user")
        except Exception as e:
            log.exception("job %s failed", job.id)
            jobq.finish(
                self.db, job.id, self.id, "failed", error=f"{type(e).__name__}: {e}\n\n{traceback.format_exc()}"
            )
        finally:
            done.set()
            beat.join(timeout=5)
        return jobq.get_job(self.db, job.id)

    def _heartbeat(self, job_id: int, cancel: threading.Event, done: threading.Event) -> None:
        """Own connection: keeps the job alive and turns a cancel request into an event within a second."""
        db = connect(self.db_file, write_wait_s=WRITE_WAIT_S)
        last = 0.0
        while not done.wait(0.5):
            try:
                if jobq.cancel_requested(db, job_id):
                    cancel.set()
                if self.stop.is_set():  # SIGTERM or Ctrl-C: interrupt at the job's next check, resume later
                    self.context.shutting_down.set()
                    cancel.set()
                if time.monotonic() - last >= self.heartbeat_s:
                    if not jobq.heartbeat(db, job_id, self.id):
                        cancel.set()  # another worker took the job over: stop
                    jobq.worker_heartbeat(db, self.id)
                    last = time.monotonic()
            except Exception:  # a locked or busy moment must not kill the heartbeat
                log.warning("heartbeat failed", exc_info=True)
        db.close()


def warm_up() -> float:
    """Import the engine (torch, transformers, list_core and the job handlers); returns the seconds it took.

    About 8 s on 2 CPU cores: done once when the worker starts, it is not paid by the user's first job."""
    t = time.perf_counter()
    from . import handlers  # noqa: F401  (imports list_core, torch and transformers)

    return time.perf_counter() - t


def _warm_up_in_background() -> threading.Event:
    """Start `warm_up` in a thread; the returned event is set when it has finished (or failed: then each job
    imports what it needs, and reports the error itself)."""
    ready = threading.Event()

    def warm() -> None:
        try:
            log.info("engine imported in %.1f s; claiming jobs", warm_up())
        except Exception:
            log.exception("importing the engine failed")
        finally:
            ready.set()

    threading.Thread(target=warm, name="warm-up", daemon=True).start()
    return ready


def run_lanes(lanes: list[str], stop: threading.Event, exit_when_idle: bool = False, **worker_kwargs) -> None:
    """Run one `Worker` per lane in its own thread until `stop` (or, with `exit_when_idle`, until each lane's
    queue is empty). Each lane owns its SQLite connection and backbone cache, so the lanes share nothing.

    Unless it exits when idle, the process imports the engine as it starts and the lanes claim their first job
    once that is done: a job queued later does not wait for the imports, and two lanes never import the engine
    at the same time (two threads importing one package at once can meet a partly initialised module)."""
    ready = None if exit_when_idle else _warm_up_in_background()

    def loop(lane: str) -> None:
        Worker(lane=lane, **worker_kwargs).run_forever(stop, exit_when_idle=exit_when_idle, ready=ready)

    threads = [threading.Thread(target=loop, args=(lane,), name=f"lane-{lane}", daemon=True) for lane in lanes]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):  # joined with a timeout so the main thread still handles signals
        for t in threads:
            t.join(timeout=0.5)
