"""Multi-task serving: one backbone in memory, many LiST adapters, the adapter chosen per call.

Each task is a `ListModel` whose adapters are registered on the shared backbone under the task's name
(megabytes each); a call runs the backbone with that task's adapters active and that task's head, so tasks
never see each other's weights, whatever order they are called in.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from .backbone import Backbone, load_backbone
from .export import Classifier, ExportError, build_classifier, read_config, read_weights
from .pair_similarity import CONFIG as PAIR_CONFIG
from .pair_similarity import load_pair_similarity


class AdapterServer:
    """Serve several exported adapters on one shared backbone."""

    def __init__(self, backbone: str | Backbone | None = None, device: str | None = None) -> None:
        self.backbone = backbone if isinstance(backbone, Backbone) else load_backbone(backbone, device=device)
        self.tasks: dict[str, Classifier] = {}

    def add(self, name: str, folder: str | Path, allow_backbone_mismatch: bool = False) -> None:
        """Load an exported adapter folder as task `name` (its adapters are registered under `name`), or a
        pair-similarity rule's folder."""
        if name in self.tasks:
            raise ValueError(f"a task named {name!r} is already loaded; remove it first")
        try:
            if (Path(folder) / PAIR_CONFIG).exists():  # a pair-similarity rule: the shared backbone and a few numbers
                self.tasks[name] = load_pair_similarity(folder, self.backbone, allow_backbone_mismatch)
                return
            cfg = read_config(folder)
            self.tasks[name] = build_classifier(
                cfg, read_weights(folder, cfg), self.backbone, folder, allow_backbone_mismatch, name
            )
        except ExportError as e:
            raise ExportError(f"adapter {name!r}: {e}") from None

    def remove(self, name: str) -> None:
        task = self.tasks.pop(name)
        if getattr(task.model, "adapter_name", None) is not None:
            self.backbone.remove_adapter(task.model.adapter_name)

    def predict_proba(self, name: str, texts: Sequence[str | dict[str, str]], batch_size: int = 64) -> torch.Tensor:
        """(N, C) probabilities from task `name`."""
        if name not in self.tasks:
            raise KeyError(f"no task {name!r}; loaded: {sorted(self.tasks)}")
        return self.tasks[name].predict_proba(texts, batch_size)

    def labels(self, name: str) -> list[str]:
        return self.tasks[name].labels
