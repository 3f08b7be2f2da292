"""The worker end to end: enqueue, run, results in the database; cancel; SIGKILL and resume."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch

import storage as st
from list_core.export import load_classifier
from storage import exports as exportq
from storage import jobs as jobq
from storage import predictions as predq
from storage import runs as runq
from storage.db import write
from ui import actions
from worker.runner import Worker

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(
    adapter={"bottleneck": 4},
    teacher_epochs=2,
    rounds=2,
    student_steps=6,
    student_batch_size=4,
    tau=0.0,
    finetune_epochs=1,
    max_length=32,
    unlabeled_limit=None,
)
POOL = [f"{w} {x}" for w in ("great", "bad", "good", "awful") for x in ("movie", "film", "acting", "story", "pacing")]


@pytest.fixture()
def project(tmp_path, tiny_dirs):
    return make_project(tmp_path, tiny_dirs)


@pytest.fixture()
def headless(tmp_path, tiny_headless_dir):
    """A project on a sentence encoder (the similarity head): 4 gold labels and a prompt; (db, project, db path)."""
    db = st.connect(tmp_path / "h.db")
    p = st.create_project(db, "headless", "single", ["negative", "positive"], str(tiny_headless_dir))
    st.add_examples(db, p.id, [{"text": t} for t in POOL])
    for e in st.page_examples(db, p.id, limit=100)[:4]:
        st.set_label(db, e.id, int(e.text.startswith(("great", "good"))))
    st.save_prompt(db, p.id, "{text} It was {mask} .", ["bad", "great"])
    return db, p, tmp_path / "h.db"


def count_texts(monkeypatch, method: str) -> list[int]:
    """Record how many texts each call of `ListModel.<method>` (frozen_features, logits) reads."""
    from list_core.model import ListModel

    calls, real = [], getattr(ListModel, method)
    monkeypatch.setattr(ListModel, method, lambda m, enc, *a: calls.append(len(enc)) or real(m, enc, *a))
    return calls


def make_project(tmp_path, tiny_dirs):
    """A tiny project with 8 gold labels, an evaluation split and a prompt: (db, project, db path)."""
    db = st.connect(tmp_path / "w.db")
    p = st.create_project(db, "tiny", "single", ["negative", "positive"], str(tiny_dirs["bert"]))
    st.add_examples(db, p.id, [{"text": t} for t in POOL])
    for e in st.page_examples(db, p.id, limit=100):
        if e.text in ("great movie", "good film", "great acting", "good story"):
            st.set_label(db, e.id, 1)
        elif e.text in ("bad movie", "awful film", "bad acting", "awful story"):
            st.set_label(db, e.id, 0)
    st.import_file(db, p.id, b"text,label\ngreat one,positive\nbad one,negative\n", {"text": "text"},
                   name="eval.csv", label_column="label", split="eval")  # fmt: skip
    st.save_prompt(db, p.id, "{text} It was {mask} .", ["bad", "great"])
    return db, p, tmp_path / "w.db"


def test_list_run_end_to_end(project, monkeypatch):
    import list_core.pool

    db, p, path = project
    monkeypatch.setattr(list_core.pool, "CHUNK", 3)  # the pool is read, scored and written back 3 texts at a time
    run, job = actions.start_run(db, p.id, "list", "fast", seed=3, overrides=TINY)
    done = Worker(path, poll_s=0.1).run_once()
    assert done.id == job.id and done.status == "succeeded", done.error
    run = runq.get_run(db, run.id)
    assert run.status == "succeeded" and run.head == "prompt" and run.backbone_hash
    assert len(run.gold_snapshot) == 8
    assert [m.get("round") for m in runq.rounds(db, run.id)] == [0, 1, 2]
    assert run.metrics["eval_accuracy"] is not None and run.metrics["chosen_round"] == 2 and run.metrics["rounds"] == 2
    assert run.unlabeled_count == len(POOL) - 8 == len(runq.unlabeled_ids(db, run)) and len(run.inputs["eval"]) == 2
    pls = runq.pseudo_labels(db, run.id, 2, limit=100)
    assert len(pls) == len(POOL) - 8 and all(abs(sum(pl.probs) - 1) < 1e-3 for pl in pls)
    assert any(pl.weight is not None for pl in pls)
    assert all(predq.prediction(db, e.id)["run_id"] == run.id for e in st.page_examples(db, p.id, limit=100))
    # predict typed texts, export the adapter, and load it back outside the app
    pj = jobq.enqueue(db, "predict", {"run_id": run.id, "rows": [{"text": "great"}]}, p.id)
    w = Worker(path)
    assert w.run_once().status == "succeeded"
    assert len(jobq.get_job(db, pj.id).result["probs"][0]) == 2
    jobq.enqueue(db, "export", {"run_id": run.id}, p.id)
    ex = w.run_once()
    assert ex.status == "succeeded", ex.error
    art = exportq.artifacts(db, p.id)[0]
    assert art.size > 0 and len(art.sha256) == 64
    clf = load_classifier(art.path)
    assert clf.predict_proba(["great"]).shape == (1, 2)


def test_a_run_with_a_lexical_view_predicts_and_exports_with_it(headless):
    db, p, path = headless  # a sentence encoder: the fast preset's fitted teacher, with a lexical view
    for e in st.page_examples(db, p.id, limit=100):
        if e.text in ("bad movie", "awful film"):
            st.set_label(db, e.id, 0)
    run, job = actions.start_run(db, p.id, "list", "fast", seed=3, overrides={**TINY, "lexical_weight": 0.5})
    w = Worker(path, poll_s=0.1)
    assert w.run_once().status == "succeeded"
    run = runq.get_run(db, run.id)
    last = runq.rounds(db, run.id)[-1]
    assert last["lexical_weight"] == 0.5 and last["lexical_vocabulary"] > 0
    pj = jobq.enqueue(db, "predict", {"run_id": run.id, "rows": [{"text": "great"}, {"text": "awful acting"}]}, p.id)
    assert w.run_once().status == "succeeded"
    jobq.enqueue(db, "export", {"run_id": run.id}, p.id)
    assert w.run_once().status == "succeeded"
    clf = load_classifier(exportq.artifacts(db, p.id)[0].path)
    assert clf.model.lexical is not None and clf.config["lexical"]["weight"] == 0.5
    got = torch.tensor(jobq.get_job(db, pj.id).result["probs"])
    torch.testing.assert_close(got, clf.predict_proba(["great", "awful acting"]), atol=1e-5, rtol=0)


def test_prompt_eval_job(project):
    db, p, path = project
    job = jobq.enqueue(db, "prompt_eval", {"candidates": [
        {"template": "{text} It was {mask} .", "label_words": ["bad", "great"]},
        {"template": "{text} It was {mask} .", "label_words": ["bad", "unfathomableness"]},
    ], "suggest": True}, p.id)  # fmt: skip
    done = Worker(path).run_once()
    assert done.status == "succeeded", done.error
    board = done.result["leaderboard"]
    assert "accuracy" in board[0] and "loss" in board[0]
    assert done.result["eval"] == done.result["eval_of"] == 2 and board[0]["eval_accuracy"] in (0.0, 0.5, 1.0)
    assert "eval_accuracy" not in board[-1]  # the candidate that could not be built
    assert "'unfathomableness' is 5 tokens" in board[-1]["error"]
    assert set(done.result["suggestions"]) == {"negative", "positive"}
    assert job.id == done.id
    origins = {e.get("origin"): e for e in board}
    assert set(origins) == {"prompt", None, "suggested"}  # the prompt with its suggested words, scored beside it
    assert origins["suggested"]["label_words"][1][0] == "great" and len(origins["suggested"]["label_words"][1]) == 4


def test_prompt_suggestions_on_a_sentence_encoder_reuse_the_boards_features(headless, monkeypatch):
    """Before any run, scoring prompts also writes the prompt's suggestions for every pool text. On a sentence
    encoder they come from the features the board computed (the pool is encoded once in the job, not twice), and
    they are the zero-shot model's own probabilities."""
    from list_core.backbone import load_backbone
    from list_core.model import ListModel
    from list_core.prompt_tools import zero_shot_model
    from list_core.prompts import Prompt

    db, p, path = headless
    prompt = {"template": "{text} It was {mask} .", "label_words": ["bad", "great"]}
    real_logits = ListModel.logits
    features, logits = count_texts(monkeypatch, "frozen_features"), count_texts(monkeypatch, "logits")
    jobq.enqueue(db, "prompt_eval", {"candidates": [prompt], "suggest": False}, p.id)
    done = Worker(path).run_once()
    assert done.status == "succeeded", done.error
    n = done.result["prompt_suggestions"]
    # two verbaliser sentences per zero-shot model (the re-matching check's, the board's, the suggestions'); the
    # texts once each: the gold, then the rest of the pool for the board; the suggestions read the same features
    assert n == len(POOL) and features == [2, 2, 4, n - 4, 2] and n not in logits
    model = zero_shot_model(load_backbone(p.backbone, device="cpu"), Prompt.from_json(prompt))
    pool = st.page_examples(db, p.id, limit=100)  # the pool split: labeled or not
    expected = real_logits(model, model.encode([e.row() for e in pool])).softmax(-1)
    got = torch.tensor([predq.prediction(db, e.id)["probs"] for e in pool])
    assert len(pool) == n and torch.allclose(got, expected, atol=1e-5)


