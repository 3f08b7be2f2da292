"""Heads that read several encoder layers (`feature_layers`): the view's math, the zero-shot prompt kept on the last
layer, the teacher fitted on the view, a run end to end, and every export carrying the view exactly."""

import json

import numpy as np
import pytest
import torch

from list_core import views
from list_core.backbone import load_backbone
from list_core.baselines import embed, linear_probe, prompt_prior_probe, self_train_probe
from list_core.config import AdapterConfig, TrainConfig, preset
from list_core.data import collate
from list_core.export import ExportError, check_config, load_classifier, save_native
from list_core.feature_cache import FeatureCache
from list_core.folded import load_folded, save_folded
from list_core.heads import view_features
from list_core.model import ListModel
from list_core.peft_format import save_peft
from list_core.prompts import Prompt
from list_core.self_training import run_list
from list_core.teacher import prompt_aware_probe, zero_shot_scores
from list_core.trained import keep_model, load_kept, load_trained

from .test_cards import _run_card_snippet
from .test_self_training import POOL, POOL_ROWS, task, tiny_cfg

PROMPT = Prompt("{text} It was {mask} .", ("bad", ("great", "good")))
ROWS = [{"text": "the movie was great"}, {"text": "bad acting and a long , long plot"}, {"text": "good"}]


def test_a_view_is_the_layers_normalised_means_side_by_side_and_its_cosine_their_mean():
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    h1 = torch.tensor([[[3.0, 0], [1, 0], [9, 9]], [[0, 2], [0, 2], [0, 2]]])  # (B=2, T=3, D=2)
    h2 = torch.tensor([[[1.0, 1], [1, 1], [5, 0]], [[1, 0], [0, 1], [2, 2]]])
    x = view_features([h1, h2], mask)  # (2, 4)
    # by hand: text 0 pools to (2, 0) and (1, 1); text 1 to (0, 2) and (1, 1)
    r = 2**-0.5
    expected = torch.tensor([[1.0, 0, r, r], [0, 1, r, r]]) * r
    assert torch.allclose(x, expected, atol=1e-6)
    assert torch.allclose(x.norm(dim=-1), torch.ones(2))
    cos = (x[0] @ x[1]).item()  # layer 1: cos((1,0),(0,1)) = 0; layer 2: 1; their mean 0.5
    assert cos == pytest.approx(0.5, abs=1e-6)
    one = view_features([h1], mask)  # one layer: the normalised mean
    assert torch.allclose(one, torch.tensor([[1.0, 0], [0, 1]]))


def _models(path):
    bb = load_backbone(str(path), device="cpu")
    return (
        bb,
        ListModel(bb, PROMPT, head="similarity", adapter=None),
        ListModel(bb, PROMPT, head="similarity", adapter=None, feature_layers=2),
    )


def test_the_zero_shot_prompt_reads_the_last_layer_whatever_the_view(tiny_headless_dir):
    bb, last, both = _models(tiny_headless_dir)
    enc = last.encode(ROWS)
    assert torch.allclose(both.logits(enc), last.logits(enc), atol=1e-5)  # the untrained head: zero-shot, unchanged
    x2, x1 = both.frozen_features(enc), last.frozen_features(enc)
    d = bb.hidden_size
    assert x2.shape == (3, 2 * d) and torch.allclose(x2.norm(dim=-1), torch.ones(3), atol=1e-6)
    assert torch.allclose(x2[:, d:] * 2**0.5, x1, atol=1e-6)  # the view's last block is the last layer's feature
    assert torch.all(both.head.prototypes[:, :d] == 0)  # the prompt has no say in the other layers at the start
    # the forward pass with its hidden states equals the head on the frozen view (no adapters)
    assert torch.allclose(both.feature_logits(x2), both.logits(enc), atol=1e-5)


