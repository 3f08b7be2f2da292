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

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .backbone import Backbone
from .calibration import fit_temperature
from .config import TrainConfig
from .data import Encoded, Row, check_task
from .heads import linear_of
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
    """The fitted rule: a logistic regression on the standardised cosine of a pair's two texts, in softmax form
    (`logit_c = weight_c * z + bias_c`, z the standardised cosine), so it saves as a few numbers."""

    backbone: Backbone | None  # None: a rule fitted on cosines alone (an analysis), which predicts from cosines only
    weight: np.ndarray  # (C,)
    bias: np.ndarray  # (C,)
    mean: float
    std: float
    max_length: int
    temperature: float = 1.0  # calibration, as for adapter models: the logits are divided by it

    @property
    def num_classes(self) -> int:
        return len(self.weight)

    def logits(self, cos: np.ndarray) -> np.ndarray:
        """(N,) cosines -> (N, C) class logits."""
        z = (cos - self.mean) / self.std  # (N,)
        return z[:, None] * self.weight[None, :] + self.bias[None, :]

    def row_logits(self, rows: Sequence[Row], batch_size: int = 64) -> torch.Tensor:
        """(N, C) class logits of pairs (before the temperature)."""
        return torch.from_numpy(self.logits(pair_cosines(self.backbone, rows, self.max_length, batch_size)))

    def predict_proba(self, rows: Sequence[Row], batch_size: int = 64) -> torch.Tensor:
        return (self.row_logits(rows, batch_size) / self.temperature).softmax(-1).float()  # (N, C)

    def to_json(self) -> dict[str, Any]:
        return {"weight": self.weight.tolist(), "bias": self.bias.tolist(), "mean": self.mean, "std": self.std,
                "max_length": self.max_length, "temperature": self.temperature}  # fmt: skip

    @classmethod
    def from_json(cls, backbone: Backbone, cfg: dict[str, Any]) -> PairSimilarity:
        weight, bias = np.asarray(cfg["weight"], dtype=np.float64), np.asarray(cfg["bias"], dtype=np.float64)
        if weight.ndim != 1 or weight.shape != bias.shape or len(weight) < 2:
            raise ValueError(f"pair-similarity weight {cfg['weight']!r} and bias {cfg['bias']!r}: need one number "
                             "per class (at least 2)")  # fmt: skip
        if not float(cfg["std"]) > 0:
            raise ValueError(f"pair-similarity std {cfg['std']!r}: must be > 0")
        return cls(backbone, weight, bias, float(cfg["mean"]), float(cfg["std"]), int(cfg["max_length"]),
                   float(cfg.get("temperature", 1.0)))  # fmt: skip


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
    return fit_on_cosines(cos_gold, y_gold, cos_pool, len(task.labels), cfg.seed, backbone, cfg.max_length)


def fit_on_cosines(
    cos_gold: np.ndarray,
    y_gold: np.ndarray,
    cos_pool: np.ndarray,
    num_classes: int,
    seed: int = 0,
    backbone: Backbone | None = None,
    max_length: int = 128,
) -> PairSimilarity:
    """The rule fitted on the gold pairs' (G,) cosines and labels and the pool's (P,) cosines (`backbone` is only
    needed to predict from texts)."""
    order, thresholds = cosine_rule(cos_gold, y_gold, cos_pool)
    x = np.concatenate([cos_gold, cos_pool])
    y = np.concatenate([y_gold, apply_rule(cos_pool, order, thresholds)])
    mean, std = float(x.mean()), float(x.std() or 1.0)
    clf = logreg(((x - mean) / std)[:, None], y, 100.0, seed)
    w, b = linear_of(clf, num_classes, 1)  # (C, 1), (C,)
    model = PairSimilarity(backbone, w[:, 0].double().numpy(), b.double().numpy(), mean, std, max_length)
    # the pool's labels come from thresholds, so they are separable by construction and the fitted slope is as steep
    # as C allows: the gold pairs say how sure the rule is (a temperature; the argmax does not change)
    model.temperature = fit_temperature(torch.from_numpy(model.logits(cos_gold)), y_gold.tolist())
    return model


def run_pair_similarity(backbone, prompt, task, cfg, callback=None, should_cancel=None, checkpoint_dir=None):
    return pair_similarity(backbone, prompt, task, cfg)


CONFIG = "pair_similarity.json"


def save_pair_similarity(
    model: PairSimilarity, folder: str | Path, labels: Sequence[str], prompt: Prompt, metrics: dict | None = None
) -> Path:
    """Write the rule (`pair_similarity.json`: its numbers, the labels, the backbone and its weights hash) and a
    model card whose snippet computes the same probabilities with plain transformers."""
    from .cards import pair_similarity_card
    from .export import backbone_hash

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"format": "list-pair-similarity", "format_version": 1, "backbone": model.backbone.name,
           "backbone_hash": backbone_hash(model.backbone), **prompt.to_json(), "labels": list(labels),
           **model.to_json(), "metrics": metrics or {}}  # fmt: skip
    if len(cfg["labels"]) != model.num_classes:
        raise ValueError(f"labels {list(labels)!r}: the rule has {model.num_classes} classes")
    (folder / CONFIG).write_text(json.dumps(cfg, indent=1))
    (folder / "README.md").write_text(pair_similarity_card(cfg))
    return folder


def load_pair_similarity(
    folder: str | Path, backbone: str | Backbone | None = None, allow_backbone_mismatch: bool = False
) -> Any:
    """A saved pair-similarity rule on its backbone (the recorded one, or `backbone`), as an
    `export.Classifier`; a malformed file or another backbone is an `ExportError`."""
    from .backbone import load_backbone
    from .export import Classifier, ExportError, allowed_backbone, backbone_hash

    path = Path(folder) / CONFIG
    try:
        cfg = json.loads(path.read_text())
        if cfg.get("format") != "list-pair-similarity" or cfg.get("format_version") != 1:
            raise ValueError(f"unsupported format {cfg.get('format')!r} v{cfg.get('format_version')}")
        bb = (
            backbone if isinstance(backbone, Backbone) else load_backbone(backbone or allowed_backbone(cfg["backbone"]))
        )
        model = PairSimilarity.from_json(bb, cfg)
        if len(cfg["labels"]) != model.num_classes:
            raise ValueError(f"labels {cfg['labels']!r}: the rule has {model.num_classes} classes")
    except ExportError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ExportError(f"{path}: {e}") from None
    if backbone_hash(bb) != cfg["backbone_hash"] and not allow_backbone_mismatch:
        raise ExportError(f"backbone {bb.name!r} is not the one this rule was fitted on (weights sha256 "
                          f"{backbone_hash(bb)[:12]}… != {cfg['backbone_hash'][:12]}…)")  # fmt: skip
    return Classifier(model, list(cfg["labels"]), cfg)
