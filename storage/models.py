"""Typed records returned by the store (never raw rows)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


def _json(value: str | None, default: Any = None) -> Any:
    return json.loads(value) if value else default


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
        return cls(
            r["id"], r["name"], r["task"], _json(r["labels"], []), r["backbone"], r["target_gold"], r["created_at"]
        )

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

    @classmethod
    def of(cls, r: dict) -> Example:
        return cls(
            r["id"], r["project_id"], r["text"], r["text_a"], r["text_b"], r["source"], r["split"], r.get("gold")
        )

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
        return cls(r["id"], r["example_id"], r["old_label"], r["new_label"], r["at"], r["by"], r["reason"])


@dataclass(frozen=True)
class PromptVersion:
    id: int
    project_id: int
    version: int
    template: str
    label_words: list[str]
    created_at: str

    @classmethod
    def of(cls, r: dict) -> PromptVersion:
        return cls(r["id"], r["project_id"], r["version"], r["template"], _json(r["label_words"], []), r["created_at"])


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

    @classmethod
    def of(cls, r: dict) -> Job:
        return cls(
            r["id"], r["project_id"], r["kind"], _json(r["payload"], {}), r["status"], r["created_at"],
            r["started_at"], r["finished_at"], r["heartbeat_at"], r["worker_id"], r["attempts"],
            bool(r["cancel_requested"]), r["stage"], r["step"], r["total"], r["eta_seconds"], r["message"],
            r["error"], _json(r["result"]), r.get("run_eta_seconds"),
        )  # fmt: skip

    @property
    def done(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")


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

    @classmethod
    def of(cls, r: dict) -> Run:
        return cls(
            r["id"], r["project_id"], r["job_id"], r["method"], r["preset"], _json(r["config"], {}), r["seed"],
            r["status"], r["backbone"], r["backbone_hash"], r["head"], r["prompt_id"], _json(r["gold_snapshot"], []),
            _json(r["metrics"]), r["checkpoint_dir"], r["created_at"], r["finished_at"],
        )  # fmt: skip


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
        return cls(
            r["run_id"], r["round"], r["example_id"], _json(r["probs"], []), r["label"], r["confidence"],
            r["weight"], bool(r["flipped"]), text, r.get("gold"),
        )  # fmt: skip


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
        return cls(r["id"], r["project_id"], r["run_id"], r["kind"], r["path"], r["size"], r["sha256"], r["created_at"])
