"""LiST against its peers on the same seeds: `python -m benchmarks.paired RESULTS_JSON... [--seeds 1 2 3]`.

With too few seeds for the full protocol, a mean over whichever seeds each method happened to finish compares
different draws of the gold labels. This prints, per K and set, every method's mean over exactly the seeds where
`list` ran, the best peer, and the mean over mr, subj and bbc on the seeds where `list` ran on all three; plus the
pseudo-label accuracy of LiST's first and last round. Method tags in parentheses that name no setting (e.g.
"(seed 2 only)") are dropped: the seed is in each run's record. A peer run with other settings (e.g.
"self-train-probe (feature_layers=3, class_balance=true)") is a peer of its own; `list` with other settings is no peer.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from list_core.bench_report import tagged_runs

SETS = ("mr", "subj", "bbc")


def load(paths: list[str]) -> list[dict]:
    runs = []
    for p in paths:
        f = json.loads(Path(p).read_text())
        # a bench file's runs named as the report names them (its `--set` overrides, a peer's view); merged: as kept
        for r in f["results"] if "merged" in f["args"] else tagged_runs(f):
            tag = re.search(r" \((.*)\)$", r["method"])
            keep = tag is not None and "=" in tag.group(1)
            runs.append({**r, "method": r["method"] if keep else re.sub(r" \(.*\)$", "", r["method"])})
    return runs


def main(argv: list[str]) -> int:
    only: set[int] | None = None  # `--seeds 1 2 3`: compare on these seeds only (peers run on fewer seeds)
    if "--seeds" in argv:
        i = argv.index("--seeds")
        j = next((n for n in range(i + 1, len(argv)) if not argv[n].isdigit()), len(argv))
        only, argv = {int(x) for x in argv[i + 1 : j]}, argv[:i] + argv[j:]
    runs = [r for r in load(argv) if only is None or r["seed"] in only]
    acc: dict[tuple, float] = {}  # (k, set, method, seed) -> accuracy %
    rounds: dict[tuple, list[float]] = {}
    for r in runs:
        acc[(r["k"], r["set"], r["method"], r["seed"])] = 100 * r["accuracy"]
        if r["method"] == "list" and r.get("rounds"):
            rounds[(r["k"], r["set"], r["seed"])] = [100 * x["pseudo_label_accuracy"] for x in r["rounds"]]
    methods = sorted({m for _, _, m, _ in acc})
    for k in sorted({k for k, *_ in acc}):
        print(f"\nK={k}: mean over the seeds where list ran (seeds in brackets)\n")
        print("| set | seeds | list | best peer (which) | list - best peer | every peer |")
        print("|---|---|---|---|---|---|")
        best_of: dict[str, tuple[float, str]] = {}
        for s in SETS:
            seeds = sorted(sd for kk, ss, m, sd in acc if (kk, ss, m) == (k, s, "list"))
            if not seeds:
                continue
            means = {}
            for m in methods:
                xs = [acc.get((k, s, m, sd)) for sd in seeds]
                if all(x is not None for x in xs):
                    means[m] = statistics.mean(xs)
            peers = {m: v for m, v in means.items() if not m.startswith("list")}
            best = max(peers, key=peers.get)
            best_of[s] = (peers[best], best)
            others = ", ".join(f"{m} {v:.1f}" for m, v in sorted(peers.items(), key=lambda kv: -kv[1]))
            print(
                f"| {s} | {seeds} | {means['list']:.1f} | {peers[best]:.1f} ({best}) | {means['list'] - peers[best]:+.1f} "
                f"| {others} |"
            )
        common = None
        for s in SETS:
            seeds = {sd for kk, ss, m, sd in acc if (kk, ss, m) == (k, s, "list")}
            common = seeds if common is None else common & seeds
        if common:
            seeds = sorted(common)
            per_method = defaultdict(list)
            for m in methods:
                xs = [acc.get((k, s, m, sd)) for s in SETS for sd in seeds]
                if all(x is not None for x in xs):
                    per_method[m] = statistics.mean(xs)
            peers = {m: v for m, v in per_method.items() if not m.startswith("list")}
            if "list" in per_method and peers:
                best = max(peers, key=peers.get)
                print(
                    f"\nMean of mr, subj, bbc on seeds {seeds}: list {per_method['list']:.1f}; best single peer "
                    f"{best} {peers[best]:.1f}; difference {per_method['list'] - peers[best]:+.1f} (goal: +3)"
                )
        print(f"\nK={k}: LiST pseudo-label accuracy, round 1 -> last (per seed)\n")
        for s in SETS:
            for sd in sorted(sd for kk, ss, sd in rounds if (kk, ss) == (k, s)):
                xs = rounds[(k, s, sd)]
                print(
                    f"- {s} seed {sd}: {xs[0]:.1f} -> {xs[-1]:.1f} ({'rises' if xs[-1] > xs[0] else 'does not rise'})"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
