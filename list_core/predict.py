"""Batch prediction with an exported adapter, in this process or on a Ray cluster.

    python -m list_core.predict --adapter DIR --input data.csv --text-column text --output out.csv
    python -m list_core.predict --adapter DIR --input pairs.jsonl --text-column premise --text-b-column hypothesis --output out.jsonl
    python -m list_core.predict --adapter DIR --input folder/ --output out.parquet --engine ray --address auto

Input: a CSV, TSV, JSONL or parquet file, or a folder of them, read in chunks (bounded memory). Rows that
cannot be read (bad encoding, wrong number of fields, invalid JSON, empty text) are reported with their line
numbers on stderr and left out; every other row is predicted (length-sorted batches, CUDA when present) and
written in input order with its columns, the predicted label and one probability column per label. With
`--shards DIR` (the default for `--engine ray`: OUTPUT's name + `.parts/`) every chunk is also written as a
parquet shard, so a long job's finished part survives an interruption.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from pathlib import Path
from typing import Any

from .tabular import ColumnError, Writer, input_files, read_chunks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m list_core.predict", description=__doc__.split("\n")[0])
    ap.add_argument("--adapter", required=True, help="an exported folder (native, folded, or a pair-similarity rule)")
    ap.add_argument("--input", required=True, type=Path, help="CSV, TSV, JSONL or parquet, or a folder of them")
    ap.add_argument("--text-column", default="text")
    ap.add_argument("--text-b-column", default=None, help="second text column, for pair tasks")
    ap.add_argument("--output", required=True, type=Path, help="CSV, TSV, JSONL or parquet (by extension)")
    ap.add_argument("--backbone", default=None, help="override the backbone recorded in the adapter")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--chunk-size", type=int, default=20_000, help="rows read, predicted and written at a time")
    ap.add_argument("--engine", choices=("local", "ray"), default="local")
    ap.add_argument("--address", default=None, help="Ray cluster: 'local', 'auto', ray://host:port "
                    "(default: $LIST_RAY_ADDRESS, else 'local')")  # fmt: skip
    ap.add_argument("--actors", type=int, default=2, help="Ray actors, each with the model loaded once")
    ap.add_argument("--shards", type=Path, default=None, help="also write each chunk as a parquet shard here")
    ap.add_argument("--allow-backbone-mismatch", action="store_true")
    args = ap.parse_args(argv)
    if args.batch_size < 1 or args.chunk_size < 1 or args.actors < 1:
        print("error: --batch-size, --chunk-size and --actors must be >= 1", file=sys.stderr)
        return 2
    try:  # the files first: a wrong column is reported before the model is loaded
        files = input_files(args.input)
        chunks = _chunks(files, args)
        first = next(chunks)
    except (ColumnError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    from .distributed import DistributedError
    from .export import ExportError, load_classifier
    from .folded import load_folded

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
    scorer = _scorer(args)
    if scorer is None:
        return 2
    shards = args.shards or (args.output.with_name(args.output.name + ".parts") if args.engine == "ray" else None)
    out, skipped, n = Writer(args.output), 0, 0
    try:
        for part, (name, chunk) in enumerate(itertools.chain([first], chunks)):
            for p in chunk.problems:
                print(f"skipped {name}: {p}", file=sys.stderr)
            skipped += len(chunk.problems)
            if not chunk.rows:
                continue
            records = _predict(clf, scorer, chunk, args.batch_size, name if len(files) > 1 else None)
            out.write(records)
            if shards is not None:
                shard = Writer(shards / f"part-{part:05d}.parquet")
                shard.write(records)
                shard.commit()
            n += len(records)
            print(f"predicted {n} rows", file=sys.stderr)
    except (ColumnError, OSError, ValueError, DistributedError) as e:  # a later file's column, an unwritable output
        out.discard()
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BaseException:
        out.discard()
        raise
    if not n:
        out.discard()
        print(f"error: nothing to predict in {args.input} ({skipped} rows skipped); no output written",
              file=sys.stderr)  # fmt: skip
        return 1
    out.commit()
    print(f"predicted {n} rows, skipped {skipped}; wrote {args.output}" + (f" and shards in {shards}" if shards else ""),
          file=sys.stderr)  # fmt: skip
    return 0


def _chunks(files: list[Path], args: argparse.Namespace):
    for f in files:
        for chunk in read_chunks(f, args.text_column, args.text_b_column, args.chunk_size):
            yield f.name, chunk


def _scorer(args: argparse.Namespace):
    from .distributed import DistributedError, LocalScorer, shared_scorer

    if args.engine == "local":
        return LocalScorer()
    try:
        return shared_scorer(args.address or os.environ.get("LIST_RAY_ADDRESS") or "local", args.actors)
    except (DistributedError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return None


def _predict(clf, scorer, chunk, batch_size: int, source: str | None) -> list[dict[str, Any]]:
    """The chunk's records with the prediction and one probability column per label."""
    from .model import ListModel

    model = clf.model
    if isinstance(model, ListModel):
        probs = (scorer.logits(model, model.encode(chunk.rows), batch_size) / model.temperature).softmax(-1).tolist()
    else:  # a pair-similarity rule: two frozen passes and a cosine, in this process
        probs = clf.predict_proba(chunk.rows, batch_size).tolist()
    extra = {"source": source} if source else {}
    return [{**rec, **extra, "prediction": clf.labels[max(range(len(p)), key=p.__getitem__)],
             **{f"p_{lab}": round(x, 6) for lab, x in zip(clf.labels, p)}}
            for rec, p in zip(chunk.records, probs)]  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
