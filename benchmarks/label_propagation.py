"""Does the pool's own neighbourhood structure make LiST's teacher, or its pseudo-labels, better? Label propagation.

    python -m benchmarks.label_propagation ../shared/data mr subj bbc --k 10 30 --seeds 1 2 3 4 5 --cache DIR

Label propagation (Zhou et al. 2004; Iscen et al. 2019 for deep self-training) smooths each pool text's class
probabilities with its nearest neighbours' in an embedding, so a label follows the clusters the pool forms: the
teacher's logistic regressions are linear and see the pool only through their own predictions, so this is
information they lack. On the default backbone's cached frozen features (`benchmarks.layer_features`' cache), the fast
preset's teacher (LiST's rule fitted on the top 1, 3 and 6 layers apart, class-balanced, logits averaged) is fitted
with each self-training round's pool probabilities first smoothed as

    F = (1 - alpha) P + alpha * sum_j w_ij P_j,   w_ij proportional to cos(x_i, x_j)^3 over i's `NEIGHBOURS` nearest

(one step, on the view the regression reads; `alpha=0`: LiST's teacher as it is). Printed per set, K and alpha: the
teacher's test accuracy, its pool pseudo-labels' accuracy (what round 1's student learns from), and that accuracy
after the final labels themselves are propagated (10 steps at alpha 0.8 on the top-3 view). Pool and test labels are
read for this analysis only; nothing in LiST is chosen by it.
"""

from __future__ import annotations

import numpy as np

from .layer_features import ENSEMBLE, VIEWS, features, teacher, view
from .teacher_weights import arguments, gold_split

NEIGHBOURS = 10
ALPHAS = (0.0, 0.3, 0.5)


def knn_graph(x: np.ndarray, k: int = NEIGHBOURS, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Each row's `k` nearest other rows by cosine (`x` normalised): (N, k) indices and (N, k) cosines."""
    idx = np.zeros((len(x), k), dtype=np.int64)
    sim = np.zeros((len(x), k), dtype=np.float32)
    for s in range(0, len(x), chunk):
        block = x[s : s + chunk] @ x.T  # (B, N)
        block[np.arange(len(block)), np.arange(s, s + len(block))] = -np.inf  # not its own neighbour
        part = np.argpartition(-block, k, axis=1)[:, :k]  # (B, k)
        idx[s : s + len(block)], sim[s : s + len(block)] = part, np.take_along_axis(block, part, 1)
    return idx, sim


def propagate(p: np.ndarray, graph: tuple[np.ndarray, np.ndarray], alpha: float, steps: int = 1) -> np.ndarray:
    """(N, C) probabilities smoothed `steps` times over the graph: F <- (1 - alpha) P + alpha W F (rows of W sum to 1,
    weights cos^3 of the non-negative cosines)."""
    idx, sim = graph
    w = np.clip(sim, 0.0, None) ** 3
    w = w / np.clip(w.sum(1, keepdims=True), 1e-12, None)  # (N, k)
    f = p
    for _ in range(steps):
        f = (1 - alpha) * p + alpha * (w[:, :, None] * f[idx]).sum(1)  # (N, C)
    return f


def softmax(d: np.ndarray) -> np.ndarray:
    """Probabilities of scikit-learn decision values ((N,) binary or (N, C))."""
    d = np.stack([-d / 2, d / 2], 1) if d.ndim == 1 else d
    e = np.exp(d - d.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def main(argv: list[str] | None = None) -> int:
    args = arguments("label_propagation", __doc__, argv)
    for name in args.sets:
        data, xp_all, xt_all, vs = features(args.data / name, args.cache)
        yt = np.array([data.label(r) for r in data.test])
        y_all = np.array([data.label(r) for r in data.pool])
        for k in args.k:
            acc: dict[float, dict[str, list[float]]] = {
                a: {"test": [], "pool": [], "pool propagated": []} for a in ALPHAS
            }
            for seed in args.seeds:
                gi, ui = gold_split(data, k, seed)
                yg, yu = y_all[gi], y_all[ui]
                graphs = {v: knn_graph(view(xp_all[ui], VIEWS[v])) for v in ENSEMBLE}
                for alpha in ALPHAS:
                    dt, dp = [], []
                    for v in ENSEMBLE:
                        layers, graph = VIEWS[v], graphs[v]
                        smooth = (lambda p, g=graph, s=alpha: propagate(p, g, s)) if alpha else None
                        clf = teacher(view(xp_all[gi], layers), yg, view(xp_all[ui], layers), xp_all[gi, -1],
                                      xp_all[ui, -1], view(vs, layers), vs[:, -1], seed, balanced=True, smooth=smooth)  # fmt: skip
                        dt.append(clf.decision_function(view(xt_all, layers)))
                        dp.append(clf.decision_function(view(xp_all[ui], layers)))
                    pt, pp = softmax(np.mean(dt, 0)), softmax(np.mean(dp, 0))  # (E, C), (N, C)
                    a = acc[alpha]
                    a["test"].append(100 * float((pt.argmax(1) == yt).mean()))
                    a["pool"].append(100 * float((pp.argmax(1) == yu).mean()))
                    a["pool propagated"].append(
                        100 * float((propagate(pp, graphs["4-6"], 0.8, 10).argmax(1) == yu).mean())
                    )
            for alpha, a in acc.items():
                line = "; ".join(f"{key} {np.mean(v):.2f}" for key, v in a.items())
                seeds = " ".join(f"{v:.1f}" for v in a["test"])
                print(f"{name} K={k} alpha={alpha}: {line} (test by seed {seeds})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
