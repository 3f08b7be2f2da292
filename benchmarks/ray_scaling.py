"""Forward passes locally and on a Ray cluster: throughput, Ray's overhead, and the worker host's memory.

    python -m benchmarks.ray_scaling throughput --n 4000      # local vs Ray with 1 and 2 actors, this machine
    python -m benchmarks.ray_scaling memory --n 100000        # predict CLI on n synthetic texts: peak RSS, texts/s
    python -m benchmarks.ray_scaling run --n 1000000          # a LiST run (fast preset) through the worker on a pool
                                                              # of n synthetic texts: the worker's peak RSS, stages
    python -m benchmarks.ray_scaling throughput --n 20000 --large /tmp/large --device cuda   # a GPU machine

The model is the fast preset's (default backbone, `head="auto"`, the fast preset's adapters, as a native export);
the texts are synthetic sentences of 5-15 words. Throughput runs each engine twice and keeps the second (warm)
time; Ray's overhead per shard is (Ray time - local time at the same threads) / shards.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ["the", "a", "movie", "film", "great", "bad", "story", "acting", "plot", "good", "awful", "long", "short",
         "funny", "sad", "music", "scene", "director", "slow", "quick", "warm", "cold", "bright", "dark", "cast",
         "ending", "script"]  # fmt: skip


def texts(n: int, seed: int = 0):
    rng = random.Random(seed)
    for _ in range(n):
        yield " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 15)))


def make_large(folder: Path) -> Path:
    """A BERT-large-sized model (24 layers, 1024 wide, 335M parameters, about roberta-large's 355M) with random
    weights and the default backbone's tokenizer: forward-pass cost without a download."""
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from list_core.locate import resolve_backbone_path

    if not (folder / "config.json").exists():
        tok = AutoTokenizer.from_pretrained(resolve_backbone_path(None))
        cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                         intermediate_size=4096)  # fmt: skip
        BertForMaskedLM(cfg).save_pretrained(folder)
        tok.save_pretrained(folder)
    return folder


def fast_model(backbone: str | None = None, device: str = "cpu"):
    from list_core.backbone import load_backbone
    from list_core.config import preset
    from list_core.model import ListModel
    from list_core.prompts import Prompt

    cfg = preset("fast")
    bb = load_backbone(backbone, device=device)
    return ListModel(bb, Prompt("{text} It was {mask} .", ("bad", "great")), cfg.head, cfg.adapter, cfg.pooling,
                     cfg.max_length).eval()  # fmt: skip


def throughput(n: int, batch_size: int, backbone: str | None = None, device: str = "cpu") -> dict:
    import torch

    from list_core.distributed import LocalScorer, RayConfig, RayScorer, init_local

    model = fast_model(backbone, device)
    enc = model.encode([{"text": t} for t in texts(n)])
    out: dict = {"n": n, "batch_size": batch_size, "cpus": os.cpu_count(), "machine": platform.processor() or "cpu"}

    def timed(fn) -> float:
        fn()  # warm: actors load the backbone and the model on their first shard
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    torch.set_num_threads(2)
    want = LocalScorer().logits(model, enc, batch_size)
    out["local_2_threads"] = n / timed(lambda: LocalScorer().logits(model, enc, batch_size))
    torch.set_num_threads(1)
    out["local_1_thread"] = n / timed(lambda: LocalScorer().logits(model, enc, batch_size))
    gpu = device != "cpu"
    if gpu:  # Ray sees the GPU; actors share it (half a GPU each for two)
        import ray

        ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    else:
        init_local(2)
    for actors, cpus in ((1, 2.0), (1, 1.0), (2, 1.0)):
        cfg = RayConfig("local", actors=actors, cpus_per_actor=cpus, gpus_per_actor=(1.0 / actors) if gpu else 0.0)
        scorer = RayScorer(cfg)
        got = scorer.logits(model, enc, batch_size)
        # equal on the default backbone here; BLAS may sum in another order in another process (or on a GPU)
        out[f"ray_{actors}_actor_{cpus:g}_cpu_max_abs_diff"] = float((got - want).abs().max())
        secs = timed(lambda s=scorer: s.logits(model, enc, batch_size))
        out[f"ray_{actors}_actor_{cpus:g}_cpu"] = n / secs
        out[f"ray_{actors}_actor_{cpus:g}_cpu_shards"] = -(-n // cfg.shard_size)
        scorer.close()
    shards = out["ray_1_actor_2_cpu_shards"]
    out["ray_overhead_ms_per_shard"] = 1000 * (n / out["ray_1_actor_2_cpu"] - n / out["local_2_threads"]) / shards
    return out


def memory(n: int, engine: str, chunk_size: int) -> dict:
    """Peak RSS of the predict CLI (the worker host's process; Ray actors are other processes) on n texts."""
    from list_core.export import save_native

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        save_native(fast_model(), tmp / "adapter", labels=["negative", "positive"])
        data = tmp / "pool.csv"
        with data.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "text"])
            for i, t in enumerate(texts(n)):
                w.writerow([i, t])
        cmd = [sys.executable, "-m", "list_core.predict", "--adapter", str(tmp / "adapter"), "--input", str(data),
               "--output", str(tmp / "out.parquet"), "--chunk-size", str(chunk_size), "--batch-size", "128",
               "--engine", engine]  # fmt: skip
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
        secs = time.perf_counter() - t
        if res.returncode:
            raise SystemExit(res.stderr[-2000:])
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        return {"n": n, "engine": engine, "chunk_size": chunk_size, "seconds": round(secs, 1),
                "texts_per_s": round(n / secs, 1), "peak_rss_mb": round(max(peak, before) / 1024, 1),
                "output_mb": round((tmp / "out.parquet").stat().st_size / 2**20, 1)}  # fmt: skip


