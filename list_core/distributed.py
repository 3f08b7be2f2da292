"""The heavy forward passes (a round's pseudo-labels, file prediction) on a Ray cluster.

A `Scorer` turns a model and encoded texts into logits or frozen features. `LocalScorer` runs them in this
process; `RayScorer` cuts the texts into shards in input order and sends each to a pool of Ray actors that
load the backbone once, rebuild the model from its exported config and weights (checked against the
backbone's weights hash, so every actor runs the same model) and return their shard's rows in order. A dead
actor is restarted by Ray and its shard retried; a cluster that cannot be reached raises `DistributedError`.

Ray is imported only when a `RayScorer` is built: the local path never imports it.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from .data import Encoded
from .events import Cancelled, raise_if_cancelled, scoped
from .model import ListModel

_init_lock = threading.Lock()  # the worker's lanes are threads of one process, and Ray's connection is per process
_connected: list[str] = []  # the address this process connected to (Ray keeps one connection per process)
_shared: dict[tuple[str, int], RayScorer] = {}
ACTOR_START_S = float(os.environ.get("LIST_RAY_ACTOR_START_S", "180"))


class DistributedError(RuntimeError):
    """The cluster could not run a step (unreachable, or a shard failed after its retries)."""


class Scorer(Protocol):
    def logits(self, model: ListModel, enc: Encoded, batch_size: int = 64) -> torch.Tensor: ...

    def features(self, model: ListModel, enc: Encoded, batch_size: int = 64) -> torch.Tensor: ...


class LocalScorer:
    """Forward passes in this process (the default)."""

    def logits(self, model: ListModel, enc: Encoded, batch_size: int = 64) -> torch.Tensor:
        return model.logits(enc, batch_size)  # (N, C)

    def features(self, model: ListModel, enc: Encoded, batch_size: int = 64) -> torch.Tensor:
        return model.frozen_features(enc, batch_size)  # (N, D)


@dataclass(frozen=True)
class RayConfig:
    """Where and how wide: `address` is "local" (a cluster started in this process), "auto" or "ray://host:port"."""

    address: str
    actors: int = 2
    cpus_per_actor: float = 1.0
    gpus_per_actor: float | None = None  # None: one GPU per actor when the cluster has enough, else none
    shard_size: int = 1024  # texts per task (rounded to whole batches): amortises a task's overhead, still balances
    retries: int = 2  # restarts of a dead actor, and retries of its shard

    def __post_init__(self) -> None:
        if not isinstance(self.address, str) or not self.address.strip():
            raise ValueError(f"ray address {self.address!r}: give 'local', 'auto' or ray://host:port")
        if not isinstance(self.actors, int) or self.actors < 1:
            raise ValueError(f"actors {self.actors!r} must be an integer >= 1")
        if not self.cpus_per_actor > 0:
            raise ValueError(f"cpus_per_actor {self.cpus_per_actor!r} must be > 0")
        if self.gpus_per_actor is not None and self.gpus_per_actor < 0:
            raise ValueError(f"gpus_per_actor {self.gpus_per_actor!r} must be >= 0")
        if not isinstance(self.shard_size, int) or self.shard_size < 1:
            raise ValueError(f"shard_size {self.shard_size!r} must be an integer >= 1")
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"retries {self.retries!r} must be an integer >= 0")

    @classmethod
    def from_env(cls, address: str | None = None) -> RayConfig | None:
        """`address` or $LIST_RAY_ADDRESS (None: no cluster), with $LIST_RAY_ACTORS actors."""
        address = (address or os.environ.get("LIST_RAY_ADDRESS", "")).strip()
        if not address:
            return None
        return cls(address, actors=int(os.environ.get("LIST_RAY_ACTORS", "2")))


def model_spec(model: ListModel) -> dict[str, Any]:
    """What an actor needs to rebuild `model` exactly: its export config and trainable weights (CPU)."""
    from .export import export_config

    cfg = export_config(model, [f"class {c}" for c in range(model.num_classes)])
    state = {k: v.detach().cpu() for k, v in model.trainable_state().items()}
    h = hashlib.sha256(repr(sorted((k, v) for k, v in cfg.items() if k != "parameters")).encode())
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].float().numpy().tobytes())
    return {"config": cfg, "state": state, "digest": h.hexdigest()}


def pack(enc: Encoded) -> dict[str, np.ndarray]:
    """Token ids as one flat int32 array with offsets: cheap to pickle and to hold in Ray's object store."""
    lengths = np.fromiter((len(r) for r in enc.ids), dtype=np.int64, count=len(enc))
    flat = np.fromiter((t for r in enc.ids for t in r), dtype=np.int32, count=int(lengths.sum()))
    packed = {"flat": flat, "offsets": np.concatenate([[0], np.cumsum(lengths)]), "mask_pos": np.asarray(enc.mask_pos)}
    if enc.texts is not None:  # a model with a lexical view reads them
        packed["texts"] = np.array(enc.texts, dtype=object)
    return packed