def test_scoring_the_prompt_again_encodes_no_text_again(headless, monkeypatch):
    """The workbench's loop (edit the label words, score them, again): on a sentence encoder the worker keeps the
    texts' features on its backbone, so the second scoring passes only the new words' verbaliser sentences through
    the encoder (not the gold, pool or candidate-word texts of the board, the label-word suggestions and the Label
    page's suggestions from the prompt), with the same board as a cold start would give."""
    db, p, path = headless
    first = {"template": "{text} It was {mask} .", "label_words": ["bad", "great"]}
    second = {"template": "{text} It was {mask} .", "label_words": ["awful", "good"]}  # new words, same template
    passes = count_texts(monkeypatch, "frozen_features")
    worker = Worker(path)
    jobq.enqueue(db, "prompt_eval", {"candidates": [first], "suggest": True}, p.id)
    assert worker.run_once().status == "succeeded"
    cold = sum(passes)
    passes.clear()
    jobq.enqueue(db, "prompt_eval", {"candidates": [second], "suggest": True}, p.id)
    warm = worker.run_once()
    assert warm.status == "succeeded", warm.error
    # each zero-shot model's verbaliser sentences: 2, and 5 to 8 for the prompt with up to 3 suggested words a class
    assert passes.count(2) == len(passes) - 1 and 5 <= max(passes) <= 8 and sum(passes) < cold / 2, (passes, cold)
    jobq.enqueue(db, "prompt_eval", {"candidates": [second], "suggest": True}, p.id)
    monkeypatch.setenv("LIST_FEATURE_STORE_MB", "0")  # nothing on disk either
    fresh = Worker(path).run_once()  # a new worker: nothing cached
    assert fresh.result["leaderboard"] == warm.result["leaderboard"]
    assert fresh.result["suggestions"] == warm.result["suggestions"]


def test_a_restarted_worker_reads_the_texts_features_back_from_the_projects_folder(headless, monkeypatch):
    """The features a scoring read are kept beside the database (`features/project-<id>`, one file per backbone):
    the first scoring of a new worker encodes only verbaliser sentences and gives the same board and suggestions.
    Deleting the project deletes them."""
    db, p, path = headless
    prompt = {"template": "{text} It was {mask} .", "label_words": ["bad", "great"]}
    jobq.enqueue(db, "prompt_eval", {"candidates": [prompt], "suggest": True}, p.id)
    cold = Worker(path).run_once()
    assert cold.status == "succeeded", cold.error
    folder = st.features_dir(db, p.id)
    assert folder == path.parent / "features" / f"project-{p.id}" and len(list(folder.glob("*.f32"))) == 1
    passes = count_texts(monkeypatch, "frozen_features")
    jobq.enqueue(db, "prompt_eval", {"candidates": [prompt], "suggest": True}, p.id)
    restarted = Worker(path).run_once()
    assert restarted.status == "succeeded", restarted.error
    assert passes and max(passes) <= 8, passes  # each zero-shot model's prototypes: no gold, pool or word text
    assert restarted.result["leaderboard"] == cold.result["leaderboard"]
    assert restarted.result["suggestions"] == cold.result["suggestions"]
    assert str(folder) in st.delete_project(db, p.id) and not folder.exists()


def test_after_an_import_the_worker_reads_the_texts_ahead_of_the_first_scoring(headless, project, monkeypatch):
    """The `embed` job an import queues puts the features of the texts a prompt scoring reads (gold, pool sample,
    evaluation sample) in the backbone's cache: the first scoring then encodes only verbaliser sentences. On a
    backbone with an MLM head (the template is the input) there is nothing to prepare."""
    db, p, path = headless
    passes = count_texts(monkeypatch, "frozen_features")
    worker = Worker(path)
    jobq.read_ahead(db, p.id, pool=False)
    done = worker.run_once()
    assert done.status == "succeeded", done.error
    words = done.result["words"]  # the suggestions' candidate words, in the saved prompt's template
    assert done.result["embedded"] == 4 + len(POOL) and done.result["cached"] == len(POOL) + words > len(POOL)
    assert passes == [len(POOL), 2, words]  # the texts (the gold are pool texts), the prompt's prototypes, the words
    passes.clear()
    prompt = {"template": "{text} It was {mask} .", "label_words": ["bad", "great"]}
    jobq.enqueue(db, "prompt_eval", {"candidates": [prompt], "suggest": True}, p.id)
    scored = worker.run_once()
    assert scored.status == "succeeded", scored.error
    assert max(passes) <= 8 and scored.result["prompt_suggestions"] == len(POOL)  # zero-shot models' prototypes only
    mlm_db, mlm, mlm_path = project
    jobq.read_ahead(mlm_db, mlm.id, pool=False)
    done = Worker(mlm_path).run_once()
    assert done.status == "succeeded" and done.result["embedded"] == 0 and "MLM head" in done.result["why"]


