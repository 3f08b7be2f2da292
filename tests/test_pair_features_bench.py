"""benchmarks.pair_features: each reader scored on a synthetic pair task whose label is the cosine alone."""

import numpy as np

from benchmarks.pair_features import compare


def test_a_cosine_task_is_read_by_the_rule_and_by_the_joint_features_only_with_the_cosine():
    rng = np.random.default_rng(0)

    def split(n):
        x = rng.normal(size=(n, 16))  # joint features that carry nothing about the label
        c = rng.uniform(0.0, 1.0, n)
        return x, c, (c < 0.5).astype(int)  # class 0 (e.g. entailment): the close pairs

    (xg, cg, yg), (xp, cp, _), (xt, ct, yt) = split(200), split(2000), split(1000)
    got = compare(xg, xp, xt, cg, cp, ct, yg, yt)
    assert got["rule"] > 90 and got["joint + cosine on rule labels"] > 80  # (the noise dimensions cost a little)
    assert 35 < got["joint probe"] < 65 and 35 < got["joint on rule labels"] < 65  # noise: about chance


def test_the_gold_temperature_calibrates_a_rule_that_is_right_two_times_in_three():
    """A noisy cosine task (the label follows the cosine two times in three): the rule fitted on separable pool
    labels is nearly certain (ECE about 30 points); the temperature it fits on 60 gold pairs brings its confidence
    near its accuracy."""
    from benchmarks.pair_features import calibration

    rng = np.random.default_rng(1)

    def split(n):
        c = rng.uniform(0.0, 1.0, n)
        y = (c < 0.5).astype(int)
        flip = rng.uniform(size=n) < 1 / 3
        return c, np.where(flip, 1 - y, y)

    (cg, yg), (cp, _), (ct, yt) = split(60), split(2000), split(2000)
    got = calibration(cg, cp, ct, yg, yt, 2)
    assert 60 < got["accuracy"] < 72 and got["confidence T=1"] > 90 and got["ECE T=1"] > 20
    assert got["T"] > 1 and got["ECE gold T"] < 10 and abs(got["confidence gold T"] - got["accuracy"]) < 10
