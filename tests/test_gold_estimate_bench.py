"""benchmarks.gold_estimate: the k-fold estimate of the teacher rule on the gold labels, checked on tasks whose
answer is known."""

import numpy as np

from benchmarks.gold_estimate import kfold_estimate


def _task(separable: bool, n: int = 20, dim: int = 6, seed: int = 0):
    """Two classes, per-layer features (7 layers): e0 vs e1 in every layer when `separable`, else pure noise."""
    rng = np.random.default_rng(seed)

    def layers(y: np.ndarray) -> np.ndarray:
        x = rng.normal(size=(len(y), 7, dim)) * 0.3
        if separable:
            x[np.arange(len(y)), :, y] += 2.0
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    yg, yp = np.repeat([0, 1], n // 2), rng.integers(0, 2, 200)
    vs = np.zeros((2, 7, dim))
    vs[0, :, 2], vs[1, :, 3] = 1.0, 1.0  # verbalisers that say nothing: the gold labels decide
    return layers(yg), yg, layers(yp), vs


def test_a_separable_task_is_estimated_near_perfect_and_noise_near_chance():
    assert kfold_estimate(*_task(separable=True), seed=1) >= 0.95
    noise = np.mean([kfold_estimate(*_task(separable=False, seed=s), seed=s) for s in range(4)])
    assert 0.2 <= noise <= 0.8


def test_a_class_with_one_gold_label_still_gets_an_estimate():
    xg, yg, xp, vs = _task(separable=True)
    keep = np.r_[np.arange(10), 10]  # ten of class 0, one of class 1: no stratified split exists
    est = kfold_estimate(xg[keep], yg[keep], xp, vs, seed=1)
    assert 0.0 <= est <= 1.0 and est * 11 == round(est * 11)


def test_without_runs_to_compare_with_it_exits_non_zero(capsys):
    from benchmarks.gold_estimate import main

    assert main(["data", "mr"]) == 2
    assert "--runs FILE is required" in capsys.readouterr().err
