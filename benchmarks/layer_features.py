"""Would LiST's teacher, and its peers, do better on more than the last layer? Frozen-feature accuracy per view.

    python -m benchmarks.layer_features ../shared/data mr subj bbc --k 10 30 --seeds 1 2 3 4 5

Every encoder layer's output of the default backbone, mean-pooled and L2-normalised, is computed once per set (cached
in `--cache`). A *view* joins some layers: their normalised vectors side by side, divided by the square root of their
number, so a view's vectors have norm 1 and its cosine is the mean of the layers' cosines. On each view:

- teacher: LiST's prompt-aware probe (`teacher.prompt_aware_probe`'s rule: gold, verbaliser points, the zero-shot
  prompt's confident pool labels worth 5 x the evidence gold examples, 3 rounds of self-training), the zero-shot
  prompt read on the last layer as LiST reads it, the logistic regressions on the view;
- self-train-probe and prompt-prior-probe: those peers' rules (`teacher.self_train_logreg`,
  `teacher.prompt_prior_logreg`) on the view;
- zero-shot: the prompt alone in the view (each text's view cosine to each class's verbaliser in the same view);
- teacher, cv view: the view each seed's teacher takes when chosen on its gold labels alone (stratified k-fold
  accuracy of the teacher before self-training; ties go to the fewer layers), the way a run could choose it;
- teacher ensemble last+4-6+1-6: the mean of the decision values of the teachers on those three views (LiST's
  `teacher_views="1,3,6"`, one linear head on all six layers).

`--balanced`: every logistic regression weighs the classes alike (the fast preset's `class_balance`).

Test labels are read for scoring only. Which view to adopt is not decided here (see BENCHMARKS.md).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from list_core import teacher as T
from list_core.data import Encoded, collate, sorted_batches
from list_core.model import ListModel
from list_core.prompts import Prompt

from .teacher_weights import arguments, gold_split

VIEWS: dict[str, tuple[int, ...]] = {"last": (6,), "5-6": (5, 6), "4-6": (4, 5, 6), "1-6": (1, 2, 3, 4, 5, 6)}


@torch.no_grad()
def encoded_layers(model: ListModel, enc: Encoded, batch_size: int = 64) -> np.ndarray:
    """(N, L+1, D) every hidden state of the plain backbone (the embeddings, then each layer), mean-pooled over real
    tokens and normalised, in the input order."""
    out = None
    model.eval()
    for idx in sorted_batches(enc, batch_size):
        b = collate(enc, idx, model.pad_id, model.device)
        with model.backbone.activate(None):
            states = model.encoder(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                                   output_hidden_states=True).hidden_states  # fmt: skip
        m = b["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
        pooled = torch.stack([(h.float() * m).sum(1) / m.sum(1).clamp(min=1.0) for h in states], 1)  # (B, L+1, D)
        if out is None:
            out = np.zeros((len(enc), *pooled.shape[1:]), dtype=np.float32)
        out[idx] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
    return out


def layer_features(backbone, texts: list[str], batch_size: int = 64, max_length: int = 128) -> np.ndarray:
    """(N, L+1, D) `encoded_layers` of texts, each read alone (as LiST's frozen features are)."""
    model = ListModel(backbone, Prompt("{text} {mask}", ("a", "b")), head="classic", adapter=None,
                      max_length=max_length)  # fmt: skip
    return encoded_layers(model, Encoded.sentences(backbone.tokenizer, texts, max_length), batch_size)


def view(x: np.ndarray, layers: tuple[int, ...]) -> np.ndarray:
    """(N, L+1, D) per-layer features -> (N, len(layers) * D) of norm 1 (the layers' normalised vectors side by
    side over sqrt(len(layers)))."""
    return x[:, list(layers)].reshape(len(x), -1) / np.sqrt(len(layers))


def features(root: Path, cache: Path):
    """(data, pool, test, verbaliser) per-layer features of a data folder (one verbaliser sentence per class)."""
    from list_core.bench import load_data

    data = load_data(root)
    path = cache / f"{root.name}_layers.npz"
    if not path.exists():
        from list_core.backbone import load_backbone

        sentences = data.prompt().verbaliser_sentences()
        if any(len(g) != 1 for g in sentences):
            raise ValueError(f"{root.name}: one verbaliser sentence per class expected, got {sentences}")
        bb = load_backbone(None, device="cpu")
        t = time.perf_counter()
        xp = layer_features(bb, [r["text"] for r in data.pool])
        xt = layer_features(bb, [r["text"] for r in data.test])
        vs = layer_features(bb, [g[0] for g in sentences])
        print(f"# {root.name}: {len(xp) + len(xt):,} texts embedded in {time.perf_counter() - t:.0f} s", flush=True)
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(path, xp=xp, xt=xt, vs=vs)
    z = np.load(path)
    return data, z["xp"], z["xt"], z["vs"]


def teacher(xg, yg, xp, zs_gold, zs_pool, points, protos, seed: int, iterations: int = 3, balanced: bool = False,
            smooth=None):  # fmt: skip
    """LiST's prompt-aware probe with its logistic regressions on view features (`xg`, `xp`, verbaliser `points`)
    and the zero-shot prompt on last-layer features (`zs_gold`, `zs_pool`, prototypes `protos`); `smooth` as
    `teacher.prompt_weighted_probe`'s."""
    clf, _ = T.prompt_aware_probe(xg, yg, xp, protos, 5.0, 5, iterations, 100.0, seed, prompt_gold=zs_gold,
                                  prompt_pool=zs_pool, points=points, balanced=balanced, smooth=smooth)  # fmt: skip
    return clf


# the teachers of these views, their logits averaged (LiST's `teacher_views="1,3,6"`)
ENSEMBLE = ("last", "4-6", "1-6")


def ensemble_predict(decisions: list[np.ndarray]) -> np.ndarray:
    """Class predictions of the mean of scikit-learn decision values ((N,) binary or (N, C) each)."""
    mean = np.mean(decisions, 0)
    return (mean > 0).astype(int) if mean.ndim == 1 else mean.argmax(1)


def cv_view(x_gold_layers, yg, x_pool_layers, vs, seed: int, folds: int = 5) -> str:
    """The view a run with `feature_layers=0` takes (`list_core.views.choose_layers`: the best stratified k-fold
    accuracy of the teacher before self-training on the gold labels; ties: fewer layers), by its name in VIEWS."""
    from list_core.views import choose_layers

    top = x_gold_layers.shape[1] - 1  # the hidden states after the embeddings
    n, _ = choose_layers(x_gold_layers[:, 1:], yg, x_pool_layers[:, 1:], vs[:, -1], vs[:, 1:], np.arange(len(vs)),
                         seed=seed)  # fmt: skip
    return next(name for name, layers in VIEWS.items() if layers == tuple(range(top - n + 1, top + 1)))


def main(argv: list[str] | None = None) -> int:
    args = arguments("layer_features", __doc__, argv, balanced=True)
    for name in args.sets:
        data, xp_all, xt_all, vs = features(args.data / name, args.cache)
        yt = np.array([data.label(r) for r in data.test])
        for k in args.k:
            acc: dict[str, list[float]] = {}
            chosen = []
            for seed in args.seeds:
                gi, ui = gold_split(data, k, seed)
                yg = np.array([data.label(data.pool[i]) for i in gi])
                decisions = {}
                for vname, layers in VIEWS.items():
                    xg, xp, xt, pts = (
                        view(xp_all[gi], layers),
                        view(xp_all[ui], layers),
                        view(xt_all, layers),
                        view(vs, layers),
                    )
                    runs = {
                        "teacher": teacher(
                            xg, yg, xp, xp_all[gi, -1], xp_all[ui, -1], pts, vs[:, -1], seed, balanced=args.balanced
                        ),
                        "self-train-probe": T.self_train_logreg(xg, yg, xp, 100.0, 3, seed, args.balanced),
                        "prompt-prior-probe": T.prompt_prior_logreg(xg, yg, xp, pts, 100.0, 3, seed, args.balanced),
                    }
                    decisions[vname] = runs["teacher"].decision_function(xt)
                    for method, clf in runs.items():
                        acc.setdefault(f"{method} {vname}", []).append(100 * float((clf.predict(xt) == yt).mean()))
                    zs = T.zero_shot_scores(xt, pts).argmax(1)
                    acc.setdefault(f"zero-shot {vname}", []).append(100 * float((zs == yt).mean()))
                ens = ensemble_predict([decisions[v] for v in ENSEMBLE])
                acc.setdefault(f"teacher ensemble {'+'.join(ENSEMBLE)}", []).append(100 * float((ens == yt).mean()))
                pick = cv_view(xp_all[gi], yg, xp_all[ui], vs, seed)
                chosen.append(pick)
                acc.setdefault("teacher cv view", []).append(acc[f"teacher {pick}"][-1])
            for key, vals in acc.items():
                print(
                    f"{name} K={k} {key}: {np.mean(vals):.2f} (seeds {' '.join(f'{v:.1f}' for v in vals)})", flush=True
                )
            print(f"{name} K={k} cv views: {' '.join(chosen)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
