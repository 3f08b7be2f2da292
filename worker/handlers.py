"""Job handlers: a LiST run (any method), prompt evaluation, prediction, export. Each returns a JSON result."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import torch

from list_core.backbone import Backbone, load_backbone
from list_core.baselines import run_method
from list_core.config import TrainConfig
from list_core.events import Event
from list_core.model import ListModel
from list_core.prompts import Prompt, PromptError
from list_core.self_training import RunResult, TaskData
from storage import all_examples, gold_labels
from storage import jobs as jobq
from storage import runs as runq
from storage.db import now
from storage.models import Job, Run
from storage.projects import get_project, get_prompt
from storage.queue import excluded_ids, set_label_queue

from .runner import Worker

ADAPTER_METHODS = ("list", "prompt", "classic")


def backbone(w: Worker, name: str) -> Backbone:
    """Load a backbone once per worker, keeping the `LIST_BACKBONE_CACHE` (default 2) most recently used."""
    if name in w.backbones:
        w.backbones.move_to_end(name)
        return w.backbones[name]  # type: ignore[return-value]
    keep = max(1, int(os.environ.get("LIST_BACKBONE_CACHE", "2")))
    while len(w.backbones) >= keep:  # free the least recently used before loading another
        w.backbones.popitem(last=False)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    w.backbones[name] = load_backbone(name)
    return w.backbones[name]  # type: ignore[return-value]


class ProgressWriter:
    """Turns engine events into job progress (throttled, with a per-stage ETA) and round records."""

    def __init__(
        self, w: Worker, job: Job, run: Run | None, example_ids: list[int] | None = None, clock=time.monotonic
    ) -> None:
        self.w, self.job, self.run, self.clock = w, job, run, clock
        self.stage: str | None = None
        self.stage_start = (0.0, 0)
        self.last_write = 0.0
        self.resumed_from: int | None = None
        self.rounds = int(run.config.get("rounds", 0)) if run is not None else 0
        self.round_t0: float | None = None  # when the current round started
        self.round_seconds: list[float] = []
        self.done_rounds = 0

    def __call__(self, e: Event) -> None:
        t = self.clock()
        if e.stage == "resume":
            self.resumed_from = e.round
        if e.stage != self.stage:
            self.stage, self.stage_start = e.stage, (t, e.step)
        if e.stage in ("round_end", "resume"):
            if e.stage == "round_end" and e.round and self.round_t0 is not None:
                self.round_seconds.append(t - self.round_t0)
            self.round_t0, self.done_rounds = t, e.round or 0
        if e.stage == "round_end" and self.run is not None:
            table = [{**row, "example_id": row["id"]} for row in (e.table or [])]
            runq.save_round(self.w.db, self.run.id, e.round or 0, e.metrics or {}, table)
        eta = None
        t0, s0 = self.stage_start
        if e.total and e.step > s0 and t > t0:
            eta = (e.total - e.step) * (t - t0) / (e.step - s0)
        if e.message or t - self.last_write >= 0.5 or e.stage in ("round_end", "done", "resume"):
            label = e.stage if e.round is None else f"{e.stage} (round {e.round})"
            run_eta = self.run_eta(t) if e.stage != "done" else 0.0
            jobq.progress(self.w.db, self.job.id, label, e.step, e.total, eta, e.message or None, run_eta)
            self.last_write = t

    def run_eta(self, t: float) -> float | None:
        """Seconds left in the run: the rounds still to go at the mean measured round time (None until a
        round has been timed)."""
        if not self.round_seconds or self.round_t0 is None:
            return None
        per_round = sum(self.round_seconds) / len(self.round_seconds)
        left_in_current = max(0.0, per_round - (t - self.round_t0)) if self.done_rounds < self.rounds else 0.0
        return left_in_current + per_round * max(0, self.rounds - self.done_rounds - 1)


def _task(w: Worker, run: Run) -> tuple[TaskData, list[int]]:
    project = get_project(w.db, run.project_id)
    gold = dict((int(a), int(b)) for a, b in run.gold_snapshot)
    pool = all_examples(w.db, project.id, "pool")
    evals = all_examples(w.db, project.id, "eval")
    rejected = excluded_ids(w.db, project.id)
    g = [e for e in pool if e.id in gold]
    u = [e for e in pool if e.id not in gold and e.id not in rejected]
    task = TaskData(
        labels=project.labels,
        gold_rows=[e.row() for e in g],
        gold_labels=[gold[e.id] for e in g],
        unlabeled_rows=[e.row() for e in u],
        unlabeled_ids=[e.id for e in u],
        eval_rows=[e.row() for e in evals] or None,
        eval_labels=[int(e_label) for e_label in (_eval_labels(w, project.id))] or None,
    )
    return task, [e.id for e in pool]


def _eval_labels(w: Worker, project_id: int) -> list[int]:
    return [
        r[0]
        for r in w.db.execute(
            "SELECT eval_label FROM examples WHERE project_id = ? AND split = 'eval' ORDER BY id", [project_id]
        )
    ]


def _prompt(w: Worker, run: Run) -> Prompt:
    p = get_prompt(w.db, run.prompt_id)
    return Prompt(p.template, tuple(p.label_words))


def checkpoint_dir(w: Worker, run: Run) -> Path:
    return w.runs_dir / f"run-{run.id}"


def list_run(w: Worker, job: Job, cancel: threading.Event) -> dict[str, Any]:
    run = runq.get_run(w.db, job.payload["run_id"])
    prompt = _prompt(w, run)
    cfg = TrainConfig.from_dict(run.config)
    task, pool_ids = _task(w, run)
    bb = backbone(w, run.backbone)
    ckpt = checkpoint_dir(w, run)
    if not getattr(bb, "_hash", None):
        bb._hash = bb.weights_hash()  # type: ignore[attr-defined]
    runq.update_run(w.db, run.id, status="running", backbone_hash=bb._hash, checkpoint_dir=str(ckpt))  # type: ignore[attr-defined]
    progress = ProgressWriter(w, job, run)
    try:
        result = run_method(
            run.method, bb, prompt, task, cfg,
            callback=progress, should_cancel=cancel.is_set,
            checkpoint_dir=str(ckpt) if run.method in ADAPTER_METHODS else None,
        )  # fmt: skip
        jobq.progress(w.db, job.id, "predicting", message="scoring every example for suggestions")
        pool_rows = [r.row() for r in all_examples(w.db, run.project_id, "pool")]
        probs = result.predict_proba(pool_rows, cfg.eval_batch_size)
        runq.save_predictions(
            w.db, run.project_id, run.id, [{"example_id": i, "probs": p.tolist()} for i, p in zip(pool_ids, probs)]
        )
        metrics: dict[str, Any] = {}
        if isinstance(result, RunResult):
            metrics = dict(result.rounds[-1] if result.rounds else result.teacher)
            metrics["stage_seconds"] = result.stage_seconds
            metrics["parameters"] = result.model.parameter_report()
            head = result.model.head_kind
        else:
            head = None
            if task.eval_rows:
                p = result.predict_proba(task.eval_rows, cfg.eval_batch_size).argmax(-1)
                metrics["eval_accuracy"] = float((p == torch.tensor(task.eval_labels)).float().mean())
            p = result.predict_proba(task.gold_rows, cfg.eval_batch_size).argmax(-1)
            metrics["gold_accuracy"] = float((p == torch.tensor(task.gold_labels)).float().mean())
        runq.update_run(w.db, run.id, status="succeeded", metrics=metrics, head=head, finished_at=now())
        return {"run_id": run.id, "metrics": metrics, "resumed_from": progress.resumed_from}
    except BaseException as e:
        status = "cancelled" if type(e).__name__ == "Cancelled" else "failed"
        runq.update_run(w.db, run.id, status=status, finished_at=now())
        raise


def load_run_model(w: Worker, run: Run) -> ListModel:
    """The final model of a finished adapter run, from its last checkpoint (trainable weights only)."""
    from list_core.checkpoint import RunCheckpoint

    if run.method not in ADAPTER_METHODS or not run.checkpoint_dir:
        raise ValueError(f"run {run.id} ({run.method}) has no adapter weights to load")
    cfg = TrainConfig.from_dict(run.config)
    bb = backbone(w, run.backbone)
    model = ListModel(bb, _prompt(w, run), run.head or cfg.head, cfg.adapter, cfg.pooling, cfg.max_length)
    ck = RunCheckpoint.__new__(RunCheckpoint)
    ck.dir = Path(run.checkpoint_dir)
    rounds = sorted(int(p.name.split("-")[1]) for p in ck.dir.glob("round-*"))
    state, _ = ck.load_round(rounds[-1])
    model.load_trainable_state(state)
    return model


def predict(w: Worker, job: Job, cancel: threading.Event) -> dict[str, Any]:
    """Suggestions for the project's examples, or probabilities for given texts (`payload["rows"]`)."""
    run = runq.get_run(w.db, job.payload["run_id"])
    model = load_run_model(w, run)
    if "rows" in job.payload:
        probs = model.predict_proba(job.payload["rows"])
        return {"probs": probs.tolist()}
    examples = all_examples(w.db, run.project_id, "pool")
    probs = model.predict_proba([e.row() for e in examples])
    runq.save_predictions(
        w.db, run.project_id, run.id, [{"example_id": e.id, "probs": p.tolist()} for e, p in zip(examples, probs)]
    )
    return {"predicted": len(examples)}


