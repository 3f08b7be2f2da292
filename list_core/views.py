"""Which encoder layers a run's similarity head reads (`feature_layers=0`: chosen on the gold labels alone).

A *view* of the top n layers is their mean-pooled, normalised outputs side by side over sqrt(n) (`heads.
view_features`). Which view carries a task is a property of the task: on the benchmark sets, subjectivity is read
better from the top half of MiniLM's layers, sentiment and topic from the last layer (BENCHMARKS.md, "layer_features").
A run can tell which from its gold labels: for each candidate view, the stratified k-fold accuracy on the gold
labels of LiST's teacher rule (`teacher.prompt_aware_probe` without self-training: the zero-shot prompt read on the
last layer, its confident pool labels, the verbaliser points and the gold folds, the logistic regressions on the
view). The best view wins; ties go to the fewer layers, so a run that cannot tell keeps the last layer. Neither pool
nor test labels are read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .teacher import prompt_aware_probe

if TYPE_CHECKING:
    from .backbone import Backbone
    from .config import TrainConfig
    from .data import Row
    from .prompts import Prompt

FOLDS = 5


def candidates(layers: int) -> tuple[int, ...]:
    """The views a run chooses among: the last layer, the top two, the top half and all layers."""
    return tuple(sorted({1, min(2, layers), max(1, layers // 2), layers}))


def view_of(layers: np.ndarray, n: int) -> np.ndarray:
    """(N, L, D) per-layer normalised features -> (N, n*D) the view of the top n (norm 1; the last layer alone for
    n=1), as `heads.view_features` computes it."""
    if n == 1:
        return layers[:, -1]
    return layers[:, -n:].reshape(len(layers), -1) / np.float32(math.sqrt(n))


def class_points(sentence_layers: np.ndarray, owner: np.ndarray, n: int, num_classes: int) -> np.ndarray:
    """(S, L, D) per-layer features of the verbaliser sentences, (S,) their classes -> (C, n*D) each class's
    sentences in the view of the top n, averaged and normalised (`ListModel.verbaliser_points`)."""
    x = view_of(sentence_layers, n)
    mean = np.stack([x[owner == c].mean(0) for c in range(num_classes)])  # (C, n*D)
    return mean / np.linalg.norm(mean, axis=1, keepdims=True)


def choose_layers(
    gold: np.ndarray,
    y_gold: np.ndarray,
    pool: np.ndarray,
    prototypes: np.ndarray,
    sentence_layers: np.ndarray,
    owner: np.ndarray,
    prompt_weight: float = 5.0,
    verbaliser_points: int = 5,
    c: float = 100.0,
    seed: int = 0,
    balanced: bool = False,
) -> tuple[int, dict[int, float]]:
    """The number of top layers whose view gives the teacher the best k-fold accuracy on the gold labels, and each
    candidate's accuracy. `gold` (K, L, D) and `pool` (N, L, D): per-layer features of the top L layers;
    `prototypes` (C, D): the last layer's verbaliser prototypes. One view per candidate when the smallest class has
    fewer than 2 gold labels is impossible: the last layer is kept. `balanced`: the teacher's class weighting."""
    from sklearn.model_selection import StratifiedKFold

    num_classes = len(prototypes)
    k = min(FOLDS, int(np.bincount(y_gold, minlength=num_classes).min()))
    if k < 2:
        return 1, {}
    accuracy: dict[int, float] = {}
    splits = list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(gold[:, -1], y_gold))
    for n in candidates(gold.shape[1]):
        xg, xp = view_of(gold, n), view_of(pool, n)
        points = class_points(sentence_layers, owner, n, num_classes)
        hits = 0
        for train, held in splits:
            clf, _ = prompt_aware_probe(xg[train], y_gold[train], xp, prototypes, prompt_weight, verbaliser_points, 0,
                                        c, seed, prompt_gold=gold[train, -1], prompt_pool=pool[:, -1], points=points,
                                        balanced=balanced)  # fmt: skip
            hits += int((clf.predict(xg[held]) == y_gold[held]).sum())
        accuracy[n] = hits / len(y_gold)
    best = max(accuracy.values())
    return min(n for n, a in accuracy.items() if a == best), accuracy


def resolve(
    backbone: Backbone,
    prompt: Prompt,
    gold_rows: Sequence[Row],
    y_gold: Sequence[int],
    pool_rows: Sequence[Row],
    cfg: TrainConfig,
) -> tuple[int, dict[int, float], np.ndarray]:
    """`feature_layers=0` for a run on `backbone`: (the layers chosen by `choose_layers`, each candidate's k-fold
    accuracy, the pool's (N, L, D) per-layer features, from which the chosen view is `view_of(pool, n)`)."""
    from .data import Encoded
    from .heads import num_layers
    from .model import ListModel

    layers = num_layers(backbone)
    model = ListModel(backbone, prompt, head="similarity", adapter=None, max_length=cfg.max_length,
                      feature_layers=layers)  # fmt: skip
    gold = model.layer_features(model.encode(gold_rows), cfg.eval_batch_size).numpy()  # (K, L, D)
    pool = model.layer_features(model.encode(pool_rows), cfg.eval_batch_size).numpy()  # (N, L, D)
    groups = prompt.verbaliser_sentences()
    enc = Encoded.sentences(backbone.tokenizer, [s for g in groups for s in g], cfg.max_length)
    sentences = model.layer_features(enc, cfg.eval_batch_size).numpy()  # (S, L, D)
    owner = np.repeat(np.arange(len(groups)), [len(g) for g in groups])  # (S,)
    protos = model.head.verbaliser_prototypes[:, -backbone.hidden_size :].float().cpu().numpy()  # (C, D)
    n, accuracy = choose_layers(gold, np.asarray(list(y_gold)), pool, protos, sentences, owner, cfg.prompt_weight,
                                cfg.verbaliser_points, seed=cfg.seed, balanced=cfg.class_balance)  # fmt: skip
    return n, accuracy, pool
