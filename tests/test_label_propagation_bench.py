"""benchmarks.label_propagation: the neighbour graph by brute force, the propagation step by hand, and the teacher's
smoothing hook."""

import numpy as np
import pytest

from benchmarks.label_propagation import knn_graph, propagate, softmax
from list_core import teacher as T


def test_the_graph_holds_each_rows_nearest_other_rows():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 5))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    idx, sim = knn_graph(x, k=4, chunk=7)  # several chunks
    full = x @ x.T
    np.fill_diagonal(full, -np.inf)
    for i in range(30):
        assert set(idx[i]) == set(np.argsort(-full[i])[:4])
        assert np.allclose(sim[i], full[i, idx[i]])


def test_one_step_by_hand():
    p = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    idx = np.array([[1, 2], [0, 2], [0, 1]])
    sim = np.array([[0.5, 1.0], [1.0, -0.2], [1.0, 1.0]])  # a negative cosine weighs nothing
    f = propagate(p, (idx, sim), alpha=0.5)
    # row 0: neighbours weigh 0.125 / 1.125 and 1 / 1.125 -> 0.5 * [1, 0] + 0.5 * (1/9 [0, 1] + 8/9 [.5, .5])
    assert f[0] == pytest.approx([0.5 + 0.5 * 4 / 9, 0.5 * (1 / 9 + 4 / 9)])
    assert f[1] == pytest.approx([0.5, 0.5])  # its only weighted neighbour is row 0
    assert f[2] == pytest.approx([0.5, 0.5])
    assert np.allclose(f.sum(1), 1.0) and np.allclose(propagate(p, (idx, sim), alpha=0.0), p)


def test_softmax_of_binary_and_multiclass_decisions():
    assert softmax(np.array([0.0, 2.0])) == pytest.approx(
        np.array([[0.5, 0.5], [1 / (1 + np.e**-2), 1 / (1 + np.e**2)]])[:, ::-1]
    )
    assert np.allclose(softmax(np.array([[1.0, 1.0, 1.0]])), 1 / 3)


def test_the_teacher_smooths_every_self_training_rounds_pool_probabilities():
    rng = np.random.default_rng(1)
    xg = np.concatenate([rng.normal(1, 0.3, (6, 4)), rng.normal(-1, 0.3, (6, 4))])
    yg = np.repeat([0, 1], 6)
    xp = np.concatenate([rng.normal(1, 0.5, (40, 4)), rng.normal(-1, 0.5, (40, 4))])
    protos = np.array([[1.0, 1, 1, 1], [-1.0, -1, -1, -1]])
    seen = []

    def one_class(p):  # a smoother that puts every pool text in class 0: the self-training must learn just that
        seen.append(p.shape)
        return np.tile([0.9, 0.1], (len(p), 1))

    plain = T.prompt_weighted_probe(xg, yg, xp, protos, 0.0, 0, iterations=2)
    smoothed = T.prompt_weighted_probe(xg, yg, xp, protos, 0.0, 0, iterations=2, smooth=one_class)
    assert seen == [(80, 2), (80, 2)]
    assert plain.predict(xp).mean() == 0.5 and smoothed.predict(xp).mean() == 0.0
