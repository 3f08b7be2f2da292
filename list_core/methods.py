"""The one registry of training methods: LiST, its baselines and whatever else is registered (the bench adds
its external peers). The worker, the pages and the bench all read it, so adding a method touches one place.

Torch-free: a method's code is named as `"module:function"` and imported only when the method runs, so the
UI can list methods and their settings without importing torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config import EXPORT_FORMATS, MODES, Knob, knobs


@dataclass(frozen=True)
class Method:
    """A way to train a classifier from a prompt, gold labels and an unlabeled pool.

    `runner(backbone, prompt, task, cfg, callback, should_cancel, checkpoint_dir)` returns an object with
    `predict_proba(rows) -> (N, C)`; methods that train adapters return a `RunResult` (rounds, checkpoints).
    """

    name: str
    title: str
    help: str
    runner: str | Callable[..., Any]  # "module:function" (imported when run) or a callable
    kinds: tuple[str, ...] = ("frozen",)  # which settings apply (config.MODES)
    trains_adapters: bool = False  # checkpoints per round; export, predict and Rounds read them
    self_training: bool = False  # rounds of pseudo-labels that the Inspect page shows
    uses_pool: bool = False  # reads the unlabeled pool
    tasks: tuple[str, ...] = ("single", "pair")  # the project tasks it can train on
    # the formats its kept model exports to (config.EXPORT_FORMATS); () for a method whose runs keep no model
    exports: tuple[str, ...] = ("native", "folded")

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"method name {self.name!r}: letters, digits, '-' and '_' only")
        if not self.tasks or set(self.tasks) - {"single", "pair"}:
            raise ValueError(f"method {self.name!r}: tasks {self.tasks!r} must be among 'single' and 'pair'")
        if set(self.exports) - set(EXPORT_FORMATS) or (self.exports and "native" not in self.exports):
            raise ValueError(f"method {self.name!r}: exports {self.exports!r} must be among {tuple(EXPORT_FORMATS)} "
                             "and include 'native' (the form a run keeps its model in)")  # fmt: skip
        bad = set(self.kinds) - set(MODES)
        if bad:
            raise ValueError(f"method {self.name!r}: kinds {sorted(bad)} are not among {MODES}")

    def knobs(self) -> list[Knob]:
        """The settings that apply to this method (for the Train page's form)."""
        return knobs(self.kinds)

    def run(self, backbone, prompt, task, cfg, callback=None, should_cancel=None, checkpoint_dir=None) -> Any:
        fn = self.runner
        if isinstance(fn, str):
            module, _, attr = fn.partition(":")
            fn = getattr(importlib.import_module(module), attr)
        return fn(backbone, prompt, task, cfg, callback, should_cancel, checkpoint_dir)


REGISTRY: dict[str, Method] = {}


def register(method: Method, replace: bool = False) -> Method:
    """Add a method (an existing name is refused unless `replace`)."""
    if method.name in REGISTRY and not replace:
        raise ValueError(f"a method named {method.name!r} is already registered")
    REGISTRY[method.name] = method
    return method


def unregister(name: str) -> None:
    REGISTRY.pop(name, None)


def get(name: str) -> Method:
    if name not in REGISTRY:
        raise ValueError(f"method={name!r}: must be one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


_B = "list_core.baselines"
_ALL = tuple(EXPORT_FORMATS)
for _m in (
    Method("list", "LiST (self-training with meta-reweighting)",
           "prompt-based teacher, then rounds of pseudo-labels, a meta-reweighted student and gold tuning",
           f"{_B}:run_list_method", ("adapters", "rounds"), trains_adapters=True, self_training=True, uses_pool=True,
           exports=_ALL),
    Method("prompt", "Prompt fine-tuning (adapters, no self-training)",
           "adapters and the prompt head (MLM head at the mask, or the similarity head) tuned on the gold labels",
           f"{_B}:run_prompt_finetuning", ("adapters",), trains_adapters=True, exports=_ALL),
    Method("classic", "Classic fine-tuning (adapters, linear head)",
           "adapters and a linear head on pooled features tuned on the gold labels", f"{_B}:run_classic_finetuning",
           ("adapters",), trains_adapters=True, exports=_ALL),
    Method("prompt-prior-probe", "Prompt-prior probe (baseline)",
           "the zero-shot prompt labels the pool; a logistic regression on gold + those, self-trained",
           f"{_B}:run_prompt_prior_probe", ("frozen", "probe"), uses_pool=True),
    Method("self-train-probe", "Self-trained linear probe (baseline)",
           "a logistic regression on gold, self-trained on the pool's frozen features", f"{_B}:run_self_train_probe",
           ("frozen", "probe"), uses_pool=True),
    Method("linear-probe", "Linear probe on frozen features (baseline)",
           "a logistic regression on the gold examples' frozen features", f"{_B}:run_linear_probe",
           ("frozen", "probe")),
    Method("pair-similarity", "Pair similarity (baseline, pair tasks)",
           "the cosine of the two texts embedded apart, thresholded at pool quantiles set by the gold labels: what a "
           "sentence encoder knows about how two texts relate", "list_core.pair_similarity:run_pair_similarity",
           uses_pool=True, tasks=("pair",), exports=("native",)),
    Method("zero-shot", "Zero-shot prompt (no training)",
           "the prompt alone: the MLM head at the mask, or cosine to the verbaliser embeddings",
           f"{_B}:run_zero_shot"),
):  # fmt: skip
    register(_m)
