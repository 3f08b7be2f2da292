import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from list_core.heads import ProbeHead, pool


def test_pool_mean_ignores_padding():
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    assert torch.allclose(pool(h, torch.tensor([[1, 1, 0]])), torch.tensor([[2.0, 3.0]]))
    assert torch.allclose(pool(h, torch.tensor([[1, 1, 0]]), "cls"), torch.tensor([[1.0, 2.0]]))


def _features(n, d, classes, seed=0):
    g = np.random.default_rng(seed)
    x = g.normal(size=(n, d)).astype(np.float32)
    y = np.arange(n) % classes
    x[np.arange(n), y] += 2.0
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return torch.from_numpy(x), torch.from_numpy(y)


def test_probe_head_matches_logistic_regression_binary_and_multiclass():
    for classes in (2, 4):
        x, y = _features(40, 8, classes)
        head = ProbeHead(8, classes)
        head.fit(x, y)
        ref = (
            LogisticRegression(C=100.0, max_iter=5000, random_state=0)
            .fit(x.numpy(), y.numpy())
            .predict_proba(x.numpy())
        )
        # the head normalises mean-pooled states: feed each feature as a one-token sequence
        got = head(x[:, None, :], torch.ones(len(x), 1), torch.zeros(len(x), dtype=torch.long)).softmax(-1)
        assert np.abs(got.detach().numpy() - ref).max() < 1e-4
        w = head.linear.weight.detach().clone()
        with torch.no_grad():
            head.linear.weight.zero_()
        head.reset_parameters()  # a fresh student starts from the fit again
        assert torch.equal(head.linear.weight, w)
