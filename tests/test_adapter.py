import pytest
import torch

from list_core.adapter import AdaptedLinear, fold_adapters
from list_core.backbone import load_backbone
from list_core.config import AdapterConfig
from list_core.model import ListModel, detach_adapters
from list_core.prompts import Prompt

from .conftest import FAMILIES

SITES = {
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
    assert set(model.trainable_named_parameters()) == expected
    assert model.head.label_weight.shape == (2, 32)  # only the label-word rows, never the vocabulary
    report = model.parameter_report()
    assert report["trainable"] == sum(p.numel() for p in model.trainable_named_parameters().values())
    assert 0 < report["percent"] < 100


@pytest.mark.parametrize("family", FAMILIES)
def test_fold_gives_same_logits(tiny_dirs, family):
    model = _model(tiny_dirs[family]).eval()
    with torch.no_grad():  # make adapters matter
        for n, p in model.trainable_named_parameters().items():
            if ".adapter." in n:
                p.normal_(0, 0.2)
    enc = model.encode([{"text": "the movie was great"}, {"text": "terrible acting , and a long one too"}])
    before = model.logits(enc)
    folded = fold_adapters(model)
    assert not any(isinstance(m, AdaptedLinear) for m in folded.modules())
    after = folded.logits(enc)
    assert (before - after).abs().max() <= 1e-4
    # the original is untouched and still adapted
    assert any(isinstance(m, AdaptedLinear) for m in model.modules())
    assert torch.equal(model.logits(enc), before)


def test_adapter_init_and_formula():
    lin = torch.nn.Linear(16, 16)
    layer = AdaptedLinear(lin, AdapterConfig(bottleneck=3, sigma=0.02))
    std = torch.cat([layer.adapter.down.weight.flatten(), layer.adapter.up.weight.flatten()]).std()
    assert 0.01 < float(std.detach()) < 0.03
    x = torch.randn(5, 16)
    h = lin(x)
    expected = h + (h @ layer.adapter.down.weight.T) @ layer.adapter.up.weight.T
    assert torch.allclose(layer(x), expected, atol=1e-6)
    folded = layer.folded()
    assert torch.allclose(folded(x), expected, atol=1e-5)


def test_detach_restores_plain_backbone(bert):
    enc_before = None
    m0 = ListModel(bert, PROMPT, head="prompt", adapter=None)
    enc = m0.encode([{"text": "good"}])
    enc_before = m0.logits(enc)
    ListModel(bert, PROMPT, head="prompt", adapter=AdapterConfig(bottleneck=2))
    detach_adapters(bert)
    assert not any(isinstance(m, AdaptedLinear) for m in bert.model.modules())
    assert torch.allclose(m0.logits(enc), enc_before)


def test_adapter_config_errors_name_value():
    with pytest.raises(ValueError, match="bottleneck=0"):
        AdapterConfig(bottleneck=0)
