"""Loading a masked LM (local folder or hub id, offline first) and what LiST needs to know about its family."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForMaskedLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.activations import get_activation
from transformers.utils import logging as hf_logging

from .adapter import AdaptedLinear, Adapter, adapted_layers, set_submodule, wrap_targets
from .feature_cache import FeatureCache
from .locate import resolve_backbone_path


@dataclass(frozen=True)
class FamilySpec:
    """Where adapters go and how the MLM head's transform is built, for one model family."""

    adapter_pattern: str  # regex on module names of the two dense layers per block
    transform: Callable[[PreTrainedModel], tuple[nn.Linear, Callable, nn.Module]]  # (dense, act, norm)
    mask_4d: bool = True  # pass a 4D additive mask (vmap-safe) instead of the 2D padding mask


def _bert_transform(m: PreTrainedModel) -> tuple[nn.Linear, Callable, nn.Module]:
    t = m.cls.predictions.transform
    return t.dense, t.transform_act_fn, t.LayerNorm


def _roberta_transform(m: PreTrainedModel) -> tuple[nn.Linear, Callable, nn.Module]:
    return m.lm_head.dense, get_activation("gelu"), m.lm_head.layer_norm


def _electra_transform(m: PreTrainedModel) -> tuple[nn.Linear, Callable, nn.Module]:
    p = m.generator_predictions
    return p.dense, p.activation, p.LayerNorm


def _distilbert_transform(m: PreTrainedModel) -> tuple[nn.Linear, Callable, nn.Module]:
    return m.vocab_transform, m.activation, m.vocab_layer_norm


# transformers builds a model on the meta device by patching process-wide state: two threads loading at once (the
# worker's training and light lanes) both failed with "Cannot copy out of meta tensor". Loads take turns.
MODEL_LOAD_LOCK = threading.Lock()  # held by every from_pretrained of this package

_BERT_LIKE = r"\.layer\.\d+\.(attention\.output\.dense|output\.dense)$"
FAMILIES: dict[str, FamilySpec] = {
    "bert": FamilySpec(_BERT_LIKE, _bert_transform),
    "roberta": FamilySpec(_BERT_LIKE, _roberta_transform),
    "xlm-roberta": FamilySpec(_BERT_LIKE, _roberta_transform),
    "camembert": FamilySpec(_BERT_LIKE, _roberta_transform),
    "electra": FamilySpec(_BERT_LIKE, _electra_transform),
    "deberta-v2": FamilySpec(_BERT_LIKE, _bert_transform, mask_4d=False),
    "mpnet": FamilySpec(r"\.layer\.\d+\.(attention\.attn\.o|output\.dense)$", _roberta_transform),
    "distilbert": FamilySpec(r"\.layer\.\d+\.(attention\.out_lin|ffn\.lin2)$", _distilbert_transform),
}


@dataclass
class Backbone:
    """A loaded masked LM with its tokenizer and what was found out while loading it."""

    name: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    family: str
    head_pretrained: bool
    missing_head_keys: tuple[str, ...]
    device: torch.device
    # one forward at a time: the active adapter and the train/eval mode are state of the shared layers
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False, compare=False)
    # the prompt tools' frozen features of texts already scored (never read by training; `feature_cache`)
    feature_cache: FeatureCache = field(default_factory=FeatureCache, init=False, repr=False, compare=False)

    @property
    def spec(self) -> FamilySpec:
        return FAMILIES[self.family]

    @property
    def encoder(self) -> nn.Module:
        return self.model.base_model

    @property
    def hidden_size(self) -> int:
        cfg = self.model.config
        return int(getattr(cfg, "hidden_size", None) or cfg.dim)

    def weights_hash(self) -> str:
        """sha256 over the encoder's frozen weights (names, shapes, bytes), independent of adapters."""
        return weights_hash(self.encoder)

    # named adapters ------------------------------------------------------------------------------

    def adapter_layers(self) -> dict[str, AdaptedLinear]:
        """The dense layers that take adapters (two per block), wrapped on first use; by name in the encoder."""
        return wrap_targets(self.encoder, adapter_targets(self))

    def adapter_names(self) -> list[str]:
        """Names of the adapter sets registered on this backbone."""
        layers = list(adapted_layers(self.encoder).values())
        return sorted(layers[0].slots) if layers else []

    def add_adapter(self, name: str, adapters: dict[str, Adapter]) -> None:
        """Register a model's adapters (one per layer of `adapter_layers()`) under `name`."""
        layers = self.adapter_layers()
        if set(adapters) != set(layers):
            raise ValueError(f"adapter {name!r} must have one adapter per target layer ({len(layers)})")
        with self._lock:
            if name in self.adapter_names():
                raise ValueError(f"an adapter named {name!r} is already registered on this backbone")
            for layer_name, layer in layers.items():
                layer.slots[name] = adapters[layer_name]

    def remove_adapter(self, name: str) -> None:
        """Forget the adapters registered under `name` (no error if there are none)."""
        with self._lock:
            for layer in adapted_layers(self.encoder).values():
                layer.slots.pop(name, None)
                if layer.active == name:
                    layer.active = None

    @contextlib.contextmanager
    def activate(self, name: str | None, training: bool = False) -> Iterator[None]:
        """Run the encoder inside the block with adapter set `name` (None: the plain backbone) in train or
        eval mode, then restore what was active before; one thread at a time."""
        with self._lock:
            layers = list(adapted_layers(self.encoder).values()) if name is not None or self._wrapped() else []
            if name is not None and not (layers and name in layers[0].slots):
                raise KeyError(f"no adapter named {name!r} on this backbone; registered: {self.adapter_names()}")
            before = [layer.active for layer in layers]
            was_training = self.encoder.training
            for layer in layers:
                layer.active = name
            self.encoder.train(training)
            try:
                yield
            finally:
                for layer, prev in zip(layers, before):
                    layer.active = prev
                self.encoder.train(was_training)

    def _wrapped(self) -> bool:
        return any(isinstance(m, AdaptedLinear) for m in self.encoder.modules())

    def unwrap(self) -> None:
        """Restore the plain dense layers; refused while adapters are registered (their models would run
        without them)."""
        with self._lock:
            names = self.adapter_names()
            if names:
                raise RuntimeError(f"adapters {names} are still registered on this backbone")
            for layer_name, layer in adapted_layers(self.encoder).items():
                set_submodule(self.encoder, layer_name, layer.base)


