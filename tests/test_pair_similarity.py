"""The pair-similarity baseline: the rule by hand, a pair task it must solve on a tiny encoder, and where it refuses."""

import json

import numpy as np
import pytest
import torch

import storage as st
from list_core.backbone import load_backbone
from list_core.calibration import fit_temperature
from list_core.config import preset
from list_core.data import DataError
from list_core.pair_similarity import apply_rule, cosine_rule, pair_cosines, pair_similarity, save_pair_similarity
from list_core.prompts import Prompt
from list_core.self_training import TaskData
from list_core.serving import AdapterServer
from ui import actions

PAIR = Prompt("{text_a} ? {mask} , {text_b}", ("yes", "no"))


def test_the_rule_orders_classes_by_gold_cosine_and_cuts_the_pool_at_the_gold_shares():
    cos_gold = np.array([0.9, 0.8, 0.2, 0.3])
    y_gold = np.array([0, 0, 1, 1])  # class 0 is the similar one
    pool = np.linspace(0.0, 1.0, 101)
    order, thresholds = cosine_rule(cos_gold, y_gold, pool)
    assert order.tolist() == [1, 0] and thresholds.tolist() == pytest.approx([0.5])  # the pool's median
    assert apply_rule(np.array([0.1, 0.49, 0.51, 0.95]), order, thresholds).tolist() == [1, 1, 0, 0]
    # three classes, unbalanced gold (1 : 2 : 1): thresholds at the pool's 25% and 75% quantiles
    cos_gold = np.array([0.5, 0.55, 0.1, 0.9, 0.45])
    y_gold = np.array([2, 2, 0, 1, 2])
    pool = np.linspace(0.0, 1.0, 101)
    order, thresholds = cosine_rule(cos_gold, np.array(y_gold), pool)
    assert order.tolist() == [0, 2, 1] and thresholds.tolist() == pytest.approx([0.2, 0.8])
    assert apply_rule(np.array([0.1, 0.5, 0.85]), order, thresholds).tolist() == [0, 2, 1]


def _pairs(words: list[str], same: bool) -> list[dict[str, str]]:
    rng = np.random.default_rng(len(words) + same)
    rows = []
    for i, w in enumerate(words):
        a = f"the {w} was {words[(i + 1) % len(words)]} today"
        b = a if same else " ".join(rng.permutation(["a", "storm", "near", "ten", "blue", "houses", "quietly"]))
        rows.append({"text_a": a, "text_b": b})
    return rows


def test_a_restated_hypothesis_is_told_from_an_unrelated_one(tiny_headless_dir):
    """Entailment as restatement (text_b = text_a) against an unrelated text_b: the two texts' cosine separates them
    even on a tiny random encoder, and the fitted rule predicts both classes right on pairs it never saw."""
    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    words = ["movie", "film", "story", "actor", "plot", "music", "scene", "ending", "cast", "script", "camera", "light"]
    same, other = _pairs(words, True), _pairs(words, False)
    gold = same[:3] + other[:3]
    task = TaskData(["entailment", "not_entailment"], gold, [0, 0, 0, 1, 1, 1], same[3:8] + other[3:8])
    assert pair_cosines(bb, same[:3]).min() > pair_cosines(bb, other[:3]).max()
    model = pair_similarity(bb, PAIR, task, preset("fast", seed=0))
    proba = model.predict_proba(same[8:] + other[8:])  # (8, 2)
    assert proba.shape == (8, 2) and np.allclose(proba.sum(-1).numpy(), 1.0)
    assert proba.argmax(-1).tolist() == [0] * 4 + [1] * 4
    # the pool's threshold labels are separable, so the fitted slope is as steep as C allows; the rule's confidence
    # comes from a temperature fitted on the gold pairs instead (rte, K=30, seed 1: test ECE 0.333 -> 0.078)
    assert model.temperature == fit_temperature(model.row_logits(gold), task.gold_labels) != 1.0


