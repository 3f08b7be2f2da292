"""A finished run's model from its checkpoint, and exporting it: what the worker and the CLIs call."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .backbone import Backbone
from .checkpoint import RunCheckpoint
from .config import EXPORT_FORMATS, TrainConfig
from .heads import choose_head
from .model import ListModel
from .prompts import Prompt
from .records import RunMetrics


def load_trained(
    backbone: Backbone,
    prompt: Prompt,
    head: str,
    cfg: TrainConfig,
    checkpoint_dir: str | Path,
    round_: int | None = None,
) -> ListModel:
    """The model of a finished adapter run: its trainable weights from round `round_` of the checkpoint (the last
    completed round by default), on `backbone` with `head` (the head the run resolved, e.g. from `auto`)."""
    ckpt = RunCheckpoint.read(checkpoint_dir)
    done = ckpt.completed_rounds()
    if not done:
        raise FileNotFoundError(f"{checkpoint_dir} holds no completed round")
    r = done[-1] if round_ is None else round_
    if r not in done:
        raise ValueError(f"round {r} is not in {checkpoint_dir} (completed: {done})")
    model = ListModel(backbone, prompt, head, cfg.adapter, cfg.pooling, cfg.max_length)
    if cfg.head == "auto":  # the run resolved `auto` to `head`: keep that reason (model cards show it)
        kind, reason = choose_head("auto", backbone)
        if kind == head:
            model.head_reason = reason
    model.load_trainable_state(ckpt.load_round(r)[0])
    return model.eval()


def export_model(
    model: ListModel,
    fmt: str,
    folder: str | Path,
    labels: Sequence[str],
    metrics: dict[str, Any] | None = None,
    summary: dict[str, Any] | None = None,
) -> Path:
    """Write `model` in one of `EXPORT_FORMATS` to `folder` (README.md says what each holds)."""
    from .export import save_native
    from .folded import save_folded
    from .peft_format import save_peft

    if fmt == "native":
        return save_native(model, folder, labels=labels, metrics=metrics, summary=summary)
    if fmt == "peft":
        return save_peft(model, folder, labels=labels)
    if fmt == "folded":
        return save_folded(model, folder, list(labels))
    raise ValueError(f"export format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")


def run_metrics(method: str, result: Any, task: Any, batch_size: int = 64) -> RunMetrics:
    """A finished run's summary, the same for every method: a LiST-style result reports its last round (the round
    it keeps); any other result is scored here on the gold labels and the evaluation split."""
    import torch

    from .self_training import RunResult

    if isinstance(result, RunResult):
        last = result.last
        return RunMetrics(
            method=method, head=result.model.head_kind, gold_accuracy=last.gold_accuracy,
            eval_accuracy=last.eval_accuracy, eval_ece=last.eval_ece, rounds=len(result.rounds),
            chosen_round=last.round, chosen_because="the last round", stage_seconds=dict(result.stage_seconds),
            parameters=result.model.parameter_report(),
        )  # fmt: skip

    def acc(rows, labels) -> float | None:
        if not rows:
            return None
        pred = result.predict_proba(rows, batch_size).argmax(-1)
        return float((pred == torch.tensor(list(labels))).float().mean())

    head = getattr(getattr(result, "model", None), "head_kind", None)
    return RunMetrics(method=method, head=head, gold_accuracy=acc(task.gold_rows, task.gold_labels),
                      eval_accuracy=acc(task.eval_rows, task.eval_labels))  # fmt: skip
