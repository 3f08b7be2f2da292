"""Does temperature scaling make LiST's confidence mean what it says? `python -m benchmarks.calibration SET K SEED`.

Trains the unmodified `fast` preset on the default backbone (K gold examples of `../shared/data/SET`, the rest of the
pool unlabeled), uses the first 500 test texts as the project's evaluation split (as a user would import one), and
prints the expected calibration error on the remaining test texts before and after the temperature the app fits on
that split, plus the cross-fitted figure the app itself reports.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from list_core import TaskData, load_backbone, preset, run_list
from list_core.calibration import expected_calibration_error
from list_core.prompts import Prompt
from list_core.trained import calibrate

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main(argv: list[str]) -> int:
    name, k, seed = argv[0], int(argv[1]), int(argv[2])
    folder = DATA / name
    if not (folder / "meta.json").exists():
        print(f"no benchmark data in {folder}: nothing to do", file=sys.stderr)
        return 2
    meta = json.loads((folder / "meta.json").read_text())
    labels = meta["labels"]

    def label(r: dict) -> int:
        return labels.index(r["label"]) if isinstance(r["label"], str) else int(r["label"])

    test = [json.loads(x) for x in (folder / "test.jsonl").read_text().splitlines() if x.strip()]
    gold_ids = {json.loads(x)["id"] for x in (folder / f"fewshot/k{k}-s{seed}.jsonl").read_text().splitlines() if x}
    pool = [json.loads(x) for x in (folder / "pool.jsonl").read_text().splitlines() if x.strip()]
    gold = [r for r in pool if r["id"] in gold_ids]
    evals, rest = test[:500], test[500:]
    task = TaskData(
        labels=labels,
        gold_rows=[{"text": r["text"]} for r in gold],
        gold_labels=[label(r) for r in gold],
        unlabeled_rows=[{"text": r["text"]} for r in pool if r["id"] not in gold_ids],
        eval_rows=[{"text": r["text"]} for r in evals],
        eval_labels=[label(r) for r in evals],
    )
    prompt = Prompt(meta["template"], tuple(meta["label_words"][lab] for lab in labels))
    t0 = time.time()
    model = run_list(load_backbone(), prompt, task, dataclasses.replace(preset("fast"), seed=seed)).model
    y = [label(r) for r in rest]
    logits = model.logits(model.encode([{"text": r["text"]} for r in rest]), 64).float()  # (N, C)
    cal = calibrate(model, task.eval_rows, task.eval_labels)
    before, after = logits.softmax(-1), (logits / model.temperature).softmax(-1)
    acc = float((logits.argmax(-1) == torch.tensor(y)).float().mean())
    print(f"{name} K={k} seed {seed}: LiST fast in {time.time() - t0:.0f} s, test accuracy {acc:.3f}; temperature "
          f"{model.temperature:.2f} fitted on 500 labeled texts (the evaluation split); on the other {len(y)} test "
          f"texts ECE {expected_calibration_error(before, y):.3f} -> {expected_calibration_error(after, y):.3f}, mean "
          f"confidence {float(before.max(-1).values.mean()):.3f} -> {float(after.max(-1).values.mean()):.3f}; the "
          f"app's cross-fitted ECE on the evaluation split {cal['eval_ece']:.3f} -> {cal['eval_ece_calibrated']:.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
