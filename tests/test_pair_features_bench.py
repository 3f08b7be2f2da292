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
