"""Batch prediction with an exported adapter.

    python -m list_core.predict --adapter DIR --input data.csv --text-column text --output out.csv
    python -m list_core.predict --adapter DIR --input pairs.jsonl --text-column premise --text-b-column hypothesis --output out.jsonl

Rows that cannot be read (bad encoding, wrong number of fields, invalid JSON, empty text) are reported with
their line numbers on stderr and left out; every other row is predicted (length-sorted batches, CUDA when
present) and written with the predicted label and one probability column per label.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from .data import Row


class ColumnError(ValueError):
    """A text column that no row of the file has: one message for the file, not one per row."""


def read_rows(
    path: Path, text_column: str, text_b_column: str | None
) -> tuple[list[dict[str, Any]], list[Row], list[str]]:
    """(records kept, their texts as rows, problems) — one problem per unreadable line. Raises ColumnError when
    the header (CSV/TSV) or every JSON object lacks a text column."""
    fmt = (
        "jsonl"
        if path.suffix.lower() in (".jsonl", ".ndjson", ".json")
        else "tsv"
        if path.suffix.lower() == ".tsv"
        else "csv"
    )
    problems: list[str] = []
    records: list[tuple[int, dict[str, Any]]] = []
    raw_lines = path.read_bytes().splitlines(keepends=True)
    decoded: list[tuple[int, str]] = []
    for i, raw in enumerate(raw_lines, start=1):
        try:
            decoded.append((i, raw.decode("utf-8-sig" if i == 1 else "utf-8")))
        except UnicodeDecodeError:
            problems.append(f"line {i}: not valid UTF-8")
    if fmt == "jsonl":
        for i, line in decoded:
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
            records.append((i, obj))
    else:
        delim = "\t" if fmt == "tsv" else ","
        where = [0]

        def lines():  # keeps the original line number of the record being read (quoted newlines allowed)
            for i, line in decoded:
                where[0] = i
                yield line

        reader = csv.reader(lines(), delimiter=delim)
        try:
            header = next(reader)
        except StopIteration:
            return [], [], problems + ["the file has no readable header"]
        absent = [c for c in (text_column, text_b_column) if c and c not in header]
        if absent:
            raise ColumnError(f"no column {absent[0]!r} in {path.name} (columns: {', '.join(header)}); choose one "
                              "with --text-column")  # fmt: skip
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                problems.append(f"line {where[0]}: {e}")
                continue
            if not fields:
                continue
            if len(fields) != len(header):
                problems.append(f"line {where[0]}: {len(fields)} fields, expected {len(header)}")
                continue
            records.append((where[0], dict(zip(header, fields))))
    kept, rows = [], []
    cols = [text_column] + ([text_b_column] if text_b_column else [])
    if fmt == "jsonl" and records and not any(all(c in rec for c in cols) for _, rec in records):
        seen = sorted({k for _, rec in records for k in rec})
        raise ColumnError(f"no object in {path.name} has the column(s) {cols} (keys seen: {', '.join(seen)}); "
                          "choose one with --text-column")  # fmt: skip
    for i, rec in records:
        missing = [c for c in cols if c not in rec]
        if missing:
            problems.append(f"line {i}: no column {missing[0]!r}")
            continue
        texts = [str(rec[c]).strip() if rec[c] is not None else "" for c in cols]
        if not all(texts):
            problems.append(f"line {i}: empty text")
            continue
        kept.append(rec)
        rows.append({"text_a": texts[0], "text_b": texts[1]} if text_b_column else {"text": texts[0]})
    return kept, rows, problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m list_core.predict", description=__doc__.split("\n")[0])
    ap.add_argument("--adapter", required=True, help="an exported adapter folder (native or folded)")
    ap.add_argument("--input", required=True, type=Path, help="CSV, TSV or JSONL")
    ap.add_argument("--text-column", default="text")
    ap.add_argument("--text-b-column", default=None, help="second text column, for pair tasks")
    ap.add_argument("--output", required=True, type=Path, help="CSV or JSONL (by extension)")
    ap.add_argument("--backbone", default=None, help="override the backbone recorded in the adapter")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--allow-backbone-mismatch", action="store_true")
    args = ap.parse_args(argv)

    import torch
    from tqdm import tqdm

    from .data import sorted_batches
    from .export import ExportError, load_classifier
    from .folded import load_folded
    from .model import autocast

    if not args.input.exists():
        print(f"error: {args.input} does not exist", file=sys.stderr)
        return 2
    try:  # the file first: a wrong column is reported before the model is loaded
        kept, rows, problems = read_rows(args.input, args.text_column, args.text_b_column)
    except ColumnError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for p in problems:
        print(f"skipped {args.input}: {p}", file=sys.stderr)
    if not rows:
        print(f"error: nothing to predict in {args.input} ({len(problems)} rows skipped); no output written",
              file=sys.stderr)  # fmt: skip
        return 1
    try:
        if (Path(args.adapter) / "model").is_dir():
            clf = load_folded(args.adapter)
        else:
            clf = load_classifier(
                args.adapter, backbone=args.backbone, allow_backbone_mismatch=args.allow_backbone_mismatch
            )
    except (ExportError, OSError) as e:  # a bad adapter folder, or a --backbone that cannot be loaded
        print(f"error: {e}", file=sys.stderr)
        return 2
    model = clf.model
    enc = model.encode(rows)
    probs = torch.zeros((len(rows), model.num_classes))
    from .data import collate

    with torch.no_grad(), tqdm(total=len(rows), desc="predict", unit="row", file=sys.stderr) as bar:
        model.eval()
        for idx in sorted_batches(enc, args.batch_size):
            with autocast(model.device):
                logits = model(**collate(enc, idx, model.pad_id, model.device)).float()
                probs[idx] = (logits / model.temperature).softmax(-1).cpu()
            bar.update(len(idx))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    out_rows = []
    for rec, p in zip(kept, probs.tolist()):
        out_rows.append({**rec, "prediction": clf.labels[max(range(len(p)), key=p.__getitem__)],
                         **{f"p_{lab}": round(x, 6) for lab, x in zip(clf.labels, p)}})  # fmt: skip
    if args.output.suffix.lower() in (".jsonl", ".json"):
        args.output.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out_rows), encoding="utf-8")
    else:
        with args.output.open("w", newline="", encoding="utf-8") as f:
            fields = list(out_rows[0]) if out_rows else [args.text_column, "prediction"]
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(out_rows)
    print(f"predicted {len(out_rows)} rows, skipped {len(problems)}; wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
