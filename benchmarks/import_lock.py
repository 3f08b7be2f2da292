"""How long a labeler waits while a large file is imported (the write lock the import holds).

    python -m benchmarks.import_lock --rows 100000 [--labeled]

A CSV of synthetic texts is imported into a fresh project while another connection (the UI's busy timeout)
writes a label every 50 ms; printed: the import's seconds, its transactions (chunks and the publishing one)
and the labeler's longest and mean wait for one label write.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path


def measure(rows: int, labeled: bool) -> dict:
    import storage as st
    import storage.examples as ex

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lock.db"
        db = st.connect(path)
        p = st.create_project(db, "big", "single", ["negative", "positive"], "default")
        st.add_examples(db, p.id, [{"text": "the labeler's example"}])
        target = st.page_examples(db, p.id)[0].id
        lines = ["text,label" if labeled else "text"]
        lines += [f"synthetic text number {i}" + (f",{'positive' if i % 2 else 'negative'}" if labeled else "")
                  for i in range(rows)]  # fmt: skip
        data = ("\n".join(lines) + "\n").encode()
        waits: list[float] = []
        stop = threading.Event()

        def labeler() -> None:
            ui = st.connect(path)  # the UI's connection and busy timeout
            k = 0
            while not stop.is_set():
                t = time.perf_counter()
                st.set_label(ui, target, k % 2, by="labeler")
                waits.append(time.perf_counter() - t)
                k += 1
                time.sleep(0.05)

        spans, real = [], ex.write

        class Timed:
            def __init__(self, conn):
                self.cm = real(conn)

            def __enter__(self):
                self.t = time.perf_counter()
                return self.cm.__enter__()

            def __exit__(self, *exc):
                out = self.cm.__exit__(*exc)
                spans.append(time.perf_counter() - self.t)
                return out

        ex.write = Timed
        thread = threading.Thread(target=labeler)
        thread.start()
        time.sleep(0.3)
        t = time.perf_counter()
        try:
            rep = st.import_file(db, p.id, data, {"text": "text"}, name="big.csv",
                                 label_column="label" if labeled else None)  # fmt: skip
        finally:
            ex.write = real
            secs = time.perf_counter() - t
            stop.set()
            thread.join()
        return {"rows": rows, "labeled": labeled, "added": rep.added, "import_s": round(secs, 2),
                "transactions": len(spans), "longest_transaction_s": round(max(spans), 2),
                "publish_s": round(spans[-1], 2), "labeler_writes": len(waits),
                "labeler_max_wait_s": round(max(waits), 2), "labeler_mean_wait_s": round(sum(waits) / len(waits), 3)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.import_lock", description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--labeled", action="store_true", help="every row has a label (gold labels are written too)")
    args = ap.parse_args(argv)
    print(json.dumps({"import_lock": measure(args.rows, args.labeled)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
