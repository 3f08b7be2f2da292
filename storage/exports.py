"""Exports: the gold and pseudo-labeled data as CSV, JSONL or a `datasets` folder, and the record of every
exported adapter (artifacts)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import sqlite_utils

from .db import now, write
from .models import Artifact
from .projects import StoreError, get_project

EXPORT_FORMATS = ("csv", "jsonl", "datasets")


def labeled_rows(
    db: sqlite_utils.Database, project_id: int, run_id: int | None = None, round_: int | None = None
) -> list[dict[str, Any]]:
    """Gold rows (source `gold`), then, for a run's round, pseudo-labeled rows not already gold (source `pseudo`)."""
    project = get_project(db, project_id)
    slots = list(project.slots)
    cols = ", ".join(f"e.{s}" for s in slots)
    out: list[dict[str, Any]] = []
    for r in db.query(
        f"SELECT e.id, {cols}, g.label FROM gold g JOIN examples e ON e.id = g.example_id WHERE g.project_id = ? ORDER BY e.id",
        [project_id],
    ):
        out.append({"id": r["id"], **{s: r[s] for s in slots}, "label": project.labels[r["label"]], "source": "gold",
                    "confidence": None, "weight": None})  # fmt: skip
    if run_id is not None:
        if round_ is None:
            row = db.execute("SELECT max(round) FROM pseudo_labels WHERE run_id = ?", [run_id]).fetchone()
            round_ = row[0]
        for r in db.query(
            f"SELECT e.id, {cols}, p.label, p.confidence, p.weight FROM pseudo_labels p JOIN examples e ON e.id = p.example_id "
            "WHERE p.run_id = ? AND p.round = ? AND p.example_id NOT IN (SELECT example_id FROM gold) ORDER BY e.id",
            [run_id, round_],
        ):
            out.append({"id": r["id"], **{s: r[s] for s in slots}, "label": project.labels[r["label"]], "source": "pseudo",
                        "confidence": r["confidence"], "weight": r["weight"]})  # fmt: skip
    return out


def export_data(
    db: sqlite_utils.Database,
    project_id: int,
    path: str | Path,
    fmt: str,
    run_id: int | None = None,
    round_: int | None = None,
) -> Path:
    """Write the labeled data to `path` (a file for csv/jsonl, a folder for datasets)."""
    if fmt not in EXPORT_FORMATS:
        raise StoreError(f"format {fmt!r} is not one of {EXPORT_FORMATS}")
    rows = labeled_rows(db, project_id, run_id, round_)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["id", "text", "label", "source"])
            w.writeheader()
            w.writerows(rows)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    else:
        from datasets import ClassLabel, Dataset

        labels = get_project(db, project_id).labels
        ds = Dataset.from_list(rows) if rows else Dataset.from_dict({"id": [], "label": []})
        if rows:
            ds = ds.cast_column("label", ClassLabel(names=labels))
        ds.save_to_disk(str(path))
    return path


def add_artifact(
    db: sqlite_utils.Database, project_id: int, run_id: int | None, kind: str, path: str | Path
) -> Artifact:
    """Record an exported file or folder (size and sha256 over its files)."""
    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    h = hashlib.sha256()
    size = 0
    for f in files:
        h.update(str(f.relative_to(p) if p.is_dir() else f.name).encode())
        data = f.read_bytes()
        h.update(data)
        size += len(data)
    with write(db):
        cur = db.execute(
            "INSERT INTO artifacts (project_id, run_id, kind, path, size, sha256, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [project_id, run_id, kind, str(p), size, h.hexdigest(), now()],
        )
    return Artifact.of(next(db.query("SELECT * FROM artifacts WHERE id = ?", [cur.lastrowid])))


def archive(folder: str | Path) -> Path:
    """The zip of an export folder (`<folder>.zip` beside it), made once: again only when a file of the folder is
    newer. A download reads this file when clicked; zipping on every page run took seconds for a folded model."""
    folder = Path(folder)
    target = folder.with_name(folder.name + ".zip")
    newest = max((f.stat().st_mtime for f in folder.rglob("*") if f.is_file()), default=0.0)
    if target.exists() and target.stat().st_mtime >= newest:
        return target
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:  # a half-written zip is never seen
        made = shutil.make_archive(str(Path(tmp) / folder.name), "zip", folder)
        os.replace(made, target)
    return target


def artifacts(db: sqlite_utils.Database, project_id: int) -> list[Artifact]:
    return [
        Artifact.of(r) for r in db.query("SELECT * FROM artifacts WHERE project_id = ? ORDER BY id DESC", [project_id])
    ]
