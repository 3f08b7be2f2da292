"""`ListModel`: a frozen backbone encoder with LiST adapters and a trainable head, giving class logits."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from .adapter import (
    AdaptedLinear,
    Adapter,
    adapted_layers,
    adapters_disabled,
    add_adapters,
    count_parameters,
    reset_adapters,
)
from .backbone import Backbone, adapter_targets
from .config import AdapterConfig
from .data import Encoded, Row, collate, sorted_batches
from .heads import ClassicHead, ProbeHead, PromptHead, choose_head, pool
from .prompts import Prompt, label_word_ids


class ListModel(nn.Module):
    """Encoder (frozen, with adapters) + head. Only adapters and head are trainable.

    The backbone is shared: adapters are attached to it in place (a second `ListModel` on the same
    backbone replaces them), so many tasks can share one backbone in memory.
    """

    def __init__(
        self,
        backbone: Backbone,
        prompt: Prompt,
        head: str = "auto",
        adapter: AdapterConfig | None = AdapterConfig(),
        pooling: str = "mean",
        max_length: int = 128,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.prompt = prompt
        self.max_length = max_length
        self.label_ids = label_word_ids(prompt, backbone.tokenizer)
        self.head_kind, self.head_reason = choose_head(head, backbone)
        self.adapter_config = adapter
        self.encoder = backbone.encoder
        if adapter is not None:
            attach_adapters(backbone, adapter)
        else:
            detach_adapters(backbone)
        if self.head_kind == "prompt":
            self.head = PromptHead(backbone, self.label_ids)
        elif self.head_kind == "probe":
            self.head = ProbeHead(backbone.hidden_size, len(prompt.label_words))
        else:
            self.head = ClassicHead(backbone.hidden_size, len(prompt.label_words), pooling)
        self.head.to(backbone.device)
        self.pad_id = backbone.tokenizer.pad_token_id if backbone.tokenizer.pad_token_id is not None else 0

    @property
    def device(self) -> torch.device:
        return self.backbone.device

    @property
    def num_classes(self) -> int:
        return len(self.prompt.label_words)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, mask_pos: torch.Tensor) -> torch.Tensor:
        """(B, T) ids, (B, T) padding mask, (B,) mask positions -> (B, C) class logits."""
        mask = attention_mask
        if self.backbone.spec.mask_4d:
            # an additive (B, 1, 1, T) mask skips transformers' data-dependent mask code, so vmap works
            mask = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        hidden = self.encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state  # (B, T, D)
        return self.head(hidden, attention_mask, mask_pos).float()

    # trainable state ---------------------------------------------------------------------------

    def trainable_named_parameters(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Adapters and head only: what a checkpoint or an export holds."""
        return {n: p.detach().clone() for n, p in self.trainable_named_parameters().items()}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        params = self.trainable_named_parameters()
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if missing or unexpected:
            raise KeyError(f"trainable state does not match: missing {missing[:5]}, unexpected {unexpected[:5]}")
        with torch.no_grad():
            for n, p in params.items():
                if tuple(state[n].shape) != tuple(p.shape):
                    raise ValueError(f"{n}: saved shape {tuple(state[n].shape)} != model shape {tuple(p.shape)}")
                p.copy_(state[n].to(p.device, p.dtype))

    def reset_trainable(self, generator: torch.Generator | None = None) -> None:
        """A fresh student: adapters drawn again and the head re-initialised."""
        reset_adapters(self.encoder, generator)
        self.head.reset_parameters(generator)

    def parameter_report(self) -> dict[str, float]:
        trainable = count_parameters(self, trainable_only=True)
        backbone = sum(p.numel() for n, p in self.backbone.model.named_parameters() if ".adapter." not in n)
        return {"trainable": trainable, "backbone": backbone, "percent": 100.0 * trainable / backbone}

    # inference ---------------------------------------------------------------------------------

    def encode(self, rows: Sequence[Row]) -> Encoded:
        return Encoded.of(self.prompt, self.backbone.tokenizer, rows, self.max_length)

    @torch.no_grad()
    def logits(self, enc: Encoded, batch_size: int = 64) -> torch.Tensor:
        """(N, C) logits in the input order; batches are length-sorted and padded dynamically."""
        was_training = self.training
        self.eval()
        out = torch.empty((len(enc), self.num_classes), dtype=torch.float32)
        try:
            for idx in sorted_batches(enc, batch_size):
                with autocast(self.device):
                    out[idx] = self(**collate(enc, idx, self.pad_id, self.device)).cpu()
        finally:
            self.train(was_training)
        return out

    @torch.no_grad()
    def frozen_features(self, enc: Encoded, batch_size: int = 64) -> torch.Tensor:
        """(N, D) L2-normalised mean-pooled features of the plain backbone (adapters off)."""
        out = torch.empty((len(enc), self.backbone.hidden_size), dtype=torch.float32)
        was_training = self.training
        self.eval()
        try:
            with adapters_disabled(self.encoder):
                for idx in sorted_batches(enc, batch_size):
                    b = collate(enc, idx, self.pad_id, self.device)
                    with autocast(self.device):
                        h = self.encoder(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
                    out[idx] = torch.nn.functional.normalize(pool(h.float(), b["attention_mask"]), dim=-1).cpu()
        finally:
            self.train(was_training)
        return out

    def prepare_head(
        self,
        gold: Encoded,
        labels: Sequence[int],
        seed: int = 0,
        pool: Encoded | None = None,
        self_train: int = 0,
        batch_size: int = 64,
    ) -> None:
        """Heads that start from the gold examples (the probe head) are fitted here; others ignore it.
        With `pool` and `self_train` > 0 the probe is self-trained on the pool's frozen features."""
        if not isinstance(self.head, ProbeHead):
            return
        pool_x = self.frozen_features(pool, batch_size) if pool is not None and self_train and len(pool) else None
        self.head.fit(self.frozen_features(gold, batch_size), torch.tensor(list(labels)), seed, pool_x, self_train)

    def predict_proba(self, rows: Sequence[Row], batch_size: int = 64) -> torch.Tensor:
        """(N, C) class probabilities for raw rows."""
        return self.logits(self.encode(rows), batch_size).softmax(-1)


def attach_adapters(backbone: Backbone, cfg: AdapterConfig) -> None:
    """Give every target layer a fresh adapter of this config (wrapping the dense layers the first time)."""
    layers = adapted_layers(backbone.encoder)
    if not layers:
        add_adapters(backbone.encoder, adapter_targets(backbone), cfg)
        return
    for layer in layers.values():
        layer.adapter = Adapter(layer.base.out_features, cfg).to(layer.base.weight.device)


def detach_adapters(backbone: Backbone) -> None:
    """Restore the plain dense layers (undo `attach_adapters`)."""
    for name, layer in adapted_layers(backbone.encoder).items():
        parent_name, _, child = name.rpartition(".")
        parent = backbone.encoder.get_submodule(parent_name) if parent_name else backbone.encoder
        assert isinstance(layer, AdaptedLinear)
        setattr(parent, child, layer.base)


@contextlib.contextmanager
def eager_attention(backbone: Backbone) -> Iterator[None]:
    """Use eager attention inside the block: SDPA's backward has no vmap batching rule (a slow per-example loop)."""
    before = backbone.model.config._attn_implementation
    if before in ("eager", None):
        yield
        return
    backbone.model.set_attn_implementation("eager")
    try:
        yield
    finally:
        backbone.model.set_attn_implementation(before)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, nothing elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
