"""Runs, their rounds and pseudo-labels, model suggestions (predictions) and exported artifacts."""

from __future__ import annotations

import hashlib
import json
from array import array
from typing import Any

import sqlite_utils

from .db import now, write
from .jobs import owns
from .labels import gold_labels
from .models import Job, PseudoLabel, Run
from .projects import StoreError


def create_run(
    db: sqlite_utils.Database,
    project_id: int,
    method: str,
    preset: str,
    config: dict[str, Any],
    seed: int,
    backbone: str,
    prompt_id: int | None,
    job_id: int | None = None,
) -> Run:
    """A run with a snapshot of everything it trains on (gold labels, unlabeled, evaluation and rejected
    example ids), taken in the same transaction as the insert."""
    with write(db):
        snapshot = [list(x) for x in gold_labels(db, project_id)]
        inputs = _inputs(db, project_id, snapshot, prompt_id)
        cur = db.execute(
            "INSERT INTO runs (project_id, job_id, method, preset, config, seed, backbone, prompt_id, gold_snapshot, "
            "inputs, created_at, number) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
            "(SELECT coalesce(max(number), 0) + 1 FROM runs WHERE project_id = ?))",
            [project_id, job_id, method, preset, json.dumps(config), seed, backbone, prompt_id, json.dumps(snapshot),
             json.dumps(inputs), now(), project_id],
        )  # fmt: skip
    return get_run(db, cur.lastrowid)


def _inputs(db: sqlite_utils.Database, project_id: int, gold: list[list[int]], prompt_id: int | None) -> dict[str, Any]:
    """The run's inputs in constant size: examples are never edited, moved between splits or deleted (a whole
    project is), so the unlabeled pool is "pool examples up to id `pool_upto`, less the gold and rejected ones"."""
    ids = lambda sql: [r[0] for r in db.execute(sql, [project_id])]  # noqa: E731
    rejected = ids("SELECT example_id FROM excluded WHERE project_id = ? ORDER BY example_id")
    upto, n = db.execute(
        "SELECT coalesce(max(id), 0), count(*) FROM examples WHERE project_id = ? AND split = 'pool'", [project_id]
    ).fetchone()
    gold_ids = {g for g, _ in gold}
    unlabeled = n - len(gold_ids) - len(set(rejected) - gold_ids)
    evals = ids("SELECT id FROM examples WHERE project_id = ? AND split = 'eval' ORDER BY id")
    h = hashlib.sha256(json.dumps([gold, upto, unlabeled, evals, rejected, prompt_id]).encode()).hexdigest()
    return {"pool_upto": upto, "unlabeled_count": unlabeled, "eval": evals, "rejected": rejected, "sha256": h}


def unlabeled_ids(db: sqlite_utils.Database, run: Run) -> array:
    """The ids of the unlabeled examples the run trains on, in id order (runs that stored the list: that list)."""
    inputs = run.inputs or {}
    if "unlabeled" in inputs:
        return array("q", inputs["unlabeled"])
    skip = {g for g, _ in run.gold_snapshot} | set(inputs["rejected"])
    rows = db.execute("SELECT id FROM examples WHERE project_id = ? AND split = 'pool' AND id <= ? ORDER BY id",
                      [run.project_id, inputs["pool_upto"]])  # fmt: skip
    return array("q", (i for (i,) in rows if i not in skip))


