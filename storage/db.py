"""The SQLite connection: WAL, busy timeout, foreign keys, schema migrations, and IMMEDIATE write transactions."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from .schema import migrations

BUSY_TIMEOUT_MS = 30_000
DEFAULT_DB = "data/list_studio.db"


def db_path(path: str | os.PathLike | None = None) -> Path:
    """The database file: explicit path, else `$LIST_DB`, else `data/list_studio.db`."""
    return Path(path or os.environ.get("LIST_DB") or DEFAULT_DB)


def now() -> str:
    """UTC timestamp with microseconds, sortable as text."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def connect(
    path: str | os.PathLike | None = None, busy_timeout_ms: int = BUSY_TIMEOUT_MS, write_wait_s: float = 0.0
) -> sqlite_utils.Database:
    """Open (creating if needed) the database and bring its schema up to date. A write waits `busy_timeout_ms`
    for the lock, then fails ("database is locked"); with `write_wait_s` (the worker's connections) it keeps
    trying that long, so a long import in the UI delays a training job instead of killing it."""
    p = db_path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(p), timeout=busy_timeout_ms / 1000, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    db = sqlite_utils.Database(conn)
    db.write_wait_s = write_wait_s
    if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        for _ in range(50):  # another process may be switching it at the same moment
            try:
                db.enable_wal()
                break
            except sqlite3.OperationalError:
                time.sleep(0.1)
    db.execute("PRAGMA synchronous = NORMAL")
    _migrate(db)  # with foreign keys off, as SQLite advises for schema changes (m007 rebuilds a table)
    db.execute("PRAGMA foreign_keys = ON")
    return db


def _migrate(db: sqlite_utils.Database) -> None:
    """Apply pending migrations; when two processes race, the loser sees them applied and carries on."""
    for attempt in range(20):
        try:
            migrations.apply(db)
            return
        except sqlite3.OperationalError as e:
            if not migrations.pending(db):
                return
            if attempt == 19:
                raise RuntimeError(f"could not migrate the database: {e}") from e
            time.sleep(0.1 * (attempt + 1))


@contextlib.contextmanager
def write(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """One write transaction, taking the write lock up front (`BEGIN IMMEDIATE`) so it never fails mid-way
    with "database is locked" when a reader tries to upgrade; nested calls become savepoints."""
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    deadline = time.monotonic() + getattr(db, "write_wait_s", 0.0)
    while True:
        try:
            db.conn.execute("BEGIN IMMEDIATE")  # waits the busy timeout for the lock, then raises
            break
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
    try:
        yield db
    except BaseException:
        db.rollback()
        raise
    else:
        db.conn.execute("COMMIT")
