"""Why do LiST's meta-weights prefer wrong pseudo-labels? Weighting rules on the default backbone's frozen features.

    python -m benchmarks.meta_weights ../shared/data mr subj bbc --k 10 30 --seeds 1 2 3 4 5

A cheap stand-in for one LiST round, on cached frozen features (`benchmarks.teacher_weights`' cache): the teacher is
`list_core.teacher.prompt_aware_probe` (LiST's own); the student is the similarity head alone (learnable
prototypes from the verbalisers, scale and bias; no adapters), warmed up by KD on the per-class median-confident
pseudo-labels, as in the fast preset. At that point every rule weighs a sample of the pool (the fast preset's
`unlabeled_limit`, 4000) from per-example KD gradients and the gold gradient, and the script prints the
correlation between an example's weight and its pseudo-label being right (pool labels read for this analysis
only), and the test accuracy after a meta phase trained with those weights (test labels read for this analysis
only; no rule is chosen by it here):

- dot: `max(0, g_gold . g_i)`, the paper's (Ren et al. 2018) rule and LiST's default;
- cosine: the same divided by both norms (`meta_similarity="cosine"`);
- centered: `max(0, g_gold . (g_i - mean_j g_j))`: the part of an example's gradient that the whole pool shares
  (raise one class everywhere) is removed, so an example is weighed by what it adds;
- centered-cosine: the centered gradients, divided by their norms;
- uniform: every confident pseudo-label weighs the same (no reweighting).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from list_core import teacher as T
from list_core.losses import kd_loss
from list_core.reweighting import agreement_weights

from .teacher_weights import arguments, features, gold_split

RULES = ("dot", "cosine", "centered", "centered-cosine", "uniform")


class Head(torch.nn.Module):
    """The similarity head on frozen features: scale * cos(x, prototype_c) + bias_c."""

    def __init__(self, protos: torch.Tensor):
        super().__init__()
        self.protos = torch.nn.Parameter(protos.clone())  # (C, D)
        self.log_scale = torch.nn.Parameter(torch.tensor(np.log(20.0), dtype=torch.float32))
        self.bias = torch.nn.Parameter(torch.zeros(len(protos)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cos = F.normalize(x, dim=-1) @ F.normalize(self.protos, dim=-1).T  # (B, C)
        return self.log_scale.exp() * cos + self.bias


def rule_weights(head: Head, xu, q, xg, yg, rule: str) -> torch.Tensor:
    """(N,) weights of the pseudo-labeled examples `xu` under a rule, normalised to sum 1."""
    if rule == "uniform":
        return torch.full((len(xu),), 1.0 / len(xu))
    params = {n: p.detach() for n, p in head.named_parameters()}
    gold = grad(lambda p: F.cross_entropy(functional_call(head, p, (xg,)), yg))(params)

    def example_loss(p: dict, x: torch.Tensor, qi: torch.Tensor) -> torch.Tensor:
        return kd_loss(functional_call(head, p, (x[None],)), qi[None])[0]

    each = vmap(grad(example_loss), (None, 0, 0))(params, xu, q)  # {name: (N, *shape)}
    flat = torch.cat([each[n].reshape(len(xu), -1) for n in params], 1)  # (N, P)
    g = torch.cat([gold[n].flatten() for n in params])  # (P,)
    if rule.startswith("centered"):
        flat = flat - flat.mean(0, keepdim=True)
    raw = flat @ g
    if rule.endswith("cosine"):
        raw = raw / (flat.norm(dim=1) * g.norm()).clamp_min(1e-12)
    return agreement_weights(raw)


def one(xg, yg, xp, yp, xt, yt, protos, seed: int, limit: int = 4000) -> dict[str, tuple[float, float]]:
    """{rule: (weight-correctness correlation, test accuracy after the meta phase)} for one (set, K, seed)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    clf, _ = T.prompt_aware_probe(xg, yg, xp, protos, 5.0, 5, 3, 100.0, seed)
    sub = rng.permutation(len(xp))[:limit]
    xu, yu = torch.tensor(xp[sub], dtype=torch.float32), torch.tensor(yp[sub])
    q = torch.tensor(clf.predict_proba(xp[sub]), dtype=torch.float32)  # (N, C)
    pred, conf = q.argmax(1), q.max(1).values
    keep = torch.tensor(T.median_confident(pred.numpy(), conf.numpy()))
    xg_t, yg_t = torch.tensor(xg, dtype=torch.float32), torch.tensor(yg)
    xt_t, yt_t = torch.tensor(xt, dtype=torch.float32), torch.tensor(yt)
    warm = Head(torch.tensor(protos, dtype=torch.float32))
    warm_opt = torch.optim.Adam(warm.parameters(), lr=1e-2)
    for _ in range(90):  # KD warm-up on the confident half (per class), shared by every rule
        loss = kd_loss(warm(xu[keep]), q[keep]).mean()
        warm_opt.zero_grad()
        loss.backward()
        warm_opt.step()
    out = {}
    for rule in RULES:
        head = copy.deepcopy(warm)
        opt = torch.optim.Adam(head.parameters(), lr=1e-2)
        opt.load_state_dict(copy.deepcopy(warm_opt.state_dict()))  # its moment tensors, not shared
        w = rule_weights(head, xu[keep], q[keep], xg_t, yg_t, rule)
        right = (pred[keep] == yu[keep]).float()
        corr = float(torch.corrcoef(torch.stack([w, right]))[0, 1]) if w.std() > 0 else float("nan")
        for _ in range(60):  # meta phase: the weighted KD loss, weights refreshed every step
            w = rule_weights(head, xu[keep], q[keep], xg_t, yg_t, rule)
            loss = (w * kd_loss(head(xu[keep]), q[keep])).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            acc = float((head(xt_t).argmax(1) == yt_t).float().mean())
        out[rule] = (corr, 100 * acc)
    return out


def _nanmean(xs: list[float]) -> float:
    """Mean of the defined values (uniform weights have no correlation), nan if none is."""
    xs = [x for x in xs if x == x]
    return float(np.mean(xs)) if xs else float("nan")


def main(argv: list[str] | None = None) -> int:
    args = arguments("meta_weights", __doc__, argv)
    torch.set_num_threads(1)
    for name in args.sets:
        data, xp_all, xt, protos = features(args.data / name, args.cache)
        yt = np.array([data.label(r) for r in data.test])
        y_all = np.array([data.label(r) for r in data.pool])
        for k in args.k:
            rows = []
            for seed in args.seeds:
                gi, ui = gold_split(data, k, seed)
                res = one(xp_all[gi], y_all[gi], xp_all[ui], y_all[ui], xt, yt, protos, seed)
                rows.append(res)
                print(name, k, seed, {r: f"corr {c:+.2f} acc {a:.1f}" for r, (c, a) in res.items()}, flush=True)
            mean = {r: f"corr {_nanmean([x[r][0] for x in rows]):+.2f} acc {np.mean([x[r][1] for x in rows]):.1f}"
                    for r in RULES}  # fmt: skip
            print("MEAN", name, f"K={k}", f"seeds {args.seeds}", mean, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
