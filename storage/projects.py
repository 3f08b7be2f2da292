"""Projects and their versioned prompts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import sqlite_utils

from .db import now, write
from .models import BACKGROUND_SQL, Project, PromptVersion


class StoreError(ValueError):
    """Input the store refuses, with a message meant for the user."""


def create_project(
    db: sqlite_utils.Database, name: str, task: str, labels: list[str], backbone: str, target_gold: int = 30
) -> Project:
    """A new project; labels are ordered and unique."""
    name = (name or "").strip()
    if not name:
        raise StoreError("the project needs a name")
    if task not in ("single", "pair"):
        raise StoreError(f"task={task!r}: must be 'single' or 'pair'")
    labels = [str(lab).strip() for lab in labels]
    if len(labels) < 2 or any(not lab for lab in labels):
        raise StoreError(f"a project needs at least two non-empty labels, got {labels}")
    if len(set(labels)) != len(labels):
        raise StoreError(f"duplicate labels in {labels}")
    if db.execute("SELECT 1 FROM projects WHERE name = ?", [name]).fetchone():
        raise StoreError(f"a project named {name!r} already exists")
    with write(db):
        cur = db.execute(
            "INSERT INTO projects (name, task, labels, backbone, target_gold, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            [name, task, json.dumps(labels), backbone, target_gold, now()],
        )
    return get_project(db, cur.lastrowid)


def get_project(db: sqlite_utils.Database, project_id: int) -> Project:
    rows = list(db.query("SELECT * FROM projects WHERE id = ?", [project_id]))
    if not rows:
        raise StoreError(f"no project with id {project_id}")
    return Project.of(rows[0])


def list_projects(db: sqlite_utils.Database) -> list[Project]:
    return [Project.of(r) for r in db.query("SELECT * FROM projects ORDER BY id")]


def features_dir(db: sqlite_utils.Database, project_id: int) -> Path | None:
    """Where the worker keeps a project's frozen features for prompt scoring (`list_core.feature_store`): the folder
    `features/project-<id>` beside the database file (None for an in-memory database); it goes with the project."""
    row = db.execute("PRAGMA database_list").fetchone()  # (seq, name, file) of the main database
    return Path(row[2]).parent / "features" / f"project-{int(project_id)}" if row and row[2] else None


def delete_project(db: sqlite_utils.Database, project_id: int) -> list[str]:
    """Delete a project with its examples, labels, runs and jobs, its runs' folders on disk (checkpoints and
    exports: a folded export is a whole model copy) and its texts' features (`features_dir`); refused while one of
    its jobs is queued or running (a worker would lose it mid-way: cancel those first), except queued background
    work (`BACKGROUND_SQL`: nothing of the user's is lost; it goes with the project). Returns the folders removed."""
    with write(db):
        busy = [r["id"] for r in db.query(
            "SELECT id FROM jobs WHERE project_id = ? AND status IN ('queued', 'running') "
            f"AND NOT (status = 'queued' AND {BACKGROUND_SQL})", [project_id])]  # fmt: skip
        if busy:
            raise StoreError(f"project {project_id} has queued or running jobs {busy}: cancel them first")
        runs = list(db.query("SELECT id, checkpoint_dir FROM runs WHERE project_id = ?", [project_id]))
        db.execute("DELETE FROM projects WHERE id = ?", [project_id])
    removed = []
    for r in runs:  # only a worker's own run folder (runs/run-<id>), never another path a row might hold
        folder = Path(r["checkpoint_dir"] or "")
        if r["checkpoint_dir"] and folder.name == f"run-{r['id']}" and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(str(folder))
    if (features := features_dir(db, project_id)) is not None and features.is_dir():  # its texts' features
        shutil.rmtree(features, ignore_errors=True)
        removed.append(str(features))
    return removed


def save_prompt(
    db: sqlite_utils.Database,
    project_id: int,
    template: str,
    label_words: list[str | list[str]],
    descriptions: list[str] | None = None,
) -> PromptVersion:
    """Store a new prompt version (unchanged prompts are not duplicated). Per class: one label word or a list of
    them, and optionally a description."""
    latest = latest_prompt(db, project_id)
    if latest and latest.same_as(template, label_words, descriptions):
        return latest
    words, desc = PromptVersion.stored_form(label_words, descriptions)
    with write(db):
        version = (latest.version if latest else 0) + 1
        cur = db.execute(
            "INSERT INTO prompts (project_id, version, template, label_words, descriptions, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [project_id, version, template, json.dumps(words), json.dumps(desc) if desc else None, now()],
        )
    return get_prompt(db, cur.lastrowid)


def get_prompt(db: sqlite_utils.Database, prompt_id: int) -> PromptVersion:
    rows = list(db.query("SELECT * FROM prompts WHERE id = ?", [prompt_id]))
    if not rows:
        raise StoreError(f"no prompt with id {prompt_id}")
    return PromptVersion.of(rows[0])


def latest_prompt(db: sqlite_utils.Database, project_id: int) -> PromptVersion | None:
    rows = list(db.query("SELECT * FROM prompts WHERE project_id = ? ORDER BY version DESC LIMIT 1", [project_id]))
    return PromptVersion.of(rows[0]) if rows else None


def prompt_history(db: sqlite_utils.Database, project_id: int) -> list[PromptVersion]:
    return [
        PromptVersion.of(r)
        for r in db.query("SELECT * FROM prompts WHERE project_id = ? ORDER BY version DESC", [project_id])
    ]
