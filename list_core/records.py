"""Typed, torch-free records of what a run produced: a round's metrics, a pseudo-label row and a run's final
metrics. Defined once here; the engine fills them, the worker passes them on unchanged, storage keeps them as
JSON, and the pages and the bench read them back (`from_dict` tolerates older, sparser records).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


class _Record:
    def to_dict(self) -> dict[str, Any]:
        return _clean(asdict(self))  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class WeightStats(_Record):
    """Meta-weights of a round's meta steps."""

    count: int = 0
    mean: float | None = None
    std: float | None = None
    max: float | None = None
    zero_fraction: float | None = None


@dataclass(frozen=True)
class RoundRecord(_Record):
    """One round (0 = the teacher): accuracies, what the pseudo-labels looked like, time per stage."""

    round: int
    gold_accuracy: float | None = None
    eval_accuracy: float | None = None  # the evaluation split, when the project has one
    eval_ece: float | None = None  # expected calibration error on the evaluation split
    loss: float | None = None  # last epoch's mean gold loss (None when no gold epoch ran)
    pseudo_label_counts: dict[str, int] = field(default_factory=dict)
    mean_confidence: float | None = None
    confident: int | None = None  # pseudo-labels used in the KD warm-up
    warmup_steps: int | None = None
    # the student's steps, and how many passes over the round's pseudo-labels they made (`student_max_passes`)
    student_steps: int | None = None
    student_passes: float | None = None
    zero_weight_steps: int | None = None
    weights: WeightStats = field(default_factory=WeightStats)
    flip_rate: float | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    # the teacher's view of the prompt (similarity head): its accuracy on the gold labels and the weight it got
    prompt_gold_accuracy: float | None = None
    prompt_evidence: float | None = None
    prompt_weight: float | None = None
    # where each student starts (fitted similarity teacher): "verbalisers", or "teacher" when the prompt looked wrong
    students_start: str | None = None
    # the layers the similarity head reads, when the run chose them (`feature_layers=0`), and each view's k-fold
    # accuracy of the teacher on the gold labels ({layers: accuracy})
    feature_layers: int | None = None
    view_accuracy: dict[str, float] = field(default_factory=dict)
    # the views the teacher was an ensemble over (`teacher_views`), as the layers each read on this backbone
    teacher_views: list[int] | None = None
    # the final model's lexical view (`lexical_weight`, last round only): its share of the mixed probabilities and
    # its vocabulary of words and bigrams
    lexical_weight: float | None = None
    lexical_vocabulary: int | None = None
    # this round's pseudo-labels mixed with a cross-fitted lexical view's at this share (`lexical_rounds`)
    pseudo_label_view: float | None = None
    # the last round's weights moved this share of the way back to the teacher's (`final_mix`, where applied)
    final_mix: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoundRecord:
        rec = super().from_dict(data)
        if isinstance(rec.weights, dict):
            object.__setattr__(rec, "weights", WeightStats.from_dict(rec.weights))
        return rec


@dataclass(frozen=True)
class PseudoLabelRow(_Record):
    """A pool example's pseudo-label in a round: the teacher's probabilities and the student's mean meta-weight."""

    index: int  # position in the run's unlabeled pool
    id: Any  # the example's id (the store's example id in the app)
    probs: list[float]
    label: int
    confidence: float
    weight: float | None  # None: never drawn in a meta step
    flipped: bool


@dataclass(frozen=True)
class RunMetrics(_Record):
    """A finished run's summary: the final round's accuracies, what was trained and how long each stage took."""

    method: str
    head: str | None = None
    gold_accuracy: float | None = None
    eval_accuracy: float | None = None
    eval_ece: float | None = None
    rounds: int = 0
    chosen_round: int | None = None  # the round whose model the run keeps (exported, predicted with)
    chosen_because: str = ""
    temperature: float = 1.0  # fitted on the evaluation split (1: no split to calibrate on)
    eval_ece_calibrated: float | None = None  # ECE after temperature scaling, cross-fitted on the evaluation split
    stage_seconds: dict[str, float] = field(default_factory=dict)
    parameters: dict[str, float] = field(default_factory=dict)
