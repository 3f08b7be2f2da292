import gc

import pytest
import torch

from list_core.adapter import AdaptedLinear, Adapter
from list_core.backbone import load_backbone
from list_core.config import AdapterConfig
from list_core.data import collate
from list_core.model import ListModel, fold_adapters
from list_core.prompts import Prompt

from .conftest import FAMILIES

SITES = {  # checkpoint and export names of the adapter weights (stable across versions)
    "bert": ("encoder.encoder.layer", "attention.output.dense", "output.dense"),
    "roberta": ("encoder.encoder.layer", "attention.output.dense", "output.dense"),
    "electra": ("encoder.encoder.layer", "attention.output.dense", "output.dense"),
    "deberta-v2": ("encoder.encoder.layer", "attention.output.dense", "output.dense"),
    "mpnet": ("encoder.encoder.layer", "attention.attn.o", "output.dense"),
    "distilbert": ("encoder.transformer.layer", "attention.out_lin", "ffn.lin2"),
}
HEAD = {
    "head.dense.weight",
    "head.dense.bias",
    "head.norm.weight",
    "head.norm.bias",
    "head.label_weight",
    "head.label_bias",
}
PROMPT = Prompt("{text} It was {mask} .", ("bad", "great"))


def _model(path, **kw):
    bb = load_backbone(str(path), device="cpu")
    return ListModel(bb, PROMPT, head="prompt", adapter=AdapterConfig(bottleneck=4), **kw)


@pytest.mark.parametrize("family", FAMILIES)
def test_exact_trainable_parameter_names(tiny_dirs, family):
    model = _model(tiny_dirs[family])
    prefix, attn, ffn = SITES[family]
    expected = set(HEAD)
    for layer in range(2):
        for site in (attn, ffn):
            for m in ("down", "up"):
                expected.add(f"{prefix}.{layer}.{site}.adapter.{m}.weight")
    assert set(model.trainable_state()) == expected
    assert len(model.trainable_named_parameters()) == len(expected)  # the model's parameters are its own only
    assert model.head.label_weight.shape == (2, 32)  # only the label-word rows, never the vocabulary
    report = model.parameter_report()
    assert report["trainable"] == sum(p.numel() for p in model.trainable_named_parameters().values())
    assert 0 < report["percent"] < 100


@pytest.mark.parametrize("family", FAMILIES)
def test_fold_gives_same_logits(tiny_dirs, family):
    model = _model(tiny_dirs[family]).eval()
    with torch.no_grad():  # make adapters matter
        for n, p in model.trainable_named_parameters().items():
            if n.startswith("adapters."):
                p.normal_(0, 0.2)
    enc = model.encode([{"text": "the movie was great"}, {"text": "terrible acting , and a long one too"}])
    before = model.logits(enc)
    folded = fold_adapters(model)
    assert not any(isinstance(m, AdaptedLinear) for m in folded.backbone.model.modules())
    assert folded.backbone.model is not model.backbone.model
    after = folded.logits(enc)
    assert (before - after).abs().max() <= 1e-4
    # the original is untouched and still adapted
    assert model.adapter_name in model.backbone.adapter_names()
    assert torch.equal(model.logits(enc), before)


def test_adapter_init_and_formula():
    lin = torch.nn.Linear(16, 16)
    layer = AdaptedLinear(lin)
    adapter = Adapter(16, AdapterConfig(bottleneck=3, sigma=0.02))
    std = torch.cat([adapter.down.weight.flatten(), adapter.up.weight.flatten()]).std()
    assert 0.01 < float(std.detach()) < 0.03
    x = torch.randn(5, 16)
    h = lin(x)
    assert torch.equal(layer(x), h)  # nothing active: the plain layer
    layer.slots["a"] = adapter
    layer.active = "a"
    expected = h + (h @ adapter.down.weight.T) @ adapter.up.weight.T
    assert torch.allclose(layer(x), expected, atol=1e-6)
    assert torch.allclose(layer.folded(adapter)(x), expected, atol=1e-5)
    assert list(layer.state_dict()) == ["base.weight", "base.bias"]  # slots are not the layer's weights


def _perturbed(bb, bottleneck=2, head="prompt", name=None):
    m = ListModel(bb, PROMPT, head=head, adapter=AdapterConfig(bottleneck=bottleneck), adapter_name=name).eval()
    with torch.no_grad():
        for p in m.trainable_named_parameters().values():
            p.add_(torch.randn_like(p) * 0.3)
    return m


def test_models_own_their_adapters_by_name(bert):
    torch.manual_seed(0)
    plain = ListModel(bert, PROMPT, head="prompt", adapter=None)
    enc = plain.encode([{"text": "good"}, {"text": "a bad , long film"}])
    plain_before = plain.logits(enc)
    hash_before = bert.weights_hash()
    a = _perturbed(bert, 2, name="task-a")
    a_before = a.logits(enc)
    b = _perturbed(bert, 5, "classic")  # another bottleneck and head on the same backbone
    b_before = b.logits(enc)
    assert {"task-a", b.adapter_name} <= set(bert.adapter_names())
    # building, training or predicting with one model never changes another's weights or predictions
    opt = torch.optim.SGD(list(b.trainable_named_parameters().values()), lr=1.0)
    b.train()
    b(**collate(enc, [0, 1], b.pad_id, b.device)).sum().backward()
    opt.step()
    b.eval()
    assert not torch.equal(b.logits(enc), b_before)
    assert torch.equal(a.logits(enc), a_before)
    assert torch.equal(plain.logits(enc), plain_before)
    assert bert.weights_hash() == hash_before
    assert not any(p.requires_grad for p in bert.model.parameters())
    with pytest.raises(ValueError, match="already registered"):
        ListModel(bert, PROMPT, head="prompt", adapter=AdapterConfig(bottleneck=2), adapter_name="task-a")
    # a model that is gone releases its adapters
    del b, opt
    gc.collect()
    assert bert.adapter_names() == ["task-a"]
    with pytest.raises(RuntimeError, match="still registered"):
        bert.unwrap()
    del a
    gc.collect()
    bert.unwrap()
    assert not any(isinstance(m, AdaptedLinear) for m in bert.model.modules())
    assert torch.equal(plain.logits(enc), plain_before)


def test_adapter_config_errors_name_value():
    with pytest.raises(ValueError, match="bottleneck=0"):
        AdapterConfig(bottleneck=0)
