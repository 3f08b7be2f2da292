"""How far can 10 or 30 labels take this backbone? Fully supervised ceilings on the default backbone.

    python -m benchmarks.headroom ../shared/data mr subj bbc --epochs 2

Two oracles per set, trained on the true labels of the whole pool (8,566 mr, 1,000 subj, 1,396 bbc texts; the
few-shot methods see 10 or 30 of them), scored on the test split:

- `frozen LR`: logistic regression on the frozen mean-pooled features (C = 1, 10, 100), the hypothesis class of
  LiST's teacher and of the probe peers;
- `adapters`: the fast preset's bottleneck adapters (r=32) and the similarity head, tuned on all pool labels for
  `--epochs` epochs (batch 16, lr 1e-3): the hypothesis class of LiST's students and of prompt fine-tuning.

A few-shot method cannot be expected to reach these numbers; they tell how much headroom a goal leaves. Pool and
test labels are read here because these are oracles; nothing in LiST is chosen by them. Features are cached as in
`benchmarks.teacher_weights`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from list_core import teacher as T

from .teacher_weights import features


def frozen_oracle(xp: np.ndarray, yp: np.ndarray, xt: np.ndarray, yt: np.ndarray, c: float) -> float:
    """Test accuracy (%) of a logistic regression fitted on every pool example's frozen features and label."""
    return 100 * float((T.logreg(xp, yp, c, 0).predict(xt) == yt).mean())


def adapter_oracle(data, epochs: int, seed: int = 1) -> tuple[float, float]:
    """Test accuracy (%) and seconds of the similarity head and adapters tuned on every pool label."""
    from list_core.backbone import load_backbone
    from list_core.baselines import run_method
    from list_core.config import preset
    from list_core.self_training import TaskData

    prompt = data.prompt()
    task = TaskData(labels=list(data.meta["labels"]), gold_rows=[data.row(r) for r in data.pool],
                    gold_labels=[data.label(r) for r in data.pool], unlabeled_rows=[], unlabeled_ids=[])  # fmt: skip
    cfg = preset("fast", seed=seed, teacher_epochs=epochs, teacher_lr=1e-3, gold_batch_size=16)
    t0 = time.perf_counter()
    model = run_method("prompt", load_backbone(None, device="cpu"), prompt, task, cfg).model
    seconds = time.perf_counter() - t0
    proba = model.predict_proba([data.row(r) for r in data.test])  # (E, C)
    yt = torch.tensor([data.label(r) for r in data.test])
    return 100 * float((proba.argmax(-1) == yt).float().mean()), seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.headroom", description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path, help="the folder holding the sets")
    ap.add_argument("sets", nargs="+")
    ap.add_argument("--epochs", type=int, default=2, help="epochs of the adapter oracle")
    ap.add_argument("--no-adapters", action="store_true", help="the frozen-feature oracle only (seconds)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/list_teacher_features"))
    args = ap.parse_args(argv)
    for name in args.sets:
        data, xp, xt, _ = features(args.data / name, args.cache)
        yp = np.array([data.label(r) for r in data.pool])
        yt = np.array([data.label(r) for r in data.test])
        row = {f"frozen LR C={c:g}": round(frozen_oracle(xp, yp, xt, yt, c), 1) for c in (1.0, 10.0, 100.0)}
        if not args.no_adapters:
            acc, seconds = adapter_oracle(data, args.epochs)
            row[f"adapters {args.epochs} epochs"] = round(acc, 1)
            row["adapter seconds"] = round(seconds)
        print(name, f"pool {len(yp)}", row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
