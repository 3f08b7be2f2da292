"""A bounded cache of a backbone's frozen features, for the prompt tools.

The zero-shot tools on a sentence encoder (the Prompt workbench's board, its label-word suggestions, the Label
page's suggestions from the prompt) read only the frozen features of texts: the prompt lives in the similarity
head's prototypes. A user edits a prompt and scores it again and again on the same gold, evaluation and pool
texts, so the features of those texts are kept, keyed by a digest of the texts (no tokenizing on a hit) or of
their token ids, in the least-recently-used order, up to a budget in bytes. Training never reads this cache: a
run's features are computed afresh, so its result does not depend on what was scored before it (features of the
same text can differ in the last bits with its batch).

Inside `saved_in(folder)` (the worker wraps each job of a project in it) the features also go to a
`feature_store.FeatureStore` in that folder, one file per backbone (`fingerprint`), so a restarted worker reads them
back instead of encoding the texts again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .data import Encoded, Row
from .feature_store import FeatureStore, env_megabytes, store_budget_bytes

if TYPE_CHECKING:
    from .backbone import Backbone
    from .model import ListModel

log = logging.getLogger(__name__)

DEFAULT_MB = 128  # about 87,000 texts of a 384-dimensional encoder (the default backbone), 32,000 of roberta-large


def budget_bytes() -> int:
    """The cache's budget: $LIST_FEATURE_CACHE_MB megabytes (0 turns it off), else `DEFAULT_MB`."""
    return env_megabytes("LIST_FEATURE_CACHE_MB", DEFAULT_MB, "0 turns the cache off")


OPEN_STORES = 8  # stores (projects x backbones) whose index a cache keeps in memory
# stores a project's folder keeps: its backbone's and the one used before it (switching back is common); an older
# backbone's store (up to LIST_FEATURE_STORE_MB each) goes when a store of the folder is opened
KEPT_STORES = 2
STORE_NAME = re.compile(r"[0-9a-f]{32}-\d+\.f32")
_SAVED_IN: ContextVar[Path | None] = ContextVar("list_feature_store_folder", default=None)


@contextlib.contextmanager
def saved_in(folder: str | os.PathLike | None) -> Iterator[None]:
    """Within the block (in this thread), features read or computed by any `FeatureCache` are also kept in, and
    read back from, a `FeatureStore` file in `folder` (None: memory only)."""
    token = _SAVED_IN.set(Path(folder) if folder is not None else None)
    try:
        yield
    finally:
        _SAVED_IN.reset(token)


def fingerprint(backbone: Backbone) -> str:
    """What a backbone's frozen features depend on, read cheaply: its family and device kind, its tokenizer (class,
    vocabulary, lower-casing) and 64 values spread through each encoder weight (with its name and shape)."""
    tok = backbone.tokenizer
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps([backbone.family, backbone.device.type, type(tok).__name__,
                         getattr(tok, "do_lower_case", None), sorted(tok.get_vocab().items())]).encode())  # fmt: skip
    for name, t in sorted(backbone.encoder.state_dict().items()):
        flat = t.detach().reshape(-1)
        h.update(f"{name.replace('.base.', '.')}{tuple(t.shape)}".encode())  # a layer wrapped for adapters: as plain
        if flat.numel():
            picked = flat[torch.linspace(0, flat.numel() - 1, 64, device=flat.device).long()]  # (64,)
            h.update(picked.to("cpu", torch.float32).numpy().tobytes())
    return h.hexdigest()


def _digest(data: bytes) -> bytes:
    """16 bytes per entry, whatever the text's length."""
    return hashlib.blake2b(data, digest_size=16).digest()