def run(n: int) -> dict:
    """A LiST run of the fast preset (default backbone, 30 gold labels) through the worker process on a pool of n
    synthetic texts: seconds to import, the run's seconds, and the worker's peak RSS (it reads, scores and writes
    the pool in chunks; the teacher is fitted on a sample of `teacher_pool_limit` texts)."""
    import storage as st
    from storage import runs as runq
    from ui import actions

    with tempfile.TemporaryDirectory() as tmp:
        db = st.connect(Path(tmp) / "big.db")
        p = st.create_project(db, "big", "single", ["negative", "positive"], "default")
        t = time.perf_counter()
        gen, added = texts(n), 0
        while added < n:  # in imports of at most 100,000 rows (each one transaction)
            part = [{"text": f"{i}. {x}"} for i, x in zip(range(added, min(n, added + 100_000)), gen)]
            added += st.add_examples(db, p.id, part).added
        import_s = time.perf_counter() - t
        pos = neg = 0
        for e in st.page_examples(db, p.id, limit=2000):  # 15 gold labels per class, by their words
            words = set(e.text.split())
            if pos < 15 and {"great", "good"} & words and not {"bad", "awful"} & words:
                st.set_label(db, e.id, 1)
                pos += 1
            elif neg < 15 and {"bad", "awful"} & words and not {"great", "good"} & words:
                st.set_label(db, e.id, 0)
                neg += 1
        st.save_prompt(db, p.id, "{text} It was {mask} .", ["bad", "great"])
        run_, _ = actions.start_run(db, p.id, "list", "fast", seed=1)
        cmd = [sys.executable, "-m", "worker", "--db", str(Path(tmp) / "big.db"), "--exit-when-idle", "--lane", "all"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t = time.perf_counter()
        log = (Path(tmp) / "worker.log").open("w+")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "2"})
        trace = []  # (seconds, RSS MB, job stage) every 10 s: memory stays flat while the pool is streamed
        while proc.poll() is None:
            time.sleep(1)
            if time.perf_counter() - t >= 10 * len(trace):
                rss = _rss_mb(proc.pid)
                stage = db.execute("SELECT stage FROM jobs ORDER BY id DESC LIMIT 1").fetchone()
                trace.append((round(time.perf_counter() - t), rss, stage[0] if stage else None))
                print(json.dumps({"t": trace[-1][0], "rss_mb": rss, "stage": trace[-1][2]}), file=sys.stderr)
        secs = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        done = runq.get_run(db, run_.id)
        if proc.returncode or done.status != "succeeded":
            log.seek(0)
            raise SystemExit(f"run {done.status}: {log.read()[-2000:]}")
        stages = {k: round(v, 1) for k, v in (done.metrics or {}).get("stage_seconds", {}).items()}
        predicted = db.execute("SELECT count(*) FROM predictions WHERE run_id = ?", [run_.id]).fetchone()[0]
        return {"n": n, "pool": added, "import_s": round(import_s, 1), "run_s": round(secs, 1),
                "worker_peak_rss_mb": round(max(peak, before) / 1024, 1), "suggestions": predicted,
                "stage_seconds": stages, "peak_rss_mb_by_stage": _by_stage(trace), "db_mb": round((Path(tmp) / "big.db").stat().st_size / 2**20, 1)}  # fmt: skip


def _by_stage(trace: list[tuple]) -> dict[str, float]:
    out: dict[str, float] = {}
    for _, rss, stage in trace:
        if rss is not None:
            out[str(stage)] = max(out.get(str(stage), 0.0), rss)
    return out


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ray_scaling", description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=("throughput", "memory", "run"))
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--engine", choices=("local", "ray"), default="local")
    ap.add_argument("--chunk-size", type=int, default=20_000)
    ap.add_argument("--large", type=Path, default=None, help="throughput of a BERT-large-sized random model (made in "
                    "this folder), instead of the default backbone")  # fmt: skip
    ap.add_argument("--device", default="cpu", help="cpu or cuda (throughput)")
    args = ap.parse_args(argv)
    backbone = str(make_large(args.large)) if args.large else None
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.what == "throughput":
        out = throughput(args.n, args.batch_size, backbone, args.device)
    elif args.what == "memory":
        out = memory(args.n, args.engine, args.chunk_size)
    else:
        out = run(args.n)
    print(json.dumps({args.what: {k: round(v, 1) if isinstance(v, float) else v for k, v in out.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
