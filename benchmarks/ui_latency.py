"""Page render time with a large project (default 100,000 examples), through streamlit's AppTest.

    python benchmarks/ui_latency.py [--n 100000]

The project has 40 gold labels, a prompt, a diverse labeling order of its whole pool and a suggestion for every
example (what an import, a scoring and a run leave); the Label page is timed with each way of choosing the next
example. Prints seconds per page (best of 3 runs); asserts nothing. No worker is started.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.engine_speed import SYNTHETIC_WORDS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    os.environ["LIST_DB"] = str(tmp / "big.db")
    os.environ["LIST_NO_WORKER"] = "1"
    import storage as st
    from storage.examples import import_table
    from storage.importers import Table

    db = st.connect()
    p = st.create_project(db, "big", "single", ["negative", "positive"], "default")
    words = SYNTHETIC_WORDS
    rng = random.Random(0)
    recs = [{"text": " ".join(rng.choice(words) for _ in range(rng.randint(5, 40))) + f" #{i}"} for i in range(args.n)]
    t = time.perf_counter()
    rep = import_table(db, p.id, Table(["text"], recs, list(range(2, args.n + 2))), {"text": "text"})
    print(f"import of {rep.added:,} rows: {time.perf_counter() - t:.1f} s")
    ids = [e.id for e in st.page_examples(db, p.id, limit=40)]
    for k, i in enumerate(ids):
        st.set_label(db, i, k % 2)
    st.save_prompt(db, p.id, "{text} It was {mask} .", ["terrible", "great"])
    from storage.predictions import save_predictions
    from storage.queue import set_label_queue

    pool = [e.id for e in st.page_examples(db, p.id, limit=args.n)]
    set_label_queue(db, p.id, rng.sample(pool, len(pool)), "diverse")
    for start in range(0, len(pool), 20_000):
        save_predictions(db, p.id, None, [{"example_id": i, "probs": [c, 1 - c]} for i, c in
                                          ((i, rng.random()) for i in pool[start : start + 20_000])])  # fmt: skip

    from streamlit.components.v2 import component_manager
    from streamlit.testing.v1 import AppTest

    # AppTest scans every installed package for components on each run (~1-2 s here); a real server does it
    # once at start-up, so it is left out of the page times
    component_manager.BidiComponentManager.discover_and_register_components = lambda *a, **k: None
    trivial = tmp / "trivial.py"
    trivial.write_text("import streamlit as st\nst.title('x')\n")
    pages = [str(trivial), "app.py", "pages/projects.py", "pages/prompt.py", "pages/label.py", "pages/label.py",
             "pages/label.py", "pages/train.py", "pages/rounds.py", "pages/inspect.py", "pages/export.py"]  # fmt: skip
    strategies = iter(["diverse", "uncertain", "in order"])
    for page in pages:
        strategy = next(strategies) if page == "pages/label.py" else None
        best = float("inf")
        for _ in range(3):
            at = AppTest.from_file(str(ROOT / page) if not page.startswith("/") else page, default_timeout=600)
            at.session_state["project"] = p.id
            if strategy:
                at.session_state["lb_strategy"] = strategy
            t = time.perf_counter()
            at.run()
            best = min(best, time.perf_counter() - t)
            assert not at.exception, at.exception
        name = "(empty page)" if page.startswith("/") else page + (f" ({strategy})" if strategy else "")
        print(f"{name:32s}: {best:.3f} s", flush=True)


if __name__ == "__main__":
    main()
