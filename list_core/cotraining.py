"""The lexical view beside the rounds (co-training's second view): what it is fitted on, and, with `lexical_rounds`,
each round's pseudo-labels mixed with a view cross-fitted on the previous model's labels of the pool."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .data import Row
from .distributed import Scorer
from .lexical import cross_fitted, row_text
from .losses import soft_labels
from .model import ListModel
from .pool import take


def latest_labels(
    model: ListModel,
    score: Scorer,
    rows: Sequence[Row],
    fit_index: list[int],
    chosen: list[int],
    chosen_rows: list[Row],
    q: torch.Tensor,
    batch_size: int,
    q0: torch.Tensor | None = None,
) -> tuple[list[str], np.ndarray]:
    """What the lexical view is fitted on: the texts the teacher was fitted on (the pool, up to
    `teacher_pool_limit`) and each one's latest pseudo-label: the round's `q` for the texts it drew, the model's for
    the rest (`unlabeled_limit`), ensembled with the first teacher's `q0` (whole pool) when given, as `q` is.
    Returns the texts and their (N, C) labels."""
    slots = model.prompt.text_slots
    drawn = set(chosen)
    rest = [i for i in fit_index if i not in drawn]
    rest_rows = take(rows, rest)
    extra = soft_labels(score.logits(model, model.encode(rest_rows), batch_size)) if rest else q[:0]
    if q0 is not None and rest:
        extra = (extra.double() + q0[rest].double()) / 2
    texts = [row_text(x, slots) for x in chosen_rows + rest_rows]
    return texts, torch.cat([q.double(), extra.double()]).numpy()  # (N, C)


def cotrained_labels(
    q: torch.Tensor,
    texts: list[str],
    labels: np.ndarray,
    gold_texts: list[str],
    gold_labels: Sequence[int],
    weight: float,
    seed: int,
) -> tuple[torch.Tensor, bool]:
    """(N, C) a round's pseudo-labels `q` (those of the first N of `texts`) mixed at `weight` with a lexical view's,
    the view cross-fitted on `texts` and their `labels` (`latest_labels`; `lexical_rounds`), and whether it could be
    fitted (else `q` as it was)."""
    p_lex = cross_fitted(texts, labels, gold_texts, gold_labels, seed)  # (len(texts), C)
    if p_lex is None:
        return q, False
    return ((1 - weight) * q.double() + weight * torch.from_numpy(p_lex[: len(q)])).float(), True
