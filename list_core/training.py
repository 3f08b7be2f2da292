"""Training loops: supervised tuning on gold labels, and the LiST student (KD warm-up, then meta-reweighting)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .config import TrainConfig
from .data import Encoded, collate, drop_tokens, sample_batch, shuffled_batches
from .events import Event, Reporter
from .losses import class_weights, consistency_loss, gold_loss, kd_loss
from .model import ListModel, autocast
from .reweighting import meta_step


def make_optimizer(model: ListModel, lr: float, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over adapters (lr) and head (lr * head_lr_scale)."""
    head, rest = [], []
    for name, p in model.trainable_named_parameters().items():
        (head if name.startswith("head.") else rest).append(p)
    groups = [{"params": rest, "lr": lr}, {"params": head, "lr": lr * cfg.head_lr_scale}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, weight_decay=cfg.weight_decay)


def _clip_and_step(model: ListModel, opt: torch.optim.Optimizer, cfg: TrainConfig) -> None:
    torch.nn.utils.clip_grad_norm_(list(model.trainable_named_parameters().values()), cfg.max_grad_norm)
    opt.step()
    opt.zero_grad(set_to_none=True)


def fit_gold(
    model: ListModel,
    gold: Encoded,
    labels: Sequence[int],
    epochs: int,
    lr: float,
    cfg: TrainConfig,
    generator: torch.Generator,
    report: Reporter,
    stage: str,
    round_: int | None = None,
) -> float:
    """Cross-entropy on the gold examples for `epochs` epochs (class-balanced with `cfg.gold_class_balance`); returns
    the last epoch's mean loss."""
    y = torch.tensor(list(labels), dtype=torch.long)
    weights = class_weights(y, model.num_classes) if cfg.gold_class_balance else None  # (C,) or none
    opt = make_optimizer(model, lr, cfg)
    steps_per_epoch = -(-len(gold) // cfg.gold_batch_size)
    total, step, epoch_loss = epochs * steps_per_epoch, 0, float("nan")
    model.train()
    for _ in range(epochs):
        losses = []
        for idx in shuffled_batches(len(gold), cfg.gold_batch_size, generator):
            report.check()
            batch = collate(gold, idx, model.pad_id, model.device)
            with autocast(model.device):
                loss = gold_loss(model(**batch), y[idx].to(model.device), weights)
            loss.backward()
            _clip_and_step(model, opt, cfg)
            losses.append(float(loss.detach()))
            step += 1
            if step % 10 == 0 or step == total:
                report(Event(stage, step, total, round_, {"loss": losses[-1]}))
        epoch_loss = sum(losses) / max(len(losses), 1)
    model.eval()
    return epoch_loss


def select_confident(q: torch.Tensor, cfg: TrainConfig) -> list[int]:
    """Indices of the pseudo-labels used in the KD warm-up: `max q > tau` (the paper), or, class-balanced,
    per predicted class those at or above that class's median confidence."""
    conf, hard = q.max(-1)  # (N,), (N,)
    if cfg.kd_selection == "tau":
        return torch.nonzero(conf > cfg.tau).flatten().tolist()
    keep = torch.zeros_like(conf, dtype=torch.bool)
    for c in hard.unique():
        in_c = hard == c
        keep |= in_c & (conf >= conf[in_c].median())
    return torch.nonzero(keep).flatten().tolist()


def toward_teacher(
    student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor], share: float
) -> dict[str, torch.Tensor]:
    """Trainable state `share` of the way from `student` back to `teacher` (WiSE-FT, Wortsman et al. 2022).

    An adapter adds `W_up W_down h`; where the teacher's adapter is the identity (`W_up = 0`, the fitted teacher)
    only `W_up` is interpolated, so the adapter's change is exactly `(1 - share)` of the student's. Elsewhere every
    weight is interpolated; what the teacher has not (a final model's lexical view) stays the student's."""
    out = {}
    for name, w in student.items():
        up = name.removesuffix(".down.weight") + ".up.weight"
        if name not in teacher or (name.endswith(".down.weight") and up in teacher and not teacher[up].any()):
            out[name] = w
        else:
            out[name] = torch.lerp(w.float(), teacher[name].float(), share).to(w.dtype)
    return out


# UDA's sharpening temperature for the clean prediction (Xie et al. 2020, section 3.2)
CONSISTENCY_TEMPERATURE = 0.4


