import pytest
import torch

from list_core.backbone import load_backbone
from list_core.baselines import run_method
from list_core.config import AdapterConfig, TrainConfig, preset
from list_core.data import DataError
from list_core.events import Cancelled
from list_core.model import ListModel
from list_core.prompts import Prompt, PromptError
from list_core.self_training import TaskData, run_list
from tests.conftest import DEVICE

PROMPT = Prompt("{text} It was {mask} .", ("bad", "great"))
POS = ["great film", "a great great movie", "good and great", "great acting"]
NEG = ["bad film", "a bad bad movie", "awful and bad", "bad acting"]
POOL = [f"{w} {x}" for w in ("great", "bad", "good", "awful") for x in ("movie", "film", "acting", "story", "pacing")]


def die_in_round_2(e) -> None:
    """A callback that kills the run in round 2's meta steps, as if the process died mid-round."""
    if e.round == 2 and e.stage == "meta":
        raise KeyboardInterrupt


def tiny_cfg(**kw) -> TrainConfig:
    base = dict(
        adapter=AdapterConfig(bottleneck=4),
        teacher_epochs=2,
        teacher_lr=1e-3,
        rounds=2,
        student_steps=6,
        student_lr=1e-3,
        student_batch_size=4,
        tau=0.0,
        finetune_epochs=1,
        finetune_lr=1e-3,
        max_length=32,
        seed=7,
    )
    return TrainConfig(**{**base, **kw})


def task(**kw) -> TaskData:
    base = dict(
        labels=["negative", "positive"],
        gold_rows=[{"text": t} for t in NEG + POS],
        gold_labels=[0] * 4 + [1] * 4,
        unlabeled_rows=[{"text": t} for t in POOL],
        unlabeled_ids=[f"u{i}" for i in range(len(POOL))],
        eval_rows=[{"text": "great story"}, {"text": "bad story"}],
        eval_labels=[1, 0],
    )
    return TaskData(**{**base, **kw})


def test_end_to_end_all_stages(bert):
    events = []
    res = run_list(bert, PROMPT, task(), tiny_cfg(), callback=events.append)
    stages = {e.stage for e in events}
    assert {"setup", "teacher", "pseudo_label", "kd_warmup", "meta", "finetune", "round_end", "done"} <= stages
    assert len(res.rounds) == 2 and len(res.tables) == 2
    for m in res.rounds:
        assert sum(m.pseudo_label_counts.values()) == len(POOL)
        assert 0 <= m.eval_accuracy <= 1 and m.weights.count == 2 * 4  # 2 meta steps x batch 4
        assert m.warmup_steps == 4
    row = res.tables[1][0]
    assert set(row.to_dict()) == {"index", "id", "probs", "label", "confidence", "weight", "flipped"}
    assert abs(sum(row.probs) - 1) < 1e-4 and row.id == "u0"
    assert not any(r.flipped for r in res.tables[0])  # nothing to flip from in round 1
    weights = [r.weight for r in res.tables[1] if r.weight is not None]
    assert weights and all(w >= 0 for w in weights)
    probs = res.predict_proba([{"text": "great"}])
    assert probs.shape == (1, 2)


def test_same_seed_same_result(bert):
    a = run_list(bert, PROMPT, task(), tiny_cfg(rounds=1)).model.trainable_state()
    b = run_list(bert, PROMPT, task(), tiny_cfg(rounds=1)).model.trainable_state()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_after_kill_matches_uninterrupted(bert, tmp_path):
    cfg = tiny_cfg(rounds=3)
    full = run_list(bert, PROMPT, task(), cfg).model.trainable_state()

    def kill_in_round_2(e):
        if e.round == 2 and e.stage == "meta":
            raise KeyboardInterrupt  # as if the process died mid-round

    with pytest.raises(KeyboardInterrupt):
        run_list(bert, PROMPT, task(), cfg, callback=kill_in_round_2, checkpoint_dir=tmp_path)
    assert (tmp_path / "round-001").exists() and not (tmp_path / "round-002").exists()
    events = []
    resumed = run_list(bert, PROMPT, task(), cfg, callback=events.append, checkpoint_dir=tmp_path)
    assert any(e.stage == "resume" and e.round == 1 for e in events)
    assert not any(e.stage == "teacher" for e in events)
    assert len(resumed.rounds) == 3
    state = resumed.model.trainable_state()
    assert all(torch.equal(state[k], full[k]) for k in full)


def test_resume_refuses_a_different_run(bert, tmp_path):
    run_list(bert, PROMPT, task(), tiny_cfg(rounds=1), checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="different run"):
        run_list(bert, PROMPT, task(), tiny_cfg(rounds=1, seed=8), checkpoint_dir=tmp_path)


def test_cancel_between_steps(bert):
    calls = {"n": 0}

    def cancel():
        calls["n"] += 1
        return calls["n"] > 3

    with pytest.raises(Cancelled):
        run_list(bert, PROMPT, task(), tiny_cfg(), should_cancel=cancel)


def test_empty_pool_runs_prompt_finetuning_with_warning(bert):
    events = []
    res = run_list(bert, PROMPT, task(unlabeled_rows=[], unlabeled_ids=None), tiny_cfg(), callback=events.append)
    assert res.rounds == [] and any(e.stage == "warning" and "empty" in e.message for e in events)


