"""Reading user files (CSV, TSV, JSONL, parquet, a `datasets` folder) into records, with errors that name the
line or the column. Nothing here writes to the database."""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .projects import StoreError

FORMATS = ("csv", "tsv", "jsonl", "parquet", "datasets")


class ImportFileError(StoreError):
    """A file that cannot be imported; the message names the line or column."""


def check_distinct_columns(slots: tuple[str, ...], columns: list[str]) -> None:
    """Each text slot reads its own column: one column for both texts of a pair would make every pair a text and
    itself."""
    dup = next((c for c in columns if columns.count(c) > 1), None)
    if dup is not None:
        raise ImportFileError(f"{' and '.join(slots)} both read column {dup!r}; choose a column for each")


def max_import_bytes() -> int:
    return int(float(os.environ.get("LIST_MAX_IMPORT_MB", "50")) * 2**20)


def upload_limit_mb() -> int:
    """The import limit in whole megabytes (rounded up), for a file uploader to announce and enforce."""
    return max(1, -(-max_import_bytes() // 2**20))


def max_import_rows() -> int:
    """Rows per import: the byte limit alone lets a small compressed file hold millions of rows."""
    return int(os.environ.get("LIST_MAX_IMPORT_ROWS", "1000000"))


def max_text_chars() -> int:
    """Characters in one text, for every format alike (a 10 MB text costs seconds and a GB per tokenization)."""
    return int(os.environ.get("LIST_MAX_TEXT_CHARS", "100000"))


@dataclass
class Table:
    """Records of a file, with the line (or row) number each came from."""

    columns: list[str]
    records: list[dict[str, Any]]
    lines: list[int]


def guess_format(name: str) -> str:
    n = name.lower()
    for ext, fmt in (
        (".csv", "csv"),
        (".tsv", "tsv"),
        (".tab", "tsv"),
        (".jsonl", "jsonl"),
        (".ndjson", "jsonl"),
        (".parquet", "parquet"),
    ):
        if n.endswith(ext):
            return fmt
    if n.endswith(".json"):
        return "jsonl"
    raise ImportFileError(
        f"cannot tell the format of {name!r}: use .csv, .tsv, .jsonl or .parquet, or a datasets folder"
    )


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ImportFileError(
            f"{name}: line {line} is not valid UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start}); save the file as UTF-8"
        ) from None


def _delimited(text: str, name: str, delimiter: str) -> Table:
    # the parser's own field limit (131,072) must not be the rule: over-long texts get the one message for all formats
    csv.field_size_limit(max(csv.field_size_limit(), max_text_chars() + 1, 1 << 20))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError(f"{name} is empty") from None
    header = [h.strip() for h in header]
    if not any(header):
        raise ImportFileError(f"{name}: the first line must be a header with column names")
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise ImportFileError(f"{name}: duplicate column names in the header: {dup}")
    records, lines = [], []
    try:
        for row in reader:
            if not row:  # a truly empty line; whitespace-only text is reported as empty below
                continue
            if len(row) != len(header):
                raise ImportFileError(
                    f"{name}: line {reader.line_num} has {len(row)} fields, expected {len(header)} ({', '.join(header)})"
                )
            records.append(dict(zip(header, row)))
            lines.append(reader.line_num)
    except csv.Error as e:
        raise ImportFileError(f"{name}: line {reader.line_num}: {e}") from None
    return Table(header, records, lines)


def _jsonl(text: str, name: str) -> Table:
    stripped = text.lstrip()
    if stripped.startswith("["):  # a plain JSON array is accepted too
        try:
            items = json.loads(stripped)
        except json.JSONDecodeError as e:
            raise ImportFileError(f"{name}: invalid JSON at line {e.lineno}: {e.msg}") from None
        pairs = list(enumerate(items, start=1))
    else:
        pairs = []
        for i, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                pairs.append((i, json.loads(line)))
            except json.JSONDecodeError as e:
                raise ImportFileError(f"{name}: line {i} is not valid JSON ({e.msg})") from None
    columns: list[str] = []
    for i, item in pairs:
        if not isinstance(item, dict):
            raise ImportFileError(f"{name}: line {i} is not a JSON object")
        columns += [k for k in item if k not in columns]
    return Table(columns, [p[1] for p in pairs], [p[0] for p in pairs])


def _parquet(data: bytes, name: str) -> Table:
    import pyarrow.parquet as pq

    try:
        t = pq.read_table(io.BytesIO(data))
    except Exception as e:  # pyarrow raises several types for a bad file
        raise ImportFileError(f"{name} is not a readable parquet file: {e}") from None
    records = t.to_pylist()
    return Table(t.column_names, records, list(range(1, len(records) + 1)))


def _datasets_folder(path: Path, split: str | None) -> Table:
    from datasets import DatasetDict, load_from_disk

    try:
        ds = load_from_disk(str(path))
    except Exception as e:
        raise ImportFileError(f"{path} is not a datasets folder saved with save_to_disk: {e}") from None
    if isinstance(ds, DatasetDict):
        if split is None:
            split = "train" if "train" in ds else next(iter(ds))
        if split not in ds:
            raise ImportFileError(f"{path}: no split {split!r}; splits are {list(ds)}")
        ds = ds[split]
    records = ds.to_list()
    return Table(list(ds.column_names), records, list(range(1, len(records) + 1)))


def read_table(
    source: str | Path | bytes, name: str | None = None, fmt: str | None = None, split: str | None = None
) -> Table:
    """Parse a file (path or bytes) or a `datasets` folder into a `Table`."""
    if isinstance(source, str | Path) and Path(source).is_dir():
        return _row_limit(_datasets_folder(Path(source), split), Path(source).name)
    if isinstance(source, str | Path):
        path = Path(source)
        name = name or path.name
        if not path.exists():
            raise ImportFileError(f"{path} does not exist")
        size = path.stat().st_size
        if size > max_import_bytes():
            raise _too_big(name, size)
        data = path.read_bytes()
    else:
        data = bytes(source)
        name = name or "upload"
        if len(data) > max_import_bytes():
            raise _too_big(name, len(data))
    fmt = fmt or guess_format(name)
    if fmt == "parquet":
        return _row_limit(_parquet(data, name), name)
    text = _decode(data, name)
    if fmt == "csv":
        return _row_limit(_delimited(text, name, ","), name)
    if fmt == "tsv":
        return _row_limit(_delimited(text, name, "\t"), name)
    if fmt == "jsonl":
        return _row_limit(_jsonl(text, name), name)
    raise ImportFileError(f"format {fmt!r} is not one of {FORMATS}")


def _row_limit(table: Table, name: str) -> Table:
    if len(table.records) > (limit := max_import_rows()):
        raise ImportFileError(f"{name} has {len(table.records):,} rows, over the {limit:,}-row import limit "
                              "(LIST_MAX_IMPORT_ROWS); split the file")  # fmt: skip
    return table


def _too_big(name: str, size: int) -> ImportFileError:
    return ImportFileError(
        f"{name} is {size / 2**20:.1f} MB, over the {max_import_bytes() / 2**20:.0f} MB import limit "
        "(LIST_MAX_IMPORT_MB); split the file, or import it as parquet or a datasets folder from a path"
    )
