"""Meta-reweighting of pseudo-labeled examples by gradient agreement with the gold examples.

For a batch of pseudo-labeled examples with per-example losses `L_i = KL(q_i || p_i)` and a gold batch
with cross-entropy `L_gold`, both differentiated w.r.t. the trainable parameters only:

    w_i = max(0, g_gold . g_i),   w <- w / sum(w)   (all zero if no example agrees)

The per-example gradients come from one `torch.func.vmap(grad(...))` call; the student's update then
uses `sum_i w_i g_i`, the gradient of `sum_i w_i L_i`, with no second backward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.func import functional_call, grad_and_value, vmap

from .losses import gold_loss, kd_loss
from .model import ListModel, autocast, eager_attention


@dataclass
class MetaStep:
    """What one meta-reweighting step computed."""

    weights: torch.Tensor  # (B,) normalised, >= 0
    raw: torch.Tensor  # (B,) g_gold . g_i before clipping and normalising
    losses: torch.Tensor  # (B,) per-example KD losses
    update: dict[str, torch.Tensor]  # sum_i w_i g_i, by parameter name
    gold_loss: float


def gold_gradient(model: ListModel, batch: dict[str, torch.Tensor], labels: torch.Tensor) -> tuple[dict, float]:
    """Gradient of the mean gold cross-entropy w.r.t. the trainable parameters."""
    params = model.trainable_named_parameters()
    with autocast(model.device):
        loss = gold_loss(model(**batch), labels)
    grads = torch.autograd.grad(loss, list(params.values()))
    return {n: g.detach().float() for n, g in zip(params, grads)}, float(loss.detach())


def per_example_gradients(
    model: ListModel, batch: dict[str, torch.Tensor], q: torch.Tensor
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Gradient of each example's KD loss: ({name: (B, *shape)}, (B,) losses), via `torch.func`."""
    params = {n: p.detach() for n, p in model.trainable_named_parameters().items()}

    def one(p: dict, ids: torch.Tensor, am: torch.Tensor, pos: torch.Tensor, qi: torch.Tensor) -> torch.Tensor:
        with autocast(model.device):
            logits = functional_call(model, p, (ids[None], am[None], pos[None]))  # (1, C)
        return kd_loss(logits, qi[None])[0]

    per_grad = vmap(grad_and_value(one), in_dims=(None, 0, 0, 0, 0), randomness="different")
    with eager_attention(model.backbone):
        grads, losses = per_grad(params, batch["input_ids"], batch["attention_mask"], batch["mask_pos"], q)
    return {n: g.float() for n, g in grads.items()}, losses.detach()


def agreement_weights(raw: torch.Tensor) -> torch.Tensor:
    """`max(0, raw)` normalised to sum 1; all zero when nothing agrees."""
    w = raw.clamp(min=0.0)
    total = w.sum()
    return w / total if total > 0 else torch.zeros_like(w)


def meta_step(
    model: ListModel,
    batch: dict[str, torch.Tensor],
    q: torch.Tensor,
    gold_batch: dict[str, torch.Tensor],
    gold_labels: torch.Tensor,
    similarity: str = "dot",
) -> MetaStep:
    """Weights of a pseudo-labeled batch and the weighted update direction.

    `similarity="cosine"` divides each agreement by both gradient norms, so an example does not get a large
    weight merely because its loss (often: its pseudo-label is wrong) gives it a large gradient."""
    g_gold, l_gold = gold_gradient(model, gold_batch, gold_labels)
    g_each, losses = per_example_gradients(model, batch, q)
    raw = sum((g_each[n].flatten(1) @ g_gold[n].flatten()) for n in g_gold)  # (B,)
    if similarity == "cosine":
        norm_each = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in g_each.values()))  # (B,)
        norm_gold = torch.sqrt(sum(g.pow(2).sum() for g in g_gold.values()))
        raw = raw / (norm_each * norm_gold).clamp(min=1e-12)
    w = agreement_weights(raw)
    update = {n: torch.einsum("b,b...->...", w, g) for n, g in g_each.items()}
    return MetaStep(weights=w, raw=raw, losses=losses, update=update, gold_loss=l_gold)