def test_background_work_makes_way_for_a_scoring_and_then_goes_on_from_the_cache(headless, monkeypatch):
    """The user clicks "Score prompts" while the worker reads an import's texts ahead: the reading stops between
    two steps and goes back to the queue, the scoring runs, then the reading goes on without encoding again what
    it or the scoring had read."""
    import worker.handlers as handlers

    db, p, path = headless
    real_spans = handlers.spans
    monkeypatch.setattr(handlers, "spans", lambda n, size=64: real_spans(n, 2))  # many steps on a tiny pool
    passes, clicked = count_texts(monkeypatch, "frozen_features"), []
    prompt = {"template": "{text} It was {mask} .", "label_words": ["bad", "great"]}

    def click_during_the_job(db_, job_id, stage, step=None, total=None, **_):
        if not clicked and step:  # after the job's first step
            clicked.append(jobq.enqueue(db, "prompt_eval", {"candidates": [prompt]}, p.id))

    monkeypatch.setattr(handlers.jobq, "progress", click_during_the_job)
    worker = Worker(path, lane="light")
    embed = jobq.read_ahead(db, p.id, pool=False)[0]
    first = worker.run_once()
    assert (first.id, first.status) == (embed.id, "queued") and "made way" in first.message
    read_before = sum(passes)
    assert 0 < read_before < len(POOL)
    scored = worker.run_once()
    assert (scored.id, scored.status) == (clicked[0].id, "succeeded"), scored.error
    passes.clear()
    done = worker.run_once()
    assert (done.id, done.status) == (embed.id, "succeeded") and done.result["embedded"] == 4 + len(POOL)
    assert passes == [2, done.result["words"]]  # the prompt's prototypes, the candidate words: every text is cached


def test_on_a_pool_the_board_samples_the_prompts_suggestions_are_written_in_the_background(headless, monkeypatch):
    """Before any run a scoring also writes the prompt's predictions for every pool text (the Label page's
    suggestions); on a pool larger than the board's sample that read the whole pool before the board was shown
    (8,000 texts: most of a 29 s wait on 2 cores). The board comes first; a background job writes the suggestions,
    and a newer scoring's job replaces one still queued."""
    import worker.handlers as handlers

    db, p, path = headless
    monkeypatch.setattr(handlers, "SAMPLE_POOL", 5)  # the board reads every 4th of the 20 pool texts
    passes = count_texts(monkeypatch, "frozen_features")
    worker = Worker(path, lane="light")
    prompt = {"template": "{text} It was {mask} .", "label_words": ["bad", "great"]}
    for words in (["awful", "good"], ["bad", "great"]):
        jobq.enqueue(db, "prompt_eval", {"candidates": [{**prompt, "label_words": words}]}, p.id)
        scored = worker.run_once()
        assert scored.status == "succeeded", scored.error
    assert "prompt_suggestions" not in scored.result and scored.result["prompt_suggestions_of"] == len(POOL)
    assert sum(passes) < len(POOL) and not predq.has_predictions(db, p.id)  # the board read its sample only
    jobs = [j for j in jobq.list_jobs(db, p.id) if j.kind == "prompt_suggest"]
    assert [j.status for j in jobs] == ["queued", "cancelled"] and jobs[0].id == scored.result["prompt_suggestions_job"]
    done = worker.run_once()
    assert (done.id, done.status, done.result) == (jobs[0].id, "succeeded", {"prompt_suggestions": len(POOL)})
    from list_core.prompt_tools import zero_shot_model
    from list_core.prompts import Prompt

    zero_shot = zero_shot_model(Worker(path).context.backbone(p.backbone), Prompt.from_json(prompt))
    first = st.page_examples(db, p.id, limit=1)[0]
    expected = zero_shot.predict_proba([first.row()])[0]
    assert predq.prediction(db, first.id)["probs"] == pytest.approx(expected.tolist(), abs=1e-5)  # the newer prompt's


def test_the_diverse_order_and_the_prompts_suggestions_encode_the_pool_once(headless, monkeypatch):
    """On a sentence encoder the diverse order clusters the texts' frozen features and the prompt's suggestions read
    the same features (the backbone's cache): one pass over the pool in the job, not two."""
    db, p, path = headless
    passes, forward = count_texts(monkeypatch, "frozen_features"), count_texts(monkeypatch, "logits")
    jobq.enqueue(db, "diversity", {"k": 3}, p.id)
    done = Worker(path).run_once()
    assert done.status == "succeeded", done.error
    assert passes == [len(POOL), 2] and not forward  # the pool, then the prompt's two verbaliser sentences
    assert predq.prediction(db, st.page_examples(db, p.id, limit=1)[0].id) is not None


def test_prompt_eval_with_an_unusable_prompt_first(project):
    """The prompt's own zero-shot suggestions come from the project's prompt (the first candidate), not from
    whichever candidate ranks first: a broken prompt with a usable second candidate failed the whole job."""
    db, p, path = project
    jobq.enqueue(db, "prompt_eval", {"candidates": [
        {"template": "{text} It was {mask} .", "label_words": ["bad", "unfathomableness"]},
        {"template": "{text} It was {mask} .", "label_words": ["bad", "great"]},
    ]}, p.id)  # fmt: skip
    done = Worker(path).run_once()
    assert done.status == "succeeded", done.error
    assert "error" in done.result["leaderboard"][-1] and "prompt_suggestions" not in done.result


def test_diversity_orders_a_sample_of_a_large_pool_and_the_prompt_suggests(project, monkeypatch):
    """The diverse order clusters at most `DIVERSE_LIMIT` pool texts (a labeling queue, not a pass over a huge
    pool), and before any run the prompt's suggestions cover every pool example, written a chunk at a time."""
    import list_core.pool
    import worker.handlers as handlers

    db, p, path = project
    monkeypatch.setattr(handlers, "DIVERSE_LIMIT", 6)
    monkeypatch.setattr(list_core.pool, "CHUNK", 4)
    jobq.enqueue(db, "diversity", {"k": 3}, p.id)
    done = Worker(path).run_once()
    assert done.status == "succeeded", done.error
    assert done.result == {"ordered": 6, "clusters": 3, "of": len(POOL)}
    queue = [r[0] for r in db.execute("SELECT example_id FROM label_queue WHERE project_id = ? ORDER BY rank", [p.id])]
    pool_ids = {e.id for e in st.page_examples(db, p.id, limit=100)}
    assert len(queue) == len(set(queue)) == 6 and set(queue) <= pool_ids
    assert all(predq.prediction(db, i)["run_id"] is None for i in pool_ids)  # the prompt's, for every example


