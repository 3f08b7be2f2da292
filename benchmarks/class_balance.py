"""Does giving every class the same total weight (`TrainConfig.class_balance`) help LiST's teacher, and its peers?

    python -m benchmarks.class_balance ../shared/data mr subj bbc --k 10 30 --seeds 1 2 3 4 5 [--swap-prompt]

The few-shot files draw K gold examples at random (K in total, not per class), so a seed's gold labels can be 3 to 7
on mr at K=10, and the self-training's median rule keeps the class ratio the classifier already predicts. Both
tilt a logistic regression towards a class. On frozen features (`benchmarks.layer_features`' cache), for each set,
K and seed, with and without `balanced` (`list_core.teacher.logreg`):

- teacher last / teacher top 3: LiST's prompt-aware probe (`teacher.prompt_aware_probe`, the zero-shot prompt read
  on the last layer) on the last layer, and on the top 3 layers' view (`feature_layers=3`);
- self-train-probe / prompt-prior-probe: those peers' rules on the last layer (as the `list_core.bench` peers run).

Each row prints the mean accuracy over the seeds, each seed's, and the mean share of the test texts given the most
predicted class (a balanced test set is near 1/C). `--swap-prompt` gives each class the next class's verbaliser (a
user's slip). Test labels are read for scoring only; nothing here chooses a setting for a run.
"""

from __future__ import annotations

import numpy as np

from list_core import teacher as T

from .layer_features import features, view
from .teacher_weights import arguments, gold_split

TOP3 = (4, 5, 6)


def fits(xg, yg, xp, vs, seed: int, balanced: bool) -> dict[str, tuple[object, tuple[int, ...]]]:
    """The four classifiers of one seed, each with the layers it reads: (N, L+1, D) gold and pool features,
    (C, L+1, D) verbaliser features."""
    last = vs[:, -1]
    out = {}
    for name, layers in (("teacher last", (6,)), ("teacher top 3", TOP3)):
        clf, _ = T.prompt_aware_probe(view(xg, layers), yg, view(xp, layers), last, 5.0, 5, 3, 100.0, seed,
                                      prompt_gold=xg[:, -1], prompt_pool=xp[:, -1], points=view(vs, layers),
                                      balanced=balanced)  # fmt: skip
        out[name] = (clf, layers)
    out["self-train-probe"] = (T.self_train_logreg(xg[:, -1], yg, xp[:, -1], 100.0, 3, seed, balanced), (6,))
    out["prompt-prior-probe"] = (T.prompt_prior_logreg(xg[:, -1], yg, xp[:, -1], last, 100.0, 3, seed, balanced), (6,))
    return out


def main(argv: list[str] | None = None) -> int:
    args = arguments("class_balance", __doc__, argv, swap_prompt=True)
    for name in args.sets:
        data, xp_all, xt_all, vs = features(args.data / name, args.cache)
        if args.swap_prompt:
            vs = np.roll(vs, 1, axis=0)
        yt = np.array([data.label(r) for r in data.test])
        for k in args.k:
            acc: dict[str, list[float]] = {}
            share: dict[str, list[float]] = {}
            for seed in args.seeds:
                gi, ui = gold_split(data, k, seed)
                yg = np.array([data.label(data.pool[i]) for i in gi])
                for balanced in (False, True):
                    for method, (clf, layers) in fits(xp_all[gi], yg, xp_all[ui], vs, seed, balanced).items():
                        pred = clf.predict(view(xt_all, layers))
                        key = f"{method}{' balanced' if balanced else ''}"
                        acc.setdefault(key, []).append(100 * float((pred == yt).mean()))
                        share.setdefault(key, []).append(float(np.bincount(pred).max() / len(pred)))
            tag = " (swapped prompt)" if args.swap_prompt else ""
            for key, vals in acc.items():
                print(f"{name} K={k}{tag} {key}: {np.mean(vals):.2f} (seeds {' '.join(f'{v:.1f}' for v in vals)}; "
                      f"largest predicted class {np.mean(share[key]):.3f})", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
