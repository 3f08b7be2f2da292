"""Forward passes locally and on a Ray cluster: throughput, Ray's overhead, and the worker host's memory.

    python -m benchmarks.ray_scaling throughput --n 4000      # local vs Ray with 1 and 2 actors, this machine
    python -m benchmarks.ray_scaling memory --n 100000        # predict CLI on n synthetic texts: peak RSS, texts/s
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ray_scaling", description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=("throughput", "memory"))
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
    out = (
        throughput(args.n, args.batch_size, backbone, args.device)
        if args.what == "throughput"
        else memory(args.n, args.engine, args.chunk_size)
    )
    print(json.dumps({args.what: {k: round(v, 1) if isinstance(v, float) else v for k, v in out.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
