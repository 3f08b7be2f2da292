"""Task data: validation of gold and unlabeled rows, encoding, and length-sorted dynamically padded batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from .events import raise_if_cancelled
from .prompts import Prompt, encode, encode_plain

Row = dict[str, str]


class DataError(ValueError):
    """Task data that cannot be trained on."""


@dataclass(frozen=True)
class Encoded:
    """Token ids and mask position per row, ready for batching."""

    ids: list[list[int]]
    mask_pos: list[int]
    texts: list[str] | None = None  # the rows' texts, for a model with a lexical view (`lexical`)

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def of(
        cls,
        prompt: Prompt,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[Row],
        max_length: int,
        plain: bool = False,
    ) -> Encoded:
        """Rows rendered in the template with its mask, or with `plain` the texts alone."""
        if plain:
            return cls(*encode_plain(tokenizer, list(rows), prompt.text_slots, max_length))
        ids, pos = encode(prompt, tokenizer, list(rows), max_length)
        return cls(ids, pos)

    @classmethod
    def sentences(cls, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int) -> Encoded:
        """Single sentences as a sentence encoder reads them (verbalisers), whatever the prompt's text slots."""
        return cls(*encode_plain(tokenizer, [{"text": t} for t in texts], ("text",), max_length))

    def subset(self, index: Sequence[int]) -> Encoded:
        texts = None if self.texts is None else [self.texts[i] for i in index]
        return Encoded([self.ids[i] for i in index], [self.mask_pos[i] for i in index], texts)


def check_rows(prompt: Prompt, rows: Sequence[Row], what: str) -> None:
    """Every row has non-empty texts for the prompt's slots; errors name the row."""
    for i, row in enumerate(rows):
        for slot in prompt.text_slots:
            value = row.get(slot)
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"{what} row {i}: {slot!r} is empty or missing")


def check_task(
    prompt: Prompt,
    labels: Sequence[str],
    gold_rows: Sequence[Row],
    gold_labels: Sequence[int],
    unlabeled_rows: Sequence[Row],
) -> None:
    """Everything that would make a run fail, found before any training."""
    if len(labels) != len(prompt.label_words):
        raise DataError(f"{len(labels)} labels {list(labels)} but {len(prompt.label_words)} label words")
    if len(set(labels)) != len(labels):
        raise DataError(f"duplicate labels in {list(labels)}")
    if len(gold_rows) != len(gold_labels):
        raise DataError(f"{len(gold_rows)} gold rows but {len(gold_labels)} gold labels")
    check_rows(prompt, gold_rows, "gold")
    check_rows(prompt, unlabeled_rows, "unlabeled")
    bad = [y for y in gold_labels if not (isinstance(y, int) and 0 <= y < len(labels))]
    if bad:
        raise DataError(f"gold labels must be class indices in [0, {len(labels)}); got {bad[:5]}")
    missing = [labels[c] for c in range(len(labels)) if c not in set(gold_labels)]
    if missing:
        raise DataError(f"no gold example for class(es) {missing}; label at least one example of each class")


def collate(enc: Encoded, index: Sequence[int], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Pad the rows in `index` to their longest length (dynamic padding)."""
    rows = [enc.ids[i] for i in index]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (B, T)
    am = torch.zeros((len(rows), width), dtype=torch.long)  # (B, T)
    for b, r in enumerate(rows):
        ids[b, : len(r)] = torch.tensor(r)
        am[b, : len(r)] = 1
    pos = torch.tensor([enc.mask_pos[i] for i in index], dtype=torch.long)  # (B,)
    return {"input_ids": ids.to(device), "attention_mask": am.to(device), "mask_pos": pos.to(device)}


def drop_tokens(batch: dict[str, torch.Tensor], p: float, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Token dropout: hide each real token of a collated batch from the encoder with probability `p` (its
    attention mask set to 0). Each row's first and last real token (`[CLS]`/`[SEP]`, `<s>`/`</s>`) and its mask
    slot are always kept, and so is at least one other token where the row has one."""
    am = batch["attention_mask"]  # (B, T)
    if p <= 0.0:
        return batch
    b, t = am.shape
    lengths = am.sum(-1)  # (B,)
    pos = torch.arange(t, device=am.device).expand(b, t)  # (B, T)
    content = (am > 0) & (pos > 0) & (pos < (lengths - 1)[:, None])  # (B, T): neither special token
    content &= pos != batch["mask_pos"][:, None]
    drop = (torch.rand((b, t), generator=generator) < p).to(am.device) & content  # (B, T)
    everything = drop.sum(-1) == content.sum(-1)  # (B,): rows that would lose every content token
    if everything.any():  # keep the first content token of those rows
        first = torch.where(content, pos, t).min(-1).values  # (B,)
        drop &= ~(everything[:, None] & (pos == first[:, None]))
    return {**batch, "attention_mask": am.masked_fill(drop, 0)}


def sorted_batches(enc: Encoded, batch_size: int) -> Iterator[list[int]]:
    """Index batches in order of length, so padding is minimal; a cancel (`events.cancellable`) stops between two."""
    order = sorted(range(len(enc)), key=lambda i: len(enc.ids[i]))
    for s in range(0, len(order), batch_size):
        raise_if_cancelled()
        yield order[s : s + batch_size]


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[list[int]]:
    """One epoch of shuffled index batches (the last may be smaller)."""
    perm = torch.randperm(n, generator=generator).tolist()
    for s in range(0, n, batch_size):
        yield perm[s : s + batch_size]


def sample_batch(pool: Sequence[int], batch_size: int, generator: torch.Generator) -> list[int]:
    """`batch_size` indices drawn from `pool` without replacement (with replacement if the pool is smaller)."""
    n = len(pool)
    if n >= batch_size:
        pick = torch.randperm(n, generator=generator)[:batch_size]
    else:
        pick = torch.randint(n, (batch_size,), generator=generator)
    return [pool[i] for i in pick.tolist()]
