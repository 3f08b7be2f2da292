"""LiST adapters: a linear bottleneck right after a dense layer, and folding it back into that layer.

In every transformer block, one adapter follows the attention-output projection and one follows the
feed-forward output projection, before dropout and the residual LayerNorm:

    h = W x + b
    h <- h + W_up (W_down h)          # no bias, no activation

Because it is linear and follows a dense layer, `W' = (I + W_up W_down) W` and `b' = (I + W_up W_down) b`
give the same function with no inference overhead (`fold_adapters`).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

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
    """A frozen dense layer followed by a trainable adapter."""

    def __init__(self, base: nn.Linear, cfg: AdapterConfig) -> None:
        super().__init__()
        self.base = base
        self.adapter = Adapter(base.out_features, cfg).to(base.weight.device)
        self.enabled = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.base(x)
        return self.adapter(h) if self.enabled else h

    def folded(self) -> nn.Linear:
        """A plain `nn.Linear` computing the same function."""
        m = self.adapter.matrix()  # (D, D)
        out = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        out = out.to(device=self.base.weight.device, dtype=self.base.weight.dtype)
        with torch.no_grad():
            out.weight.copy_(m @ self.base.weight.float())
            if self.base.bias is not None:
                out.bias.copy_(m @ self.base.bias.float())
        out.requires_grad_(False)
        return out


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def add_adapters(encoder: nn.Module, targets: list[str], cfg: AdapterConfig) -> list[str]:
    """Wrap each target `nn.Linear` of `encoder` in an `AdaptedLinear`; returns the wrapped names."""
    if not targets:
        raise ValueError("no adapter targets found in this encoder")
    for name in targets:
        base = encoder.get_submodule(name)
        if not isinstance(base, nn.Linear):
            raise TypeError(f"adapter target {name!r} is a {type(base).__name__}, expected nn.Linear")
        _set_submodule(encoder, name, AdaptedLinear(base, cfg))
    return targets


def adapted_layers(module: nn.Module) -> dict[str, AdaptedLinear]:
    """All `AdaptedLinear` layers of a module, by name."""
    return {n: m for n, m in module.named_modules() if isinstance(m, AdaptedLinear)}


@contextlib.contextmanager
def adapters_disabled(module: nn.Module) -> Iterator[None]:
    """Run the plain backbone inside the block (the frozen features, e.g. to initialise a head)."""
    layers = adapted_layers(module).values()
    for layer in layers:
        layer.enabled = False
    try:
        yield
    finally:
        for layer in layers:
            layer.enabled = True


def reset_adapters(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """Draw every adapter afresh (a new student)."""
    for layer in adapted_layers(module).values():
        layer.adapter.reset_parameters(generator)


def fold_adapters(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Fold every adapter into its dense layer, giving a plain model with the same outputs.

    With `inplace=False` (default) the given model is left untouched: a shared backbone stays usable.
    """
    model = model if inplace else copy.deepcopy(model)
    for name, layer in adapted_layers(model).items():
        _set_submodule(model, name, layer.folded())
    return model


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
