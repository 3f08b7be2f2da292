"""Can a student exceed its teacher? Student-side levers of LiST's rounds on the default backbone's frozen features.

    python -m benchmarks.student_levers ../shared/data mr subj bbc --k 10 30 --seeds 1 2 3 4 5

A cheap stand-in for the fast preset's three rounds, on cached frozen features (`benchmarks.teacher_weights`'
cache). The teacher is LiST's own (`list_core.teacher.prompt_aware_probe`) and labels the pool once (q0). Each
round draws `unlabeled_limit` pool texts, pseudo-labels them (round 1: q0; later: the mean of q0 and the current
model's probabilities, `ensemble_teacher`), trains a fresh student and tunes it on the gold labels (5 epochs,
batch 4, lr 1e-4). The student is one residual bottleneck adapter on the pooled features (r=32, zero-initialised
up-projection) under the similarity head re-started from the verbalisers: it starts at the zero-shot prompt, as
LiST's student does. Its steps: the first 60% KD on the per-class median-confident pseudo-labels, the rest KD on
all of them with uniform weights (`benchmarks.meta_weights`: the weighting rule moves nothing here).

Each lever changes one thing against `base` (the fast preset's numbers: 150 steps, batch 16, lr 1e-3, 4000 pool
texts, no input noise). Printed: the teacher's test accuracy, then per lever the pseudo-label accuracy in
round 1 and in the last round, the final test accuracy, and the test accuracy of the final model's probabilities
averaged with the teacher's (an ensemble of the rounds' first and last model). Pool and test labels are read for
this analysis only; nothing in LiST is chosen by it. Caveat: one adapter on pooled features is not adapters in every
layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from list_core import teacher as T
from list_core.heads import linear_of
from list_core.losses import kd_loss

from .meta_weights import Head
from .teacher_weights import arguments, features, gold_split


@dataclass(frozen=True)
class Lever:
    steps: int = 150
    limit: int | None = 4000
    dropout: float = 0.0  # on the student's input features, in the student phase only (noisy student)
    rounds: int = 3
    ensemble: bool = True  # later rounds' pseudo-labels: mean of q0 and the current model
    start: str = "verbalisers"  # or "teacher": every student's head starts as the teacher's linear fit


LEVERS = {
    "base": Lever(),
    "dropout 0.3": Lever(dropout=0.3),
    "steps x4": Lever(steps=600),
    "whole pool": Lever(limit=None),
    "steps x4 + whole pool": Lever(steps=600, limit=None),
    "dropout 0.3 + steps x4": Lever(steps=600, dropout=0.3),
    "6 rounds": Lever(rounds=6),
    "no ensemble": Lever(ensemble=False),
    "start from the teacher": Lever(start="teacher"),
}


class Student(torch.nn.Module):
    """head(d + up(relu(down(d)))), d = dropout(x) in training: a bottleneck adapter on pooled features."""

    def __init__(self, protos: torch.Tensor, rank: int = 32):
        super().__init__()
        dim = protos.shape[1]
        self.down = torch.nn.Linear(dim, rank)
        self.up = torch.nn.Linear(rank, dim)
        torch.nn.init.zeros_(self.up.weight)
        torch.nn.init.zeros_(self.up.bias)
        self.head = Head(protos)
        self.noise = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.noise:
            x = F.dropout(x, self.noise)
        return self.head(x + self.up(torch.relu(self.down(x))))  # (B, C)


def _step(model: Student, opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


def _kd_steps(model: Student, x: torch.Tensor, q: torch.Tensor, index: np.ndarray, n: int, opt, rng) -> None:
    for _ in range(n):
        idx = torch.tensor(rng.choice(index, size=min(16, len(index)), replace=False))
        _step(model, opt, kd_loss(model(x[idx]), q[idx]).mean())


def from_linear(model: Student, weight: torch.Tensor, bias: torch.Tensor) -> None:
    """Start the student's head as the linear classifier `weight`, `bias` of normalised features (per-class scales,
    as `SimilarityHead.set_linear`); the adapter starts as the identity, so the student starts as that classifier."""
    norm = weight.norm(dim=-1).clamp(min=1e-12)  # (C,)
    model.head.protos = torch.nn.Parameter(weight / norm[:, None])
    model.head.log_scale = torch.nn.Parameter(norm.log())
    model.head.bias = torch.nn.Parameter(bias.clone())


def run(lever: Lever, xg, yg, xp, yp, xt, yt, protos, q0, seed: int, pt, linear=None) -> tuple[float, ...]:
    """(pseudo-label accuracy in round 1, in the last round, final test accuracy, test accuracy of the mean of the
    final model's and the teacher's probabilities `pt` (E, C)), in %. `linear`: the teacher's (weight, bias)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model: Student | None = None  # the previous round's model labels the next round's pool
    plabel = []
    for r in range(1, lever.rounds + 1):
        chosen = np.sort(rng.permutation(len(xp))[: lever.limit]) if lever.limit else np.arange(len(xp))
        x = xp[chosen]
        if r == 1:
            q = q0[chosen]
        else:
            with torch.no_grad():
                q = model.eval()(x).softmax(-1)  # (N, C)
            q = (q + q0[chosen]) / 2 if lever.ensemble else q
        plabel.append(float((q.argmax(1) == yp[chosen]).float().mean()))
        model = Student(protos)
        if lever.start == "teacher":
            from_linear(model, *linear)
        model.noise = lever.dropout
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
        pred, conf = q.argmax(1).numpy(), q.max(1).values.numpy()
        warm = int(round(lever.steps * 0.6))
        _kd_steps(model, x, q, np.flatnonzero(T.median_confident(pred, conf)), warm, opt, rng)
        _kd_steps(model, x, q, np.arange(len(x)), lever.steps - warm, opt, rng)
        model.noise = 0.0  # gold tuning as in LiST: no extra noise
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
        for _ in range(5):
            for b in torch.randperm(len(xg)).split(4):
                _step(model, opt, F.cross_entropy(model(xg[b]), yg[b]))
    with torch.no_grad():
        p = model.eval()(xt).softmax(-1)  # (E, C)
    acc = float((p.argmax(1) == yt).float().mean())
    ens = float(((p + pt).argmax(1) == yt).float().mean())
    return 100 * plabel[0], 100 * plabel[-1], 100 * acc, 100 * ens


