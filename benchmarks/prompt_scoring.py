"""How long the workbench's "Score prompts" takes: the worker's `prompt_eval` job on a real data set.

    python -m benchmarks.prompt_scoring ../shared/data mr subj bbc [--k 30] [--pool 2000] [--eval 500] [--repeat 2]

Per set, a fresh project on the default backbone: K gold labels (the set's few-shot file, seed 1), `pool`
unlabeled texts, `eval` labeled evaluation texts, and the set's prompt. The job scores three candidates (the
prompt, the prompt with each class's name added to its words, and the words swapped between the classes), with
label-word suggestions (the prompt with the suggested words joins the board), as the workbench sends it. The engine is imported and the backbone loaded before the clock starts (a warm worker); printed: the
job's seconds (best of `repeat`) and its board size. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def measure(root: Path, k: int, pool: int, n_eval: int, repeat: int) -> dict:
    import storage as st
    from list_core.bench import load_data
    from storage import jobs as jobq
    from worker.runner import Worker

    data = load_data(root)
    labels = list(data.meta["labels"])
    gold = set(data.gold_ids(k, 1))
    words = [data.meta["label_words"][lab] for lab in labels]
    prompt = {"template": data.meta["template"], "label_words": words}
    candidates = [prompt, {**prompt, "label_words": [[w, lab] for w, lab in zip(words, labels)]},
                  {**prompt, "label_words": words[1:] + words[:1]}]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        db = st.connect(Path(tmp) / "scoring.db")
        p = st.create_project(db, data.name, data.meta["task"], labels, "default")
        rows = [r for r in data.pool if r["id"] in gold] + [r for r in data.pool if r["id"] not in gold][:pool]
        st.add_examples(db, p.id, [data.row(r) for r in rows])
        by_text = {data.row(r)["text" if "text" in r else "text_a"]: data.label(r) for r in rows if r["id"] in gold}
        for e in st.page_examples(db, p.id, limit=len(rows)):
            if e.text in by_text:
                st.set_label(db, e.id, by_text[e.text])
        lines = ["text,label"] + [
            f'"{r["text"].replace(chr(34), chr(34) * 2)}",{r["label"]}' for r in data.test[:n_eval]
        ]
        st.import_file(db, p.id, ("\n".join(lines) + "\n").encode(), {"text": "text"}, name="eval.csv",
                       label_column="label", split="eval")  # fmt: skip
        st.save_prompt(db, p.id, prompt["template"], prompt["label_words"])
        from worker.runner import warm_up

        warm_up()  # the engine, as a started worker imports it
        light = Worker(Path(tmp) / "scoring.db", lane="light")
        light.context.backbone("default")
        seconds = []
        for _ in range(repeat):
            job = jobq.enqueue(db, "prompt_eval", {"candidates": candidates, "suggest": True}, p.id)
            t = time.perf_counter()
            done = light.run_once()
            seconds.append(time.perf_counter() - t)
            if done.id != job.id or done.status != "succeeded":
                raise RuntimeError(f"the scoring job {done.status}: {done.error}")
        return {"set": data.name, "gold": len(gold), "pool": len(rows) - len(gold), "eval": min(n_eval, len(data.test)),
                "board": len(done.result["leaderboard"]), "seconds": round(min(seconds), 2)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="the folder of data sets (../shared/data)")
    ap.add_argument("sets", nargs="+")
    ap.add_argument("--k", type=int, default=30)
    ap.add_argument("--pool", type=int, default=2000)
    ap.add_argument("--eval", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    for name in args.sets:
        print(json.dumps({"prompt_scoring": measure(args.root / name, args.k, args.pool, args.eval, args.repeat)}),
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