def test_feature_layers_are_checked_and_only_the_pooled_heads_read_several(tiny_headless_dir, tiny_dirs):
    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    with pytest.raises(ValueError, match="feature_layers=3: the backbone .* has only 2 layers"):
        ListModel(bb, PROMPT, head="similarity", adapter=None, feature_layers=3)
    with pytest.raises(ValueError, match="feature_layers=-1"):
        TrainConfig(feature_layers=-1)
    with pytest.raises(ValueError, match=r"feature_layers=0: .*resolved by the run"):  # 0 is for a run to choose
        ListModel(bb, PROMPT, head="similarity", adapter=None, feature_layers=0)
    assert ListModel(bb, PROMPT, head="probe", adapter=None, feature_layers=2).feature_dim == 2 * bb.hidden_size
    mlm = load_backbone(str(tiny_dirs["bert"]), device="cpu")
    assert ListModel(mlm, PROMPT, head="prompt", adapter=None, feature_layers=2).feature_layers == 1
    assert ListModel(mlm, PROMPT, head="classic", adapter=None, feature_layers=2).feature_layers == 1
    with pytest.raises(ValueError, match="feature cache holds last-layer features"):
        FeatureCache().features(ListModel(bb, PROMPT, head="similarity", adapter=None, feature_layers=2),
                                ListModel(bb, PROMPT, head="similarity", adapter=None).encode(ROWS))  # fmt: skip
    cfg = {"backbone": "b", "backbone_hash": "h", "head": "prompt", "labels": ["neg", "pos"], "max_length": 32,
           **PROMPT.to_json()}  # fmt: skip
    check_config(cfg, "x")  # an export made before views: no field, the last layer
    with pytest.raises(ExportError, match="'feature_layers' 2: only the similarity and probe heads"):
        check_config({**cfg, "feature_layers": 2}, "x")
    with pytest.raises(ExportError, match="'feature_layers' must be a whole number"):
        check_config({**cfg, "head": "similarity", "feature_layers": "2"}, "x")


def test_the_teacher_on_a_view_is_the_probe_on_the_view_with_the_prompt_on_the_last_layer(tiny_headless_dir):
    bb, last, both = _models(tiny_headless_dir)
    gold = both.encode([{"text": t} for t in ("great film", "bad film", "good acting", "awful story")])
    labels = [1, 0, 1, 0]
    pool = both.encode(POOL_ROWS)
    info = both.fit_prompt_teacher(gold, labels, pool, 1, 5.0, 5, seed=3)
    d, r = bb.hidden_size, 2**0.5
    xg, xp = both.frozen_features(gold).numpy(), both.frozen_features(pool).numpy()
    clf, expected = prompt_aware_probe(xg, np.array(labels), xp, last.head.verbaliser_prototypes.numpy(), 5.0, 5, 1,
                                       seed=3, prompt_gold=xg[:, d:] * r, prompt_pool=xp[:, d:] * r,
                                       points=both.verbaliser_points().numpy())  # fmt: skip
    assert info == expected
    # the prompt's accuracy on the gold labels is the last layer's zero-shot accuracy
    zs = last.logits(last.encode([{"text": t} for t in ("great film", "bad film", "good acting", "awful story")]))
    assert info["prompt_gold_accuracy"] == pytest.approx(float((zs.argmax(-1) == torch.tensor(labels)).float().mean()))
    # the head holds the fitted classifier exactly
    assert np.allclose(both.feature_logits(torch.from_numpy(xp)).softmax(-1).numpy(), clf.predict_proba(xp), atol=1e-5)


