"""Frozen features kept on disk, so that a restarted worker scores a prompt as fast as a warm one.

`feature_cache.FeatureCache` keeps the features of the texts a prompt scoring reads in memory; they are gone when
the worker stops, and the first scoring after a restart read them all again (bbc: about a minute on 2 CPU cores).
A `FeatureStore` is one append-only file of records (a 16-byte key, then D float32 values) for one backbone and
one project: appends never move a record, so a reader's index stays valid until a compaction replaces the file
(a new inode, which the reader notices). Several processes may share a file: appends and compactions take a lock
file. A cache must never fail a job: an unreadable or unwritable store logs a warning and reads as empty.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

try:
    import fcntl
except ImportError:  # Windows: one process per store is the expected case there
    fcntl = None

log = logging.getLogger(__name__)

DEFAULT_MB = 256  # per project and backbone: about 170,000 texts of the default backbone


def env_megabytes(name: str, default: float, zero: str) -> int:
    """Bytes from the environment variable `name`, in megabytes (`default` when unset); errors name it and say what
    0 means (`zero`)."""
    raw = os.environ.get(name, "").strip() or str(default)
    try:
        mb = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: must be a number of megabytes ({zero})") from None
    if mb < 0:
        raise ValueError(f"{name}={raw!r}: must be >= 0")
    return int(mb * 2**20)


def store_budget_bytes() -> int:
    """A store's budget: $LIST_FEATURE_STORE_MB megabytes (0 keeps nothing on disk), else `DEFAULT_MB`."""
    return env_megabytes("LIST_FEATURE_STORE_MB", DEFAULT_MB, "0 keeps no features on disk")


class FeatureStore:
    """(D,) float32 feature rows by 16-byte key in the file `path`; past `max_bytes` the oldest records go (the
    newest half of the budget is kept). Thread-safe within a process, lock-file-safe across processes."""

    def __init__(self, path: str | os.PathLike, dim: int, max_bytes: int | None = None) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.path = Path(path)
        self.dim = dim
        self.max_bytes = store_budget_bytes() if max_bytes is None else max_bytes
        self.record = np.dtype([("key", "V16"), ("x", "<f4", (dim,))])
        self._index: dict[bytes, int] = {}  # key -> record number in the file of inode `_inode`
        self._inode: int | None = None
        self._indexed = 0  # bytes of whole records indexed
        self._lock = threading.Lock()
        self._warned = False

    def __len__(self) -> int:
        with self._lock:
            self._safely(self._refresh)
            return len(self._index)

    def get(self, keys: Iterable[bytes]) -> dict[bytes, torch.Tensor]:
        """The stored rows of those of `keys` the file holds."""
        with self._lock:
            return self._safely(lambda: self._read(list(keys))) or {}

    def put(self, rows: dict[bytes, torch.Tensor]) -> None:
        """Append the rows whose keys the file does not hold yet; compact the file when over budget."""
        if not rows or self.max_bytes <= 0:
            return
        with self._lock:
            self._safely(lambda: self._append(rows))

    # ----------------------------------------------------------------------------------------------------------

    def _read(self, keys: list[bytes]) -> dict[bytes, torch.Tensor]:
        if not self.path.exists():
            return {}
        with open(self.path, "rb") as f:  # one open file: a compaction elsewhere cannot swap it under the read
            self._refresh(f)
            found = [(k, self._index[k]) for k in dict.fromkeys(keys) if k in self._index]
            if not found:
                return {}
            records = np.memmap(f, dtype=self.record, mode="r", shape=(self._indexed // self.record.itemsize,))
            picked = records[np.array([i for _, i in found])]  # (M,) records, copied out of the map
            del records
        if any(picked["key"][j].tobytes() != k for j, (k, _) in enumerate(found)):
            self._forget()  # not the file the index was built on: read it afresh next time
            return {}
        x = torch.from_numpy(np.ascontiguousarray(picked["x"]))  # (M, D)
        return {k: x[j].clone() for j, (k, _) in enumerate(found)}  # each row owns its bytes (a cache evicts rows)

    def _append(self, rows: dict[bytes, torch.Tensor]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._file_lock(), open(self.path, "ab") as f:
            size = os.fstat(f.fileno()).st_size
            if size % self.record.itemsize:  # a record cut short (a process killed mid-write): drop it
                f.truncate(size - size % self.record.itemsize)
            with open(self.path, "rb") as g:
                self._refresh(g)
            new = [k for k in rows if k not in self._index]
            if not new:
                return
            buf = np.empty(len(new), dtype=self.record)  # (M,)
            buf["key"] = np.frombuffer(b"".join(new), dtype="V16")
            buf["x"] = torch.stack([rows[k].float() for k in new]).numpy()  # (M, D)
            f.write(buf.tobytes())
            f.flush()
            total = os.fstat(f.fileno()).st_size
        if total > self.max_bytes:
            self._compact()

    def _compact(self) -> None:
        """Keep the newest records that fit in half the budget (the order of the file is the order of arrival)."""
        keep = max(0, self.max_bytes // 2 // self.record.itemsize)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with self._file_lock():
            records = np.fromfile(self.path, dtype=self.record)
            records[len(records) - min(keep, len(records)) :].tofile(tmp)
            os.replace(tmp, self.path)
        self._forget()

    def _refresh(self, f=None) -> None:
        """Index the records appended since the last look (by this or another process), all of them again when the
        file was replaced."""
        if f is None:
            if not self.path.exists():
                return self._forget()
            with open(self.path, "rb") as g:
                return self._refresh(g)
        st = os.fstat(f.fileno())
        if st.st_ino != self._inode or st.st_size < self._indexed:
            self._forget()
            self._inode = st.st_ino
        size = st.st_size // self.record.itemsize * self.record.itemsize
        if size > self._indexed:
            first = self._indexed // self.record.itemsize
            tail = np.memmap(f, dtype=self.record, mode="r", offset=self._indexed,
                             shape=((size - self._indexed) // self.record.itemsize,))  # fmt: skip
            for j, key in enumerate(tail["key"]):
                self._index[key.tobytes()] = first + j
            del tail
            self._indexed = size

    def _forget(self) -> None:
        self._index, self._inode, self._indexed = {}, None, 0

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _safely(self, fn):
        try:
            return fn()
        except (OSError, ValueError) as e:  # a full disk, a read-only folder, a damaged file: work without it
            if not self._warned:
                log.warning("feature store %s not used: %s", self.path, e)
                self._warned = True
            self._forget()
            return None
