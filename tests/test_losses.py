import math

import torch

from list_core.losses import consistency_loss, gold_loss, kd_loss, soft_labels


def test_kd_loss_hand_computed():
    logits = torch.tensor([[0.0, math.log(3.0)], [2.0, 2.0]])  # p = [0.25, 0.75], [0.5, 0.5]
    q = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    # KL([.5,.5] || [.25,.75]) = .5 ln(.5/.25) + .5 ln(.5/.75); KL([1,0] || [.5,.5]) = ln 2 (0 log 0 = 0)
    expected = torch.tensor([0.5 * math.log(2) + 0.5 * math.log(2 / 3), math.log(2)])
    assert torch.allclose(kd_loss(logits, q), expected, atol=1e-6)


def test_kd_loss_zero_when_student_matches():
    logits = torch.randn(4, 3)
    assert kd_loss(logits, logits.softmax(-1)).abs().max() < 1e-6


def test_consistency_loss_hand_computed():
    """Row 0 is confident (max p = .75 > .6): its target is softmax([0, ln 3] / .5) = [.1, .9] against the noisy
    prediction [.5, .5]; row 1 (p = [.5, .5]) is left out but still counts in the batch size."""
    clean = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]], requires_grad=True)
    noisy = torch.zeros(2, 2, requires_grad=True)
    loss = consistency_loss(clean, noisy, threshold=0.6, temperature=0.5)
    expected = (0.1 * math.log(0.1 / 0.5) + 0.9 * math.log(0.9 / 0.5)) / 2
    assert math.isclose(float(loss.detach()), expected, rel_tol=1e-6)
    loss.backward()
    assert clean.grad is None  # the clean prediction is a target
    assert torch.allclose(noisy.grad[0], torch.tensor([0.5 - 0.1, 0.5 - 0.9]) / 2, atol=1e-6)
    assert noisy.grad[1].abs().max() == 0  # not confident: no gradient
    assert float(consistency_loss(clean, noisy, threshold=0.8, temperature=0.5).detach()) == 0.0


def test_soft_labels_and_gold_loss():
    t = torch.tensor([[1.0, 2.0, 3.0]])
    assert torch.allclose(soft_labels(t), torch.softmax(t, -1))
    assert math.isclose(
        float(gold_loss(t, torch.tensor([2]))), -math.log(float(torch.softmax(t, -1)[0, 2])), rel_tol=1e-6
    )


def test_select_confident_tau_and_class_median():
    from list_core.config import TrainConfig
    from list_core.training import select_confident

    q = torch.tensor([[0.95, 0.05], [0.7, 0.3], [0.6, 0.4], [0.15, 0.85], [0.45, 0.55], [0.1, 0.9]])
    assert select_confident(q, TrainConfig(tau=0.8)) == [0, 3, 5]
    # class 0: confidences .95 .7 .6 (median .7) -> 0, 1; class 1: .85 .55 .9 (median .85) -> 3, 5
    assert select_confident(q, TrainConfig(kd_selection="class_median")) == [0, 1, 3, 5]


def test_class_balanced_gold_loss_gives_each_class_the_same_total_weight():
    """weights n / (C * n_c) over the whole gold set, summed per example and divided by the batch size (not by the
    batch's weights), so an epoch gives each class the same total weight whatever batches it is cut into."""
    from list_core.losses import class_weights

    labels = torch.tensor([0, 0, 0, 1])  # 3 of class 0, 1 of class 1
    w = class_weights(labels, 2)
    assert torch.allclose(w, torch.tensor([4 / 6, 4 / 2]))
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 3.0]])
    ce = [math.log(1 + math.exp(-2)), math.log(2), math.log(2), math.log(1 + math.exp(-3))]
    expected = (w[0] * (ce[0] + ce[1] + ce[2]) + w[1] * ce[3]) / 4
    assert math.isclose(float(gold_loss(logits, labels, w)), float(expected), rel_tol=1e-6)
    # a batch of one class alone is weighted too (F.cross_entropy's weighted mean would cancel its weight)
    assert math.isclose(float(gold_loss(logits[3:], labels[3:], w)), float(w[1] * ce[3]), rel_tol=1e-6)
    assert math.isclose(float(gold_loss(logits, labels)), sum(ce) / 4, rel_tol=1e-6)  # unweighted: the plain mean