def _fitted(tiny_headless_dir):
    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    words = ["movie", "film", "story", "actor", "plot", "music", "scene", "ending", "cast", "script", "camera", "light"]
    same, other = _pairs(words, True), _pairs(words, False)
    task = TaskData(["entailment", "not_entailment"], same[:3] + other[:3], [0, 0, 0, 1, 1, 1], same[3:8] + other[3:8])
    model = pair_similarity(bb, PAIR, task, preset("fast", seed=0))
    model.temperature = 1.3  # as if calibrated: every reader divides by it
    return bb, model, same[8:] + other[8:]


def test_a_saved_rule_loads_and_its_card_snippet_gives_the_same_probabilities(tiny_headless_dir, tmp_path):
    """The rule saves as numbers (`pair_similarity.json`); `load_classifier` (the predict CLI's loader) and the
    model card's snippet (plain transformers, no list_core) give exactly its probabilities."""
    from list_core.export import load_classifier

    bb, model, rows = _fitted(tiny_headless_dir)
    expected = model.predict_proba(rows)  # (8, 2)
    folder = save_pair_similarity(model, tmp_path / "rule", ["entailment", "not_entailment"], PAIR, {"acc": 0.5})
    clf = load_classifier(folder, bb)
    assert clf.labels == ["entailment", "not_entailment"] and torch.equal(clf.predict_proba(rows), expected)
    server = AdapterServer(bb)  # beside adapters on the same backbone
    server.add("nli", folder)
    assert torch.equal(server.predict_proba("nli", rows), expected) and server.labels("nli")[0] == "entailment"
    server.remove("nli")
    card = (folder / "README.md").read_text()
    code = card.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(code.replace('folder = "this-folder"', f"folder = {str(folder)!r}")  # noqa: S102
         .replace("base = ", f"base = {str(tiny_headless_dir)!r}  #", 1), namespace)  # fmt: skip
    assert torch.allclose(namespace["predict_proba"](rows).float(), expected, atol=1e-5)


def test_a_damaged_rule_or_another_backbone_is_refused_with_the_reason(tiny_headless_dir, tiny_dirs, tmp_path):
    from list_core.export import ExportError, load_classifier, read_config

    bb, model, _ = _fitted(tiny_headless_dir)
    folder = save_pair_similarity(model, tmp_path / "rule", ["entailment", "not_entailment"], PAIR)
    with pytest.raises(ExportError, match="not the one this rule was fitted on"):
        load_classifier(folder, load_backbone(str(tiny_dirs["roberta"]), device="cpu"))
    with pytest.raises(ExportError, match="is a pair-similarity rule, not an adapter"):
        read_config(folder)  # the adapter loaders (serving) say what it is
    cfg = json.loads((folder / "pair_similarity.json").read_text())
    for bad, match in (({"weight": [1.0]}, "one number per class"), ({"std": 0}, "std 0"), ({"format": "x"}, "'x'")):
        (folder / "pair_similarity.json").write_text(json.dumps({**cfg, **bad}))
        with pytest.raises(ExportError, match=match):
            load_classifier(folder, bb)
    (folder / "pair_similarity.json").write_text("{not json")
    with pytest.raises(ExportError, match="pair_similarity.json"):
        load_classifier(folder, bb)


def test_the_rule_exports_as_native_only(tiny_headless_dir, tmp_path):
    from list_core.trained import export_model

    _, model, _ = _fitted(tiny_headless_dir)
    with pytest.raises(ValueError, match="'folded': a pair-similarity rule exports as 'native' only"):
        export_model(model, "folded", tmp_path / "f", ["entailment", "not_entailment"], prompt=PAIR)


def test_it_refuses_a_single_text_prompt_and_a_class_without_gold(tiny_headless_dir):
    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    single = TaskData(["neg", "pos"], [{"text": "bad"}, {"text": "good"}], [0, 1])
    with pytest.raises(ValueError, match="for pair tasks"):
        pair_similarity(bb, Prompt("{text} It was {mask} .", ("bad", "good")), single, preset("fast"))
    one_class = TaskData(["entailment", "not_entailment"], [{"text_a": "a", "text_b": "a"}], [0])
    with pytest.raises(DataError, match="not_entailment"):
        pair_similarity(bb, PAIR, one_class, preset("fast"))


