"""Job handlers: a training run (any registered method), prompt scoring, prediction, export and the diversity
order. They only orchestrate: the ML is in list_core, every read and write goes through storage."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from list_core.checkpoint import CheckpointMismatch, fenced
from list_core.config import TrainConfig
from list_core.distributed import DistributedError, use_scorer
from list_core.events import Event
from list_core.methods import get as get_method
from list_core.model import ListModel
from list_core.pool import spans
from list_core.prompts import Prompt, PromptError
from list_core.records import RunMetrics
from list_core.self_training import TaskData
from storage import ExampleRows, all_examples, example_ids, examples_by_ids, gold_labels
from storage import exports as exportq
from storage import jobs as jobq
from storage import predictions as predq
from storage import runs as runq
from storage.db import now
from storage.models import Job, PromptVersion, Run
from storage.projects import get_project, get_prompt, latest_prompt
from storage.queue import excluded_ids, set_label_queue

from .context import RAY_RETRIES, JobContext


class ProgressWriter:
    """Turns engine events into job progress (throttled, with a per-stage ETA) and round records."""

    def __init__(self, ctx: JobContext, job: Job, run: Run | None, clock=time.monotonic) -> None:
        self.ctx, self.job, self.run, self.clock = ctx, job, run, clock
        self.owner = (job.id, ctx.worker_id)  # writes only while this worker still runs the job
        self.stage: str | None = None
        self.stage_start = (0.0, 0)
        self.last_write = 0.0
        self.resumed_from: int | None = None
        self.rounds = int(run.config.get("rounds", 0)) if run is not None else 0
        self.round_t0: float | None = None  # when the current round started
        self.round_seconds: list[float] = []
        self.done_rounds = 0

    def __call__(self, e: Event) -> None:
        if e.stage == "round_restored":  # a resumed run's finished round: store it if a kill came first
            if self.run is not None and e.round not in runq.round_numbers(self.ctx.db, self.run.id):
                self.save_round(e)
            return
        t = self.clock()
        if e.stage == "resume":
            self.resumed_from = e.round
        if e.stage != self.stage:
            self.stage, self.stage_start = e.stage, (t, e.step)
        if e.stage in ("round_end", "resume"):
            if e.stage == "round_end" and e.round and self.round_t0 is not None:
                self.round_seconds.append(t - self.round_t0)
            self.round_t0, self.done_rounds = t, e.round or 0
        if e.stage == "round_end" and self.run is not None and e.record is not None and self.save_round(e):
            jobq.made_progress(self.ctx.db, self.job.id, self.ctx.worker_id)
        eta = None
        t0, s0 = self.stage_start
        if e.total and e.step > s0 and t > t0:
            eta = (e.total - e.step) * (t - t0) / (e.step - s0)
        if e.message or t - self.last_write >= 0.5 or e.stage in ("round_end", "done", "resume"):
            label = e.stage if e.round is None else f"{e.stage} (round {e.round})"
            run_eta = self.run_eta(t) if e.stage != "done" else 0.0
            jobq.progress(self.ctx.db, self.job.id, label, e.step, e.total, eta, e.message or None, run_eta,
                          worker_id=self.ctx.worker_id)  # fmt: skip
            self.last_write = t

    def save_round(self, e: Event) -> bool:
        """A round's record and pseudo-label table into the run, while this worker still owns the job."""
        table = [{**row.to_dict(), "example_id": row.id} for row in (e.table or [])]
        return runq.save_round(self.ctx.db, self.run.id, e.round or 0, e.record.to_dict(), table, owner=self.owner)

    def run_eta(self, t: float) -> float | None:
        """Seconds left in the run: the rounds still to go at the mean measured round time (None until a
        round has been timed)."""
        if not self.round_seconds or self.round_t0 is None:
            return None
        per_round = sum(self.round_seconds) / len(self.round_seconds)
        left_in_current = max(0.0, per_round - (t - self.round_t0)) if self.done_rounds < self.rounds else 0.0
        return left_in_current + per_round * max(0, self.rounds - self.done_rounds - 1)


def prompt_of(version: PromptVersion) -> Prompt:
    return Prompt.from_json({"template": version.template, "label_words": version.label_words,
                             "descriptions": version.descriptions})  # fmt: skip


