"""Calibrated confidence: temperature scaling fitted on labeled data the model did not train on (the project's
evaluation split), and the expected calibration error measured honestly (cross-fitted: the temperature is fitted on
one half of the split and scored on the other)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

# log-spaced candidates: a grid search over one scalar is exact enough and cannot diverge
_GRID = torch.logspace(-1.0, 1.5, 251)  # T from 0.1 to ~31.6


def expected_calibration_error(probs: torch.Tensor, labels: Sequence[int], bins: int = 10) -> float:
    """ECE: over equal-width confidence bins, the example-weighted mean |accuracy - mean confidence| (0 = the
    confidence means what it says)."""
    conf, pred = probs.max(-1)  # (N,), (N,)
    right = (pred == torch.as_tensor(list(labels))).float()  # (N,)
    edges = torch.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        if inside.any():
            ece += float(inside.float().mean() * (right[inside].mean() - conf[inside].mean()).abs())
    return ece


def fit_temperature(logits: torch.Tensor, labels: Sequence[int]) -> float:
    """The temperature T minimising the negative log-likelihood of softmax(logits / T) on (N, C) `logits`."""
    y = torch.as_tensor(list(labels))  # (N,)
    nll = torch.stack([torch.nn.functional.cross_entropy(logits.float() / t, y) for t in _GRID])  # (G,)
    return float(_GRID[int(nll.argmin())])


def cross_fitted_ece(logits: torch.Tensor, labels: Sequence[int]) -> float | None:
    """ECE after temperature scaling, each half of the examples scored with the temperature fitted on the other
    half (so the figure is not flattered by fitting and scoring on the same labels); None under 4 examples."""
    n = len(labels)
    if n < 4:
        return None
    y = torch.as_tensor(list(labels))
    halves = [torch.arange(0, n, 2), torch.arange(1, n, 2)]
    probs = torch.empty(logits.shape, dtype=torch.float32)
    for fit_on, score_on in (halves, halves[::-1]):
        t = fit_temperature(logits[fit_on], y[fit_on].tolist())
        probs[score_on] = (logits[score_on].float() / t).softmax(-1)
    return expected_calibration_error(probs, y.tolist())