def get_run(db: sqlite_utils.Database, run_id: int) -> Run:
    rows = list(db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
    if not rows:
        raise StoreError(f"no run with id {run_id}")
    return Run.of(rows[0])


def list_runs(db: sqlite_utils.Database, project_id: int, limit: int = 100) -> list[Run]:
    return [
        Run.of(r)
        for r in db.query("SELECT * FROM runs WHERE project_id = ? ORDER BY id DESC LIMIT ?", [project_id, limit])
    ]


def update_run(db: sqlite_utils.Database, run_id: int, owner: tuple[int, str] | None = None, **fields: Any) -> bool:
    """Set a run's fields; with `owner` (job id, worker id) only while that worker still runs the job. False when
    nothing was written."""
    allowed = {"status", "backbone_hash", "head", "metrics", "checkpoint_dir", "finished_at", "job_id"}
    bad = set(fields) - allowed
    if bad:
        raise StoreError(f"cannot update run fields {sorted(bad)}")
    if "metrics" in fields and not isinstance(fields["metrics"], str):
        fields["metrics"] = json.dumps(fields["metrics"])
    sets = ", ".join(f"{k} = ?" for k in fields)
    with write(db):
        if owner is not None and not owns(db, *owner):
            return False
        db.execute(f"UPDATE runs SET {sets} WHERE id = ?", [*fields.values(), run_id])
    return True


def save_round(
    db: sqlite_utils.Database,
    run_id: int,
    round_: int,
    metrics: dict[str, Any],
    table: list[dict[str, Any]],
    owner: tuple[int, str] | None = None,
) -> bool:
    """A round's metrics and its pseudo-label table (`example_id`, `probs`, `label`, `confidence`, `weight`,
    `flipped`), replacing any earlier copy of that round (a resumed run writes it again); with `owner` (job id,
    worker id) only while that worker still runs the job. False when nothing was written."""
    with write(db):
        if owner is not None and not owns(db, *owner):
            return False
        db.execute("DELETE FROM pseudo_labels WHERE run_id = ? AND round = ?", [run_id, round_])
        db.execute(
            "INSERT OR REPLACE INTO rounds (run_id, round, metrics) VALUES (?, ?, ?)",
            [run_id, round_, json.dumps(metrics)],
        )
        db.conn.executemany(
            "INSERT INTO pseudo_labels (run_id, round, example_id, probs, label, confidence, weight, flipped) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    run_id,
                    round_,
                    r["example_id"],
                    json.dumps(r["probs"]),
                    r["label"],
                    r["confidence"],
                    r["weight"],
                    int(r["flipped"]),
                )
                for r in table
            ],
        )
    return True


def keep_round(db: sqlite_utils.Database, run_id: int, round_: int) -> None:
    """The user's choice of the round a finished run keeps (exports and predictions use it from now on)."""
    with write(db):
        row = db.execute("SELECT metrics FROM runs WHERE id = ? AND status = 'succeeded'", [run_id]).fetchone()
        if row is None:
            raise StoreError(f"run {run_id} has not succeeded: it keeps no round yet")
        rec = db.execute("SELECT metrics FROM rounds WHERE run_id = ? AND round = ?", [run_id, round_]).fetchone()
        if rec is None:
            raise StoreError(f"run {run_id} has no round {round_}")
        metrics, chosen = json.loads(row[0] or "{}"), json.loads(rec[0])
        # the temperature was fitted for the round kept before: this one starts uncalibrated
        metrics.update(chosen_round=round_, chosen_because="chosen by you on the Rounds page",
                       gold_accuracy=chosen.get("gold_accuracy"), eval_accuracy=chosen.get("eval_accuracy"),
                       eval_ece=chosen.get("eval_ece"), temperature=1.0, eval_ece_calibrated=None)  # fmt: skip
        db.execute("UPDATE runs SET metrics = ? WHERE id = ?", [json.dumps(metrics), run_id])


def round_numbers(db: sqlite_utils.Database, run_id: int) -> set[int]:
    """The rounds of a run stored so far (0 = the teacher)."""
    return {r[0] for r in db.execute("SELECT round FROM rounds WHERE run_id = ?", [run_id])}


def rounds(db: sqlite_utils.Database, run_id: int) -> list[dict[str, Any]]:
    """Per-round metrics, in order (round 0 is the teacher)."""
    return [
        json.loads(r["metrics"])
        for r in db.query("SELECT metrics FROM rounds WHERE run_id = ? ORDER BY round", [run_id])
    ]


_PL_SORTS = {
    "weight": "p.weight DESC",
    "weight_asc": "p.weight ASC",
    "confidence": "p.confidence DESC",
    "confidence_asc": "p.confidence ASC",
    "example": "p.example_id",
}


def pseudo_labels(
    db: sqlite_utils.Database,
    run_id: int,
    round_: int,
    label: int | None = None,
    flipped: bool | None = None,
    min_confidence: float | None = None,
    max_confidence: float | None = None,
    min_weight: float | None = None,
    sort: str = "weight",
    offset: int = 0,
    limit: int = 50,
) -> list[PseudoLabel]:
    """Filtered, sorted, paged pseudo-labels of a run's round, with the example text and its gold label."""
    sql = (
        "SELECT p.*, e.text, e.text_a, e.text_b, g.label AS gold FROM pseudo_labels p "
        "JOIN examples e ON e.id = p.example_id LEFT JOIN gold g ON g.example_id = p.example_id "
        "WHERE p.run_id = ? AND p.round = ?"
    )
    params: list[Any] = [run_id, round_]
    for cond, value in (
        ("p.label = ?", label),
        ("p.flipped = ?", None if flipped is None else int(flipped)),
        ("p.confidence >= ?", min_confidence),
        ("p.confidence <= ?", max_confidence),
        ("p.weight >= ?", min_weight),
    ):
        if value is not None:
            sql += f" AND {cond}"
            params.append(value)
    if sort not in _PL_SORTS:
        raise StoreError(f"sort={sort!r}: must be one of {sorted(_PL_SORTS)}")
    sql += f" ORDER BY {_PL_SORTS[sort]} NULLS LAST, p.example_id LIMIT ? OFFSET ?"
    return [PseudoLabel.of(r) for r in db.query(sql, params + [limit, offset])]


