"""Classification heads on top of the encoder: the MLM prompt head, the similarity prompt head (for sentence
encoders without an MLM head), a probe on frozen-feature geometry, and a classic pooled linear head."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .backbone import Backbone
from .teacher import self_train_logreg


class PromptHead(nn.Module):
    """The MLM head at the mask, restricted to the label words: a class's logit is the mean of its label words'
    MLM logits (one word per class in the paper; several words average).

    Trainable are the head transform (dense, activation, LayerNorm) and the label-word rows of the decoder
    with their biases; the full vocabulary matrix is never copied or saved.
    """

    def __init__(self, backbone: Backbone, label_ids: list[int], group_sizes: Sequence[int] | None = None) -> None:
        super().__init__()
        sizes = list(group_sizes) if group_sizes is not None else [1] * len(label_ids)
        if sum(sizes) != len(label_ids):
            raise ValueError(f"group sizes {sizes} do not cover the {len(label_ids)} label ids")
        owner = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))  # (W,) class of each word
        average = torch.zeros(len(sizes), len(label_ids))  # (C, W)
        average[owner, torch.arange(len(label_ids))] = 1.0 / torch.tensor(sizes, dtype=torch.float)[owner]
        self.register_buffer("average", average, persistent=False)
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
        words = h @ self.label_weight.T + self.label_bias  # (B, W)
        return words @ self.average.T.to(words.dtype)  # (B, C)


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


class _Restartable:
    """A head with a start state every reset returns to (a fit, or the verbalisers), kept as `_initial`."""

    _initial: dict[str, torch.Tensor] | None

    def initial_state(self) -> dict[str, torch.Tensor]:
        """The state every reset returns to (empty when there is none yet)."""
        return {k: v.clone() for k, v in (self._initial or {}).items()}

    @torch.no_grad()
    def set_initial(self, state: dict[str, torch.Tensor]) -> None:
        """Make `state` (a fit made earlier, a teacher's fit) the state every reset returns to, and reset to it."""
        self.load_state_dict(state)
        self._initial = {k: v.detach().clone() for k, v in self.state_dict().items()}


class ProbeHead(_Restartable, nn.Module):
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
        balanced: bool = False,
    ) -> None:
        """Logistic regression (C=`c`) on (N, D) normalised features; becomes the reset state. With
        `pool_features` and `iterations`, it is self-trained on the unlabeled pool (`self_train_logreg`;
        `balanced`: every class the same total weight)."""
        x = features.float().cpu().numpy()
        y = labels.cpu().numpy()
        pool_x = pool_features.float().cpu().numpy() if pool_features is not None else None
        clf = self_train_logreg(x, y, pool_x, self.c, iterations, seed, balanced)
        w, b = linear_of(clf, *self.linear.weight.shape)
        self.linear.weight.copy_(w)
        self.linear.bias.copy_(b)
        self._initial = {k: v.detach().clone() for k, v in self.state_dict().items()}

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        if self._initial is None:
            ClassicHead.reset_parameters(self, generator)
        else:
            self.load_state_dict(self._initial)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor, mask_pos: torch.Tensor) -> torch.Tensor:
        return self.logits_of(nn.functional.normalize(pool(hidden, attention_mask, "mean"), dim=-1))  # (B, C)

    def logits_of(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) normalised pooled features (`view_features`) -> (B, C) logits."""
        return self.linear(x)


class SimilarityHead(_Restartable, nn.Module):
    """The prompt for a sentence encoder: `logit_c = scale_c * cos(mean-pooled h, prototype_c) + bias_c`.

    The prototypes start as the backbone's own embeddings of each class's verbaliser (`Prompt.verbaliser_
    sentences`), so the untrained head is the zero-shot prompt classifier; scales and prototypes are
    learnable. A fresh student re-starts from the verbaliser prototypes, as the paper's student re-starts
    from the pretrained MLM head (from the teacher's fit instead when the gold labels contradict the prompt:
    `set_initial`). With one scale per class the head can also hold any linear classifier of normalised features
    exactly (`set_linear`): a teacher fitted on frozen features.
    """

    def __init__(self, prototypes: torch.Tensor, scale: float = 20.0) -> None:
        super().__init__()
        c, _ = prototypes.shape
        self.pooling = "mean"
        self.prototypes = nn.Parameter(nn.functional.normalize(prototypes.detach().float(), dim=-1).clone())  # (C, D)
        self.log_scale = nn.Parameter(torch.full((c,), math.log(scale), device=prototypes.device))  # (C,)
        self.bias = nn.Parameter(torch.zeros(c, device=prototypes.device))  # (C,)
        self._initial = {k: v.detach().clone() for k, v in self.state_dict().items()}
        self.verbaliser_prototypes = self.prototypes.detach().clone()  # (C, D): the prompt, whatever the start state

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Back to the start state: the verbaliser prototypes (the zero-shot prompt) unless `set_initial` moved it."""
        self.load_state_dict(self._initial)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor, mask_pos: torch.Tensor) -> torch.Tensor:
        return self.logits_of(nn.functional.normalize(pool(hidden, attention_mask, "mean"), dim=-1))  # (B, C)

    def logits_of(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) normalised mean-pooled features -> (B, C) logits: what `forward` computes after the pooling, so
        texts encoded once serve any prompt (prompts differ only in their prototypes)."""
        cos = x @ nn.functional.normalize(self.prototypes, dim=-1).T  # (B, C)
        return self.log_scale.exp() * cos + self.bias

    @torch.no_grad()
    def set_linear(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Hold the linear classifier `x @ weight.T + bias` of normalised features: scale = |w_c|, prototype =
        w_c / |w_c|."""
        norm = weight.float().norm(dim=-1).clamp(min=1e-12)  # (C,)
        self.prototypes.copy_(weight.float() / norm[:, None])
        self.log_scale.copy_(norm.log())
        self.bias.copy_(bias.float())