def task_of(ctx: JobContext, run: Run) -> TaskData:
    """What the run trains on: the snapshot taken at enqueue (runs made before snapshots: the store now)."""
    project = get_project(ctx.db, run.project_id)
    gold = {int(a): int(b) for a, b in run.gold_snapshot}
    if run.inputs is not None:
        g = examples_by_ids(ctx.db, list(gold))
        u = ExampleRows(ctx.db, runq.unlabeled_ids(ctx.db, run))  # read a chunk at a time: pools of millions
        evals = examples_by_ids(ctx.db, run.inputs["eval"])
    else:
        pool = all_examples(ctx.db, project.id, "pool")
        rejected = excluded_ids(ctx.db, project.id)
        g = [e for e in pool if e.id in gold]
        u = ExampleRows(ctx.db, [e.id for e in pool if e.id not in gold and e.id not in rejected])
        evals = all_examples(ctx.db, project.id, "eval")
    return TaskData(
        labels=project.labels,
        gold_rows=[e.row() for e in g],
        gold_labels=[gold[e.id] for e in g],
        unlabeled_rows=u,
        unlabeled_ids=u.ids.tolist(),
        eval_rows=[e.row() for e in evals] or None,
        eval_labels=[int(e.eval_label) for e in evals] or None,
    )


def checkpoint_dir(ctx: JobContext, run: Run):
    return ctx.runs_dir / f"run-{run.id}"


def list_run(ctx: JobContext, job: Job, cancel: threading.Event) -> dict[str, Any]:
    from list_core.trained import run_metrics

    run = runq.get_run(ctx.db, job.payload["run_id"])
    method = get_method(run.method)
    prompt = prompt_of(get_prompt(ctx.db, run.prompt_id))
    cfg = TrainConfig.from_dict(run.config)
    task = task_of(ctx, run)
    bb = ctx.backbone(run.backbone)
    ckpt = checkpoint_dir(ctx, run)
    owner = (job.id, ctx.worker_id)  # a worker that lost the job (frozen, then thawed) changes nothing
    runq.update_run(ctx.db, run.id, owner, status="running", backbone_hash=_hash(bb), checkpoint_dir=str(ckpt))
    progress = ProgressWriter(ctx, job, run)
    try:
        scorer = ctx.scorer(job.payload.get("ray_address"))  # None: this process (no Ray import)
        started = time.monotonic()
        with use_scorer(scorer), fenced(lambda: jobq.owns(ctx.db, job.id, ctx.worker_id)):
            try:
                result = method.run(
                    bb, prompt, task, cfg, progress, cancel.is_set, str(ckpt) if method.trains_adapters else None
                )
            except CheckpointMismatch as e:  # e.g. resumed after an upgrade changed how settings are recorded
                raise RuntimeError(
                    f"{run.label.capitalize()} cannot continue from its checkpoints: they were written with other "
                    "settings or data than the run has now (by an older version of LiST Studio, say). Start a new "
                    f"run with the same settings. ({e})"
                ) from None
        metrics: RunMetrics = run_metrics(method.name, result, task, cfg.eval_batch_size)
        if not metrics.stage_seconds:  # a method without rounds: its one stage, so the run history shows a time
            metrics = dataclasses.replace(metrics, stage_seconds={"fit": time.monotonic() - started})
        from list_core.trained import calibrate, keep_model, kept_form, load_trained

        # the kept model: suggestions come from it, as exports and predictions do
        model = getattr(result, "model", None) if method.trains_adapters else kept_form(result)
        if metrics.chosen_round is not None and metrics.chosen_round != result.last.round:
            model = load_trained(bb, prompt, metrics.head, cfg, str(ckpt), metrics.chosen_round)
        if model is not None:  # calibrated on the evaluation split when there is one
            cal = calibrate(model, task.eval_rows, task.eval_labels, cfg.eval_batch_size)
            head = model.head_kind if isinstance(model, ListModel) else None  # a probe's: the similarity head
            metrics = dataclasses.replace(metrics, head=head, **{k: v for k, v in cal.items() if k != "eval_ece"})
        keeper = model if model is not None else result
        if not method.trains_adapters and model is not None and method.exports:  # adapter runs keep checkpoints
            keep_model(model, ckpt, get_project(ctx.db, run.project_id).labels, prompt)
        _suggest(ctx, job, run.project_id, run.id, keeper, scorer, cfg.eval_batch_size)
        runq.update_run(ctx.db, run.id, owner, status="succeeded", metrics=metrics.to_dict(), head=metrics.head,
                        finished_at=now())  # fmt: skip
        return {"run_id": run.id, "metrics": metrics.to_dict(), "resumed_from": progress.resumed_from}
    except BaseException as e:
        if type(e).__name__ == "Cancelled" and ctx.shutting_down.is_set():
            runq.update_run(ctx.db, run.id, owner, status="queued")  # the worker stops: the run waits to resume
        elif isinstance(e, DistributedError) and job.attempts <= RAY_RETRIES:
            runq.update_run(ctx.db, run.id, owner, status="queued")  # retried: resumes from its last round
        else:
            status = "cancelled" if type(e).__name__ == "Cancelled" else "failed"
            runq.update_run(ctx.db, run.id, owner, status=status, finished_at=now())
        raise


