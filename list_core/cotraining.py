"""The lexical view beside the rounds (co-training's second view): what it is fitted on, and, with `lexical_rounds`,
each round's pseudo-labels mixed with a view cross-fitted on the previous model's labels of the pool."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .config import TrainConfig
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
) -> tuple[list[str], np.ndarray]:
    """What the lexical view is fitted on: the texts the teacher was fitted on (the pool, up to
    `teacher_pool_limit`) and each one's latest pseudo-label: the last round's, or the final model's for the texts
    that round did not draw (`unlabeled_limit`). Returns the texts and their (N, C) labels."""
    slots = model.prompt.text_slots
    drawn = {i: j for j, i in enumerate(chosen)}
    rest = [i for i in fit_index if i not in drawn]
    rest_rows = take(rows, rest)
    extra = soft_labels(score.logits(model, model.encode(rest_rows), batch_size)) if rest else q[:0]
    texts = [row_text(x, slots) for x in chosen_rows + rest_rows]
    return texts, torch.cat([q, extra]).double().numpy()  # (N, C)


def cotrained_labels(
    model: ListModel,
    score: Scorer,
    rows: Sequence[Row],
    fit_index: list[int],
    chosen: list[int],
    chosen_rows: list[Row],
    q: torch.Tensor,
    q0: torch.Tensor | None,
    gold_texts: list[str],
    gold_labels: Sequence[int],
    cfg: TrainConfig,
) -> tuple[torch.Tensor, bool]:
    """(N, C) this round's pseudo-labels `q` mixed (`lexical_weight`) with a lexical view's, the view cross-fitted
    on the model's labels of the pool (`lexical_rounds`), and whether it could be fitted (else `q` as it was)."""
    texts, labels = latest_labels(model, score, rows, fit_index, chosen, chosen_rows, q, cfg.eval_batch_size)
    if q0 is not None:  # the rest of the pool's labels ensembled with the first teacher's, as `q` is
        drawn = set(chosen)
        rest = [i for i in fit_index if i not in drawn]
        labels[len(chosen) :] = (labels[len(chosen) :] + q0[rest].double().numpy()) / 2
    p_lex = cross_fitted(texts, labels, gold_texts, gold_labels, cfg.seed)
    if p_lex is None:
        return q, False
    w = cfg.lexical_weight
    return ((1 - w) * q.double() + w * torch.from_numpy(p_lex[: len(chosen)])).float(), True