class FeatureCache:
    """Frozen features by text or by token ids, least recently used first out once `max_bytes` is exceeded.
    Thread-safe: the worker's two lanes may score prompts and suggestions on one backbone at once."""

    def __init__(self, max_bytes: int | None = None) -> None:
        max_bytes = budget_bytes() if max_bytes is None else max_bytes
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self._rows: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._stores: OrderedDict[Path, FeatureStore] = OrderedDict()
        self._fingerprint: str | None = None
        self.hits = 0  # texts read from memory
        self.stored_hits = 0  # texts read from a store on disk
        self.misses = 0  # texts encoded

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def nbytes(self) -> int:
        """Bytes held by the cached feature rows."""
        return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self._bytes = 0

    def features(self, model: ListModel, enc: Encoded, batch_size: int = 64) -> torch.Tensor:
        """(N, D) `model.frozen_features(enc)`, encoding only the texts not cached (in one pass) and caching them."""
        keys = [_digest(b"ids" + np.asarray(ids, dtype=np.int64).tobytes()) for ids in enc.ids]
        return self._lookup(model, keys, lambda index: model.frozen_features(enc.subset(index), batch_size))

    def row_features(self, model: ListModel, rows: Sequence[Row], batch_size: int = 64) -> torch.Tensor:
        """(N, D) frozen features of the texts alone of `rows` (their prompt's text slots; a pair as a tokenizer
        pair): what a similarity head reads and what the diverse labeling order clusters, whatever `model`'s head.
        Only the rows not cached are tokenized and encoded (tokenizing long texts costs more than the lookup)."""
        slots = model.prompt.text_slots
        keys = [_digest(json.dumps([model.max_length, [str(r.get(s, "")) for s in slots]]).encode()) for r in rows]

        def compute(index: list[int]) -> torch.Tensor:
            plain = Encoded.of(model.prompt, model.backbone.tokenizer, [rows[i] for i in index], model.max_length,
                               plain=True)  # fmt: skip
            return model.frozen_features(plain, batch_size)

        return self._lookup(model, keys, compute)

    def _lookup(
        self, model: ListModel, keys: list[bytes], compute: Callable[[list[int]], torch.Tensor]
    ) -> torch.Tensor:
        """The rows of `keys`, calling `compute(positions)` once for the keys not cached (each key once)."""
        if model.feature_layers != 1:  # keys and stores name texts, not views: a wider row would be misread
            raise ValueError(f"the feature cache holds last-layer features; a model reading {model.feature_layers} "
                             "layers computes its own (model.frozen_features)")  # fmt: skip
        with self._lock:
            known = {k: self._rows[k] for k in set(keys) if k in self._rows}
            for k in known:
                self._rows.move_to_end(k)
        missing = [k for k in dict.fromkeys(keys) if k not in known]
        store = self._store(model) if missing else None
        stored = store.get(missing) if store is not None else {}
        todo: dict[bytes, int] = {}  # key -> its first position: a text that occurs twice is computed once
        for i, k in enumerate(keys):
            if k not in known and k not in stored:
                todo.setdefault(k, i)
        new: dict[bytes, torch.Tensor] = {}
        if todo:
            fresh = compute(list(todo.values()))  # (M, D)
            new = {k: row.clone() for k, row in zip(todo, fresh)}  # each entry owns its bytes, not the batch's
            if store is not None:
                store.put(new)
        rows = known | stored | new
        with self._lock:
            self.hits += sum(k in known for k in keys)
            self.stored_hits += len(stored)
            self.misses += len(new)
            for k, row in (stored | new).items():
                if k not in self._rows:
                    self._rows[k] = row
                    self._bytes += row.numel() * row.element_size()
            while self._bytes > self.max_bytes and self._rows:
                _, old = self._rows.popitem(last=False)
                self._bytes -= old.numel() * old.element_size()
        if not keys:
            return torch.empty((0, model.backbone.hidden_size), dtype=torch.float32)
        return torch.stack([rows[k] for k in keys])

    def _store(self, model: ListModel) -> FeatureStore | None:
        """The store of the folder `saved_in` names for this thread, for `model`'s backbone; None outside it."""
        folder = _SAVED_IN.get()
        if folder is None or store_budget_bytes() <= 0:
            return None
        with self._lock:
            if self._fingerprint is None:  # one cache per backbone: its fingerprint is computed once
                self._fingerprint = fingerprint(model.backbone)
            path = folder / f"{self._fingerprint}-{model.backbone.hidden_size}.f32"
            if path not in self._stores:
                _drop_old_stores(folder, path)
                self._stores[path] = FeatureStore(path, model.backbone.hidden_size)
                while len(self._stores) > OPEN_STORES:
                    self._stores.popitem(last=False)
            self._stores.move_to_end(path)
            return self._stores[path]


def _drop_old_stores(folder: Path, opened: Path) -> None:
    """Delete the stores of `folder` (and their lock files) past the `KEPT_STORES` latest written, `opened` counted
    first. A cache never fails a job: what cannot be read or deleted is left, with a warning."""
    try:
        others = [p for p in folder.glob("*.f32") if STORE_NAME.fullmatch(p.name) and p != opened]
        others.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        for old in others[KEPT_STORES - 1 :]:
            old.unlink(missing_ok=True)
            old.with_name(old.name + ".lock").unlink(missing_ok=True)
    except OSError as e:
        log.warning("feature stores in %s: could not drop the old ones (%s)", folder, e)
