"""Benchmark scripts: each prints numbers and asserts nothing (BENCHMARKS.md)."""

from __future__ import annotations

import argparse
from pathlib import Path


def data_sets_parser(doc: str) -> argparse.ArgumentParser:
    """The command line of a benchmark over data sets: the folder of data sets, then the sets' names."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("root", type=Path, help="the folder of data sets (../shared/data)")
    ap.add_argument("sets", nargs="+")
    return ap
