"""Do LiST's students keep a better teacher's gain? Real LiST runs whose first teacher labels the pool from a view.

    python -m benchmarks.view_teacher --layers 4 5 6 -- --data ../shared/data/mr --k 30 --seeds 1 --methods list \
        --preset fast --trace-test --out OUT.json

An analysis hook, not a setting: it wraps `ListModel.fit_prompt_teacher` for this process only. The run's teacher is
fitted as always (its head, round 0's model and record are LiST's own); then the same teacher rule is fitted again
with its logistic regressions on a view of several layers (`benchmarks.layer_features`: the zero-shot prompt still
on the last layer) and **its** probabilities replace the first teacher's labels of the pool, which round 1's student
learns from and later rounds ensemble with (`ensemble_teacher`). Everything after that is the unmodified preset, so
the final accuracy, set against the preset's run of the same seed, says whether the students carry the view
teacher's gain. Arguments after `--` go to `list_core.bench`.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

from list_core.data import Encoded
from list_core.model import ListModel

from .layer_features import encoded_layers, teacher


def install(layers: tuple[int, ...]) -> None:
    """Make every run of this process label its pool with the view teacher (module docstring); once."""
    fit = ListModel.fit_prompt_teacher
    if fit.__name__ == "fit_then_relabel":
        return

    def fit_then_relabel(self, gold, labels, pool, self_train, prompt_weight, verbaliser_points, seed=0,
                         batch_size=64, pool_features=None):  # fmt: skip
        info = fit(self, gold, labels, pool, self_train, prompt_weight, verbaliser_points, seed, batch_size,
                   pool_features)  # fmt: skip
        if pool is None or not len(pool):
            return info
        xg, xp = encoded_layers(self, gold, batch_size), encoded_layers(self, pool, batch_size)
        groups = self.prompt.verbaliser_sentences()
        flat = encoded_layers(self, Encoded.sentences(self.backbone.tokenizer, [s for g in groups for s in g],
                                                      self.max_length), batch_size)  # fmt: skip
        owner = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
        vs = np.stack([flat[owner == c].mean(0) for c in range(len(groups))])  # (C, L+1, D)
        vs /= np.linalg.norm(vs, axis=-1, keepdims=True)
        idx = list(layers)
        view = lambda x: x[:, idx].reshape(len(x), -1) / np.sqrt(len(idx))  # noqa: E731
        y = np.asarray(list(labels))
        clf = teacher(view(xg), y, view(xp), xg[:, -1], xp[:, -1], view(vs), vs[:, -1], seed)
        proba = np.zeros((len(xp), self.num_classes))
        proba[:, clf.classes_] = clf.predict_proba(view(xp))
        self.teacher_pool_proba = torch.from_numpy(proba).float()
        print(f"view teacher (layers {' '.join(map(str, layers))}) labelled {len(xp):,} pool texts", file=sys.stderr)
        return info

    ListModel.fit_prompt_teacher = fit_then_relabel


LAYERS_ENV = "LIST_VIEW_TEACHER_LAYERS"  # how the bench's spawned children, which import this module, get the hook


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.view_teacher", description=__doc__.split("\n")[0])
    ap.add_argument(
        "--layers", type=int, nargs="+", default=[4, 5, 6], help="hidden states of the view (0: embeddings)"
    )
    ap.add_argument("bench", nargs=argparse.REMAINDER, help="-- then list_core.bench's arguments")
    args = ap.parse_args(argv)
    from list_core import bench

    os.environ[LAYERS_ENV] = " ".join(map(str, args.layers))
    install(tuple(args.layers))
    return bench.main([a for a in args.bench if a != "--"])


if os.environ.get(LAYERS_ENV):  # the bench runs each job in a fresh spawned process, which imports this module
    install(tuple(int(x) for x in os.environ[LAYERS_ENV].split()))


if __name__ == "__main__":
    raise SystemExit(main())