def main(argv: list[str] | None = None) -> int:
    args = arguments("student_levers", __doc__, argv, levers=tuple(LEVERS))
    levers = {lv: LEVERS[lv] for lv in args.levers}
    torch.set_num_threads(1)
    f = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    for name in args.sets:
        data, xp_all, xt_np, protos_np = features(args.data / name, args.cache)
        xt, protos = f(xt_np), f(protos_np)
        yt = torch.tensor([data.label(r) for r in data.test])
        y_all = np.array([data.label(r) for r in data.pool])
        for k in args.k:
            res: dict[str, list[tuple[float, float, float, float]]] = {lv: [] for lv in levers}
            teach = []
            for seed in args.seeds:
                gi, ui = gold_split(data, k, seed)
                clf, _ = T.prompt_aware_probe(xp_all[gi], y_all[gi], xp_all[ui], protos_np, 5.0, 5, 3, 100.0, seed)
                q0, pt = f(clf.predict_proba(xp_all[ui])), f(clf.predict_proba(xt_np))  # (N, C), (E, C)
                teach.append(100 * float((clf.predict(xt_np) == yt.numpy()).mean()))
                xg, yg, xp, yp = f(xp_all[gi]), torch.tensor(y_all[gi]), f(xp_all[ui]), torch.tensor(y_all[ui])
                linear = linear_of(clf, len(protos_np), protos_np.shape[1])
                for lv, lever in levers.items():
                    res[lv].append(run(lever, xg, yg, xp, yp, xt, yt, protos, q0, seed, pt, linear))
                line = {lv: f"{v[-1][0]:.1f}->{v[-1][1]:.1f} acc {v[-1][2]:.1f}" for lv, v in res.items()}
                print(name, f"K={k}", seed, f"teacher {teach[-1]:.1f}", line, flush=True)
            print(f"MEAN {name} K={k} seeds {args.seeds} teacher {np.mean(teach):.1f}", flush=True)
            for lv, v in res.items():
                a = np.array(v)
                first, last, acc, ens = a.mean(0)
                rises = int((a[:, 1] > a[:, 0]).sum())
                print(f"  {lv:24s} pseudo-labels {first:.1f} -> {last:.1f} (rises on {rises}/{len(a)})  "
                      f"test {acc:.1f}  (student - teacher {acc - np.mean(teach):+.1f}; "
                      f"averaged with the teacher {ens:.1f}, {ens - np.mean(teach):+.1f})", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
