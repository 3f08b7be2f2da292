"""How long the workbench's "Score prompts" takes: the worker's `prompt_eval` job on a real data set.

    python -m benchmarks.prompt_scoring ../shared/data mr subj bbc [--k 30] [--pool 2000] [--eval 500] [--repeat 2]

Per set, a fresh project on the default backbone: K gold labels (the set's few-shot file, seed 1), `pool`
unlabeled texts, `eval` labeled evaluation texts, and the set's prompt. The job scores three candidates (the
prompt, the prompt with each class's name added to its words, and the words swapped between the classes), with
label-word suggestions (the prompt with the suggested words joins the board), as the workbench sends it. The
engine is imported and the backbone loaded before the clock starts (a warm worker); printed: the job's seconds
with nothing cached (`seconds`, the backbone's feature cache emptied first), then `again`: the user's next
scoring, the prompt's label words edited ("quite <word>" added to each class's word) and the same three kinds of
candidate, on the features the first scoring left in the cache, then `after_restart`: the first scoring of a new
worker (its backbone loaded before the clock) on the features the first one kept on disk (`features/project-<id>`),
then, the cache and the disk store emptied again, the `embed` job an import queues (`embed_job`) and the first
scoring after it (`first_after_embed`); each the best of `repeat`; the board's size and what the cache holds.
Asserts nothing.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks import data_sets_parser


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
        cache = light.context.backbone("default").feature_cache
        edited = [[w, f"quite {w}"] for w in words]  # the user's edit: a phrase added to each class's word
        again = [{**prompt, "label_words": edited}, {**prompt, "label_words": [[*w, lab] if lab not in w else w for w, lab
                 in zip(edited, labels)]}, {**prompt, "label_words": edited[1:] + edited[:1]}]  # fmt: skip

        def score(cands: list[dict], worker: Worker = light) -> tuple[float, dict]:
            job = jobq.enqueue(db, "prompt_eval", {"candidates": cands, "suggest": True}, p.id)
            t = time.perf_counter()
            done = worker.run_once()
            if done.id != job.id or done.status != "succeeded":
                raise RuntimeError(f"the scoring job {done.status}: {done.error}")
            return time.perf_counter() - t, done.result

        def forget() -> None:  # the features in memory and on disk
            cache.clear()
            shutil.rmtree(st.features_dir(db, p.id), ignore_errors=True)

        cold, warm, restart, embed, ahead = [], [], [], [], []
        for _ in range(repeat):
            forget()
            cold.append(score(candidates)[0])
            seconds, result = score(again)
            warm.append(seconds)
            restarted = Worker(Path(tmp) / "scoring.db", lane="light")
            restarted.context.backbone("default")
            restart.append(score(candidates, restarted)[0])
            forget()  # an import's `embed` job, then the first scoring
            t = time.perf_counter()
            jobq.read_ahead(db, p.id, pool=False)
            if (done := light.run_once()).status != "succeeded":
                raise RuntimeError(f"the embed job {done.status}: {done.error}")
            embed.append(time.perf_counter() - t)
            ahead.append(score(candidates)[0])
        return {"set": data.name, "gold": len(gold), "pool": len(rows) - len(gold), "eval": min(n_eval, len(data.test)),
                "board": len(result["leaderboard"]), "seconds": round(min(cold), 2), "again": round(min(warm), 2), "after_restart": round(min(restart), 2),
                "embed_job": round(min(embed), 2), "first_after_embed": round(min(ahead), 2),
                "cached_texts": len(cache), "cache_mb": round(cache.nbytes / 2**20, 1)}  # fmt: skip


def main() -> None:
    ap = data_sets_parser(__doc__)
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