@pytest.mark.parametrize(
    "changes, err, match",
    [
        ({"gold_labels": [0] * 8}, DataError, "no gold example for class.*positive"),
        ({"gold_rows": [{"text": ""}] + [{"text": "x"}] * 7}, DataError, "gold row 0"),
        ({"unlabeled_rows": [{"text": "  "}]}, DataError, "unlabeled row 0"),
        ({"labels": ["a", "b", "c"]}, DataError, "3 labels"),
    ],
)
def test_bad_input_fails_before_training(bert, changes, err, match):
    events = []
    with pytest.raises(err, match=match):
        run_list(bert, PROMPT, task(**changes), tiny_cfg(), callback=events.append)
    assert not any(e.stage == "teacher" for e in events)


def test_multi_token_label_word_fails_before_training(roberta):
    with pytest.raises(PromptError, match="'movie' is 3 tokens"):
        run_list(roberta, Prompt("{text} It was {mask} .", ("bad", "movie")), task(), tiny_cfg())


@pytest.mark.parametrize("method", ["zero-shot", "linear-probe", "self-train-probe", "classic", "prompt", "list"])
def test_every_method_predicts(bert, method):
    res = run_method(method, bert, PROMPT, task(), tiny_cfg(rounds=1))
    p = res.predict_proba([{"text": "great"}, {"text": "bad"}])
    assert p.shape == (2, 2) and torch.allclose(p.sum(-1), torch.ones(2), atol=1e-5)


def test_headless_backbone_trains_with_similarity_head(tiny_headless_dir):
    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    events = []
    res = run_list(bb, PROMPT, task(), tiny_cfg(rounds=1), callback=events.append)
    assert res.model.head_kind == "similarity"
    assert "newly initialised" in next(e for e in events if e.stage == "setup").message
    # the fast preset's teacher is fitted on frozen features: round 0's time holds that fit and its pool labels
    # (it said "0 s": only the gold epochs, which a fitted teacher skips)
    fit = run_list(bb, PROMPT, task(), tiny_cfg(rounds=1, probe_self_train=1))
    fitted = {k: v for k, v in fit.stage_seconds.items() if k in ("probe", "pool_labels")}
    assert "probe" in fitted and fit.teacher.seconds == fitted  # no "gold epochs 0" beside the fit: none ran
    tuned = run_list(bb, PROMPT, task(), tiny_cfg(rounds=1))  # a teacher tuned on the gold labels shows its epochs
    assert "teacher" in tuned.teacher.seconds


def test_presets_and_validation():
    assert preset("paper").teacher_lr == 5e-6 and preset("paper").rounds == 6 and preset("paper").warmup_steps == 600
    assert preset("fast").student_steps < preset("paper").student_steps
    with pytest.raises(ValueError, match="tau=1.5"):
        preset("fast", tau=1.5)
    with pytest.raises(ValueError, match="preset='huge'"):
        preset("huge")
    cfg = preset("fast")
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_headless_probe_self_trained_on_the_pool(tiny_headless_dir):
    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    plain = run_list(bb, PROMPT, task(), tiny_cfg(head="probe", rounds=1, teacher_epochs=0))
    events = []
    stp = run_list(bb, PROMPT, task(), tiny_cfg(head="probe", rounds=1, probe_self_train=2), callback=events.append)
    assert "probe" in stp.stage_seconds and stp.model.head_kind == "probe"
    # the self-trained probe is the teacher: no gold-only teacher steps although teacher_epochs=2
    assert "fitted probe head" in next(e.message for e in events if e.stage == "teacher")
    assert "self-trained 2x on" in next(e.message for e in events if e.stage == "probe")
    assert not [e for e in events if e.stage == "teacher" and e.total]
    # the self-trained init differs from the gold-only one (it saw the pool's frozen features)
    w_plain, w_stp = plain.model.head._initial["linear.weight"], stp.model.head._initial["linear.weight"]
    assert not torch.allclose(w_plain, w_stp)
    with pytest.raises(ValueError, match="probe_self_train=-1"):
        tiny_cfg(probe_self_train=-1)


def test_a_trained_model_survives_every_other_method_on_its_backbone(bert):
    """Adapters are owned by name: running every other method, the diversity embedding and a folded copy on the
    same backbone object leaves a finished run's predictions unchanged bit for bit."""
    from list_core.baselines import embed
    from list_core.model import fold_adapters

    rows = [{"text": t} for t in POOL[:6]]
    first = run_list(bert, PROMPT, task(), tiny_cfg(rounds=1))
    before = first.predict_proba(rows)
    others = [run_method(m, bert, PROMPT, task(), tiny_cfg(rounds=1, seed=3)) for m in
              ("zero-shot", "linear-probe", "self-train-probe", "classic", "prompt", "list")]  # fmt: skip
    embed(bert, Prompt("{text} {mask}", ("a", "b")), rows)
    fold_adapters(first.model)
    assert torch.equal(first.predict_proba(rows), before)
    assert not torch.equal(others[-1].predict_proba(rows), before)  # the other LiST run is a different model


def test_a_reloaded_run_keeps_why_its_head_was_chosen(bert, tmp_path):
    """Issue 12.9: the model card of an exported head="auto" run said "head='prompt' was requested"."""
    from list_core.trained import load_trained

    cfg = tiny_cfg(rounds=1)
    assert cfg.head == "auto"
    res = run_list(bert, PROMPT, task(), cfg, checkpoint_dir=tmp_path)
    again = load_trained(bert, PROMPT, res.model.head_kind, cfg, tmp_path)
    assert again.head_reason == res.model.head_reason and again.head_reason.startswith("head=auto chose")


