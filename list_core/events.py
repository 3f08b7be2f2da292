"""Progress events, cancellation and reproducible seeding shared by every training loop."""

from __future__ import annotations

import contextlib
import hashlib
import random
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


class Cancelled(RuntimeError):
    """The run was cancelled between two steps."""


@dataclass
class Event:
    """One progress report: a stage, a step out of a total, and whatever the stage measured."""

    stage: str  # probe, teacher, pseudo_label, kd_warmup, meta, finetune, round_end, round_restored, done, warning
    step: int = 0
    total: int = 0
    round: int | None = None
    losses: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None  # setup: what the model is (head, parameters)
    record: Any = None  # round_end, round_restored (a resumed run's finished rounds), done: the `RoundRecord`
    table: list[Any] | None = None  # round_end, round_restored: the round's `PseudoLabelRow`s
    message: str = ""
    model: Any = field(default=None, repr=False)  # round_end: the model after that round (for observers)


Callback = Callable[[Event], None]
CancelCheck = Callable[[], bool]


_cancel_check: ContextVar[CancelCheck | None] = ContextVar("list_cancel_check", default=None)


@contextlib.contextmanager
def scoped(var: ContextVar, value: object) -> Iterator[None]:
    """`var` holds `value` inside the block (this thread or task only), its previous value after it."""
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


def cancellable(check: CancelCheck | None) -> contextlib.AbstractContextManager:
    """Inside this block every batched forward pass (`data.sorted_batches`) calls `check` between batches and raises
    `Cancelled` when it says so: long stages (pseudo-labeling a large pool, prediction, feature extraction for a
    probe fit) stop within a batch, not at their end."""
    return scoped(_cancel_check, check)


def raise_if_cancelled() -> None:
    """Raise `Cancelled` if the enclosing `cancellable` block's check says to stop."""
    check = _cancel_check.get()
    if check is not None and check():
        raise Cancelled("cancelled")


class Reporter:
    """Sends events to an optional callback and raises `Cancelled` when asked to stop."""

    def __init__(self, callback: Callback | None = None, should_cancel: CancelCheck | None = None) -> None:
        self.callback = callback
        self.should_cancel = should_cancel

    def __call__(self, event: Event) -> None:
        if self.callback is not None:
            self.callback(event)

    def check(self) -> None:
        if self.should_cancel is not None and self.should_cancel():
            raise Cancelled("run cancelled")


def derive_seed(seed: int, *parts: object) -> int:
    """A seed for one stage of one round, independent of what ran before (so resumed runs match)."""
    h = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return int.from_bytes(h[:4], "little")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (dropout) and return a CPU generator for data order and init."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
