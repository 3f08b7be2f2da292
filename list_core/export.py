"""Native adapter export: trainable weights only (safetensors), one JSON config and a model card, and
`load_classifier` to use them again on the same backbone."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .backbone import Backbone, load_backbone
from .config import AdapterConfig
from .model import ListModel
from .prompts import Prompt

FORMAT_VERSION = 1
WEIGHTS = "adapter.safetensors"
CONFIG = "list_config.json"


class ExportError(ValueError):
    """An export folder that cannot be loaded, with the reason."""


def export_config(
    model: ListModel, labels: Sequence[str], metrics: dict | None = None, summary: dict | None = None
) -> dict[str, Any]:
    bb = model.backbone
    return {
        "format": "list-adapter",
        "format_version": FORMAT_VERSION,
        "backbone": bb.name,
        "backbone_family": bb.family,
        "backbone_hash": _backbone_hash(bb),
        **model.prompt.to_json(),
        "labels": list(labels),
        "head": model.head_kind,
        "head_reason": model.head_reason,
        "pooling": getattr(model.head, "pooling", None),
        "adapter": None if model.adapter_config is None else vars(model.adapter_config).copy(),
        "max_length": model.max_length,
        "parameters": model.parameter_report(),
        "training": summary or {},
        "metrics": metrics or {},
    }


def _backbone_hash(bb: Backbone) -> str:
    if not getattr(bb, "_hash", None):
        bb._hash = bb.weights_hash()  # type: ignore[attr-defined]
    return bb._hash  # type: ignore[attr-defined]


def save_native(
    model: ListModel,
    folder: str | Path,
    labels: Sequence[str],
    metrics: dict | None = None,
    summary: dict | None = None,
) -> Path:
    """Write `adapter.safetensors`, `list_config.json` and `README.md` to `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = export_config(model, labels, metrics, summary)
    state = {k: v.detach().cpu().contiguous() for k, v in model.trainable_state().items()}
    save_file(state, str(folder / WEIGHTS), metadata={"format": "list-adapter"})
    (folder / CONFIG).write_text(json.dumps(cfg, indent=1))
    (folder / "README.md").write_text(model_card(cfg, sum(v.numel() for v in state.values())))
    return folder


def model_card(cfg: dict[str, Any], n_params: int) -> str:
    words = ", ".join(f"`{lab}` → `{w if isinstance(w, str) else ' / '.join(w)}`"
                      for lab, w in zip(cfg["labels"], cfg["label_words"]))  # fmt: skip
    metrics = "\n".join(f"- {k}: {v:.4f}" if isinstance(v, float) else f"- {k}: {v}" for k, v in cfg["metrics"].items()
                        if isinstance(v, int | float | str))  # fmt: skip
    return f"""# LiST adapter

A few-shot text classifier trained with LiST (Lite Prompted Self-Training, arXiv 2110.06274) in LiST Studio.
Only the adapters and the head are stored here ({n_params:,} parameters); the backbone is loaded separately.

- Backbone: `{cfg["backbone"]}` ({cfg["backbone_family"]}), weights sha256 `{cfg["backbone_hash"][:16]}…`
- Template: `{cfg["template"]}`
- Labels and label words: {words}
- Head: {cfg["head"]} ({cfg["head_reason"]})
- Adapter: {cfg["adapter"]}

## Metrics
{metrics or "- (none recorded)"}

## Use
```python
from list_core.export import load_classifier
clf = load_classifier("this-folder")            # or load_classifier("this-folder", backbone="/path/to/backbone")
clf.predict_proba(["some text"])                 # (N, C) tensor, columns in label order
```
"""


@dataclass
class Classifier:
    """A loaded adapter on its backbone."""

    model: ListModel
    labels: list[str]
    config: dict[str, Any]

    def predict_proba(self, texts: Sequence[str | dict[str, str]], batch_size: int = 64) -> torch.Tensor:
        rows = [t if isinstance(t, dict) else {"text": t} for t in texts]
        return self.model.predict_proba(rows, batch_size)

    def predict(self, texts: Sequence[str | dict[str, str]], batch_size: int = 64) -> list[str]:
        return [self.labels[i] for i in self.predict_proba(texts, batch_size).argmax(-1).tolist()]


def read_config(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    if not (folder / CONFIG).exists() or not (folder / WEIGHTS).exists():
        raise ExportError(f"{folder} is not a LiST adapter folder (needs {CONFIG} and {WEIGHTS})")
    cfg = json.loads((folder / CONFIG).read_text())
    if cfg.get("format") != "list-adapter" or cfg.get("format_version", 0) > FORMAT_VERSION:
        raise ExportError(f"{folder}/{CONFIG}: unsupported format {cfg.get('format')!r} v{cfg.get('format_version')}")
    return cfg


def read_weights(folder: str | Path) -> dict[str, torch.Tensor]:
    """The adapter weights, through safetensors only (never pickle); a damaged file gives a clear error."""
    path = Path(folder) / WEIGHTS
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ExportError(f"{path} is damaged or truncated and cannot be read: {e}") from None


def load_classifier(
    folder: str | Path,
    backbone: str | Backbone | None = None,
    allow_backbone_mismatch: bool = False,
    device: str | None = None,
) -> Classifier:
    """Load an exported adapter onto its backbone (the recorded one, or `backbone`), checking the weights hash."""
    cfg = read_config(folder)
    state = read_weights(folder)
    bb = backbone if isinstance(backbone, Backbone) else load_backbone(backbone or cfg["backbone"], device=device)
    return build_classifier(cfg, state, bb, folder, allow_backbone_mismatch)


def build_classifier(
    cfg: dict[str, Any],
    state: dict[str, torch.Tensor],
    bb: Backbone,
    folder: str | Path,
    allow_backbone_mismatch: bool = False,
    adapter_name: str | None = None,
) -> Classifier:
    """An exported adapter's config and weights as a classifier on `bb` (refusing another backbone)."""
    if _backbone_hash(bb) != cfg["backbone_hash"] and not allow_backbone_mismatch:
        raise ExportError(
            f"backbone {bb.name!r} is not the one this adapter was trained on (weights sha256 {_backbone_hash(bb)[:12]}… "
            f"!= {cfg['backbone_hash'][:12]}…); pass allow_backbone_mismatch=True to load it anyway"
        )
    adapter = AdapterConfig(**cfg["adapter"]) if cfg["adapter"] else None
    model = ListModel(
        bb,
        Prompt.from_json(cfg),
        cfg["head"],
        adapter,
        cfg["pooling"] or "mean",
        cfg["max_length"],
        adapter_name=adapter_name,
    )
    try:
        model.load_trainable_state(state)
    except (KeyError, ValueError) as e:
        raise ExportError(f"{folder}: weights do not fit this backbone: {e}") from None
    return Classifier(model.eval(), list(cfg["labels"]), cfg)
