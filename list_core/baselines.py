"""Baselines on the same code paths: zero-shot prompt, linear probes (plain, self-trained, prompt-prior),
classic and prompt fine-tuning."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from . import views
from .backbone import Backbone
from .config import TrainConfig
from .data import Encoded, Row, check_task
from .events import Callback, CancelCheck, Event, Reporter
from .heads import linear_of, run_layers
from .model import ListModel
from .prompts import Prompt
from .self_training import RunResult, TaskData, run_list
from .teacher import logreg, prompt_prior_logreg, self_train_logreg


def embed(
    backbone: Backbone,
    prompt: Prompt,
    rows: Sequence[Row],
    max_length: int = 128,
    batch_size: int = 64,
    plain: bool = True,
    feature_layers: int = 1,
) -> np.ndarray:
    """Frozen mean-pooled, L2-normalised features: (N, L*D) of the last `feature_layers` layers (`view_features`).
    `plain`: of the texts alone (how a sentence encoder is used); else of the rows rendered in the template."""
    model = ListModel(backbone, prompt, head="probe", adapter=None, max_length=max_length,
                      feature_layers=feature_layers)  # fmt: skip
    enc = Encoded.of(prompt, backbone.tokenizer, rows, max_length, plain=plain)
    return model.frozen_features(enc, batch_size).numpy()


@dataclass
class LinearProbe:
    """Logistic regression on frozen features."""

    backbone: Backbone
    prompt: Prompt
    classifier: object
    max_length: int
    feature_layers: int = 1

    def predict_proba(self, rows: Sequence[Row], batch_size: int = 64) -> torch.Tensor:
        x = embed(self.backbone, self.prompt, rows, self.max_length, batch_size, feature_layers=self.feature_layers)
        return torch.from_numpy(self.classifier.predict_proba(x)).float()

    def as_model(self) -> ListModel:
        """The same classifier as a `ListModel` without adapters, to keep, export and predict with like any run:
        the similarity head holds a linear classifier of normalised plain features exactly (`set_linear`)."""
        model = ListModel(self.backbone, self.prompt, head="similarity", adapter=None, max_length=self.max_length,
                          feature_layers=self.feature_layers)  # fmt: skip
        w, b = linear_of(self.classifier, self.prompt.num_classes, model.feature_dim)
        model.head.set_linear(w.to(model.device), b.to(model.device))
        model.head_reason = "a logistic regression on the frozen backbone's normalised mean-pooled features"
        return model.eval()


def linear_probe(backbone: Backbone, prompt: Prompt, task: TaskData, cfg: TrainConfig, c: float = 100.0) -> LinearProbe:
    """Logistic regression (C=`c`) on frozen mean-pooled normalised embeddings of the gold examples."""
    check_task(prompt, task.labels, task.gold_rows, task.gold_labels, [])
    cfg = _layers(backbone, prompt, task, cfg)
    x = _embed(backbone, prompt, task.gold_rows, cfg)
    clf = logreg(x, np.asarray(task.gold_labels), c, cfg.seed, balanced=cfg.class_balance)
    return LinearProbe(backbone, prompt, clf, cfg.max_length, cfg.feature_layers)


def self_train_probe(
    backbone: Backbone, prompt: Prompt, task: TaskData, cfg: TrainConfig, c: float = 100.0, iterations: int = 3
) -> LinearProbe:
    """The cheap self-training baseline: a C=`c` probe, then `iterations` times: predict the pool, keep per
    predicted class the examples at or above that class's median confidence, retrain on gold + those."""
    check_task(prompt, task.labels, task.gold_rows, task.gold_labels, task.unlabeled_rows)
    cfg = _layers(backbone, prompt, task, cfg)
    x_gold = _embed(backbone, prompt, task.gold_rows, cfg)
    x_pool = _embed(backbone, prompt, task.unlabeled_rows, cfg) if task.unlabeled_rows else None
    clf = self_train_logreg(x_gold, np.asarray(task.gold_labels), x_pool, c, iterations, cfg.seed, cfg.class_balance)
    return LinearProbe(backbone, prompt, clf, cfg.max_length, cfg.feature_layers)