def _hash(bb) -> str:
    if not getattr(bb, "_hash", None):
        bb._hash = bb.weights_hash()
    return bb._hash


def run_model(ctx: JobContext, run: Run):
    """The model a finished run keeps: an adapter run's chosen round (the last by default), or the fitted model
    another method's run saved (`trained.keep_model`)."""
    from list_core.trained import load_kept, load_trained

    if not run.checkpoint_dir:
        raise ValueError(f"run {run.id} ({run.method}) has no folder to load a model from")
    if not get_method(run.method).trains_adapters:
        return load_kept(ctx.backbone(run.backbone), run.checkpoint_dir)
    cfg = TrainConfig.from_dict(run.config)
    chosen = (run.metrics or {}).get("chosen_round")
    model = load_trained(ctx.backbone(run.backbone), prompt_of(get_prompt(ctx.db, run.prompt_id)),
                         run.head or cfg.head, cfg, run.checkpoint_dir, chosen)  # fmt: skip
    model.temperature = float((run.metrics or {}).get("temperature", 1.0))  # calibrated at the end of the run
    return model


def _proba(model: Any, rows: list[dict], scorer: Any, batch_size: int = 64):
    """(N, C) probabilities, on the cluster when there is a scorer and the model is an adapter model."""
    if scorer is None or not isinstance(model, ListModel):
        return model.predict_proba(rows, batch_size)
    return (scorer.logits(model, model.encode(rows), batch_size) / model.temperature).softmax(-1)


def _suggest(
    ctx: JobContext,
    job: Job,
    project_id: int,
    run_id: int | None,
    model: Any,
    scorer: Any = None,
    batch_size: int = 64,
    stage: str = "predicting",
    rows: ExampleRows | None = None,
    features: Callable[[range], Any] | None = None,
) -> int:
    """The model's suggestions for every pool example (`rows`: the project's pool), read, scored and written a
    chunk at a time (bounded memory for any pool size; each chunk is its own short write). With `features` (a
    chunk's positions -> its rows' (B, D) frozen features, for a similarity head without adapters) the head reads
    those instead of a forward pass. Returns how many were scored."""
    rows = rows if rows is not None else ExampleRows(ctx.db, example_ids(ctx.db, project_id, "pool"))
    for part in spans(len(rows)):
        ctx.make_way(job)  # background suggestions let the user's jobs go first
        jobq.progress(ctx.db, job.id, stage, part.start, len(rows), message="suggestions for every example",
                      worker_id=ctx.worker_id)  # fmt: skip
        if features is not None:
            probs = (model.feature_logits(features(part)) / model.temperature).softmax(-1)  # (B, C)
        else:
            probs = _proba(model, rows.take(part), scorer, batch_size)
        predq.save_predictions(ctx.db, project_id, run_id,
                               [{"example_id": rows.ids[i], "probs": p.tolist()} for i, p in zip(part, probs)])  # fmt: skip
    return len(rows)


