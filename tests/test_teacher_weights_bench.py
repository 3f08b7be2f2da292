"""benchmarks.teacher_weights: the 'relative' rule (the prompt against a leave-one-out gold probe) by hand."""

import numpy as np
import pytest

from benchmarks.teacher_weights import loo_probe_predictions, relative_weight

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
