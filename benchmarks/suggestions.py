"""Do the workbench's label-word suggestions help? Zero-shot test accuracy of each set's prompt, alone and with the
first three suggested words of each class added (what the workbench scores as "your prompt + suggested words").

    python -m benchmarks.suggestions ../shared/data mr subj bbc --k 30 --seeds 1 2 3

The suggestions come from the K gold examples and up to 2,000 unlabeled pool texts
(`list_core.prompt_tools.suggest_label_words`, then `with_suggestions`), as in the app. The test split (first
`--test` texts) is read only to score the two prompts.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch

from list_core.prompt_tools import suggest_label_words, with_suggestions, zero_shot_model
from list_core.prompts import Prompt


def zero_shot_accuracy(backbone, prompt: Prompt, rows: list[dict], y: list[int]) -> float:
    """Test accuracy (%) of the prompt alone."""
    model = zero_shot_model(backbone, prompt)
    pred = model.logits(model.encode(rows)).argmax(-1)
    return 100 * float((pred == torch.tensor(y)).float().mean())


def compare(backbone, prompt: Prompt, task, test_rows: list[dict], test_y: list[int]) -> dict[str, Any]:
    """The prompt's zero-shot accuracy alone and with its suggested words, and the words."""
    pool = [task.unlabeled_rows[i] for i in range(min(2000, len(task.unlabeled_rows)))]
    words = suggest_label_words(backbone, prompt, task.gold_rows, task.gold_labels, task.labels, pool)
    extra = with_suggestions(prompt.to_json(), words, task.labels)
    with_words = zero_shot_accuracy(backbone, Prompt.from_json(extra), test_rows, test_y) if extra else None
    return {"prompt": zero_shot_accuracy(backbone, prompt, test_rows, test_y), "with_suggestions": with_words,
            "suggested": words, "label_words": extra["label_words"] if extra else None}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.suggestions", description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("sets", nargs="+")
    ap.add_argument("--k", type=int, default=30)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--test", type=int, default=1000, help="test texts scored (the first N)")
    args = ap.parse_args(argv)
    from list_core.backbone import load_backbone
    from list_core.bench import load_data, make_task

    backbone = load_backbone(None, device="cpu")
    for name in args.sets:
        data = load_data(args.data / name)
        rows = [data.row(r) for r in data.test[: args.test]]
        y = [data.label(r) for r in data.test[: args.test]]
        got = []
        for seed in args.seeds:
            task, _ = make_task(data, args.k, seed)
            got.append(compare(backbone, data.prompt(), task, rows, y))
            print(name, f"K={args.k}", f"seed {seed}", f"prompt {got[-1]['prompt']:.1f}",
                  f"with suggestions {got[-1]['with_suggestions']:.1f}", got[-1]["suggested"], flush=True)  # fmt: skip
        a, b = np.mean([g["prompt"] for g in got]), np.mean([g["with_suggestions"] for g in got])
        print(f"MEAN {name} K={args.k} seeds {args.seeds}: prompt {a:.1f}, with suggestions {b:.1f} ({b - a:+.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
