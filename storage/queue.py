"""Which example to label next (diverse first, then the most uncertain), and pseudo-labels the user rejected."""

from __future__ import annotations

import sqlite_utils

from .db import now, write
from .models import Example

STRATEGIES = ("diverse", "uncertain", "in order")


def set_label_queue(
    db: sqlite_utils.Database, project_id: int, ordered_ids: list[int], strategy: str = "diverse"
) -> None:
    """Replace the project's labeling order (written by the diversity job)."""
    with write(db):
        db.execute("DELETE FROM label_queue WHERE project_id = ?", [project_id])
        db.conn.executemany(
            "INSERT INTO label_queue (project_id, example_id, rank, strategy) VALUES (?, ?, ?, ?)",
            [(project_id, e, r, strategy) for r, e in enumerate(ordered_ids)],
        )


def has_queue(db: sqlite_utils.Database, project_id: int) -> bool:
    return db.execute("SELECT 1 FROM label_queue WHERE project_id = ? LIMIT 1", [project_id]).fetchone() is not None


def next_unlabeled(
    db: sqlite_utils.Database, project_id: int, strategy: str = "diverse", skip: tuple[int, ...] = ()
) -> Example | None:
    """The next example without a gold label (and not skipped), by strategy, falling back to id order."""
    base = (
        "SELECT e.*, NULL AS gold FROM examples e LEFT JOIN gold g ON g.example_id = e.id "
        "{join} WHERE e.project_id = ? AND e.split = 'pool' AND g.example_id IS NULL "
        + (f"AND e.id NOT IN ({','.join('?' * len(skip))}) " if skip else "")
    )
    params = [project_id, *skip]
    if strategy == "uncertain":
        sql = base.format(join="JOIN predictions p ON p.example_id = e.id") + "ORDER BY p.confidence ASC, e.id LIMIT 1"
    elif strategy == "diverse":
        sql = base.format(join="JOIN label_queue q ON q.example_id = e.id") + "ORDER BY q.rank LIMIT 1"
    else:
        sql = base.format(join="") + "ORDER BY e.id LIMIT 1"
    rows = list(db.query(sql, params))
    if not rows and strategy != "in order":
        return next_unlabeled(db, project_id, "in order", skip)
    return Example.of(rows[0]) if rows else None


def exclude(db: sqlite_utils.Database, example_id: int, project_id: int, by: str = "user") -> None:
    """Reject an example's pseudo-label: later runs leave it out of the unlabeled pool."""
    with write(db):
        db.execute(
            "INSERT OR IGNORE INTO excluded (example_id, project_id, at, by) VALUES (?, ?, ?, ?)",
            [example_id, project_id, now(), by],
        )
        db.execute(
            "INSERT INTO label_history (project_id, example_id, old_label, new_label, at, by, reason) "
            "SELECT ?, ?, label, label, ?, ?, 'reject_pseudo' FROM (SELECT (SELECT label FROM gold WHERE example_id = ?) AS label)",
            [project_id, example_id, now(), by, example_id],
        )


def include(db: sqlite_utils.Database, example_id: int) -> None:
    with write(db):
        db.execute("DELETE FROM excluded WHERE example_id = ?", [example_id])


def excluded_ids(db: sqlite_utils.Database, project_id: int) -> set[int]:
    return {r[0] for r in db.execute("SELECT example_id FROM excluded WHERE project_id = ?", [project_id])}
