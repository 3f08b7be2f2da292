"""The prompt-aware teacher: the evidence rule by hand, and the mixing on tiny synthetic tasks where the prompt
is right and where it is wrong."""

import numpy as np
import pytest
from scipy.stats import beta

from list_core.teacher import (
    median_confident,
    prompt_aware_probe,
    prompt_evidence,
    prompt_looks_wrong,
    prompt_prior_logreg,
    prompt_weighted_probe,
    zero_shot_scores,
)


@pytest.mark.parametrize("correct, n, classes", [(7, 10, 2), (4, 10, 2), (20, 30, 2), (0, 30, 2), (9, 30, 5)])
def test_prompt_evidence_is_the_beta_posterior_above_chance(correct, n, classes):
    expected = beta.sf(1.0 / classes, correct + 1, n - correct + 1)  # uniform prior -> Beta(k+1, n-k+1)
    assert abs(prompt_evidence(correct, n, classes) - expected) < 2e-3


def test_median_confident_keeps_the_upper_half_of_each_predicted_class():
    pred = np.array([0, 0, 0, 0, 1, 1, 1])
    conf = np.array([0.9, 0.6, 0.7, 0.8, 0.55, 0.99, 0.7])
    assert median_confident(pred, conf).tolist() == [True, False, False, True, False, True, True]


def _task(seed: int, n_gold: int = 6, noise: float = 1.0):
    """Two classes that differ along feature 0 (and weakly along feature 1); features normalised."""
    g = np.random.default_rng(seed)

    def draw(n):
        y = np.arange(n) % 2
        x = g.normal(size=(n, 8)) * noise
        x[:, 0] += np.where(y == 1, 1.5, -1.5)
        return x / np.linalg.norm(x, axis=1, keepdims=True), y

    (xg, yg), (xu, _), (xt, yt) = draw(n_gold), draw(400), draw(400)
    return xg, yg, xu, xt, yt


def test_a_right_prompt_is_used_and_a_wrong_one_ignored():
    """10 noisy gold labels; the prompt is the true direction (right) or its reverse (wrong). The weight follows
    the evidence rule; a right prompt helps; a wrong one gets little weight and does far less harm than the same
    prompt mixed in at a fixed weight."""
    right = np.eye(8)[[0, 0]] * np.array([[-1.0], [1.0]])  # class 1 along +e0: the truth
    wrong = -right  # the classes swapped
    gains, kept, fixed, w_right, w_wrong = [], [], [], [], []
    for seed in range(10):
        xg, yg, xu, xt, yt = _task(seed, n_gold=10, noise=1.5)

        def fit(protos, weight, xg=xg, yg=yg, xu=xu, xt=xt, yt=yt):
            clf, info = prompt_aware_probe(xg, yg, xu, protos, prompt_weight=weight, verbaliser_points=0, iterations=0)
            evidence = prompt_evidence(round(info["prompt_gold_accuracy"] * 10), 10, 2)
            expected = 0.0 if prompt_looks_wrong(evidence) else weight * evidence  # a wrong-looking one: ignored
            assert info["prompt_weight"] == pytest.approx(expected)
            return (clf.predict(xt) == yt).mean(), info

        none, _ = fit(right, 0.0)
        acc_right, info_right = fit(right, 5.0)
        acc_wrong, info_wrong = fit(wrong, 5.0)
        at_5 = prompt_weighted_probe(xg, yg, xu, wrong, 5.0, verbaliser_points=0, iterations=0)  # at weight 5
        acc_fixed = (at_5.predict(xt) == yt).mean()
        gains.append(acc_right - none)
        kept.append(acc_wrong - none)
        fixed.append(acc_fixed - none)
        w_right.append(info_right["prompt_weight"])
        w_wrong.append(info_wrong["prompt_weight"])
    assert min(w_right) > 3.0 and np.mean(w_wrong) < 0.2 * np.mean(w_right)
    assert np.mean(gains) > 0.02  # a right prompt helps when the gold labels are few and noisy
    assert np.mean(kept) > -0.06  # a wrong prompt costs little ...
    assert np.mean(kept) > np.mean(fixed) + 0.15  # ... far less than mixing it in regardless of the evidence


def test_zero_shot_scores_are_cosines():
    x = np.array([[1.0, 0.0], [0.6, 0.8]])
    p = np.array([[2.0, 0.0], [0.0, 3.0]])
    assert np.allclose(zero_shot_scores(x, p), [[1.0, 0.0], [0.6, 0.8]])


def test_verbaliser_points_of_weight_zero_are_no_points():
    xg, yg, xu, _, _ = _task(0, n_gold=10)
    protos = np.eye(8)[[0, 0]] * np.array([[-1.0], [1.0]])
    none = prompt_weighted_probe(xg, yg, xu, protos, 2.0, verbaliser_points=0, iterations=2)
    zero = prompt_weighted_probe(xg, yg, xu, protos, 2.0, verbaliser_points=5, iterations=2, point_weight=0.0)
    full = prompt_weighted_probe(xg, yg, xu, protos, 2.0, verbaliser_points=5, iterations=2)
    assert np.allclose(zero.coef_, none.coef_, atol=1e-3) and np.allclose(zero.intercept_, none.intercept_, atol=1e-3)
    assert not np.allclose(full.coef_, none.coef_, atol=1e-2)


