"""Benchmark harness on few-shot data folders (the `../shared/data` format) against baselines and SetFit.

    python -m list_core.bench --data ../shared/data/mr ../shared/data/subj --k 30 --seeds 1 2 3 4 5 \\
        --methods zero-shot,linear-probe,self-train-probe,classic,prompt,list,setfit --preset fast --out bench_out/results.json
    python -m list_core.bench --merge bench_out/part-*.json --command "how they were made" --out bench_out/all.json
    python -m list_core.bench --report bench_out/results.json > BENCHMARKS.md

Gold labels are only the examples named by `fewshot/k{K}-s{seed}.jsonl`; the rest of the pool is unlabeled
(its labels are read only after a run, to report pseudo-label accuracy); test labels are used only to score.
Each (set, method, seed) runs in a fresh process so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import resource
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bench_report import merge, method_order, report, summarise, summary, table
from .lexical import row_text
from .methods import REGISTRY, Method, get, register

# the external peer, registered beside the engine's methods (needs `pip install -r requirements-bench.txt`)
for _name, _title in (("setfit", "SetFit (contrastive fine-tuning, plain)"),
                      ("setfit-templated", "SetFit with label-word templated examples")):  # fmt: skip
    if _name not in REGISTRY:
        register(
            Method(_name, _title, "SetFit 1.2 on the same backbone", f"list_core.bench:run_{_name.replace('-', '_')}")
        )


@dataclass
class BenchData:
    name: str
    meta: dict[str, Any]
    pool: list[dict[str, Any]]
    test: list[dict[str, Any]]
    root: Path

    @property
    def slots(self) -> tuple[str, ...]:
        return ("text_a", "text_b") if self.meta["task"] == "pair" else ("text",)

    def row(self, r: dict[str, Any]) -> dict[str, str]:
        return {s: r[s] for s in self.slots}

    def label(self, r: dict[str, Any]) -> int:
        return self.meta["labels"].index(r["label"])

    def prompt(self):
        """The set's own prompt: its template and one label word per class, from meta.json."""
        from .prompts import Prompt

        return Prompt(self.meta["template"], tuple(self.meta["label_words"][lab] for lab in self.meta["labels"]))

    def gold_ids(self, k: int, seed: int) -> list[str]:
        path = self.root / "fewshot" / f"k{k}-s{seed}.jsonl"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing (K={k}, seed={seed})")
        return [json.loads(x)["id"] for x in path.read_text().splitlines() if x.strip()]


def load_data(root: str | Path) -> BenchData:
    """Read a data folder: meta.json, pool.jsonl, test.jsonl, fewshot/."""
    root = Path(root)
    if not (root / "meta.json").exists():
        raise FileNotFoundError(f"{root}: no meta.json (is this a benchmark data folder?)")

    def jsonl(name: str) -> list[dict[str, Any]]:
        return [json.loads(x) for x in (root / name).read_text().splitlines() if x.strip()]

    meta = json.loads((root / "meta.json").read_text())
    return BenchData(meta.get("name", root.name), meta, jsonl("pool.jsonl"), jsonl("test.jsonl"), root)


def make_task(data: BenchData, k: int, seed: int):
    """TaskData with the K gold examples and the unlabeled rest of the pool (no labels)."""
    from .self_training import TaskData

    gold = set(data.gold_ids(k, seed))
    g = [r for r in data.pool if r["id"] in gold]
    u = [r for r in data.pool if r["id"] not in gold]
    return TaskData(
        labels=list(data.meta["labels"]),
        gold_rows=[data.row(r) for r in g],
        gold_labels=[data.label(r) for r in g],
        unlabeled_rows=[data.row(r) for r in u],
        unlabeled_ids=[r["id"] for r in u],
    ), u


