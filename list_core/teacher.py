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

It is then self-trained `iterations` times on the pool (`self_train_logreg`'s median rule). Only gold labels
and the classifiers' own predictions are used.
"""

from __future__ import annotations

import numpy as np


def logreg(x: np.ndarray, y: np.ndarray, c: float, seed: int, sample_weight: np.ndarray | None = None):
    from sklearn.linear_model import LogisticRegression

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
):
    """Logistic regression (C=`c`) on the gold features, then `iterations` times: predict the pool, keep per
    predicted class the examples at or above that class's median confidence, refit on gold + those.

    Returns the fitted scikit-learn classifier. Only gold labels and the classifier's own predictions are used.
    """
    clf = logreg(x_gold, y_gold, c, seed)
    if x_pool is None or not len(x_pool):
        return clf
    for _ in range(iterations):
        proba = clf.predict_proba(x_pool)  # (N, C')
        pred, conf = clf.classes_[proba.argmax(1)], proba.max(1)  # (N,), (N,)
        keep = median_confident(pred, conf)
        clf = logreg(np.concatenate([x_gold, x_pool[keep]]), np.concatenate([y_gold, pred[keep]]), c, seed)
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
) -> tuple[object, dict[str, float]]:
    """The evidence-weighted prompt + gold teacher (module docstring). Returns the classifier and what it
    measured: the prompt's gold accuracy, the evidence and the weight the prompt got."""
    num_classes = len(prototypes)
    p = prototypes / np.linalg.norm(prototypes, axis=1, keepdims=True)
    zs_gold = zero_shot_scores(x_gold, p).argmax(1)
    correct = int((zs_gold == y_gold).sum())
    evidence = prompt_evidence(correct, len(y_gold), num_classes)
    w = prompt_weight * evidence
    xs, ys, ws = [np.repeat(p, verbaliser_points, 0)], [np.repeat(np.arange(num_classes), verbaliser_points)], []
    ws.append(np.ones(len(ys[0])))
    if x_pool is not None and len(x_pool) and w > 0:
        scores = zero_shot_scores(x_pool, p)  # (N, C)
        top2 = np.sort(scores, axis=1)[:, -2:]
        pred, margin = scores.argmax(1), top2[:, 1] - top2[:, 0]
        keep = median_confident(pred, margin)
        xs.append(x_pool[keep])
        ys.append(pred[keep])
        ws.append(np.full(int(keep.sum()), w / max(1, int(keep.sum()))))
    x_extra, y_extra, w_extra = np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)
    clf = logreg(np.concatenate([x_gold, x_extra]), np.concatenate([y_gold, y_extra]), c, seed,
                 np.concatenate([np.ones(len(y_gold)), w_extra]))  # fmt: skip
    if x_pool is not None and len(x_pool):
        x_vp, y_vp = xs[0], ys[0]  # the self-training keeps the verbaliser points, not the zero-shot labels
        for _ in range(iterations):
            proba = clf.predict_proba(x_pool)
            pred, conf = clf.classes_[proba.argmax(1)], proba.max(1)
            keep = median_confident(pred, conf)
            clf = logreg(
                np.concatenate([x_gold, x_vp, x_pool[keep]]), np.concatenate([y_gold, y_vp, pred[keep]]), c, seed
            )
    info = {"prompt_gold_accuracy": correct / max(1, len(y_gold)), "prompt_evidence": evidence, "prompt_weight": w}
    return clf, info
