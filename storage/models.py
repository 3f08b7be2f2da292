"""Typed records returned by the store (never raw rows)."""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, fields
from typing import Any


def _json(value: str | None, default: Any = None) -> Any:
    return json.loads(value) if value else default


def _of(cls: type, r: dict, decode: dict[str, Any] | None = None, **computed: Any) -> Any:
    """A record from a row by column name: JSON columns in `decode` (name -> default when NULL), missing optional
    columns (an older schema) take their field default."""
    decode = decode or {}
    kw: dict[str, Any] = {}
    for f in fields(cls):
        if f.name in computed:
            kw[f.name] = computed[f.name]
        elif f.name in r:
            kw[f.name] = _json(r[f.name], decode[f.name]) if f.name in decode else r[f.name]
        elif f.default is MISSING and f.default_factory is MISSING:  # type: ignore[misc]
            raise KeyError(f"{cls.__name__}: the row has no column {f.name!r}")
    return cls(**kw)


@dataclass(frozen=True)
class Project:
    id: int
    name: str
    task: str  # single | pair
    labels: list[str]
    backbone: str
    target_gold: int
    created_at: str

    @classmethod
    def of(cls, r: dict) -> Project:
        return _of(cls, r, {"labels": []})

    @property
    def slots(self) -> tuple[str, ...]:
        return ("text_a", "text_b") if self.task == "pair" else ("text",)


@dataclass(frozen=True)
class Example:
    id: int
    project_id: int
    text: str | None
    text_a: str | None
    text_b: str | None
    source: str
    split: str
    gold: int | None = None  # current gold label, if any

    eval_label: int | None = None  # the label of an evaluation-split example

    @classmethod
    def of(cls, r: dict) -> Example:
        return _of(cls, r)

    def row(self) -> dict[str, str]:
        """The texts as list_core expects them."""
        if self.text is not None:
            return {"text": self.text}
        return {"text_a": self.text_a or "", "text_b": self.text_b or ""}

    def display(self) -> str:
        return self.text if self.text is not None else f"{self.text_a}\n\n{self.text_b}"


@dataclass(frozen=True)
class LabelEvent:
    id: int
    example_id: int
    old_label: int | None
    new_label: int | None
    at: str
    by: str
    reason: str

    @classmethod
    def of(cls, r: dict) -> LabelEvent:
        return _of(cls, r)


@dataclass(frozen=True)
class PromptVersion:
    id: int
    project_id: int
    version: int
    template: str
    label_words: list[str | list[str]]  # per class: a word, or several
    created_at: str
    descriptions: list[str] | None = None  # per class, optional

    @classmethod
    def of(cls, r: dict) -> PromptVersion:
        return _of(cls, r, {"label_words": [], "descriptions": None})

    @staticmethod
    def stored_form(label_words: list, descriptions: list[str] | None) -> tuple[list, list[str] | None]:
        """Label words and descriptions as a prompt version stores them (lists; no descriptions when all are empty)."""
        words = [w if isinstance(w, str) else list(w) for w in label_words]
        return words, (list(descriptions) if descriptions and any(d.strip() for d in descriptions) else None)

    def same_as(self, template: str, label_words: list, descriptions: list[str] | None = None) -> bool:
        """Whether saving this prompt (as `save_prompt` stores it) would change nothing."""
        return (self.template, self.label_words, self.descriptions) == (
            template, *self.stored_form(label_words, descriptions))  # fmt: skip


# Background work nobody waits for: an `embed` job, or a job whose payload says "background" (the diversity order an
# import queues, the prompt's suggestions for a large pool a scoring queues). A worker claims it after every queued job
# of the user's, it makes way when one arrives while it runs, and queued it does not keep a project from deletion.
BACKGROUND_SQL = "(kind = 'embed' OR coalesce(json_extract(payload, '$.background'), 0))"


@dataclass(frozen=True)
class Job:
    id: int
    project_id: int | None
    kind: str
    payload: dict[str, Any]
    status: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    heartbeat_at: str | None
    worker_id: str | None
    attempts: int
    cancel_requested: bool
    stage: str | None
    step: int | None
    total: int | None
    eta_seconds: float | None
    message: str | None
    error: str | None
    result: dict[str, Any] | None
    run_eta_seconds: float | None = None  # the whole run, once one round has been timed
    stalls: int = 0  # attempts that died before finishing a round (the give-up rule counts these)

    @classmethod
    def of(cls, r: dict) -> Job:
        return _of(cls, r, {"payload": {}, "result": None}, cancel_requested=bool(r["cancel_requested"]))

    @property
    def done(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")

    @property
    def background(self) -> bool:
        """Whether this is background work (`BACKGROUND_SQL`)."""
        return self.kind == "embed" or bool(self.payload.get("background"))


@dataclass(frozen=True)
class Run:
    id: int
    project_id: int
    job_id: int | None
    method: str
    preset: str
    config: dict[str, Any]
    seed: int
    status: str
    backbone: str
    backbone_hash: str | None
    head: str | None
    prompt_id: int | None
    gold_snapshot: list[list[int]]
    metrics: dict[str, Any] | None
    checkpoint_dir: str | None
    created_at: str
    finished_at: str | None

    inputs: dict[str, Any] | None = None  # what the run trains on, fixed at enqueue (None: runs made before)
    number: int | None = None  # 1, 2, ... within its project (what people see); `id` is the key

    @property
    def label(self) -> str:
        """How pages name the run: its number within the project."""
        return f"run {self.number if self.number is not None else self.id}"

    @property
    def unlabeled_count(self) -> int | None:
        """How many unlabeled examples the run trains on (None: started before input snapshots)."""
        if self.inputs is None:
            return None
        return len(self.inputs["unlabeled"]) if "unlabeled" in self.inputs else self.inputs["unlabeled_count"]

    @classmethod
    def of(cls, r: dict) -> Run:
        return _of(cls, r, {"config": {}, "gold_snapshot": [], "metrics": None, "inputs": None})


@dataclass(frozen=True)
class PseudoLabel:
    run_id: int
    round: int
    example_id: int
    probs: list[float]
    label: int
    confidence: float
    weight: float | None
    flipped: bool
    text: str = ""
    gold: int | None = None

    @classmethod
    def of(cls, r: dict) -> PseudoLabel:
        text = r.get("text") if r.get("text") is not None else f"{r.get('text_a') or ''} || {r.get('text_b') or ''}"
        return _of(cls, r, {"probs": []}, flipped=bool(r["flipped"]), text=text)


@dataclass(frozen=True)
class Artifact:
    id: int
    project_id: int
    run_id: int | None
    kind: str
    path: str
    size: int
    sha256: str
    created_at: str

    @classmethod
    def of(cls, r: dict) -> Artifact:
        return _of(cls, r)
