"""A recurrent context network: stacked residual LSTM or GRU layers.

The alternative to :class:`~speechssl.models.transformer.TransformerEncoder` for the
recurrent models of the literature: APC and VQ-APC use unidirectional LSTMs with residual
connections between consecutive layers (Chung et al. 2019; 2020), CPC a GRU (van den Oord
et al. 2018). LSTM: Hochreiter & Schmidhuber 1997; GRU: Cho et al. 2014.

Unidirectional (``causal``) layers read each utterance left to right, so output frame ``t``
depends on input frames ``<= t`` only. Bidirectional layers add a second RNN that reads each
utterance's valid frames reversed (:func:`~speechssl.models.padding.reverse_padded`), the
dense-kernel equivalent of packed sequences: in both directions padding comes after every
valid frame and never reaches a valid output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from speechssl.models.init import init_linear_
from speechssl.models.padding import reverse_padded, zero_padding_frames

RecurrentCell = Literal["lstm", "gru"]


class RecurrentLayer(nn.Module):
    """One residual recurrent layer: ``h + Dropout(RNN(h))``.

    Unidirectional: ``RNN`` is one LSTM or GRU of ``dim`` units. Bidirectional: a forward
    and a backward RNN of ``dim`` units each, their outputs concatenated and projected back
    to ``dim`` by a Linear layer (the projected BiLSTM, "BLSTMP", of ESPnet; Watanabe et al.
    2018), so the residual connection and every hidden state keep width ``dim``.

    Args:
        dim: input, hidden and output width.
        cell: ``"lstm"`` or ``"gru"``.
        bidirectional: add the backward RNN and the projection.
        dropout: dropout on the RNN output before the residual sum.
    """

    def __init__(
        self, dim: int, cell: RecurrentCell = "lstm", bidirectional: bool = False, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if cell not in ("lstm", "gru"):
            raise ValueError(f"cell: expected 'lstm' or 'gru', found {cell!r}")
        if dim < 1:
            raise ValueError(f"dim: expected a positive integer, found {dim}")
        self.dim = dim
        self.cell = cell
        self.bidirectional = bidirectional
        rnn_class = nn.LSTM if cell == "lstm" else nn.GRU
        self.forward_rnn = rnn_class(dim, dim, batch_first=True)
        self.backward_rnn = rnn_class(dim, dim, batch_first=True) if bidirectional else None
        self.projection = nn.Linear(2 * dim, dim) if bidirectional else None
        if self.projection is not None:
            init_linear_(self.projection)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """``x (batch, frames, dim)`` with ``lengths (batch,)`` valid frames (None: no padding)
        -> ``(batch, frames, dim)``.

        Valid outputs never depend on padded inputs; padded outputs are not zeroed here.
        """
        y, _ = self.forward_rnn(x)  # (batch, frames, dim)
        if self.backward_rnn is not None and self.projection is not None:
            behind, _ = self.backward_rnn(reverse_padded(x, lengths))  # (batch, frames, dim), reversed
            both = torch.cat([y, reverse_padded(behind, lengths)], dim=-1)  # (batch, frames, 2 * dim)
            y = self.projection(both)  # (batch, frames, dim)
        return x + self.dropout(y)


class RecurrentEncoder(nn.Module):
    """Dropout on the input, then residual :class:`RecurrentLayer` s (with LayerDrop).

    Same interface as :class:`~speechssl.models.transformer.TransformerEncoder` (``dim``,
    ``causal``, ``layers``, ``forward(x, lengths) -> hidden states``), so
    :class:`~speechssl.models.encoder.SpeechEncoder` takes either. The recurrence carries
    position, so there is no positional embedding; there is no final normalisation, as in
    APC's LSTM. LayerDrop (Fan et al. 2020) skips each layer with probability ``layer_drop``
    in training mode only; a skipped layer's hidden state repeats its input.

    Args:
        dim: width of the input and of every layer.
        layers: the recurrent layers, all of width ``dim`` and all uni- or all bidirectional.
        dropout: dropout on the input.
        layer_drop: probability of skipping each layer in training.
    """

    def __init__(
        self, dim: int, layers: Sequence[RecurrentLayer], dropout: float = 0.1, layer_drop: float = 0.0
    ) -> None:
        super().__init__()
        if not 0.0 <= layer_drop < 1.0:
            raise ValueError(f"layer_drop: expected a probability in [0, 1), found {layer_drop}")
        for i, layer in enumerate(layers):
            if layer.dim != dim:
                raise ValueError(f"layers[{i}].dim: expected {dim}, found {layer.dim}")
        directions = {layer.bidirectional for layer in layers}
        if len(directions) > 1:
            raise ValueError(
                "layers: expected all unidirectional or all bidirectional layers, found a mixture"
            )
        self.dim = dim
        self.causal = directions != {True}
        self.layers = nn.ModuleList(layers)
        self.dropout = nn.Dropout(dropout)
        self.layer_drop = layer_drop

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor | None, output_hidden_states: bool = True
    ) -> list[torch.Tensor]:
        """Contextualise a padded batch.

        Args:
            x: ``(batch, frames, dim)``; padded frames are ignored.
            lengths: ``(batch,)`` int64 valid frames per utterance (at least 1 each); None when
                no utterance is padded.
            output_hidden_states: return every hidden state; False returns the last one only.

        Returns:
            ``len(layers) + 1`` hidden states ``(batch, frames, dim)`` (or only the last), zero
            on padded frames: index 0 is the input (after dropout), index ``i`` the output of layer ``i``.
        """
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"x: expected (batch, frames, {self.dim}), found {tuple(x.shape)}")
        if lengths is not None and lengths.shape != (x.shape[0],):
            raise ValueError(f"lengths: expected shape ({x.shape[0]},), found {tuple(lengths.shape)}")
        if lengths is not None:
            lengths = lengths.to(device=x.device, dtype=torch.long)
        x = zero_padding_frames(self.dropout(x), lengths)
        hidden_states = [x]
        for layer in self.layers:
            skip = self.training and self.layer_drop > 0 and torch.rand(()).item() < self.layer_drop
            if not skip:
                x = zero_padding_frames(layer(x, lengths), lengths)
            if output_hidden_states:
                hidden_states.append(x)
        return hidden_states if output_hidden_states else [x]


__all__ = ["RecurrentCell", "RecurrentEncoder", "RecurrentLayer"]
