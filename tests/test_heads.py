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


def test_self_trained_probe_follows_the_median_rule_by_hand():
    from list_core.heads import self_train_logreg

    x, y = _features(12, 8, 2, seed=1)
    pool_x, _ = _features(40, 8, 2, seed=2)
    x, y, pool_x = x.numpy(), y.numpy(), pool_x.numpy()

    def lr(a, b):
        return LogisticRegression(C=100.0, max_iter=5000, random_state=0).fit(a, b)

    ref = lr(x, y)
    for _ in range(2):  # by hand: per predicted class, keep confidence >= that class's median
        p = ref.predict_proba(pool_x)
        pred, conf = p.argmax(1), p.max(1)
        keep = [i for i in range(len(pred)) if conf[i] >= np.median(conf[pred == pred[i]])]
        ref = lr(np.concatenate([x, pool_x[keep]]), np.concatenate([y, pred[keep]]))
    got = self_train_logreg(x, y, pool_x, 100.0, 2, 0)
    assert np.abs(got.predict_proba(pool_x) - ref.predict_proba(pool_x)).max() < 1e-9
    # zero iterations (or no pool) is the plain probe
    plain = self_train_logreg(x, y, pool_x, 100.0, 0, 0)
    assert np.abs(plain.predict_proba(pool_x) - lr(x, y).predict_proba(pool_x)).max() < 1e-9

    head = ProbeHead(8, 2)
    head.fit(torch.from_numpy(x), torch.from_numpy(y), 0, torch.from_numpy(pool_x), 2)
    logits = head(
        torch.from_numpy(pool_x)[:, None, :], torch.ones(len(pool_x), 1), torch.zeros(len(pool_x), dtype=torch.long)
    )
    assert np.abs(logits.softmax(-1).detach().numpy() - ref.predict_proba(pool_x)).max() < 1e-4


def test_similarity_head_starts_as_the_zero_shot_cosine_classifier():
    from list_core.heads import SimilarityHead

    g = torch.Generator().manual_seed(0)
    protos = torch.randn(3, 8, generator=g)
    head = SimilarityHead(protos, scale=20.0)
    hidden = torch.randn(4, 5, 8, generator=g)  # (B, T, D)
    am = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 0, 0, 0]])
    x = torch.nn.functional.normalize((hidden * am[..., None]).sum(1) / am.sum(1, keepdim=True), dim=-1)
    cos = x @ torch.nn.functional.normalize(protos, dim=-1).T  # the zero-shot scores, by hand
    logits = head(hidden, am, torch.zeros(4, dtype=torch.long))
    assert torch.allclose(logits, 20.0 * cos, atol=1e-5)
    # any linear classifier of normalised features is held exactly (a teacher fitted on frozen features) ...
    w, b = torch.randn(3, 8, generator=g), torch.randn(3, generator=g)
    head.set_linear(w, b)
    assert torch.allclose(head(hidden, am, None), x @ w.T + b, atol=1e-5)
    # ... and a fresh student re-starts from the verbaliser prototypes
    head.reset_parameters()
    assert torch.allclose(head(hidden, am, None), 20.0 * cos, atol=1e-5)


def test_linear_of_binary_and_multiclass_match_predict_proba():
    from list_core.heads import linear_of

    for classes in (2, 3):
        x, y = _features(30, 6, classes, seed=3)
        clf = LogisticRegression(C=10.0, max_iter=5000).fit(x.numpy(), y.numpy())
        w, b = linear_of(clf, classes, 6)
        ours = (x @ w.T + b).softmax(-1).numpy()
        assert np.abs(ours - clf.predict_proba(x.numpy())).max() < 1e-5
