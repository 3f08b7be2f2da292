"""A finished run's model from its checkpoint, and exporting it: what the worker and the CLIs call."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .backbone import Backbone
from .checkpoint import RunCheckpoint
from .config import EXPORT_FORMATS, KEPT_MODEL_DIR, TrainConfig
from .heads import choose_head, run_layers
from .model import ListModel
from .prompts import Prompt
from .records import RoundRecord, RunMetrics


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
    state = ckpt.load_round(r)[0]
    layers = run_layers(cfg.feature_layers, backbone)  # as the run read them
    if layers == 0:  # chosen by the run: the head's width says how many layers it reads
        width = next(v.shape[-1] for k, v in state.items() if k in ("head.prototypes", "head.linear.weight"))
        layers = width // backbone.hidden_size
    model = ListModel(backbone, prompt, head, cfg.adapter, cfg.pooling, cfg.max_length, feature_layers=layers)
    if cfg.head == "auto":  # the run resolved `auto` to `head`: keep that reason (model cards show it)
        kind, reason = choose_head("auto", backbone)
        if kind == head:
            model.head_reason = reason
    model.load_trainable_state(state)
    return model.eval()


def export_model(
    model: Any,
    fmt: str,
    folder: str | Path,
    labels: Sequence[str],
    metrics: dict[str, Any] | None = None,
    summary: dict[str, Any] | None = None,
    prompt: Prompt | None = None,
) -> Path:
    """Write `model` (a `ListModel`, or a `PairSimilarity` rule with its `prompt`) in one of `EXPORT_FORMATS` to
    `folder` (README.md says what each holds)."""
    from .export import save_native
    from .folded import save_folded
    from .pair_similarity import PairSimilarity, save_pair_similarity
    from .peft_format import save_peft

    if isinstance(model, PairSimilarity):  # a rule of a few numbers: its own folder, no adapters to convert
        if fmt != "native":
            raise ValueError(f"export format {fmt!r}: a pair-similarity rule exports as 'native' only")
        return save_pair_similarity(model, folder, labels, prompt, metrics)
    if fmt == "native":
        return save_native(model, folder, labels=labels, metrics=metrics, summary=summary)
    if fmt == "peft":
        return save_peft(model, folder, labels=labels)
    if fmt == "folded":
        return save_folded(model, folder, list(labels))
    raise ValueError(f"export format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")


def kept_form(result: Any) -> Any:
    """What a run without adapter checkpoints keeps of its result: a `ListModel` (`as_model()`: the probes, the
    zero-shot prompt), a `PairSimilarity` rule as it is, or None for a result that cannot be saved."""
    from .pair_similarity import PairSimilarity

    if hasattr(result, "as_model"):
        return result.as_model()
    return result if isinstance(result, ListModel | PairSimilarity) else None


def keep_model(model: Any, run_dir: str | Path, labels: Sequence[str], prompt: Prompt) -> Path:
    """Save the fitted model of a run without adapter checkpoints (a probe or the zero-shot prompt as a
    `ListModel` without adapters, or a pair-similarity rule) to `run_dir/model`, so it predicts and exports later
    like an adapter run's kept round."""
    folder = Path(run_dir) / KEPT_MODEL_DIR
    return export_model(model, "native", folder, labels, prompt=prompt)


def load_kept(backbone: Backbone, run_dir: str | Path) -> Any:
    """The model `keep_model` saved (a `ListModel` or a `PairSimilarity`), on `backbone`."""
    from .export import load_classifier

    folder = Path(run_dir) / KEPT_MODEL_DIR
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist: this run kept no model (runs of baselines keep one since "
                                "this version; run it again)")  # fmt: skip
    return load_classifier(folder, backbone).model


def calibrate(
    model: Any, eval_rows: Sequence[Any] | None, eval_labels: Sequence[int] | None, batch_size: int = 64
) -> dict[str, float | None]:
    """Temperature scaling of a `ListModel` or a `PairSimilarity` rule on the evaluation split (labels the model
    never trained on): sets `model.temperature` and returns it with the split's ECE before and after (after:
    cross-fitted, never scored on its own fit). Without an evaluation split the model keeps its temperature (1, or
    the one a pair-similarity rule fitted on its gold pairs)."""
    from .calibration import cross_fitted_ece, expected_calibration_error, fit_temperature

    if not eval_rows or not eval_labels:
        return {"temperature": model.temperature, "eval_ece_calibrated": None}
    if isinstance(model, ListModel):
        logits = model.logits(model.encode(eval_rows), batch_size).float()  # (E, C)
    else:  # a pair-similarity rule
        logits = model.row_logits(eval_rows, batch_size).float()
    model.temperature = fit_temperature(logits, eval_labels)
    return {"temperature": model.temperature, "eval_ece": expected_calibration_error(logits.softmax(-1), eval_labels),
            "eval_ece_calibrated": cross_fitted_ece(logits, eval_labels)}  # fmt: skip


def choose_round(rounds: Sequence[RoundRecord]) -> tuple[int, str]:
    """The round a run keeps (exported, predicted with) and why: the best on the project's evaluation split when it
    has one (ties: the later round; round 0, the teacher, is a candidate), else the last round. Choosing on the
    evaluation split makes its accuracy a little optimistic; the reason says so."""
    if not rounds:
        raise ValueError("a run without rounds keeps nothing")
    last = rounds[-1]
    scored = [r for r in rounds if r.eval_accuracy is not None]
    if not scored:
        return last.round, "the last round (no evaluation split to choose by)"
    best = max(scored, key=lambda r: (r.eval_accuracy, r.round))
    if best.round == last.round:
        return best.round, f"the last round, also the best on the evaluation split ({best.eval_accuracy:.1%})"
    last_acc = f"{last.eval_accuracy:.1%}" if last.eval_accuracy is not None else "not scored"
    who = "the teacher (round 0), " if best.round == 0 else ""
    return best.round, (f"{who}best on the evaluation split: {best.eval_accuracy:.1%} against {last_acc} for the "
                        f"last round {last.round} (so that accuracy is a little optimistic)")  # fmt: skip


def run_metrics(method: str, result: Any, task: Any, batch_size: int = 64) -> RunMetrics:
    """A finished run's summary, the same for every method: a LiST-style result reports its last round (the round
    it keeps); any other result is scored here on the gold labels and the evaluation split."""
    import torch

    from .self_training import RunResult

    if isinstance(result, RunResult):
        chosen, because = choose_round([result.teacher, *result.rounds])
        kept = next(r for r in [result.teacher, *result.rounds] if r.round == chosen)
        return RunMetrics(
            method=method, head=result.model.head_kind, gold_accuracy=kept.gold_accuracy,
            eval_accuracy=kept.eval_accuracy, eval_ece=kept.eval_ece, rounds=len(result.rounds),
            chosen_round=chosen, chosen_because=because, stage_seconds=dict(result.stage_seconds),
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
