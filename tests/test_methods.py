"""One registry of methods: a toy method added there alone is offered by the Train page, started, run by the
worker, and accepted by the bench."""

import json
from pathlib import Path

import pytest
import torch

import storage as st
from list_core import methods
from list_core.methods import Method
from storage import runs as runq
from ui import actions
from worker.runner import Worker

ROOT = Path(__file__).resolve().parents[1]


class Constant:
    """Predicts the majority class of the gold labels."""

    def __init__(self, majority: int, classes: int) -> None:
        self.p = torch.nn.functional.one_hot(torch.tensor(majority), classes).float()

    def predict_proba(self, rows, batch_size=64):
        return self.p.expand(len(rows), -1).clone()


def toy_runner(backbone, prompt, task, cfg, callback=None, should_cancel=None, checkpoint_dir=None):
    counts = torch.bincount(torch.tensor(task.gold_labels), minlength=len(task.labels))
    return Constant(int(counts.argmax()), len(task.labels))


@pytest.fixture()
def toy():
    methods.register(Method("toy", "Toy: the majority class", "a test method", "tests.test_methods:toy_runner"))
    yield methods.get("toy")
    methods.unregister("toy")


def test_a_method_added_to_the_registry_alone_reaches_page_worker_and_bench(toy, tmp_path, tiny_dirs, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from list_core.bench import main

    db = st.connect(tmp_path / "t.db")
    p = st.create_project(db, "toy", "single", ["neg", "pos"], str(tiny_dirs["bert"]))
    st.add_examples(db, p.id, [{"text": t} for t in ("a", "b", "c", "d")])
    for e, lab in zip(st.page_examples(db, p.id), (1, 1, 0, 1)):
        st.set_label(db, e.id, lab)
    st.save_prompt(db, p.id, "{text} It was {mask} .", ["bad", "great"])
    # the bench accepts it and runs it in a fresh process (first: AppTest below changes __main__, which a
    # spawned process would re-run)
    data = tmp_path / "toyset"
    (data / "fewshot").mkdir(parents=True)
    (data / "meta.json").write_text(json.dumps({"name": "toyset", "task": "single", "labels": ["neg", "pos"],
                                                "template": "{text} It was {mask} .",
                                                "label_words": {"neg": "bad", "pos": "great"}}))  # fmt: skip
    rows = [{"id": str(i), "text": f"text {i}", "label": "pos" if i % 3 else "neg"} for i in range(9)]
    (data / "pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "fewshot" / "k3-s1.jsonl").write_text("".join(json.dumps({"id": str(i)}) + "\n" for i in (0, 1, 2)))
    out = tmp_path / "r.json"
    assert main(["--data", str(data), "--k", "3", "--seeds", "1", "--methods", "toy", "--backbone",
                 str(tiny_dirs["bert"]), "--out", str(out)]) == 0  # fmt: skip
    (result,) = json.loads(out.read_text())["results"]
    assert result["method"] == "toy" and abs(result["accuracy"] - 6 / 9) < 1e-6
    # the Train page offers it, with the settings of its kind of work
    monkeypatch.setenv("LIST_DB", str(tmp_path / "t.db"))
    at = AppTest.from_file(str(ROOT / "pages" / "train.py"), default_timeout=60)
    at.session_state["project"] = p.id
    at.run()
    assert "Toy: the majority class" in at.selectbox(key="tr_method").options
    at.selectbox(key="tr_method").select("toy").run()
    assert not at.exception and any("a test method" in c.value for c in at.caption)
    # the worker runs it
    run, _ = actions.start_run(db, p.id, "toy", "fast")
    assert Worker(tmp_path / "t.db").run_once().status == "succeeded"
    run = runq.get_run(db, run.id)
    assert run.status == "succeeded" and run.metrics["gold_accuracy"] == 0.75
    with pytest.raises(ValueError, match="already registered"):
        methods.register(Method("toy", "again", "", "x:y"))
