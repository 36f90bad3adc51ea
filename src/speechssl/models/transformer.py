"""The context network: a pre-LN Transformer with convolutional positional embedding.

Follows wav2vec 2.0 (Baevski et al. 2020, §2): the relative position information comes
from a grouped convolution over time added to the input (Mohamed et al. 2019), followed
by Transformer blocks (Vaswani et al. 2017) in the pre-LayerNorm arrangement (Xiong et al.
2020; wav2vec 2.0 LARGE's ``layer_norm_first``). Every attention call masks padded keys,
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
        if self.causal:
            x = F.pad(x, (self.kernel_size - 1, 0))
        else:
            x = F.pad(x, (self.kernel_size // 2, self.kernel_size // 2))
        x = self.conv(x)[:, :, :frames]  # (batch, dim, frames)
        return F.gelu(x).transpose(1, 2)  # (batch, frames, dim)


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
        self, x: torch.Tensor, attn_mask: torch.Tensor | None, is_causal: bool = False
    ) -> torch.Tensor:
        """Attend.

        Args:
            x: ``(batch, frames, dim)``.
            attn_mask: ``(batch, 1, 1 or frames, frames)`` bool, True where a query may attend a
                key; None to attend every key (the fused kernels of ``F.scaled_dot_product_attention``).
            is_causal: without ``attn_mask``, attend only to the past (SDPA's own causal mask).

        Returns:
            ``(batch, frames, dim)``.
        """
        batch, frames, dim = x.shape
        q, k, v = (
            self.qkv(x).view(batch, frames, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        )  # each (batch, heads, frames, head_dim)
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
    """Pre-LN block: ``x + Dropout(MHSA(LN(x)))`` then ``x + Dropout(FFN(LN(x)))``."""

    def __init__(
        self,
        dim: int,
        heads: int,
        ffn_dim: int,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        activation_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = MultiHeadSelfAttention(dim, heads, attention_dropout)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, ffn_dim, activation_dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None, is_causal: bool = False
    ) -> torch.Tensor:
        """``x (batch, frames, dim)``, ``attn_mask (batch, 1, 1 or frames, frames)`` or None ->
        ``(batch, frames, dim)`` (see :meth:`MultiHeadSelfAttention.forward`)."""
        x = x + self.dropout(self.attention(self.attention_norm(x), attn_mask, is_causal))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class TransformerEncoder(nn.Module):
    """Positional convolution, dropout, Transformer layers (with LayerDrop), final LayerNorm.

    LayerDrop (Fan et al. 2020) skips each layer with probability ``layer_drop`` in
    training mode only; a skipped layer's hidden state repeats its input. Note that
    skipped layers leave parameters unused in that step (DDP needs
    ``find_unused_parameters=True`` when ``layer_drop > 0``).
    """

    def __init__(
        self,
        positional: ConvPositionalEmbedding,
        layers: Sequence[TransformerLayer],
        dropout: float = 0.1,
        layer_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= layer_drop < 1.0:
            raise ValueError(f"layer_drop: expected a probability in [0, 1), found {layer_drop}")
        for i, layer in enumerate(layers):
            if layer.dim != positional.dim:
                raise ValueError(
                    f"layers[{i}].dim: expected {positional.dim} like positional, found {layer.dim}"
                )
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
            zero on padded frames: index 0 is the input plus positional embedding (after
            dropout), index ``i`` the output of layer ``i``; the final LayerNorm is applied to
            the last one.
        """
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"x: expected (batch, frames, {self.dim}), found {tuple(x.shape)}")
        if lengths is not None and lengths.shape != (x.shape[0],):
            raise ValueError(f"lengths: expected shape ({x.shape[0]},), found {tuple(lengths.shape)}")
        attn_mask = self.attention_mask(lengths, x.shape[1])
        is_causal = self.causal and attn_mask is None
        x = self.dropout(x + self.positional(x, lengths))
        hidden_states = [x]
        for layer in self.layers:
            skip = self.training and self.layer_drop > 0 and torch.rand(()).item() < self.layer_drop
            if not skip:
                x = layer(x, attn_mask, is_causal)
            if output_hidden_states:
                hidden_states.append(x)
        hidden_states[-1] = self.norm(x)
        return [zero_padding_frames(h, lengths) for h in hidden_states]
