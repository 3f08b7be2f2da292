"""Frozen, validated configuration for adapters and LiST training, with the `paper` and `fast` presets.

This module is the one source of every training setting: each field carries its type, its allowed values or
range, a help text and the methods it applies to (`knobs()`). Validation, the Train page's form, the bench's
`--set` parser and the stored JSON (versioned, older versions migrated on load) are all generated from it.
Torch-free: the UI imports it.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any

CONFIG_VERSION = 2
HEADS = ("auto", "prompt", "similarity", "classic", "probe")
# how a trained adapter can be exported (list_core.trained.export_model), with what each format is for
EXPORT_FORMATS = {
    "native": "adapters, head and any lexical view only (megabytes), loaded onto the shared backbone by list_core",
    "peft": "a PEFT LoRA adapter: peft.PeftModel.from_pretrained(base, folder)",
    "folded": "one plain transformers model with the adapters folded into its weights",
}
# where a run without adapter checkpoints (a baseline) keeps its fitted model, inside its run folder
KEPT_MODEL_DIR = "model"
# What a setting applies to, by the kind of work a method does (a method lists its kinds in list_core.methods):
# "any" every method, "frozen" features of the plain backbone, "probe" a classifier fitted on those features,
# "adapters" training adapters and a head, "rounds" self-training rounds.
MODES = ("any", "frozen", "probe", "adapters", "rounds")


def knob(
    default: Any,
    help: str,
    *,
    choices: tuple[Any, ...] | None = None,
    low: float | None = None,
    high: float | None = None,
    optional: bool = False,
    modes: tuple[str, ...] = ("adapters",),
) -> Any:
    """A dataclass field with what the form, the parser and validation need to know about it."""
    if not set(modes) <= set(MODES):
        raise ValueError(f"modes {modes}: must be among {MODES}")
    meta = {"help": help, "choices": choices, "low": low, "high": high, "optional": optional, "modes": modes}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Knob:
    """One setting as the form and the parser see it (`adapter.bottleneck` for the nested adapter config)."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[Any, ...] | None
    low: float | None
    high: float | None
    optional: bool
    modes: tuple[str, ...]

    def parse(self, text: str) -> Any:
        """A value typed as text (form field, `--set KEY=VALUE`), converted by this knob's type and validated."""
        t = text.strip()
        if self.optional and t.lower() in ("", "none", "null"):
            return None
        try:
            if self.type is bool:
                if t.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                value: Any = t.lower() in ("true", "1", "yes")
            elif self.type is int:
                value = int(t)
            elif self.type is float:
                value = float(t)
            else:
                value = t
        except ValueError:
            raise ValueError(f"{self.name}={text!r}: must be {self.describe()}") from None
        self.check(value)
        return value

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        kind = {bool: "true or false", int: "an integer", float: "a number", str: "text"}[self.type]
        rng = f" in [{self.low}, {self.high}]" if self.low is not None and self.high is not None else (
            f" >= {self.low}" if self.low is not None else "")  # fmt: skip
        return kind + rng + (" or none" if self.optional else "")

    def check(self, value: Any) -> None:
        ok = value is None and self.optional
        if not ok:
            if self.type is float:
                ok = isinstance(value, int | float) and not isinstance(value, bool)
            else:
                ok = isinstance(value, self.type) and not (self.type is int and isinstance(value, bool))
            ok = ok and (self.choices is None or value in self.choices)
            ok = ok and (self.low is None or value >= self.low) and (self.high is None or value <= self.high)
        if not ok:
            raise ValueError(f"{self.name}={value!r}: must be {self.describe()}")


def _knobs_of(cls: type, prefix: str = "") -> list[Knob]:
    out = []
    for f in fields(cls):
        if f.metadata.get("nested"):
            out += _knobs_of(f.metadata["nested"], f"{prefix}{f.name}.")
            continue
        m = f.metadata
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        kind = {"int": int, "float": float, "bool": bool, "str": str}[str(f.type).split(" | ")[0]]
        out.append(Knob(prefix + f.name, kind, default, m["help"], m["choices"], m["low"], m["high"], m["optional"],
                        m["modes"]))  # fmt: skip
    return out


