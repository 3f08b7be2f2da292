"""Files of texts to predict, read and written in bounded chunks: CSV, TSV, JSONL and parquet, or a folder of them.

A reader never holds more than one chunk of rows, so a file of millions of texts is predicted in bounded
memory. Unreadable rows (bad encoding, wrong number of fields, invalid JSON, empty text) become problems
that name their file and line; the other rows are kept in input order.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import Row

READABLE = (".csv", ".tsv", ".jsonl", ".ndjson", ".json", ".parquet")


class ColumnError(ValueError):
    """A text column that no row of the file has: one message for the file, not one per row."""


@dataclass
class Chunk:
    """Up to `chunk_size` readable records of one file, their texts as rows, and the problems met on the way."""

    records: list[dict[str, Any]] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def input_files(path: Path) -> list[Path]:
    """`path` itself, or the readable files of a folder (sorted, not recursive)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in READABLE)
        if not files:
            raise FileNotFoundError(f"{path} holds no {', '.join(READABLE)} file")
        return files
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    return [path]


def _kind(path: Path) -> str:
    ext = path.suffix.lower()
    return {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".tsv": "tsv", ".parquet": "parquet"}.get(
        ext, "csv"
    )


def _decoded(path: Path, problems: list[str]) -> Iterator[tuple[int, str]]:
    with path.open("rb") as f:
        for i, raw in enumerate(f, start=1):
            try:
                yield i, raw.decode("utf-8-sig" if i == 1 else "utf-8")
            except UnicodeDecodeError:
                problems.append(f"line {i}: not valid UTF-8")


def _records(path: Path, columns: list[str], problems: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line or row number, record) of every readable record; problems appended as met."""
    kind = _kind(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        f = pq.ParquetFile(path)
        absent = [c for c in columns if c not in f.schema_arrow.names]
        if absent:
            raise ColumnError(f"no column {absent[0]!r} in {path.name} (columns: {', '.join(f.schema_arrow.names)}); "
                              "choose one with --text-column")  # fmt: skip
        n = 0
        for batch in f.iter_batches(batch_size=8192):
            for rec in batch.to_pylist():
                n += 1
                yield n, rec
    elif kind == "jsonl":
        for i, line in _decoded(path, problems):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                problems.append(f"line {i}: invalid JSON ({e.msg})")
                continue
            if not isinstance(obj, dict):
                problems.append(f"line {i}: not a JSON object")
                continue
            yield i, obj
    else:
        where = [0]

        def lines() -> Iterator[str]:  # keeps the line number of the record being read (quoted newlines allowed)
            for i, line in _decoded(path, problems):
                where[0] = i
                yield line

        reader = csv.reader(lines(), delimiter="\t" if kind == "tsv" else ",")
        try:
            header = next(reader)
        except StopIteration:
            problems.append("the file has no readable header")
            return
        absent = [c for c in columns if c not in header]
        if absent:
            raise ColumnError(f"no column {absent[0]!r} in {path.name} (columns: {', '.join(header)}); choose one "
                              "with --text-column")  # fmt: skip
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                problems.append(f"line {where[0]}: {e}")
                continue
            if not fields:
                continue
            if len(fields) != len(header):
                problems.append(f"line {where[0]}: {len(fields)} fields, expected {len(header)}")
                continue
            yield where[0], dict(zip(header, fields))


def read_chunks(
    path: Path, text_column: str, text_b_column: str | None = None, chunk_size: int = 20_000
) -> Iterator[Chunk]:
    """The file's records in chunks of at most `chunk_size` kept rows. Raises ColumnError before the first chunk
    when the header (CSV/TSV/parquet) or every JSON object of the first chunk lacks a text column."""
    columns = [text_column] + ([text_b_column] if text_b_column else [])
    chunk, seen_column, keys, first = Chunk(), False, set(), True
    problems: list[str] = []  # the reader appends as it meets them; each chunk takes those met since the last
    for i, rec in _records(path, columns, problems):
        if first:
            keys.update(rec)
        missing = [c for c in columns if c not in rec]
        if missing:
            problems.append(f"line {i}: no column {missing[0]!r}")
        else:
            seen_column = True
            texts = [str(rec[c]).strip() if rec[c] is not None else "" for c in columns]
            if all(texts):
                chunk.records.append(rec)
                chunk.rows.append({"text_a": texts[0], "text_b": texts[1]} if text_b_column else {"text": texts[0]})
            else:
                problems.append(f"line {i}: empty text")
        if len(chunk.rows) >= chunk_size:
            first = False
            chunk.problems = problems[:]  # the reader keeps appending to `problems` itself
            problems.clear()
            yield chunk
            chunk = Chunk()
    if first and keys and not seen_column:
        raise ColumnError(f"no object in {path.name} has the column(s) {columns} (keys seen: "
                          f"{', '.join(sorted(map(str, keys)))}); choose one with --text-column")  # fmt: skip
    chunk.problems = problems[:]
    yield chunk


class Writer:
    """Appends predicted chunks to a CSV, JSONL or parquet file (by extension), written under a temporary name and
    moved into place by `commit`, so a failed or empty prediction leaves no partial file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.partial")
        self.kind = "jsonl" if path.suffix.lower() in (".jsonl", ".json") else _kind(path)
        self.rows = 0
        self._fields: list[str] | None = None
        self._handle: Any = None
        self._parquet: Any = None

    def write(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        if self._handle is None and self._parquet is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.kind == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            if self._parquet is None:
                table = pa.Table.from_pylist(records)
                self._parquet = pq.ParquetWriter(self.tmp, table.schema)
            else:
                table = _conform(records, self._parquet.schema)
            self._parquet.write_table(table)
        elif self.kind == "jsonl":
            self._handle = self._handle or self.tmp.open("w", encoding="utf-8")
            self._handle.write("".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records))
        else:
            if self._handle is None:
                self._handle = self.tmp.open("w", newline="", encoding="utf-8")
                self._fields = list(records[0])
                self._csv = csv.DictWriter(self._handle, fieldnames=self._fields, extrasaction="ignore",
                                           delimiter="\t" if self.kind == "tsv" else ",")  # fmt: skip
                self._csv.writeheader()
            self._csv.writerows(records)
        self.rows += len(records)

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        if self._parquet is not None:
            self._parquet.close()

    def commit(self) -> Path:
        self._close()
        os.replace(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        self._close()
        self.tmp.unlink(missing_ok=True)


def _conform(records: list[dict[str, Any]], schema: Any) -> Any:
    """A chunk as a table of the merged file's schema (set by its first chunk). Files of a folder may disagree
    (a CSV's ids are text, a JSONL's numbers): values of a text column are written as text; other conflicts are
    refused with the column's name."""
    import pyarrow as pa

    try:
        return pa.Table.from_pylist(records, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    text = {f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)}
    fixed = [{k: (str(v) if k in text and v is not None and not isinstance(v, str) else v) for k, v in r.items()}
             for r in records]  # fmt: skip
    try:
        return pa.Table.from_pylist(fixed, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise ValueError(f"the files' columns disagree in type ({e}); write a CSV or JSONL output, or make the "
                         "input files' columns agree") from None  # fmt: skip
