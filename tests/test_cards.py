"""The PEFT and folded exports' model cards: their Python snippet, run as a user would run it (transformers and PEFT,
no list_core), gives LiST's own probabilities for every head, single texts and pairs."""

import json

import pytest
import torch

from list_core.backbone import load_backbone
from list_core.config import AdapterConfig
from list_core.folded import load_folded, save_folded
from list_core.model import ListModel
from list_core.peft_format import save_peft
from list_core.prompts import Prompt

SINGLE = Prompt("{text} It was {mask} .", ("bad", ("great", "good")))  # several words for a class: their mean
PAIR = Prompt("{text_a} ? {mask} , {text_b}", ("yes", "no"))
SINGLE_ROWS = [{"text": "the movie was great"}, {"text": "bad acting and a long , long plot"}, {"text": "good"}]
PAIR_ROWS = [{"text_a": "the movie was great", "text_b": "it was good"}, {"text_a": "bad acting", "text_b": "great"}]


def _model(path, prompt: Prompt, head: str) -> ListModel:
    torch.manual_seed(0)
    m = ListModel(load_backbone(str(path), device="cpu"), prompt, head=head, adapter=AdapterConfig(bottleneck=4))
    with torch.no_grad():  # far from the initial values, as after training
        for p in m.trainable_named_parameters().values():
            p.add_(torch.randn_like(p) * 0.1)
    m.temperature = 1.7  # a calibrated run: the snippet divides by it too
    return m.eval()


def _run_card_snippet(folder) -> dict:
    card = (folder / "README.md").read_text()
    code = card.split("```python\n", 1)[1].split("```", 1)[0]
    assert 'folder = "this-folder"' in code
    namespace: dict = {}
    exec(code.replace('folder = "this-folder"', f"folder = {str(folder)!r}"), namespace)  # noqa: S102
    return namespace


@pytest.mark.parametrize("fmt", ["peft", "folded"])
@pytest.mark.parametrize(
    "family,head,task",
    [
        ("bert", "prompt", "single"),
        ("roberta", "prompt", "single"),
        ("bert", "prompt", "pair"),
        ("bert", "similarity", "single"),
        ("bert", "similarity", "pair"),
        ("bert", "classic", "single"),
        ("roberta", "probe", "pair"),
    ],
)
def test_the_cards_snippet_gives_lists_probabilities_without_list_core(tiny_dirs, tmp_path, fmt, family, head, task):
    prompt, rows = (SINGLE, SINGLE_ROWS) if task == "single" else (PAIR, PAIR_ROWS)
    m = _model(tiny_dirs[family], prompt, head)
    expected = (m.logits(m.encode(rows)) / m.temperature).softmax(-1)
    folder = tmp_path / fmt
    if fmt == "peft":
        save_peft(m, folder, base_path=str(tiny_dirs[family]), labels=["neg", "pos"])
    else:
        save_folded(m, folder, ["neg", "pos"])
    ns = _run_card_snippet(folder)
    assert (ns["predict_proba"](rows) - expected).abs().max() <= 1e-4


def test_the_peft_card_replaces_peft_s_empty_template(tiny_dirs, tmp_path):
    m = _model(tiny_dirs["bert"], SINGLE, "prompt")
    save_peft(m, tmp_path / "p", base_path=str(tiny_dirs["bert"]), labels=["negative", "positive"])
    card = (tmp_path / "p" / "README.md").read_text()
    assert "More Information Needed" not in card
    assert card.startswith(f"---\nbase_model: {tiny_dirs['bert']}\nlibrary_name: peft\n")  # the Hub's metadata stays
    assert "`negative` → `bad`, `positive` → `great / good`" in card
    assert "softmax(logits / 1.7)" in card


def _with_lexical_view(m: ListModel) -> ListModel:
    """`m` with a lexical view as a run with `lexical_weight` ends (fitted on made-up pseudo-labels)."""
    import numpy as np

    from list_core.lexical import LexicalHead

    texts = ["a great great film", "bad acting", "the plot was great", "a bad , long plot", "great", "bad film"]
    q = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    m.lexical = LexicalHead.fit(texts, q, ["great acting", "bad plot"], [1, 0], 0.4)
    return m


@pytest.mark.parametrize("fmt", ["peft", "folded"])
@pytest.mark.parametrize("family,head", [("bert", "prompt"), ("bert", "similarity"), ("roberta", "probe")])
def test_the_cards_snippet_mixes_in_the_lexical_view_as_list_does(tiny_dirs, tmp_path, fmt, family, head):
    m = _with_lexical_view(_model(tiny_dirs[family], SINGLE, head))
    rows = SINGLE_ROWS + [{"text": "Great , GREAT plot ; bad acting"}, {"text": "no known word"}]
    expected = (m.logits(m.encode(rows)) / m.temperature).softmax(-1)
    m.lexical, lexical = None, m.lexical
    assert (expected - (m.logits(m.encode(rows)) / m.temperature).softmax(-1)).abs().max() > 1e-3  # it counts
    m.lexical = lexical
    folder = tmp_path / fmt
    if fmt == "peft":
        save_peft(m, folder, base_path=str(tiny_dirs[family]), labels=["neg", "pos"])
        meta = json.loads((folder / "list_peft.json").read_text())
    else:
        save_folded(m, folder, ["neg", "pos"])
        meta = json.loads((folder / "list_config.json").read_text())
        torch.testing.assert_close(load_folded(folder).predict_proba(rows), expected, atol=1e-5, rtol=0)
    assert meta["lexical"] == {"file": "lexical.safetensors", "weight": 0.4, "vocabulary": len(lexical.vocabulary)}
    ns = _run_card_snippet(folder)
    assert (ns["predict_proba"](rows) - expected).abs().max() <= 1e-4
