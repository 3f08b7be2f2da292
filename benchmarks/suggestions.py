"""Do the workbench's label-word suggestions help? Zero-shot test accuracy of each set's prompt, alone and with the
first three suggested words of each class added (what the workbench scores as "your prompt + suggested words").

    python -m benchmarks.suggestions ../shared/data mr subj bbc --k 30 --seeds 1 2 3

The suggestions come from the K gold examples and up to 2,000 unlabeled pool texts
(`list_core.prompt_tools.suggest_label_words`, then `with_suggestions`), as in the app. The test split (first
`--test` texts) is read only to score the prompts.

With `--swap-prompt` every class is given the next class's label word (a prompt the gold labels contradict), and
each line also scores what the workbench offers then: the words re-matched to the classes (`rematched`, when the
prompt looks wrong on the gold labels), alone and with the suggestions built on them ("re-matched + suggested").
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch

from list_core.prompt_tools import rematched, suggest_label_words, with_suggestions, zero_shot_model
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


def swapped(prompt: Prompt) -> Prompt:
    """The prompt with each class given the next class's label words (and description)."""
    d = prompt.to_json()
    roll = lambda xs: [xs[-1], *xs[:-1]] if xs else xs  # noqa: E731 - class c gets class c-1's
    return Prompt.from_json(
        {**d, "label_words": roll(list(d["label_words"])), "descriptions": roll(d.get("descriptions"))}
    )


def compare_rematched(backbone, prompt: Prompt, task, test_rows: list[dict], test_y: list[int]) -> dict[str, Any]:
    """The workbench's offer for a prompt the gold labels contradict: its words re-matched to the classes, alone
    and with the suggestions built on them (None where the prompt does not look wrong)."""
    fixed = rematched(backbone, prompt.to_json(), task.gold_rows, task.gold_labels, task.labels)
    if fixed is None:
        return {"rematched": None, "rematched_with_suggestions": None}
    got = compare(backbone, Prompt.from_json(fixed), task, test_rows, test_y)
    return {"rematched": got["prompt"], "rematched_with_suggestions": got["with_suggestions"],
            "rematched_suggested": got["suggested"]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.suggestions", description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("sets", nargs="+")
    ap.add_argument("--k", type=int, default=30)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--test", type=int, default=1000, help="test texts scored (the first N)")
    ap.add_argument("--swap-prompt", action="store_true", help="give every class the next class's label words")
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
            prompt = swapped(data.prompt()) if args.swap_prompt else data.prompt()
            got.append(compare(backbone, prompt, task, rows, y))
            line = [name, f"K={args.k}", f"seed {seed}", f"prompt {got[-1]['prompt']:.1f}",
                    f"with suggestions {_pct(got[-1]['with_suggestions'])}"]  # fmt: skip
            if args.swap_prompt:
                got[-1].update(compare_rematched(backbone, prompt, task, rows, y))
                line += [f"re-matched {_pct(got[-1]['rematched'])}",
                         f"re-matched + suggested {_pct(got[-1]['rematched_with_suggestions'])}",
                         got[-1].get("rematched_suggested")]  # fmt: skip
            print(*line, got[-1]["suggested"], flush=True)
        keys = ["prompt", "with_suggestions"] + (
            ["rematched", "rematched_with_suggestions"] if args.swap_prompt else []
        )
        seen = {k: [g[k] for g in got if g[k] is not None] for k in keys}  # re-matched: where the prompt looked wrong
        means = {k: f"{np.mean(v):.1f}" + (f" ({len(v)} of {len(got)} seeds)" if len(v) < len(got) else "")
                 for k, v in seen.items() if v}  # fmt: skip
        gain = np.mean(seen["with_suggestions"]) - np.mean(seen["prompt"])
        print(f"MEAN {name} K={args.k} seeds {args.seeds}:", ", ".join(f"{k} {v}" for k, v in means.items()),
              f"(suggestions {gain:+.1f})")  # fmt: skip
    return 0


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


if __name__ == "__main__":
    raise SystemExit(main())