def unpack(p: dict[str, np.ndarray]) -> Encoded:
    o = p["offsets"]
    texts = [str(t) for t in p["texts"]] if "texts" in p else None
    return Encoded([p["flat"][o[i] : o[i + 1]].tolist() for i in range(len(o) - 1)], p["mask_pos"].tolist(), texts)


class _Worker:
    """A Ray actor: the backbone it was last asked for, the models it was last asked for (by digest), forward
    passes on shards. A model's spec names its backbone (a folder, or a hub id in the node's cache)."""

    def __init__(self, threads: int) -> None:
        torch.set_num_threads(max(1, threads))
        self.backbone: Any = None
        self.models: dict[str, ListModel] = {}

    def _model(self, spec: dict[str, Any]) -> ListModel:
        from .backbone import load_backbone
        from .export import build_classifier

        if spec["digest"] not in self.models:
            name = spec["config"]["backbone"]
            if self.backbone is None or self.backbone.name != name:  # one backbone per actor at a time
                self.models.clear()
                self.backbone = load_backbone(name)
            if len(self.models) >= 2:  # a round's teacher and the model before it, no more
                self.models.pop(next(iter(self.models)))
            clf = build_classifier(spec["config"], spec["state"], self.backbone, f"model {spec['digest'][:12]}")
            self.models[spec["digest"]] = clf.model
        return self.models[spec["digest"]]

    def run(self, spec: dict[str, Any], what: str, shard: dict[str, np.ndarray], batch_size: int) -> np.ndarray:
        model, enc = self._model(spec), unpack(shard)
        out = model.logits(enc, batch_size) if what == "logits" else model.frozen_features(enc, batch_size)
        return out.numpy()  # (n, C) or (n, D), the shard's order

    def pid(self) -> int:
        return os.getpid()


