"""Losses of LiST: per-example knowledge distillation `KL(q || p_student)` and cross-entropy on gold labels."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_loss(student_logits: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Per-example `KL(q || softmax(student_logits))`: (B, C), (B, C) -> (B,). `0 log 0` counts as 0."""
    log_p = F.log_softmax(student_logits.float(), dim=-1)  # (B, C)
    return (torch.xlogy(q, q) - q * log_p).sum(-1)


def consistency_loss(
    clean_logits: torch.Tensor, noisy_logits: torch.Tensor, threshold: float, temperature: float
) -> torch.Tensor:
    """UDA's consistency term (Xie et al. 2020): `KL(sharpen(p_clean) || p_noisy)` on the examples whose clean
    prediction is confident (`max p_clean > threshold`), summed and divided by the whole batch: (B, C), (B, C) -> ().
    The clean side is a target (no gradient); sharpening divides its logits by `temperature`."""
    clean = clean_logits.detach().float()  # (B, C)
    keep = clean.softmax(-1).max(-1).values > threshold  # (B,)
    target = (clean / temperature).softmax(-1)  # (B, C)
    return (kd_loss(noisy_logits, target) * keep).sum() / len(keep)


def soft_labels(teacher_logits: torch.Tensor) -> torch.Tensor:
    """Soft pseudo-labels `q = softmax(teacher logits)`: (N, C) -> (N, C)."""
    return teacher_logits.float().softmax(-1)


def gold_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy on gold labels: (B, C), (B,) -> (). With per-class `weights` (C,), each example's loss is
    scaled by its class's weight and the sum divided by the batch size, so over an epoch every class gets the same
    total weight (F.cross_entropy's weighted mean divides by the batch's weights, which undoes it within a batch)."""
    if weights is None:
        return F.cross_entropy(logits.float(), labels)
    ce = F.cross_entropy(logits.float(), labels, reduction="none")  # (B,)
    return (weights.to(ce.device)[labels] * ce).sum() / len(labels)


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C,) n / (C * n_c) over a labeled set: each class the same total weight (a class without labels: 0)."""
    counts = torch.bincount(labels, minlength=num_classes).float()  # (C,)
    return torch.where(counts > 0, len(labels) / (num_classes * counts.clamp(min=1)), torch.zeros_like(counts))