def predict(ctx: JobContext, job: Job, cancel: threading.Event) -> dict[str, Any]:
    """Probabilities for typed texts (`payload["rows"]`), for an uploaded file's rows (`file_predictions`
    table), or suggestions for every example of the project."""
    run = runq.get_run(ctx.db, job.payload["run_id"])
    model = run_model(ctx, run)
    if "rows" in job.payload:
        return {"probs": model.predict_proba(job.payload["rows"]).tolist()}
    if "file_rows" in job.payload:
        # the texts only: "source" holds the file's other columns, for the page to write back
        rows = [{k: v for k, v in r.items() if k != "source"} for r in predq.file_prediction_inputs(ctx.db, job.id)]
        jobq.progress(ctx.db, job.id, "predicting", 0, len(rows))
        scorer = ctx.scorer(job.payload.get("ray_address"))  # a whole file: worth a cluster when there is one
        predq.save_file_predictions(ctx.db, job.id, _proba(model, rows, scorer).tolist())
        return {"predicted": len(rows)}
    return {"predicted": _suggest(ctx, job, run.project_id, run.id, model)}


PROMPT_EVAL_LIMIT = 2000  # evaluation texts a prompt is scored on (each candidate reads them all)


SAMPLE_POOL = 2000  # about as many pool texts give a scoring's class shares (all of a pool below twice that)
SUGGEST_POOL = 2000  # pool texts (the first ones) the label-word suggestions draw their candidate words from


class ScoredTexts(NamedTuple):
    """What a prompt scoring reads: the pool (rows read only where needed), its sample for the class shares (<= ~2,000
    texts), the gold rows and labels, the evaluation split and its even sample (<= `PROMPT_EVAL_LIMIT`)."""

    pool: ExampleRows
    sample: list
    rows: list
    y: list[int]
    all_evals: list
    evals: list

    def suggest_pool(self) -> list:
        """The pool texts the label-word suggestions read."""
        return self.pool.take(range(min(SUGGEST_POOL, len(self.pool))))


