"""Model suggestions for examples (from a run or from the prompt alone) and file predictions (rows in their own
table, not in the job row)."""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils

from .db import write
from .models import Job


def save_predictions(
    db: sqlite_utils.Database, project_id: int, run_id: int | None, rows: list[dict[str, Any]]
) -> None:
    """Model suggestions for examples (`example_id`, `probs`), replacing older ones."""
    with write(db):
        db.conn.executemany(
            "INSERT OR REPLACE INTO predictions (project_id, example_id, run_id, probs, label, confidence) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    project_id,
                    r["example_id"],
                    run_id,
                    json.dumps(r["probs"]),
                    int(max(range(len(r["probs"])), key=r["probs"].__getitem__)),
                    max(r["probs"]),
                )
                for r in rows
            ],
        )


PREDICTION_SQL = ("SELECT probs, label, confidence, run_id FROM predictions "
                  "WHERE project_id = (SELECT project_id FROM examples WHERE id = ?1) AND example_id = ?1")  # fmt: skip


def prediction(db: sqlite_utils.Database, example_id: int) -> dict[str, Any] | None:
    """The suggestion for one example, looked up by its (project, example) key: by the example alone SQLite read
    every suggestion of every project, on each Label page run."""
    row = db.execute(PREDICTION_SQL, [example_id]).fetchone()
    return {"probs": json.loads(row[0]), "label": row[1], "confidence": row[2], "run_id": row[3]} if row else None


def enqueue_file_prediction(db: sqlite_utils.Database, project_id: int, run_id: int, rows: list[dict]) -> Job:
    """A prediction job for many rows: the rows go to their own table (`file_predictions`), not the job row."""
    from .jobs import enqueue

    with write(db):
        job = enqueue(db, "predict", {"run_id": run_id, "file_rows": len(rows)}, project_id=project_id)
        db.conn.executemany(
            "INSERT INTO file_predictions (job_id, row, input) VALUES (?, ?, ?)",
            [(job.id, i, json.dumps(r, ensure_ascii=False)) for i, r in enumerate(rows)],
        )
    return job


def file_prediction_inputs(db: sqlite_utils.Database, job_id: int) -> list[dict]:
    return [
        json.loads(r[0])
        for r in db.execute("SELECT input FROM file_predictions WHERE job_id = ? ORDER BY row", [job_id])
    ]


def save_file_predictions(db: sqlite_utils.Database, job_id: int, probs: list[list[float]]) -> None:
    with write(db):
        db.conn.executemany(
            "UPDATE file_predictions SET probs = ? WHERE job_id = ? AND row = ?",
            [(json.dumps(p), job_id, i) for i, p in enumerate(probs)],
        )


def file_predictions(db: sqlite_utils.Database, job_id: int) -> list[tuple[dict, list[float] | None]]:
    """(input row, probabilities or None) of a file prediction job, in row order."""
    return [(json.loads(a), json.loads(b) if b else None) for a, b in
            db.execute("SELECT input, probs FROM file_predictions WHERE job_id = ? ORDER BY row", [job_id])]  # fmt: skip


def has_predictions(db: sqlite_utils.Database, project_id: int) -> bool:
    """Whether the project has model suggestions (from a run, or from the prompt alone)."""
    return db.execute("SELECT 1 FROM predictions WHERE project_id = ? LIMIT 1", [project_id]).fetchone() is not None


def has_run_predictions(db: sqlite_utils.Database, project_id: int) -> bool:
    """Whether a trained run's suggestions exist (then the prompt's own suggestions must not replace them)."""
    row = db.execute("SELECT 1 FROM predictions WHERE project_id = ? AND run_id IS NOT NULL LIMIT 1", [project_id])
    return row.fetchone() is not None