def test_a_teacher_over_several_views_is_the_mean_of_each_views_probe_logits_in_one_head(tiny_headless_dir):
    """`teacher_views`: the probe fitted on the top 1 and the top 2 layers, each by the one-view rule, and the head on
    the widest view gives the mean of their logits (brute force against scikit-learn's own decision values)."""
    bb, last, both = _models(tiny_headless_dir)
    texts = ("great film", "bad film", "good acting", "awful story")
    gold, labels, pool = both.encode([{"text": t} for t in texts]), [1, 0, 1, 0], both.encode(POOL_ROWS)
    info = both.fit_prompt_teacher(gold, labels, pool, 1, 5.0, 5, seed=3, views=(1, 2))
    d, r = bb.hidden_size, 2**0.5
    xg, xp = both.frozen_features(gold).numpy(), both.frozen_features(pool).numpy()
    protos = last.head.verbaliser_prototypes.numpy()
    top1, _ = prompt_aware_probe(xg[:, d:] * r, np.array(labels), xp[:, d:] * r, protos, 5.0, 5, 1, seed=3)
    top2, expected = prompt_aware_probe(xg, np.array(labels), xp, protos, 5.0, 5, 1, seed=3, prompt_gold=xg[:, d:] * r,
                                        prompt_pool=xp[:, d:] * r, points=both.verbaliser_points().numpy())  # fmt: skip
    assert info == {**expected, "teacher_views": [1, 2]}
    # binary: the head's logit difference is each classifier's decision value, averaged
    mean = (top1.decision_function(xp[:, d:] * r) + top2.decision_function(xp)) / 2
    logits = both.feature_logits(torch.from_numpy(xp)).detach().numpy()
    assert np.allclose(logits[:, 1] - logits[:, 0], mean, atol=1e-4)
    assert torch.allclose(both.teacher_pool_proba, torch.from_numpy(logits).softmax(-1), atol=1e-5)
    # one view naming the model's own is the one-view teacher to the bit
    again = ListModel(bb, PROMPT, head="similarity", adapter=None, feature_layers=2)
    again.fit_prompt_teacher(gold, labels, pool, 1, 5.0, 5, seed=3, views=(2,))
    one = ListModel(bb, PROMPT, head="similarity", adapter=None, feature_layers=2)
    one.fit_prompt_teacher(gold, labels, pool, 1, 5.0, 5, seed=3)
    assert torch.equal(again.head.prototypes, one.head.prototypes)
    with pytest.raises(ValueError, match=r"views=\(1, 3\): each must be between 1 and feature_layers=2"):
        again.fit_prompt_teacher(gold, labels, pool, 1, 5.0, 5, views=(1, 3))


def test_teacher_views_are_validated_and_the_model_reads_the_widest():
    assert TrainConfig(feature_layers=6, teacher_views=" 1, 3,6").views() == (1, 3, 6)
    assert TrainConfig().views() == ()
    with pytest.raises(ValueError, match=r"teacher_views='1,3': the model reads its widest view, so feature_layers must "
                                         r"be 3 \(not 1\)"):  # fmt: skip
        TrainConfig(teacher_views="1,3")
    for bad in ("3,1", "1,1", "0,2", "a,b", ","):
        with pytest.raises(ValueError, match="must be distinct ascending layer counts"):
            TrainConfig(feature_layers=2, teacher_views=bad)


def test_a_run_with_teacher_views_past_the_backbones_depth_fits_them_on_the_layers_it_has(tiny_headless_dir):
    """Views 1, 3 and 6 on a 2-layer backbone: the model reads both layers and the teacher ensembles the top 1 and
    the top 2 (3 and 6 both read all), as the record says; every stage runs."""
    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    cfg = tiny_cfg(rounds=1, probe_self_train=1, feature_layers=6, teacher_views="1,3,6")
    res = run_list(bb, PROMPT, task(), cfg)
    assert res.model.feature_layers == 2
    assert res.teacher.teacher_views == [1, 2]
    assert [r.round for r in res.rounds] == [1]


def test_a_run_on_a_view_trains_resumes_and_loads_back_exactly(tiny_headless_dir, tmp_path):
    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    cfg = tiny_cfg(rounds=1, probe_self_train=1, feature_layers=2)
    res = run_list(bb, PROMPT, task(), cfg, checkpoint_dir=tmp_path)
    assert res.model.feature_layers == 2 and res.model.head.prototypes.shape == (2, 2 * bb.hidden_size)
    again = load_trained(load_backbone(str(tiny_headless_dir), device="cpu"), PROMPT, "similarity", cfg, tmp_path)
    enc = res.model.encode(POOL_ROWS)
    assert torch.allclose(again.logits(enc), res.model.logits(enc), atol=1e-5)
    assert [r.round for r in res.rounds] == [1] and len(res.tables[-1]) == len(POOL)  # pseudo-labels for the pool
    assert "prompt_gold_accuracy" in res.teacher.to_dict()  # the teacher was fitted on the view