def test_failed_job_keeps_the_traceback(project):
    db, p, path = project
    st.save_prompt(db, p.id, "{text} It was {mask} .", ["bad", "unfathomableness"])
    run, _ = actions.start_run(db, p.id, "list", "fast", overrides=TINY)
    done = Worker(path).run_once()
    assert done.status == "failed" and "unfathomableness" in done.error and "Traceback" in done.error
    assert runq.get_run(db, run.id).status == "failed"


def test_start_run_checks_before_enqueueing(project):
    db, p, _ = project
    with pytest.raises(st.StoreError, match="invalid training settings: tau=2"):
        actions.start_run(db, p.id, overrides={"tau": 2})
    p2 = st.create_project(db, "empty", "single", ["a", "b"], "x")
    with pytest.raises(st.StoreError, match="write a prompt"):
        actions.start_run(db, p2.id)
    st.save_prompt(db, p2.id, "{text} {mask}", ["a", "b"])
    with pytest.raises(st.StoreError, match=r"no gold example for \['a', 'b'\]"):
        actions.start_run(db, p2.id)


def test_one_active_run_per_project_unless_asked_and_a_queued_run_cancels(project):
    """Issue 12.2: a second click on Start run does not queue a duplicate; a queued run can be cancelled, and its
    run row says so at once (no worker needed)."""
    db, p, _ = project
    run, job = actions.start_run(db, p.id, overrides=TINY)
    with pytest.raises(st.StoreError, match=f"run {run.id} is already queued"):
        actions.start_run(db, p.id, overrides=TINY)
    second, _ = actions.start_run(db, p.id, overrides=TINY, alongside=True)  # asked for: allowed
    jobq.request_cancel(db, job.id)
    assert jobq.get_job(db, job.id).status == "cancelled" and runq.get_run(db, run.id).status == "cancelled"
    assert runq.get_run(db, second.id).status == "queued"


