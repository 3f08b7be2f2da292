"""Losses of LiST: per-example knowledge distillation `KL(q || p_student)` and cross-entropy on gold labels."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_loss(student_logits: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Per-example `KL(q || softmax(student_logits))`: (B, C), (B, C) -> (B,). `0 log 0` counts as 0."""
    log_p = F.log_softmax(student_logits.float(), dim=-1)  # (B, C)
    return (torch.xlogy(q, q) - q * log_p).sum(-1)


def soft_labels(teacher_logits: torch.Tensor) -> torch.Tensor:
    """Soft pseudo-labels `q = softmax(teacher logits)`: (N, C) -> (N, C)."""
    return teacher_logits.float().softmax(-1)


def gold_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy on gold labels: (B, C), (B,) -> ()."""
    return F.cross_entropy(logits.float(), labels)
