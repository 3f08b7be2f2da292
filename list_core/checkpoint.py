"""Per-round checkpoints of a run: trainable weights only (safetensors) plus JSON, written atomically."""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .events import Cancelled, scoped


class CheckpointMismatch(ValueError):
    """A checkpoint folder written by a run with other inputs or settings: it cannot be resumed from."""


def fingerprint(*parts: Any) -> str:
    """A short hash of JSON-serialisable run inputs (config, data), to refuse resuming a different run."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _atomic_write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


_owner: contextvars.ContextVar[Callable[[], bool] | None] = contextvars.ContextVar("checkpoint_owner", default=None)


def fenced(still_owner: Callable[[], bool]) -> contextlib.AbstractContextManager:
    """Within the block a checkpoint is moved into place only while `still_owner()` holds: a worker that lost its
    job (frozen, then thawed after another took over) writes nothing the new owner could read."""
    return scoped(_owner, still_owner)


def _check_owner() -> None:
    still_owner = _owner.get()
    if still_owner is not None and not still_owner():
        raise Cancelled("this process no longer owns the run: its checkpoint is left to the new owner")


class RunCheckpoint:
    """`<dir>/progress.json` names the last completed round; `<dir>/round-RRR/` holds its weights and record."""

    def __init__(self, directory: str | Path, fp: str) -> None:
        self.dir = Path(directory)
        self.fp = fp
        self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def _progress(self) -> Path:
        return self.dir / "progress.json"

    def load_progress(self) -> dict[str, Any] | None:
        """The last completed round's progress record, or None for a fresh run."""
        if not self._progress.exists():
            return None
        progress = json.loads(self._progress.read_text())
        if progress.get("fingerprint") != self.fp:
            raise CheckpointMismatch(
                f"checkpoint in {self.dir} belongs to a different run (fingerprint {progress.get('fingerprint')} "
                f"!= {self.fp}); use a new checkpoint folder"
            )
        return progress

    def save_round(
        self,
        round_: int,
        state: dict[str, torch.Tensor],
        record: dict[str, Any],
        extra: dict,
        tensors: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """Write round `round_` (0 = teacher) completely, then point progress.json at it. `tensors`: other
        tensors the run needs to resume (kept beside the weights)."""
        final = self.dir / f"round-{round_:03d}"
        tmp = self.dir / f".round-{round_:03d}.{uuid.uuid4().hex[:8]}.tmp"  # two writers never share a folder
        tmp.mkdir()
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp / "trainable.safetensors"))
        (tmp / "round.json").write_text(json.dumps(record))
        if tensors:
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / "extra.safetensors"))
        try:
            _check_owner()
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        _check_owner()
        _atomic_write_json(self._progress, {"fingerprint": self.fp, "completed": round_, **extra})

    @classmethod
    def read(cls, directory: str | Path) -> RunCheckpoint:
        """A finished run's checkpoint folder, opened to read its rounds (no fingerprint check, nothing created)."""
        if not Path(directory).is_dir():
            raise FileNotFoundError(f"checkpoint folder {directory} does not exist")
        ck = cls.__new__(cls)
        ck.dir, ck.fp = Path(directory), ""
        return ck

    def completed_rounds(self) -> list[int]:
        """The rounds saved completely (0 = the teacher), in order."""
        return sorted(int(p.name.split("-")[1]) for p in self.dir.glob("round-[0-9][0-9][0-9]"))

    def load_tensors(self, round_: int) -> dict[str, torch.Tensor]:
        """The extra tensors saved with a round (empty if none)."""
        path = self.dir / f"round-{round_:03d}" / "extra.safetensors"
        return load_file(str(path)) if path.exists() else {}

    def load_round(self, round_: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        folder = self.dir / f"round-{round_:03d}"
        return load_file(str(folder / "trainable.safetensors")), json.loads((folder / "round.json").read_text())