def _spawn_worker(path: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("LIST_DB", None)
    return subprocess.Popen(
        [sys.executable, "-m", "worker", "--db", str(path), "--poll", "0.2", *extra],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


class _ForkedWorker:
    """`python -m worker --db PATH --poll 0.2` in a child forked from a process that has already imported the
    engine (what the worker's own warm-up does in ~8 s), for tests that start a worker many times. The child runs
    the same `main` as the command and dies by the same signals; `Popen`'s methods the tests use."""

    def __init__(self, path: Path) -> None:
        import multiprocessing as mp

        from worker.__main__ import main

        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["worker.handlers"])  # takes effect when the server starts (once per session)
        self.proc = ctx.Process(target=main, args=(["--db", str(path), "--poll", "0.2"],))
        # the child would first re-run this process's __main__: pytest's, or the page an AppTest last ran
        real_main, sys.modules["__main__"] = sys.modules["__main__"], types.ModuleType("__main__")
        try:
            self.proc.start()
        finally:
            sys.modules["__main__"] = real_main
        self.pid = self.proc.pid

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def kill(self) -> None:
        self.proc.kill()

    def terminate(self) -> None:
        self.proc.terminate()

    def wait(self, timeout: float | None = None) -> int | None:
        self.proc.join(timeout)
        if self.proc.exitcode is None:
            raise subprocess.TimeoutExpired("worker", timeout)
        return self.proc.exitcode

    def poll(self) -> int | None:
        return self.proc.exitcode


def _wait(pred, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


# long enough to cancel or kill mid-run: the fast preset's cap of 3 passes over the small pool lifted
SLOW = {**TINY, "rounds": 3, "student_steps": 120, "student_max_passes": None}


def test_cancel_reaches_a_running_job(project):
    db, p, path = project
    run, job = actions.start_run(db, p.id, overrides={**SLOW, "rounds": 50})
    proc = _spawn_worker(path)
    try:
        _wait(lambda: jobq.get_job(db, job.id).stage, 120, "the job to start")
        t = time.monotonic()
        jobq.request_cancel(db, job.id)
        j = _wait(lambda: (j := jobq.get_job(db, job.id)).done and j, 30, "cancellation")
        assert j.status == "cancelled" and time.monotonic() - t < 10
        assert runq.get_run(db, run.id).status == "cancelled"
    finally:
        proc.terminate()
        proc.wait(30)


def test_sigkilled_worker_job_resumes_from_checkpoint(project):
    db, p, path = project
    run, job = actions.start_run(db, p.id, overrides=SLOW)
    first = _spawn_worker(path, "--stale", "2")
    try:
        _wait(lambda: len(runq.rounds(db, run.id)) >= 2, 180, "round 1 to be saved")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    assert jobq.get_job(db, job.id).status == "running"  # orphaned
    second = _spawn_worker(path, "--stale", "2")
    try:
        j = _wait(lambda: (j := jobq.get_job(db, job.id)).done and j, 240, "the job to finish")
    finally:
        second.terminate()
        second.wait(30)
    assert j.status == "succeeded", j.error
    assert j.attempts == 2 and j.result["resumed_from"] >= 1  # not started over
    assert [m["round"] for m in runq.rounds(db, run.id)] == [0, 1, 2, 3]
    assert runq.count_pseudo_labels(db, run.id, 1) == len(POOL) - 8  # round 1 from the first worker is kept
    assert runq.get_run(db, run.id).status == "succeeded"
    ckpt = Path(runq.get_run(db, run.id).checkpoint_dir)
    assert (ckpt / "round-003" / "trainable.safetensors").exists()


def test_worker_keeps_only_the_most_recently_used_backbones(tmp_path, tiny_dirs, monkeypatch):
    monkeypatch.setenv("LIST_BACKBONE_CACHE", "1")
    ctx = Worker(str(tmp_path / "w.db")).context
    first = ctx.backbone(str(tiny_dirs["bert"]))
    assert ctx.backbone(str(tiny_dirs["bert"])) is first  # loaded once
    ctx.backbone(str(tiny_dirs["roberta"]))
    assert list(ctx.backbones) == [str(tiny_dirs["roberta"])]  # the older one was freed


def test_run_eta_from_the_measured_round_time(project):
    import worker.handlers as handlers
    from list_core.events import Event
    from storage import jobs as jobq

    db, p, path = project
    run, job = actions.start_run(db, p.id, "list", "fast", overrides={**TINY, "rounds": 3})
    w = Worker(path)
    job = jobq.claim(db, w.id)
    clock = iter([0.0, 1.0, 10.0, 12.0, 30.0])
    pw = handlers.ProgressWriter(w.context, job, run, clock=lambda: next(clock))
    pw(Event("round_end", round=0))  # t=0: teacher done, round 1 starts
    pw(Event("meta", 1, 10, round=1))  # t=1: no round timed yet
    assert jobq.get_job(db, job.id).run_eta_seconds is None
    pw(Event("round_end", round=1))  # t=10: a round takes 10 s
    pw(Event("meta", 2, 10, round=2))  # t=12: 8 s left in round 2, then round 3
    assert jobq.get_job(db, job.id).run_eta_seconds == 18.0
    pw(Event("done"))  # t=30
    assert jobq.get_job(db, job.id).run_eta_seconds == 0.0


def test_a_worker_started_by_the_app_stops_with_it(tmp_path):
    """Issue 12.8: Ctrl-C on the app left its worker running (about 800 MB). A worker with --parent-pid exits
    when that process is gone; one started by hand (no --parent-pid) keeps running."""
    import signal

    path = tmp_path / "p.db"
    st.connect(path)
    parent = subprocess.Popen(
        [sys.executable, "-c", "import os, subprocess, sys, time\n"
         f"w = subprocess.Popen([sys.executable, '-m', 'worker', '--db', {str(path)!r}, '--poll', '0.2', "
         "'--parent-pid', str(os.getpid())], cwd=sys.argv[1])\nprint(w.pid, flush=True)\ntime.sleep(600)\n", str(ROOT)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    worker_pid = int(parent.stdout.readline())
    by_hand = _spawn_worker(path)
    try:
        pids = lambda: {w["pid"] for w in jobq.alive_workers(st.connect(path))}  # noqa: E731 (two lanes each)
        _wait(lambda: pids() == {worker_pid, by_hand.pid}, 60, "both workers to register")
        parent.send_signal(signal.SIGKILL)  # the app dies without any clean-up
        parent.wait(10)
        _wait(lambda: not Path(f"/proc/{worker_pid}").exists() or "Z" in Path(f"/proc/{worker_pid}/stat").read_text().split()[2], 30, "the app's worker to exit")  # fmt: skip
        assert by_hand.poll() is None  # the hand-started worker runs on
    finally:
        by_hand.terminate()
        by_hand.wait(30)
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker_pid, signal.SIGKILL)


def test_a_prediction_does_not_wait_behind_a_training_run(project, monkeypatch):
    """Issue 12.2: with one first-in-first-out lane, a one-sentence prediction queued during training waited for
    the whole run. The training handler here holds its lane until the prediction has finished (or 20 s pass)."""
    import threading

    import worker.handlers as handlers

    db, p, path = project
    run, train = actions.start_run(db, p.id, "list", "fast", seed=3, overrides=TINY)
    prompt = {"template": "{text} It was {mask} .", "label_words": ["bad", "great"]}
    light = jobq.enqueue(db, "prompt_eval", {"candidates": [prompt]}, p.id)
    real = handlers.HANDLERS["list_run"]

    def slow_training(ctx, job, cancel):
        end = time.monotonic() + 20
        while jobq.get_job(ctx.db, light.id).status != "succeeded" and time.monotonic() < end:
            time.sleep(0.1)
        return real(ctx, job, cancel)

    monkeypatch.setitem(handlers.HANDLERS, "list_run", slow_training)
    from worker.runner import run_lanes

    run_lanes(["train", "light"], threading.Event(), exit_when_idle=True, db=path, poll_s=0.1)
    t, lt = jobq.get_job(db, train.id), jobq.get_job(db, light.id)
    assert t.status == "succeeded" and lt.status == "succeeded", (t.error, lt.error)
    assert lt.finished_at < t.finished_at  # one first-in-first-out lane would finish the training first
    assert runq.get_run(db, run.id).status == "succeeded"


def test_the_lanes_claim_nothing_until_the_engine_is_imported(project, monkeypatch):
    """A worker imports the engine (torch, transformers: seconds) as it starts, so a job queued later does not wait
    for that. Until the import has finished no lane claims a job (two lanes importing one package at once can meet
    a partly initialised module), and the worker counts as alive meanwhile."""
    import threading

    import worker.runner as runner

    db, p, path = project
    prompt = {"template": "{text} It was {mask} .", "label_words": ["bad", "great"]}
    job = jobq.enqueue(db, "prompt_eval", {"candidates": [prompt]}, p.id)
    seen, real = [], runner.warm_up

    def slow_warm_up() -> float:
        time.sleep(1.0)  # 20 polls of each lane
        seen.append((jobq.get_job(db, job.id).status, len(jobq.alive_workers(db))))
        return real()

    monkeypatch.setattr(runner, "warm_up", slow_warm_up)
    stop = threading.Event()
    lanes = threading.Thread(target=runner.run_lanes, args=(["train", "light"], stop),
                             kwargs={"db": path, "poll_s": 0.05})  # fmt: skip
    lanes.start()
    try:
        done = _wait(lambda: (j := jobq.get_job(db, job.id)).done and j, 60, "the job")
    finally:
        stop.set()
        lanes.join(30)
    assert seen == [("queued", 2)]  # not claimed while importing; both lanes registered and heartbeating
    assert done.status == "succeeded", done.error


def test_an_idle_lane_takes_a_new_job_between_its_claims(project, monkeypatch):
    """An idle lane claims (a write that also takes back dead workers' jobs) every `poll_s`, and meanwhile looks for
    a queued job of its kinds (a read) every `PEEK_S`: a job queued just after a claim is taken at once, not at the
    next claim (here 300 s away), and a job of the other lane's kinds does not wake it."""
    import threading

    import worker.runner as runner

    db, p, path = project
    claims, real = [], jobq.claim
    monkeypatch.setattr(jobq, "claim", lambda *a, **k: claims.append(time.monotonic()) or real(*a, **k))
    stop = threading.Event()
    light = runner.Worker(path, lane="light", poll_s=300)
    thread = threading.Thread(target=light.run_forever, args=(stop,))
    thread.start()
    try:
        _wait(lambda: claims, 30, "the first claim")
        actions.start_run(db, p.id, "list", "fast", seed=3, overrides=TINY)  # a training job: not this lane's
        time.sleep(5 * runner.PEEK_S)
        assert len(claims) == 1
        prompt = {"template": "{text} It was {mask} .", "label_words": ["bad", "great"]}
        job = jobq.enqueue(db, "prompt_eval", {"candidates": [prompt]}, p.id)
        done = _wait(lambda: (j := jobq.get_job(db, job.id)).done and j, 60, "the job")
    finally:
        stop.set()
        thread.join(30)
    assert done.status == "succeeded", done.error
    assert len(claims) >= 2 and done.worker_id == light.id


def test_a_run_and_a_prompt_scoring_that_start_together_both_succeed(project, monkeypatch):
    """A training run and a prompt scoring taken by the two lanes at the same moment loaded the backbone in two
    threads at once, and both jobs failed ("Cannot copy out of meta tensor"; seen in the browser, a resumed run
    lost). Here the two loads are made to start together."""
    import threading

    import list_core.backbone as backbone

    db, p, path = project
    run, train = actions.start_run(db, p.id, "list", "fast", seed=3, overrides=TINY)
    prompt = {"template": "{text} It was {mask} .", "label_words": ["bad", "great"]}
    light = jobq.enqueue(db, "prompt_eval", {"candidates": [prompt]}, p.id)
    together, real = threading.Barrier(2), backbone.load_backbone

    def load_together(*args, **kwargs):
        together.wait(timeout=30)
        return real(*args, **kwargs)

    monkeypatch.setattr(backbone, "load_backbone", load_together)
    from worker.runner import run_lanes

    run_lanes(["train", "light"], threading.Event(), exit_when_idle=True, db=path, poll_s=0.1)
    t, lt = jobq.get_job(db, train.id), jobq.get_job(db, light.id)
    assert t.status == "succeeded" and lt.status == "succeeded", (t.error, lt.error)
    assert runq.get_run(db, run.id).status == "succeeded"


def _fail_saving_round(monkeypatch, at_round: int, error: BaseException):
    """Make the database write of round `at_round` raise `error` (after its checkpoint is on disk); returns the real
    `runq.save_round`, to put back."""
    real = runq.save_round

    def failing(conn, run_id, round_, *args, **kwargs):
        if round_ == at_round:
            raise error
        return real(conn, run_id, round_, *args, **kwargs)

    monkeypatch.setattr(runq, "save_round", failing)
    return real


def test_a_round_checkpointed_just_before_a_kill_still_reaches_the_database(project, monkeypatch):
    """Issue 13.6: a kill after a round's checkpoint was on disk but before its rows were in the database left
    the database without that round, and the resumed run skipped it."""
    db, p, path = project
    run, job = actions.start_run(db, p.id, "list", "fast", seed=3, overrides=TINY)
    # KeyboardInterrupt stands in for SIGKILL between the checkpoint and the database rows
    real = _fail_saving_round(monkeypatch, 1, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        Worker(path).run_once()
    assert [m["round"] for m in runq.rounds(db, run.id)] == [0]
    monkeypatch.setattr(runq, "save_round", real)
    done = Worker(path, stale_after_s=0.01).run_once()
    assert done.id == job.id and done.status == "succeeded", done.error
    assert [m["round"] for m in runq.rounds(db, run.id)] == [0, 1, 2]
    assert runq.count_pseudo_labels(db, run.id, 1) == runq.count_pseudo_labels(db, run.id, 2) > 0


def test_a_run_resumes_on_the_data_it_started_with(project, monkeypatch):
    """Issue 13.7: kill the worker, import or reject examples, start a worker: the resumed job failed instead of
    resuming on the data it started with."""
    from storage.queue import exclude

    db, p, path = project
    run, job = actions.start_run(db, p.id, "list", "fast", seed=3, overrides=TINY)
    real = runq.save_round

    def killed_after_round_1(conn, run_id, round_, *args, **kwargs):
        real(conn, run_id, round_, *args, **kwargs)
        if round_ == 1:
            raise KeyboardInterrupt  # stands in for SIGKILL

    monkeypatch.setattr(runq, "save_round", killed_after_round_1)
    with pytest.raises(KeyboardInterrupt):
        Worker(path).run_once()
    monkeypatch.setattr(runq, "save_round", real)
    st.add_examples(db, p.id, [{"text": f"new text {i}"} for i in range(5)])  # meanwhile: an import,
    pool = st.page_examples(db, p.id, limit=100)  # the pool split: labeled or not
    exclude(db, pool[0].id, p.id)  # a rejected pseudo-label,
    st.set_label(db, pool[1].id, 1)  # and a new gold label
    done = Worker(path, stale_after_s=0.01).run_once()
    assert done.id == job.id and done.status == "succeeded", done.error
    assert [m["round"] for m in runq.rounds(db, run.id)] == [0, 1, 2]
    assert len(runq.get_run(db, run.id).gold_snapshot) == 8  # the gold labels it started with


def test_a_thawed_worker_cannot_touch_a_run_another_worker_finished(project):
    """Issue 13.8: a worker frozen (SIGSTOP) while a second one reclaimed and finished its job, then thawed, flipped
    the finished run to 'cancelled'. Run status, progress and rounds are written only by the job's owner."""
    import threading

    import worker.handlers as handlers
    from worker.context import JobContext

    db, p, path = project
    run, job = actions.start_run(db, p.id, "list", "fast", seed=3, overrides=TINY)
    frozen = jobq.claim(db, "frozen")  # took the job, then stopped heartbeating
    time.sleep(0.05)
    assert Worker(path, stale_after_s=0.01).run_once().status == "succeeded"  # another worker finished it
    before = (runq.get_run(db, run.id), runq.rounds(db, run.id))
    stopped = threading.Event()
    stopped.set()  # thawed: it notices it lost the job (a failed heartbeat cancels) and stops
    with contextlib.suppress(Exception):  # resumes from the finished checkpoint, or stops at a cancel check
        handlers.list_run(JobContext(db, path.parent / "runs", "frozen"), frozen, stopped)
    assert (runq.get_run(db, run.id), runq.rounds(db, run.id)) == before
    assert runq.get_run(db, run.id).status == "succeeded"
    jobq.progress(db, job.id, "meta", 1, 2, worker_id="frozen")
    assert jobq.get_job(db, job.id).stage != "meta"


def test_a_run_ends_with_its_job_when_no_worker_will_ever_run_it(project):
    """Issue 13.8: a run stayed 'running' forever after the three-kill give-up, or after Cancel while no worker
    was alive."""
    import socket

    db, p, path = project
    run, job = actions.start_run(db, p.id, "list", "fast", overrides=TINY)
    for w in ("a", "b", "c"):  # killed three times
        assert jobq.claim(db, w, stale_after_s=0.01).id == job.id
        time.sleep(0.05)
    assert jobq.claim(db, "d", stale_after_s=0.01) is None
    assert jobq.get_job(db, job.id).status == "failed" and runq.get_run(db, run.id).status == "failed"
    run2, job2 = actions.start_run(db, p.id, "list", "fast", overrides=TINY)
    assert jobq.claim(db, "gone").id == job2.id
    jobq.register_worker(db, "gone", 2**22 + 54321, socket.gethostname())  # killed: no such process
    jobq.request_cancel(db, job2.id)  # no live worker will ever notice: cancelled at once
    assert jobq.get_job(db, job2.id).status == "cancelled" and runq.get_run(db, run2.id).status == "cancelled"


def test_sigterm_interrupts_a_running_job_and_the_next_worker_resumes_it(project):
    """Issue 13.8: SIGTERM let a busy worker run its whole job first (88 s). Now the job stops at its next check,
    goes back to the queue, and the next worker resumes it from its last round."""
    db, p, path = project
    run, job = actions.start_run(db, p.id, overrides={**SLOW, "rounds": 30})
    first = _spawn_worker(path)
    try:
        _wait(lambda: len(runq.rounds(db, run.id)) >= 2, 180, "round 1 to be saved")
        t = time.monotonic()
        first.send_signal(signal.SIGTERM)
        first.wait(30)
        assert time.monotonic() - t < 15
    finally:
        if first.poll() is None:
            first.kill()
    j = jobq.get_job(db, job.id)
    assert j.status == "queued" and runq.get_run(db, run.id).status == "queued"
    jobq.request_cancel(db, job.id)  # no need to run 30 rounds: a queued job cancels at once
    assert runq.get_run(db, run.id).status == "cancelled"


def test_ten_random_kills_lose_nothing(project):
    """Issue 13 reliability: kill -9 the worker at 10 random moments of a run (each after the attempt finished a
    round, so anywhere inside a round, between a checkpoint and its rows included). Every time the next worker
    resumes it; at the end the run has succeeded, labels are intact and the database's rounds match the
    checkpoints. The 11 workers are forked from a process that has imported the engine (`_ForkedWorker`), not
    started as 11 fresh interpreters (11 x ~8 s of imports); one started by the command is killed in
    `test_sigkilled_worker_job_resumes_from_checkpoint`."""
    import random

    db, p, path = project
    gold_before = st.gold_labels(db, p.id)
    history_before = len(st.history(db, p.id))
    rounds = 50  # the most a run takes; 40 ran out after 9 kills on a fast machine (an attempt may finish several
    # rounds before its kill), so each round is longer too (40 student steps)
    run, job = actions.start_run(
        db, p.id, overrides={**TINY, "rounds": rounds, "student_steps": 40, "student_max_passes": None}
    )
    rng = random.Random(13)
    kills = 0
    while kills < 10:
        done_before = len(runq.rounds(db, run.id))
        proc = _ForkedWorker(path)
        try:
            if done_before > rounds:
                break  # nothing left to kill: the run is complete
            _wait(lambda n=done_before, w=proc: len(runq.rounds(db, run.id)) > n or jobq.get_job(db, job.id).done
                  or w.poll() is not None, 120, "this attempt to finish a round")  # fmt: skip
            assert proc.poll() is None, f"the worker exited by itself (exit status {proc.poll()})"
            if jobq.get_job(db, job.id).done:
                break
            time.sleep(rng.uniform(0.0, 0.8))  # a random moment inside a later round
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            kills += 1
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    last = _ForkedWorker(path)
    try:
        j = _wait(lambda: (j := jobq.get_job(db, job.id)).done and j, 240, "the run to finish")
    finally:
        last.terminate()
        last.wait(30)
    assert kills == 10, f"the run finished after {kills} kills: make it longer"
    assert j.status == "succeeded", j.error
    assert runq.get_run(db, run.id).status == "succeeded"
    assert [m["round"] for m in runq.rounds(db, run.id)] == list(range(rounds + 1))
    ckpt = Path(runq.get_run(db, run.id).checkpoint_dir)
    assert sorted(int(d.name.split("-")[1]) for d in ckpt.glob("round-[0-9][0-9][0-9]")) == list(range(rounds + 1))
    pool = len(POOL) - len(gold_before)
    assert all(runq.count_pseudo_labels(db, run.id, r) == pool for r in range(1, rounds + 1))
    assert st.gold_labels(db, p.id) == gold_before and len(st.history(db, p.id)) == history_before


def _labeler(path: str, name: str, ids: list[int], seconds: float, out) -> None:
    """A labeling session: labels (and relabels) examples as fast as it can, with the label it last saw."""
    import random

    db = st.connect(path)
    rng = random.Random(name)
    done = conflicts = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        e = rng.choice(ids)
        seen = st.get_example(db, e).gold
        try:
            if st.set_label(db, e, rng.randrange(2), by=name, expect=seen) is not None:
                done += 1
        except st.LabelConflict:
            conflicts += 1
    out.put((name, done, conflicts))


def test_three_workers_and_three_labelers_lose_and_repeat_nothing(project):
    """Issue 13 reliability: 3 workers and 3 labeling sessions on one database at once (bounded to ~20 s): every
    label written is in the history exactly once and the gold table equals the history's last word per example;
    every job ran exactly once."""
    import multiprocessing as mp

    db, p, path = project
    ids = [e.id for e in st.page_examples(db, p.id, limit=100)]
    prompt = {"template": "{text} It was {mask} .", "label_words": ["bad", "great"]}
    jobs = [jobq.enqueue(db, "prompt_eval", {"candidates": [prompt]}, p.id) for _ in range(12)]
    history_before = len(st.history(db, p.id, limit=10_000))
    workers = [_spawn_worker(path, "--lane", "light") for _ in range(3)]
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    labelers = [ctx.Process(target=_labeler, args=(str(path), f"labeler-{i}", ids, 20.0, out)) for i in range(3)]
    try:
        for lp in labelers:
            lp.start()
        for lp in labelers:
            lp.join(60)
        _wait(lambda: all(jobq.get_job(db, j.id).done for j in jobs), 120, "every job")
    finally:
        for w in workers:
            w.terminate()
            w.wait(30)
    results = [out.get(timeout=5) for _ in labelers]
    written = sum(n for _, n, _ in results)
    assert written > 50, results
    # one more than expected, so a repeated write would show (a fast machine writes well over 100,000 in 20 s)
    everything = st.history(db, p.id, limit=history_before + written + 1)
    hist = [h for h in everything if h.by.startswith("labeler-")]
    assert len(everything) - history_before == written == len(hist)
    last = {}
    for h in reversed(everything):  # oldest first: each change starts where the last ended
        assert h.old_label == last.get(h.example_id, h.old_label), f"a lost update on example {h.example_id}"
        last[h.example_id] = h.new_label
    gold = dict(st.gold_labels(db, p.id))
    assert all(gold.get(e) == lab for e, lab in last.items())
    for j in jobs:
        j = jobq.get_job(db, j.id)
        assert j.status == "succeeded" and j.attempts == 1, (j.status, j.attempts, j.error)


def test_a_run_is_calibrated_on_the_evaluation_split_and_exports_carry_it(project, tmp_path):
    """Issue 12.6: confidence was saturated. A run with an evaluation split fits a temperature on it, reports the
    split's ECE before and after (cross-fitted), predicts with it, and a native export carries it."""
    db, p, path = project
    evals = "".join(f"{w} {x},{lab}\n" for w, lab in (("superb", "positive"), ("terrible", "negative"))
                    for x in ("show", "plot", "cast", "score"))  # fmt: skip
    st.import_file(db, p.id, ("text,label\n" + evals).encode(), {"text": "text"}, name="more-eval.csv",
                   label_column="label", split="eval")  # fmt: skip
    run, _ = actions.start_run(db, p.id, "list", "fast", seed=3, overrides=TINY)
    assert Worker(path).run_once().status == "succeeded"
    m = runq.get_run(db, run.id).metrics
    assert m["temperature"] != 1.0 and 0.0 <= m["eval_ece"] <= 1.0 and m["eval_ece_calibrated"] is not None
    job = jobq.enqueue(db, "export", {"run_id": run.id, "format": "native"}, p.id)
    done = Worker(path).run_once()
    assert done.id == job.id and done.status == "succeeded", done.error
    clf = load_classifier(done.result["path"])
    assert clf.model.temperature == m["temperature"] and clf.config["temperature"] == m["temperature"]


def test_runs_are_numbered_within_their_project(project):
    """Issue 12.9: run numbers counted across projects (a new project's first run was "Run 7")."""
    db, p, path = project
    other = st.create_project(db, "other", "single", ["a", "b"], p.backbone)
    st.add_examples(db, other.id, [{"text": "x one"}, {"text": "y two"}])
    for i, e in enumerate(st.page_examples(db, other.id)):
        st.set_label(db, e.id, i % 2)
    st.save_prompt(db, other.id, "{text} It was {mask} .", ["bad", "great"])
    first, _ = actions.start_run(db, p.id, "list", "fast", overrides=TINY)
    theirs, _ = actions.start_run(db, other.id, "list", "fast", overrides=TINY)
    second, _ = actions.start_run(db, p.id, "list", "fast", overrides=TINY, alongside=True)
    assert (first.number, theirs.number, second.number) == (1, 1, 2) and theirs.id == 2
    assert theirs.label == "run 1"


def test_a_failed_run_resumes_after_its_last_round_and_ends_as_an_uninterrupted_run(project, tmp_path, tiny_dirs,
                                                                                    monkeypatch):  # fmt: skip
    """A run that fails in round 2 of 3 (a full disk, say) is resumed by the user: a new job continues after its last
    checkpointed round, on the same inputs, and its final weights equal those of a run that never failed."""
    from safetensors.torch import load_file

    db, p, path = project
    three = {**TINY, "rounds": 3}
    run, job = actions.start_run(db, p.id, "list", "fast", seed=3, overrides=three)
    real = _fail_saving_round(monkeypatch, 2, OSError(28, "No space left on device"))
    failed = Worker(path).run_once()
    assert failed.status == "failed" and "No space left" in failed.error
    assert runq.get_run(db, run.id).status == "failed" and [m["round"] for m in runq.rounds(db, run.id)] == [0, 1]
    monkeypatch.setattr(runq, "save_round", real)
    st.add_examples(db, p.id, [{"text": "imported meanwhile"}])  # the resumed run still trains on its snapshot

    resumed, job2 = runq.resume_run(db, run.id)
    assert resumed.status == "queued" and resumed.job_id == job2.id != job.id and job2.payload == job.payload
    assert jobq.get_job(db, job.id).error == failed.error  # the failure stays on record
    with pytest.raises(st.StoreError, match="only a failed or cancelled run"):
        runq.resume_run(db, run.id)
    done = Worker(path).run_once()
    assert done.id == job2.id and done.status == "succeeded", done.error
    # round 2 reached its checkpoint before the database write failed: stored now, and round 3 trained
    assert done.result["resumed_from"] == 2
    assert [m["round"] for m in runq.rounds(db, run.id)] == [0, 1, 2, 3]
    assert runq.get_run(db, run.id).status == "succeeded"

    other_db, other, other_path = make_project(tmp_path / "uninterrupted", tiny_dirs)
    clean, _ = actions.start_run(other_db, other.id, "list", "fast", seed=3, overrides=three)
    assert Worker(other_path).run_once().status == "succeeded"
    final = lambda conn, r: load_file(  # noqa: E731
        str(Path(runq.get_run(conn, r.id).checkpoint_dir) / "round-003" / "trainable.safetensors"))  # fmt: skip
    a, b = final(db, run), final(other_db, clean)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resuming_a_run_checks_it_can_be_resumed(project):
    db, p, _ = project
    run, job = actions.start_run(db, p.id, overrides=TINY)
    with pytest.raises(st.StoreError, match="is queued: only a failed or cancelled run"):
        runq.resume_run(db, run.id)
    jobq.request_cancel(db, job.id)
    other, _ = actions.start_run(db, p.id, overrides=TINY)
    with pytest.raises(st.StoreError, match=f"run {other.number} is already queued"):
        runq.resume_run(db, run.id)
    resumed, _ = runq.resume_run(db, run.id, alongside=True)
    assert resumed.status == "queued"
    with write(db):
        db.execute("UPDATE runs SET status = 'failed', inputs = NULL WHERE id = ?", [other.id])
    with pytest.raises(st.StoreError, match="before runs kept a snapshot"):
        runq.resume_run(db, other.id)


def test_a_run_whose_checkpoints_no_longer_match_says_to_start_a_new_run(project, monkeypatch):
    """Resumed after its recorded settings changed (an upgrade, say), a run cannot continue from its checkpoints: it
    fails with what to do, and leaves them as they were."""
    import json as _json

    db, p, path = project
    run, _ = actions.start_run(db, p.id, "list", "fast", seed=3, overrides=TINY)
    real = _fail_saving_round(monkeypatch, 1, OSError(28, "No space left on device"))
    assert Worker(path).run_once().status == "failed"
    monkeypatch.setattr(runq, "save_round", real)
    progress = Path(runq.get_run(db, run.id).checkpoint_dir) / "progress.json"
    record = _json.loads(progress.read_text())
    progress.write_text(_json.dumps({**record, "fingerprint": "0123456789abcdef"}))  # as if written by other settings
    runq.resume_run(db, run.id)
    again = Worker(path).run_once()
    assert again.status == "failed" and "Run 1 cannot continue from its checkpoints" in again.error
    assert "Start a new run with the same settings" in again.error
    assert _json.loads(progress.read_text())["fingerprint"] == "0123456789abcdef"  # nothing overwritten
    assert runq.get_run(db, run.id).status == "failed"