class RayScorer:
    """Forward passes sharded over `cfg.actors` Ray actors; results in input order, as `LocalScorer`'s."""

    def __init__(self, cfg: RayConfig) -> None:
        try:
            import ray
        except ImportError:
            raise DistributedError("a Ray address is set but Ray is not installed: pip install -r "
                                   "requirements-scale.txt") from None  # fmt: skip
        self.cfg, self.ray = cfg, ray
        try:
            with _init_lock:
                self._connect()
            gpus = cfg.gpus_per_actor
            if gpus is None:
                gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= cfg.actors else 0.0
            actor = ray.remote(_Worker).options(
                num_cpus=cfg.cpus_per_actor, num_gpus=gpus, max_restarts=cfg.retries, max_task_retries=cfg.retries
            )
            self.actors = [actor.remote(int(cfg.cpus_per_actor)) for _ in range(cfg.actors)]
            try:  # placed and started, or a clear error instead of tasks that wait forever for free CPUs
                ray.get([a.pid.remote() for a in self.actors], timeout=ACTOR_START_S)
            except ray.exceptions.GetTimeoutError:
                free = ray.available_resources()
                self.close()
                raise DistributedError(
                    f"{cfg.actors} actors ({cfg.cpus_per_actor} CPU, {gpus} GPU each) did not start within "
                    f"{ACTOR_START_S:.0f} s on {cfg.address!r} (free now: {free.get('CPU', 0):g} CPU, "
                    f"{free.get('GPU', 0):g} GPU); use fewer actors or a larger cluster"
                ) from None
        except DistributedError:
            raise
        except Exception as e:
            raise DistributedError(f"the Ray cluster at {cfg.address!r} cannot be used: {type(e).__name__}: {e}") from e

    def _connect(self) -> None:
        ray, cfg = self.ray, self.cfg
        if ray.is_initialized():
            if _connected and _connected[0] != cfg.address:
                raise DistributedError(f"this process is connected to the Ray cluster {_connected[0]!r}, not "
                                       f"{cfg.address!r}: one cluster per worker process")  # fmt: skip
            return
        if cfg.address == "local":
            init_local(max(1, int(cfg.actors * cfg.cpus_per_actor)))
        else:
            _check_reachable(cfg.address)
            ray.init(address=cfg.address, log_to_driver=False, runtime_env=_runtime_env())
            _connected[:] = [cfg.address]

    def logits(self, model: ListModel, enc: Encoded, batch_size: int = 64) -> torch.Tensor:
        return self._run(model, "logits", enc, batch_size)

    def features(self, model: ListModel, enc: Encoded, batch_size: int = 64) -> torch.Tensor:
        return self._run(model, "features", enc, batch_size)

    def _run(self, model: ListModel, what: str, enc: Encoded, batch_size: int) -> torch.Tensor:
        ray, n = self.ray, len(enc)
        if n == 0:
            width = model.num_classes if what == "logits" else model.feature_dim
            return torch.empty((0, width))
        pending: dict[Any, int] = {}
        try:
            spec = ray.put(model_spec(model))
            # shards are runs of the length-sorted order, a whole number of batches each: an actor's batches are
            # then exactly the local path's (same rows, same padding): the results are equal up to BLAS summing in
            # another order in another process (bit for bit on the default backbone here)
            order = sorted(range(n), key=lambda i: len(enc.ids[i]))
            size = max(1, self.cfg.shard_size // batch_size) * batch_size
            shards = [order[s : s + size] for s in range(0, n, size)]
            window = 2 * len(self.actors)  # shards in flight: every actor busy, the object store bounded
            out: torch.Tensor | None = None
            submitted = 0
            while submitted < len(shards) or pending:
                while submitted < len(shards) and len(pending) < window:  # round-robin over the actors
                    index = shards[submitted]
                    actor = self.actors[submitted % len(self.actors)]
                    pending[actor.run.remote(spec, what, pack(enc.subset(index)), batch_size)] = submitted
                    submitted += 1
                raise_if_cancelled()
                done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in done:
                    part = torch.from_numpy(ray.get(ref).copy())  # (n_shard, C or D); Ray's arrays are read-only
                    if out is None:
                        out = torch.empty((n, part.shape[1]), dtype=part.dtype)
                    out[shards[pending.pop(ref)]] = part
        except Exception as e:
            if isinstance(e, Cancelled):
                for ref in pending:
                    ray.cancel(ref)
                raise
            raise DistributedError(f"a forward pass on the Ray cluster at {self.cfg.address!r} failed: "
                                   f"{type(e).__name__}: {e}") from e  # fmt: skip
        return out  # (N, C) or (N, D), input order

    def close(self, disconnect: bool = False) -> None:
        """Stop the actors; with `disconnect`, also this process's connection (the next scorer connects afresh)."""
        for a in self.actors:
            with contextlib.suppress(Exception):
                self.ray.kill(a)
        self.actors = []
        for key in [k for k, v in _shared.items() if v is self]:
            del _shared[key]
        if disconnect:
            with _init_lock, contextlib.suppress(Exception):
                self.ray.shutdown()
                _connected.clear()


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, not after Ray's minutes of retries, when a host:port address does not answer."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and the like: Ray finds the cluster itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise DistributedError(f"nothing answers at {address!r} ({e}); is the Ray head running there?") from None


def _runtime_env() -> dict[str, Any]:
    """A remote cluster gets this project's `list_core` package with the job, so its actors run the same code."""
    import list_core

    return {"py_modules": [os.path.dirname(list_core.__file__)]}


def init_local(num_cpus: int) -> None:
    """A Ray cluster on this machine only (loopback, no dashboard) whose workers import this `list_core`."""
    import ray

    import list_core

    root = os.path.dirname(os.path.dirname(list_core.__file__))
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})  # fmt: skip
    _connected[:] = ["local"]


_current: contextvars.ContextVar[Scorer | None] = contextvars.ContextVar("list_scorer", default=None)


def use_scorer(scorer: Scorer | None) -> contextlib.AbstractContextManager:
    """Within the block, every method's pool-wide forward passes go through `scorer` (None: this process)."""
    return scoped(_current, scorer)


def current_scorer() -> Scorer:
    """The scorer `use_scorer` set, else a `LocalScorer`."""
    return _current.get() or LocalScorer()


def shared_scorer(address: str | None = None, actors: int | None = None) -> RayScorer | None:
    """This process's scorer for `address` (or $LIST_RAY_ADDRESS) with `actors` actors, created on first use and
    shared by every caller (the worker's lanes, the CLI), so a cluster is never asked for a second set of actors;
    None when no address is set (Ray not imported)."""
    cfg = RayConfig.from_env(address)
    if cfg is None:
        return None
    if actors is not None:
        cfg = RayConfig(cfg.address, actors=actors)
    with _build_lock:
        if (cfg.address, cfg.actors) not in _shared:
            _shared[(cfg.address, cfg.actors)] = RayScorer(cfg)
        return _shared[(cfg.address, cfg.actors)]


_build_lock = threading.Lock()


def drop_shared(address: str | None = None) -> None:
    """Close the shared scorer of `address` (or $LIST_RAY_ADDRESS) and this process's connection after a failure,
    so the next job connects afresh."""
    cfg = RayConfig.from_env(address)
    for key, scorer in list(_shared.items()):
        if cfg is not None and key[0] == cfg.address:
            scorer.close(disconnect=True)
