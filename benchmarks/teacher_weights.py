"""How much should the prompt weigh in the teacher? Teacher-only accuracy under several prompt-weighting rules.

    python -m benchmarks.teacher_weights ../shared/data mr subj --k 10 30 --seeds 1 2 3 4 5 [--swap-prompt]

The prompt-aware teacher (`list_core.teacher.prompt_aware_probe`: gold + verbaliser points + the zero-shot
prompt's confident pseudo-labels worth `w` gold examples, then 3 rounds of self-training) is fitted on frozen
default-backbone features with `w` chosen by each rule, and scored on the test split (for this analysis only):

- evidence: LiST's rule, w = prompt_weight (5) x P(prompt accuracy > chance | its hits on the gold labels), and
  nothing from a prompt that looks wrong (`teacher.prompt_looks_wrong`: that probability at most 0.1);
- no gate: the same without that last clause (LiST's rule until 2026-12-02);
- cv: the w of a grid (0 ... 80) with the best stratified 5-fold accuracy on the gold labels (ties: nearest to
  the evidence rule's), a choice made on gold labels only;
- w20, w80: fixed large weights (the prompt dominates);
- relative: the prompt against the gold labels' own probe, w = evidence x (5 + 75 x P(the prompt is right more often
  than a leave-one-out logistic regression on the gold labels | the gold examples where exactly one of them is
  right)), a paired sign test with a uniform prior: from 5 x evidence (the probe wins) to 80 x evidence;
- silhouette, confidence: of the three teachers evidence, w20 and w80, the one whose pool predictions fit the pool's
  own structure best (no label read): the highest mean silhouette (cosine) of its predicted classes, or the highest
  mean confidence, on 2,000 pool texts (the cluster assumption: a good boundary runs between clusters);
- scaled silhouette: the silhouette choice among the prompt worth 1, 4 and 16 times the evidence rule's weight
  (so a prompt at chance on the gold labels stays ignored);
- points x evidence: each verbaliser point weighted by the evidence itself, however high;
- prompt-prior: the prompt-first peer's rule (`teacher.prompt_prior_logreg`: the prompt's confident pool labels at
  full weight, whatever its gold accuracy), for comparison.

With `--swap-prompt` every class gets the next class's verbaliser (label words mixed up, a user's mistake): a rule
that trusts the prompt should lose little more than the prompt is worth.

Features are cached per set in `--cache` (default /tmp/list_teacher_features).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from list_core import teacher as T

GRID = (0.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0)


def features(root: Path, cache: Path):
    """(data, pool features, test features, verbaliser prototypes) of a data folder, cached."""
    from list_core.bench import load_data

    data = load_data(root)
    path = cache / f"{root.name}.npz"
    if not path.exists():
        from list_core.backbone import load_backbone
        from list_core.baselines import embed
        from list_core.model import ListModel

        prompt = data.prompt()
        bb = load_backbone(None, device="cpu")
        xp = embed(bb, prompt, [data.row(r) for r in data.pool], 128, 64)
        xt = embed(bb, prompt, [data.row(r) for r in data.test], 128, 64)
        protos = ListModel(bb, prompt, head="similarity", adapter=None, max_length=128).verbaliser_prototypes()
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(path, xp=xp, xt=xt, protos=protos.cpu().numpy())
    z = np.load(path)
    return data, z["xp"], z["xt"], z["protos"]


def fixed_weight_teacher(xg, yg, xp, protos, w: float, iterations: int = 3, seed: int = 1, vp: int = 5,
                         point_weight: float = 1.0):  # fmt: skip
    """`T.prompt_aware_probe` with the prompt's weight `w` given instead of derived from the evidence."""
    return T.prompt_weighted_probe(xg, yg, xp, protos, w, vp, iterations, 100.0, seed, point_weight)


