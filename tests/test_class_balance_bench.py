"""benchmarks.class_balance: the four classifiers it compares, and what balancing changes, on a synthetic task."""

import numpy as np

from benchmarks.class_balance import TOP3, fits
from benchmarks.layer_features import view


def _task(seed: int, majority: int = 8, minority: int = 2, dim: int = 6, noise: float = 1.2):
    """Two symmetric classes along e0 vs e1 in every layer, gold labels `majority` of class 1 and `minority` of
    class 0, a balanced pool and test set, verbalisers on the classes' directions."""
    rng = np.random.default_rng(seed)

    def layers(y: np.ndarray) -> np.ndarray:
        x = rng.normal(size=(len(y), 7, dim)) * noise
        x[np.arange(len(y)), :, y] += 1.0
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    yg = np.array([1] * majority + [0] * minority)
    yp, yt = np.arange(300) % 2, np.arange(300) % 2
    vs = np.zeros((2, 7, dim))
    vs[0, :, 0], vs[1, :, 1] = 1.0, 1.0
    return layers(yg), yg, layers(yp), layers(yt), yt, vs


def test_fits_gives_each_method_on_the_layers_it_reads():
    xg, yg, xp, xt, yt, vs = _task(0)
    out = fits(xg, yg, xp, vs, seed=0, balanced=False)
    assert set(out) == {"teacher last", "teacher top 3", "self-train-probe", "prompt-prior-probe"}
    assert out["teacher top 3"][1] == TOP3 and out["self-train-probe"][1] == (6,)
    for clf, layers in out.values():
        assert clf.predict(view(xt, layers)).shape == (300,)


def test_balancing_undoes_the_tilt_of_an_unbalanced_gold_set():
    tilt = {False: [], True: []}
    for seed in range(6):
        xg, yg, xp, xt, yt, vs = _task(seed)
        for balanced in (False, True):
            clf, layers = fits(xg, yg, xp, vs, seed, balanced)["self-train-probe"]
            tilt[balanced].append(abs((clf.predict(view(xt, layers)) == 1).mean() - 0.5))
    assert np.mean(tilt[True]) < np.mean(tilt[False])