def count_pseudo_labels(db: sqlite_utils.Database, run_id: int, round_: int) -> int:
    return db.execute("SELECT count(*) FROM pseudo_labels WHERE run_id = ? AND round = ?", [run_id, round_]).fetchone()[
        0
    ]


def _refuse_a_second_active_run(db: sqlite_utils.Database, project_id: int) -> None:
    """One queued or running run per project (a double click must not queue a duplicate)."""
    active = db.execute(
        "SELECT number, id, status FROM runs WHERE project_id = ? AND status IN ('queued', 'running') ORDER BY id "
        "LIMIT 1",
        [project_id],
    ).fetchone()
    if active:
        raise StoreError(f"run {active[0] or active[1]} is already {active[2]} in this project: wait for it, cancel "
                         "it, or ask for a run alongside it")  # fmt: skip


def start_run(
    db: sqlite_utils.Database,
    project_id: int,
    method: str,
    preset: str,
    config: dict[str, Any],
    seed: int,
    alongside: bool = False,
    ray_address: str | None = None,
) -> tuple[Run, Job]:
    """Check the project is ready, then create the run with its input snapshot and enqueue its job, all in one
    transaction (a crash leaves both or neither). One active run per project unless `alongside` (a double click
    must not queue a duplicate). `ray_address`: the cluster that runs the run's pool-wide forward passes. `config` is an already validated TrainConfig dict: storage does not import the
    engine (the app validates with list_core.config, see ui.actions)."""
    from .jobs import enqueue
    from .labels import class_counts
    from .projects import get_project, latest_prompt

    project = get_project(db, project_id)
    with write(db):
        prompt = latest_prompt(db, project_id)
        if prompt is None:
            raise StoreError("write a prompt (template and label words) before training")
        missing = [lab for lab, n in zip(project.labels, class_counts(db, project_id)) if n == 0]
        if missing:
            raise StoreError(f"no gold example for {missing}: label at least one example of each class")
        if not alongside:
            _refuse_a_second_active_run(db, project_id)
        run = create_run(db, project_id, method, preset, config, seed, project.backbone, prompt.id)
        payload = {
            "run_id": run.id,
            **({"ray_address": ray_address.strip()} if ray_address and ray_address.strip() else {}),
        }
        job = enqueue(db, "list_run", payload, project_id=project_id)
        db.execute("UPDATE runs SET job_id = ? WHERE id = ?", [job.id, run.id])
    return get_run(db, run.id), job


def resume_run(db: sqlite_utils.Database, run_id: int, alongside: bool = False) -> tuple[Run, Job]:
    """Queue a failed or cancelled run again under a new job, in one transaction: a run that trains adapters
    continues after its last checkpointed round, on the inputs, settings and seed it started with (so it ends as an
    uninterrupted run would have); others start over. The old job keeps its error. One active run per project
    unless `alongside`."""
    from .jobs import enqueue, get_job

    with write(db):
        run = get_run(db, run_id)
        if run.status not in ("failed", "cancelled"):
            raise StoreError(f"{run.label} is {run.status}: only a failed or cancelled run can be resumed")
        if run.inputs is None:
            raise StoreError(f"{run.label} was started before runs kept a snapshot of their inputs: start a new run")
        if not alongside:
            _refuse_a_second_active_run(db, run.project_id)  # this run is failed or cancelled: not active
        payload = get_job(db, run.job_id).payload if run.job_id else {"run_id": run.id}
        job = enqueue(db, "list_run", payload, project_id=run.project_id)
        db.execute("UPDATE runs SET job_id = ?, status = 'queued', finished_at = NULL WHERE id = ?", [job.id, run.id])
    return get_run(db, run.id), job
