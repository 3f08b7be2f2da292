"""How long the first job waits for a freshly started worker (`python -m worker`, as the app starts it).

    python -m benchmarks.worker_startup [--idle 0 20] [--backbone default]

For each idle time: a fresh database with a 20-example project on the backbone and a prompt; the worker starts;
after `idle` seconds (0: the job is already queued when the worker starts, as after a restart; 20: the user opens
the app and scores a prompt) a prompt-scoring job is queued. Printed: seconds from the job's enqueue (or the
worker's start, for idle 0) to its result, and the worker's resident memory while idle. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [f"{w} {x}" for w in ("great", "bad", "good", "awful") for x in ("movie", "film", "acting", "story", "plot")]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(idle: float, backbone: str) -> dict:
    """One fresh worker: the first prompt-scoring job's latency after `idle` seconds."""
    import storage as st
    from storage import jobs as jobq

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "startup.db"
        db = st.connect(path)
        p = st.create_project(db, "startup", "single", ["negative", "positive"], backbone)
        st.add_examples(db, p.id, [{"text": t} for t in TEXTS])
        prompt = {"template": "{text} It was {mask} .", "label_words": ["bad", "great"]}
        env = {k: v for k, v in os.environ.items() if k != "LIST_DB"}
        if idle == 0:
            job = jobq.enqueue(db, "prompt_eval", {"candidates": [prompt]}, p.id)
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "worker", "--db", str(path), "--poll", "0.2"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            rss = None
            if idle > 0:
                time.sleep(idle)
                rss = _rss_mb(proc.pid)
                job = jobq.enqueue(db, "prompt_eval", {"candidates": [prompt]}, p.id)
                t0 = time.perf_counter()
            while not (j := jobq.get_job(db, job.id)).done:
                if time.perf_counter() - t0 > 300:
                    raise TimeoutError("the job did not finish in 300 s")
                time.sleep(0.05)
            seconds = time.perf_counter() - t0
        finally:
            proc.terminate()
            proc.wait(30)
        return {"idle": idle, "seconds": seconds, "status": j.status, "idle_rss_mb": rss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle", type=float, nargs="+", default=[0, 20])
    ap.add_argument("--backbone", default="default", help="a backbone path, or 'default' (the embedded encoder)")
    args = ap.parse_args()
    for idle in args.idle:
        r = measure(idle, args.backbone)
        rss = f"; worker resident memory while idle {r['idle_rss_mb']:.0f} MB" if r["idle_rss_mb"] else ""
        when = "already queued at the worker's start" if idle == 0 else f"queued {idle:g} s after the worker's start"
        print(f"first prompt-scoring job, {when}: {r['seconds']:.1f} s to its result ({r['status']}){rss}", flush=True)


if __name__ == "__main__":
    main()
