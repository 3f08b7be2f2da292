"""Multi-task serving: one backbone in memory, many LiST adapters, the adapter chosen per call.

Each task keeps only its trainable weights (adapters + head, megabytes); a call copies the task's adapter
weights into the backbone's adapter slots (cheap next to a forward pass) and uses the task's head.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .backbone import Backbone, load_backbone
from .config import AdapterConfig
from .export import ExportError, _backbone_hash, read_config, read_weights
from .model import ListModel, attach_adapters
from .prompts import Prompt


@dataclass
class _Task:
    model: ListModel  # shares the backbone; its head and prompt are the task's own
    adapters: dict[str, torch.Tensor]  # encoder adapter weights (host memory), by ListModel parameter name
    adapter_config: AdapterConfig
    labels: list[str]


class AdapterServer:
    """Serve several exported adapters on one shared backbone."""

    def __init__(self, backbone: str | Backbone | None = None, device: str | None = None) -> None:
        self.backbone = backbone if isinstance(backbone, Backbone) else load_backbone(backbone, device=device)
        self.tasks: dict[str, _Task] = {}
        self._active: str | None = None
        self._lock = threading.Lock()  # one forward at a time: the adapter slots are shared

    def add(self, name: str, folder: str | Path, allow_backbone_mismatch: bool = False) -> None:
        """Load an exported adapter folder as task `name`."""
        cfg = read_config(folder)
        if _backbone_hash(self.backbone) != cfg["backbone_hash"] and not allow_backbone_mismatch:
            raise ExportError(f"adapter {name!r} was trained on another backbone ({cfg['backbone']})")
        state = read_weights(folder)
        adapter = AdapterConfig(**cfg["adapter"])
        prompt = Prompt(cfg["template"], tuple(cfg["label_words"]))
        with self._lock:
            model = ListModel(self.backbone, prompt, cfg["head"], adapter, cfg["pooling"] or "mean", cfg["max_length"])
            model.load_trainable_state(state)
            model.eval()
            self._active = None  # building the model replaced the adapter slots
        # inactive adapters wait in host memory (pinned on CUDA) and are copied into the shared slots on use,
        # so the accelerator holds one set of adapter weights however many tasks are loaded
        pin = self.backbone.device.type == "cuda"
        adapters = {k: (v.pin_memory() if pin else v) for k, v in state.items() if not k.startswith("head.")}
        self.tasks[name] = _Task(model, adapters, adapter, list(cfg["labels"]))

    def remove(self, name: str) -> None:
        self.tasks.pop(name)
        if self._active == name:
            self._active = None

    def _activate(self, name: str) -> _Task:
        if name not in self.tasks:
            raise KeyError(f"no task {name!r}; loaded: {sorted(self.tasks)}")
        task = self.tasks[name]
        if self._active != name:
            current = self.tasks[self._active].adapter_config if self._active in self.tasks else None
            if current != task.adapter_config:
                attach_adapters(self.backbone, task.adapter_config)  # another bottleneck: new slots
            params = dict(task.model.named_parameters())
            with torch.no_grad():
                for k, v in task.adapters.items():
                    params[k].copy_(v, non_blocking=True)
            self._active = name
        return task

    def predict_proba(self, name: str, texts: Sequence[str | dict[str, str]], batch_size: int = 64) -> torch.Tensor:
        """(N, C) probabilities from task `name`."""
        rows = [t if isinstance(t, dict) else {"text": t} for t in texts]
        with self._lock:
            task = self._activate(name)
            return task.model.predict_proba(rows, batch_size)

    def labels(self, name: str) -> list[str]:
        return self.tasks[name].labels