def weights_hash(module: nn.Module) -> str:
    """sha256 of a module's parameters and buffers, skipping adapter weights."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        name = name.replace(".base.", ".")  # a layer wrapped for adapters hashes as the plain layer
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """CUDA when present, else CPU; an explicit choice wins."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _head_prefixes(model: PreTrainedModel) -> Callable[[str], bool]:
    base = model.base_model_prefix
    return lambda key: not (key.startswith(base + ".") or key == base)


def load_backbone(name: str | None = None, device: str | torch.device | None = None) -> Backbone:
    """Load an `AutoModelForMaskedLM` and its tokenizer, offline first, frozen and in eval mode.

    Reports whether the MLM head was pretrained: keys of the head missing from the checkpoint mean it was
    newly initialised, and a prompt head then carries no knowledge.
    """
    path = resolve_backbone_path(name)
    if not Path(path).is_dir() and (path.startswith((".", "~")) or os.path.isabs(path) or path.count("/") > 1):
        raise FileNotFoundError(f"backbone folder {path} does not exist (give a local folder or a hub id)")
    with MODEL_LOAD_LOCK:
        return _load(name, path, pick_device(device))


def _load(name: str | None, path: str, dev: torch.device) -> Backbone:
    """`load_backbone`'s work, one thread at a time."""
    if not Path(path).is_dir() and not _in_hub_cache(path) and not _hub_reachable():
        # fail in seconds, not after a minute of download retries
        raise OSError(f"backbone {path!r} is neither a local folder nor in the Hugging Face cache, and the Hub "
                      "cannot be reached from here (offline): download it on a connected machine "
                      "(save_pretrained) and give its folder")  # fmt: skip
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        try:
            model, info = AutoModelForMaskedLM.from_pretrained(path, output_loading_info=True, local_files_only=True)
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except OSError:
            if Path(path).is_dir() or os.environ.get("HF_HUB_OFFLINE") == "1":
                raise
            model, info = AutoModelForMaskedLM.from_pretrained(path, output_loading_info=True)
            tokenizer = AutoTokenizer.from_pretrained(path)
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    family = model.config.model_type
    if family not in FAMILIES:
        raise ValueError(f"backbone {name!r} is a {family!r} model; supported families: {sorted(FAMILIES)}")
    if tokenizer.mask_token_id is None:
        raise ValueError(f"backbone {name!r}: its tokenizer has no mask token")
    is_head = _head_prefixes(model)
    missing = tuple(sorted(k for k in info["missing_keys"] if is_head(k)))
    model.to(dev).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return Backbone(
        name=name or path,
        model=model,
        tokenizer=tokenizer,
        family=family,
        head_pretrained=not missing,
        missing_head_keys=missing,
        device=dev,
    )


def _in_hub_cache(repo_id: str) -> bool:
    """Whether a hub id's config is in the local Hugging Face cache (then it loads offline)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # an id the cache cannot even parse is not in it
        return False


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers a TCP connection at all (its host, or $HF_ENDPOINT's)."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        with socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def adapter_targets(backbone: Backbone) -> list[str]:
    """Names (inside the encoder) of the dense layers that receive an adapter, two per block."""
    pattern = re.compile(backbone.spec.adapter_pattern)
    return [n for n, _ in backbone.encoder.named_modules() if pattern.search("." + n)]