def _setfit(backbone, prompt, task, cfg, templated: bool):
    """SetFit (1 epoch; 20 contrastive pair iterations, 10 for 5+ classes) on the backbone's own weights. With
    `templated`, each class also gets 8 examples "the template with its label word" (setfit's templated
    dataset: the same verbaliser sentences the similarity head uses)."""
    import tempfile

    import numpy as np
    import torch
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments, get_templated_dataset

    from .locate import resolve_backbone_path

    def join(row: dict[str, str]) -> str:
        return " ".join(row[s] for s in prompt.text_slots)

    iters = 10 if len(task.labels) >= 5 else 20
    model = SetFitModel.from_pretrained(resolve_backbone_path(backbone.name))
    train = Dataset.from_dict({"text": [join(r) for r in task.gold_rows], "label": task.gold_labels})
    if templated:
        template = prompt.verbaliser_sentences()  # per class, one sentence per word: pass the first word's form
        words = [g[0] for g in prompt.words]
        pattern = template[0][0].replace(words[0], "{}", 1) if words[0] in template[0][0] else "{}"
        train = get_templated_dataset(train, candidate_labels=words, template=pattern, sample_size=8)
    out_dir = tempfile.mkdtemp(prefix="setfit-")  # SetFit writes checkpoints; keep them out of the working tree
    args = TrainingArguments(output_dir=out_dir, num_epochs=1, num_iterations=iters, seed=cfg.seed, batch_size=16)
    Trainer(model=model, args=args, train_dataset=train).train()

    class Wrapped:
        setfit = {"num_epochs": 1, "num_iterations": iters, "templated": templated, "train_size": len(train)}

        def predict_proba(self, rows, batch_size=64):
            p = model.predict_proba([join(r) for r in rows], batch_size=batch_size, as_numpy=True)
            return torch.from_numpy(np.asarray(p, dtype=np.float32))

    return Wrapped()


def run_setfit(backbone, prompt, task, cfg, callback=None, should_cancel=None, checkpoint_dir=None):
    return _setfit(backbone, prompt, task, cfg, templated=False)


def run_setfit_templated(backbone, prompt, task, cfg, callback=None, should_cancel=None, checkpoint_dir=None):
    return _setfit(backbone, prompt, task, cfg, templated=True)


def _spec(method: Method) -> dict[str, Any] | None:
    """A method's fields for a fresh process, when its runner can be imported there by name."""
    from dataclasses import asdict

    return asdict(method) if isinstance(method.runner, str) else None


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """One (set, method, seed): train, score on test, measure time and peak RSS."""
    import torch

    from .backbone import load_backbone
    from .config import preset
    from .self_training import RunResult

    torch.set_num_threads(job.get("threads") or torch.get_num_threads())
    if job.get("method_spec"):  # a method registered in the parent process (a fresh process starts without it)
        register(Method(**job["method_spec"]), replace=True)
    data = load_data(job["data"])
    task, unlabeled = make_task(data, job["k"], job["seed"])
    cfg = preset(job["preset"], seed=job["seed"]).with_knobs(job.get("overrides", {}))
    prompt = data.prompt()
    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    bb = load_backbone(job["backbone"])
    traced_p: dict[int, torch.Tensor] = {}  # (N, C) test probabilities after each round
    teacher_state: dict[str, torch.Tensor] = {}
    test_rows, test_y = [data.row(r) for r in data.test], torch.tensor([data.label(r) for r in data.test])

    def trace(e) -> None:  # analysis only: test accuracy after each round, never fed back into training
        if job.get("trace_test") and e.stage == "round_end" and e.model is not None:
            traced_p[e.round] = e.model.predict_proba(test_rows)
            if e.round == 0:
                teacher_state.update(e.model.trainable_state())
        if e.stage == "setup" and e.metrics and "head" in e.metrics:
            extra["head"] = e.metrics["head"]

    result = get(job["method"]).run(bb, prompt, task, cfg, callback=trace)
    if traced_p:
        extra["round_test_accuracy"] = {r: float((p.argmax(-1) == test_y).float().mean()) for r, p in traced_p.items()}
    if hasattr(result, "setfit"):
        extra["setfit"] = result.setfit
    train_s = time.perf_counter() - t0
    proba = result.predict_proba(test_rows)
    y = test_y
    out = {
        "set": data.name,
        "method": job["method"],
        "config": cfg.to_dict(),
        "seed": job["seed"],
        "k": job["k"],
        "accuracy": float((proba.argmax(-1) == y).float().mean()),
        "seconds": time.perf_counter() - t0,
        "train_seconds": train_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **extra,
    }
    if isinstance(result, RunResult):
        from safetensors.torch import save

        from .lexical import split_state

        state = result.model.trainable_state()
        out["trainable_params"] = sum(v.numel() for v in split_state(state)[0].values())  # the view is no parameter
        out["adapter_bytes"] = len(save({k: v.contiguous() for k, v in state.items()}))
        out["head"] = result.model.head_kind
        out["stage_seconds"] = result.stage_seconds
        truth = torch.tensor([data.label(r) for r in unlabeled])
        out["rounds"] = [_round_analysis(m, t, truth) for m, t in zip(result.rounds, result.tables)]
        for analysis, paired in zip(out["rounds"], _paired_with_first(result.tables, truth)):
            analysis.update(paired)
        out["teacher"] = result.teacher.to_dict()
        if result.model.lexical is not None:  # the same model without its lexical view (`lexical_weight`)
            lexical, result.model.lexical = result.model.lexical, None
            try:
                p = result.model.predict_proba(test_rows)
            finally:
                result.model.lexical = lexical
            out["accuracy_without_lexical"] = float((p.argmax(-1) == y).float().mean())
            texts = [row_text(x, prompt.text_slots) for x in test_rows]
            out["accuracy_lexical_alone"] = float((lexical.proba(texts).argmax(-1) == y).float().mean())
        if teacher_state and result.rounds:
            out["teacher_mix_test_accuracy"] = _teacher_mixes(result.model, teacher_state, traced_p, proba, test_rows,
                                                              y)  # fmt: skip
    return out