def test_a_single_text_project_cannot_start_it(tmp_path):
    db = st.connect(tmp_path / "s.db")
    p = st.create_project(db, "reviews", "single", ["negative", "positive"], "default")
    with pytest.raises(st.StoreError, match="trains on pair tasks only; this project is a single task"):
        actions.start_run(db, p.id, "pair-similarity")


def test_a_worker_runs_it_for_a_pair_project(tmp_path, tiny_headless_dir):
    """Enqueued from the app, run by the worker: metrics on the gold pairs and the evaluation split, and its
    predictions become the Label page's suggestions."""
    from list_core.predict import main as predict_cli
    from storage import jobs as jobq
    from storage import predictions as predq
    from storage import runs as runq
    from worker.runner import Worker

    db = st.connect(tmp_path / "w.db")
    p = st.create_project(db, "nli", "pair", ["entailment", "not_entailment"], str(tiny_headless_dir))
    words = ["movie", "film", "story", "actor", "plot", "music", "scene", "ending", "cast", "script", "camera", "light"]
    same, other = _pairs(words, True), _pairs(words, False)
    st.add_examples(db, p.id, same[:8] + other[:8])
    for e in st.page_examples(db, p.id, limit=100):
        if e.row() in same[:3]:
            st.set_label(db, e.id, 0)
        elif e.row() in other[:3]:
            st.set_label(db, e.id, 1)
    rows = "".join(f'"{r["text_a"]}","{r["text_b"]}",{y}\n' for r, y in
                   [(r, "entailment") for r in same[8:]] + [(r, "not_entailment") for r in other[8:]])  # fmt: skip
    st.import_file(db, p.id, ("a,b,label\n" + rows).encode(), {"text_a": "a", "text_b": "b"}, name="eval.csv",
                   label_column="label", split="eval")  # fmt: skip
    st.save_prompt(db, p.id, "{text_a} ? {mask} , {text_b}", ["yes", "no"])
    run, _ = actions.start_run(db, p.id, "pair-similarity")
    done = Worker(tmp_path / "w.db").run_once()
    assert done.status == "succeeded", done.error
    run = runq.get_run(db, run.id)
    assert run.metrics["gold_accuracy"] == 1.0 and run.metrics["eval_accuracy"] == 1.0
    assert run.metrics["stage_seconds"]["fit"] > 0  # the run history shows its time
    assert all(predq.prediction(db, e.id)["run_id"] == run.id for e in st.page_examples(db, p.id, limit=100))
    # the run kept its rule: the Export page predicts with it and exports it, and the predict CLI reads the export
    typed = jobq.enqueue(db, "predict", {"run_id": run.id, "rows": same[10:11] + other[10:11]}, p.id)
    done = Worker(tmp_path / "w.db").run_once()
    assert done.id == typed.id and done.status == "succeeded", done.error
    assert [max((0, 1), key=pr.__getitem__) for pr in done.result["probs"]] == [0, 1]
    jobq.enqueue(db, "export", {"run_id": run.id, "format": "native"}, p.id)
    done = Worker(tmp_path / "w.db").run_once()
    assert done.status == "succeeded", done.error
    (tmp_path / "in.csv").write_text(
        "a,b\n" + "".join(f'"{r["text_a"]}","{r["text_b"]}"\n' for r in same[10:] + other[10:])
    )
    assert predict_cli(["--adapter", done.result["path"], "--input", str(tmp_path / "in.csv"), "--text-column", "a",
                        "--text-b-column", "b", "--output", str(tmp_path / "out.csv"),
                        "--backbone", str(tiny_headless_dir)]) == 0  # fmt: skip
    out = (tmp_path / "out.csv").read_text().splitlines()
    assert [line.split(",")[2] for line in out[1:]] == ["entailment"] * 2 + ["not_entailment"] * 2
