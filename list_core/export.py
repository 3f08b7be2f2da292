"""Native adapter export: trainable weights only (safetensors), one JSON config and a model card, and
`load_classifier` to use them again on the same backbone."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import lexical
from .backbone import Backbone, load_backbone
from .cards import native_card
from .config import HEADS, AdapterConfig
from .heads import VIEW_HEADS
from .locate import resolve_backbone_path
from .model import ListModel
from .prompts import Prompt, PromptError

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
        "backbone_hash": backbone_hash(bb),
        **model.prompt.to_json(),
        "labels": list(labels),
        "head": model.head_kind,
        "head_reason": model.head_reason,
        "pooling": getattr(model.head, "pooling", None),
        "feature_layers": model.feature_layers,
        "adapter": None if model.adapter_config is None else vars(model.adapter_config).copy(),
        "max_length": model.max_length,
        "temperature": model.temperature,  # calibration: divide the logits by it (1: not calibrated)
        "lexical": lexical.describe(model.lexical),  # a lexical view mixed into the probabilities (in the weights)
        "parameters": model.parameter_report(),
        "training": summary or {},
        "metrics": metrics or {},
    }


def backbone_hash(bb: Backbone) -> str:
    """The backbone's weights hash (computed once per loaded backbone): an export names the weights it needs."""
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
    # each file carries the other's sha256: a change to either after export is caught before loading
    save_file(state, str(folder / WEIGHTS), metadata={"format": "list-adapter", "config_sha256": _config_digest(cfg)})
    cfg["weights_sha256"] = _file_sha256(folder / WEIGHTS)
    (folder / CONFIG).write_text(json.dumps(cfg, indent=1))
    n_params = sum(v.numel() for k, v in state.items() if not k.startswith(lexical.PREFIX))
    (folder / "README.md").write_text(native_card(cfg, n_params))
    return folder


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


def _config_digest(cfg: dict[str, Any]) -> str:
    body = {k: v for k, v in cfg.items() if k != "weights_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_config(folder: str | Path) -> dict[str, Any]:
    """An adapter folder's config, checked field by field: anything malformed is one `ExportError`."""
    folder = Path(folder)
    if (folder / "list_peft.json").exists():  # a PEFT export holds LoRA weights, which do not load back as adapters
        raise ExportError(f"{folder} is a PEFT export: load it with PEFT (its README.md shows how), or export the run "
                          "as native or folded to use it here")  # fmt: skip
    from .pair_similarity import CONFIG as PAIR_CONFIG

    if (folder / PAIR_CONFIG).exists():
        raise ExportError(f"{folder} is a pair-similarity rule, not an adapter: load it with load_classifier or the "
                          "predict CLI")  # fmt: skip
    if not (folder / CONFIG).exists() or not (folder / WEIGHTS).exists():
        raise ExportError(f"{folder} is not a LiST adapter folder (needs {CONFIG} and {WEIGHTS})")
    try:
        cfg = json.loads((folder / CONFIG).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ExportError(f"{folder}/{CONFIG} is not valid JSON: {e}") from None
    if not isinstance(cfg, dict) or cfg.get("format") != "list-adapter" or not isinstance(cfg.get("format_version"), int) \
            or cfg["format_version"] > FORMAT_VERSION:  # fmt: skip
        fmt = cfg.get("format") if isinstance(cfg, dict) else type(cfg).__name__
        version = cfg.get("format_version") if isinstance(cfg, dict) else None
        raise ExportError(f"{folder}/{CONFIG}: unsupported format {fmt!r} v{version}")
    check_config(cfg, f"{folder}/{CONFIG}")
    return cfg


def check_config(cfg: dict[str, Any], where: str) -> None:
    """Every field an adapter (or folded export) config needs, with its type and range; else `ExportError`."""

    def bad(what: str) -> ExportError:
        return ExportError(f"{where}: {what}")

    for key in ("backbone", "backbone_hash", "head"):
        if not isinstance(cfg.get(key), str) or not cfg[key]:
            raise bad(f"{key!r} must be a non-empty string, not {cfg.get(key)!r}")
    labels = cfg.get("labels")
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) and x for x in labels):
        raise bad(f"'labels' must be a list of at least two names, not {labels!r}")
    if len(set(labels)) != len(labels):
        raise bad(f"'labels' has duplicates: {labels}")
    if cfg["head"] not in HEADS or cfg["head"] == "auto":
        raise bad(f"'head' {cfg['head']!r} is not one of {[h for h in HEADS if h != 'auto']}")
    if cfg.get("pooling") not in (None, "mean", "cls"):
        raise bad(f"'pooling' {cfg.get('pooling')!r} is not 'mean' or 'cls'")
    fl = cfg.get("feature_layers", 1)
    if not isinstance(fl, int) or isinstance(fl, bool) or not 1 <= fl <= 64:
        raise bad(f"'feature_layers' must be a whole number of layers (1..64), not {fl!r}")
    if fl > 1 and cfg["head"] not in VIEW_HEADS:
        raise bad(f"'feature_layers' {fl}: only the {' and '.join(VIEW_HEADS)} heads read several layers")
    ml = cfg.get("max_length")
    if not isinstance(ml, int) or isinstance(ml, bool) or not 8 <= ml <= 4096:
        raise bad(f"'max_length' must be a whole number of tokens (8..4096), not {ml!r}")
    if cfg.get("adapter") is not None:
        try:
            AdapterConfig(**cfg["adapter"])
        except (TypeError, ValueError) as e:
            raise bad(f"'adapter' {cfg['adapter']!r}: {e}") from None
    try:
        prompt = Prompt.from_json(cfg)
    except (PromptError, KeyError, TypeError, ValueError) as e:
        raise bad(f"the prompt cannot be read: {e}") from None
    if len(prompt.label_words) != len(labels):
        raise bad(f"{len(labels)} labels but {len(prompt.label_words)} label words")
    t = cfg.get("temperature", 1.0)
    if not isinstance(t, int | float) or isinstance(t, bool) or not 0.01 <= t <= 100:
        raise bad(f"'temperature' must be a number in 0.01..100, not {t!r}")


