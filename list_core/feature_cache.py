"""A bounded cache of a backbone's frozen features, for the prompt tools.

The zero-shot tools on a sentence encoder (the Prompt workbench's board, its label-word suggestions, the Label
page's suggestions from the prompt) read only the frozen features of texts: the prompt lives in the similarity
head's prototypes. A user edits a prompt and scores it again and again on the same gold, evaluation and pool
texts, so the features of those texts are kept, keyed by a digest of the texts (no tokenizing on a hit) or of
their token ids, in the least-recently-used order, up to a budget in bytes. Training never reads this cache: a
run's features are computed afresh, so its result does not depend on what was scored before it (features of the
same text can differ in the last bits with its batch).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from .data import Encoded, Row

if TYPE_CHECKING:
    from .model import ListModel

DEFAULT_MB = 128  # about 87,000 texts of a 384-dimensional encoder (the default backbone), 32,000 of roberta-large


def budget_bytes() -> int:
    """The cache's budget: $LIST_FEATURE_CACHE_MB megabytes (0 turns it off), else `DEFAULT_MB`."""
    raw = os.environ.get("LIST_FEATURE_CACHE_MB", "").strip() or str(DEFAULT_MB)
    try:
        mb = float(raw)
    except ValueError:
        raise ValueError(
            f"LIST_FEATURE_CACHE_MB={raw!r}: must be a number of megabytes (0 turns the cache off)"
        ) from None
    if mb < 0:
        raise ValueError(f"LIST_FEATURE_CACHE_MB={raw!r}: must be >= 0")
    return int(mb * 2**20)


def _digest(data: bytes) -> bytes:
    """16 bytes per entry, whatever the text's length."""
    return hashlib.blake2b(data, digest_size=16).digest()


class FeatureCache:
    """Frozen features by text or by token ids, least recently used first out once `max_bytes` is exceeded.
    Thread-safe: the worker's two lanes may score prompts and suggestions on one backbone at once."""

    def __init__(self, max_bytes: int | None = None) -> None:
        max_bytes = budget_bytes() if max_bytes is None else max_bytes
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self._rows: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def nbytes(self) -> int:
        """Bytes held by the cached feature rows."""
        return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self._bytes = 0

    def features(self, model: ListModel, enc: Encoded, batch_size: int = 64) -> torch.Tensor:
        """(N, D) `model.frozen_features(enc)`, encoding only the texts not cached (in one pass) and caching them."""
        keys = [_digest(b"ids" + np.asarray(ids, dtype=np.int64).tobytes()) for ids in enc.ids]
        return self._lookup(model, keys, lambda index: model.frozen_features(enc.subset(index), batch_size))

    def row_features(self, model: ListModel, rows: Sequence[Row], batch_size: int = 64) -> torch.Tensor:
        """(N, D) frozen features of the texts alone of `rows` (their prompt's text slots; a pair as a tokenizer
        pair): what a similarity head reads and what the diverse labeling order clusters, whatever `model`'s head.
        Only the rows not cached are tokenized and encoded (tokenizing long texts costs more than the lookup)."""
        slots = model.prompt.text_slots
        keys = [_digest(json.dumps([model.max_length, [str(r.get(s, "")) for s in slots]]).encode()) for r in rows]

        def compute(index: list[int]) -> torch.Tensor:
            plain = Encoded.of(model.prompt, model.backbone.tokenizer, [rows[i] for i in index], model.max_length,
                               plain=True)  # fmt: skip
            return model.frozen_features(plain, batch_size)

        return self._lookup(model, keys, compute)

    def _lookup(
        self, model: ListModel, keys: list[bytes], compute: Callable[[list[int]], torch.Tensor]
    ) -> torch.Tensor:
        """The rows of `keys`, calling `compute(positions)` once for the keys not cached (each key once)."""
        with self._lock:
            known = {k: self._rows[k] for k in set(keys) if k in self._rows}
            for k in known:
                self._rows.move_to_end(k)
        todo: dict[bytes, int] = {}  # key -> its first position: a text that occurs twice is computed once
        for i, k in enumerate(keys):
            if k not in known:
                todo.setdefault(k, i)
        new: dict[bytes, torch.Tensor] = {}
        if todo:
            fresh = compute(list(todo.values()))  # (M, D)
            new = {k: row.clone() for k, row in zip(todo, fresh)}  # each entry owns its bytes, not the batch's
        rows = known | new
        with self._lock:
            self.hits += sum(k in known for k in keys)  # texts read from the cache
            self.misses += len(new)  # texts encoded
            for k, row in new.items():
                if k not in self._rows:
                    self._rows[k] = row
                    self._bytes += row.numel() * row.element_size()
            while self._bytes > self.max_bytes and self._rows:
                _, old = self._rows.popitem(last=False)
                self._bytes -= old.numel() * old.element_size()
        if not keys:
            return torch.empty((0, model.backbone.hidden_size), dtype=torch.float32)
        return torch.stack([rows[k] for k in keys])
