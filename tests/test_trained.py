"""A finished run's model: what a run without adapter checkpoints keeps (`keep_model`, `load_kept`), exactly."""

import pytest
import torch

from list_core.backbone import load_backbone
from list_core.baselines import linear_probe, prompt_prior_probe, run_zero_shot, self_train_probe
from list_core.config import preset
from list_core.export import load_classifier
from list_core.folded import load_folded
from list_core.prompts import Prompt
from list_core.self_training import TaskData
from list_core.trained import export_model, keep_model, kept_form, load_kept

SINGLE = Prompt("{text} It was {mask} .", ("bad", "great"))
PAIR = Prompt("{text_a} ? {mask} , {text_b}", ("yes", "no"))
WORDS = ("movie", "film", "acting", "story", "pacing", "plot")


def _task(prompt: Prompt) -> tuple[TaskData, list[dict]]:
    good, bad = [f"great {w}" for w in WORDS], [f"awful {w}" for w in WORDS]
    if prompt.is_pair:
        rows = lambda texts: [{"text_a": t, "text_b": t.split()[1]} for t in texts]  # noqa: E731
    else:
        rows = lambda texts: [{"text": t} for t in texts]  # noqa: E731
    gold = rows(bad[:2] + good[:2])
    task = TaskData(["negative", "positive"], gold, [0, 0, 1, 1], rows(bad[2:5] + good[2:5]))
    return task, rows([bad[5], good[5], "a film"])


@pytest.mark.parametrize("family", ["bert", "roberta"])
@pytest.mark.parametrize("fit", [linear_probe, self_train_probe, prompt_prior_probe])
@pytest.mark.parametrize("prompt", [SINGLE, PAIR], ids=["single", "pair"])
def test_a_probe_as_a_model_gives_the_probes_probabilities(tiny_dirs, family, fit, prompt):
    """A probe (a logistic regression on frozen features) held by the similarity head of a model without
    adapters: the same function, so the kept model predicts and exports what the run measured."""
    bb = load_backbone(str(tiny_dirs[family]), device="cpu")
    task, rows = _task(prompt)
    probe = fit(bb, prompt, task, preset("fast", seed=0, max_length=32))
    model = probe.as_model()
    assert model.adapter_config is None and model.head_kind == "similarity"
    assert torch.allclose(model.predict_proba(rows), probe.predict_proba(rows), atol=1e-5)


@pytest.mark.parametrize("fit", [self_train_probe, run_zero_shot], ids=["probe", "zero-shot"])
def test_a_kept_model_loads_back_exactly_and_exports(tiny_dirs, tmp_path, fit):
    bb = load_backbone(str(tiny_dirs["bert"]), device="cpu")
    task, rows = _task(SINGLE)
    model = kept_form(fit(bb, SINGLE, task, preset("fast", seed=0, max_length=32)))
    model.temperature = 1.5  # calibrated by the worker on an evaluation split: kept with the model
    keep_model(model, tmp_path / "run-1", task.labels, SINGLE)
    back = load_kept(bb, tmp_path / "run-1")
    assert back.temperature == 1.5 and torch.equal(back.predict_proba(rows), model.predict_proba(rows))
    for fmt in ("native", "folded"):
        export_model(back, fmt, tmp_path / fmt, task.labels, prompt=SINGLE)
    assert torch.allclose(load_classifier(tmp_path / "native", bb).predict_proba(rows), model.predict_proba(rows))
    assert torch.allclose(load_folded(tmp_path / "folded").predict_proba(rows), model.predict_proba(rows), atol=1e-5)
    with pytest.raises(ValueError, match="no adapters to export"):
        export_model(back, "peft", tmp_path / "peft", task.labels, prompt=SINGLE)


def test_a_run_that_kept_nothing_says_so(tiny_dirs, tmp_path):
    bb = load_backbone(str(tiny_dirs["bert"]), device="cpu")
    with pytest.raises(FileNotFoundError, match="this run kept no model .*run it again"):
        load_kept(bb, tmp_path / "run-7")
    assert kept_form(object()) is None  # a registered method's result that cannot be saved: nothing is kept