def test_cancel_stops_a_long_forward_pass_between_batches(bert):
    """Issue 13.8: cancel was not noticed inside pseudo-labeling or prediction (97 s on a 3,000-text pool). Inside
    `cancellable`, every batched forward pass checks between batches."""
    from list_core.events import cancellable
    from list_core.model import ListModel

    model = ListModel(bert, PROMPT, tiny_cfg())
    enc = model.encode([{"text": t} for t in POOL])  # 20 texts: 10 batches of 2
    asked = {"n": 0}

    def stop_after_three_batches() -> bool:
        asked["n"] += 1
        return asked["n"] > 3

    with cancellable(stop_after_three_batches), pytest.raises(Cancelled):
        model.logits(enc, batch_size=2)
    assert asked["n"] == 4  # stopped at the 4th batch, not after all 10
    assert model.logits(enc, batch_size=2).shape == (20, 2)  # outside the block nothing is checked


def test_a_run_keeps_its_best_round_on_the_evaluation_split():
    """Issue 12.6: the export was the last round even when an earlier one scored better on the evaluation split,
    and nothing said so."""
    from list_core.records import RoundRecord
    from list_core.trained import choose_round

    rounds = [RoundRecord(round=1, eval_accuracy=0.80), RoundRecord(round=2, eval_accuracy=0.84),
              RoundRecord(round=3, eval_accuracy=0.82)]  # fmt: skip
    r, why = choose_round(rounds)
    assert r == 2 and "84.0% against 82.0% for the last round 3" in why and "optimistic" in why
    tie = [RoundRecord(round=1, eval_accuracy=0.9), RoundRecord(round=2, eval_accuracy=0.9)]
    assert choose_round(tie)[0] == 2 and "also the best" in choose_round(tie)[1]
    assert choose_round([RoundRecord(round=1), RoundRecord(round=2)]) == (
        2, "the last round (no evaluation split to choose by)")  # fmt: skip


def test_the_teacher_counts_when_choosing_the_round_to_keep():
    """A teacher that beats every round on the evaluation split is kept (round 0), and the reason says it is the
    teacher; a round that ties with it wins (the later)."""
    from list_core.records import RoundRecord
    from list_core.trained import choose_round

    rounds = [RoundRecord(round=0, eval_accuracy=0.72), RoundRecord(round=1, eval_accuracy=0.68),
              RoundRecord(round=2, eval_accuracy=0.70)]  # fmt: skip
    r, why = choose_round(rounds)
    assert r == 0 and why.startswith("the teacher (round 0), best on the evaluation split: 72.0% against 70.0%")
    rounds[2] = RoundRecord(round=2, eval_accuracy=0.72)
    assert choose_round(rounds)[0] == 2


@pytest.mark.parametrize("head", ["prompt", "similarity"])
def test_the_kept_teacher_loads_exactly(head, tiny_dirs, tiny_headless_dir, tmp_path):
    """Round 0 of a checkpoint is the teacher itself (the fitted similarity head on identity adapters; the
    prompt-tuned MLM head): loaded back, it gives the teacher's logits."""
    from list_core.trained import load_trained

    path = tiny_dirs["bert"] if head == "prompt" else tiny_headless_dir
    cfg = tiny_cfg(rounds=1, head=head)
    seen = {}

    def at_round_end(e):
        if e.stage == "round_end" and e.round == 0:
            seen["teacher"] = e.model.logits(e.model.encode(POOL_ROWS)).clone()

    run_list(load_backbone(str(path), device="cpu"), PROMPT, task(), cfg, callback=at_round_end,
             checkpoint_dir=tmp_path)  # fmt: skip
    model = load_trained(load_backbone(str(path), device="cpu"), PROMPT, head, cfg, tmp_path, 0)
    assert torch.allclose(model.logits(model.encode(POOL_ROWS)), seen["teacher"], atol=1e-5)


POOL_ROWS = [{"text": t} for t in POOL]


def test_a_resumed_probe_run_reuses_the_probe_fit(bert, tmp_path, monkeypatch):
    """Issue 13.8: every resume repeated the full-pool probe fit. The fit is kept with round 0 and reused; the
    resumed run ends exactly where the uninterrupted one does."""
    from list_core.heads import ProbeHead

    cfg = tiny_cfg(rounds=2, head="probe", probe_self_train=2)
    full = run_list(bert, PROMPT, task(), cfg).model.trainable_state()

    def kill_in_round_2(e):
        if e.round == 2 and e.stage == "meta":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_list(bert, PROMPT, task(), cfg, callback=kill_in_round_2, checkpoint_dir=tmp_path)
    fits = []
    real_fit = ProbeHead.fit
    monkeypatch.setattr(ProbeHead, "fit", lambda self, *a, **k: fits.append(1) or real_fit(self, *a, **k))
    events = []
    resumed = run_list(bert, PROMPT, task(), cfg, callback=events.append, checkpoint_dir=tmp_path)
    assert fits == [] and any(e.stage == "probe" and "from the checkpoint" in e.message for e in events)
    state = resumed.model.trainable_state()
    assert all(torch.equal(state[k], full[k]) for k in full)


def test_expected_calibration_error_by_hand():
    """Issue 12.6: ECE per round on the evaluation split. Two bins here: confidence 0.9 (2 examples, 1 right: gap
    0.4) and 0.6 (2 examples, both right: gap 0.4); ECE = 0.5 * 0.4 + 0.5 * 0.4 = 0.4."""
    from list_core.calibration import expected_calibration_error

    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    assert expected_calibration_error(probs, [0, 1, 1, 1]) == pytest.approx(0.4)
    assert expected_calibration_error(torch.tensor([[1.0, 0.0]]), [0]) == pytest.approx(0.0)


