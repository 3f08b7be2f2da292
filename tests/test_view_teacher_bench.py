"""benchmarks.view_teacher: the hook reads LiST's own features and hands round 1 the view teacher's pool labels."""

import numpy as np
import torch

from benchmarks.layer_features import encoded_layers
from benchmarks.view_teacher import install
from list_core.backbone import load_backbone
from list_core.data import Encoded
from list_core.model import ListModel
from list_core.prompt_tools import zero_shot_model
from list_core.prompts import Prompt

PROMPT = Prompt("{text} It was {mask} .", ("bad", "great"))
TEXTS = [f"{w} {x}" for w in ("great", "bad", "good", "awful") for x in ("movie", "film", "story")]


def test_the_hook_labels_the_pool_with_the_view_teacher(tiny_headless_dir, monkeypatch):
    model = zero_shot_model(load_backbone(str(tiny_headless_dir), device="cpu"), PROMPT)
    enc = Encoded.sentences(model.backbone.tokenizer, TEXTS, model.max_length)
    layers = encoded_layers(model, enc, batch_size=5)
    assert layers.shape == (len(TEXTS), model.encoder.config.num_hidden_layers + 1, model.backbone.hidden_size)
    assert np.allclose(layers[:, -1], model.frozen_features(enc).numpy(), atol=1e-5)  # the last layer is LiST's

    gold, pool = Encoded.sentences(model.backbone.tokenizer, TEXTS[:4], 32), enc
    labels = [1, 1, 1, 0]  # great movie, great film, great story, bad movie
    info = model.fit_prompt_teacher(gold, labels, pool, 1, 5.0, 5, seed=0)
    before = model.teacher_pool_proba.clone()  # LiST's own teacher's labels of the pool
    head = {k: v.clone() for k, v in model.head.state_dict().items()}
    monkeypatch.setattr(ListModel, "fit_prompt_teacher", ListModel.fit_prompt_teacher)  # undone after the test
    install((0, 1))  # a view of the embeddings and the first layer: other features than the last layer's
    assert model.fit_prompt_teacher(gold, labels, pool, 1, 5.0, 5, seed=0) == info  # the record is LiST's
    after = model.teacher_pool_proba
    assert after.shape == (len(TEXTS), 2) and torch.allclose(after.sum(1), torch.ones(len(TEXTS)))
    assert not torch.allclose(after, before)  # the view teacher's labels replaced the first teacher's
    assert all(torch.equal(v, head[k]) for k, v in model.head.state_dict().items())  # round 0's model is LiST's
