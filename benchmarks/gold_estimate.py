"""Can the gold labels alone tell a user how good a run is, when the project has no evaluation split?

The natural estimate is a k-fold accuracy on the gold labels of LiST's teacher rule (the fast preset's: the
prompt-aware probe fitted on the top 1, 3 and 6 layers apart, logits averaged, classes balanced, without the pool
self-training, as `list_core.views.choose_layers` scores a view). This compares it, per set, K and seed, with the
test accuracy of the preset's own LiST run of that seed (`--runs`, a results file), on the default backbone's cached
frozen features. Test labels are read for this comparison only.

    python -m benchmarks.gold_estimate ../shared/data mr subj bbc --runs benchmarks/results/k10k30_cpu_preset3.json
"""

from __future__ import annotations

import json
import sys

import numpy as np

from benchmarks.layer_features import ENSEMBLE, VIEWS, ensemble_predict, features, view
from benchmarks.teacher_weights import arguments, gold_split
from list_core import teacher as T

FOLDS = 5


def kfold_estimate(x_gold: np.ndarray, yg: np.ndarray, x_pool: np.ndarray, vs: np.ndarray, seed: int) -> float:
    """Share of the gold labels that the teacher rule, fitted on the other folds (and the whole pool, unlabeled),
    predicts right: stratified `FOLDS`-fold, or plain `FOLDS`-fold where a class has a single gold label.
    `x_gold` (K, L+1, D), `x_pool` (N, L+1, D), `vs` (C, L+1, D): per-layer features (`layer_features`)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    folds = min(FOLDS, int(np.bincount(yg).min()))
    split = StratifiedKFold(folds, shuffle=True, random_state=seed) if folds >= 2 else KFold(FOLDS, shuffle=True,
                                                                                             random_state=seed)  # fmt: skip
    hits = 0
    for train, held in split.split(yg, yg):
        decisions = []
        for name in ENSEMBLE:
            xg, xp, points = view(x_gold, VIEWS[name]), view(x_pool, VIEWS[name]), view(vs, VIEWS[name])
            clf, _ = T.prompt_aware_probe(xg[train], yg[train], xp, vs[:, -1], 5.0, 5, 0, 100.0, seed,
                                          prompt_gold=x_gold[train, -1], prompt_pool=x_pool[:, -1], points=points,
                                          balanced=True)  # fmt: skip
            decisions.append(clf.decision_function(xg[held]))
        hits += int((ensemble_predict(decisions) == yg[held]).sum())
    return hits / len(yg)


def main(argv: list[str] | None = None) -> int:
    args = arguments("gold_estimate", __doc__, argv, runs=True)
    if args.runs is None:
        print("--runs FILE is required: a results file with the LiST runs to compare with", file=sys.stderr)
        return 2
    runs = {(r["set"], r["k"], r["seed"]): r for r in json.loads(args.runs.read_text())["results"]}
    errors: dict[int, list[float]] = {}
    for name in args.sets:
        data, xp_all, _, vs = features(args.data / name, args.cache)
        for k in args.k:
            for seed in args.seeds:
                if (run := runs.get((name, k, seed))) is None:
                    continue
                gi, ui = gold_split(data, k, seed)
                yg = np.array([data.label(data.pool[j]) for j in gi])
                est, test = 100 * kfold_estimate(xp_all[gi], yg, xp_all[ui], vs, seed), 100 * run["accuracy"]
                errors.setdefault(k, []).append(est - test)
                print(f"{name} K={k} seed {seed}: k-fold estimate {est:.1f}, LiST test {test:.1f} ({est - test:+.1f})")
    for k, err in errors.items():
        e = np.array(err)
        print(f"K={k}, {len(e)} runs: estimate - test mean {e.mean():+.1f}, mean |error| {np.abs(e).mean():.1f}, "
              f"max |error| {np.abs(e).max():.1f}, within 5 points {int((np.abs(e) <= 5).sum())} of {len(e)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