def prompt_eval(w: Worker, job: Job, cancel: threading.Event) -> dict[str, Any]:
    """Zero-shot accuracy and loss of candidate prompts on the gold labels, and label-word suggestions."""
    project = get_project(w.db, job.project_id)
    bb = backbone(w, job.payload.get("backbone") or project.backbone)
    gold = gold_labels(w.db, project.id)
    ex = {e.id: e for e in all_examples(w.db, project.id, "pool")}
    rows = [ex[i].row() for i, _ in gold]
    y = torch.tensor([lab for _, lab in gold])
    board = []
    for k, cand in enumerate(job.payload.get("candidates", [])):
        jobq.progress(w.db, job.id, "scoring prompts", k, len(job.payload["candidates"]))
        entry: dict[str, Any] = {"template": cand["template"], "label_words": cand["label_words"]}
        try:
            prompt = Prompt(cand["template"], tuple(cand["label_words"]))
            model = ListModel(bb, prompt, head="prompt", adapter=None)
            if rows:
                logits = model.logits(model.encode(rows))
                entry["accuracy"] = float((logits.argmax(-1) == y).float().mean())
                entry["loss"] = float(torch.nn.functional.cross_entropy(logits, y))
        except PromptError as e:
            entry["error"] = str(e)
        board.append(entry)
    board.sort(key=lambda e: (-(e.get("accuracy") or -1), e.get("loss", float("inf"))))
    result: dict[str, Any] = {"leaderboard": board, "gold": len(rows), "head_pretrained": bb.head_pretrained}
    if not bb.head_pretrained:
        result["note"] = "this backbone has no pretrained MLM head: zero-shot prompt scores are at chance"
    if job.payload.get("suggest") and rows and job.payload.get("candidates"):
        result["suggestions"] = suggest_label_words(
            bb, Prompt(job.payload["candidates"][0]["template"], ("a", "b")), rows, y, project.labels
        )
    return result