def test_the_prompt_first_peer_trusts_a_wrong_prompt_where_the_evidence_rule_does_not():
    """The peer (`prompt_prior_logreg`) adds the prompt's confident pool labels at full weight whatever its gold
    accuracy: with the classes swapped it follows the prompt below chance; the evidence rule stays with the gold."""
    wrong = np.eye(8)[[0, 0]] * np.array([[1.0], [-1.0]])  # class 1 along -e0: the truth reversed
    peer, evidence = [], []
    for seed in range(5):
        xg, yg, xu, xt, yt = _task(seed, n_gold=10, noise=1.5)
        peer.append((prompt_prior_logreg(xg, yg, xu, wrong).predict(xt) == yt).mean())
        clf, _ = prompt_aware_probe(xg, yg, xu, wrong, verbaliser_points=0)
        evidence.append((clf.predict(xt) == yt).mean())
    assert np.mean(peer) < 0.4 and np.mean(evidence) > 0.6


def test_a_prompt_looks_wrong_when_it_is_90_percent_likely_below_chance():
    assert prompt_looks_wrong(prompt_evidence(0, 12, 2))  # 0 of 12
    assert prompt_looks_wrong(prompt_evidence(0, 10, 5))  # 0 of 10 with 5 classes: 0.8^11 = 0.086
    assert not prompt_looks_wrong(prompt_evidence(3, 10, 2))  # 3 of 10: P(beats chance) = 0.113
    assert not prompt_looks_wrong(prompt_evidence(4, 10, 2))  # mr K=10 seed 3's right prompt (0.274)


def test_a_wrong_looking_prompt_gives_neither_pool_labels_nor_points():
    """Verbaliser points at full weight pulled a teacher with mixed-up label words below chance (bbc K=10: 17%).
    A prompt that looks wrong adds nothing: the teacher is the gold labels' alone. A right one is used as before."""
    xg, yg, xu, xt, yt = _task(1, n_gold=10, noise=1.5)
    right = np.eye(8)[[0, 0]] * np.array([[-1.0], [1.0]])
    clf, info = prompt_aware_probe(xg, yg, xu, -right, iterations=2)  # the classes swapped
    assert prompt_looks_wrong(info["prompt_evidence"]) and info["prompt_weight"] == 0
    gold_only = prompt_weighted_probe(xg, yg, xu, -right, 0.0, verbaliser_points=0, iterations=2)
    assert np.array_equal(clf.coef_, gold_only.coef_)
    clf, info = prompt_aware_probe(xg, yg, xu, right, iterations=2)
    with_points = prompt_weighted_probe(xg, yg, xu, right, info["prompt_weight"], verbaliser_points=5, iterations=2)
    assert info["prompt_weight"] > 4 and np.array_equal(clf.coef_, with_points.coef_)


def test_balanced_gives_each_class_the_same_total_weight_in_the_fit():
    """`balanced` is the fit with every example's weight scaled so that each class's weights sum to the same total
    (the total unchanged): here by hand, 7 examples of class 1 and 5 of class 0 with unequal weights."""
    from list_core.teacher import logreg

    xg, yg, *_ = _task(3, n_gold=12)
    y = np.where(np.arange(12) < 9, yg, 1)  # 7 of class 1, 5 of class 0 after the overwrite
    sw = np.linspace(0.5, 1.5, 12)
    per_class = np.array([sw[y == 0].sum(), sw[y == 1].sum()])
    w = sw * sw.sum() / (2 * per_class[y])
    assert w[y == 0].sum() == pytest.approx(w[y == 1].sum()) and w.sum() == pytest.approx(sw.sum())
    by_hand = logreg(xg, y, 100.0, 0, w)
    balanced = logreg(xg, y, 100.0, 0, sw, balanced=True)
    assert np.array_equal(balanced.coef_, by_hand.coef_) and np.array_equal(balanced.intercept_, by_hand.intercept_)
    plain = logreg(xg, y, 100.0, 0, sw)
    assert not np.allclose(plain.coef_, balanced.coef_)


def test_balanced_self_training_does_not_drift_towards_the_gold_majority():
    """Symmetric classes, 8 gold labels of one class and 2 of the other: the plain self-trained probe predicts the
    majority class on far more than half of a balanced pool; the balanced one stays near half and is more accurate."""
    from list_core.teacher import self_train_logreg

    share, accuracy = {False: [], True: []}, {False: [], True: []}
    for seed in range(8):
        g = np.random.default_rng(seed)
        xg, yg, xu, xt, yt = _task(seed, n_gold=40, noise=2.0)
        pick = np.concatenate([g.choice(np.flatnonzero(yg == 1), 8, replace=False), np.flatnonzero(yg == 0)[:2]])
        for balanced in (False, True):
            clf = self_train_logreg(xg[pick], yg[pick], xu, 100.0, 3, seed, balanced)
            pred = clf.predict(xt)
            share[balanced].append((pred == 1).mean())
            accuracy[balanced].append((pred == yt).mean())
    assert np.mean(share[False]) > 0.6 and abs(np.mean(share[True]) - 0.5) < abs(np.mean(share[False]) - 0.5)
    assert np.mean(accuracy[True]) > np.mean(accuracy[False])


def test_every_teacher_fit_passes_balanced_on(monkeypatch):
    """The prompt-aware probe and the prompt-first peer fit every logistic regression balanced when asked."""
    import list_core.teacher as T

    seen = []
    real = T.logreg
    monkeypatch.setattr(T, "logreg", lambda *a, **k: seen.append(k.get("balanced", a[5] if len(a) > 5 else False))
                        or real(*a, **k))  # fmt: skip
    xg, yg, xu, *_ = _task(0, n_gold=10)
    protos = np.eye(8)[[0, 0]] * np.array([[-1.0], [1.0]])
    T.prompt_aware_probe(xg, yg, xu, protos, iterations=2, balanced=True)
    T.prompt_prior_logreg(xg, yg, xu, protos, iterations=2, balanced=True)
    assert len(seen) == 6 and all(seen)
    seen.clear()
    T.prompt_aware_probe(xg, yg, xu, protos, iterations=2)
    assert len(seen) == 3 and not any(seen)
