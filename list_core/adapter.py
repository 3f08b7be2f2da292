"""LiST adapters: a linear bottleneck right after a dense layer, named adapter slots, and folding.

In every transformer block, one adapter follows the attention-output projection and one follows the
feed-forward output projection, before dropout and the residual LayerNorm:

    h = W x + b
    h <- h + W_up (W_down h)          # no bias, no activation

Because it is linear and follows a dense layer, `W' = (I + W_up W_down) W` and `b' = (I + W_up W_down) b`
give the same function with no inference overhead (`AdaptedLinear.folded`).

Ownership, as in PEFT: a backbone's target layers are wrapped once in `AdaptedLinear`, which holds named
slots. Each model registers its own adapters under its own name and activates that name for its forward
pass only (`Backbone.activate`), so many models share one backbone and never see each other's weights.
The slots are a plain dict, outside the layer's parameters and state dict: the backbone's weights, their
hash and their copies never include an adapter, and a model's parameters are only its own.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from .config import AdapterConfig


class Adapter(nn.Module):
    """`h + W_up(W_down h)` with both matrices drawn from N(0, sigma)."""

    def __init__(self, dim: int, cfg: AdapterConfig) -> None:
        super().__init__()
        self.sigma = cfg.sigma
        self.down = nn.Linear(dim, cfg.bottleneck, bias=False)
        self.up = nn.Linear(cfg.bottleneck, dim, bias=False)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        with torch.no_grad():
            for lin in (self.down, self.up):
                w = torch.randn(lin.weight.shape, generator=generator, dtype=torch.float32)
                lin.weight.copy_(w.to(lin.weight.device) * self.sigma)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.up(self.down(h))

    def matrix(self) -> torch.Tensor:
        """`I + W_up W_down`, the adapter as one (D, D) matrix."""
        up, down = self.up.weight.float(), self.down.weight.float()  # (D, r), (r, D)
        return torch.eye(up.shape[0], device=up.device) + up @ down


class AdaptedLinear(nn.Module):
    """A frozen dense layer followed by the active one of its named adapters (none active: the plain layer)."""

    def __init__(self, base: nn.Linear) -> None:
        super().__init__()
        self.base = base
        self.slots: dict[str, Adapter] = {}  # not submodules: each adapter belongs to the model that added it
        self.active: str | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.base(x)
        if self.active is None:
            return h
        return self.slots[self.active](h)

    def folded(self, adapter: Adapter) -> nn.Linear:
        """A plain `nn.Linear` computing `adapter(base(x))`."""
        m = adapter.matrix()  # (D, D)
        out = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        out = out.to(device=self.base.weight.device, dtype=self.base.weight.dtype)
        with torch.no_grad():
            out.weight.copy_(m @ self.base.weight.float())
            if self.base.bias is not None:
                out.bias.copy_(m @ self.base.bias.float())
        out.requires_grad_(False)
        return out


def set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def wrap_targets(encoder: nn.Module, targets: list[str]) -> dict[str, AdaptedLinear]:
    """Wrap each target `nn.Linear` of `encoder` in an `AdaptedLinear` (once); returns the layers by name."""
    if not targets:
        raise ValueError("no adapter targets found in this encoder")
    for name in targets:
        layer = encoder.get_submodule(name)
        if isinstance(layer, AdaptedLinear):
            continue
        if not isinstance(layer, nn.Linear):
            raise TypeError(f"adapter target {name!r} is a {type(layer).__name__}, expected nn.Linear")
        set_submodule(encoder, name, AdaptedLinear(layer))
    return {name: encoder.get_submodule(name) for name in targets}


def adapted_layers(module: nn.Module) -> dict[str, AdaptedLinear]:
    """All `AdaptedLinear` layers of a module, by name."""
    return {n: m for n, m in module.named_modules() if isinstance(m, AdaptedLinear)}


def slot_key(layer_name: str) -> str:
    """A layer name as a `ModuleDict` key (no dots)."""
    return layer_name.replace(".", "-")


_EXTERNAL = re.compile(r"^encoder\.(.+)\.adapter\.(down|up)\.weight$")


def external_name(layer_name: str, which: str) -> str:
    """The name an adapter matrix has in checkpoints and exports (stable across versions)."""
    return f"encoder.{layer_name}.adapter.{which}.weight"


def parse_external_name(name: str) -> tuple[str, str] | None:
    """(layer name, down|up) of an adapter weight's external name, or None for other weights."""
    m = _EXTERNAL.match(name)
    return (m.group(1), m.group(2)) if m else None


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