def consistency_backward(model: ListModel, pool: Encoded, cfg: TrainConfig, generator: torch.Generator) -> float:
    """Add `consistency_weight` * UDA's consistency loss on a random pool batch to the trainable parameters'
    gradients; returns the unweighted loss."""
    idx = sample_batch(range(len(pool)), cfg.student_batch_size, generator)
    batch = collate(pool, idx, model.pad_id, model.device)
    with torch.no_grad(), autocast(model.device):
        clean = model(**batch)  # (B, C)
    with autocast(model.device):
        noisy = model(**drop_tokens(batch, cfg.consistency_dropout, generator))  # (B, C)
    loss = consistency_loss(clean, noisy, cfg.tau, CONSISTENCY_TEMPERATURE)
    (cfg.consistency_weight * loss).backward()
    return float(loss.detach())


def train_student(
    model: ListModel,
    pool: Encoded,
    q: torch.Tensor,
    gold: Encoded,
    gold_labels: Sequence[int],
    cfg: TrainConfig,
    generator: torch.Generator,
    report: Reporter,
    round_: int,
) -> dict[str, object]:
    """Knowledge-distillation warm-up on confident pseudo-labels, then meta-reweighted steps. With
    `cfg.student_token_dropout` the student reads the pool texts with some tokens dropped (a noisy student); the
    gold batches stay clean. With `cfg.consistency_weight` every step also asks the student to agree with itself
    on clean and noisy copies of another pool batch (`consistency_backward`), so it can learn from the pool beyond
    copying the pseudo-labels.

    Returns per-example mean meta-weights (NaN where an example was never drawn in a meta step), the raw
    weights of every meta step, and counters.
    """
    n = len(pool)
    y_gold = torch.tensor(list(gold_labels), dtype=torch.long)
    confident = select_confident(q, cfg)
    steps, warmup = cfg.student_schedule(n)  # `student_max_passes` caps the steps on a small pool
    warmup = warmup if cfg.meta_reweighting else steps
    if warmup and not confident:
        report(
            Event(
                "warning", round=round_, message=f"no pseudo-label has confidence > tau={cfg.tau}; KD warm-up skipped"
            )
        )
        warmup = 0
    weight_sum = torch.zeros(n)
    weight_count = torch.zeros(n)
    all_weights: list[float] = []
    zero_steps = 0
    opt = make_optimizer(model, cfg.student_lr, cfg)
    model.train()
    for step in range(steps):
        report.check()
        if step < warmup:
            idx = sample_batch(confident, cfg.student_batch_size, generator)
            batch = drop_tokens(collate(pool, idx, model.pad_id, model.device), cfg.student_token_dropout, generator)
            with autocast(model.device):
                loss = kd_loss(model(**batch), q[idx].to(model.device)).mean()
            loss.backward()
            stage, losses = "kd_warmup", {"kd": float(loss.detach())}
            if cfg.consistency_weight:
                losses["consistency"] = consistency_backward(model, pool, cfg, generator)
            _clip_and_step(model, opt, cfg)
        else:
            idx = sample_batch(range(n), cfg.student_batch_size, generator)
            gidx = sample_batch(range(len(gold)), cfg.meta_gold_batch_size, generator)
            ms = meta_step(
                model,
                drop_tokens(collate(pool, idx, model.pad_id, model.device), cfg.student_token_dropout, generator),
                q[idx].to(model.device),
                collate(gold, gidx, model.pad_id, model.device),
                y_gold[gidx].to(model.device),
                cfg.meta_similarity,
            )
            w = ms.weights.cpu()
            weight_sum.index_add_(0, torch.tensor(idx), w)
            weight_count.index_add_(0, torch.tensor(idx), torch.ones(len(idx)))
            all_weights += w.tolist()
            stage = "meta"
            losses = {"kd_weighted": float((w * ms.losses.cpu()).sum()), "gold": ms.gold_loss}
            agrees = float(w.sum()) > 0.0
            zero_steps += not agrees  # no example agrees with gold: no pseudo-label update this step
            if agrees:
                for name, p in model.trainable_named_parameters().items():
                    p.grad = ms.update[name].to(p.dtype)
            if cfg.consistency_weight:
                losses["consistency"] = consistency_backward(model, pool, cfg, generator)
            if agrees or cfg.consistency_weight:
                _clip_and_step(model, opt, cfg)
        if (step + 1) % 10 == 0 or step + 1 in (warmup, steps):
            report(Event(stage, step + 1, steps, round_, losses))
    model.eval()
    mean_w = torch.where(weight_count > 0, weight_sum / weight_count.clamp(min=1), torch.full((n,), float("nan")))
    return {
        "mean_weight": mean_w,
        "weights": torch.tensor(all_weights),
        "confident": len(confident),
        "warmup_steps": warmup,
        "steps": steps,
        "zero_weight_steps": zero_steps,
    }
