"""Classification heads on top of the encoder: the MLM prompt head and a classic pooled linear head."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from .backbone import Backbone


class PromptHead(nn.Module):
    """The MLM head at the mask, restricted to the label words: class logits = MLM logits of those words.

    Trainable are the head transform (dense, activation, LayerNorm) and the label-word rows of the decoder
    with their biases; the full vocabulary matrix is never copied or saved.
    """

    def __init__(self, backbone: Backbone, label_ids: list[int]) -> None:
        super().__init__()
        dense, act, norm = backbone.spec.transform(backbone.model)
        self.dense = copy.deepcopy(dense)
        self.act = act
        self.norm = copy.deepcopy(norm)
        decoder = backbone.model.get_output_embeddings()
        ids = torch.tensor(label_ids, device=decoder.weight.device)
        bias = decoder.bias if decoder.bias is not None else torch.zeros(decoder.out_features, device=ids.device)
        self.label_weight = nn.Parameter(decoder.weight.detach()[ids].clone())  # (C, D)
        self.label_bias = nn.Parameter(bias.detach()[ids].clone())  # (C,)
        self.requires_grad_(True)
        self._initial = {k: v.detach().clone() for k, v in self.state_dict().items()}

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Back to the pretrained head (a fresh student starts from what the backbone knows)."""
        self.load_state_dict(self._initial)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor, mask_pos: torch.Tensor) -> torch.Tensor:
        h = hidden[torch.arange(hidden.shape[0], device=hidden.device), mask_pos]  # (B, D)
        h = self.norm(self.act(self.dense(h)))  # (B, D)
        return h @ self.label_weight.T + self.label_bias  # (B, C)


class ClassicHead(nn.Module):
    """A linear classifier on the mean-pooled (or first-token) representation."""

    def __init__(self, hidden_size: int, num_classes: int, pooling: str = "mean") -> None:
        super().__init__()
        self.pooling = pooling
        self.linear = nn.Linear(hidden_size, num_classes)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        with torch.no_grad():
            w = torch.randn(self.linear.weight.shape, generator=generator) * 0.02
            self.linear.weight.copy_(w.to(self.linear.weight.device))
            self.linear.bias.zero_()

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor, mask_pos: torch.Tensor) -> torch.Tensor:
        return self.linear(pool(hidden, attention_mask, self.pooling))  # (B, C)


class ProbeHead(nn.Module):
    """A linear classifier on L2-normalised mean-pooled features, initialised by a logistic-regression fit on
    the gold examples' frozen features (optionally self-trained on the pool's frozen features). For backbones
    without a pretrained MLM head (e.g. sentence encoders) this starts every teacher and student from the
    strong linear probe instead of from random weights."""

    def __init__(self, hidden_size: int, num_classes: int, c: float = 100.0) -> None:
        super().__init__()
        self.pooling = "mean"
        self.c = c
        self.linear = nn.Linear(hidden_size, num_classes)
        self._initial: dict[str, torch.Tensor] | None = None
        ClassicHead.reset_parameters(self)  # random until `fit` is called

    @torch.no_grad()
    def fit(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        seed: int = 0,
        pool_features: torch.Tensor | None = None,
        iterations: int = 0,
    ) -> None:
        """Logistic regression (C=`c`) on (N, D) normalised features; becomes the reset state. With
        `pool_features` and `iterations`, it is self-trained on the unlabeled pool (`self_train_logreg`)."""
        x = features.float().cpu().numpy()
        y = labels.cpu().numpy()
        pool_x = pool_features.float().cpu().numpy() if pool_features is not None else None
        clf = self_train_logreg(x, y, pool_x, self.c, iterations, seed)
        w = torch.zeros_like(self.linear.weight)  # (C, D)
        b = torch.zeros_like(self.linear.bias)  # (C,)
        coef = torch.from_numpy(clf.coef_).float()
        icpt = torch.from_numpy(clf.intercept_).float()
        if coef.shape[0] == 1:  # binary: sigmoid(w.x + b) == softmax([-w/2, w/2] . x + [-b/2, b/2])
            w[clf.classes_[0]], w[clf.classes_[1]] = -coef[0] / 2, coef[0] / 2
            b[clf.classes_[0]], b[clf.classes_[1]] = -icpt[0] / 2, icpt[0] / 2
        else:
            w[torch.from_numpy(clf.classes_)] = coef.to(w.device)
            b[torch.from_numpy(clf.classes_)] = icpt.to(b.device)
        self.linear.weight.copy_(w)
        self.linear.bias.copy_(b)
        self._initial = {k: v.detach().clone() for k, v in self.state_dict().items()}

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        if self._initial is None:
            ClassicHead.reset_parameters(self, generator)
        else:
            self.load_state_dict(self._initial)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor, mask_pos: torch.Tensor) -> torch.Tensor:
        x = nn.functional.normalize(pool(hidden, attention_mask, "mean"), dim=-1)  # (B, D)
        return self.linear(x)  # (B, C)


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
    from sklearn.linear_model import LogisticRegression

    def fit(x: np.ndarray, y: np.ndarray):
        return LogisticRegression(C=c, max_iter=5000, random_state=seed).fit(x, y)

    clf = fit(x_gold, y_gold)
    if x_pool is None or not len(x_pool):
        return clf
    for _ in range(iterations):
        proba = clf.predict_proba(x_pool)  # (N, C')
        pred, conf = clf.classes_[proba.argmax(1)], proba.max(1)  # (N,), (N,)
        keep = np.zeros(len(pred), dtype=bool)
        for k in np.unique(pred):
            in_k = pred == k
            keep |= in_k & (conf >= np.median(conf[in_k]))
        clf = fit(np.concatenate([x_gold, x_pool[keep]]), np.concatenate([y_gold, pred[keep]]))
    return clf


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
    """(B, T, D) hidden states -> (B, D), mean over real tokens or the first token."""
    if pooling == "cls":
        return hidden[:, 0]
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def choose_head(requested: str, backbone: Backbone) -> tuple[str, str]:
    """Resolve `head="auto"`: the prompt head only carries knowledge when the MLM head is pretrained."""
    if requested != "auto":
        return requested, f"head={requested!r} was requested"
    if backbone.head_pretrained:
        return "prompt", "the backbone's MLM head is pretrained, so the prompt head starts from its knowledge"
    n = len(backbone.missing_head_keys)
    return "probe", (
        f"the backbone has no pretrained MLM head ({n} head weights were newly initialised), "
        "so a prompt head would start from random weights; using a probe head (a linear classifier on "
        "normalised mean-pooled features, initialised from a logistic regression on the gold examples, "
        "self-trained on the unlabeled pool when probe_self_train > 0)"
    )