def _validate(obj: Any) -> None:
    for k in _knobs_of(type(obj)):
        if "." not in k.name:
            k.check(getattr(obj, k.name))


@dataclass(frozen=True)
class AdapterConfig:
    """Linear bottleneck adapters `h <- h + W_up(W_down h)` after attention-output and FFN-output projections."""

    bottleneck: int = knob(128, "adapter bottleneck width r (trainable size grows with it)", low=1, high=4096)
    sigma: float = knob(0.02, "std of the adapters' initial weights", low=1e-6, high=1.0)

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a LiST run (teacher, rounds, student, gold fine-tuning). See `preset()` and `knobs()`."""

    # model
    head: str = knob("auto", "auto: the MLM prompt head when the backbone's MLM head is pretrained, else the "
                     "similarity head (cosine to each class's verbaliser embedding)", choices=HEADS, modes=("rounds",))  # fmt: skip
    pooling: str = knob("mean", "pooling of the classic head", choices=("mean", "cls"), modes=("adapters",))
    feature_layers: int = knob(1, "similarity/probe heads and the probe baselines: read the top N encoder layers "
                               "(each mean-pooled and normalised, side by side; all of them on a backbone with fewer) "
                               "instead of the last layer alone; the zero-shot prompt reads the last layer; 0: chosen "
                               "per run on the gold labels (list_core/views.py)", low=0, high=64, modes=("adapters", "probe"))  # fmt: skip
    adapter: AdapterConfig = field(default=AdapterConfig(), metadata={"nested": AdapterConfig})
    max_length: int = knob(128, "tokens per example (texts are cut inside their slot)", low=8, high=512, modes=("any",))
    probe_self_train: int = knob(0, "probe/similarity heads: fit the teacher on frozen features and self-train it on "
                                 "the pool this many times; that fitted head is the teacher (teacher_epochs unused)",
                                 low=0, high=20, modes=("rounds",))  # fmt: skip
    teacher_pool_limit: int | None = knob(20_000, "probe/similarity heads: fit the teacher on a random sample of at "
                                          "most this many pool texts (none: the whole pool); it then labels "
                                          "every pool text", low=1, high=100_000_000, optional=True,
                                          modes=("rounds",))  # fmt: skip
    prompt_weight: float = knob(5.0, "similarity-head teacher: how many labeled examples a prompt that beats chance "
                                "on the gold labels is worth", low=0.0, high=1000.0, modes=("rounds",))  # fmt: skip
    verbaliser_points: int = knob(5, "similarity-head teacher: each verbaliser prototype as this many labeled points",
                                  low=0, high=100, modes=("rounds",))  # fmt: skip
    teacher_views: str = knob("", "fitted similarity teacher: an ensemble of LiST's teacher rule fitted on several views, "
                              "e.g. '1,3,6' (the top 1, 3 and 6 layers), its logits averaged into one linear head on "
                              "the widest view (feature_layers must be the largest; views past the backbone's depth "
                              "read all its layers); empty: the one view of feature_layers", modes=("rounds",))  # fmt: skip
    class_balance: bool = knob(False, "probe/similarity-head teachers and the probe baselines: every logistic "
                               "regression gives each class the same total weight (gold, verbaliser points and "
                               "pseudo-labels together), i.e. assumes the classes about equally common",
                               modes=("probe", "rounds"))  # fmt: skip
    # teacher: prompt-tuning on the gold examples
    teacher_epochs: int = knob(400, "teacher: epochs of tuning on the gold labels", low=0, high=10_000)
    teacher_lr: float = knob(5e-6, "teacher learning rate", low=1e-8, high=1.0)
    gold_batch_size: int = knob(4, "batch size on gold labels", low=1, high=1024)
    # self-training rounds
    rounds: int = knob(6, "self-training rounds (each: pseudo-label, train a fresh student, tune on gold)", low=0,
                       high=50, modes=("rounds",))  # fmt: skip
    student_steps: int = knob(1000, "student steps per round", low=0, high=100_000, modes=("rounds",))
    student_max_passes: float | None = knob(None, "cap each round's student steps at the number that makes this "
                                            "many passes over its pseudo-labels (steps x student_batch_size / their "
                                            "number, rounded up to a whole step), so a small pool is not read over "
                                            "and over; none: always student_steps",
                                            low=0.1, high=1000.0, optional=True, modes=("rounds",))  # fmt: skip
    student_lr: float = knob(1e-4, "student learning rate", low=1e-8, high=1.0, modes=("rounds",))
    student_batch_size: int = knob(16, "student batch size", low=1, high=1024, modes=("rounds",))
    warmup_fraction: float = knob(0.6, "share of the student steps spent on knowledge distillation before "
                                  "meta-reweighting", low=0.0, high=1.0, modes=("rounds",))  # fmt: skip
    tau: float = knob(0.8, "KD warm-up: keep pseudo-labels with confidence > tau (kd_selection=tau)", low=0.0,
                      high=0.999999, modes=("rounds",))  # fmt: skip
    kd_selection: str = knob("tau", "KD warm-up examples: confidence > tau (paper), or per class those at or above "
                             "its median confidence (class-balanced)", choices=("tau", "class_median"), modes=("rounds",))  # fmt: skip
    student_start: str = knob("verbalisers", "fitted similarity teacher: every student's head starts from the "
                              "verbaliser prototypes (a fresh student, as the paper's starts from the MLM head) or "
                              "from the teacher's fit (its adapters start as student_adapters says)",
                              choices=("verbalisers", "teacher"), modes=("rounds",))  # fmt: skip
    student_adapters: str = knob("random", "every student's adapters start drawn at random (the paper), or as the "
                                 "identity (W_up = 0), so a student starts out reading the frozen features its head "
                                 "starts from (with student_start=teacher: the student starts as the teacher)",
                                 choices=("random", "identity"), modes=("rounds",))  # fmt: skip
    student_token_dropout: float = knob(0.0, "noisy student: share of each pool text's tokens hidden from the "
                                        "student while it learns from the pseudo-labels (the teacher labeled the "
                                        "clean text)", low=0.0, high=0.9, modes=("rounds",))  # fmt: skip
    consistency_weight: float = knob(0.0, "UDA-style student: weight of a loss asking the student's prediction on "
                                     "a pool text with consistency_dropout of its tokens hidden to match its own "
                                     "sharpened prediction on the clean text, where that is confident (> tau)",
                                     low=0.0, high=100.0, modes=("rounds",))  # fmt: skip
    consistency_dropout: float = knob(0.2, "UDA-style student: share of tokens hidden in the noisy copy",
                                      low=0.05, high=0.9, modes=("rounds",))  # fmt: skip
    meta_reweighting: bool = knob(True, "re-weight pseudo-labels by gradient agreement with gold (else KD only)",
                                  modes=("rounds",))  # fmt: skip
    meta_similarity: str = knob("dot", "meta-weight: gradient dot product (paper) or cosine", choices=("dot", "cosine"),
                                modes=("rounds",))  # fmt: skip
    meta_gold_batch_size: int = knob(4, "gold batch size of a meta step", low=1, high=1024, modes=("rounds",))
    ensemble_teacher: bool = knob(False, "ensemble the rounds: from round 2 on, the pseudo-labels are the mean of the "
                                  "first teacher's and the current model's probabilities", modes=("rounds",))  # fmt: skip
    lexical_weight: float = knob(0.0, "co-training's two views in the final classifier: after the last round a "
                                 "logistic regression on word and bigram TF-IDF is fitted on the gold labels and the "
                                 "pool's latest pseudo-labels, and the final probabilities are (1 - w) x the model's + "
                                 "w x its own (0: the model alone); single-text tasks, where the teacher is fitted "
                                 "on frozen features (a backbone without an MLM head)", low=0.0, high=1.0,
                                 modes=("rounds",))  # fmt: skip
    lexical_rounds: bool = knob(False, "co-training in the rounds: from round 2 on, each round's pseudo-labels are "
                                "mixed (lexical_weight) with a lexical view cross-fitted on the previous model's labels "
                                "of the pool (the view's share: lexical_weight; with 0 there is no view and this does "
                                "nothing)", modes=("rounds",))  # fmt: skip
    final_mix: float = knob(0.0, "WiSE-FT: after the last round, move the model's weights this share of the way "
                            "back to the first teacher's (0: the last student as it is; 0.5: half-way); the last round's "
                            "metrics, checkpoint and export are the mixed model's; only where the teacher is fitted on "
                            "frozen features (a tuned teacher's adapters and a fresh student's are unrelated draws)",
                            low=0.0, high=1.0, modes=("rounds",))  # fmt: skip
    unlabeled_limit: int | None = knob(None, "pseudo-label at most this many pool texts per round (none: all)",
                                       low=1, high=100_000_000, optional=True, modes=("rounds",))  # fmt: skip
    # student fine-tuning on gold at the end of each round
    finetune_epochs: int = knob(50, "epochs of gold tuning at the end of each round", low=0, high=10_000,
                                modes=("rounds",))  # fmt: skip
    finetune_lr: float = knob(5e-6, "learning rate of the gold tuning", low=1e-8, high=1.0, modes=("rounds",))
    gold_class_balance: bool = knob(False, "every tuning on the gold labels (the students' at the end of each round, "
                                    "a tuned teacher's) weighs each class's examples by n / (C * n_c), so every class "
                                    "has the same total weight however unevenly the labels fell (as class_balance "
                                    "does for the logistic regressions)")  # fmt: skip
    # optimisation and misc
    head_lr_scale: float = knob(1.0, "head learning rate as a multiple of the adapters'", low=1e-6, high=1e6)
    weight_decay: float = knob(0.0, "AdamW weight decay", low=0.0, high=10.0)
    max_grad_norm: float = knob(1.0, "gradient clipping norm", low=1e-6, high=1e6)
    eval_batch_size: int = knob(64, "batch size when predicting", low=1, high=4096, modes=("any",))
    seed: int = knob(42, "random seed", low=0, high=2**31 - 1, modes=("any",))

    def __post_init__(self) -> None:
        if not isinstance(self.adapter, AdapterConfig):
            raise ValueError(f"adapter={self.adapter!r}: must be an AdapterConfig")
        _validate(self)
        views = self.views()  # names the bad value if it does not parse
        if views and self.feature_layers != max(views):
            raise ValueError(f"teacher_views={self.teacher_views!r}: the model reads its widest view, so feature_layers "
                             f"must be {max(views)} (not {self.feature_layers}); or leave teacher_views empty to read the "
                             "top feature_layers alone")  # fmt: skip

    def views(self) -> tuple[int, ...]:
        """`teacher_views` as ascending layer counts (empty: the one view of `feature_layers`)."""
        text = self.teacher_views.replace(" ", "")
        if not text:
            return ()
        try:
            views = tuple(int(v) for v in text.split(","))
        except ValueError:
            views = ()
        if not views or any(v < 1 or v > 64 for v in views) or list(views) != sorted(set(views)):
            raise ValueError(f"teacher_views={self.teacher_views!r}: must be distinct ascending layer counts "
                             "between 1 and 64, comma-separated (e.g. '1,3,6'), or empty")  # fmt: skip
        return views

    @property
    def warmup_steps(self) -> int:
        """Knowledge-distillation warm-up steps (the first `warmup_fraction` of the student steps)."""
        return int(round(self.student_steps * self.warmup_fraction))

    def student_schedule(self, pseudo_labels: int) -> tuple[int, int]:
        """(steps, KD warm-up steps) of a round's student on `pseudo_labels` pool texts: `student_steps`, capped at
        `student_max_passes` passes over them (at least one step), the warm-up its `warmup_fraction`."""
        steps = self.student_steps
        if self.student_max_passes is not None and pseudo_labels > 0:
            passes = math.ceil(self.student_max_passes * pseudo_labels / self.student_batch_size)
            steps = min(steps, max(1, passes))
        return steps, int(round(steps * self.warmup_fraction))

    def to_dict(self) -> dict[str, Any]:
        """The stored form: every field plus `config_version`."""
        return {**asdict(self), "config_version": CONFIG_VERSION}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """A stored config of any version (older ones are migrated); unknown keys are refused."""
        data = migrate(dict(data))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig keys: {unknown}")
        if isinstance(data.get("adapter"), dict):
            data["adapter"] = AdapterConfig(**data["adapter"])
        return cls(**data)

    def with_(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again); `adapter` may be a dict of its fields."""
        if isinstance(changes.get("adapter"), dict):
            changes["adapter"] = replace(self.adapter, **changes["adapter"])
        return replace(self, **changes)

    def with_knobs(self, values: dict[str, Any]) -> TrainConfig:
        """A copy with knobs set by name (`adapter.bottleneck` included)."""
        flat = {k: v for k, v in values.items() if not k.startswith("adapter.")}
        nested = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("adapter.")}
        if isinstance(flat.get("adapter"), dict):
            nested = {**flat.pop("adapter"), **nested}
        return self.with_(**flat, **({"adapter": nested} if nested else {}))


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring a stored config up to `CONFIG_VERSION`.

    v1 (no `config_version`): the same fields without `prompt_weight`, `verbaliser_points` and `ensemble_teacher`
    (off, as those runs trained); its `head="auto"`
    on a headless backbone meant the probe head, which is kept (auto now picks the similarity head).
    """
    version = data.pop("config_version", 1)
    if version > CONFIG_VERSION:
        raise ValueError(f"config_version={version}: this LiST Studio reads versions up to {CONFIG_VERSION}")
    if version == 1:
        data.setdefault("prompt_weight", 5.0)
        data.setdefault("verbaliser_points", 5)
        data.setdefault("ensemble_teacher", False)
    return data


def knobs(kinds: tuple[str, ...] | None = None) -> list[Knob]:
    """Every setting (nested adapter fields as `adapter.<name>`), or those that apply to a method doing `kinds`
    of work (`Method.kinds`)."""
    all_knobs = _knobs_of(TrainConfig)
    return [k for k in all_knobs if kinds is None or "any" in k.modes or set(k.modes) & set(kinds)]


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`["rounds=3", "kd_selection=tau", "unlabeled_limit=none"]` -> typed values, each parsed by its knob's type."""
    by_name = {k.name: k for k in knobs()}
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep:
            raise ValueError(f"{pair!r}: expected KEY=VALUE")
        if key not in by_name:
            raise ValueError(f"{key!r} is not a setting; settings: {', '.join(sorted(by_name))}")
        out[key] = by_name[key].parse(value)
    return out


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
        # a pool read more than three times per round gains nothing measured and costs the user's wait
        # (BENCHMARKS.md, "Student steps on a small pool"); no benchmark pool reaches the cap
        "student_max_passes": 3.0,
        "student_lr": 1e-4,
        "finetune_epochs": 5,
        "finetune_lr": 1e-4,
        "unlabeled_limit": 4000,
        # beyond the paper, chosen from the benchmarks (BENCHMARKS.md): class-balanced KD warm-up and, for
        # backbones without an MLM head, a head fitted on frozen features of gold + pool as the teacher
        "kd_selection": "class_median",
        "probe_self_train": 3,
        "ensemble_teacher": True,
        # for the fitted similarity teacher (BENCHMARKS.md, "Gentler students", "The view-ensemble teacher kept in
        # the final model"): its rule is fitted on the top 1, 3 and 6 layers apart and averaged, it weighs the
        # classes alike, every student starts from its fit and learns at the paper's 1e-4, and the last round's
        # weights move half-way back to it
        "feature_layers": 6,
        "teacher_views": "1,3,6",
        "class_balance": True,
        "student_start": "teacher",
        "final_mix": 0.5,
        # and a lexical view beside the fitted model: its final probabilities are half a word and bigram regression's
        # fitted on the pool's latest pseudo-labels (BENCHMARKS.md, "A lexical view"; better on every set at K=10
        # and K=30, 5 seeds), which also labels the pool beside the model from round 2 on, cross-fitted on the previous
        # model's labels (BENCHMARKS.md, "Co-training in the rounds": the pseudo-labels rise through the rounds on mr,
        # subj and bbc at K=10 and K=30, 5 seeds; the final accuracy unchanged on the mean)
        "lexical_weight": 0.5,
        "lexical_rounds": True,
    },
}


def preset(name: str, **overrides: Any) -> TrainConfig:
    """The named preset (`paper` or `fast`) with optional field overrides."""
    if name not in PRESETS:
        raise ValueError(f"preset={name!r}: must be one of {sorted(PRESETS)}")
    return TrainConfig().with_(**{**PRESETS[name], **overrides})
