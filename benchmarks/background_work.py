"""How long a prompt scoring waits when the user asks for it while the worker does an import's background work.

    python -m benchmarks.background_work ../shared/data mr [--pool 8000] [--after 5]

A fresh project on the default backbone with `pool` unlabeled texts of the set and its prompt; the import's
background jobs are queued (`jobq.read_ahead`: the texts a scoring reads, then the diverse labeling order), the
light lane's worker runs them in a thread, and `after` seconds into the diverse order the user's scoring is queued.
Printed per mode: seconds from the click (the scoring queued) to the board (the scoring done), and when the diverse
order ended; `make_way`: as the worker does, `no_make_way`: background work runs to its end first (the worker's
behaviour before background work stepped aside). The feature cache and store are emptied between modes. Asserts
nothing.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

from benchmarks import data_sets_parser


def measure(root: Path, pool: int, after: float, make_way: bool) -> dict:
    import storage as st
    from list_core.bench import load_data
    from storage import jobs as jobq
    from worker.runner import Worker, warm_up

    data = load_data(root)
    labels = list(data.meta["labels"])
    words = [data.meta["label_words"][lab] for lab in labels]
    prompt = {"template": data.meta["template"], "label_words": words}
    with tempfile.TemporaryDirectory() as tmp:
        db = st.connect(Path(tmp) / "bg.db")
        p = st.create_project(db, data.name, data.meta["task"], labels, "default")
        st.add_examples(db, p.id, [data.row(r) for r in data.pool[:pool]])
        st.save_prompt(db, p.id, prompt["template"], prompt["label_words"])
        warm_up()
        light = Worker(Path(tmp) / "bg.db", lane="light")
        light.context.backbone("default").feature_cache.clear()
        shutil.rmtree(st.features_dir(db, p.id), ignore_errors=True)
        if not make_way:
            light.context.make_way = lambda job: None
        jobq.read_ahead(db, p.id)
        stop, ended = threading.Event(), {}

        def lane() -> None:
            while not stop.is_set():
                done = light.run_once()
                if done is None:
                    time.sleep(0.05)
                elif done.status == "succeeded":
                    ended[done.kind] = time.perf_counter()

        t0 = time.perf_counter()
        thread = threading.Thread(target=lane, daemon=True)
        thread.start()
        while "embed" not in ended:
            time.sleep(0.05)
        time.sleep(after)  # the diverse order is running
        click = time.perf_counter()
        job = jobq.enqueue(db, "prompt_eval", {"candidates": [prompt]}, p.id)
        while jobq.get_job(db, job.id).status in ("queued", "running"):
            time.sleep(0.05)
        board = time.perf_counter() - click
        while "diversity" not in ended:
            time.sleep(0.05)
        stop.set()
        thread.join()
        return {"set": data.name, "pool": pool, "mode": "make_way" if make_way else "no_make_way",
                "embed_job": round(ended["embed"] - t0, 1), "click_to_board": round(board, 2),
                "diverse_order_done": round(ended["diversity"] - t0, 1),
                "scoring": jobq.get_job(db, job.id).status}  # fmt: skip


def main() -> None:
    ap = data_sets_parser(__doc__)
    ap.add_argument("--pool", type=int, default=8000)
    ap.add_argument("--after", type=float, default=5.0)
    args = ap.parse_args()
    for name in args.sets:
        for make_way in (True, False):
            print(json.dumps({"background_work": measure(args.root / name, args.pool, args.after, make_way)}),
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
