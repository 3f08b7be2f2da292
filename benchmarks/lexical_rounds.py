"""What co-training in the rounds gives: LiST runs with `lexical_rounds`, side by side with the same runs without it.

    python -m list_core.bench --data ../shared/data/mr --k 10 --seeds 1 --methods list --preset fast \\
        --set lexical_rounds=true --trace-test --out RUN.json          # one per set, K and seed
    python -m benchmarks.lexical_rounds --runs RUN.json ... --base benchmarks/results/k10k30_cpu_preset4.json

Printed per set and K, over the seeds both files have: the final accuracy (base -> with it, and on how many seeds
it is better or worse), the accuracy without the final lexical view, the pseudo-labels' accuracy in each round (the
base's last round in brackets), on how many seeds they rise from round 1 to the last, and the seconds per run; then
the mean over the sets. Pool and test labels are read for these measurements only.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.lexical_view import load


def _pl(r: dict) -> list[float]:
    return [100 * x["pseudo_label_accuracy"] for x in r["rounds"]]


def report(runs: list[dict], base: list[dict]) -> list[str]:
    """One line per (K, set), then one per K with the mean over the sets."""
    before = {(r["k"], r["set"], r["seed"]): r for r in base}
    pairs: dict[tuple[int, str], list[tuple[dict, dict]]] = {}
    for r in sorted(runs, key=lambda r: (r["k"], r["set"], r["seed"])):
        if (r["k"], r["set"], r["seed"]) in before:
            pairs.setdefault((r["k"], r["set"]), []).append((before[(r["k"], r["set"], r["seed"])], r))
    lines = []
    for k in sorted({k for k, _ in pairs}):
        means: dict[str, tuple[float, float]] = {}
        for (kk, name), rows in sorted(pairs.items()):
            if kk != k:
                continue
            acc = [(100 * b["accuracy"], 100 * r["accuracy"]) for b, r in rows]
            a0, a1 = np.mean(acc, 0)
            means[name] = (a0, a1)
            better, worse = sum(y > x for x, y in acc), sum(y < x for x, y in acc)
            w0, w1 = (np.mean([100 * x.get("accuracy_without_lexical", x["accuracy"]) for x in side])
                      for side in zip(*rows))  # fmt: skip
            pl = np.mean([_pl(r) for _, r in rows], 0)
            base_last = np.mean([_pl(b)[-1] for b, _ in rows])
            rising = sum(_pl(r)[-1] > _pl(r)[0] for _, r in rows)
            s0, s1 = (np.mean([x["seconds"] for x in side]) for side in zip(*rows))
            lines.append(f"K={k} {name} (seeds {', '.join(str(b['seed']) for b, _ in rows)}): final {a0:.2f} -> {a1:.2f} "
                         f"({better} better, {worse} worse); without the final view {w0:.2f} -> {w1:.2f}; pseudo-label "
                         f"accuracy by round {' -> '.join(f'{x:.2f}' for x in pl)} (base's last {base_last:.2f}), "
                         f"rising on {rising} of {len(rows)} seeds; seconds {s0:.0f} -> {s1:.0f}")  # fmt: skip
        if len(means) > 1:
            m0, m1 = np.mean(list(means.values()), 0)
            lines.append(f"K={k} mean of {', '.join(sorted(means))}: final {m0:.2f} -> {m1:.2f}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.lexical_rounds", description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=Path, nargs="+", required=True, help="bench JSON files of runs with lexical_rounds")
    ap.add_argument("--base", type=Path, nargs="+", required=True, help="bench JSON files of the same runs without it")
    args = ap.parse_args(argv)
    try:
        lines = report(load(args.runs), load(args.base))
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}")
        return 1
    if not lines:
        print("error: no run of --runs has a run of the same set, K and seed in --base")
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
