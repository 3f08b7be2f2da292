"""Teachers fitted on frozen features: the self-trained probe, and the prompt-aware probe that weighs the prompt
against the gold labels by evidence.

The prompt-aware probe is the teacher of the similarity head (backbones without an MLM head). Its training
set is

- the gold examples (weight 1 each);
- the verbaliser prototypes as `verbaliser_points` labeled points per class (weight 1 each);
- the zero-shot prompt's pseudo-labels on the pool (per predicted class, the examples at or above that class's
  median margin), together worth `w` gold examples, where

      w = prompt_weight * P(accuracy of the zero-shot prompt > chance | its hits on the gold labels)

  under a uniform prior (Beta posterior). A prompt that is right on the gold labels counts as about
  `prompt_weight` labeled examples; one that is no better than chance on them is ignored. With more gold
  labels the fixed prompt weight matters less and less, as a prior should.

A prompt that looks wrong (`prompt_looks_wrong`: at least 90% likely to be right less often than chance, the mark
of label words attached to the wrong classes) gives neither pool labels nor points: its points, amplified by the
self-training, pulled the teacher below chance (`benchmarks.teacher_weights --swap-prompt`).

It is then self-trained `iterations` times on the pool (`self_train_logreg`'s median rule). Only gold labels
and the classifiers' own predictions are used.

With `balanced`, every logistic regression gives each class the same total weight (gold, points and pseudo-labels
together), i.e. assumes the classes about equally common: the gold labels' chance class ratio and the
self-training's drift towards the class it already predicts most then stop tilting the teacher.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

WRONG_PROMPT_EVIDENCE = 0.1  # P(the prompt beats chance) at or below which it looks wrong (`prompt_looks_wrong`)


def logreg(x: np.ndarray, y: np.ndarray, c: float, seed: int, sample_weight: np.ndarray | None = None,
           balanced: bool = False):  # fmt: skip
    """A fitted scikit-learn logistic regression (C=`c`). `balanced`: each example's weight is scaled so that every
    class present carries the same total weight (the total unchanged)."""
    from sklearn.linear_model import LogisticRegression

    if balanced:
        sw = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        classes, index = np.unique(y, return_inverse=True)
        per_class = np.bincount(index, weights=sw)  # (C',)
        sample_weight = sw * sw.sum() / (len(classes) * per_class[index])
    return LogisticRegression(C=c, max_iter=5000, random_state=seed).fit(x, y, sample_weight=sample_weight)


def median_confident(pred: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """Per predicted class, the examples at or above that class's median confidence: (N,) bool."""
    keep = np.zeros(len(pred), dtype=bool)
    for k in np.unique(pred):
        in_k = pred == k
        keep |= in_k & (conf >= np.median(conf[in_k]))
    return keep


def self_train_logreg(
    x_gold: np.ndarray,
    y_gold: np.ndarray,
    x_pool: np.ndarray | None = None,
    c: float = 100.0,
    iterations: int = 0,
    seed: int = 0,
    balanced: bool = False,
):
    """Logistic regression (C=`c`) on the gold features, then `iterations` times: predict the pool, keep per
    predicted class the examples at or above that class's median confidence, refit on gold + those.

    Returns the fitted scikit-learn classifier. Only gold labels and the classifier's own predictions are used.
    `balanced`: every class the same total weight in every fit (module docstring).
    """
    clf = logreg(x_gold, y_gold, c, seed, balanced=balanced)
    if x_pool is None or not len(x_pool):
        return clf
    for _ in range(iterations):
        proba = clf.predict_proba(x_pool)  # (N, C')
        pred, conf = clf.classes_[proba.argmax(1)], proba.max(1)  # (N,), (N,)
        keep = median_confident(pred, conf)
        clf = logreg(np.concatenate([x_gold, x_pool[keep]]), np.concatenate([y_gold, pred[keep]]), c, seed,
                     balanced=balanced)  # fmt: skip
    return clf