def cv_weight(xg, yg, xp, protos, default: float, seed: int = 1, folds: int = 5) -> float:
    """The grid weight with the best cross-validated gold accuracy of the teacher before self-training."""
    from sklearn.model_selection import StratifiedKFold

    k = min(folds, int(np.bincount(yg).min()))
    if k < 2:
        return default
    acc = {}
    for w in GRID:
        hits = 0
        for tr, te in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(xg, yg):
            hits += int((fixed_weight_teacher(xg[tr], yg[tr], xp, protos, w, 0, seed).predict(xg[te]) == yg[te]).sum())
        acc[w] = hits / len(yg)
    best = max(acc.values())
    return min((w for w in GRID if acc[w] == best), key=lambda w: abs(np.log1p(w) - np.log1p(default)))


def loo_probe_predictions(xg: np.ndarray, yg: np.ndarray, seed: int = 1) -> np.ndarray:
    """Each gold example predicted by a logistic regression (C=100) on the other gold examples: (K,); -1 where
    leaving it out leaves a class without examples."""
    pred = np.full(len(yg), -1)
    for i in range(len(yg)):
        rest = np.arange(len(yg)) != i
        if len(np.unique(yg[rest])) == len(np.unique(yg)):
            pred[i] = T.logreg(xg[rest], yg[rest], 100.0, seed).predict(xg[i : i + 1])[0]
    return pred


def relative_weight(xg, yg, protos, evidence: float, seed: int = 1) -> float:
    """The 'relative' rule (module docstring): the prompt's weight from a paired sign test of its gold hits
    against the leave-one-out gold probe's."""
    p = protos / np.linalg.norm(protos, axis=1, keepdims=True)
    prompt_right = T.zero_shot_scores(xg, p).argmax(1) == yg
    probe_right = loo_probe_predictions(xg, yg, seed) == yg
    wins, losses = int((prompt_right & ~probe_right).sum()), int((~prompt_right & probe_right).sum())
    # P(q > 1/2) for q ~ Beta(wins + 1, losses + 1): prompt_evidence with two classes
    return evidence * (5.0 + 75.0 * T.prompt_evidence(wins, wins + losses, 2))


def pool_fit(clf, xp: np.ndarray, seed: int = 1, n: int = 2000) -> dict[str, float]:
    """How well a teacher's pool predictions fit the pool's structure, read without labels: the mean cosine
    silhouette of its predicted classes and its mean confidence, on up to `n` pool texts (-1: one class only)."""
    from sklearn.metrics import silhouette_score

    sub = np.random.default_rng(seed).choice(len(xp), min(n, len(xp)), replace=False)
    proba = clf.predict_proba(xp[sub])  # (n, C)
    pred = proba.argmax(1)
    sil = silhouette_score(xp[sub], pred, metric="cosine") if len(np.unique(pred)) > 1 else -1.0
    return {"silhouette": float(sil), "confidence": float(proba.max(1).mean())}


def arguments(module: str, doc: str, argv: list[str] | None, swap_prompt: bool = False,
              levers: tuple[str, ...] = (), balanced: bool = False, runs: bool = False) -> argparse.Namespace:  # fmt: skip
    """The command line shared by the frozen-feature analyses: DATA SETS... --k --seeds --cache."""
    ap = argparse.ArgumentParser(prog=f"python -m benchmarks.{module}", description=doc.split("\n")[0])
    ap.add_argument("data", type=Path, help="the folder holding the sets")
    ap.add_argument("sets", nargs="+")
    ap.add_argument("--k", type=int, nargs="+", default=[10, 30])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/list_teacher_features"))
    if levers:
        ap.add_argument("--levers", nargs="+", choices=levers, default=list(levers), help="which levers (default: all)")
    if balanced:
        ap.add_argument("--balanced", action="store_true", help="every logistic regression weighs the classes alike "
                        "(`class_balance`, as the fast preset's teacher)")  # fmt: skip
    if swap_prompt:
        ap.add_argument("--swap-prompt", action="store_true", help="give every class the next class's verbaliser")
    if runs:
        ap.add_argument("--runs", type=Path, help="a results file with the LiST runs to compare with (required)")
    return ap.parse_args(argv)


