"""The prompt-aware teacher: the evidence rule by hand, and the mixing on tiny synthetic tasks where the prompt
is right and where it is wrong."""

import numpy as np
import pytest
from scipy.stats import beta

from list_core.teacher import median_confident, prompt_aware_probe, prompt_evidence, zero_shot_scores


@pytest.mark.parametrize("correct, n, classes", [(7, 10, 2), (4, 10, 2), (20, 30, 2), (0, 30, 2), (9, 30, 5)])
def test_prompt_evidence_is_the_beta_posterior_above_chance(correct, n, classes):
    expected = beta.sf(1.0 / classes, correct + 1, n - correct + 1)  # uniform prior -> Beta(k+1, n-k+1)
    assert abs(prompt_evidence(correct, n, classes) - expected) < 2e-3


def test_median_confident_keeps_the_upper_half_of_each_predicted_class():
    pred = np.array([0, 0, 0, 0, 1, 1, 1])
    conf = np.array([0.9, 0.6, 0.7, 0.8, 0.55, 0.99, 0.7])
    assert median_confident(pred, conf).tolist() == [True, False, False, True, False, True, True]


def _task(seed: int, n_gold: int = 6, noise: float = 1.0):
    """Two classes that differ along feature 0 (and weakly along feature 1); features normalised."""
    g = np.random.default_rng(seed)

    def draw(n):
        y = np.arange(n) % 2
        x = g.normal(size=(n, 8)) * noise
        x[:, 0] += np.where(y == 1, 1.5, -1.5)
        return x / np.linalg.norm(x, axis=1, keepdims=True), y

    (xg, yg), (xu, _), (xt, yt) = draw(n_gold), draw(400), draw(400)
    return xg, yg, xu, xt, yt


def test_a_right_prompt_is_used_and_a_wrong_one_ignored():
    """10 noisy gold labels; the prompt is the true direction (right) or its reverse (wrong). The weight follows
    the evidence rule; a right prompt helps; a wrong one gets little weight and does far less harm than the same
    prompt mixed in at a fixed weight."""
    right = np.eye(8)[[0, 0]] * np.array([[-1.0], [1.0]])  # class 1 along +e0: the truth
    wrong = -right  # the classes swapped
    gains, kept, fixed, w_right, w_wrong = [], [], [], [], []
    for seed in range(10):
        xg, yg, xu, xt, yt = _task(seed, n_gold=10, noise=1.5)

        def fit(protos, weight, xg=xg, yg=yg, xu=xu, xt=xt, yt=yt):
            clf, info = prompt_aware_probe(xg, yg, xu, protos, prompt_weight=weight, verbaliser_points=0, iterations=0)
            hits = round(info["prompt_gold_accuracy"] * 10)
            assert info["prompt_weight"] == pytest.approx(weight * prompt_evidence(hits, 10, 2))
            return (clf.predict(xt) == yt).mean(), info

        none, _ = fit(right, 0.0)
        acc_right, info_right = fit(right, 5.0)
        acc_wrong, info_wrong = fit(wrong, 5.0)
        acc_fixed, _ = fit(wrong, 5.0 / info_wrong["prompt_evidence"])  # the wrong prompt at the full weight 5
        gains.append(acc_right - none)
        kept.append(acc_wrong - none)
        fixed.append(acc_fixed - none)
        w_right.append(info_right["prompt_weight"])
        w_wrong.append(info_wrong["prompt_weight"])
    assert min(w_right) > 3.0 and np.mean(w_wrong) < 0.2 * np.mean(w_right)
    assert np.mean(gains) > 0.02  # a right prompt helps when the gold labels are few and noisy
    assert np.mean(kept) > -0.06  # a wrong prompt costs little ...
    assert np.mean(kept) > np.mean(fixed) + 0.15  # ... far less than mixing it in regardless of the evidence


def test_zero_shot_scores_are_cosines():
    x = np.array([[1.0, 0.0], [0.6, 0.8]])
    p = np.array([[2.0, 0.0], [0.0, 3.0]])
    assert np.allclose(zero_shot_scores(x, p), [[1.0, 0.0], [0.6, 0.8]])