def _teacher_mixes(model, teacher_state, round_p, final_p, rows, y) -> dict[str, float]:
    """Test accuracy of ways to keep the teacher in the final model (analysis only, `--trace-test`): probabilities
    averaged with the teacher's or over every round, and the final weights moved half-way back to the teacher's
    (WiSE-FT style; each adapter keeps its down-projection, so its change `W_up W_down` halves)."""
    import torch

    def acc(p: torch.Tensor) -> float:
        return float((p.argmax(-1) == y).float().mean())

    from .training import toward_teacher

    final = model.trainable_state()
    model.load_trainable_state(toward_teacher(final, teacher_state, 0.5))
    try:
        half_p = model.predict_proba(rows)
    finally:
        model.load_trainable_state(final)
    return {
        "teacher+last": acc((round_p[0] + final_p) / 2),
        "all_rounds": acc(torch.stack([round_p[r] for r in sorted(round_p)]).mean(0)),
        "weights_half": acc(half_p),
    }


def _round_analysis(record, table, truth) -> dict[str, Any]:
    """Pseudo-label accuracy and how meta-weights relate to correctness (pool labels read only here)."""
    import torch

    idx = torch.tensor([r.index for r in table])
    lab = torch.tensor([r.label for r in table])
    correct = (lab == truth[idx]).float()
    w = [(r.weight, float(c)) for r, c in zip(table, correct) if r.weight is not None]
    corr = None
    if len(w) > 2:
        wt = torch.tensor(w)
        if wt[:, 0].std() > 0 and wt[:, 1].std() > 0:
            corr = float(torch.corrcoef(wt.T)[0, 1])
    return {
        "round": record.round,
        "pseudo_label_accuracy": float(correct.mean()),
        "weight_correctness_corr": corr,
        "flip_rate": record.flip_rate,
        "mean_confidence": record.mean_confidence,
        "seconds": record.seconds,
    }


def _paired_with_first(tables, truth) -> list[dict[str, Any]]:
    """Each round's pseudo-label accuracy and round 1's on the pool texts both labeled (a round draws its own sample
    when `unlabeled_limit` is below the pool, so the plain accuracies compare different texts); pool labels read
    only here."""
    if not tables:
        return []
    first = {r.index: r.label for r in tables[0]}
    out = []
    for rows in tables:
        shared = [r for r in rows if r.index in first]
        idx = [r.index for r in shared]
        now = sum(r.label == int(truth[r.index]) for r in shared)
        then = sum(first[i] == int(truth[i]) for i in idx)
        n = max(1, len(shared))
        out.append({"shared_with_round_1": len(shared), "pseudo_label_accuracy_shared": now / n,
                    "round_1_accuracy_shared": then / n})  # fmt: skip
    return out


def machine() -> dict[str, Any]:
    import platform

    import psutil
    import torch

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


@contextlib.contextmanager
def _children_skip_main_script():
    """A spawned child re-runs the parent's `__main__` script when that is a file (multiprocessing's spawn). The
    bench's children need only `list_core.bench` (run_one and the job's method spec), so when the bench is called
    from another program (a test runner, a notebook, an app) that program must not run again in every child."""
    main_mod = sys.modules.get("__main__")
    path = getattr(main_mod, "__file__", None)
    if main_mod is None or path is None or getattr(main_mod, "__spec__", None) is not None:
        yield  # `python -m list_core.bench` (a module spec: children import it by name) or no script at all
        return
    del main_mod.__file__
    try:
        yield
    finally:
        main_mod.__file__ = path


