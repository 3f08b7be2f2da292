"""LiST (Lite Prompted Self-Training, arXiv 2110.06274) as a plain Python library.

Names are imported lazily, so `list_core.config` can be used without importing torch (the UI does).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AdaptedLinear": "adapter",
    "Adapter": "adapter",
    "fold_adapters": "model",
    "DEFAULT_BACKBONE": "locate",
    "resolve_backbone_path": "locate",
    "Backbone": "backbone",
    "load_backbone": "backbone",
    "Method": "methods",
    "register_method": "methods",
    "run_method": "baselines",
    "AdapterConfig": "config",
    "TrainConfig": "config",
    "preset": "config",
    "DataError": "data",
    "Cancelled": "events",
    "Event": "events",
    "load_classifier": "export",
    "save_native": "export",
    "ListModel": "model",
    "Prompt": "prompts",
    "PromptError": "prompts",
    "RunResult": "self_training",
    "TaskData": "self_training",
    "run_list": "self_training",
}
__all__ = sorted(_EXPORTS)


_ALIASES = {"register_method": "register"}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'list_core' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), _ALIASES.get(name, name))
