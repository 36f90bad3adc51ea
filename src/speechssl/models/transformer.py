"""The context network: a Transformer with convolutional positional embedding.

Follows wav2vec 2.0 (Baevski et al. 2020, §2): the relative position information comes
from a grouped convolution over time added to the input (Mohamed et al. 2019), followed
by Transformer blocks (Vaswani et al. 2017) in one of two arrangements (fairseq's
``layer_norm_first``):

* pre-LN (Xiong et al. 2020; wav2vec 2.0 LARGE, transformers' "stable layer norm"): each
  branch reads a layer-normalised input, ``x + F(LN(x))``, and a final LayerNorm follows the
  last layer;
* post-LN (wav2vec 2.0 / HuBERT / WavLM BASE, data2vec-audio): ``LN(x + F(x))`` after each
  branch, and the LayerNorm is applied once before the first layer, right after the
  positional embedding is added, with none after the last.

The positional embedding is wav2vec 2.0's one weight-normalised convolution
(:class:`ConvPositionalEmbedding`) or data2vec-audio's stack of convolutions each followed
by a LayerNorm (:class:`StackedConvPositionalEmbedding`); WavLM adds a gated relative position
bias to the attention logits (:mod:`speechssl.models.relative_position`). Every attention call masks padded keys,
so the valid outputs of a padded utterance equal those computed without padding (a batch
given without lengths has no padding and attends without a mask, SDPA's fused kernels); with
``causal=True`` both the attention and the positional convolution only look at the past.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from speechssl.data.batch import lengths_to_padding_mask
from speechssl.models.init import init_linear_
from speechssl.models.padding import zero_padding_frames
from speechssl.models.relative_position import RelativePositionBias, RelativePositionGate


def same_padding(x: torch.Tensor, kernel_size: int, causal: bool) -> torch.Tensor:
    """``x (batch, dim, frames)`` padded in time for a convolution of ``kernel_size`` whose output,
    cut to ``frames``, is aligned with its input: ``kernel_size // 2`` zeros on each side (the
    extra frame of an even kernel dropped after the convolution, fairseq's ``SamePad``), or
    ``kernel_size - 1`` on the left when ``causal``."""
    if causal:
        return F.pad(x, (kernel_size - 1, 0))
    return F.pad(x, (kernel_size // 2, kernel_size // 2))


class ConvPositionalEmbedding(nn.Module):
    """``GELU(WeightNorm(GroupedConv1d(x)))``, the wav2vec 2.0 relative positional embedding.

    Non-causal: ``kernel_size // 2`` zeros on each side, the extra frame of an even kernel
    dropped (fairseq's ``SamePad``). Causal: ``kernel_size - 1`` zeros on the left only, so
    output frame ``t`` depends on input frames ``<= t``. Padded frames are zeroed before
    the convolution so that they contribute exactly what the implicit zero padding of an
    unpadded utterance would.
    """

    def __init__(self, dim: int, kernel_size: int = 128, groups: int = 16, causal: bool = False) -> None:
        super().__init__()
        if dim % groups != 0:
            raise ValueError(f"groups: expected a divisor of dim={dim}, found {groups}")
        self.dim = dim
        self.kernel_size = kernel_size
        self.causal = causal
        conv = nn.Conv1d(dim, dim, kernel_size, groups=groups)
        # wav2vec 2.0's init: normal with std sqrt(4 / (kernel * dim)), zero bias.
        nn.init.normal_(conv.weight, mean=0.0, std=math.sqrt(4.0 / (kernel_size * dim)))
        nn.init.zeros_(conv.bias)
        self.conv = weight_norm(conv, name="weight", dim=2)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """The positional embedding ``(batch, frames, dim)`` of ``x (batch, frames, dim)``.

        Frames at or after ``lengths (batch,)`` are treated as zeros (None: no padding).
        """
        frames = x.shape[1]
        x = zero_padding_frames(x, lengths).transpose(1, 2)  # (batch, dim, frames)
        x = self.conv(same_padding(x, self.kernel_size, self.causal))[:, :, :frames]  # (batch, dim, frames)
        return F.gelu(x).transpose(1, 2)  # (batch, frames, dim)


class StackedConvPositionalEmbedding(nn.Module):
    """data2vec-audio's positional embedding (Baevski et al. 2022, §3.2): ``layers`` times
    ``GELU(LayerNorm(GroupedConv1d(x)))``, the LayerNorm without gain or bias.

    Each convolution is padded like :class:`ConvPositionalEmbedding` and padded frames are
    zeroed before each one, so the valid outputs of a padded utterance equal those of the
    utterance alone (the transformers implementation zeroes them before the first only).
    """

    def __init__(
        self, dim: int, kernel_size: int = 19, groups: int = 16, layers: int = 5, causal: bool = False
    ) -> None:
        super().__init__()
        if dim % groups != 0:
            raise ValueError(f"groups: expected a divisor of dim={dim}, found {groups}")
        if layers < 1:
            raise ValueError(f"layers: expected a positive integer, found {layers}")
        self.dim = dim
        self.kernel_size = kernel_size
        self.causal = causal
        self.layers = nn.ModuleList(nn.Conv1d(dim, dim, kernel_size, groups=groups) for _ in range(layers))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """The positional embedding ``(batch, frames, dim)`` of ``x (batch, frames, dim)``.

        Frames at or after ``lengths (batch,)`` are treated as zeros (None: no padding).
        """
        frames = x.shape[1]
        for conv in self.layers:
            x = zero_padding_frames(x, lengths).transpose(1, 2)  # (batch, dim, frames)
            x = conv(same_padding(x, self.kernel_size, self.causal))[:, :, :frames].transpose(1, 2)
            x = F.gelu(F.layer_norm(x, (self.dim,)))  # (batch, frames, dim)
        return x


class MultiHeadSelfAttention(nn.Module):
    """Scaled dot-product self-attention over ``heads`` heads (Vaswani et al. 2017, §3.2.2)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"heads: expected a divisor of dim={dim}, found {heads}")
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        init_linear_(self.qkv)
        init_linear_(self.out)

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None,
        is_causal: bool = False,
        position_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attend.

        Args:
            x: ``(batch, frames, dim)``.
            attn_mask: ``(batch, 1, 1 or frames, frames)`` bool, True where a query may attend a
                key; None to attend every key (the fused kernels of ``F.scaled_dot_product_attention``).
            is_causal: without ``attn_mask``, attend only to the past (SDPA's own causal mask).
            position_bias: optional ``(batch, heads, frames, frames)`` added to the logits
                (WavLM's gated relative position bias); masked keys still get no weight.

        Returns:
            ``(batch, frames, dim)``.
        """
        batch, frames, dim = x.shape
        q, k, v = (
            self.qkv(x).view(batch, frames, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        )  # each (batch, heads, frames, head_dim)
        if position_bias is not None:
            if attn_mask is not None:
                position_bias = position_bias.masked_fill(~attn_mask, float("-inf"))
            attn_mask = position_bias
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal,
        )  # (batch, heads, frames, head_dim)
        y = y.transpose(1, 2).reshape(batch, frames, dim)  # (batch, frames, dim)
        return self.out(y)


class FeedForward(nn.Module):
    """Position-wise ``Linear -> GELU -> dropout -> Linear`` (Vaswani et al. 2017, eq. 2, with GELU)."""

    def __init__(self, dim: int, ffn_dim: int, activation_dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.dropout = nn.Dropout(activation_dropout)
        init_linear_(self.fc1)
        init_linear_(self.fc2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, frames, dim)`` -> ``(batch, frames, dim)``."""
        return self.fc2(self.dropout(F.gelu(self.fc1(x))))


class TransformerLayer(nn.Module):
    """A Transformer block, pre-LN or post-LN (see the module docstring).

    Pre-LN (``layer_norm_first``): ``x + Dropout(MHSA(LN(x)))`` then ``x + Dropout(FFN(LN(x)))``.
    Post-LN: ``LN(x + Dropout(MHSA(x)))`` then ``LN(x + Dropout(FFN(x)))``. With
    ``relative_position_gate`` the attention adds the gated relative position bias, the gate
    reading the attention's input.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        ffn_dim: int,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        activation_dropout: float = 0.0,
        layer_norm_first: bool = True,
        relative_position_gate: RelativePositionGate | None = None,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.layer_norm_first = layer_norm_first
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = MultiHeadSelfAttention(dim, heads, attention_dropout)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, ffn_dim, activation_dropout)
        self.dropout = nn.Dropout(dropout)
        self.relative_position_gate = relative_position_gate

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None,
        is_causal: bool = False,
        position_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x (batch, frames, dim)``, ``attn_mask (batch, 1, 1 or frames, frames)`` or None ->
        ``(batch, frames, dim)`` (see :meth:`MultiHeadSelfAttention.forward`); ``position_bias
        (heads, frames, frames)`` is the shared relative position bias this layer gates."""
        h = self.attention_norm(x) if self.layer_norm_first else x
        bias = None
        if self.relative_position_gate is not None:
            if position_bias is None:
                raise ValueError(
                    "position_bias: expected the relative position bias for a gated layer, found None"
                )
            bias = self.relative_position_gate(h, position_bias)  # (batch, heads, frames, frames)
        x = x + self.dropout(self.attention(h, attn_mask, is_causal, bias))
        if not self.layer_norm_first:
            x = self.attention_norm(x)
            return self.ffn_norm(x + self.dropout(self.ffn(x)))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class TransformerEncoder(nn.Module):
    """Positional convolution, dropout, Transformer layers (with LayerDrop) and a LayerNorm:
    after the last layer (pre-LN layers) or before the first (post-LN layers).

    LayerDrop (Fan et al. 2020) skips each layer with probability ``layer_drop`` in
    training mode only; a skipped layer's hidden state repeats its input. Note that
    skipped layers leave parameters unused in that step (DDP needs
    ``find_unused_parameters=True`` when ``layer_drop > 0``).
    """

    def __init__(
        self,
        positional: ConvPositionalEmbedding | StackedConvPositionalEmbedding,
        layers: Sequence[TransformerLayer],
        dropout: float = 0.1,
        layer_drop: float = 0.0,
        relative_position: RelativePositionBias | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= layer_drop < 1.0:
            raise ValueError(f"layer_drop: expected a probability in [0, 1), found {layer_drop}")
        for i, layer in enumerate(layers):
            if layer.dim != positional.dim:
                raise ValueError(
                    f"layers[{i}].dim: expected {positional.dim} like positional, found {layer.dim}"
                )
            if layer.layer_norm_first != layers[0].layer_norm_first:
                raise ValueError(
                    f"layers[{i}].layer_norm_first: expected {layers[0].layer_norm_first} like layers[0]"
                )
            if (layer.relative_position_gate is None) != (relative_position is None):
                raise ValueError(
                    f"layers[{i}].relative_position_gate: expected a gate exactly when the encoder has a "
                    "relative position bias"
                )
        self.layer_norm_first = layers[0].layer_norm_first if layers else True
        self.relative_position = relative_position
        self.dim = positional.dim
        self.causal = positional.causal
        self.positional = positional
        self.layers = nn.ModuleList(layers)
        self.dropout = nn.Dropout(dropout)
        self.layer_drop = layer_drop
        self.norm = nn.LayerNorm(self.dim)

    def attention_mask(self, lengths: torch.Tensor | None, frames: int) -> torch.Tensor | None:
        """``(batch, 1, 1 or frames, frames)`` bool, True where a query may attend a key; None
        without padding (``lengths`` None), where causality is SDPA's ``is_causal``."""
        if lengths is None:
            return None
        mask = (~lengths_to_padding_mask(lengths, frames))[:, None, None, :]  # (batch, 1, 1, frames)
        if self.causal:
            past = torch.ones(
                frames, frames, dtype=torch.bool, device=lengths.device
            ).tril()  # (frames, frames)
            mask = mask & past  # (batch, 1, frames, frames)
        return mask

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor | None, output_hidden_states: bool = True
    ) -> list[torch.Tensor]:
        """Contextualise a padded batch.

        Args:
            x: ``(batch, frames, dim)``; padded frames are ignored.
            lengths: ``(batch,)`` int64 valid frames per utterance (at least 1 each); None when
                no utterance is padded: attention then runs without a mask.
            output_hidden_states: return every hidden state; False returns the last one only.

        Returns:
            ``len(layers) + 1`` hidden states ``(batch, frames, dim)`` (or only the last),
            zero on padded frames: index 0 is the input plus positional embedding (post-LN:
            layer-normalised), after dropout, index ``i`` the output of layer ``i``; with pre-LN
            layers the final LayerNorm is applied to the last one.
        """
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"x: expected (batch, frames, {self.dim}), found {tuple(x.shape)}")
        if lengths is not None and lengths.shape != (x.shape[0],):
            raise ValueError(f"lengths: expected shape ({x.shape[0]},), found {tuple(lengths.shape)}")
        attn_mask = self.attention_mask(lengths, x.shape[1])
        is_causal = self.causal and attn_mask is None
        x = x + self.positional(x, lengths)
        if not self.layer_norm_first:
            x = self.norm(x)
        x = self.dropout(x)
        position_bias = None if self.relative_position is None else self.relative_position(x.shape[1])
        hidden_states = [x]
        for layer in self.layers:
            skip = self.training and self.layer_drop > 0 and torch.rand(()).item() < self.layer_drop
            if not skip:
                x = layer(x, attn_mask, is_causal, position_bias)
            if output_hidden_states:
                hidden_states.append(x)
        hidden_states[-1] = self.norm(x) if self.layer_norm_first else x
        return [zero_padding_frames(h, lengths) for h in hidden_states]