def _exit_with_parent(parent: int) -> None:
    """Job-process initializer: exit once the bench that started it is gone (killed, even with SIGKILL), instead
    of training on as an orphan."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def job_pool() -> ProcessPoolExecutor:
    """One fresh spawned process for a job (its own peak RSS), stopped with the bench."""
    return ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), initializer=_exit_with_parent,
                               initargs=(os.getpid(),))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m list_core.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--data", nargs="+", help="data folders (meta.json, pool.jsonl, test.jsonl, fewshot/)")
    ap.add_argument("--k", type=int, default=30)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--methods", default="linear-probe,self-train-probe,prompt,list")
    ap.add_argument("--preset", default="fast")
    ap.add_argument(
        "--backbone", default=None, help="local folder or hub id (default: $LIST_BACKBONE or all-MiniLM-L6-v2)"
    )
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a TrainConfig field")
    ap.add_argument("--out", default="bench_out/results.json")
    ap.add_argument(
        "--trace-test",
        action="store_true",
        help="analysis: record test accuracy after every round (slower; never used in training)",
    )
    ap.add_argument(
        "--report", nargs="+", metavar="RESULTS_JSON", help="print BENCHMARKS.md from results files and exit"
    )
    ap.add_argument(
        "--logs", nargs="*", default=[], metavar="LOG", help="with --report: benchmark script outputs to include"
    )
    ap.add_argument("--note", default=None, metavar="MD", help="with --report: a markdown file placed under the title")
    ap.add_argument("--merge", nargs="+", metavar="RESULTS_JSON", help="merge results files into --out and exit")
    ap.add_argument(
        "--summary",
        nargs="+",
        metavar="RESULTS_JSON",
        help='print {"K": {"set": {"method": {"mean", "std", "n"}}}} as JSON and exit',
    )
    ap.add_argument("--command", action="append", default=[], help="with --merge: a command that made the files")
    ap.add_argument("--tag", action="append", default=[], metavar="REGEX=TEXT", help="with --merge: tag by file path")
    ap.add_argument(
        "--as-preset",
        default=None,
        metavar="NAME",
        help="with --merge: a run whose recorded config is exactly preset NAME's loses its --set tag",
    )
    args = ap.parse_args(argv)
    if args.summary:
        try:
            print(json.dumps(summary([json.loads(Path(p).read_text()) for p in args.summary]), indent=1))
        except (ValueError, KeyError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    if args.merge:
        merged = merge(args.merge, args.command, args.tag, args.as_preset)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(merged, indent=1))
        print(f"merged {len(merged['results'])} results from {len(args.merge)} files into {args.out}", file=sys.stderr)
        return 0
    if args.report:
        note = Path(args.note).read_text() if args.note else ""
        text = report([json.loads(Path(p).read_text()) for p in args.report], args.report, note)
        if args.logs:
            text += "\n## Benchmark scripts (speed, memory, calibration, same-seed comparison)\n\nOutputs of the benchmark scripts, verbatim (first line of each: the command).\n"
            for log in args.logs:
                text += f"\n### {Path(log).stem}\n\n```\n{Path(log).read_text().strip()}\n```\n"
        print(text)
        return 0
    if not args.data:
        ap.error("--data is required")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in REGISTRY]
    if bad:
        ap.error(f"unknown methods {bad}; choose from {list(method_order())}")
    from .config import parse_overrides

    try:
        overrides = parse_overrides(args.set)
    except ValueError as e:
        ap.error(str(e))
    for d in args.data:
        if not (Path(d) / "meta.json").exists():
            print(f"skipping {d}: not found (the benchmark data lives in ../shared/data)", file=sys.stderr)
    datas = [d for d in args.data if (Path(d) / "meta.json").exists()]
    if not datas:
        print("no benchmark data folder found: nothing to run", file=sys.stderr)
        return 2
    jobs = [
        {
            "data": d,
            "method": m,
            "seed": s,
            "k": args.k,
            "preset": args.preset,
            "backbone": args.backbone,
            "overrides": overrides,
            "trace_test": args.trace_test,
            "method_spec": _spec(REGISTRY[m]),
        }
        for s in args.seeds  # seed-major: a run cut short still has every set and method for the first seeds
        for d in datas
        for m in methods
    ]
    from tqdm import tqdm

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    with tqdm(total=len(jobs), desc="bench", file=sys.stderr) as bar, _children_skip_main_script():
        for job in jobs:
            bar.set_postfix_str(f"{Path(job['data']).name} {job['method']} s{job['seed']}")
            # a fresh process per job (its own peak RSS); a process that dies fails its job instead of hanging
            with job_pool() as pool:
                try:
                    results.append(pool.submit(run_one, job).result())
                except Exception as e:  # one failed job must not lose the others
                    print(
                        f"\nFAILED {job['data']} {job['method']} seed {job['seed']}: {type(e).__name__}: {e}",
                        file=sys.stderr,
                    )
            bar.update(1)
            out.write_text(json.dumps({"args": vars(args), "machine": machine(), "results": results}, indent=1))
    print(table(summarise(results)))
    print(f"\nwrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
