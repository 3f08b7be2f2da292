"""`ListModel`: a frozen backbone encoder with LiST adapters and a trainable head, giving class logits."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import math
import weakref
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from .adapter import Adapter, adapted_layers, count_parameters, external_name, set_submodule, slot_key
from .backbone import Backbone
from .config import AdapterConfig
from .data import Encoded, Row, collate, sorted_batches
from .heads import (
    VIEW_HEADS,
    ClassicHead,
    ProbeHead,
    PromptHead,
    SimilarityHead,
    check_feature_layers,
    choose_head,
    linear_of,
    view_features,
)
from .lexical import LexicalHead, row_text, split_state
from .prompts import Prompt, label_word_ids
from .teacher import prompt_aware_probe

_names = itertools.count(1)


class ListModel(nn.Module):
    """Frozen backbone encoder + this model's own named adapters + a trainable head, giving class logits.

    The backbone is shared and never changed by a model: the model's adapters are registered on it under
    `adapter_name` and active only during this model's forward passes, so several models (and several
    tasks) share one backbone in memory without seeing each other's weights. The model's parameters are
    its adapters and its head only; the encoder is not a submodule.
    """

    def __init__(
        self,
        backbone: Backbone,
        prompt: Prompt,
        head: str = "auto",
        adapter: AdapterConfig | None = AdapterConfig(),
        pooling: str = "mean",
        max_length: int = 128,
        adapter_name: str | None = None,
        feature_layers: int = 1,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.prompt = prompt
        self.max_length = max_length
        self.lexical: LexicalHead | None = None  # a lexical view mixed into the final classifier (`lexical`)
        self.temperature = 1.0  # set by calibration (`calibration.fit_temperature`); scales logits in predict_proba
        self.head_kind, self.head_reason = choose_head(head, backbone)
        # the heads on pooled features (similarity, probe) may read several layers; the others read the last one
        self.feature_layers = check_feature_layers(feature_layers, backbone) if self.head_kind in VIEW_HEADS else 1
        # only an MLM head reads label words as vocabulary ids (one token each); the other heads take any text
        self.label_ids = label_word_ids(prompt, backbone.tokenizer) if self.head_kind == "prompt" else []
        self.teacher_info: dict[str, float] = {}
        self.teacher_pool_proba: torch.Tensor | None = None  # (N, C) set by fit_prompt_teacher
        self.adapter_config = adapter
        self.adapter_name: str | None = None
        self.adapters = nn.ModuleDict()
        self._layer_names: dict[str, str] = {}  # slot key -> layer name in the encoder
        if adapter is not None:
            self.adapter_name = adapter_name or f"{self.head_kind}-{next(_names)}"
            own: dict[str, Adapter] = {}
            for layer_name, layer in backbone.adapter_layers().items():
                own[layer_name] = Adapter(layer.base.out_features, adapter).to(layer.base.weight.device)
                self.adapters[slot_key(layer_name)] = own[layer_name]
                self._layer_names[slot_key(layer_name)] = layer_name
            backbone.add_adapter(self.adapter_name, own)
            # the backbone forgets this model's adapters when the model is garbage-collected
            weakref.finalize(self, backbone.remove_adapter, self.adapter_name)
        self.pad_id = backbone.tokenizer.pad_token_id if backbone.tokenizer.pad_token_id is not None else 0
        if self.head_kind == "prompt":
            self.head = PromptHead(backbone, self.label_ids, [len(g) for g in prompt.words])
        elif self.head_kind == "similarity":
            # the zero-shot prompt reads the last layer: its prototypes are zero on the other layers' blocks, and the
            # scale grows by sqrt(L) so the untrained head's logits are the last layer's zero-shot logits exactly
            self.head = SimilarityHead(self.verbaliser_prototypes(), scale=20.0 * math.sqrt(self.feature_layers))
        elif self.head_kind == "probe":
            self.head = ProbeHead(self.feature_dim, prompt.num_classes)
        else:
            self.head = ClassicHead(backbone.hidden_size, prompt.num_classes, pooling)
        self.head.to(backbone.device)

    @property
    def encoder(self) -> nn.Module:
        """The shared backbone encoder (not a submodule of this model)."""
        return self.backbone.encoder

    @property
    def device(self) -> torch.device:
        return self.backbone.device

    @property
    def num_classes(self) -> int:
        return self.prompt.num_classes

    @property
    def feature_dim(self) -> int:
        """Width of a pooled feature: the hidden size times the layers read (`feature_layers`)."""
        return self.backbone.hidden_size * self.feature_layers

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, mask_pos: torch.Tensor) -> torch.Tensor:
        """(B, T) ids, (B, T) padding mask, (B,) mask positions -> (B, C) class logits."""
        mask = attention_mask
        if self.backbone.spec.mask_4d:
            # an additive (B, 1, 1, T) mask skips transformers' data-dependent mask code, so vmap works
            mask = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        with self.backbone.activate(self.adapter_name, self.training):
            out = self.encoder(input_ids=input_ids, attention_mask=mask, output_hidden_states=self.feature_layers > 1)
        if self.feature_layers == 1:
            return self.head(out.last_hidden_state, attention_mask, mask_pos).float()  # (B, T, D) -> (B, C)
        x = view_features(out.hidden_states[-self.feature_layers :], attention_mask)  # (B, L*D)
        return self.head.logits_of(x).float()  # (B, C)

    # trainable state ---------------------------------------------------------------------------

    def trainable_named_parameters(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    def _external(self, name: str) -> str:
        """A parameter's name in checkpoints and exports: `encoder.<layer>.adapter.<down|up>.weight` or `head.*`."""
        if name.startswith("adapters."):
            key, which, _ = name[len("adapters.") :].split(".")
            return external_name(self._layer_names[key], which)
        return name

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Adapters and head only, by their external names, and the lexical view's arrays when it has one
        (`lexical.*`): what a checkpoint or an export holds."""
        state = {self._external(n): p.detach().clone() for n, p in self.trainable_named_parameters().items()}
        return state if self.lexical is None else {**state, **self.lexical.state()}

    def adapter_modules(self) -> dict[str, Adapter]:
        """This model's adapters by the name of the encoder layer each follows."""
        return {self._layer_names[k]: a for k, a in self.adapters.items()}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        """Adapters and head from `trainable_state()`'s names; the lexical view is the state's (or none)."""
        state, lexical = split_state(state)
        if lexical is not None and lexical.num_classes != self.num_classes:
            raise ValueError(f"lexical view: {lexical.num_classes} classes, the model has {self.num_classes}")
        params = {self._external(n): p for n, p in self.trainable_named_parameters().items()}
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if missing or unexpected:
            raise KeyError(f"trainable state does not match: missing {missing[:5]}, unexpected {unexpected[:5]}")
        with torch.no_grad():
            for n, p in params.items():
                if tuple(state[n].shape) != tuple(p.shape):
                    raise ValueError(f"{n}: saved shape {tuple(state[n].shape)} != model shape {tuple(p.shape)}")
                p.copy_(state[n].to(p.device, p.dtype))
        self.lexical = lexical

    def reset_trainable(self, generator: torch.Generator | None = None) -> None:
        """A fresh student: adapters drawn again, the head re-initialised, no lexical view."""
        self.lexical = None
        for adapter in self.adapters.values():
            adapter.reset_parameters(generator)
        self.head.reset_parameters(generator)

    @torch.no_grad()
    def identity_adapters(self) -> None:
        """Make every adapter the identity (W_up = 0): the model then reads the plain backbone's features."""
        for adapter in self.adapters.values():
            adapter.up.weight.zero_()

    def parameter_report(self) -> dict[str, float]:
        trainable = count_parameters(self, trainable_only=True)
        backbone = sum(p.numel() for p in self.backbone.model.parameters())
        return {"trainable": trainable, "backbone": backbone, "percent": 100.0 * trainable / backbone}

    # inference ---------------------------------------------------------------------------------

    @property
    def plain_input(self) -> bool:
        """The similarity head reads the texts alone (its prompt is in the prototypes); the others the template."""
        return self.head_kind == "similarity"

    def encode(self, rows: Sequence[Row]) -> Encoded:
        """Token ids of the rows as this model reads them, with their texts when it has a lexical view."""
        enc = Encoded.of(self.prompt, self.backbone.tokenizer, rows, self.max_length, plain=self.plain_input)
        if self.lexical is None:
            return enc
        return dataclasses.replace(enc, texts=[row_text(r, self.prompt.text_slots) for r in rows])

    def verbaliser_prototypes(self, batch_size: int = 64) -> torch.Tensor:
        """(C, L*D) the backbone's own normalised embedding of each class's verbaliser: the mean of the last layer's
        embeddings of its verbaliser sentences (one per label word, plus the description), zero on the blocks of the
        other layers a view reads (the zero-shot prompt is the last layer's)."""
        mean = self._verbaliser_mean(batch_size)  # (C, L*D)
        last = torch.nn.functional.normalize(mean[:, -self.backbone.hidden_size :], dim=-1)  # (C, D)
        pad = torch.zeros(len(last), self.feature_dim - last.shape[1])
        return torch.cat([pad, last], 1).to(self.device)  # (C, L*D)

    def verbaliser_points(self, batch_size: int = 64) -> torch.Tensor:
        """(C, L*D) each class's verbaliser sentences in this model's feature view (`frozen_features`), averaged and
        normalised: where the prompt's classes sit among the texts' features (the teacher's verbaliser points)."""
        return torch.nn.functional.normalize(self._verbaliser_mean(batch_size), dim=-1).to(self.device)

    def _verbaliser_mean(self, batch_size: int) -> torch.Tensor:
        """(C, L*D) the mean of `frozen_features` over each class's verbaliser sentences."""
        sentences = self.prompt.verbaliser_sentences()
        flat = [s for group in sentences for s in group]
        x = self.frozen_features(Encoded.sentences(self.backbone.tokenizer, flat, self.max_length), batch_size)
        sizes = torch.tensor([len(g) for g in sentences])
        owner = torch.repeat_interleave(torch.arange(len(sentences)), sizes)  # (S,)
        return torch.zeros(len(sentences), x.shape[1]).index_add_(0, owner, x) / sizes[:, None]

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
        if self.lexical is not None:  # the final classifier mixes in its lexical view (`lexical`)
            if enc.texts is None:
                raise ValueError("this model has a lexical view, which reads the texts: encode rows with model.encode")
            out = self.lexical.mix(out, enc.texts)
        return out

    @torch.no_grad()
    def frozen_features(self, enc: Encoded, batch_size: int = 64) -> torch.Tensor:
        """(N, L*D) features of the plain backbone (adapters off): the mean-pooled, L2-normalised output of the last
        `feature_layers` layers side by side (`view_features`; norm 1)."""
        return self._frozen(enc, batch_size, lambda states, mask: view_features(states, mask), self.feature_dim)

    @torch.no_grad()
    def layer_features(self, enc: Encoded, batch_size: int = 64) -> torch.Tensor:
        """(N, L, D) each of the last `feature_layers` layers' mean-pooled, L2-normalised output, apart (the views of
        any top n <= L of them follow without another pass: `views.view_of`)."""
        d, n = self.backbone.hidden_size, self.feature_layers

        def apart(states: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
            return torch.stack([view_features([h], mask) for h in states], 1).reshape(len(mask), n * d)

        return self._frozen(enc, batch_size, apart, n * d).reshape(len(enc), n, d)

    def _frozen(self, enc: Encoded, batch_size: int, combine, width: int) -> torch.Tensor:
        """(N, width) `combine(states, attention_mask)` over the plain backbone's last `feature_layers` hidden states."""
        out = torch.empty((len(enc), width), dtype=torch.float32)
        was_training = self.training
        self.eval()
        try:
            for idx in sorted_batches(enc, batch_size):
                b = collate(enc, idx, self.pad_id, self.device)
                with autocast(self.device), self.backbone.activate(None):
                    o = self.encoder(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                                     output_hidden_states=self.feature_layers > 1)  # fmt: skip
                states = o.hidden_states[-self.feature_layers :] if self.feature_layers > 1 else (o.last_hidden_state,)
                out[idx] = combine([h.float() for h in states], b["attention_mask"]).cpu()
        finally:
            self.train(was_training)
        return out

    @torch.no_grad()
    def feature_logits(self, features: torch.Tensor) -> torch.Tensor:
        """(N, D) `frozen_features` -> (N, C) logits of a similarity head without adapters (the zero-shot prompt): its
        input is the text alone, so features computed once serve any prompt on the same backbone."""
        return self.head.logits_of(features.to(self.device)).float().cpu()

    def prepare_head(
        self,
        gold: Encoded,
        labels: Sequence[int],
        seed: int = 0,
        pool: Encoded | None = None,
        self_train: int = 0,
        batch_size: int = 64,
        pool_features: torch.Tensor | None = None,
        balanced: bool = False,
    ) -> None:
        """Heads that start from the gold examples (the probe head) are fitted here; others ignore it.
        With `pool` and `self_train` > 0 the probe is self-trained on the pool's frozen features (`pool_features`
        when they were computed elsewhere, e.g. on a cluster); `balanced` as in `TrainConfig.class_balance`."""
        if not isinstance(self.head, ProbeHead):
            return
        pool_x = None
        if pool is not None and self_train and len(pool):
            pool_x = pool_features if pool_features is not None else self.frozen_features(pool, batch_size)
        self.head.fit(self.frozen_features(gold, batch_size), torch.tensor(list(labels)), seed, pool_x, self_train,
                      balanced)  # fmt: skip

    def fit_prompt_teacher(
        self,
        gold: Encoded,
        labels: Sequence[int],
        pool: Encoded | None,
        self_train: int,
        prompt_weight: float,
        verbaliser_points: int,
        seed: int = 0,
        batch_size: int = 64,
        pool_features: torch.Tensor | None = None,
        balanced: bool = False,
        views: tuple[int, ...] = (),
    ) -> dict[str, float]:
        """Set the similarity head to the prompt-aware probe (`teacher.prompt_aware_probe`) fitted on frozen
        features of the gold examples and the pool (`pool_features` when computed elsewhere); returns what it
        measured about the prompt. `balanced`: every class the same total weight (`TrainConfig.class_balance`).
        `views`: an ensemble of the probe fitted on the top n layers for each n (at most `feature_layers`), its
        logits averaged (`TrainConfig.teacher_views`)."""
        if not isinstance(self.head, SimilarityHead):
            raise TypeError(f"the prompt-aware teacher needs the similarity head, not {self.head_kind!r}")
        x_gold = self.frozen_features(gold, batch_size).numpy()  # (K, L*D)
        x_pool = None
        if pool is not None and len(pool):
            x_pool = (pool_features if pool_features is not None else self.frozen_features(pool, batch_size)).numpy()
        d, top = self.backbone.hidden_size, self.feature_layers
        views = tuple(views) or (top,)
        if any(not 1 <= n <= top for n in views):
            raise ValueError(f"views={views}: each must be between 1 and feature_layers={top}")
        protos = self.head.verbaliser_prototypes[:, -d:].float().cpu().numpy()  # (C, D)
        if max(views) > 1:  # the zero-shot prompt reads the last layer (the view's last block, renormalised)
            mean = self._verbaliser_mean(batch_size)  # (C, L*D)
            last = {"prompt_gold": x_gold[:, -d:] * math.sqrt(top),
                    "prompt_pool": None if x_pool is None else x_pool[:, -d:] * math.sqrt(top)}  # fmt: skip
        w, b = torch.zeros(self.num_classes, top * d), torch.zeros(self.num_classes)
        for n in views:  # the top n layers' blocks, rescaled to norm 1: that view's features (`view_features`)
            scale = math.sqrt(top / n)
            apart: dict[str, np.ndarray | None] = {}
            if n > 1:  # the verbaliser points in this view
                points = torch.nn.functional.normalize(mean[:, -n * d :] * scale, dim=-1)  # (C, n*D)
                apart = {**last, "points": points.float().cpu().numpy()}
            xg, xp = x_gold[:, -n * d :] * scale, None if x_pool is None else x_pool[:, -n * d :] * scale
            clf, info = prompt_aware_probe(xg, np.asarray(list(labels)), xp, protos, prompt_weight, verbaliser_points,
                                           self_train, seed=seed, balanced=balanced, **apart)  # fmt: skip
            wn, bn = linear_of(clf, self.num_classes, n * d)  # on the view: logits = wn . (scale * x[-n*d:]) + bn
            w[:, -n * d :] += scale * wn / len(views)
            b += bn / len(views)
        self.head.set_linear(w.to(self.device), b.to(self.device))
        self.teacher_info = info if len(views) == 1 else {**info, "teacher_views": list(views)}
        # the teacher's probabilities on the pool, from the features it was just fitted on (no second pass)
        self.teacher_pool_proba = (torch.from_numpy(x_pool) @ w.T + b).softmax(-1) if x_pool is not None else None
        return self.teacher_info

    def predict_proba(self, rows: Sequence[Row], batch_size: int = 64) -> torch.Tensor:
        """(N, C) class probabilities for raw rows (logits divided by `temperature`, 1 unless calibrated)."""
        return (self.logits(self.encode(rows), batch_size) / self.temperature).softmax(-1)

    def folded_copy(self) -> ListModel:
        """This model on a copy of the backbone with its adapters folded into the dense weights: the same
        function with no adapters left (the shared backbone is untouched)."""
        mlm = copy.deepcopy(self.backbone.model)
        encoder = mlm.base_model
        own = self.adapter_modules()
        for name, layer in adapted_layers(encoder).items():
            set_submodule(encoder, name, layer.folded(own[name]) if name in own else layer.base)
        bb = dataclasses.replace(self.backbone, model=mlm)
        plain = ListModel(bb, self.prompt, self.head_kind, None, getattr(self.head, "pooling", "mean"), self.max_length,
                          feature_layers=self.feature_layers)  # fmt: skip
        plain.head = copy.deepcopy(self.head)
        plain.head_reason = self.head_reason
        plain.lexical = self.lexical
        return plain


def fold_adapters(model: ListModel) -> ListModel:
    """`model.folded_copy()`: the same classifier with its adapters folded into a copy of the backbone."""
    return model.folded_copy()


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
