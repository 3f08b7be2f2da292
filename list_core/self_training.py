"""LiST end to end: prompt-tuned teacher, then rounds of pseudo-labeling, student training and gold tuning."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import views
from .backbone import Backbone
from .calibration import expected_calibration_error
from .checkpoint import RunCheckpoint, fingerprint
from .config import TrainConfig
from .cotraining import cotrained_labels, latest_labels
from .data import Encoded, Row, check_task
from .distributed import Scorer, current_scorer
from .events import Callback, CancelCheck, Event, Reporter, derive_seed, seed_everything
from .heads import VIEW_HEADS, choose_head, run_layers
from .lexical import LexicalHead, row_text
from .losses import soft_labels
from .model import ListModel
from .pool import pass_over, sample, take
from .prompts import Prompt
from .records import PseudoLabelRow, RoundRecord, WeightStats
from .teacher import prompt_looks_wrong
from .training import fit_gold, toward_teacher, train_student


@dataclass
class TaskData:
    """Gold examples (the only labels used for training), an unlabeled pool and an optional evaluation split."""

    labels: list[str]
    gold_rows: list[Row]
    gold_labels: list[int]
    unlabeled_rows: Sequence[Row] = field(default_factory=list)  # a list, or a `pool.RowSource` read in chunks
    unlabeled_ids: list[Any] | None = None
    eval_rows: list[Row] | None = None
    eval_labels: list[int] | None = None

    def fingerprint(self) -> str:
        return fingerprint(self.labels, self.gold_rows, self.gold_labels, len(self.unlabeled_rows), self.unlabeled_ids)


@dataclass
class RunResult:
    """A finished run: the final model, the teacher's and every round's record."""

    model: ListModel
    teacher: RoundRecord
    rounds: list[RoundRecord]
    tables: list[list[PseudoLabelRow]]
    stage_seconds: dict[str, float]

    @property
    def last(self) -> RoundRecord:
        return self.rounds[-1] if self.rounds else self.teacher

    def predict_proba(self, rows: Sequence[Row], batch_size: int = 64) -> torch.Tensor:
        return self.model.predict_proba(rows, batch_size)


def accuracy(model: ListModel, enc: Encoded, labels: Sequence[int], batch_size: int) -> float:
    if not len(enc):
        return float("nan")
    pred = model.logits(enc, batch_size).argmax(-1)
    return float((pred == torch.tensor(list(labels))).float().mean())


def _weight_stats(w: torch.Tensor) -> WeightStats:
    if not len(w):
        return WeightStats()
    return WeightStats(len(w), float(w.mean()), float(w.std()) if len(w) > 1 else 0.0, float(w.max()),
                       float((w == 0).float().mean()))  # fmt: skip


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The checkpoint tensors saved under `prefix`, without it."""
    return {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}