def test_each_round_reports_its_calibration_on_the_evaluation_split(bert):
    res = run_list(bert, PROMPT, task(), tiny_cfg())
    assert all(0.0 <= r.eval_ece <= 1.0 for r in [res.teacher, *res.rounds])


def test_the_readme_library_example_runs(tiny_dirs, tmp_path, monkeypatch):
    """README's library example, as written (on the tiny model instead of the default backbone): it once failed
    with one gold label for two classes."""
    import re
    from pathlib import Path

    import list_core

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"## The library\n.*?```python\n(.*?)```", readme, re.S).group(1)
    monkeypatch.setattr(list_core, "load_backbone", lambda *a, **k: load_backbone(str(tiny_dirs["bert"])))
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    # as written, with the fast preset's long loops shortened (the example's API, not its training time, is tested)
    short = 'preset("fast", teacher_epochs=1, rounds=1, student_steps=4, finetune_epochs=1)'
    assert 'preset("fast")' in code
    code = code.replace("callback=print", "callback=None").replace('preset("fast")', short)
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["result"].predict_proba([{"text": "a fine film"}]).shape == (1, 2)


def test_a_checkpoint_is_written_only_while_its_writer_owns_the_run(bert, tmp_path):
    """Issue 13: every write a job makes is fenced by the attempt that owns it, checkpoint files included."""
    from list_core.checkpoint import RunCheckpoint, fenced

    owner = {"still": True}

    def lose_the_run_in_round_2(e):
        if e.stage == "round_end" and e.round == 1:
            owner["still"] = False  # another worker took the job over while this one trained round 2

    with fenced(lambda: owner["still"]), pytest.raises(Cancelled, match="no longer owns"):
        run_list(bert, PROMPT, task(), tiny_cfg(rounds=3), callback=lose_the_run_in_round_2, checkpoint_dir=tmp_path)
    ck = RunCheckpoint.read(tmp_path)
    assert ck.completed_rounds() == [0, 1]  # round 2 was trained but never moved into place
    assert not list(tmp_path.glob(".round-*")) and ck.load_round(1)[1]["metrics"]["round"] == 1
    # the new owner resumes from round 1 as if the old one had never run
    res = run_list(bert, PROMPT, task(), tiny_cfg(rounds=3), checkpoint_dir=tmp_path)
    assert [r.round for r in res.rounds] == [1, 2, 3]


def test_noisy_student_reads_pool_texts_with_tokens_dropped_and_gold_texts_whole(bert, monkeypatch):
    from list_core import training

    seen = []
    original = training.drop_tokens

    def spy(batch, p, generator):
        out = original(batch, p, generator)
        seen.append((int(batch["attention_mask"].sum()), int(out["attention_mask"].sum()), p))
        return out

    monkeypatch.setattr(training, "drop_tokens", spy)
    cfg = tiny_cfg(student_token_dropout=0.5, rounds=1, student_steps=6)
    res = run_list(bert, PROMPT, task(), cfg)
    assert len(res.rounds) == 1
    assert len(seen) == 6 and all(p == 0.5 for *_, p in seen)  # every student step, warm-up and meta alike
    assert sum(b - a for b, a, _ in seen) > 0  # tokens were hidden
    with pytest.raises(ValueError, match="student_token_dropout=0.95"):
        tiny_cfg(student_token_dropout=0.95)


def test_uda_student_adds_a_consistency_loss_on_every_step(bert, monkeypatch):
    """With consistency_weight every student step (warm-up and meta) adds the consistency loss and reports it;
    without it nothing is computed or drawn for it, so the default run is unchanged."""
    from list_core import training

    calls = []
    original = training.consistency_backward
    monkeypatch.setattr(training, "consistency_backward", lambda *a: calls.append(1) or original(*a))
    events = []
    cfg = tiny_cfg(rounds=1, student_steps=10, consistency_weight=1.0, consistency_dropout=0.5)
    run_list(bert, PROMPT, task(), cfg, callback=events.append)
    steps = [e for e in events if e.stage in ("kd_warmup", "meta")]
    assert len(calls) == 10 and steps and all("consistency" in e.losses for e in steps)
    assert any(e.losses["consistency"] > 0 for e in steps)
    calls.clear()
    events.clear()
    run_list(bert, PROMPT, task(), tiny_cfg(rounds=1, student_steps=10), callback=events.append)
    assert not calls and not any("consistency" in e.losses for e in events if e.stage in ("kd_warmup", "meta"))
    with pytest.raises(ValueError, match="consistency_dropout=0.95"):
        tiny_cfg(consistency_dropout=0.95)
    with pytest.raises(ValueError, match="consistency_weight=-1"):
        tiny_cfg(consistency_weight=-1.0)


def test_consistency_gradient_comes_only_from_confident_pool_texts(bert):
    """`consistency_backward` adds gradient when the student's clean predictions are confident (tau=0: all are)
    and none when no prediction clears tau."""
    from list_core.model import ListModel
    from list_core.training import consistency_backward

    model = ListModel(bert, PROMPT, head="prompt", adapter=AdapterConfig(bottleneck=4))
    pool = model.encode(task().unlabeled_rows)
    for tau, expect_grad in ((0.0, True), (0.999999, False)):
        cfg = tiny_cfg(consistency_weight=2.0, consistency_dropout=0.5, tau=tau)
        model.zero_grad(set_to_none=True)
        loss = consistency_backward(model, pool, cfg, torch.Generator().manual_seed(0))
        grads = [p.grad for p in model.trainable_named_parameters().values()]
        total = sum(float(g.abs().sum()) for g in grads if g is not None)
        assert (loss > 0) == expect_grad and (total > 0) == expect_grad


