"""benchmarks.meta_weights: its weighting rules against per-example gradients taken one at a time."""

import torch
import torch.nn.functional as F

from benchmarks.meta_weights import Head, rule_weights
from list_core.losses import kd_loss


def _brute(head: Head, xu, q, xg, yg, rule: str) -> torch.Tensor:
    def flat_grad(loss):
        return torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(head.parameters()))])

    g_gold = flat_grad(F.cross_entropy(head(xg), yg))
    each = torch.stack([flat_grad(kd_loss(head(xu[i : i + 1]), q[i : i + 1])[0]) for i in range(len(xu))])
    if rule.startswith("centered"):
        each = each - each.mean(0)
    raw = each @ g_gold
    if rule.endswith("cosine"):
        raw = raw / (each.norm(dim=1) * g_gold.norm())
    w = raw.clamp_min(0)
    return w / w.sum()


def test_rules_match_brute_force_gradients():
    torch.manual_seed(0)
    head = Head(torch.randn(3, 8))
    xu, xg = torch.randn(12, 8), torch.randn(6, 8)
    q, yg = torch.softmax(torch.randn(12, 3), -1), torch.tensor([0, 1, 2, 0, 1, 2])
    for rule in ("dot", "cosine", "centered", "centered-cosine"):
        got = rule_weights(head, xu, q, xg, yg, rule)
        assert torch.allclose(got, _brute(head, xu, q, xg, yg, rule), atol=1e-5), rule
        assert abs(float(got.sum()) - 1) < 1e-5 and bool((got >= 0).all())
    assert torch.allclose(rule_weights(head, xu, q, xg, yg, "uniform"), torch.full((12,), 1 / 12))