def read_weights(folder: str | Path, cfg: dict[str, Any] | None = None) -> dict[str, torch.Tensor]:
    """The adapter weights, through safetensors only (never pickle); a damaged file gives a clear error. With the
    folder's `cfg`, the cross-recorded hashes are checked too: a weights or config file changed after export (or
    a config that does not belong to these weights) is refused."""
    path = Path(folder) / WEIGHTS
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ExportError(f"{path} is damaged or truncated and cannot be read: {e}") from None
    if cfg is not None:
        if "weights_sha256" in cfg and _file_sha256(path) != cfg["weights_sha256"]:
            raise ExportError(f"{path} was changed after export (its sha256 is not the one in {CONFIG})")
        if "config_sha256" in metadata and metadata["config_sha256"] != _config_digest(cfg):
            raise ExportError(f"{Path(folder) / CONFIG} was changed after export, or belongs to other weights "
                              f"(its sha256 is not the one recorded in {WEIGHTS})")  # fmt: skip
    return state


def allowed_backbone(name: str) -> str:
    """The backbone an adapter folder names, if it may be loaded without the caller naming it: the embedded
    default, an existing local model folder, or a name listed in `LIST_BACKBONES` (comma-separated). A hub id or
    a missing folder written into a tampered config is refused before anything is loaded."""
    allowed = {x.strip() for x in os.environ.get("LIST_BACKBONES", "").split(",") if x.strip()}
    if name in ("default", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2") or name in allowed:
        return name
    if name == os.environ.get("LIST_BACKBONE"):
        return name
    path = Path(resolve_backbone_path(name))
    if path.is_dir() and (path / "config.json").exists():
        return name
    if path.is_absolute() or name.startswith((".", "~")):
        raise ExportError(f"the adapter's backbone {name!r} is not a folder with a model; pass the backbone "
                          "(backbone=..., --backbone)")  # fmt: skip
    raise ExportError(f"the adapter names the backbone {name!r}, which is not a local model folder: pass it "
                      "explicitly (backbone=..., --backbone) or list it in LIST_BACKBONES to allow it")  # fmt: skip


def load_classifier(
    folder: str | Path,
    backbone: str | Backbone | None = None,
    allow_backbone_mismatch: bool = False,
    device: str | None = None,
) -> Classifier:
    """Load an exported adapter onto its backbone (the recorded one, or `backbone`), checking the files' hashes,
    every config field and the backbone's weights hash before any prediction. A pair-similarity folder
    (`list_core.pair_similarity`) loads as its rule."""
    from .pair_similarity import CONFIG as PAIR_CONFIG
    from .pair_similarity import load_pair_similarity

    if (Path(folder) / PAIR_CONFIG).exists():
        return load_pair_similarity(folder, backbone, allow_backbone_mismatch)
    cfg = read_config(folder)
    state = read_weights(folder, cfg)
    if isinstance(backbone, Backbone):
        bb = backbone
    else:
        bb = load_backbone(backbone or allowed_backbone(cfg["backbone"]), device=device)
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
    if backbone_hash(bb) != cfg["backbone_hash"] and not allow_backbone_mismatch:
        raise ExportError(
            f"backbone {bb.name!r} is not the one this adapter was trained on (weights sha256 {backbone_hash(bb)[:12]}… "
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
        feature_layers=cfg.get("feature_layers", 1),  # exports made before views read the last layer
    )
    try:
        model.load_trainable_state(state)
    except (KeyError, ValueError, RuntimeError) as e:
        raise ExportError(f"{folder}: weights do not fit this backbone: {e}") from None
    model.temperature = float(cfg.get("temperature", 1.0))
    return Classifier(model.eval(), list(cfg["labels"]), cfg)
