"""Large unlabeled pools: rows read, encoded and scored a chunk at a time, and a bounded sample for fitting.

A run's pool may hold millions of texts. Only what is small per text is kept for the whole pool (its (N, C)
pseudo-label probabilities); rows, token ids and (N, D) features exist for one chunk at a time, or for a
random sample of bounded size (the frozen-feature teachers are fitted on one).

A pool is any sequence of rows; one that can read many rows at once (a database) also offers
`take(index) -> rows` (`storage.examples.ExampleRows`), which is used instead of one `rows[i]` per row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import torch

from .data import Encoded, Row
from .distributed import Scorer
from .model import ListModel

CHUNK = 32_768  # texts read and encoded at once: ~50 MB of token ids at 128 tokens, whatever the pool's size


class RowSource(Protocol):
    """Rows by position, read many at a time."""

    def __len__(self) -> int: ...

    def take(self, index: Sequence[int]) -> list[Row]: ...


def take(rows: Sequence[Row], index: Sequence[int]) -> list[Row]:
    """The rows at these positions, in this order (one read for a `RowSource`)."""
    read = getattr(rows, "take", None)
    return read(index) if read is not None else [rows[i] for i in index]


def spans(n: int, size: int | None = None) -> Iterator[range]:
    """Consecutive position ranges of at most `size` (default `CHUNK`) covering `range(n)`."""
    size = size or CHUNK
    for s in range(0, n, size):
        yield range(s, min(n, s + size))


def sample(n: int, limit: int | None, generator: torch.Generator) -> list[int]:
    """Sorted positions of a uniform sample of at most `limit` of `n` (all of them, in order, when `n <= limit`)."""
    if limit is None or n <= limit:
        return list(range(n))
    return sorted(torch.randperm(n, generator=generator)[:limit].tolist())


def pass_over(
    score: Scorer,
    model: ListModel,
    rows: Sequence[Row],
    what: str = "logits",
    index: Sequence[int] | None = None,
    batch_size: int = 64,
    chunk: int | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """`score.logits` (or `"features"`) of the rows at `index` (default: all), read and encoded `chunk` (default
    `CHUNK`) rows at a time: (len(index), C) or (len(index), D). Only the output is held whole, so ask for features
    of a bounded index only. `on_chunk(done)` is called after each chunk (progress, and a place to stop)."""
    index = range(len(rows)) if index is None else index
    width = model.num_classes if what == "logits" else model.feature_dim
    out = torch.empty((len(index), width), dtype=torch.float32)
    forward = score.logits if what == "logits" else score.features
    for part in spans(len(index), chunk):
        enc: Encoded = model.encode(take(rows, [index[i] for i in part]))
        out[part.start : part.stop] = forward(model, enc, batch_size)  # (n_chunk, C or D)
        if on_chunk is not None:
            on_chunk(part.stop)
    return out
