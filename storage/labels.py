"""Gold labels with a full history: every change is an event (old -> new, when, by whom) and can be undone."""

from __future__ import annotations

import sqlite_utils

from .db import now, write
from .models import LabelEvent
from .projects import StoreError, get_project


class LabelConflict(StoreError):
    """The label changed since the caller saw it (another session labeled the example meanwhile)."""


def set_label(
    db: sqlite_utils.Database,
    example_id: int,
    label: int | None,
    by: str = "user",
    reason: str = "label",
    undoes: int | None = None,
    expect: int | None | object = ...,
) -> LabelEvent | None:
    """Give (or with `None`, remove) an example's gold label, recording the change. No-op if unchanged.
    `expect`: the label the caller saw (None: unlabeled); if someone changed it since, `LabelConflict` is raised
    and nothing is written, so a label is never silently written over another user's newer one."""
    with write(db):
        row = db.execute("SELECT project_id, split FROM examples WHERE id = ?", [example_id]).fetchone()
        if row is None:
            raise StoreError(f"no example with id {example_id}")
        project_id, split = row
        if label is not None:
            n = len(get_project(db, project_id).labels)
            if not (isinstance(label, int) and 0 <= label < n):
                raise StoreError(f"label {label!r} is not a class index of this project (0..{n - 1})")
            if split != "pool":
                raise StoreError("examples of the evaluation split cannot be gold labels")
        old = db.execute("SELECT label FROM gold WHERE example_id = ?", [example_id]).fetchone()
        old_label = old[0] if old else None
        if old_label == label:
            return None
        if expect is not ... and old_label != expect:
            who = db.execute("SELECT by FROM label_history WHERE example_id = ? ORDER BY id DESC LIMIT 1",
                             [example_id]).fetchone()  # fmt: skip
            raise LabelConflict(f"example {example_id} was labeled meanwhile" + (f" by {who[0]}" if who else "")
                                + "; its label was left as it is")  # fmt: skip
        at = now()
        if label is None:
            db.execute("DELETE FROM gold WHERE example_id = ?", [example_id])
        else:
            db.execute(
                "INSERT INTO gold (example_id, project_id, label, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(example_id) DO UPDATE SET label = excluded.label, updated_at = excluded.updated_at",
                [example_id, project_id, label, at],
            )
        cur = db.execute(
            "INSERT INTO label_history (project_id, example_id, old_label, new_label, at, by, reason, undoes) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [project_id, example_id, old_label, label, at, by, reason, undoes],
        )
    return LabelEvent(cur.lastrowid, example_id, old_label, label, at, by, reason)


def undo_last(db: sqlite_utils.Database, project_id: int, by: str = "user") -> LabelEvent | None:
    """Revert `by`'s most recent label change in the project that was not itself undone (never another user's).
    A label that someone else changed since is left alone: StoreError says so, and that undo is used up."""
    rows = list(
        db.query(
            "SELECT * FROM label_history h WHERE project_id = ? AND by = ? AND undoes IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM label_history u WHERE u.undoes = h.id) ORDER BY id DESC LIMIT 1",
            [project_id, by],
        )
    )
    if not rows:
        return None
    ev = LabelEvent.of(rows[0])
    with write(db):
        current = db.execute("SELECT label FROM gold WHERE example_id = ?", [ev.example_id]).fetchone()
        current = current[0] if current else None
        if current == ev.new_label:
            return set_label(db, ev.example_id, ev.old_label, by=by, reason="undo", undoes=ev.id)
        # already back where it was (nothing to do), or changed since by someone else: mark it undone, change nothing
        db.execute(
            "INSERT INTO label_history (project_id, example_id, old_label, new_label, at, by, reason, undoes) "
            "VALUES (?, ?, ?, ?, ?, ?, 'undo', ?)",
            [project_id, ev.example_id, current, current, now(), by, ev.id],
        )
        who = db.execute(
            "SELECT by FROM label_history WHERE example_id = ? AND id > ? AND by != ? AND reason != 'undo' "
            "ORDER BY id DESC LIMIT 1",
            [ev.example_id, ev.id, by],
        ).fetchone()
    if current != ev.old_label:
        raise StoreError(
            f"not undone: the label of example {ev.example_id} was changed since"
            + (f" by {who[0]}" if who else "") + "; it stays as it is"
        )  # fmt: skip
    return None


def history(
    db: sqlite_utils.Database, project_id: int, example_id: int | None = None, limit: int = 200
) -> list[LabelEvent]:
    sql = "SELECT * FROM label_history WHERE project_id = ?" + (" AND example_id = ?" if example_id else "")
    params = [project_id] + ([example_id] if example_id else [])
    return [LabelEvent.of(r) for r in db.query(sql + " ORDER BY id DESC LIMIT ?", params + [limit])]


def gold_labels(db: sqlite_utils.Database, project_id: int) -> list[tuple[int, int]]:
    """(example_id, label) of every current gold label, by example id."""
    return [
        tuple(r)
        for r in db.execute("SELECT example_id, label FROM gold WHERE project_id = ? ORDER BY example_id", [project_id])
    ]


def class_counts(db: sqlite_utils.Database, project_id: int) -> list[int]:
    """Gold examples per class, in label order."""
    n = len(get_project(db, project_id).labels)
    counts = [0] * n
    for label, c in db.execute("SELECT label, count(*) FROM gold WHERE project_id = ? GROUP BY label", [project_id]):
        if 0 <= label < n:
            counts[label] = c
    return counts
