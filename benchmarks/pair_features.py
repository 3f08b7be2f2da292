"""Pair tasks on a sentence encoder: what the joint pair embedding and the two texts' cosine each carry.

    python -m benchmarks.pair_features ../shared/data rte --k 10 30 --seeds 1 2 3 4 5

On the default backbone's frozen features (pool and test labels read for this analysis only; nothing is chosen by
it), test accuracy per seed of:

- rule: the pair-similarity baseline's rule (`list_core.pair_similarity.cosine_rule`: gold + the pool's cosines);
- joint probe: a logistic regression on the joint pair embedding (the two texts as one tokenizer pair, as the
  similarity head and LiST's teacher read them), gold labels only;
- joint on rule labels: the same fitted to the gold pairs and the pool pairs labeled by the rule;
- joint + cosine on rule labels: the same with the standardised cosine as one more feature.

Whether LiST's students (which read the joint embedding) could learn from the cosine rule's pseudo-labels, or need
a head that reads the two texts apart. Then how sure the fitted rule (`pair_similarity.fit_on_cosines`) is, against
how often it is right: mean confidence and expected calibration error on the test split with the fitted logistic
regression alone (T = 1) and with the temperature the rule fits on the gold pairs. Features are cached in `--cache`
(default /tmp/list_teacher_features).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmarks.teacher_weights import arguments, features, gold_split
from list_core.calibration import expected_calibration_error
from list_core.pair_similarity import apply_rule, cosine_rule, fit_on_cosines
from list_core.teacher import logreg

COLUMNS = ("rule", "joint probe", "joint on rule labels", "joint + cosine on rule labels")


def compare(xg, xp, xt, cg, cp, ct, yg, yt, seed: int = 1) -> dict[str, float]:
    """Test accuracy (%) of each reader (module docstring) from joint features `x*` (N, D) and cosines `c*` (N,)
    of the gold, pool and test pairs."""
    order, thresholds = cosine_rule(cg, yg, cp)
    pseudo = apply_rule(cp, order, thresholds)
    mean, std = float(cp.mean()), float(cp.std() or 1.0)
    with_cos = lambda x, c: np.hstack([x, ((c - mean) / std)[:, None]])  # noqa: E731
    x_rule, y_rule = np.concatenate([xg, xp]), np.concatenate([yg, pseudo])
    preds = {
        "rule": apply_rule(ct, order, thresholds),
        "joint probe": logreg(xg, yg, 100.0, seed).predict(xt),
        "joint on rule labels": logreg(x_rule, y_rule, 100.0, seed).predict(xt),
        "joint + cosine on rule labels": logreg(
            np.concatenate([with_cos(xg, cg), with_cos(xp, cp)]), y_rule, 100.0, seed
        ).predict(with_cos(xt, ct)),
    }
    return {k: 100 * float((v == yt).mean()) for k, v in preds.items()}


def calibration(cg, cp, ct, yg, yt, num_classes: int, seed: int = 1) -> dict[str, float]:
    """Test accuracy, mean confidence and ECE (%) of the fitted rule at T = 1 and at its gold-fitted temperature."""
    rule = fit_on_cosines(cg, yg, cp, num_classes, seed)
    logits = torch.from_numpy(rule.logits(ct))  # (T, C)
    out = {"accuracy": 100 * float((logits.argmax(-1).numpy() == yt).mean()), "T": rule.temperature}
    for name, t in (("T=1", 1.0), ("gold T", rule.temperature)):
        p = (logits / t).softmax(-1)
        out[f"confidence {name}"] = 100 * float(p.max(-1).values.mean())
        out[f"ECE {name}"] = 100 * expected_calibration_error(p, yt.tolist())
    return out


def cosines(root: Path, cache: Path, data) -> tuple[np.ndarray, np.ndarray]:
    """The pool's and the test split's pair cosines (each text embedded alone), cached."""
    path = cache / f"{root.name}_pair_cosines.npz"
    if not path.exists():
        from list_core.backbone import load_backbone
        from list_core.pair_similarity import pair_cosines

        bb = load_backbone(None, device="cpu")
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(path, cp=pair_cosines(bb, [data.row(r) for r in data.pool]),
                 ct=pair_cosines(bb, [data.row(r) for r in data.test]))  # fmt: skip
    z = np.load(path)
    return z["cp"], z["ct"]


def main(argv: list[str] | None = None) -> int:
    args = arguments("pair_features", __doc__, argv)
    for name in args.sets:
        data, x_pool, x_test, _ = features(args.data / name, args.cache)
        c_pool, c_test = cosines(args.data / name, args.cache, data)
        y_pool = np.array([data.label(r) for r in data.pool])
        y_test = np.array([data.label(r) for r in data.test])
        for k in args.k:
            splits = {seed: gold_split(data, k, seed) for seed in args.seeds}  # (gold, unlabeled) pool positions
            rows = {seed: compare(x_pool[g], x_pool[u], x_test, c_pool[g], c_pool[u], c_test, y_pool[g], y_test, seed)
                    for seed, (g, u) in splits.items()}  # fmt: skip
            for seed, row in rows.items():
                print(name, k, seed, {c: round(row[c], 1) for c in COLUMNS})
            print("MEAN", name, f"K={k}", f"seeds {args.seeds}",
                  {c: round(float(np.mean([r[c] for r in rows.values()])), 1) for c in COLUMNS})  # fmt: skip
            cal = {seed: calibration(c_pool[g], c_pool[u], c_test, y_pool[g], y_test, len(data.meta["labels"]), seed)
                   for seed, (g, u) in splits.items()}  # fmt: skip
            for seed, row in cal.items():
                print("calibration", name, k, seed, {c: round(v, 1) for c, v in row.items()})
            print("MEAN calibration", name, f"K={k}", f"seeds {args.seeds}",
                  {c: round(float(np.mean([r[c] for r in cal.values()])), 1) for c in next(iter(cal.values()))})  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