@torch.no_grad()
def suggest_label_words(
    bb: Backbone, prompt: Prompt, rows: list[dict], y: torch.Tensor, labels: list[str], k: int = 5
) -> dict[str, list[str]]:
    """Per class, the whole-word tokens the MLM head favours at the mask for that class's gold examples
    more than for the others (mean log-probability difference)."""
    from list_core.data import Encoded, collate

    enc = Encoded.of(prompt, bb.tokenizer, rows, 128)
    logp = []
    for s in range(0, len(enc), 32):
        idx = list(range(s, min(s + 32, len(enc))))
        b = collate(enc, idx, bb.tokenizer.pad_token_id or 0, bb.device)
        out = bb.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits  # (B, T, V)
        logp.append(out[torch.arange(len(idx)), b["mask_pos"]].log_softmax(-1).float().cpu())
    lp = torch.cat(logp)  # (N, V)
    vocab = bb.tokenizer.convert_ids_to_tokens(list(range(lp.shape[1])))
    ok = torch.tensor([t is not None and t.lstrip("Ġ▁").isalpha() and not t.startswith("##") for t in vocab])
    out = {}
    for c, name in enumerate(labels):
        if not (y == c).any():
            continue
        score = lp[y == c].mean(0) - lp[y != c].mean(0) if (y != c).any() else lp[y == c].mean(0)
        score[~ok] = -float("inf")
        out[name] = [vocab[i].lstrip("Ġ▁") for i in score.topk(k).indices.tolist()]
    return out