def linear_of(clf, num_classes: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A scikit-learn linear classifier as (C, D) weights and (C,) biases in class order (softmax form)."""
    w = torch.zeros(num_classes, dim)
    b = torch.zeros(num_classes)
    coef = torch.from_numpy(np.asarray(clf.coef_)).float()
    icpt = torch.from_numpy(np.asarray(clf.intercept_)).float()
    classes = torch.from_numpy(np.asarray(clf.classes_))
    if coef.shape[0] == 1:  # binary: sigmoid(w.x + b) == softmax([-w/2, w/2] . x + [-b/2, b/2])
        w[classes[0]], w[classes[1]] = -coef[0] / 2, coef[0] / 2
        b[classes[0]], b[classes[1]] = -icpt[0] / 2, icpt[0] / 2
    else:
        w[classes] = coef
        b[classes] = icpt
    return w, b


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
    """(B, T, D) hidden states -> (B, D), mean over real tokens or the first token."""
    if pooling == "cls":
        return hidden[:, 0]
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


# heads that read pooled features, and so can read several layers' (`view_features`)
VIEW_HEADS = ("similarity", "probe")


def view_features(states: Sequence[torch.Tensor], attention_mask: torch.Tensor) -> torch.Tensor:
    """L hidden states (B, T, D) -> (B, L*D): each mean-pooled and L2-normalised, side by side over sqrt(L), so the
    result has norm 1 and its cosine with another text's is the mean of the layers' cosines. One state: the
    normalised mean-pooled feature."""
    if len(states) == 1:
        return nn.functional.normalize(pool(states[0], attention_mask), dim=-1)  # (B, D)
    x = torch.cat([nn.functional.normalize(pool(h, attention_mask), dim=-1) for h in states], -1)  # (B, L*D)
    return x / math.sqrt(len(states))


def num_layers(backbone: Backbone) -> int:
    """The encoder's number of layers (0 when its config does not say)."""
    cfg = backbone.model.config
    return int(getattr(cfg, "num_hidden_layers", 0) or getattr(cfg, "n_layers", 0) or 0)


def run_layers(n: int, backbone: Backbone) -> int:
    """The layers a run reads for `feature_layers=n` (n >= 1): n, or all of them on a backbone with fewer (the fast
    preset's top-6 view on a 2-layer model reads both). A model built by hand is checked strictly instead."""
    layers = num_layers(backbone)
    return min(n, layers) if layers and n >= 1 else n


def check_feature_layers(n: int, backbone: Backbone) -> int:
    """`n` if the backbone has at least `n` layers, else a ValueError naming both."""
    layers = num_layers(backbone)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"feature_layers={n!r}: a model reads a whole number >= 1 of layers (0, chosen per run, is "
                         "resolved by the run before its model is built)")  # fmt: skip
    if layers and n > layers:
        raise ValueError(f"feature_layers={n}: the backbone {backbone.name!r} has only {layers} layers")
    return n


def choose_head(requested: str, backbone: Backbone) -> tuple[str, str]:
    """Resolve `head="auto"`: the MLM prompt head when the backbone's MLM head is pretrained, else the
    similarity prompt head (the prompt then lives in the embedding space)."""
    if requested != "auto":
        return requested, f"head={requested!r} was requested"
    if backbone.head_pretrained:
        return "prompt", "head=auto chose the prompt head: the backbone's MLM head is pretrained"
    n = len(backbone.missing_head_keys)
    return "similarity", (
        f"head=auto chose the similarity head: the backbone has no pretrained MLM head ({n} head weights would be "
        "newly initialised), so the prompt is read through the embedding space (cosine to each class's "
        "verbaliser embedding) instead of an MLM head at the mask"
    )