def _scored_texts(ctx: JobContext, project_id: int) -> ScoredTexts:
    gold = gold_labels(ctx.db, project_id)
    pool = ExampleRows(ctx.db, example_ids(ctx.db, project_id, "pool"))
    rows = [e.row() for e in examples_by_ids(ctx.db, [i for i, _ in gold])]
    sample = pool.take(range(0, len(pool), max(1, len(pool) // SAMPLE_POOL)))
    all_evals = all_examples(ctx.db, project_id, "eval")
    evals = all_evals[:: max(1, -(-len(all_evals) // PROMPT_EVAL_LIMIT))]
    return ScoredTexts(pool, sample, rows, [lab for _, lab in gold], all_evals, evals)


def prompt_eval(ctx: JobContext, job: Job, cancel: threading.Event) -> dict[str, Any]:
    """Zero-shot scores of candidate prompts on the gold labels and the evaluation split, the class distribution
    each predicts on the pool, label-word suggestions (and the prompt with them, scored beside it), and (before
    any run) the prompt's own suggestions for labeling. The first candidate is the project's prompt."""
    from list_core.prompt_tools import rematched, score_prompts, suggest_label_words, with_suggestions

    project = get_project(ctx.db, job.project_id)
    bb = ctx.backbone(job.payload.get("backbone") or project.backbone)
    texts = _scored_texts(ctx, project.id)
    pool, sample, rows, y, all_evals, evals = texts
    candidates = job.payload.get("candidates", [])
    candidates = [{**candidates[0], "origin": "prompt"}, *candidates[1:]] if candidates else []
    # a prompt the gold labels contradict: its verbalisers re-matched to the classes, scored beside it
    fixed = rematched(bb, candidates[0], rows, y, project.labels) if rows and candidates else None
    candidates += [fixed] if fixed else []
    suggestions = None
    if job.payload.get("suggest") and rows and candidates:
        jobq.progress(ctx.db, job.id, "suggesting label words")
        # on the words the gold labels support: a prompt they contradict would anchor the suggestions on the
        # wrong classes' words (with mr's words swapped they suggested "great, excellent, good" for negative)
        base = fixed or candidates[0]
        suggestions = suggest_label_words(bb, Prompt.from_json(base), rows, y, project.labels, texts.suggest_pool())
        # the prompt with the suggested words is scored beside it: the user sees whether they help
        extra = with_suggestions(base, suggestions, project.labels, origin="rematched+suggested" if fixed else
                                 "suggested")  # fmt: skip
        candidates += [extra] if extra else []
    board = score_prompts(bb, candidates, rows, y, sample, project.labels,
                          progress=lambda k, n: jobq.progress(ctx.db, job.id, "scoring prompts", k, n),
                          eval_rows=[e.row() for e in evals], eval_y=[int(e.eval_label) for e in evals])  # fmt: skip
    result: dict[str, Any] = {"leaderboard": board, "gold": len(rows), "eval": len(evals),
                              "eval_of": len(all_evals),
                              "head_pretrained": bb.head_pretrained}  # fmt: skip
    if suggestions is not None:
        result["suggestions"] = suggestions
        result["suggestions_base"] = "rematched" if fixed else "prompt"
    mine = next((e for e in board if e.get("origin") == "prompt"), {"error": "no prompt"})
    if "error" not in mine and not predq.has_run_predictions(ctx.db, project.id):
        if len(sample) == len(pool):  # the board read the whole pool: its suggestions cost little more
            result["prompt_suggestions"] = _prompt_suggestions(ctx, job, project.id, Prompt.from_json(candidates[0]),
                                                               pool)  # fmt: skip
        else:  # a pool the board sampled: the board now, the suggestions for every text in the background
            later = jobq.queue_replacing(ctx.db, project.id, "prompt_suggest",
                                         {"prompt": candidates[0], "background": True})  # fmt: skip
            result["prompt_suggestions_job"] = later.id
            result["prompt_suggestions_of"] = len(pool)
    return result


def prompt_suggest(ctx: JobContext, job: Job, cancel: threading.Event) -> dict[str, Any]:
    """The prompt's zero-shot predictions for every pool text as the Label page's suggestions, queued by a scoring
    of a pool it sampled (background work); none once a run has written its own."""
    if predq.has_run_predictions(ctx.db, job.project_id):
        return {"prompt_suggestions": 0, "why": "a run's suggestions are on the Label page"}
    return {
        "prompt_suggestions": _prompt_suggestions(ctx, job, job.project_id, Prompt.from_json(job.payload["prompt"]))
    }


def _prompt_suggestions(
    ctx: JobContext, job: Job, project_id: int, prompt: Prompt, pool: ExampleRows | None = None
) -> int:
    """Before any run, the prompt's own zero-shot predictions are the Label page's suggestions (and make
    "most uncertain" work from the first label). A similarity head reads the texts alone, so their frozen
    features come from the backbone's `feature_cache`: the texts the board has just scored (the whole pool below
    4,000 texts) or an earlier scoring read are not encoded again."""
    from list_core.prompt_tools import zero_shot_model

    model = zero_shot_model(ctx.backbone(get_project(ctx.db, project_id).backbone), prompt)
    rows = pool if pool is not None else ExampleRows(ctx.db, example_ids(ctx.db, project_id, "pool"))
    features = None
    if model.plain_input:
        features = lambda part: model.backbone.feature_cache.row_features(model, rows.take(part))  # noqa: E731
    return _suggest(ctx, job, project_id, None, model, stage="suggestions from the prompt", rows=rows,
                    features=features)  # fmt: skip


def export(ctx: JobContext, job: Job, cancel: threading.Event) -> dict[str, Any]:
    """Export a run's adapter (native, PEFT LoRA or folded model) and record it as an artifact."""
    from list_core.trained import export_model

    run = runq.get_run(ctx.db, job.payload["run_id"])
    model = run_model(ctx, run)
    fmt = job.payload.get("format", "native")
    out = ctx.runs_dir / f"run-{run.id}" / f"export-{fmt}"
    labels = get_project(ctx.db, run.project_id).labels
    summary = {"method": run.method, "preset": run.preset, "seed": run.seed, "gold_labels": len(run.gold_snapshot),
               "round": (run.metrics or {}).get("chosen_round")}  # fmt: skip
    export_model(model, fmt, out, labels, run.metrics or {}, summary, prompt_of(get_prompt(ctx.db, run.prompt_id)))
    exportq.archive(out)  # the download, ready before the page offers it
    art = exportq.add_artifact(ctx.db, run.project_id, run.id, f"adapter-{fmt}", out)
    return {"artifact_id": art.id, "path": art.path, "size": art.size, "sha256": art.sha256, "round": summary["round"]}


DIVERSE_LIMIT = 20_000  # texts clustered for the diverse order: a labeling queue, not a pass over a huge pool


def texts_model(bb: Any, task: str) -> ListModel:
    """A model without adapters whose prompt is the task's text slots alone: what `feature_cache.row_features` needs
    to read the texts' frozen features (they depend on nothing else)."""
    slots = "{text_a} {mask} {text_b}" if task == "pair" else "{text} {mask}"
    return ListModel(bb, Prompt(slots, ("a", "b")), head="classic", adapter=None)


def diversity(ctx: JobContext, job: Job, cancel: threading.Event) -> dict[str, Any]:
    """A labeling order that covers the data (k-means on frozen embeddings of the pool, or of a random sample of
    `DIVERSE_LIMIT` texts from a larger pool), and, before any run, the prompt's own suggestions so that "most
    uncertain" can follow."""
    import numpy as np
    import torch

    from list_core.prompt_tools import diverse_order

    project = get_project(ctx.db, job.project_id)
    bb = ctx.backbone(project.backbone)
    pool = ExampleRows(ctx.db, example_ids(ctx.db, project.id, "pool"))
    if not len(pool):
        return {"ordered": 0}
    picked = range(len(pool))
    if len(pool) > DIVERSE_LIMIT:
        picked = sorted(np.random.default_rng(0).choice(len(pool), DIVERSE_LIMIT, replace=False).tolist())
    model, parts = texts_model(bb, project.task), []
    for part in spans(len(picked), 512):  # kept in the feature cache: the prompt's suggestions below reuse them
        ctx.make_way(job)  # queued by an import, it lets the user's jobs go first (a second try reads the cache)
        jobq.progress(ctx.db, job.id, "embedding", part.start, len(picked))
        parts.append(bb.feature_cache.row_features(model, pool.take(picked[part.start : part.stop])))
    x = torch.cat(parts).numpy()  # (N, D)
    k = int(job.payload.get("k", project.target_gold))
    order = diverse_order(x, k)
    set_label_queue(ctx.db, project.id, [pool.ids[picked[i]] for i in order], "diverse")
    prompt = latest_prompt(ctx.db, project.id)
    if prompt is not None and not predq.has_run_predictions(ctx.db, project.id):
        _prompt_suggestions(ctx, job, project.id, prompt_of(prompt))
    return {"ordered": len(order), "clusters": min(len(picked), k), "of": len(pool)}


def embed(ctx: JobContext, job: Job, cancel: threading.Event) -> dict[str, Any]:
    """After an import, on a sentence encoder: the frozen features of the texts a prompt scoring reads (gold, the
    pool's sample, the evaluation sample) into the backbone's `feature_cache`, so the user's first "Score prompts"
    does not wait for them. A backbone with an MLM head reads the prompt's template instead: nothing to prepare."""
    project = get_project(ctx.db, job.project_id)
    bb = ctx.backbone(project.backbone)
    if bb.head_pretrained:
        return {"embedded": 0, "why": "the backbone's MLM head reads each prompt's template: nothing to prepare"}
    from list_core.prompt_tools import candidate_words, word_features, zero_shot_model

    scored = _scored_texts(ctx, project.id)
    texts = [*scored.rows, *scored.sample, *[e.row() for e in scored.evals]]
    model = texts_model(bb, project.task)
    jobq.progress(ctx.db, job.id, "reading the texts", 0, len(texts))
    for part in spans(len(texts), 256):
        if cancel.is_set():
            break
        ctx.make_way(job)  # a scoring the user asked for goes first; this job then reads the rest from the cache
        bb.feature_cache.row_features(model, texts[part.start : part.stop])
        jobq.progress(ctx.db, job.id, "reading the texts", part.stop, len(texts))
    words = []
    if (saved := latest_prompt(ctx.db, project.id)) is not None and not cancel.is_set():
        # the label-word suggestions' candidates in the saved prompt's template (as `prompt_eval` picks them)
        words = candidate_words([*scored.rows, *scored.suggest_pool()])
        try:
            word_features(zero_shot_model(bb, prompt_of(saved)), words)
        except PromptError:  # a prompt this backbone cannot read: the workbench's board will say why
            words = []
    return {"embedded": len(texts), "words": len(words), "cached": len(bb.feature_cache)}


HANDLERS = {
    "list_run": list_run,
    "prompt_eval": prompt_eval,
    "predict": predict,
    "export": export,
    "diversity": diversity,
    "embed": embed,
    "prompt_suggest": prompt_suggest,
}
