"""SUPERB's learnable weighted sum of an encoder's hidden states, put in front of any probe head.

Embeddings of all layers come side by side (``layers * dim`` features, as ``layer="all"`` encodes them); the
mix reshapes them to ``(..., layers, dim)`` and sums with softmax-normalised weights trained with the probe.
For mean-pooled clip embeddings this equals pooling the weighted sum of frames, since both are linear.
"""

from __future__ import annotations

import torch


class LayerMix(torch.nn.Module):
    """``sum_l softmax(w)_l * x_l`` over ``layers`` stacked layers; starts from the plain average."""

    def __init__(self, layers: int) -> None:
        super().__init__()
        self.layers = layers
        self.logits = torch.nn.Parameter(torch.zeros(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *lead, width = x.shape
        stacked = x.reshape(*lead, self.layers, width // self.layers)
        return (stacked * torch.softmax(self.logits, dim=0)[:, None]).sum(-2)

    def weights(self) -> list[float]:
        return torch.softmax(self.logits.detach().float().cpu(), dim=0).tolist()


def with_layer_mix(head: torch.nn.Module, layers: int) -> torch.nn.Module:
    """``head`` itself for one layer, else a :class:`LayerMix` feeding it."""
    return head if layers == 1 else torch.nn.Sequential(LayerMix(layers), head)


def layer_weights(module: torch.nn.Module) -> list[float] | None:
    """The learnt softmax weights of the module's :class:`LayerMix`, or None if it has none."""
    mix = next((m for m in module.modules() if isinstance(m, LayerMix)), None)
    return None if mix is None else mix.weights()


def mix_with(x, weights: list[float]):
    """Apply learnt ``weights`` to stacked-layer numpy embeddings ``(..., layers * dim)`` (e.g. for k-NN)."""
    import numpy as np

    *lead, width = x.shape
    stacked = x.reshape(*lead, len(weights), width // len(weights))
    return (stacked * np.asarray(weights, dtype=x.dtype)[:, None]).sum(-2)