def test_a_run_asking_for_more_layers_than_the_backbone_has_reads_them_all_and_says_so(tiny_headless_dir, tmp_path):
    """A top-3 view (the fast preset's: 6) on a 2-layer backbone: the run and the probe peers read both layers (the same
    model as asking for 2), the run says so, and the kept run loads back with the view it read."""
    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    events = []
    cfg = tiny_cfg(rounds=1, probe_self_train=1, feature_layers=3)
    res = run_list(bb, PROMPT, task(), cfg, callback=events.append, checkpoint_dir=tmp_path)
    two = run_list(bb, PROMPT, task(), cfg.with_(feature_layers=2))
    enc = res.model.encode(POOL_ROWS)
    assert res.model.feature_layers == 2 and torch.equal(res.model.logits(enc), two.model.logits(enc))
    assert any("feature_layers=3: the backbone has 2 layers" in e.message for e in events)
    again = load_trained(load_backbone(str(tiny_headless_dir), device="cpu"), PROMPT, "similarity", cfg, tmp_path)
    assert torch.allclose(again.logits(enc), res.model.logits(enc), atol=1e-5)
    probe = self_train_probe(bb, PROMPT, task(), preset("fast", seed=0, max_length=32))  # the preset's 6 layers
    assert probe.classifier.coef_.shape[1] == 2 * bb.hidden_size


def _trained(path, head: str) -> ListModel:
    torch.manual_seed(0)
    m = ListModel(load_backbone(str(path), device="cpu"), PROMPT, head=head, adapter=AdapterConfig(bottleneck=4),
                  feature_layers=2)  # fmt: skip
    with torch.no_grad():  # far from the initial values, as after training
        for p in m.trainable_named_parameters().values():
            p.add_(torch.randn_like(p) * 0.1)
    m.temperature = 1.3
    return m.eval()


@pytest.mark.parametrize("head", ["similarity", "probe"])
def test_every_export_carries_the_view_exactly(tiny_headless_dir, tmp_path, head):
    m = _trained(tiny_headless_dir, head)
    expected = (m.logits(m.encode(ROWS)) / m.temperature).softmax(-1)
    save_native(m, tmp_path / "native", labels=["neg", "pos"])
    assert json.loads((tmp_path / "native" / "list_config.json").read_text())["feature_layers"] == 2
    clf = load_classifier(tmp_path / "native", device="cpu")
    assert clf.model.feature_layers == 2
    assert (clf.predict_proba([r["text"] for r in ROWS]) - expected).abs().max() <= 1e-5
    save_folded(m, tmp_path / "folded", ["neg", "pos"])
    folded = load_folded(tmp_path / "folded")
    assert (folded.model.predict_proba(ROWS) - expected).abs().max() <= 1e-4
    save_peft(m, tmp_path / "peft", base_path=str(tiny_headless_dir), labels=["neg", "pos"])
    for fmt in ("folded", "peft"):  # the cards' snippets: plain transformers (and PEFT), no list_core
        meta = json.loads(next((tmp_path / fmt).glob("list_*.json")).read_text())
        assert meta["feature_layers"] == 2 and meta["head_formula"].startswith("logits = cat(")
        assert (_run_card_snippet(tmp_path / fmt)["predict_proba"](ROWS) - expected).abs().max() <= 1e-4
    b = collate(m.encode(ROWS), list(range(len(ROWS))), m.pad_id, m.device)
    assert m(**b).shape == (3, 2)


