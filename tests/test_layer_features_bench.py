"""benchmarks.layer_features: per-layer features, views and the gold-only choice of a view, checked by hand."""

import numpy as np
import pytest

from benchmarks.layer_features import VIEWS, cv_view, ensemble_predict, layer_features, view


def test_a_view_has_norm_one_and_its_cosine_is_the_mean_of_the_layers_cosines():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 7, 8))
    x /= np.linalg.norm(x, axis=-1, keepdims=True)  # each layer normalised, as `layer_features` gives them
    v = view(x, (2, 4, 6))
    assert v.shape == (5, 24) and np.allclose(np.linalg.norm(v, axis=1), 1.0)
    by_layer = np.mean([x[0, layer] @ x[1, layer] for layer in (2, 4, 6)])
    assert v[0] @ v[1] == pytest.approx(by_layer)


def test_the_last_layer_is_the_feature_list_core_reads(tiny_headless_dir):
    """The analysis's last layer must be LiST's own frozen feature, or its "last" rows would not be LiST's."""
    from list_core.backbone import load_backbone
    from list_core.data import Encoded
    from list_core.model import ListModel
    from list_core.prompts import Prompt

    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    texts = ["a good film", "bad", "an utterly dull and far too long story"]
    x = layer_features(bb, texts, batch_size=2)
    assert x.shape == (3, bb.encoder.config.num_hidden_layers + 1, bb.hidden_size)
    assert np.allclose(np.linalg.norm(x, axis=-1), 1.0, atol=1e-5)
    model = ListModel(bb, Prompt("{text} {mask}", ("a", "b")), head="classic", adapter=None, max_length=128)
    ref = model.frozen_features(Encoded.sentences(bb.tokenizer, texts, 128)).numpy()
    assert np.allclose(x[:, -1], ref, atol=1e-5)


def _task(signal_layers: tuple[int, ...], n: int = 20, dim: int = 6, seed: int = 0, noise: float = 0.3):
    """Two classes whose direction e0 vs e1 shows in `signal_layers` only; noise elsewhere. Gold, pool, verbalisers."""
    rng = np.random.default_rng(seed)

    def layers(y: np.ndarray) -> np.ndarray:
        x = rng.normal(size=(len(y), 7, dim)) * noise
        for layer in signal_layers:
            x[np.arange(len(y)), layer, y] += 2.0
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    yg, yp = np.repeat([0, 1], n // 2), rng.integers(0, 2, 200)
    vs = np.zeros((2, 7, dim))
    vs[0, :, 2], vs[1, :, 3] = 1.0, 1.0  # verbalisers that say nothing about e0/e1: the gold labels decide
    return layers(yg), yg, layers(yp), vs


def test_the_gold_labels_choose_a_view_that_holds_the_signal():
    xg, yg, xp, vs = _task(signal_layers=(4, 5))  # not in the last layer
    assert cv_view(xg, yg, xp, vs, seed=1) in ("4-6", "5-6", "1-6")


def test_ties_go_to_the_fewest_layers():
    xg, yg, xp, vs = _task(signal_layers=tuple(range(7)), noise=0.05)  # every layer separates the classes
    assert cv_view(xg, yg, xp, vs, seed=1) == "last"
    assert min(VIEWS, key=lambda n: len(VIEWS[n])) == "last"


def test_the_view_ensemble_averages_decision_values_binary_and_multiclass():
    # binary: +1 and -3 average to -1 (class 0); +2 and -1 to +0.5 (class 1)
    assert ensemble_predict([np.array([1.0, 2.0]), np.array([-3.0, -1.0])]).tolist() == [0, 1]
    a = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    b = np.array([[0.0, 3.0, 0.0], [0.0, 0.0, 0.5]])
    assert ensemble_predict([a, b]).tolist() == [1, 1]  # means (1, 1.5, 0) and (0, 0.5, 0.25)
