import torch

from list_core.config import AdapterConfig
from list_core.data import collate
from list_core.losses import gold_loss, kd_loss
from list_core.model import ListModel
from list_core.prompts import Prompt
from list_core.reweighting import agreement_weights, meta_step

PROMPT = Prompt("{text} It was {mask} .", ("bad", "great"))
TEXTS = ["great film", "bad acting , a long and tedious story", "the movie", "good or bad ?", "great great", "meh"]


def test_agreement_weights_hand_computed():
    w = agreement_weights(torch.tensor([2.0, -1.0, 6.0, 0.0]))
    assert torch.allclose(w, torch.tensor([0.25, 0.0, 0.75, 0.0]))
    assert torch.equal(agreement_weights(torch.tensor([-1.0, -2.0])), torch.zeros(2))


def _brute_force(model, batch, q, gold_batch, y):
    """Per-example autograd loop: the definition, one example at a time."""
    params = list(model.trainable_named_parameters().values())
    g_gold = torch.autograd.grad(gold_loss(model(**gold_batch), y), params)
    raw, grads = [], []
    for i in range(len(q)):
        one = {k: v[i : i + 1] for k, v in batch.items()}
        # strip this example's padding so it sees exactly what a batch of one would
        n = int(one["attention_mask"].sum())
        one = {
            "input_ids": one["input_ids"][:, :n],
            "attention_mask": one["attention_mask"][:, :n],
            "mask_pos": one["mask_pos"],
        }
        g = torch.autograd.grad(kd_loss(model(**one), q[i : i + 1])[0], params)
        grads.append(g)
        raw.append(sum((a * b).sum() for a, b in zip(g, g_gold)))
    return torch.stack(raw), grads


def test_meta_step_matches_brute_force(bert):
    torch.manual_seed(0)
    model = ListModel(bert, PROMPT, head="prompt", adapter=AdapterConfig(bottleneck=4)).eval()  # eval: no dropout
    enc = model.encode([{"text": t} for t in TEXTS])
    batch = collate(enc, [0, 1, 2, 3], model.pad_id, model.device)
    gold = collate(enc, [4, 5], model.pad_id, model.device)
    y = torch.tensor([1, 0])
    q = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.05, 0.95]])
    ms = meta_step(model, batch, q, gold, y)
    raw, grads = _brute_force(model, batch, q, gold, y)
    assert torch.allclose(ms.raw, raw, rtol=1e-4, atol=1e-7)
    expected_w = agreement_weights(raw)
    assert torch.allclose(ms.weights, expected_w, atol=1e-5)
    assert float(expected_w.sum()) > 0 and abs(float(ms.weights.sum()) - 1.0) < 1e-5  # some example agrees
    for k, name in enumerate(model.trainable_named_parameters()):
        expected = sum(expected_w[i] * grads[i][k] for i in range(len(q)))
        assert torch.allclose(ms.update[name], expected, atol=1e-6)


def test_meta_step_classic_head_and_roberta(roberta):
    model = ListModel(roberta, PROMPT, head="classic", adapter=AdapterConfig(bottleneck=3)).eval()
    enc = model.encode([{"text": t} for t in TEXTS])
    batch = collate(enc, [0, 1, 2], model.pad_id, model.device)
    gold = collate(enc, [3, 4], model.pad_id, model.device)
    q = torch.tensor([[0.7, 0.3], [0.4, 0.6], [0.99, 0.01]])
    ms = meta_step(model, batch, q, gold, torch.tensor([0, 1]))
    raw, _ = _brute_force(model, batch, q, gold, torch.tensor([0, 1]))
    assert torch.allclose(ms.raw, raw, rtol=1e-4, atol=1e-7)


def test_cosine_similarity_divides_by_both_norms(bert):
    torch.manual_seed(0)
    model = ListModel(bert, PROMPT, head="prompt", adapter=AdapterConfig(bottleneck=4)).eval()
    enc = model.encode([{"text": t} for t in TEXTS])
    batch = collate(enc, [0, 1, 2, 3], model.pad_id, model.device)
    gold = collate(enc, [4, 5], model.pad_id, model.device)
    y = torch.tensor([1, 0])
    q = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.05, 0.95]])
    raw, grads = _brute_force(model, batch, q, gold, y)
    params = list(model.trainable_named_parameters().values())
    g_gold = torch.autograd.grad(gold_loss(model(**gold), y), params)
    n_gold = torch.sqrt(sum((g**2).sum() for g in g_gold))
    n_each = torch.stack([torch.sqrt(sum((g**2).sum() for g in gi)) for gi in grads])
    ms = meta_step(model, batch, q, gold, y, similarity="cosine")
    assert torch.allclose(ms.raw, raw / (n_each * n_gold), rtol=1e-4, atol=1e-7)
    assert (ms.raw.abs() <= 1 + 1e-5).all()