def test_students_start_from_the_teacher_when_the_prompt_looks_wrong(tiny_headless_dir, tmp_path):
    """A prompt whose label words are attached to the wrong classes adds nothing to the teacher, but each student
    re-started from its verbalisers and had to unlearn them (mr K=10 s2 with the words mixed up: 4.2 below the
    teacher). Such students start from the teacher's fit; with a right prompt they still start from the
    verbalisers; a resumed run starts them from the same fit."""
    from list_core.checkpoint import RunCheckpoint

    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    cfg = tiny_cfg(rounds=2, probe_self_train=1)
    right = run_list(bb, PROMPT, task(), cfg)
    assert right.teacher.prompt_weight > 0
    start = right.model.head.initial_state()["prototypes"]
    assert torch.equal(start, right.model.head.verbaliser_prototypes)
    assert right.teacher.students_start == "verbalisers"  # what the Rounds page reports

    swapped = Prompt(PROMPT.template, ("great", "bad"))  # the tiny model reads the words: every gold label wrong
    events = []
    wrong = run_list(bb, swapped, task(), cfg, callback=events.append, checkpoint_dir=tmp_path / "full")
    assert wrong.teacher.prompt_gold_accuracy == 0.0 and wrong.teacher.prompt_weight == 0.0
    assert wrong.teacher.students_start == "teacher"
    assert any(e.stage == "warning" and "starts from the teacher's fit" in e.message for e in events)
    ckpt = RunCheckpoint.read(tmp_path / "full")
    teacher_state, _ = ckpt.load_round(0)
    init = {k.removeprefix("student_init."): v for k, v in ckpt.load_tensors(0).items() if "student_init." in k}
    assert init and all(torch.equal(init[k], teacher_state[f"head.{k}"]) for k in init)
    start = wrong.model.head.initial_state()
    assert all(torch.equal(start[k], init[k]) for k in init)
    assert not torch.allclose(start["prototypes"], wrong.model.head.verbaliser_prototypes)

    def kill_in_round_2(e):
        if e.round == 2 and e.stage == "meta":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_list(bb, swapped, task(), cfg, callback=kill_in_round_2, checkpoint_dir=tmp_path / "killed")
    resumed = run_list(load_backbone(str(tiny_headless_dir), device="cpu"), swapped, task(), cfg,
                       checkpoint_dir=tmp_path / "killed").model.trainable_state()  # fmt: skip
    full = wrong.model.trainable_state()
    assert all(torch.equal(resumed[k], full[k]) for k in full)


def test_students_can_be_told_to_start_from_the_teachers_fit(tiny_headless_dir):
    """`student_start="teacher"`: with a right prompt too, every student's head starts as the teacher's fit (no
    warning: nothing is wrong), recorded in round 0."""
    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    events = []
    run = run_list(bb, PROMPT, task(), tiny_cfg(rounds=1, probe_self_train=1, student_start="teacher"),
                   callback=events.append)  # fmt: skip
    assert run.teacher.prompt_weight > 0 and run.teacher.students_start == "teacher"
    start = run.model.head.initial_state()["prototypes"]
    assert not torch.equal(start, run.model.head.verbaliser_prototypes)  # the teacher's fit, not the verbalisers
    assert not any(e.stage == "warning" for e in events)
    with pytest.raises(ValueError, match="student_start='fresh'"):
        tiny_cfg(student_start="fresh")


def test_identity_student_adapters_make_a_student_from_the_teacher_start_as_the_teacher(tiny_headless_dir):
    """`student_adapters="identity"` with `student_start="teacher"`: a student that takes no step is the teacher
    (same logits); with the paper's random adapters it is not."""
    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    gold_rows = [{"text": x} for x in NEG[:2] + POS[:2]]
    finals, teachers = {}, {}
    for kind in ("random", "identity"):
        cfg = tiny_cfg(rounds=1, probe_self_train=1, student_start="teacher", student_adapters=kind, student_steps=0,
                       finetune_epochs=0, adapter=AdapterConfig(bottleneck=4, sigma=0.3))  # fmt: skip

        def keep_teacher(e, kind=kind):
            if e.stage == "round_end" and e.round == 0:
                teachers[kind] = e.model.logits(e.model.encode(gold_rows), 8)

        run = run_list(bb, PROMPT, task(), cfg, callback=keep_teacher)
        finals[kind] = run.model.logits(run.model.encode(gold_rows), 8)
    assert torch.allclose(finals["identity"], teachers["identity"], atol=1e-5)
    assert not torch.allclose(finals["random"], teachers["random"], atol=1e-3)
    assert torch.equal(teachers["random"], teachers["identity"])  # the knob touches the students only
    with pytest.raises(ValueError, match="student_adapters='zero'"):
        tiny_cfg(student_adapters="zero")


def test_class_balance_reaches_the_teachers_fit_and_changes_it(tiny_headless_dir, monkeypatch):
    """`class_balance=True`: the prompt-aware teacher of a run fits balanced (and off, not); with unbalanced gold
    labels the fitted teacher differs."""
    import list_core.model as M

    seen = []
    real = M.prompt_aware_probe
    monkeypatch.setattr(M, "prompt_aware_probe", lambda *a, **k: seen.append(k.get("balanced")) or real(*a, **k))
    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    t = task(gold_rows=[{"text": x} for x in NEG + POS[:1]], gold_labels=[0, 0, 0, 0, 1])  # 4 to 1
    runs = {b: run_list(bb, PROMPT, t, tiny_cfg(rounds=0, probe_self_train=1, class_balance=b)) for b in (False, True)}
    assert seen == [False, True]
    assert not torch.equal(runs[False].model.head.prototypes, runs[True].model.head.prototypes)