def gold_split(data, k: int, seed: int) -> tuple[list[int], list[int]]:
    """Pool positions of the K gold examples of a seed, and of the rest (the unlabeled pool)."""
    gold = set(data.gold_ids(k, seed))
    ids = [r["id"] for r in data.pool]
    return [i for i, x in enumerate(ids) if x in gold], [i for i, x in enumerate(ids) if x not in gold]


def main(argv: list[str] | None = None) -> int:
    args = arguments("teacher_weights", __doc__, argv, swap_prompt=True)
    rules = ("evidence", "no gate", "points x evidence", "cv", "w20", "w80", "relative", "silhouette",
             "confidence", "scaled", "prompt-prior")  # fmt: skip
    for name in args.sets:
        data, xp_all, xt, protos = features(args.data / name, args.cache)
        if args.swap_prompt:
            protos = np.roll(protos, 1, axis=0)
        yt = np.array([data.label(r) for r in data.test])
        for k in args.k:
            rows = []
            for seed in args.seeds:
                gi, ui = gold_split(data, k, seed)
                xg, yg = xp_all[gi], np.array([data.label(data.pool[i]) for i in gi])
                xp = xp_all[ui]
                clf, info = T.prompt_aware_probe(xg, yg, xp, protos, 5.0, 5, 3, 100.0, seed)
                w_ev = 5.0 * info["prompt_evidence"]  # before LiST's rule sets a wrong-looking prompt's weight to 0
                w = cv_weight(xg, yg, xp, protos, w_ev, seed)
                row = {"evidence": clf, "cv": fixed_weight_teacher(xg, yg, xp, protos, w, 3, seed),
                       "w20": fixed_weight_teacher(xg, yg, xp, protos, 20.0, 3, seed),
                       "w80": fixed_weight_teacher(xg, yg, xp, protos, 80.0, 3, seed),
                       "4x": fixed_weight_teacher(xg, yg, xp, protos, 4 * w_ev, 3, seed),
                       "16x": fixed_weight_teacher(xg, yg, xp, protos, 16 * w_ev, 3, seed),
                       "no gate": fixed_weight_teacher(xg, yg, xp, protos, w_ev, 3, seed),
                       "points x evidence": fixed_weight_teacher(xg, yg, xp, protos, w_ev, 3, seed, 5,
                                                                 info["prompt_evidence"]),
                       "prompt-prior": T.prompt_prior_logreg(xg, yg, xp, protos, 100.0, 3, seed)}  # fmt: skip
                w_rel = relative_weight(xg, yg, protos, info["prompt_evidence"], seed)
                row["relative"] = fixed_weight_teacher(xg, yg, xp, protos, w_rel, 3, seed)
                accs = {r: 100 * float((c.predict(xt) == yt).mean()) for r, c in row.items()}
                fit = {r: pool_fit(row[r], xp, seed) for r in ("evidence", "w20", "w80", "4x", "16x")}
                picks = {crit: max(("evidence", "w20", "w80"), key=lambda r, c=crit: fit[r][c])
                         for crit in ("silhouette", "confidence")}  # fmt: skip
                picks["scaled"] = max(("evidence", "4x", "16x"), key=lambda r: fit[r]["silhouette"])
                accs |= {crit: accs[r] for crit, r in picks.items()}  # the first of equals: the evidence rule's
                rows.append(
                    {r: accs[r] for r in rules} | {"cv_w": w, "relative_w": round(w_rel, 1)}
                    | {f"{c}_pick": r for c, r in picks.items()}
                )  # fmt: skip
                print(name, k, seed, {r: round(v, 1) if isinstance(v, float) else v for r, v in rows[-1].items()},
                      flush=True)  # fmt: skip
            means = {r: round(float(np.mean([x[r] for x in rows])), 1) for r in rules}
            print("MEAN", name, f"K={k}", f"seeds {args.seeds}", means, "cv weights:", [x["cv_w"] for x in rows],
                  "relative weights:", [x["relative_w"] for x in rows],
                  "silhouette picks:", [x["silhouette_pick"] for x in rows],
                  "scaled picks:", [x["scaled_pick"] for x in rows])  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