def run_list(
    backbone: Backbone,
    prompt: Prompt,
    task: TaskData,
    cfg: TrainConfig,
    callback: Callback | None = None,
    should_cancel: CancelCheck | None = None,
    checkpoint_dir: str | Path | None = None,
    scorer: Scorer | None = None,
) -> RunResult:
    """Run LiST (or, with `cfg.rounds == 0`, prompt/classic fine-tuning) and return the final model.

    With `checkpoint_dir`, the teacher and each round are saved (trainable weights only) and a run killed
    mid-way resumes from its last completed round with the same result as an uninterrupted run. The forward
    passes over the whole pool go through `scorer` (`distributed.RayScorer` for a cluster; default: the one
    `distributed.use_scorer` set, else this process). The pool is read, encoded and scored in chunks
    (`pool.CHUNK` texts); what is held for all of it is its (N, C) pseudo-label probabilities.
    """
    score = scorer or current_scorer()
    check_task(prompt, task.labels, task.gold_rows, task.gold_labels, task.unlabeled_rows)
    report = Reporter(callback, should_cancel)
    if not task.unlabeled_rows and cfg.rounds:
        report(Event("warning", message="the unlabeled pool is empty: running prompt fine-tuning only"))
        cfg = cfg.with_(rounds=0)
    rows, n_pool = task.unlabeled_rows, len(task.unlabeled_rows)
    seconds: dict[str, float] = {}
    # ... on a bounded random sample of the pool (its features are (n, D)); every pool text is labelled after
    fit_index = sample(n_pool, cfg.teacher_pool_limit, torch.Generator().manual_seed(derive_seed(cfg.seed, "fit")))
    head_kind = choose_head(cfg.head, backbone)[0]
    # a head fitted on frozen features of gold + pool is already a better teacher than one tuned on the gold alone
    fitted_teacher = head_kind in ("probe", "similarity") and cfg.probe_self_train > 0 and n_pool > 0
    # WiSE-FT needs the two weight sets on one path: the fitted teacher's adapters are the identity, which every
    # student's residual moves away from; a tuned teacher's adapters and a fresh student's are unrelated draws
    final_mix = cfg.final_mix if fitted_teacher else 0.0
    ckpt = None
    if checkpoint_dir is not None:
        fp = fingerprint(cfg.to_dict(), task.fingerprint(), prompt.template, prompt.label_words, backbone.family)
        ckpt = RunCheckpoint(checkpoint_dir, fp)
    progress = ckpt.load_progress() if ckpt else None
    layers, view_accuracy, fit_pool_x = run_layers(cfg.feature_layers, backbone), {}, None
    if layers == 0:  # chosen on the gold labels (`views`), for the fitted similarity teacher; else the last layer
        layers = 1
        if head_kind == "similarity" and fitted_teacher and progress is not None:  # chosen before the interruption
            record = ckpt.load_round(0)[1]["metrics"]
            layers = record.get("feature_layers") or 1  # none recorded: too few gold labels to choose, the last
            view_accuracy = {int(n): a for n, a in (record.get("view_accuracy") or {}).items()}
        elif head_kind == "similarity" and fitted_teacher:
            t0 = time.perf_counter()
            layers, view_accuracy, per_layer = views.resolve(backbone, prompt, task.gold_rows, task.gold_labels,
                                                             take(rows, fit_index), cfg)  # fmt: skip
            fit_pool_x = torch.from_numpy(views.view_of(per_layer, layers))  # (n, L*D): the teacher's pool features
            del per_layer
            seconds["views"] = time.perf_counter() - t0
    model = ListModel(backbone, prompt, cfg.head, cfg.adapter, cfg.pooling, cfg.max_length, feature_layers=layers)
    report(Event("setup", message=model.head_reason, metrics={"head": model.head_kind, **model.parameter_report()}))
    if model.head_kind in VIEW_HEADS and 0 < layers < cfg.feature_layers:
        report(Event("setup", message=f"feature_layers={cfg.feature_layers}: the backbone has {layers} layers, so the "
                                      f"{model.head_kind} head reads all {layers}"))  # fmt: skip
    if view_accuracy:
        tried = ", ".join(f"top {n}: {100 * a:.0f}%" for n, a in view_accuracy.items())
        report(Event("setup", message=f"feature_layers=0: the similarity head reads the top {layers} layer(s), where "
                                      f"the teacher's k-fold accuracy on the gold labels is best ({tried})"))  # fmt: skip
    gold = model.encode(task.gold_rows)
    evalset = model.encode(task.eval_rows) if task.eval_rows else None
    probe_init: dict[str, torch.Tensor] = {}  # the probe head's fit, kept with round 0 so a resume need not redo it
    student_init: dict[str, torch.Tensor] = {}  # where the students start when it is not the verbalisers (round 0)
    students_start = None  # for the record: "verbalisers" or "teacher" (a fitted similarity teacher)
    if model.head_kind == "probe":  # fitted up front: every student re-starts from this fit
        t0 = time.perf_counter()
        saved = ckpt.load_tensors(0) if progress is not None else {}
        if "probe_init.linear.weight" in saved:
            model.head.set_initial(_prefixed(saved, "probe_init."))
            report(Event("probe", message="the probe head as fitted before the interruption (from the checkpoint)"))
        else:
            fit_pool = model.encode(take(rows, fit_index)) if fitted_teacher else None
            n = len(fit_pool) if fitted_teacher else 0
            report(Event("probe", message=f"fitting the probe head (self-trained {cfg.probe_self_train}x on {n} pool "
                                          "texts)"))  # fmt: skip
            pool_x = score.features(model, fit_pool, cfg.eval_batch_size) if n else None
            model.prepare_head(gold, task.gold_labels, cfg.seed, fit_pool, cfg.probe_self_train, cfg.eval_batch_size,
                               pool_x, cfg.class_balance)  # fmt: skip
        probe_init = {f"probe_init.{k}": v for k, v in model.head.initial_state().items()}
        seconds["probe"] = time.perf_counter() - t0

    def metrics_of() -> dict[str, Any]:
        m = {"gold_accuracy": accuracy(model, gold, task.gold_labels, cfg.eval_batch_size)}
        if evalset is not None and len(evalset):
            probs = model.logits(evalset, cfg.eval_batch_size).softmax(-1)  # (E, C)
            m["eval_accuracy"] = float((probs.argmax(-1) == torch.tensor(list(task.eval_labels))).float().mean())
            m["eval_ece"] = expected_calibration_error(probs, task.eval_labels)
        return m

    # teacher -----------------------------------------------------------------------------------
    q0: torch.Tensor | None = None  # the first teacher's probabilities on the whole pool (ensemble_teacher)
    if progress is None:
        gen = seed_everything(derive_seed(cfg.seed, "teacher"))
        model.reset_trainable(gen)
        # students re-start from the verbalisers, not from this fit (unless the prompt looks wrong)
        if model.head_kind == "similarity" and fitted_teacher:
            t0 = time.perf_counter()
            fit_pool = model.encode(take(rows, fit_index))
            report(Event("probe", message=f"fitting the prompt-aware teacher (self-trained {cfg.probe_self_train}x "
                                          f"on {len(fit_pool)} of {n_pool} pool texts)"))  # fmt: skip
            pool_x = fit_pool_x if fit_pool_x is not None else score.features(model, fit_pool, cfg.eval_batch_size)
            # an ensemble over views (`teacher_views`); on a shallower backbone a view reads all its layers
            teacher_views = tuple(sorted({min(n, layers) for n in cfg.views()}))
            model.fit_prompt_teacher(gold, task.gold_labels, fit_pool, cfg.probe_self_train, cfg.prompt_weight,
                                     cfg.verbaliser_points, cfg.seed, cfg.eval_batch_size, pool_x,
                                     cfg.class_balance, teacher_views)  # fmt: skip
            fit_pool_x = None
            model.identity_adapters()  # the fitted teacher reads the frozen features it was fitted on
            students_start = "verbalisers"
            wrong = prompt_looks_wrong(model.teacher_info["prompt_evidence"])  # its verbalisers would mislead them
            if wrong or cfg.student_start == "teacher":
                model.head.set_initial(model.head.state_dict())
                students_start = "teacher"
                student_init = {f"student_init.{k}": v for k, v in model.head.initial_state().items()}
            if wrong:
                why = ("the prompt looks wrong on the gold labels (its label words may be attached to the wrong "
                       "classes): the teacher left it out and every student starts from the teacher's fit, not from "
                       "its verbalisers")  # fmt: skip
                report(Event("warning", message=why))
            seconds["probe"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        epochs = 0 if fitted_teacher else cfg.teacher_epochs
        if fitted_teacher:
            report(
                Event("teacher", message=f"the teacher is the fitted {model.head_kind} head (teacher_epochs not used)")
            )
        loss = fit_gold(model, gold, task.gold_labels, epochs, cfg.teacher_lr, cfg, gen, report, "teacher")
        seconds["teacher"] = time.perf_counter() - t0
        measured = {**metrics_of(), **model.teacher_info, "students_start": students_start}
        if view_accuracy:  # the run chose its layers
            measured |= {"feature_layers": layers, "view_accuracy": {str(n): a for n, a in view_accuracy.items()}}
        last_labels: dict[str, int] = {}
        if model.teacher_pool_proba is not None and len(fit_index) == n_pool:  # labelled the pool while fitting
            q0 = model.teacher_pool_proba
        elif (model.teacher_pool_proba is not None or cfg.ensemble_teacher and cfg.rounds > 1) and n_pool:
            report(Event("pseudo_label", 0, n_pool, 0, message="the first teacher labels the whole pool"))
            t0 = time.perf_counter()
            step = lambda done: report(Event("pseudo_label", done, n_pool, 0))  # noqa: E731
            q0 = soft_labels(pass_over(score, model, rows, "logits", batch_size=cfg.eval_batch_size, on_chunk=step))
            seconds["pool_labels"] = time.perf_counter() - t0
        model.teacher_pool_proba = None  # (N, C): held once, as q0
        if final_mix:  # the last round's model is moved part of the way back to this one
            teacher_state = {k: v.detach().clone() for k, v in model.trainable_state().items()}
        # round 0's time: fitting the teacher (on frozen features, or gold epochs) and its labels for the pool
        stages = ("views", "probe", "pool_labels") if fitted_teacher else ("probe", "teacher", "pool_labels")
        teacher_seconds = {k: v for k, v in seconds.items() if k in stages}
        teacher = RoundRecord(round=0, loss=loss, **measured, seconds=teacher_seconds)
        if ckpt:
            ckpt.save_round(0, model.trainable_state(), {"metrics": teacher.to_dict(), "table": []}, {"last_labels": {}},
                            tensors={**({"q0": q0} if q0 is not None else {}), **probe_init, **student_init} or None)  # fmt: skip
        report(Event("round_end", round=0, record=teacher, model=model))
        start, rounds, tables = 1, [], []
    else:
        done = progress["completed"]
        saved0 = ckpt.load_tensors(0)
        if final_mix:
            teacher_state = ckpt.load_round(0)[0]
        q0 = saved0.get("q0")
        if student_init := _prefixed(saved0, "student_init."):  # the students start from the teacher's fit
            model.head.set_initial(student_init)
        state, _ = ckpt.load_round(done)
        model.load_trainable_state(state)
        teacher = RoundRecord.from_dict(ckpt.load_round(0)[1]["metrics"])
        saved = [ckpt.load_round(r)[1] for r in range(1, done + 1)]
        rounds = [RoundRecord.from_dict(r["metrics"]) for r in saved]
        tables = [[PseudoLabelRow.from_dict(x) for x in r["table"]] for r in saved]
        last_labels = dict(progress["last_labels"])
        start = done + 1
        # the process may have died after a round's checkpoint but before an observer stored it: offer them again
        report(Event("round_restored", round=0, record=teacher, table=[]))
        for r, (record, table) in enumerate(zip(rounds, tables), start=1):
            report(Event("round_restored", round=r, record=record, table=table))
        report(Event("resume", round=done, message=f"resuming after round {done}"))

    # the final classifier's lexical view (`lexical`): measured where the teacher is fitted on a sentence encoder's
    # frozen features, whose embedding blurs words; not for pair tasks, whose label is how two texts relate
    lexical_view = bool(cfg.lexical_weight) and len(prompt.text_slots) == 1 and fitted_teacher
    gold_texts = [row_text(x, prompt.text_slots) for x in task.gold_rows]  # what the lexical view reads of them
    if cfg.lexical_weight and not lexical_view and start <= cfg.rounds:
        why = ("not used on a pair task (word counts of two texts cannot tell how the texts relate)"
               if len(prompt.text_slots) > 1 else
               f"not used with the {head_kind} head's tuned teacher: it is measured where the teacher is fitted on "
               "a sentence encoder's frozen features (BENCHMARKS.md, \"A lexical view\"), and an MLM head reads the "
               "words itself")  # fmt: skip
        also = " (nor in the rounds: lexical_rounds)" if cfg.lexical_rounds else ""
        report(Event("setup", message=f"lexical_weight={cfg.lexical_weight:g}: {why}{also}"))
    elif cfg.lexical_rounds and not cfg.lexical_weight and start <= cfg.rounds:  # no view: nothing to mix in
        report(Event("setup", message="lexical_rounds=true: not used, lexical_weight is 0 (there is no lexical view "
                                      "to mix into the rounds' pseudo-labels)"))  # fmt: skip
    elif cfg.lexical_rounds and start <= cfg.rounds:
        report(Event("setup", message="lexical_rounds: from round 2 on, each round's pseudo-labels are mixed "
                                      f"{cfg.lexical_weight:.0%} with a lexical view's, cross-fitted on the previous "
                                      "model's labels of the pool (co-training)"))  # fmt: skip

    # rounds --------------------------------------------------------------------------------------
    for r in range(start, cfg.rounds + 1):
        gen = seed_everything(derive_seed(cfg.seed, "round", r))
        t0 = time.perf_counter()
        if cfg.unlabeled_limit is not None and n_pool > cfg.unlabeled_limit:
            chosen = sorted(torch.randperm(n_pool, generator=gen)[: cfg.unlabeled_limit].tolist())
        else:
            chosen = list(range(n_pool))
        sub_rows = take(rows, chosen)
        cotrained = False  # this round's pseudo-labels mixed with a lexical view's (`lexical_rounds`)
        sub = model.encode(sub_rows)
        report(Event("pseudo_label", 0, len(sub), r))
        if r == 1 and q0 is not None:  # the model is still the first teacher: its labels are known
            q = q0[chosen]
        else:
            q = soft_labels(score.logits(model, sub, cfg.eval_batch_size))  # (N, C)
            if q0 is not None and cfg.ensemble_teacher:  # ensembling the rounds: the first teacher and this model
                q = (q + q0[chosen]) / 2
            if cfg.lexical_rounds and lexical_view:  # co-training: the lexical view labels the pool too
                texts, labels = latest_labels(model, score, rows, fit_index, chosen, sub_rows, q, cfg.eval_batch_size,
                                              q0 if cfg.ensemble_teacher else None)  # fmt: skip
                q, cotrained = cotrained_labels(q, texts, labels, gold_texts, task.gold_labels, cfg.lexical_weight,
                                                cfg.seed)  # fmt: skip
                if not cotrained:
                    report(Event("warning", round=r, message="lexical_rounds: no lexical view for this round's "
                                 "pseudo-labels (no word occurs in two texts of each half, or a half's labels name one "
                                 "class only); they are the model's alone"))  # fmt: skip
        t1 = time.perf_counter()
        model.reset_trainable(gen)
        if cfg.student_adapters == "identity":  # drawn all the same, so the rest of the run's randomness is unchanged
            model.identity_adapters()
        student = train_student(model, sub, q, gold, task.gold_labels, cfg, gen, report, r)
        t2 = time.perf_counter()
        ft_loss = fit_gold(model, gold, task.gold_labels, cfg.finetune_epochs, cfg.finetune_lr, cfg, gen, report,
                           "finetune", r)  # fmt: skip
        if r == cfg.rounds and final_mix:
            model.load_trainable_state(toward_teacher(model.trainable_state(), teacher_state, final_mix))
            report(Event("finetune", round=r, message=f"final model: the weights moved {final_mix:.0%} of the "
                                                      "way back to the first teacher's (final_mix)"))  # fmt: skip
        elif r == cfg.rounds and cfg.final_mix:
            report(Event("finetune", round=r, message=f"final_mix={cfg.final_mix:g} not applied: the teacher was "
                                                      "tuned, not fitted on frozen features, and its adapters and the "
                                                      "student's start from different draws"))  # fmt: skip
        t3 = time.perf_counter()
        if r == cfg.rounds and lexical_view:  # after any final_mix
            texts, labels = latest_labels(model, score, rows, fit_index, chosen, sub_rows, q, cfg.eval_batch_size)
            model.lexical = LexicalHead.fit(texts, labels, gold_texts, task.gold_labels, cfg.lexical_weight, cfg.seed)
            if model.lexical is None:
                report(Event("warning", message="lexical_weight: no lexical view (no word occurs in two texts, or the "
                                                "labels name one class only); the final model is the student's"))  # fmt: skip
            else:
                gold = model.encode(task.gold_rows)  # with their texts, which the lexical view reads
                evalset = model.encode(task.eval_rows) if task.eval_rows else None
                report(Event("finetune", round=r, message=f"final model: its probabilities mixed with a lexical view's "
                                                          f"({len(model.lexical.vocabulary):,} words and bigrams "
                                                          f"fitted on the pool's latest pseudo-labels) at "
                                                          f"{cfg.lexical_weight:.0%} (lexical_weight)"))  # fmt: skip
        hard = q.argmax(-1)
        table, flips, seen = [], 0, 0
        for j, i in enumerate(chosen):
            key = str(task.unlabeled_ids[i] if task.unlabeled_ids else i)
            prev = last_labels.get(key)
            flipped = prev is not None and prev != int(hard[j])
            seen += prev is not None
            flips += flipped
            last_labels[key] = int(hard[j])
            w = float(student["mean_weight"][j])
            table.append(PseudoLabelRow(
                index=i, id=task.unlabeled_ids[i] if task.unlabeled_ids else i,
                probs=[round(float(p), 6) for p in q[j]], label=int(hard[j]), confidence=float(q[j].max()),
                weight=None if w != w else w, flipped=flipped,
            ))  # fmt: skip
        counts = torch.bincount(hard, minlength=len(task.labels)).tolist()
        record = RoundRecord(
            round=r, loss=ft_loss, **metrics_of(), pseudo_label_counts=dict(zip(task.labels, counts)),
            mean_confidence=float(q.max(-1).values.mean()), confident=student["confident"],
            warmup_steps=student["warmup_steps"], zero_weight_steps=student["zero_weight_steps"],
            student_steps=student["steps"],
            student_passes=round(student["steps"] * cfg.student_batch_size / max(1, len(chosen)), 2),
            weights=_weight_stats(student["weights"]), flip_rate=flips / seen if seen else 0.0,
            seconds={"pseudo_label": t1 - t0, "student": t2 - t1, "finetune": t3 - t2,
                     **({"lexical": time.perf_counter() - t3} if r == cfg.rounds and lexical_view else {})},
            final_mix=(final_mix or None) if r == cfg.rounds else None,
            pseudo_label_view=cfg.lexical_weight if cotrained else None,
            lexical_weight=model.lexical.weight if r == cfg.rounds and model.lexical is not None else None,
            lexical_vocabulary=len(model.lexical.vocabulary) if r == cfg.rounds and model.lexical is not None else None,
        )  # fmt: skip
        for k, v in record.seconds.items():
            seconds[k] = seconds.get(k, 0.0) + v
        rounds.append(record)
        tables.append(table)
        if ckpt:
            ckpt.save_round(r, model.trainable_state(), {"metrics": record.to_dict(), "table": [x.to_dict() for x in table]},
                            {"last_labels": last_labels})  # fmt: skip
        report(Event("round_end", round=r, record=record, table=table, model=model))
    report(Event("done", record=rounds[-1] if rounds else teacher))
    return RunResult(model=model, teacher=teacher, rounds=rounds, tables=tables, stage_seconds=seconds)