def test_gold_class_balance_weighs_the_gold_tuning_only_when_the_labels_are_uneven(tiny_headless_dir):
    """`gold_class_balance`: with 4 gold labels to 4 every weight is 1, so the run is the same to the bit; with 4 to 1
    the students' gold tuning weighs the lone positive 4 times as much, and the final model differs (the teacher,
    fitted before any gold tuning, does not)."""
    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    cfg = tiny_cfg(rounds=1, probe_self_train=1, finetune_epochs=2)
    for t, same in (
        (task(), True),
        (task(gold_rows=[{"text": x} for x in NEG + POS[:1]], gold_labels=[0] * 4 + [1]), False),
    ):
        off, on = (run_list(bb, PROMPT, t, cfg.with_(gold_class_balance=b)) for b in (False, True))
        enc = off.model.encode(POOL_ROWS)
        assert torch.equal(off.model.logits(enc), on.model.logits(enc)) == same
        assert off.teacher.to_dict()["gold_accuracy"] == on.teacher.to_dict()["gold_accuracy"]


def test_toward_teacher_interpolates_weights_and_keeps_an_identity_teachers_adapter_rule():
    """WiSE-FT by hand: a head weight 2 -> 0 at share .25 is 1.5; with the teacher's W_up = 0 the student's W_down is
    kept and W_up goes 4 -> 3, so the adapter's change W_up W_down is exactly 75% of the student's; against a
    teacher whose W_up is not 0 both projections are interpolated."""
    from list_core.training import toward_teacher

    student = {
        "head.w": torch.tensor([2.0]),
        "a.down.weight": torch.tensor([[2.0]]),
        "a.up.weight": torch.tensor([[4.0]]),
    }
    identity = {
        "head.w": torch.tensor([0.0]),
        "a.down.weight": torch.tensor([[9.0]]),
        "a.up.weight": torch.tensor([[0.0]]),
    }
    mixed = toward_teacher(student, identity, 0.25)
    assert mixed["head.w"].item() == 1.5 and mixed["a.down.weight"].item() == 2.0 and mixed["a.up.weight"].item() == 3.0
    assert (mixed["a.up.weight"] @ mixed["a.down.weight"]).item() == 0.75 * 8.0
    trained = {**identity, "a.up.weight": torch.tensor([[1.0]])}
    mixed = toward_teacher(student, trained, 0.5)
    assert mixed["a.down.weight"].item() == 5.5 and mixed["a.up.weight"].item() == 2.5
    assert all(torch.equal(toward_teacher(student, identity, 0.0)[k], student[k]) for k in student)


def test_final_mix_moves_the_last_round_back_to_the_teacher_and_survives_a_resume(tiny_headless_dir, tmp_path):
    """`final_mix`: the last round's model (and its record and checkpoint) is the mix of the teacher (round 0) and
    the student that round trained; earlier rounds are untouched; a resumed run ends on the same weights."""
    from list_core.checkpoint import RunCheckpoint
    from list_core.training import toward_teacher

    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    base = dict(rounds=2, probe_self_train=1, student_start="teacher")
    plain = run_list(bb, PROMPT, task(), tiny_cfg(**base), checkpoint_dir=tmp_path / "plain")
    events = []
    mixed = run_list(bb, PROMPT, task(), tiny_cfg(**base, final_mix=0.5), callback=events.append,
                     checkpoint_dir=tmp_path / "mixed")  # fmt: skip
    teacher = RunCheckpoint.read(tmp_path / "plain").load_round(0)[0]
    expected = toward_teacher(plain.model.trainable_state(), teacher, 0.5)
    state = mixed.model.trainable_state()
    assert all(torch.equal(state[k], expected[k]) for k in expected)
    assert not all(torch.equal(state[k], plain.model.trainable_state()[k]) for k in state)
    saved = RunCheckpoint.read(tmp_path / "mixed").load_round(2)[0]
    assert all(torch.equal(saved[k], state[k]) for k in state)  # the checkpoint and export carry the mix
    assert RunCheckpoint.read(tmp_path / "mixed").load_round(1)[0].keys() == state.keys()
    r1 = RunCheckpoint.read(tmp_path / "plain").load_round(1)[0]
    m1 = RunCheckpoint.read(tmp_path / "mixed").load_round(1)[0]
    assert all(torch.equal(r1[k], m1[k]) for k in r1)  # round 1 is not mixed
    assert any("moved 50% of the way back" in e.message for e in events)
    assert mixed.rounds[-1].final_mix == 0.5 and mixed.rounds[0].final_mix is None  # the Rounds page shows it
    assert plain.rounds[-1].final_mix is None

    def kill_in_round_2(e):
        if e.round == 2 and e.stage == "meta":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_list(bb, PROMPT, task(), tiny_cfg(**base, final_mix=0.5), callback=kill_in_round_2,
                 checkpoint_dir=tmp_path / "killed")  # fmt: skip
    resumed = run_list(load_backbone(str(tiny_headless_dir), device="cpu"), PROMPT, task(),
                       tiny_cfg(**base, final_mix=0.5), checkpoint_dir=tmp_path / "killed").model.trainable_state()  # fmt: skip
    assert all(torch.equal(resumed[k], state[k]) for k in state)
    with pytest.raises(ValueError, match="final_mix=1.5"):
        tiny_cfg(final_mix=1.5)


