"""The PEFT and folded exports' model cards: their Python snippet, run as a user would run it (transformers and PEFT,
no list_core), gives LiST's own probabilities for every head, single texts and pairs."""

import pytest
import torch

from list_core.backbone import load_backbone
from list_core.config import AdapterConfig
from list_core.folded import save_folded
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
