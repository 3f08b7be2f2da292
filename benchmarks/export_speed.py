"""Export benchmark: folded vs unmodified backbone latency, unfolded adapter overhead, and the memory of
serving five adapters on one backbone vs one.

    python benchmarks/export_speed.py [--backbone NAME | --random-family roberta-large] [--n 512] [--batch 32]

Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.engine_speed import build_random, load_texts, sync  # noqa: E402
from list_core.backbone import load_backbone  # noqa: E402
from list_core.config import AdapterConfig  # noqa: E402
from list_core.export import save_native  # noqa: E402
from list_core.folded import load_folded, save_folded  # noqa: E402
from list_core.model import ListModel  # noqa: E402
from list_core.prompts import Prompt  # noqa: E402
from list_core.serving import AdapterServer  # noqa: E402


def timed(model: ListModel, enc, batch: int, repeats: int = 7) -> float:
    model.logits(enc, batch)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        sync(model.device)
        t = time.perf_counter()
        model.logits(enc, batch)
        sync(model.device)
        best = min(best, time.perf_counter() - t)
    return best


def rss_mb() -> float:
    """Process memory: CUDA memory allocated on a GPU, else resident set size."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        return torch.cuda.memory_allocated() / 2**20
    return psutil.Process(os.getpid()).memory_info().rss / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default=None)
    ap.add_argument("--random-family", default=None)
    ap.add_argument("--data", default=None)
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--bottleneck", type=int, default=128)
    args = ap.parse_args()
    if args.random_family:
        args.backbone = build_random(args.random_family)
    torch.manual_seed(0)
    texts, template, words = load_texts(args.data, args.n)
    rows = [{"text": t} for t in texts]
    prompt = Prompt(template, words)
    tmp = Path(tempfile.mkdtemp())

    bb = load_backbone(args.backbone)
    print(f"device={bb.device} backbone={bb.name} family={bb.family} n={len(rows)} batch={args.batch}")
    plain = ListModel(bb, prompt, head="classic", adapter=None)
    enc = plain.encode(rows)
    t_plain = timed(plain, enc, args.batch)
    model = ListModel(bb, prompt, head="classic", adapter=AdapterConfig(bottleneck=args.bottleneck))
    with torch.no_grad():
        for p in model.trainable_named_parameters().values():
            p.add_(torch.randn_like(p) * 0.05)
    t_adapted = timed(model, enc, args.batch)
    save_folded(model, tmp / "folded", ["a", "b"])
    folded = load_folded(tmp / "folded").model
    t_folded = timed(folded, enc, args.batch)
    diff = float((folded.logits(enc, args.batch) - model.logits(enc, args.batch)).abs().max())
    del model
    gc.collect()
    bb.unwrap()  # the plain backbone again, timed after the others so warm-up effects even out
    t_plain = min(t_plain, timed(plain, enc, args.batch))
    print(f"unmodified backbone : {t_plain * 1000:8.1f} ms for {len(rows)} rows")
    print(f"with adapters       : {t_adapted * 1000:8.1f} ms  ({t_adapted / t_plain:.3f}x the backbone)")
    print(
        f"folded              : {t_folded * 1000:8.1f} ms  ({t_folded / t_plain:.3f}x the backbone), max |logit diff| {diff:.2e}"
    )

    # memory: one backbone + 1 adapter vs + 5 adapters
    for i in range(5):
        m = ListModel(bb, prompt, head="classic", adapter=AdapterConfig(bottleneck=args.bottleneck))
        save_native(m, tmp / f"task{i}", labels=["a", "b"])
    del plain, folded, m, bb
    gc.collect()
    server = AdapterServer(args.backbone)
    base = rss_mb()
    server.add("task0", tmp / "task0")
    server.predict_proba("task0", rows[:8])
    one = rss_mb()
    for i in range(1, 5):
        server.add(f"task{i}", tmp / f"task{i}")
        server.predict_proba(f"task{i}", rows[:8])
    five = rss_mb()
    size = sum(f.stat().st_size for f in (tmp / "task0").iterdir()) / 2**20
    kind = "CUDA memory" if torch.cuda.is_available() else "RSS"
    print(f"{kind}: backbone {base:.0f} MiB, +1 adapter {one:.0f} MiB, +5 adapters {five:.0f} MiB "
          f"(five / one = {five / one:.3f}; one adapter folder = {size:.2f} MiB)")  # fmt: skip
    if torch.cuda.is_available():
        print(f"peak CUDA memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