def test_final_mix_leaves_a_tuned_teacher_and_its_fresh_students_unmixed(tiny_dirs):
    """With an MLM head the teacher's adapters are tuned from one random draw and each student's from another, so
    their weights lie on no common path: `final_mix` is not applied there, and the run says so."""
    runs = []
    for mix in (0.0, 0.5):
        events = []
        bb = load_backbone(str(tiny_dirs["roberta"]), device="cpu")
        runs.append(run_list(bb, PROMPT, task(), tiny_cfg(final_mix=mix), callback=events.append))
    plain, mixed = (r.model.trainable_state() for r in runs)
    assert all(torch.equal(plain[k], mixed[k]) for k in plain)
    assert any("final_mix=0.5 not applied" in e.message for e in events)
    assert runs[1].rounds[-1].final_mix is None


def test_student_steps_stop_at_the_passes_cap_and_the_round_says_so(bert):
    events = []
    # 20 pool texts, batch 4: 2 passes are 10 steps of the 40 asked for (6 of them warm-up)
    res = run_list(bert, PROMPT, task(), tiny_cfg(rounds=1, student_steps=40, student_max_passes=2.0),
                   callback=events.append)  # fmt: skip
    steps = [e for e in events if e.stage in ("kd_warmup", "meta")]
    assert {e.total for e in steps} == {10} and max(e.step for e in steps) == 10
    m = res.rounds[0]
    assert (m.student_steps, m.student_passes, m.warmup_steps) == (10, 2.0, 6)
    assert m.weights.count == 4 * 4  # 4 meta steps x batch 4
    uncapped = run_list(bert, PROMPT, task(), tiny_cfg(rounds=1, student_steps=6)).rounds[0]
    assert (uncapped.student_steps, uncapped.student_passes) == (6, 1.2)


FITTED = dict(probe_self_train=1, student_start="teacher")  # a sentence encoder's fitted teacher, as in `fast`


def test_the_final_model_mixes_in_a_lexical_view_fitted_on_the_last_rounds_pseudo_labels(tiny_headless_dir):
    from list_core.lexical import LexicalHead

    bb = load_backbone(str(tiny_headless_dir), device=DEVICE)
    events = []
    res = run_list(bb, PROMPT, task(), tiny_cfg(rounds=2, lexical_weight=0.25, **FITTED), callback=events.append)
    model, last = res.model, res.rounds[-1]
    assert model.lexical is not None and model.lexical.weight == 0.25
    assert (last.lexical_weight, last.lexical_vocabulary) == (0.25, len(model.lexical.vocabulary))
    assert res.rounds[0].lexical_weight is None  # only the final model has one
    assert any("mixed with a lexical view" in (e.message or "") for e in events if e.stage == "finetune")
    # fitted on the gold labels and the last round's pseudo-labels (the table keeps them to 6 decimals)
    q = torch.tensor([row.probs for row in res.tables[-1]], dtype=torch.float64).numpy()
    again = LexicalHead.fit(POOL, q, NEG + POS, [0] * 4 + [1] * 4, 0.25, seed=7)
    assert again.vocabulary == model.lexical.vocabulary
    torch.testing.assert_close(torch.from_numpy(again.coef), torch.from_numpy(model.lexical.coef), atol=1e-4, rtol=0)
    # the final probabilities: (1 - w) x the model's own + w x the lexical view's, by hand
    rows = [{"text": t} for t in ("great story", "bad pacing", "an awful awful film")]
    mixed = res.predict_proba(rows)
    lexical, model.lexical = model.lexical, None
    own = res.predict_proba(rows)
    model.lexical = lexical
    by_hand = 0.75 * own + 0.25 * lexical.proba([r["text"] for r in rows])
    torch.testing.assert_close(mixed, by_hand, atol=1e-5, rtol=0)
    assert last.eval_accuracy == float(
        (res.predict_proba(task().eval_rows).argmax(-1) == torch.tensor([1, 0])).float().mean()
    )
    # it travels with the trainable state: a fresh model loading it predicts the same
    fresh = ListModel(bb, PROMPT, "auto", AdapterConfig(bottleneck=4), max_length=32)
    fresh.load_trainable_state(model.trainable_state())
    torch.testing.assert_close(fresh.predict_proba(rows), mixed, atol=0, rtol=0)
    plain = run_list(bb, PROMPT, task(), tiny_cfg(rounds=1, **FITTED)).model
    assert plain.lexical is None and not any(k.startswith("lexical.") for k in plain.trainable_state())


def test_the_lexical_view_reads_the_whole_pool_when_the_last_round_drew_part_of_it(tiny_headless_dir):
    from list_core.lexical import LexicalHead
    from list_core.losses import soft_labels

    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    res = run_list(bb, PROMPT, task(), tiny_cfg(rounds=1, unlabeled_limit=8, lexical_weight=0.5, **FITTED))
    model, table = res.model, res.tables[-1]
    drawn = [row.index for row in table]
    assert len(drawn) == 8 and model.lexical is not None and res.rounds[-1].seconds["lexical"] >= 0
    rest = [i for i in range(len(POOL)) if i not in set(drawn)]
    lexical, model.lexical = model.lexical, None  # the final model alone labels the texts the round did not draw
    own = soft_labels(model.logits(model.encode([{"text": POOL[i]} for i in rest])))
    q = torch.cat([torch.tensor([row.probs for row in table], dtype=torch.float64), own.double()]).numpy()
    again = LexicalHead.fit([POOL[i] for i in drawn + rest], q, NEG + POS, [0] * 4 + [1] * 4, 0.5, seed=7)
    assert again.vocabulary == lexical.vocabulary
    torch.testing.assert_close(torch.from_numpy(again.coef), torch.from_numpy(lexical.coef), atol=1e-4, rtol=0)


