"""The job queue: enqueue, atomic claim, heartbeat, progress, cancel, finish, and reclaiming dead workers' jobs."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlite_utils

from .db import now, write
from .models import BACKGROUND_SQL, Job
from .projects import StoreError

KINDS = ("list_run", "prompt_eval", "predict", "export", "diversity", "embed", "prompt_suggest")
# A worker runs a training lane and a light lane side by side, so a prediction, a prompt score, an export or the
# diversity order never waits behind a training run that takes minutes to hours.
LANES: dict[str, tuple[str, ...]] = {
    "train": ("list_run",),
    "light": ("prompt_eval", "predict", "export", "diversity", "embed", "prompt_suggest"),
}
STALE_AFTER_S = 60.0
MAX_ATTEMPTS = 3


def _ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S.%f")


def age_s(job: Job) -> float:
    """Seconds since the job was queued."""
    queued = datetime.strptime(job.created_at, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
    return (datetime.now(UTC) - queued).total_seconds()


def enqueue(db: sqlite_utils.Database, kind: str, payload: dict[str, Any], project_id: int | None = None) -> Job:
    if kind not in KINDS:
        raise StoreError(f"job kind {kind!r} is not one of {KINDS}")
    with write(db):
        cur = db.execute(
            "INSERT INTO jobs (project_id, kind, payload, created_at) VALUES (?, ?, ?, ?)",
            [project_id, kind, json.dumps(payload), now()],
        )
    return get_job(db, cur.lastrowid)


def get_job(db: sqlite_utils.Database, job_id: int) -> Job:
    rows = list(db.query("SELECT * FROM jobs WHERE id = ?", [job_id]))
    if not rows:
        raise StoreError(f"no job with id {job_id}")
    return Job.of(rows[0])


def list_jobs(db: sqlite_utils.Database, project_id: int | None = None, limit: int = 50) -> list[Job]:
    sql = (
        "SELECT * FROM jobs" + (" WHERE project_id = ?" if project_id is not None else "") + " ORDER BY id DESC LIMIT ?"
    )
    params = ([project_id] if project_id is not None else []) + [limit]
    return [Job.of(r) for r in db.query(sql, params)]


def _pid_alive(pid: int) -> bool:
    """Whether a process of this host is alive (a zombie, i.e. a killed child not yet reaped, is dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True


def dead_workers(db: sqlite_utils.Database) -> list[str]:
    """Registered workers of this host whose process is gone (killed): their jobs need not wait to go stale."""
    host = socket.gethostname()
    return [r["id"] for r in db.query("SELECT id, pid FROM workers WHERE host = ?", [host]) if not _pid_alive(r["pid"])]


def read_ahead(db: sqlite_utils.Database, project_id: int, pool: bool = True) -> list[Job]:
    """After an import, queue what the worker can prepare before the user asks, each unless one like it is queued
    already (imports in a row need one): the texts a prompt scoring reads (`embed`), then, when the import added
    to the pool, the diverse labeling order the Label page starts with (`diversity`). Both are background work."""
    jobs = [_queued_once(db, project_id, "embed", {})]
    return jobs + ([_queued_once(db, project_id, "diversity", {"background": True})] if pool else [])


def queue_replacing(db: sqlite_utils.Database, project_id: int, kind: str, payload: dict[str, Any]) -> Job:
    """Queue a job of `kind` for the project in place of any still queued (they would write what it overwrites)."""
    with write(db):
        db.execute("UPDATE jobs SET status = 'cancelled', finished_at = ?, error = 'replaced by a newer request' "
                   "WHERE project_id = ? AND kind = ? AND status = 'queued'", [now(), project_id, kind])  # fmt: skip
    return enqueue(db, kind, payload, project_id)


def active_job(db: sqlite_utils.Database, project_id: int, kind: str) -> Job | None:
    """The project's newest queued or running job of `kind`, if any."""
    sql = "SELECT id FROM jobs WHERE project_id = ? AND kind = ? AND status IN ('queued', 'running') ORDER BY id DESC"
    row = db.execute(sql + " LIMIT 1", [project_id, kind]).fetchone()
    return get_job(db, row[0]) if row else None


def active_jobs(db: sqlite_utils.Database, project_id: int, kinds: Sequence[str]) -> list[tuple[int, str]]:
    """The project's queued or running jobs of `kinds`, as (id, kind) in id order (a page's cheap poll)."""
    marks = ",".join("?" * len(kinds))
    sql = (f"SELECT id, kind FROM jobs WHERE project_id = ? AND kind IN ({marks}) "
           "AND status IN ('queued', 'running') ORDER BY id")  # fmt: skip
    return [(i, k) for i, k in db.execute(sql, [project_id, *kinds])]


def _queued_once(db: sqlite_utils.Database, project_id: int, kind: str, payload: dict[str, Any]) -> Job:
    sql = "SELECT id FROM jobs WHERE kind = ? AND project_id = ? AND status = 'queued' ORDER BY id LIMIT 1"
    row = db.execute(sql, [kind, project_id]).fetchone()
    return get_job(db, row[0]) if row else enqueue(db, kind, payload, project_id)


def user_job_waiting(db: sqlite_utils.Database, kinds: Sequence[str]) -> bool:
    """Whether a job of `kinds` that is not background work waits to be claimed (a read)."""
    marks = ",".join("?" * len(kinds))
    sql = (f"SELECT 1 FROM jobs WHERE status = 'queued' AND cancel_requested = 0 AND kind IN ({marks}) "
           f"AND NOT {BACKGROUND_SQL} LIMIT 1")  # fmt: skip
    return db.execute(sql, list(kinds)).fetchone() is not None


def has_queued(db: sqlite_utils.Database, kinds: Sequence[str]) -> bool:
    """Whether a job of `kinds` waits to be claimed: a read (no write lock), cheap enough for an idle worker to
    ask several times a second between its claims."""
    marks = ",".join("?" * len(kinds))
    sql = f"SELECT 1 FROM jobs WHERE status = 'queued' AND cancel_requested = 0 AND kind IN ({marks}) LIMIT 1"
    return db.execute(sql, list(kinds)).fetchone() is not None


def claim(
    db: sqlite_utils.Database,
    worker_id: str,
    stale_after_s: float = STALE_AFTER_S,
    max_attempts: int = MAX_ATTEMPTS,
    kinds: Sequence[str] | None = None,
) -> Job | None:
    """Take a running job whose worker died (stopped heartbeating, or its process is gone from this host) first,
    else the oldest queued one, background work last; only jobs of `kinds` (a lane) when given. One statement in a
    write transaction, so two workers never get the same job."""
    kinds = tuple(KINDS if kinds is None else kinds)
    if bad := [k for k in kinds if k not in KINDS]:
        raise StoreError(f"job kind {bad[0]!r} is not one of {KINDS}")
    cutoff = _ago(stale_after_s)
    dead = dead_workers(db)
    with write(db):
        if dead:  # their heartbeat is as good as stale: let every check below see it so
            marks = ",".join("?" * len(dead))
            db.execute(f"UPDATE jobs SET heartbeat_at = '' WHERE status = 'running' AND worker_id IN ({marks})", dead)
            db.execute(f"DELETE FROM workers WHERE id IN ({marks})", dead)
        db.execute(  # a dead worker's job that the user asked to cancel is cancelled, not run again
            "UPDATE jobs SET status = 'cancelled', finished_at = ? WHERE status = 'running' AND heartbeat_at < ? AND cancel_requested = 1",
            [now(), cutoff],
        )
        db.execute(
            "UPDATE jobs SET status = 'failed', finished_at = ?, "
            "error = coalesce(error, '') || 'its worker stopped ' || stalls || ' times in a row without progress; "
            "giving up' WHERE status = 'running' AND heartbeat_at < ? AND stalls >= ?",
            [now(), cutoff, max_attempts],
        )
        _end_runs_of_ended_jobs(db)
        t = now()
        row = db.execute(
            "UPDATE jobs SET status = 'running', worker_id = ?, started_at = coalesce(started_at, ?), "
            "heartbeat_at = ?, attempts = attempts + 1, stalls = stalls + 1, message = NULL "
            f"WHERE id = (SELECT id FROM jobs WHERE kind IN ({','.join('?' * len(kinds))}) AND ("
            "(status = 'queued' AND cancel_requested = 0) OR (status = 'running' AND heartbeat_at < ?)) "
            f"ORDER BY status = 'running' DESC, {BACKGROUND_SQL}, id LIMIT 1) RETURNING id",
            [worker_id, t, t, *kinds, cutoff],
        ).fetchone()
    return get_job(db, row[0]) if row else None


def _end_runs_of_ended_jobs(db: sqlite_utils.Database) -> None:
    """A run whose job was given up or cancelled without a live worker ends with it (never 'running' forever)."""
    db.execute(
        "UPDATE runs SET status = (SELECT status FROM jobs WHERE jobs.id = runs.job_id), finished_at = ? "
        "WHERE status IN ('queued', 'running') AND job_id IN (SELECT id FROM jobs WHERE status IN ('failed', 'cancelled'))",
        [now()],
    )


def heartbeat(db: sqlite_utils.Database, job_id: int, worker_id: str) -> bool:
    """Refresh the job's heartbeat; False if this worker no longer owns it."""
    with write(db):
        cur = db.execute(
            "UPDATE jobs SET heartbeat_at = ? WHERE id = ? AND worker_id = ? AND status = 'running'",
            [now(), job_id, worker_id],
        )
    return cur.rowcount == 1


def progress(
    db: sqlite_utils.Database,
    job_id: int,
    stage: str,
    step: int | None = None,
    total: int | None = None,
    eta_seconds: float | None = None,
    message: str | None = None,
    run_eta_seconds: float | None = None,
    worker_id: str | None = None,
) -> None:
    """Record a running job's stage and progress (only while `worker_id`, when given, still owns it)."""
    with write(db):
        db.execute(
            "UPDATE jobs SET stage = ?, step = ?, total = ?, eta_seconds = ?, message = coalesce(?, message), "
            "run_eta_seconds = ?, heartbeat_at = ? WHERE id = ? AND status = 'running' AND worker_id = coalesce(?, worker_id)",
            [stage, step, total, eta_seconds, message, run_eta_seconds, now(), job_id, worker_id],
        )


def made_progress(db: sqlite_utils.Database, job_id: int, worker_id: str) -> None:
    """The job finished a step worth keeping (a round): its worker's death so far is not a crash loop."""
    with write(db):
        db.execute("UPDATE jobs SET stalls = 0 WHERE id = ? AND worker_id = ? AND status = 'running'",
                   [job_id, worker_id])  # fmt: skip


def owns(db: sqlite_utils.Database, job_id: int, worker_id: str) -> bool:
    """Whether `worker_id` still runs the job (another worker may have taken it over while this one was frozen)."""
    row = db.execute("SELECT worker_id, status FROM jobs WHERE id = ?", [job_id]).fetchone()
    return bool(row) and row[0] == worker_id and row[1] == "running"


def request_cancel(db: sqlite_utils.Database, job_id: int) -> Job:
    """Cancel a queued job at once; ask a running one to stop (its worker notices within seconds)."""
    with write(db):
        db.execute(
            "UPDATE jobs SET status = 'cancelled', finished_at = ? WHERE id = ? AND status = 'queued'", [now(), job_id]
        )
        # a queued training job's run is cancelled with it (no worker will ever touch it)
        db.execute(
            "UPDATE runs SET status = 'cancelled', finished_at = ? WHERE job_id = ? AND status = 'queued'",
            [now(), job_id],
        )
        db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status = 'running'", [job_id])
    dead = dead_workers(db)
    if dead:  # its worker was killed: nobody will notice the request, so cancel it here
        with write(db):
            marks = ",".join("?" * len(dead))
            db.execute(
                f"UPDATE jobs SET status = 'cancelled', finished_at = ? WHERE id = ? AND status = 'running' "
                f"AND worker_id IN ({marks})",
                [now(), job_id, *dead],
            )
            _end_runs_of_ended_jobs(db)
    return get_job(db, job_id)


def cancel_requested(db: sqlite_utils.Database, job_id: int) -> bool:
    row = db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", [job_id]).fetchone()
    return bool(row and row[0])


def finish(
    db: sqlite_utils.Database,
    job_id: int,
    worker_id: str,
    status: str,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> bool:
    """Record the outcome; False if the job was meanwhile reclaimed by another worker."""
    if status not in ("succeeded", "failed", "cancelled"):
        raise StoreError(f"status {status!r} is not final")
    with write(db):
        cur = db.execute(
            "UPDATE jobs SET status = ?, finished_at = ?, result = ?, error = ? WHERE id = ? AND worker_id = ? AND status = 'running'",
            [status, now(), json.dumps(result) if result is not None else None, error, job_id, worker_id],
        )
    return cur.rowcount == 1


def release(db: sqlite_utils.Database, job_id: int, worker_id: str) -> bool:
    """Put a job its worker interrupted (the worker is stopping) back in the queue, as if never claimed by it;
    a training run then resumes from its last finished round. False if the worker no longer owned it."""
    return _requeue(db, job_id, worker_id, "interrupted: its worker stopped; resumes when a worker takes it", True)


def make_way(db: sqlite_utils.Database, job_id: int, worker_id: str) -> bool:
    """Put background work back in the queue because a user's job waits (it is claimed after that job; what it read
    so far is in the worker's feature cache). False if the worker no longer owned it."""
    return _requeue(db, job_id, worker_id, "made way for a job you are waiting for; continues after it", True)


def retry_later(db: sqlite_utils.Database, job_id: int, worker_id: str, message: str) -> bool:
    """Put a job that met a passing failure (e.g. its cluster) back in the queue; unlike `release` the attempt
    counts, so the caller can give up after a few. False if the worker no longer owned it."""
    return _requeue(db, job_id, worker_id, message, False)


def _requeue(db: sqlite_utils.Database, job_id: int, worker_id: str, message: str, undo_attempt: bool) -> bool:
    undo = "attempts = max(0, attempts - 1), stalls = max(0, stalls - 1), " if undo_attempt else ""
    with write(db):
        cur = db.execute(
            f"UPDATE jobs SET status = 'queued', worker_id = NULL, heartbeat_at = NULL, {undo}message = ? "
            "WHERE id = ? AND worker_id = ? AND status = 'running'",
            [message, job_id, worker_id],
        )
    return cur.rowcount == 1


def register_worker(db: sqlite_utils.Database, worker_id: str, pid: int, host: str) -> None:
    t = now()
    with write(db):
        db.execute(
            "INSERT INTO workers (id, pid, host, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
            [worker_id, pid, host, t, t],
        )


def worker_heartbeat(db: sqlite_utils.Database, worker_id: str) -> None:
    with write(db):
        db.execute("UPDATE workers SET heartbeat_at = ? WHERE id = ?", [now(), worker_id])


def unregister_worker(db: sqlite_utils.Database, worker_id: str) -> None:
    with write(db):
        db.execute("DELETE FROM workers WHERE id = ?", [worker_id])


def alive_workers(db: sqlite_utils.Database, within_s: float = 15.0) -> list[dict[str, Any]]:
    """Workers that heartbeated recently."""
    return list(db.query("SELECT * FROM workers WHERE heartbeat_at >= ? ORDER BY started_at", [_ago(within_s)]))
