"""Frozen, validated configuration for adapters and LiST training, with the `paper` and `fast` presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

HeadKind = Literal["auto", "prompt", "similarity", "classic", "probe"]
HEADS = ("auto", "prompt", "similarity", "classic", "probe")
Pooling = Literal["mean", "cls"]


def _check(cond: bool, name: str, value: Any, why: str) -> None:
    if not cond:
        raise ValueError(f"{name}={value!r}: {why}")


@dataclass(frozen=True)
class AdapterConfig:
    """Linear bottleneck adapters `h <- h + W_up(W_down h)` after attention-output and FFN-output projections."""

    bottleneck: int = 128
    sigma: float = 0.02

    def __post_init__(self) -> None:
        _check(
            isinstance(self.bottleneck, int) and self.bottleneck >= 1,
            "bottleneck",
            self.bottleneck,
            "must be an int >= 1",
        )
        _check(self.sigma > 0, "sigma", self.sigma, "must be > 0")


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a LiST run (teacher, rounds, student, gold fine-tuning). See `preset()`."""

    # model
    head: HeadKind = "auto"
    pooling: Pooling = "mean"
    adapter: AdapterConfig = AdapterConfig()
    max_length: int = 128
    # probe and similarity heads: fit the teacher on frozen features and self-train it on the pool this many
    # times; that fitted head is then the teacher (teacher_epochs are not used: tuning it on the gold alone
    # overfits). The similarity head's teacher also learns from the prompt (list_core.teacher).
    probe_self_train: int = 0
    # similarity-head teacher: a prompt that beats chance on the gold labels counts as this many labeled examples
    prompt_weight: float = 5.0
    # similarity-head teacher: each class's verbaliser prototype as this many labeled points
    verbaliser_points: int = 5
    # teacher: prompt-tuning on the gold examples
    teacher_epochs: int = 400
    teacher_lr: float = 5e-6
    gold_batch_size: int = 4
    # self-training rounds
    rounds: int = 6
    student_steps: int = 1000
    student_lr: float = 1e-4
    student_batch_size: int = 16
    warmup_fraction: float = 0.6
    tau: float = 0.8
    kd_selection: str = "tau"  # tau: max q > tau (paper); class_median: per class, at or above its median confidence
    meta_reweighting: bool = True
    meta_similarity: str = "dot"  # dot: g_gold . g_i (paper); cosine: the same divided by both gradient norms
    meta_gold_batch_size: int = 4
    unlabeled_limit: int | None = None
    # student fine-tuning on gold at the end of each round
    finetune_epochs: int = 50
    finetune_lr: float = 5e-6
    # optimisation and misc
    head_lr_scale: float = 1.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    eval_batch_size: int = 64
    seed: int = 42

    def __post_init__(self) -> None:
        _check(self.head in HEADS, "head", self.head, f"must be one of {', '.join(HEADS)}")
        _check(self.pooling in ("mean", "cls"), "pooling", self.pooling, "must be mean or cls")
        _check(isinstance(self.adapter, AdapterConfig), "adapter", self.adapter, "must be an AdapterConfig")
        _check(self.max_length >= 8, "max_length", self.max_length, "must be >= 8")
        _check(self.prompt_weight >= 0, "prompt_weight", self.prompt_weight, "must be >= 0")
        for name in (
            "teacher_epochs",
            "finetune_epochs",
            "rounds",
            "student_steps",
            "probe_self_train",
            "verbaliser_points",
        ):
            v = getattr(self, name)
            _check(isinstance(v, int) and v >= 0, name, v, "must be an int >= 0")
        for name in ("gold_batch_size", "student_batch_size", "meta_gold_batch_size", "eval_batch_size"):
            v = getattr(self, name)
            _check(isinstance(v, int) and v >= 1, name, v, "must be an int >= 1")
        for name in ("teacher_lr", "student_lr", "finetune_lr", "head_lr_scale"):
            v = getattr(self, name)
            _check(v > 0, name, v, "must be > 0")
        _check(0.0 <= self.warmup_fraction <= 1.0, "warmup_fraction", self.warmup_fraction, "must be in [0, 1]")
        _check(0.0 <= self.tau < 1.0, "tau", self.tau, "must be in [0, 1)")
        _check(
            self.kd_selection in ("tau", "class_median"),
            "kd_selection",
            self.kd_selection,
            "must be tau or class_median",
        )
        _check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0")
        _check(self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm, "must be > 0")
        _check(
            self.unlabeled_limit is None or self.unlabeled_limit >= 1,
            "unlabeled_limit",
            self.unlabeled_limit,
            "must be None or >= 1",
        )

    @property
    def warmup_steps(self) -> int:
        """Knowledge-distillation warm-up steps (the first `warmup_fraction` of the student steps)."""
        return int(round(self.student_steps * self.warmup_fraction))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig keys: {unknown}")
        data = dict(data)
        if isinstance(data.get("adapter"), dict):
            data["adapter"] = AdapterConfig(**data["adapter"])
        return cls(**data)

    def with_(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        if isinstance(changes.get("adapter"), dict):
            changes["adapter"] = AdapterConfig(**changes["adapter"])
        return replace(self, **changes)


PRESETS: dict[str, dict[str, Any]] = {
    # The LiST paper's settings (arXiv 2110.06274, section 4), not the released run.sh values.
    "paper": {},
    # Same algorithm, step counts and learning rates scaled for a 2-core CPU and a small backbone.
    "fast": {
        "adapter": AdapterConfig(bottleneck=32),
        "teacher_epochs": 30,
        "teacher_lr": 1e-3,
        "rounds": 3,
        "student_steps": 150,
        "student_lr": 1e-3,
        "finetune_epochs": 5,
        "finetune_lr": 1e-3,
        "unlabeled_limit": 4000,
        # beyond the paper, chosen from the K=30 benchmark (BENCHMARKS.md): class-balanced KD warm-up and,
        # for backbones without an MLM head, a probe self-trained on the pool as the teacher
        "kd_selection": "class_median",
        "probe_self_train": 3,
    },
}


def preset(name: str, **overrides: Any) -> TrainConfig:
    """The named preset (`paper` or `fast`) with optional field overrides."""
    if name not in PRESETS:
        raise ValueError(f"preset={name!r}: must be one of {sorted(PRESETS)}")
    return TrainConfig().with_(**{**PRESETS[name], **overrides})