@pytest.mark.parametrize("fit", [linear_probe, self_train_probe, prompt_prior_probe])
def test_the_probe_peers_read_the_same_view_and_keep_it(tiny_headless_dir, tmp_path, fit):
    """The peers given the view LiST reads (a fair comparison): their logistic regressions on the view's features,
    kept and loaded back as a model that reads the same view."""
    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    t = task()
    cfg = preset("fast", seed=0, max_length=32, feature_layers=2, teacher_views="")
    probe = fit(bb, PROMPT, t, cfg)
    x = embed(bb, PROMPT, ROWS, 32, feature_layers=2)
    assert x.shape[1] == 2 * bb.hidden_size and probe.classifier.coef_.shape[1] == 2 * bb.hidden_size
    assert np.allclose(probe.predict_proba(ROWS).numpy(), probe.classifier.predict_proba(x), atol=1e-6)
    model = probe.as_model()
    assert model.feature_layers == 2 and torch.allclose(model.predict_proba(ROWS), probe.predict_proba(ROWS), atol=1e-5)
    keep_model(model, tmp_path / "run", t.labels, PROMPT)
    assert torch.allclose(load_kept(bb, tmp_path / "run").predict_proba(ROWS), probe.predict_proba(ROWS), atol=1e-5)
    if fit is prompt_prior_probe:  # its prompt labels the pool as the last layer's zero-shot does, margins in order
        pool = [r["text"] for r in t.unlabeled_rows]
        one, two = (ListModel(bb, PROMPT, head="similarity", adapter=None, max_length=32, feature_layers=n)
                    for n in (1, 2))  # fmt: skip
        s1 = zero_shot_scores(embed(bb, PROMPT, t.unlabeled_rows, 32), one.verbaliser_prototypes().numpy())
        s2 = zero_shot_scores(embed(bb, PROMPT, t.unlabeled_rows, 32, feature_layers=2),
                              two.verbaliser_prototypes().numpy())  # fmt: skip
        assert len(pool) and np.allclose(s2 * 2**0.5, s1, atol=1e-5)  # the same scores, one common scale