def prompt_prior_probe(
    backbone: Backbone, prompt: Prompt, task: TaskData, cfg: TrainConfig, c: float = 100.0, iterations: int = 3
) -> LinearProbe:
    """The prompt-first peer: the zero-shot prompt (cosine to the verbaliser embeddings) labels the pool, per
    predicted class the examples at or above that class's median margin join the gold examples, then the
    self-trained probe's `iterations` rounds."""
    check_task(prompt, task.labels, task.gold_rows, task.gold_labels, task.unlabeled_rows)
    cfg = _layers(backbone, prompt, task, cfg)
    x_gold = _embed(backbone, prompt, task.gold_rows, cfg)
    y_gold = np.asarray(task.gold_labels)
    if not task.unlabeled_rows:
        clf = logreg(x_gold, y_gold, c, cfg.seed, balanced=cfg.class_balance)
        return LinearProbe(backbone, prompt, clf, cfg.max_length, cfg.feature_layers)
    x_pool = _embed(backbone, prompt, task.unlabeled_rows, cfg)
    # the zero-shot prompt on the last layer (zero on the other layers' blocks: the same labels and margin order)
    protos = ListModel(backbone, prompt, head="similarity", adapter=None, max_length=cfg.max_length,
                       feature_layers=cfg.feature_layers).verbaliser_prototypes()  # fmt: skip
    clf = prompt_prior_logreg(x_gold, y_gold, x_pool, protos.cpu().numpy(), c, iterations, cfg.seed, cfg.class_balance)
    return LinearProbe(backbone, prompt, clf, cfg.max_length, cfg.feature_layers)


def _layers(backbone: Backbone, prompt: Prompt, task: TaskData, cfg: TrainConfig) -> TrainConfig:
    """`cfg` with `feature_layers=0` resolved as a LiST run resolves it (`views.resolve`, on the gold labels), or
    capped at the backbone's depth; the probes read that one view (LiST's `teacher_views` ensemble is not theirs)."""
    if cfg.feature_layers:
        return cfg.with_(feature_layers=run_layers(cfg.feature_layers, backbone), teacher_views="")
    n, _, _ = views.resolve(backbone, prompt, task.gold_rows, task.gold_labels, task.unlabeled_rows, cfg)
    return cfg.with_(feature_layers=n, teacher_views="")


def _embed(backbone: Backbone, prompt: Prompt, rows: Sequence[Row], cfg: TrainConfig) -> np.ndarray:
    return embed(backbone, prompt, rows, cfg.max_length, cfg.eval_batch_size, feature_layers=cfg.feature_layers)


@dataclass
class ZeroShot:
    model: ListModel

    def predict_proba(self, rows: Sequence[Row], batch_size: int = 64) -> torch.Tensor:
        return self.model.predict_proba(rows, batch_size)

    def as_model(self) -> ListModel:
        return self.model


def run_list_method(backbone, prompt, task, cfg, callback=None, should_cancel=None, checkpoint_dir=None) -> RunResult:
    return run_list(backbone, prompt, task, cfg, callback, should_cancel, checkpoint_dir)


def run_prompt_finetuning(backbone, prompt, task, cfg, callback=None, should_cancel=None, checkpoint_dir=None):
    """Adapters and the backbone's prompt head (the MLM head at the mask, or the similarity head for a sentence
    encoder) tuned on the gold labels only: the paper's prompt fine-tuning baseline."""
    head = "prompt" if backbone.head_pretrained else "similarity"
    cfg = cfg.with_(head=head, rounds=0, probe_self_train=0)
    return run_list(backbone, prompt, task, cfg, callback, should_cancel, checkpoint_dir)


def run_classic_finetuning(backbone, prompt, task, cfg, callback=None, should_cancel=None, checkpoint_dir=None):
    return run_list(
        backbone, prompt, task, cfg.with_(head="classic", rounds=0), callback, should_cancel, checkpoint_dir
    )


def run_zero_shot(backbone, prompt, task, cfg, callback=None, should_cancel=None, checkpoint_dir=None) -> ZeroShot:
    """The MLM head at the mask, or the similarity head (cosine to the verbalisers) for a sentence encoder."""
    check_task(prompt, task.labels, task.gold_rows, task.gold_labels, [])
    model = ListModel(backbone, prompt, head="auto", adapter=None, max_length=cfg.max_length)
    Reporter(callback)(Event("setup", message=model.head_reason, metrics={"head": model.head_kind}))
    return ZeroShot(model)


def run_linear_probe(backbone, prompt, task, cfg, callback=None, should_cancel=None, checkpoint_dir=None):
    return linear_probe(backbone, prompt, task, cfg)


def run_self_train_probe(backbone, prompt, task, cfg, callback=None, should_cancel=None, checkpoint_dir=None):
    return self_train_probe(backbone, prompt, task, cfg)


def run_prompt_prior_probe(backbone, prompt, task, cfg, callback=None, should_cancel=None, checkpoint_dir=None):
    return prompt_prior_probe(backbone, prompt, task, cfg)


def run_method(
    method: str,
    backbone: Backbone,
    prompt: Prompt,
    task: TaskData,
    cfg: TrainConfig,
    callback: Callback | None = None,
    should_cancel: CancelCheck | None = None,
    checkpoint_dir: str | None = None,
) -> RunResult | LinearProbe | ZeroShot:
    """Run a registered method (`list_core.methods`); every result has `predict_proba(rows) -> (N, C)`."""
    from .methods import get

    return get(method).run(backbone, prompt, task, cfg, callback, should_cancel, checkpoint_dir)