def export(w: Worker, job: Job, cancel: threading.Event) -> dict[str, Any]:
    """Export a run's adapter (native, PEFT LoRA or folded model) and record it as an artifact."""
    from list_core.export import save_native
    from list_core.folded import save_folded
    from list_core.peft_format import save_peft

    run = runq.get_run(w.db, job.payload["run_id"])
    model = load_run_model(w, run)
    fmt = job.payload.get("format", "native")
    out = w.runs_dir / f"run-{run.id}" / f"export-{fmt}"
    labels = get_project(w.db, run.project_id).labels
    if fmt == "native":
        summary = {"method": run.method, "preset": run.preset, "seed": run.seed, "gold_labels": len(run.gold_snapshot)}
        save_native(model, out, metrics=run.metrics or {}, labels=labels, summary=summary)
    elif fmt == "peft":
        save_peft(model, out, base_path=model.backbone.name)
    elif fmt == "folded":
        save_folded(model, out, labels)
    else:
        raise ValueError(f"export format {fmt!r}: choose native, peft or folded")
    art = runq.add_artifact(w.db, run.project_id, run.id, f"adapter-{fmt}", out)
    return {"artifact_id": art.id, "path": art.path, "size": art.size, "sha256": art.sha256}


def diversity(w: Worker, job: Job, cancel: threading.Event) -> dict[str, Any]:
    """A labeling order that covers the data: k-means on frozen backbone embeddings of the unlabeled pool,
    the example nearest each centre first (largest clusters first), then the rest round-robin by cluster."""
    import numpy as np
    from sklearn.cluster import KMeans

    from list_core.baselines import embed

    project = get_project(w.db, job.project_id)
    bb = backbone(w, project.backbone)
    examples = all_examples(w.db, project.id, "pool")
    if not examples:
        return {"ordered": 0}
    jobq.progress(w.db, job.id, "embedding", 0, len(examples))
    slot_template = "{text_a} {mask} {text_b}" if project.task == "pair" else "{text} {mask}"
    x = embed(bb, Prompt(slot_template, ("a", "b")), [e.row() for e in examples])
    k = max(1, min(int(job.payload.get("k", project.target_gold)), len(examples)))
    km = KMeans(n_clusters=k, n_init=3, random_state=0).fit(x)
    dist = np.linalg.norm(x - km.cluster_centers_[km.labels_], axis=1)
    clusters = sorted(range(k), key=lambda c: -(km.labels_ == c).sum())
    members = {c: sorted(np.flatnonzero(km.labels_ == c), key=lambda i: dist[i]) for c in clusters}
    order: list[int] = []
    while any(members.values()):
        for c in clusters:
            if members[c]:
                order.append(examples[members[c].pop(0)].id)
    set_label_queue(w.db, project.id, order, "diverse")
    return {"ordered": len(order), "clusters": k}


HANDLERS = {
    "list_run": list_run,
    "prompt_eval": prompt_eval,
    "predict": predict,
    "export": export,
    "diversity": diversity,
}
