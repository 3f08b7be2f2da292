"""Examples of a project: import with de-duplication (all or nothing), paging in SQL, search."""

from __future__ import annotations

import hashlib
import json
import math
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from .db import now, write
from .importers import ImportFileError, Table, check_distinct_columns, max_text_chars, read_table
from .labels import set_label
from .models import Example
from .mojibake import repair
from .projects import StoreError, get_project


def content_hash(texts: dict[str, str]) -> str:
    """Hash of an example's texts (whitespace-normalised), the de-duplication key within a project."""
    norm = {k: " ".join(str(v).split()) for k, v in sorted(texts.items())}
    return hashlib.sha256(json.dumps(norm, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class ImportReport:
    added: int
    duplicates: int
    labeled: int
    rows: int


def _label_index(value: Any, labels: list[str], line: int, column: str, indices: bool) -> int | None:
    """A label cell as a class index: a label name, or with `indices` a class position (0 = the first label)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        v = value.strip()
        if not v:
            return None
        if v in labels:
            return labels.index(v)
        if indices and v.lstrip("-").isdigit():
            value = int(v)
    if indices and isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(labels):
        return value
    hint = ""
    if not indices and (isinstance(value, int) or (isinstance(value, str) and value.strip().lstrip("-").isdigit())):
        hint = " (if the numbers are class positions, 0 = the first label, import with them as class positions)"
    raise ImportFileError(f"line {line}: {column!r} is {value!r}, which is not one of the labels {labels}{hint}")


def _text(value: Any, line: int, column: str) -> str:
    """A text cell as text; missing and NaN are empty; objects, NUL bytes and over-long texts are refused."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, dict | list):
        kind = "a JSON object" if isinstance(value, dict) else "a list"
        raise ImportFileError(f"line {line}: {column!r} is {kind}, not text")
    text = str(value).strip()
    if "\x00" in text:
        raise ImportFileError(f"line {line}: {column!r} contains a NUL byte; is this a text file?")
    if len(text) > (limit := max_text_chars()):
        raise ImportFileError(f"line {line}: {column!r} has {len(text):,} characters, over the {limit:,}-character "
                              "limit for one text (LIST_MAX_TEXT_CHARS); models read only the first few hundred "
                              "tokens of it anyway")  # fmt: skip
    return text


def import_table(
    db: sqlite_utils.Database,
    project_id: int,
    table: Table,
    mapping: dict[str, str],
    label_column: str | None = None,
    source: str = "import",
    split: str = "pool",
    label_values: str = "names",
    repair_text: bool = False,
) -> ImportReport:
    """Add the table's rows; `mapping` maps the project's slots (`text` or `text_a`/`text_b`) to columns.
    `label_values`: "names" (label cells are label names) or "indices" (class positions, 0 = the first label).
    `repair_text`: texts are stored with mis-decoded characters repaired (`mojibake.repair`: "â€“" -> "–"), so a
    text and its repaired twin are one example.

    Validates everything first, then writes in one transaction: a bad file adds nothing, and nothing in it is
    dropped or changed without an error naming its line (conflicting labels, NaN, objects, NUL bytes...).
    A label for a text already in the project labels that example when it has no gold label yet.
    """
    if label_values not in ("names", "indices"):
        raise ImportFileError(f"label_values={label_values!r}: use 'names' or 'indices'")
    project = get_project(db, project_id)
    missing_slots = [s for s in project.slots if s not in mapping]
    if missing_slots:
        raise ImportFileError(f"choose a column for {missing_slots} (this is a {project.task} project)")
    check_distinct_columns(project.slots, [mapping[s] for s in project.slots])
    wanted = [mapping[s] for s in project.slots] + ([label_column] if label_column else [])
    for col in wanted:
        if col not in table.columns:
            raise ImportFileError(f"column {col!r} not found; the file's columns are {table.columns}")
    if split == "eval" and not label_column:
        raise ImportFileError("an evaluation split needs a label column")
    rows, empty = [], []
    indices = label_values == "indices"
    for rec, line in zip(table.records, table.lines):
        texts = {s: _text(rec.get(mapping[s]), line, mapping[s]) for s in project.slots}
        if repair_text:
            texts = {s: repair(t) for s, t in texts.items()}
        blank = [mapping[s] for s, t in texts.items() if not t]
        if blank:
            empty.append(f"line {line} ({', '.join(blank)})")
            continue
        label = (
            _label_index(rec.get(label_column), project.labels, line, label_column, indices) if label_column else None
        )
        rows.append((texts, label, line))
    if empty:
        more = f" and {len(empty) - 5} more" if len(empty) > 5 else ""
        raise ImportFileError(f"empty text on {', '.join(empty[:5])}{more}; remove or fill these rows")
    if not rows:
        raise ImportFileError("the file has no rows")
    at = now()
    unique: dict[str, tuple[dict[str, str], int | None, int]] = {}
    for texts, label, line in rows:
        h = content_hash(texts)
        first = unique.setdefault(h, (texts, label, line))
        if label is not None and first[1] is None:
            unique[h] = (first[0], label, line)
        elif label is not None and first[1] != label:
            names = project.labels
            raise ImportFileError(f"lines {first[2]} and {line} have the same text with different labels "
                                  f"({names[first[1]]!r} and {names[label]!r}); keep one of them")  # fmt: skip
    added, items = 0, list(unique.items())
    try:
        for s in range(0, len(items), IMPORT_CHUNK):  # short transactions: labelers and the worker get turns
            with write(db):
                if s == 0:  # in the first chunk's transaction, so two imports cannot both pass the check
                    _claim_import(db, project_id, at)
                before = db.conn.total_changes
                db.conn.executemany(  # rows already in the project are skipped by UNIQUE (project_id, hash)
                    "INSERT OR IGNORE INTO examples (project_id, text, text_a, text_b, source, split, eval_label, hash, "
                    "created_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                    [(project_id, t.get("text"), t.get("text_a"), t.get("text_b"), source, label, h, at)
                     for h, (t, label, _) in items[s : s + IMPORT_CHUNK]],
                )  # fmt: skip
                added += db.conn.total_changes - before
        with write(db):  # published all at once: a file is imported whole or not at all
            labeled = _publish(db, project_id, unique, split, source, at)
    except BaseException:
        _drop_pending(db, project_id, at)
        raise
    dup = len(rows) - added
    return ImportReport(added=added, duplicates=dup, labeled=labeled, rows=len(rows))


IMPORT_CHUNK = 20_000  # rows per transaction of an import (about half a second of the write lock)
STALE_IMPORT_S = 600  # pending rows older than this are an import that died (killed mid-way)


def _claim_import(db: sqlite_utils.Database, project_id: int, at: str) -> None:
    """One import at a time per project (pending rows hold their texts' place in the de-duplication); the rows of
    an import that died are cleared. Runs inside the caller's write transaction."""
    newest = db.execute("SELECT max(created_at) FROM examples WHERE project_id = ? AND split = 'pending'",
                        [project_id]).fetchone()[0]  # fmt: skip
    if newest is None:
        return
    if (datetime.fromisoformat(at) - datetime.fromisoformat(newest)).total_seconds() < STALE_IMPORT_S:
        raise ImportFileError("another import into this project is still running; import again when it ends")
    db.execute("DELETE FROM examples WHERE project_id = ? AND split = 'pending'", [project_id])


def _drop_pending(db: sqlite_utils.Database, project_id: int, at: str) -> None:
    with write(db):
        db.execute(
            "DELETE FROM examples WHERE project_id = ? AND split = 'pending' AND created_at = ?", [project_id, at]
        )


def _publish(db: sqlite_utils.Database, project_id: int, unique: dict, split: str, source: str, at: str) -> int:
    """Inside the final transaction: labels for texts the project had, the new rows' gold labels and history,
    then the rows themselves made visible. Returns how many rows came with a label."""
    project = get_project(db, project_id)
    relabel = _labels_for_existing(db, project_id, project.labels, unique, split)
    for example_id, label in relabel:  # texts already in the project, without a gold label so far
        set_label(db, example_id, label, by=source, reason="import")
    mine = "project_id = ? AND split = 'pending' AND created_at = ?"
    if split == "eval":  # labels of an evaluation split live on the example (eval_label)
        labeled = db.execute(f"SELECT count(*) FROM examples WHERE {mine} AND eval_label IS NOT NULL",
                             [project_id, at]).fetchone()[0]  # fmt: skip
        db.execute(f"UPDATE examples SET split = 'eval' WHERE {mine}", [project_id, at])
        return labeled
    db.execute(f"INSERT INTO gold (example_id, project_id, label, updated_at) SELECT id, project_id, eval_label, ? "
               f"FROM examples WHERE {mine} AND eval_label IS NOT NULL", [at, project_id, at])  # fmt: skip
    labeled = db.execute("SELECT changes()").fetchone()[0]
    db.execute("INSERT INTO label_history (project_id, example_id, old_label, new_label, at, by, reason) "
               f"SELECT project_id, id, NULL, eval_label, ?, ?, 'import' FROM examples WHERE {mine} "
               "AND eval_label IS NOT NULL ORDER BY id", [at, source, project_id, at])  # fmt: skip
    db.execute(f"UPDATE examples SET split = 'pool', eval_label = NULL WHERE {mine}", [project_id, at])
    return labeled + len(relabel)


def _labels_for_existing(
    db: sqlite_utils.Database, project_id: int, labels: list[str], unique: dict, split: str
) -> list[tuple[int, int]]:
    """(example id, label) for labeled rows whose text the project already has without a gold label; a different
    gold label already there is an error (an import never overwrites one)."""
    if split != "pool":
        return []
    wanted = {h: (label, line) for h, (_, label, line) in unique.items() if label is not None}
    out = []
    for chunk in (list(wanted)[i : i + 500] for i in range(0, len(wanted), 500)):
        marks = ",".join("?" * len(chunk))
        for example_id, h, gold, ex_split in db.execute(
            f"SELECT e.id, e.hash, g.label, e.split FROM examples e LEFT JOIN gold g ON g.example_id = e.id "
            f"WHERE e.project_id = ? AND e.hash IN ({marks})", [project_id, *chunk]
        ):  # fmt: skip
            label, line = wanted[h]
            if ex_split != "pool" or gold == label:
                continue
            if gold is not None:
                raise ImportFileError(f"line {line}: this text is already labeled {labels[gold]!r} in the project, "
                                      f"not {labels[label]!r}; change it on the Label page if the file is right")  # fmt: skip
            out.append((example_id, label))
    return out


def import_file(
    db: sqlite_utils.Database,
    project_id: int,
    source: str | Path | bytes,
    mapping: dict[str, str],
    name: str | None = None,
    label_column: str | None = None,
    fmt: str | None = None,
    split: str = "pool",
    label_values: str = "names",
) -> ImportReport:
    """Read a file (or `datasets` folder) and import it; see `import_table`."""
    table = read_table(source, name=name, fmt=fmt)
    src = name or (Path(source).name if isinstance(source, str | Path) else "upload")
    return import_table(
        db, project_id, table, mapping, label_column, source=src, split=split, label_values=label_values
    )


def add_examples(
    db: sqlite_utils.Database, project_id: int, rows: list[dict[str, str]], source: str = "api"
) -> ImportReport:
    """Add rows given as dicts of texts (`{"text": ...}` or `{"text_a": ..., "text_b": ...}`)."""
    project = get_project(db, project_id)
    table = Table(list(project.slots), rows, list(range(1, len(rows) + 1)))
    return import_table(db, project_id, table, {s: s for s in project.slots}, source=source)


_SELECT = "SELECT e.*, g.label AS gold FROM examples e LEFT JOIN gold g ON g.example_id = e.id"


def _where(
    project_id: int, split: str, search: str | None, labeled: bool | None, label: int | None
) -> tuple[str, list]:
    sql, params = " WHERE e.project_id = ? AND e.split = ?", [project_id, split]
    if search:
        sql += " AND (e.text LIKE ? OR e.text_a LIKE ? OR e.text_b LIKE ?)"
        params += [f"%{search}%"] * 3
    if labeled is True:
        sql += " AND g.label IS NOT NULL"
    elif labeled is False:
        sql += " AND g.label IS NULL"
    if label is not None:
        sql += " AND g.label = ?"
        params.append(label)
    return sql, params


def page_examples(
    db: sqlite_utils.Database,
    project_id: int,
    offset: int = 0,
    limit: int = 50,
    search: str | None = None,
    labeled: bool | None = None,
    label: int | None = None,
    split: str = "pool",
) -> list[Example]:
    """One page of examples (paging in SQL: fast with 100,000 rows)."""
    where, params = _where(project_id, split, search, labeled, label)
    rows = db.query(_SELECT + where + " ORDER BY e.id LIMIT ? OFFSET ?", params + [limit, offset])
    return [Example.of(r) for r in rows]


def count_examples(
    db: sqlite_utils.Database,
    project_id: int,
    search: str | None = None,
    labeled: bool | None = None,
    label: int | None = None,
    split: str = "pool",
) -> int:
    where, params = _where(project_id, split, search, labeled, label)
    return db.execute(
        "SELECT count(*) FROM examples e LEFT JOIN gold g ON g.example_id = e.id" + where, params
    ).fetchone()[0]


def same_text_pairs(db: sqlite_utils.Database, project_id: int) -> int:
    """Pairs whose two texts are the same (a file imported with one column for both texts, before that was
    refused)."""
    return db.execute("SELECT count(*) FROM examples WHERE project_id = ? AND split IN ('pool', 'eval') "
                      "AND text_a IS NOT NULL AND text_a = text_b", [project_id]).fetchone()[0]  # fmt: skip


def get_example(db: sqlite_utils.Database, example_id: int) -> Example | None:
    rows = list(db.query(_SELECT + " WHERE e.id = ?", [example_id]))
    return Example.of(rows[0]) if rows else None


def all_examples(db: sqlite_utils.Database, project_id: int, split: str = "pool") -> list[Example]:
    """Every example of a split (for the worker; the UI pages instead)."""
    return [
        Example.of(r)
        for r in db.query(_SELECT + " WHERE e.project_id = ? AND e.split = ? ORDER BY e.id", [project_id, split])
    ]


def example_ids(db: sqlite_utils.Database, project_id: int, split: str = "pool") -> array:
    """The ids of a split's examples in id order (8 bytes each, for reading them in chunks: `ExampleRows`)."""
    rows = db.execute("SELECT id FROM examples WHERE project_id = ? AND split = ? ORDER BY id", [project_id, split])
    return array("q", (i for (i,) in rows))


def examples_by_ids(db: sqlite_utils.Database, ids: list[int]) -> list[Example]:
    """The examples with these ids, in the order given (ids no longer in the store are left out)."""
    found: dict[int, Example] = {}
    for s in range(0, len(ids), 900):  # SQLite's limit on bound parameters
        chunk = ids[s : s + 900]
        rows = db.query(_SELECT + f" WHERE e.id IN ({','.join('?' * len(chunk))})", chunk)
        found.update((r["id"], Example.of(r)) for r in rows)
    return [found[i] for i in ids if i in found]


class ExampleRows(Sequence):
    """The texts of the examples with these ids as list_core rows, read from the store a chunk at a time: a run's
    pool of millions of examples is held as its ids (8 bytes each), not as objects (`list_core.pool.RowSource`)."""

    def __init__(self, db: sqlite_utils.Database, ids: Sequence[int], chunk: int = 4096) -> None:
        self.db, self.ids, self.chunk = db, array("q", ids), chunk

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):  # noqa: ANN001 - an int or a slice, as for a list
        if isinstance(i, slice):
            return self.take(range(len(self))[i])
        return self.take([range(len(self))[i]])[0]

    def __iter__(self) -> Iterator[dict[str, str]]:
        for s in range(0, len(self), self.chunk):
            yield from self.take(range(s, min(len(self), s + self.chunk)))

    def take(self, index: Sequence[int]) -> list[dict[str, str]]:
        """The rows at these positions, in this order; an example gone from the store (its project deleted) is an
        error, not a silent gap."""
        want = [self.ids[i] for i in index]
        found: dict[int, dict[str, str]] = {}
        for s in range(0, len(want), 900):  # SQLite's limit on bound parameters
            part = want[s : s + 900]
            rows = self.db.execute(
                f"SELECT id, text, text_a, text_b FROM examples WHERE id IN ({','.join('?' * len(part))})", part
            )
            found.update((i, {"text": t} if t is not None else {"text_a": a or "", "text_b": b or ""})
                         for i, t, a, b in rows)  # fmt: skip
        missing = [i for i in want if i not in found]
        if missing:
            raise StoreError(
                f"{len(missing)} example(s) of this run are no longer in the store (first: id {missing[0]})"
            )
        return [found[i] for i in want]
