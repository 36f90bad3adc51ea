"""Combining the hidden layers of a frozen upstream into one feature sequence.

SUPERB (Yang et al. 2021, "SUPERB: Speech processing Universal PERformance Benchmark",
§3) evaluates an upstream through a learnable weighted sum of all its hidden layers,
``h = sum_l softmax(w)_l * h_l``, trained jointly with the downstream head while the
upstream stays frozen; the learnt weights show which layers a task draws on. Probing one
layer instead (:class:`FixedLayer`) gives the per-layer curves.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _check_layers(hidden: torch.Tensor, num_layers: int | None = None) -> None:
    if hidden.dim() < 2:
        raise ValueError(f"hidden: expected (..., layers, dim), found shape {tuple(hidden.shape)}")
    if num_layers is not None and hidden.shape[-2] != num_layers:
        raise ValueError(
            f"hidden: expected {num_layers} layers in dimension -2 of (..., layers, dim), "
            f"found shape {tuple(hidden.shape)}"
        )


class WeightedLayerSum(nn.Module):
    """SUPERB's featurizer: a softmax-weighted sum of every upstream layer.

    Yang et al. 2021, §3: ``h = sum_l softmax(w)_l * h_l`` with one learnable logit
    ``w_l`` per layer, initialised to zero (equal weights). With ``layer_norm`` every
    layer is first normalised over its feature dimension without a learnt gain or bias
    (as in the SUPERB reference implementation, s3prl's ``Featurizer``), so that layers of
    different scales compete on their content rather than their norm.

    Args:
        num_layers: number of hidden layers ``L`` the input carries.
        layer_norm: normalise each layer over ``dim`` before weighting.
    """

    def __init__(self, num_layers: int, layer_norm: bool = False) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers: expected an integer >= 1, found {num_layers}")
        self.num_layers = num_layers
        self.layer_norm = layer_norm
        self.logits = nn.Parameter(torch.zeros(num_layers))

    def weights(self) -> torch.Tensor:
        """``(layers,)`` softmax weights ``softmax(w)``, differentiable; they sum to 1."""
        return torch.softmax(self.logits, dim=0)

    def layer_weights(self) -> list[float]:
        """The current softmax weights as plain floats, to save with results and plot."""
        return self.weights().detach().cpu().tolist()

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Weighted sum over the layer dimension.

        Args:
            hidden: ``(..., layers, dim)``, e.g. ``(batch, layers, feat)`` pooled statistics
                or ``(batch, frames, layers, dim)`` frames.

        Returns:
            ``(..., dim)``.
        """
        _check_layers(hidden, self.num_layers)
        if self.layer_norm:
            hidden = F.layer_norm(hidden, hidden.shape[-1:])
        # (layers,) @ (..., layers, dim) -> (..., dim)
        return torch.matmul(self.weights().to(hidden.dtype), hidden)


class FixedLayer(nn.Module):
    """Select one hidden layer: the single-layer probe of a layer-wise analysis.

    Args:
        index: layer index; negative values count from the last layer as in Python.
    """

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``hidden (..., layers, dim)`` -> ``(..., dim)``, the layer at ``index``."""
        _check_layers(hidden)
        num_layers = hidden.shape[-2]
        if not -num_layers <= self.index < num_layers:
            raise ValueError(
                f"layer index: expected an integer in [{-num_layers}, {num_layers}), found {self.index}"
            )
        return hidden[..., self.index, :]