def test_a_run_with_a_lexical_view_resumes_to_the_uninterrupted_result(tiny_headless_dir, tmp_path):
    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    cfg = tiny_cfg(rounds=2, lexical_weight=0.5, **FITTED)
    full = run_list(bb, PROMPT, task(), cfg).model.trainable_state()
    with pytest.raises(KeyboardInterrupt):
        run_list(bb, PROMPT, task(), cfg, callback=die_in_round_2, checkpoint_dir=tmp_path)
    resumed = run_list(bb, PROMPT, task(), cfg, checkpoint_dir=tmp_path).model
    state = resumed.trainable_state()
    assert set(state) == set(full) and any(k.startswith("lexical.") for k in full)
    assert all(torch.equal(state[k], full[k]) for k in full)
    done = run_list(bb, PROMPT, task(), cfg, checkpoint_dir=tmp_path).model  # finished: read back whole
    assert done.lexical is not None and done.lexical.vocabulary == resumed.lexical.vocabulary


def test_a_lexical_view_is_not_used_on_a_pair_task_nor_with_a_tuned_teacher(bert, tiny_headless_dir):
    pair = Prompt("{text_a} ? {mask} , {text_b}", ("No", "Yes"))
    rows = [{"text_a": f"a {w} film", "text_b": f"the film is {w}"} for w in ("good", "bad", "fine", "dull")]
    events = []
    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    res = run_list(bb, pair, task(gold_rows=rows * 2, unlabeled_rows=rows * 3, unlabeled_ids=None, eval_rows=None,
                                  eval_labels=None),
                   tiny_cfg(rounds=1, lexical_weight=0.5, **FITTED), callback=events.append)  # fmt: skip
    assert any("lexical_weight=0.5: not used on a pair task" in (e.message or "") for e in events)
    assert res.model.lexical is None and res.rounds[0].lexical_weight is None
    events = []  # an MLM head's teacher is tuned on the gold labels: unmeasured there, so left out, and said
    res = run_list(bert, PROMPT, task(), tiny_cfg(rounds=1, lexical_weight=0.5), callback=events.append)
    assert any("not used with the prompt head's tuned teacher" in (e.message or "") for e in events)
    assert res.model.lexical is None and res.rounds[0].lexical_weight is None


def test_lexical_rounds_mix_a_cross_fitted_view_into_the_pseudo_labels_from_round_2(tiny_headless_dir, monkeypatch):
    import numpy as np

    import list_core.cotraining as cotraining

    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    off = run_list(bb, PROMPT, task(), tiny_cfg(rounds=2, lexical_weight=0.5, **FITTED))
    seen = []

    def fixed_view(texts, q, gold_texts, gold_labels, seed=0):  # the view's labels: all on "negative"
        seen.append((list(texts), q.copy(), list(gold_texts)))
        return np.tile([1.0, 0.0], (len(texts), 1))

    monkeypatch.setattr(cotraining, "cross_fitted", fixed_view)
    events = []
    on = run_list(bb, PROMPT, task(), tiny_cfg(rounds=2, lexical_weight=0.5, lexical_rounds=True, **FITTED),
                  callback=events.append)  # fmt: skip
    assert any("lexical_rounds: from round 2 on" in (e.message or "") for e in events if e.stage == "setup")
    assert [r.probs for r in on.tables[0]] == [r.probs for r in off.tables[0]]  # round 1: the teacher's labels
    assert len(seen) == 1  # round 2 only
    assert [r.pseudo_label_view for r in on.rounds] == [None, 0.5] and off.rounds[1].pseudo_label_view is None
    texts, q, gold_texts = seen[0]
    assert sorted(texts) == sorted(POOL) and gold_texts == NEG + POS  # fitted on the whole pool and the gold labels
    # round 2's labels: half the model's (ensembled with the first teacher, as without the view) and half the view's
    before = np.array([r.probs for r in off.tables[1]])
    np.testing.assert_allclose(q[: len(before)], before, atol=2e-6)
    np.testing.assert_allclose(np.array([r.probs for r in on.tables[1]]), 0.5 * before + 0.5 * np.array([1.0, 0.0]),
                               atol=2e-6)  # fmt: skip


def test_lexical_rounds_without_a_lexical_view_does_nothing_and_says_so(tiny_headless_dir):
    # `--set lexical_weight=0` on a preset with lexical_rounds turns the view off in the rounds too
    bb = load_backbone(str(tiny_headless_dir), device="cpu")
    off = run_list(bb, PROMPT, task(), tiny_cfg(rounds=2, **FITTED))
    events = []
    res = run_list(bb, PROMPT, task(), tiny_cfg(rounds=2, lexical_rounds=True, **FITTED), callback=events.append)
    assert [e.message for e in events if e.stage == "setup" and "lexical" in (e.message or "")] == [
        "lexical_rounds=true: not used, lexical_weight is 0 (there is no lexical view to mix into the rounds' "
        "pseudo-labels)"
    ]  # fmt: skip
    assert [r.pseudo_label_view for r in res.rounds] == [None, None]
    assert [[r.probs for r in t] for t in res.tables] == [[r.probs for r in t] for t in off.tables]
