"""The pair-similarity baseline: a pair task (entailment, paraphrase) on a sentence encoder, read through the cosine
of the two texts' own embeddings.

A sentence encoder reads a pair template, or the two texts as one tokenizer pair, as one sentence, and knows little
about how they relate there: every prompt-based method on rte stays near chance with the default backbone. But its
embedding space was trained to put related sentences close together, so the cosine of the two texts embedded
apart carries the relation (an entailed hypothesis restates its premise). The rule needs only the gold labels and the
unlabeled pool's cosines:

- the classes are ordered by their gold examples' mean cosine (e.g. not_entailment below entailment);
- the thresholds between them are the pool's cosine quantiles at the gold labels' cumulative class shares (with 2
  balanced classes: the pool's median), so they use every unlabeled pair and no pool label;
- probabilities come from a logistic regression on the (standardised) cosine, fitted on the gold pairs and the pool
  pairs labeled by those thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .backbone import Backbone
from .config import TrainConfig
from .data import Encoded, Row, check_task
from .model import ListModel
from .prompts import Prompt
from .self_training import TaskData
from .teacher import logreg


def pair_cosines(backbone: Backbone, rows: Sequence[Row], max_length: int = 128, batch_size: int = 64) -> np.ndarray:
    """(N,) cosine of each pair's `text_a` and `text_b`, each embedded alone (mean-pooled, frozen)."""
    # any single-text prompt will do: only the frozen encoder is used
    model = ListModel(backbone, Prompt("{text} {mask}", ("a", "b")), head="classic", adapter=None,
                      max_length=max_length)  # fmt: skip
    tok = backbone.tokenizer
    a = model.frozen_features(Encoded.sentences(tok, [str(r["text_a"]) for r in rows], max_length), batch_size)
    b = model.frozen_features(Encoded.sentences(tok, [str(r["text_b"]) for r in rows], max_length), batch_size)
    return (a * b).sum(-1).numpy()  # (N,): the features are L2-normalised


def cosine_rule(cos_gold: np.ndarray, y_gold: np.ndarray, cos_pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The classes ordered from the lowest to the highest mean gold cosine (C,), and the C-1 thresholds between
    them: the pool's cosine quantiles at the gold labels' cumulative class shares in that order."""
    classes = np.unique(y_gold)
    order = classes[np.argsort([cos_gold[y_gold == c].mean() for c in classes], kind="stable")]
    shares = np.array([(y_gold == c).mean() for c in order])
    thresholds = np.quantile(cos_pool, np.cumsum(shares)[:-1])
    return order, thresholds


def apply_rule(cos: np.ndarray, order: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(N,) class of each cosine under `cosine_rule`'s order and thresholds."""
    return order[np.searchsorted(thresholds, cos, side="right")]


@dataclass
class PairSimilarity:
    """The fitted rule: a logistic regression on the standardised cosine of a pair's two texts."""

    backbone: Backbone
    classifier: object
    mean: float
    std: float
    num_classes: int
    max_length: int

    def predict_proba(self, rows: Sequence[Row], batch_size: int = 64) -> torch.Tensor:
        z = (pair_cosines(self.backbone, rows, self.max_length, batch_size) - self.mean) / self.std  # (N,)
        proba = np.zeros((len(rows), self.num_classes))
        proba[:, self.classifier.classes_] = self.classifier.predict_proba(z[:, None])  # (N, C)
        return torch.from_numpy(proba).float()


def pair_similarity(backbone: Backbone, prompt: Prompt, task: TaskData, cfg: TrainConfig) -> PairSimilarity:
    """Fit the pair-similarity rule (module docstring) on the gold pairs and the unlabeled pool."""
    if not prompt.is_pair:
        raise ValueError("the pair-similarity baseline is for pair tasks ({text_a} and {text_b}); this prompt reads "
                         "one text")  # fmt: skip
    check_task(prompt, task.labels, task.gold_rows, task.gold_labels, task.unlabeled_rows)
    y_gold = np.asarray(task.gold_labels)
    cos_gold = pair_cosines(backbone, task.gold_rows, cfg.max_length, cfg.eval_batch_size)
    cos_pool = (pair_cosines(backbone, list(task.unlabeled_rows), cfg.max_length, cfg.eval_batch_size)
                if len(task.unlabeled_rows) else cos_gold)  # fmt: skip
    order, thresholds = cosine_rule(cos_gold, y_gold, cos_pool)
    x = np.concatenate([cos_gold, cos_pool])
    y = np.concatenate([y_gold, apply_rule(cos_pool, order, thresholds)])
    mean, std = float(x.mean()), float(x.std() or 1.0)
    clf = logreg(((x - mean) / std)[:, None], y, 100.0, cfg.seed)
    return PairSimilarity(backbone, clf, mean, std, len(task.labels), cfg.max_length)


def run_pair_similarity(backbone, prompt, task, cfg, callback=None, should_cancel=None, checkpoint_dir=None):
    return pair_similarity(backbone, prompt, task, cfg)
