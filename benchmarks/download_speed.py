"""Export page downloads: what a page run cost when it zipped an export folder in memory (as it did on every run),
against the zip made once by the export job (`storage.exports.archive`) and only checked afterwards.

    python -m benchmarks.download_speed [--backbone NAME]

A folded export of the backbone (similarity head) is written to a temporary folder. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.download_speed", description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", default=None, help="local folder or hub id (default: the embedded default)")
    args = ap.parse_args(argv)
    from list_core.backbone import load_backbone
    from list_core.config import AdapterConfig
    from list_core.folded import save_folded
    from list_core.model import ListModel
    from list_core.prompts import Prompt
    from storage.exports import archive

    bb = load_backbone(args.backbone, device="cpu")
    prompt = Prompt("{text} It was {mask} .", ("terrible", "great"))
    model = ListModel(bb, prompt, head="similarity", adapter=AdapterConfig(bottleneck=32))
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_folded(model, Path(tmp) / "export-folded", ["negative", "positive"])
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as scratch:  # what every page run did before
            Path(shutil.make_archive(str(Path(scratch) / folder.name), "zip", folder)).read_bytes()
        in_memory = time.perf_counter() - t
        t = time.perf_counter()
        archive(folder)
        first = time.perf_counter() - t
        t = time.perf_counter()
        archive(folder)
        again = time.perf_counter() - t
    print(f"backbone={bb.name} folded export {size / 1e6:.1f} MB")
    print(f"zip in memory on every page run (before): {in_memory:.2f} s per page run")
    print(f"archive() at export (once): {first:.2f} s; on a page run afterwards: {again * 1000:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
