"""benchmarks.headroom: the frozen-feature oracle is a real fit scored on held-out data."""

import numpy as np

from benchmarks.headroom import frozen_oracle


def _draw(rng, n, shuffle_labels=False):
    y = rng.integers(0, 3, n)
    x = np.eye(3, 6)[y] * 2.0 + rng.normal(0, 0.3, (n, 6))
    return x / np.linalg.norm(x, axis=1, keepdims=True), rng.permutation(y) if shuffle_labels else y


def test_frozen_oracle_learns_a_separable_task():
    rng = np.random.default_rng(0)
    (xp, yp), (xt, yt) = _draw(rng, 300), _draw(rng, 200)
    assert frozen_oracle(xp, yp, xt, yt, 1.0) > 95.0


def test_frozen_oracle_is_at_chance_when_the_pool_labels_carry_nothing():
    rng = np.random.default_rng(1)
    (xp, yp), (xt, yt) = _draw(rng, 300, shuffle_labels=True), _draw(rng, 600)
    assert frozen_oracle(xp, yp, xt, yt, 1.0) < 50.0
