"""Engine speed: pseudo-labeling throughput vs a bare `model(**batch)` loop, meta step vs plain step, peak memory.

    python benchmarks/engine_speed.py [--backbone NAME] [--data ../shared/data/mr] [--n 2000] [--steps 20]

Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from list_core.backbone import load_backbone  # noqa: E402
from list_core.config import (
    AdapterConfig,  # noqa: E402
    TrainConfig,  # noqa: E402
)
from list_core.data import collate, sample_batch  # noqa: E402
from list_core.losses import kd_loss  # noqa: E402
from list_core.model import ListModel, autocast  # noqa: E402
from list_core.prompts import Prompt  # noqa: E402
from list_core.reweighting import meta_step  # noqa: E402
from list_core.training import _clip_and_step, make_optimizer  # noqa: E402

SYNTHETIC_WORDS = [
    "the",
    "a",
    "movie",
    "film",
    "was",
    "great",
    "terrible",
    "long",
    "short",
    "story",
    "acting",
    "plot",
    "and",
    "but",
    "not",
    "very",
]


def load_texts(data: str | None, n: int) -> tuple[list[str], str, tuple[str, ...]]:
    if data and (Path(data) / "pool.jsonl").exists():
        meta = json.loads((Path(data) / "meta.json").read_text())
        rows = [json.loads(x) for x in (Path(data) / "pool.jsonl").read_text().splitlines()[:n]]
        return [r["text"] for r in rows], meta["template"], tuple(meta["label_words"][lab] for lab in meta["labels"])
    words = SYNTHETIC_WORDS
    g = torch.Generator().manual_seed(0)
    texts = [
        " ".join(
            words[i] for i in torch.randint(len(words), (int(torch.randint(5, 60, (1,), generator=g)),), generator=g)
        )
        for _ in range(n)
    ]
    return texts, "{text} It was {mask} .", ("bad", "great")


def build_random(shape: str) -> str:
    """A randomly initialised model of a real architecture's size (no download), saved to a temp folder."""
    import tempfile

    from transformers import AutoModelForMaskedLM, RobertaConfig

    from tests.conftest import _bpe_tokenizer

    sizes = {
        "roberta-large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
    }
    root = Path(tempfile.mkdtemp())
    tok = _bpe_tokenizer(root)
    cfg = RobertaConfig(vocab_size=50265, max_position_embeddings=514, pad_token_id=1, **sizes[shape])
    AutoModelForMaskedLM.from_config(cfg).save_pretrained(root)
    tok.save_pretrained(root)
    return str(root)


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default=None)
    ap.add_argument("--data", default=None)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--bottleneck", type=int, default=128)
    ap.add_argument("--head", default="auto")
    ap.add_argument("--random-family", default=None, help="build a random model of this shape (e.g. roberta-large)")
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.random_family:
        args.backbone = build_random(args.random_family)
    bb = load_backbone(args.backbone)
    dev = bb.device
    texts, template, words = load_texts(args.data, args.n)
    prompt = Prompt(template, words)
    model = ListModel(bb, prompt, head=args.head, adapter=AdapterConfig(bottleneck=args.bottleneck))
    rows = [{"text": t} for t in texts]
    print(f"device={dev} backbone={bb.name} family={bb.family} head={model.head_kind} n={len(rows)}")
    print(f"trainable parameters: {model.parameter_report()}")

    # 1. pseudo-labeling throughput ---------------------------------------------------------------
    rendered = [prompt.render(bb.tokenizer.mask_token, text=t) for t in texts]

    def bare_loop(module: torch.nn.Module):
        """A plain `module(**batch)` loop over unsorted, padded-to-longest batches (what a user would write)."""

        def run() -> None:
            with torch.no_grad():
                for s in range(0, len(rendered), args.batch):
                    batch = bb.tokenizer(
                        rendered[s : s + args.batch], padding=True, truncation=True, max_length=128, return_tensors="pt"
                    ).to(dev)
                    with autocast(dev):
                        module(**batch)

        return run

    bare, bare_encoder = bare_loop(bb.model), bare_loop(bb.encoder)

    def ours() -> None:
        model.logits(model.encode(rows), args.batch)

    rates = {}
    for name, fn in (
        ("bare MLM model(**batch) loop", bare),
        ("bare encoder(**batch) loop", bare_encoder),
        ("list_core pseudo-label", ours),
    ):
        fn()  # warm-up
        sync(dev)
        t = time.perf_counter()
        fn()
        sync(dev)
        dt = time.perf_counter() - t
        rates[name] = len(rows) / dt
        print(f"{name:30s}: {rates[name]:8.1f} examples/s ({dt:.2f} s, tokenisation included)")
    for name in list(rates)[:2]:
        print(f"pseudo-label throughput / {name}: {rates['list_core pseudo-label'] / rates[name]:.2f}x")

    # 2. meta step vs plain student step ----------------------------------------------------------
    enc = model.encode(rows[:-32])
    gold = model.encode(rows[-32:])
    y = torch.randint(len(words), (len(gold),))
    q = torch.softmax(torch.randn(len(enc), len(words)), -1)
    cfg = TrainConfig()
    opt = make_optimizer(model, 1e-4, cfg)
    g = torch.Generator().manual_seed(0)
    model.train()

    def plain_step() -> None:
        idx = sample_batch(range(len(enc)), 16, g)
        b = collate(enc, idx, model.pad_id, dev)
        with autocast(dev):
            loss = kd_loss(model(**b), q[idx].to(dev)).mean()
        loss.backward()
        _clip_and_step(model, opt, cfg)

    def meta() -> None:
        idx = sample_batch(range(len(enc)), 16, g)
        gi = sample_batch(range(len(gold)), 4, g)
        ms = meta_step(
            model,
            collate(enc, idx, model.pad_id, dev),
            q[idx].to(dev),
            collate(gold, gi, model.pad_id, dev),
            y[gi].to(dev),
        )
        for n, p in model.trainable_named_parameters().items():
            p.grad = ms.update[n]
        _clip_and_step(model, opt, cfg)

    times = {}
    for name, fn in (("plain student step", plain_step), ("meta-reweighting step", meta)):
        for _ in range(3):
            fn()
        sync(dev)
        t = time.perf_counter()
        for _ in range(args.steps):
            fn()
        sync(dev)
        times[name] = (time.perf_counter() - t) / args.steps
        print(f"{name:30s}: {times[name] * 1000:8.1f} ms/step")
    print(f"meta / plain step time: {times['meta-reweighting step'] / times['plain student step']:.2f}x")

    # 3. memory -----------------------------------------------------------------------------------
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if dev.type == "cuda":
        print(f"peak CUDA memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
