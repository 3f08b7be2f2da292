"""benchmarks.teacher_weights: the 'relative' rule (the prompt against a leave-one-out gold probe) by hand."""

import numpy as np
import pytest

from benchmarks.teacher_weights import loo_probe_predictions, pool_fit, relative_weight

# two well-separated classes in 2-D, three gold examples each
XG = np.array([[1.0, 0.0], [0.95, 0.1], [0.9, -0.1], [0.0, 1.0], [0.1, 0.95], [-0.1, 0.9]])
YG = np.array([0, 0, 0, 1, 1, 1])


def test_loo_probe_predicts_each_gold_example_from_the_others():
    assert loo_probe_predictions(XG, YG).tolist() == YG.tolist()
    # leaving out the only example of a class leaves nothing to predict it with
    assert loo_probe_predictions(XG[:4], YG[:4]).tolist() == [0, 0, 0, -1]


def test_relative_weight_by_hand():
    # prompt and probe both right everywhere: no example tells them apart, P = 1/2
    assert relative_weight(XG, YG, np.eye(2), 0.8) == pytest.approx(0.8 * (5 + 75 * 0.5), rel=1e-3)
    # prototypes swapped: the prompt is wrong on all 6, the probe right: P(q > 1/2 | Beta(1, 7)) = 2^-7
    assert relative_weight(XG, YG, np.eye(2)[::-1], 0.8) == pytest.approx(0.8 * (5 + 75 * 2**-7), rel=1e-3)


def test_pool_fit_prefers_the_boundary_between_the_clusters():
    """Two clusters (around e1 and e2, each spread along e3): the teacher that splits them scores a high
    silhouette; one that cuts across both (by the sign of e3) scores about 0; one that predicts one class, -1."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    spread = rng.uniform(-0.3, 0.3, 100)
    pool = np.zeros((100, 3))
    pool[:50, 0], pool[50:, 1], pool[:, 2] = 1.0, 1.0, spread
    good = LogisticRegression().fit(pool, np.repeat([0, 1], 50))
    across = LogisticRegression(C=100).fit(pool, (spread > 0).astype(int))
    fit_good, fit_across = pool_fit(good, pool, n=100), pool_fit(across, pool, n=100)
    assert fit_good["silhouette"] > 0.8 and abs(fit_across["silhouette"]) < 0.3
    assert 0.5 < fit_good["confidence"] <= 1.0
    one = LogisticRegression().fit(pool[[0, 50]], [0, 1])
    one.predict_proba = lambda x: np.tile([0.9, 0.1], (len(x), 1))
    assert pool_fit(one, pool, n=100) == {"silhouette": -1.0, "confidence": pytest.approx(0.9)}
