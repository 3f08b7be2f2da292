"""What the final classifier's lexical view gives: LiST runs with `lexical_weight`, side by side with the same runs
without it.

    python -m list_core.bench --data ../shared/data/mr --k 30 --seeds 1 --methods list --preset fast \\
        --set lexical_weight=0.5 --trace-test --out RUN.json          # one per set, K and seed
    python -m benchmarks.lexical_view --runs RUN.json ... --base benchmarks/results/k10k30_cpu_preset3.json

A run with a lexical view also records `accuracy_without_lexical` (its own model with the view taken out) and
`accuracy_lexical_alone` (the view alone) on the test split. The view is fitted after the last round and changes
nothing before it, so `accuracy_without_lexical` must equal the `--base` run of the same set, K and seed to the bit
(printed as a check). Printed per set and K: each seed's three accuracies, their means, and the mean over the sets.
Test labels are read for scoring only.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def load(paths: Sequence[Path]) -> list[dict]:
    """Every `list` result of these bench JSON files (with any `--set` tag)."""
    out = []
    for path in paths:
        out += [r for r in json.loads(Path(path).read_text())["results"] if r["method"].split(" (")[0] == "list"]
    return out


def compare(runs: list[dict], base: list[dict]) -> dict[tuple[int, str], dict[str, list[float]]]:
    """{(K, set): {"with": [...], "without": [...], "alone": [...], "base": [...], "seeds": [...]}} in %, by seed."""
    before = {(r["k"], r["set"], r["seed"]): r["accuracy"] for r in base}
    out: dict[tuple[int, str], dict[str, list[float]]] = {}
    for r in sorted(runs, key=lambda r: (r["k"], r["set"], r["seed"])):
        if "accuracy_without_lexical" not in r:
            raise ValueError(f"{r['set']} K={r['k']} seed {r['seed']}: a run without a lexical view")
        row = out.setdefault((r["k"], r["set"]), {"seeds": [], "with": [], "without": [], "alone": [], "base": []})
        row["seeds"].append(r["seed"])
        row["with"].append(100 * r["accuracy"])
        row["without"].append(100 * r["accuracy_without_lexical"])
        row["alone"].append(100 * r["accuracy_lexical_alone"])
        row["base"].append(100 * before[(r["k"], r["set"], r["seed"])] if (r["k"], r["set"], r["seed"]) in before
                           else float("nan"))  # fmt: skip
    return out


def report(table: dict[tuple[int, str], dict[str, list[float]]]) -> list[str]:
    lines = []
    for k in sorted({k for k, _ in table}):
        means = {}
        for (kk, name), row in table.items():
            if kk != k:
                continue
            m = {key: float(np.mean(v)) for key, v in row.items() if key != "seeds"}
            means[name] = m
            same = all(a == b for a, b in zip(row["without"], row["base"]))
            seeds = "; ".join(f"s{s} {w:.2f} / {o:.2f} / {a:.2f}" for s, w, o, a in
                              zip(row["seeds"], row["with"], row["without"], row["alone"]))  # fmt: skip
            lines.append(f"K={k} {name}: with the view {m['with']:.2f}, without {m['without']:.2f} (base run "
                         f"{m['base']:.2f}, {'equal to the bit' if same else 'DIFFERENT'}), the view alone "
                         f"{m['alone']:.2f}; by seed (with / without / alone): {seeds}")  # fmt: skip
        if len(means) > 1:
            avg = {key: float(np.mean([m[key] for m in means.values()])) for key in ("with", "without", "alone")}
            lines.append(f"K={k} mean of {', '.join(sorted(means))}: with the view {avg['with']:.2f}, without "
                         f"{avg['without']:.2f}, the view alone {avg['alone']:.2f}")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.lexical_view", description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=Path, nargs="+", required=True, help="bench JSON files of runs with lexical_weight")
    ap.add_argument("--base", type=Path, nargs="*", default=[], help="bench JSON files of the same runs without it")
    args = ap.parse_args(argv)
    try:
        lines = report(compare(load(args.runs), load(args.base)))
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}")
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