def zero_shot_scores(x: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    """Cosine of each (normalised) feature with each class prototype: (N, D), (C, D) -> (N, C)."""
    p = prototypes / np.linalg.norm(prototypes, axis=1, keepdims=True)
    return x @ p.T


def prompt_evidence(correct: int, n: int, num_classes: int, grid: int = 2001) -> float:
    """P(accuracy > 1/C | `correct` hits in `n` gold labels), uniform prior on the accuracy."""
    acc = np.linspace(0.0, 1.0, grid)
    log_post = correct * np.log(np.clip(acc, 1e-300, None)) + (n - correct) * np.log(np.clip(1 - acc, 1e-300, None))
    post = np.exp(log_post - log_post.max())
    return float(post[acc > 1.0 / num_classes].sum() / post.sum())


def prompt_looks_wrong(evidence: float) -> bool:
    """Whether the gold labels make it at least 90% likely that the prompt is right less often than chance: the mark
    of label words attached to the wrong classes (`evidence` from `prompt_evidence`)."""
    return evidence <= WRONG_PROMPT_EVIDENCE


def prompt_weighted_probe(
    x_gold: np.ndarray,
    y_gold: np.ndarray,
    x_pool: np.ndarray | None,
    prototypes: np.ndarray,
    w: float,
    verbaliser_points: int = 5,
    iterations: int = 3,
    c: float = 100.0,
    seed: int = 0,
    point_weight: float = 1.0,
    prompt_pool: np.ndarray | None = None,
    points: np.ndarray | None = None,
    balanced: bool = False,
    smooth: Callable[[np.ndarray], np.ndarray] | None = None,
):
    """Gold + verbaliser points (each of weight `point_weight`) + the zero-shot prompt's confident pool labels
    worth `w` gold examples, then `iterations` rounds of self-training (module docstring). Returns the
    scikit-learn classifier.

    The classifier may read other features than the prompt (`benchmarks.layer_features`): then `prompt_pool` is
    the pool in the prototypes' space (default `x_pool`) and `points` the verbalisers in the classifier's
    (default the prototypes). `balanced`: every class the same total weight in every fit. `smooth`: applied to the
    pool's (N, C') class probabilities before each self-training round picks its labels
    (`benchmarks.label_propagation`)."""
    num_classes = len(prototypes)
    p = prototypes / np.linalg.norm(prototypes, axis=1, keepdims=True)
    points = p if points is None else points
    xs, ys = [np.repeat(points, verbaliser_points, 0)], [np.repeat(np.arange(num_classes), verbaliser_points)]
    ws = [np.full(len(ys[0]), point_weight)]
    if x_pool is not None and len(x_pool) and w > 0:
        scores = zero_shot_scores(x_pool if prompt_pool is None else prompt_pool, p)  # (N, C)
        top2 = np.sort(scores, axis=1)[:, -2:]
        pred, margin = scores.argmax(1), top2[:, 1] - top2[:, 0]
        keep = median_confident(pred, margin)
        xs.append(x_pool[keep])
        ys.append(pred[keep])
        ws.append(np.full(int(keep.sum()), w / max(1, int(keep.sum()))))
    clf = logreg(np.concatenate([x_gold, *xs]), np.concatenate([y_gold, *ys]), c, seed,
                 np.concatenate([np.ones(len(y_gold)), *ws]), balanced)  # fmt: skip
    if x_pool is not None and len(x_pool):
        for _ in range(iterations):  # the self-training keeps the verbaliser points, not the zero-shot labels
            proba = clf.predict_proba(x_pool)  # (N, C')
            proba = proba if smooth is None else smooth(proba)
            pred, conf = clf.classes_[proba.argmax(1)], proba.max(1)
            keep = median_confident(pred, conf)
            sw = None  # all ones unless the points weigh otherwise
            if point_weight != 1.0:
                sw = np.concatenate([np.ones(len(y_gold)), ws[0], np.ones(int(keep.sum()))])
            clf = logreg(np.concatenate([x_gold, xs[0], x_pool[keep]]), np.concatenate([y_gold, ys[0], pred[keep]]),
                         c, seed, sw, balanced)  # fmt: skip
    return clf


def prompt_aware_probe(
    x_gold: np.ndarray,
    y_gold: np.ndarray,
    x_pool: np.ndarray | None,
    prototypes: np.ndarray,
    prompt_weight: float = 5.0,
    verbaliser_points: int = 5,
    iterations: int = 3,
    c: float = 100.0,
    seed: int = 0,
    prompt_gold: np.ndarray | None = None,
    prompt_pool: np.ndarray | None = None,
    points: np.ndarray | None = None,
    balanced: bool = False,
    smooth: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[object, dict[str, float]]:
    """The evidence-weighted prompt + gold teacher (module docstring). Returns the classifier and what it
    measured: the prompt's gold accuracy, the evidence and the weight its pool labels got. `prompt_gold`,
    `prompt_pool`, `points`: the prompt's own features when the classifier reads others (`prompt_weighted_probe`);
    `balanced`: every class the same total weight in every fit; `smooth` as there."""
    p = prototypes / np.linalg.norm(prototypes, axis=1, keepdims=True)
    correct = int((zero_shot_scores(x_gold if prompt_gold is None else prompt_gold, p).argmax(1) == y_gold).sum())
    evidence = prompt_evidence(correct, len(y_gold), len(prototypes))
    w = prompt_weight * evidence
    if prompt_looks_wrong(evidence):  # the app warns of it too: the teacher is the gold labels' alone
        w, verbaliser_points = 0.0, 0
    clf = prompt_weighted_probe(x_gold, y_gold, x_pool, prototypes, w, verbaliser_points, iterations, c, seed,
                                prompt_pool=prompt_pool, points=points, balanced=balanced, smooth=smooth)  # fmt: skip
    info = {"prompt_gold_accuracy": correct / max(1, len(y_gold)), "prompt_evidence": evidence, "prompt_weight": w}
    return clf, info


def prompt_prior_logreg(
    x_gold: np.ndarray,
    y_gold: np.ndarray,
    x_pool: np.ndarray,
    prototypes: np.ndarray,
    c: float = 100.0,
    iterations: int = 3,
    seed: int = 0,
    balanced: bool = False,
):
    """The prompt-first peer (`baselines.prompt_prior_probe`) on features: the zero-shot prompt's pool labels at
    or above their class's median margin join the gold examples as labels of full weight, whatever the prompt's
    accuracy on the gold labels, then `self_train_logreg`'s `iterations` rounds (`balanced` as there)."""
    scores = zero_shot_scores(x_pool, prototypes)  # (N, C)
    top2 = np.sort(scores, axis=1)[:, -2:]
    pred = scores.argmax(1)
    keep = median_confident(pred, top2[:, 1] - top2[:, 0])
    return self_train_logreg(np.concatenate([x_gold, x_pool[keep]]), np.concatenate([y_gold, pred[keep]]), x_pool, c,
                             iterations, seed, balanced)  # fmt: skip