def _layered(n: int, signal_layer: int, seed: int = 0, layers: int = 4, dim: int = 8):
    """(n, layers, dim) normalised per-layer features whose class shows only in `signal_layer` (others noise)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(size=(n, layers, dim)).astype(np.float32)
    x[:, signal_layer, 0] += np.where(y == 1, 3.0, -3.0)
    return x / np.linalg.norm(x, axis=-1, keepdims=True), y


def test_the_run_chooses_the_layers_that_carry_the_task_on_its_gold_labels_and_prefers_fewer():
    assert views.candidates(6) == (1, 2, 3, 6) and views.candidates(2) == (1, 2) and views.candidates(1) == (1,)
    protos = np.eye(2, 8, dtype=np.float32)[::-1]  # a prompt that points nowhere useful (zero weight, evidence-wise)
    sentences, owner = np.stack([np.eye(4, 8, dtype=np.float32)] * 2), np.array([0, 1])
    sentences = sentences / np.linalg.norm(sentences, axis=-1, keepdims=True)
    gold, y = _layered(20, signal_layer=1)  # the class is in the second of four layers: only the view of all sees it
    pool, _ = _layered(60, signal_layer=1, seed=1)
    n, acc = views.choose_layers(gold, y, pool, protos, sentences, owner, seed=0)
    assert n == 4 and acc[4] > acc[1] and set(acc) == {1, 2, 4}
    gold, y = _layered(20, signal_layer=3)  # in the last layer: every view sees it, the last alone is kept (a tie)
    n, acc = views.choose_layers(gold, y, _layered(60, 3, seed=1)[0], protos, sentences, owner, seed=0)
    assert n == 1 and acc[1] == max(acc.values())
    assert views.choose_layers(gold[:3], np.array([0, 1, 1]), pool, protos, sentences, owner) == (1, {})  # 1 of a class


def test_layer_features_are_the_views_pieces_exactly(tiny_headless_dir):
    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    one, two = (ListModel(bb, PROMPT, head="similarity", adapter=None, feature_layers=n) for n in (1, 2))
    enc = one.encode(ROWS)
    layers = two.layer_features(enc).numpy()  # (N, 2, D)
    assert layers.shape == (3, 2, bb.hidden_size)
    assert np.array_equal(views.view_of(layers, 1), one.frozen_features(enc).numpy())  # bit for bit: the last layer
    assert np.allclose(views.view_of(layers, 2), two.frozen_features(enc).numpy(), atol=1e-7)


def test_a_run_that_chooses_its_layers_records_them_and_loads_back(tiny_headless_dir, tmp_path, monkeypatch):
    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    events = []
    cfg = tiny_cfg(rounds=1, probe_self_train=1, feature_layers=0)
    res = run_list(bb, PROMPT, task(), cfg, callback=events.append, checkpoint_dir=tmp_path / "a")
    chosen = res.teacher.feature_layers
    assert chosen in (1, 2) and res.model.feature_layers == chosen and set(res.teacher.view_accuracy) == {"1", "2"}
    assert any("feature_layers=0: the similarity head reads the top" in e.message for e in events if e.stage == "setup")
    back = load_trained(load_backbone(str(tiny_headless_dir), device="cpu"), PROMPT, "similarity", cfg, tmp_path / "a")
    assert back.feature_layers == chosen
    # a run whose choice is the last layer is the same run as one told to read it, to the bit
    monkeypatch.setattr(views, "choose_layers", lambda *a, **k: (1, {1: 0.5, 2: 0.5}))
    auto = run_list(bb, PROMPT, task(), cfg)
    fixed = run_list(bb, PROMPT, task(), cfg.with_(feature_layers=1))
    enc = fixed.model.encode(POOL_ROWS)
    assert torch.equal(auto.model.logits(enc), fixed.model.logits(enc))
    assert [(r.probs, r.weight) for r in auto.tables[-1]] == [(r.probs, r.weight) for r in fixed.tables[-1]]


def test_the_probe_baselines_choose_their_layers_as_a_run_does(tiny_headless_dir, monkeypatch):
    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    monkeypatch.setattr(views, "choose_layers", lambda *a, **k: (2, {1: 0.5, 2: 0.75}))
    probe = self_train_probe(
        bb, PROMPT, task(), preset("fast", seed=0, max_length=32, feature_layers=0, teacher_views="")
    )
    assert probe.feature_layers == 2 and probe.classifier.coef_.shape[1] == 2 * bb.hidden_size


def test_a_resumed_run_reads_its_layer_choice_from_round_0_instead_of_choosing_again(tiny_headless_dir, tmp_path,
                                                                                    monkeypatch):  # fmt: skip
    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    cfg = tiny_cfg(rounds=2, probe_self_train=1, feature_layers=0)
    monkeypatch.setattr(views, "choose_layers", lambda *a, **k: (2, {1: 0.5, 2: 0.75}))
    full = run_list(bb, PROMPT, task(), cfg)

    def kill_in_round_2(e):
        if e.round == 2 and e.stage == "meta":
            raise KeyboardInterrupt  # as if the process died mid-round

    with pytest.raises(KeyboardInterrupt):
        run_list(bb, PROMPT, task(), cfg, callback=kill_in_round_2, checkpoint_dir=tmp_path)

    def no_second_choice(*a, **k):
        raise AssertionError("the resumed run chose its layers again")

    monkeypatch.setattr(views, "resolve", no_second_choice)
    events = []
    resumed = run_list(bb, PROMPT, task(), cfg, callback=events.append, checkpoint_dir=tmp_path)
    assert resumed.model.feature_layers == 2 and resumed.teacher.feature_layers == 2
    assert any("reads the top 2 layer(s)" in e.message for e in events if e.stage == "setup")
    full_state, state = full.model.trainable_state(), resumed.model.trainable_state()
    assert all(torch.equal(state[k], full_state[k]) for k in full_state)
