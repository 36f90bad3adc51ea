"""Discrete speech units: a frozen map from waveforms to one unit index per frame.

The predictive methods consume units: HuBERT predicts them at masked frames (Hsu et al.
2021, §II-A; iteration 1 clusters MFCC frames with k-means, later iterations cluster a
layer of the previous model, §II-B), and Discrete BERT reads them as input tokens and
predicts them (Baevski, Auli, Mohamed 2019, "Effectiveness of self-supervised pre-training
for speech recognition", §2: tokens of a vq-wav2vec quantizer).

A :class:`UnitTokenizer` is two parts:

* :class:`UnitFeatures`, the frames being discretised: MFCC with Δ and ΔΔ (HuBERT's
  39-dimensional iteration-1 features), a hidden state of an encoder, or the
  layer-normalised CNN features of a waveform front-end (what wav2vec 2.0 quantizes),
  optionally averaged over non-overlapping groups of ``pool`` frames so the unit frame rate
  matches a model's;
* an assignment: the nearest of ``k`` centroids (k-means, or a VQ codebook such as
  VQ-APC's), or the argmax of a :class:`~speechssl.models.gumbel_quantizer.GumbelVectorQuantizer`
  (wav2vec 2.0: only its logits layer is kept; the ``G`` group choices combine into one
  index ``Σ_g i_g V^g``).

Everything a tokenizer computes is described by a
:class:`~speechssl.models.encoder.UnitTokenizerConfig` (defined beside the encoder config it
is part of), so a tokenizer is saved as that config (YAML) plus its tensors (safetensors) and
rebuilt by :func:`load_unit_tokenizer`; the k-means fitting that produces centroids lives in
:mod:`speechssl.models.kmeans`. This module registers the ``units`` front-end of
:class:`~speechssl.models.encoder.SpeechEncoder` (:func:`build_unit_frontend`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from speechssl.config import ConfigError, from_dict, load_yaml, to_dict
from speechssl.data.batch import lengths_to_padding_mask
from speechssl.features.filterbank import MFCC, FilterbankConfig, LogMelFilterbank
from speechssl.models.encoder import (
    EncoderConfig,
    SpeechEncoder,
    UnitFeatureConfig,
    UnitTokenizerConfig,
    register_frontend,
)
from speechssl.models.frontends import (
    Frontend,
    FrontendOutput,
    WaveformFrontend,
    check_no_grad_scale,
    full_lengths,
)
from speechssl.models.padding import zero_padding_frames

TOKENIZER_CONFIG = "tokenizer.yaml"
TOKENIZER_WEIGHTS = "tokenizer.safetensors"


@dataclass
class UnitTargets:
    """How ``speechssl pretrain`` makes a method's tokenizer when its ``units`` option is empty.

    HuBERT's iterations (Hsu et al. 2021, §II-B, §IV-C): iteration 1 clusters MFCC frames
    (39-dimensional, pooled to the student's frame rate) into ``num_units`` = 100 units;
    iteration 2 clusters hidden state ``layer`` (6 of 12 for BASE) of the iteration-1 model
    ``teacher`` into 500. Discrete BERT's tokens come from a trained quantizer
    (``kind="quantizer"``: the VQ-APC codebook or the wav2vec 2.0 Gumbel quantizer of the
    run ``teacher``), or from k-means like HuBERT's. The pipeline is
    :func:`speechssl.methods.targets.prepare_units`.

    Attributes:
        kind: ``"kmeans"`` (MFCC without a teacher, else the teacher's ``layer``) or
            ``"quantizer"`` (the teacher run's own quantizer).
        iteration: HuBERT's iteration: 1 clusters MFCC (no teacher), 2 and later cluster
            the teacher's ``layer``.
        teacher: run directory or checkpoint of the previous model; empty for MFCC k-means.
        layer: hidden state of the teacher that is clustered.
        num_units: ``k`` of the k-means.
        max_frames: frames sampled from the pretraining corpus to fit the k-means.
        seed: seed of the sampling and of the k-means.
    """

    kind: Literal["kmeans", "quantizer"] = "kmeans"
    iteration: int = 1
    teacher: str = ""
    layer: int = -1
    num_units: int = 100
    max_frames: int = 100_000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("kmeans", "quantizer"):
            raise ValueError(f"kind: expected 'kmeans' or 'quantizer', found {self.kind!r}")
        if self.kind == "quantizer" and not self.teacher:
            raise ValueError(
                "teacher: expected the run whose quantizer gives the units (kind='quantizer'), found ''"
            )
        for name in ("iteration", "num_units", "max_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, found {getattr(self, name)}")
        if self.kind == "kmeans" and (self.iteration > 1) != bool(self.teacher):
            raise ValueError(
                "teacher: expected the previous iteration's run for iteration >= 2 and none for "
                f"iteration 1 (k-means on MFCC), found iteration={self.iteration}, teacher={self.teacher!r}"
            )


def mfcc_deltas(features: torch.Tensor, lengths: torch.Tensor, width: int = 2) -> torch.Tensor:
    """Regression deltas ``Δ_t = Σ_n n (x_{t+n} − x_{t−n}) / (2 Σ_n n²)`` over ``n = 1..width``.

    Frames beyond an utterance's ends repeat its first or last valid frame (HTK, librosa
    ``mode="nearest"``), so padding never leaks into the deltas.

    Args:
        features: ``(batch, frames, dim)`` frames, zero on padding.
        lengths: ``(batch,)`` valid frames per utterance.

    Returns:
        ``(batch, frames, dim)`` deltas, zero on padding.
    """
    frames = features.shape[1]
    positions = torch.arange(frames, device=features.device)[None, :]  # (1, frames)
    last = (lengths - 1).clamp(min=0)[:, None]  # (batch, 1)
    deltas = torch.zeros_like(features)
    for n in range(1, width + 1):
        ahead = torch.minimum(positions + n, last).clamp(min=0)  # (batch, frames)
        behind = torch.minimum((positions - n).clamp(min=0), last)
        gather = lambda index: features.gather(1, index[:, :, None].expand_as(features))  # noqa: E731
        deltas = deltas + n * (gather(ahead) - gather(behind))
    denominator = 2 * sum(n * n for n in range(1, width + 1))
    return zero_padding_frames(deltas / denominator, lengths)


def pool_frames(x: torch.Tensor, lengths: torch.Tensor, pool: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Average non-overlapping groups of ``pool`` valid frames.

    Group ``j`` covers frames ``j·pool .. j·pool + pool − 1``; the last group of an
    utterance may be partial and averages only its valid frames.

    Args:
        x: ``(batch, frames, dim)``, zero on padding.
        lengths: ``(batch,)`` valid frames.
        pool: frames per group.

    Returns:
        ``(batch, ceil(frames / pool), dim)`` pooled frames (zero on padding) and
        ``(batch,)`` lengths ``ceil(lengths / pool)``.
    """
    if pool == 1:
        return x, lengths
    batch, frames, dim = x.shape
    groups = -(-frames // pool)
    valid = (~lengths_to_padding_mask(lengths, frames)).to(x.dtype)  # (batch, frames)
    padded = nn.functional.pad(x * valid[:, :, None], (0, 0, 0, groups * pool - frames))
    counts = nn.functional.pad(valid, (0, groups * pool - frames))
    sums = padded.view(batch, groups, pool, dim).sum(
        dim=2
    )  # (batch, groups, pool, dim) -> (batch, groups, dim)
    count = counts.view(batch, groups, pool).sum(dim=2)  # (batch, groups, pool) -> (batch, groups)
    pooled_lengths = torch.div(lengths + pool - 1, pool, rounding_mode="floor")
    return sums / count.clamp(min=1)[:, :, None], pooled_lengths


class UnitFeatures(nn.Module):
    """The frames of :class:`UnitFeatureConfig`, frozen, at ``downsample_rate`` samples per frame.

    Args:
        config: what to compute.
        encoder: the encoder for ``source="encoder"`` or ``"cnn"`` (ignored for MFCC), its
            weights part of this module's state; for ``"upstream"``, the upstream module
            (``forward(waveforms, lengths) -> EncoderOutput``, ``output_lengths``,
            ``hidden_sizes``, ``downsample_rate``), whose weights :func:`save_unit_tokenizer`
            leaves out.
    """

    def __init__(self, config: UnitFeatureConfig, encoder: SpeechEncoder | None = None) -> None:
        super().__init__()
        self.config = config
        if config.source == "mfcc":
            self.mfcc = MFCC(LogMelFilterbank(FilterbankConfig(sample_rate=config.sample_rate)))
            self.sample_rate = config.sample_rate
            native_rate, self.dim = self.mfcc.hop_length, self.mfcc.n_mfcc * (3 if config.deltas else 1)
        else:
            if encoder is None:
                raise ValueError(f"encoder: expected an encoder for source={config.source!r}, found None")
            self.encoder = encoder
            if config.source == "upstream":
                sizes = list(encoder.hidden_sizes)
                if not -len(sizes) <= config.layer < len(sizes):
                    raise ValueError(
                        f"layer: expected an index into the {len(sizes)} hidden states of upstream "
                        f"{config.upstream!r}, found {config.layer}"
                    )
                self.dim = sizes[config.layer]
            elif config.source == "cnn":
                if not isinstance(encoder.frontend, WaveformFrontend):
                    raise ValueError("encoder.frontend: expected the waveform CNN for source='cnn'")
                self.dim = encoder.frontend.feature_dim
            else:
                if not -encoder.num_layers <= config.layer < encoder.num_layers:
                    raise ValueError(
                        f"layer: expected an index into the encoder's {encoder.num_layers} hidden states, "
                        f"found {config.layer}"
                    )
                self.dim = encoder.dim
            native_rate = encoder.downsample_rate
            self.sample_rate = encoder.sample_rate
        self.downsample_rate = native_rate * config.pool
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> UnitFeatures:
        """Unit features stay frozen: dropout and layer drop are never switched on."""
        return super().train(False)

    def output_lengths(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Frames for ``num_samples`` valid samples (int64, any shape)."""
        if self.config.source == "mfcc":
            native = self.mfcc.num_frames(num_samples)
        else:
            native = self.encoder.output_lengths(num_samples)
        return torch.div(native + self.config.pool - 1, self.config.pool, rounding_mode="floor")

    @torch.no_grad()
    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``waveforms (batch, samples)``, ``lengths (batch,)`` → frames ``(batch, frames, dim)`` (zero
        on padding) and their ``(batch,)`` lengths."""
        source = self.config.source
        if source == "mfcc":
            x, frame_lengths = self.mfcc(waveforms, lengths)  # (batch, frames, n_mfcc)
            if self.config.deltas:
                delta = mfcc_deltas(x, frame_lengths)
                x = torch.cat(
                    [x, delta, mfcc_deltas(delta, frame_lengths)], dim=-1
                )  # (batch, frames, 3 n_mfcc)
        elif source == "upstream":
            output = self.encoder(waveforms, lengths)
            x, frame_lengths = output.hidden_states[self.config.layer], output.lengths
        elif source == "cnn":
            captured: dict[str, torch.Tensor] = {}

            def capture(features: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
                captured["features"] = features
                return features

            _, frame_lengths = self.encoder.frontend(waveforms, lengths, capture)
            x = captured["features"]  # (batch, frames, channels)
        else:
            output = self.encoder(waveforms, lengths)
            x, frame_lengths = output.hidden_states[self.config.layer], output.lengths
        return pool_frames(x.float(), frame_lengths, self.config.pool)


@dataclass
class UnitSequence:
    """Units of a padded batch.

    Attributes:
        units: ``(batch, frames)`` int64 unit indices, ``-1`` on padding.
        lengths: ``(batch,)`` valid frames per utterance.
    """

    units: torch.Tensor
    lengths: torch.Tensor


class UnitTokenizer(nn.Module):
    """Frozen waveform → unit map: :class:`UnitFeatures` then nearest centroid or Gumbel argmax.

    Args:
        config: the tokenizer's description (saved beside its tensors).
        features: the frames being discretised (``features.dim == config.feature_dim``).
        centroids: ``(num_units, feature_dim)`` for ``assignment="nearest"``.
        logits: for ``assignment="gumbel"``, the quantizer's ``feature_dim → G·V`` logits layer
            (``GumbelVectorQuantizer.logits``); in eval mode the quantizer picks their argmax.
    """

    def __init__(
        self,
        config: UnitTokenizerConfig,
        features: UnitFeatures,
        centroids: torch.Tensor | None = None,
        logits: nn.Linear | None = None,
    ) -> None:
        super().__init__()
        if features.dim != config.feature_dim:
            raise ValueError(
                f"feature_dim: expected the features' dim={features.dim}, found {config.feature_dim}"
            )
        self.config = config
        self.features = features
        if config.assignment == "nearest":
            if centroids is None or tuple(centroids.shape) != (config.num_units, config.feature_dim):
                found = None if centroids is None else tuple(centroids.shape)
                raise ValueError(
                    f"centroids: expected shape ({config.num_units}, {config.feature_dim}), found {found}"
                )
            self.register_buffer("centroids", centroids.detach().float().clone())
        else:
            expected = (config.feature_dim, config.groups * config.entries)
            found = None if logits is None else (logits.in_features, logits.out_features)
            if found != expected:
                raise ValueError(f"logits: expected a Linear {expected[0]} -> {expected[1]}, found {found}")
            self.logits = logits
        self.requires_grad_(False)
        self.eval()

    @property
    def num_units(self) -> int:
        return self.config.num_units

    @property
    def downsample_rate(self) -> int:
        """Input samples per unit frame."""
        return self.features.downsample_rate

    @property
    def sample_rate(self) -> int:
        """Hz of the audio the tokenizer reads."""
        return self.features.sample_rate

    def train(self, mode: bool = True) -> UnitTokenizer:
        """Tokenizers stay frozen and in eval mode (the Gumbel quantizer then takes the argmax)."""
        return super().train(False)

    def output_lengths(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Unit frames for ``num_samples`` valid samples."""
        return self.features.output_lengths(num_samples)

    @torch.no_grad()
    def assign(self, frames: torch.Tensor) -> torch.Tensor:
        """Unit of each frame: ``frames (..., feature_dim)`` → ``(...)`` int64."""
        flat = frames.reshape(-1, frames.shape[-1]).float()  # (..., dim) -> (n, dim)
        if self.config.assignment == "nearest":
            distances = torch.cdist(flat, self.centroids)  # (n, num_units)
            units = distances.argmin(dim=1)
        else:
            logits = self.logits(flat)  # (n, groups * entries)
            choice = logits.view(-1, self.config.groups, self.config.entries).argmax(dim=-1)  # (n, groups)
            place = self.config.entries ** torch.arange(self.config.groups, device=flat.device)  # (groups,)
            units = (choice * place).sum(dim=1)
        return units.view(frames.shape[:-1])  # (n,) -> (...)

    @torch.no_grad()
    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> UnitSequence:
        """Units of ``waveforms (batch, samples)`` with ``lengths (batch,)``."""
        frames, frame_lengths = self.features(waveforms, lengths)  # (batch, frames, feature_dim)
        units = self.assign(frames)  # (batch, frames)
        padding = lengths_to_padding_mask(frame_lengths, units.shape[1])
        return UnitSequence(units.masked_fill(padding, -1), frame_lengths)


class UnitFrontend(Frontend):
    """Frozen tokenizer → embedding table: the input layer of Discrete BERT (Baevski et al. 2019, §2).

    The table has ``num_units + 1`` rows; row ``mask_index = num_units`` is the ``[MASK]``
    token of BERT-style masked prediction (Devlin et al. 2019).

    Attributes:
        downsample_rate: input samples per frame (the tokenizer's).
        feature_dim: 1; ``feature_transform`` sees the ``(batch, frames)`` int64 units.
        dim: output dimension.
    """

    def __init__(self, tokenizer: UnitTokenizer, dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.mask_index = tokenizer.num_units
        self.embedding = nn.Embedding(tokenizer.num_units + 1, dim)
        nn.init.normal_(self.embedding.weight, std=dim**-0.5)
        self.dropout = nn.Dropout(dropout)
        self.downsample_rate = tokenizer.downsample_rate
        self.feature_dim = 1
        self.dim = dim

    def output_lengths(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Output frames for ``num_samples`` valid samples (int64, any shape)."""
        return self.tokenizer.output_lengths(num_samples)

    def encode(
        self,
        waveforms: torch.Tensor,
        lengths: torch.Tensor | None,
        feature_transform: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        feature_grad_scale: float = 1.0,
    ) -> FrontendOutput:
        """Embed the units of a padded batch, with the ``clean`` embeddings (before dropout).

        Args:
            waveforms: ``(batch, samples)`` float audio.
            lengths: ``(batch,)`` int64 valid samples per utterance (None: no utterance is padded).
            feature_transform: optional ``(units (batch, frames) int64, frame_lengths) -> units``,
                e.g. replacing masked units by :attr:`mask_index`.
            feature_grad_scale: must be 1 (the tokenizer is frozen).
        """
        check_no_grad_scale(feature_grad_scale, "units")
        if lengths is None:
            lengths = full_lengths(waveforms, 1)
        sequence = self.tokenizer(waveforms, lengths)
        units = sequence.units  # (batch, frames)
        if feature_transform is not None:
            units = feature_transform(units, sequence.lengths)
        clean = self.embedding(units.clamp(min=0))  # (batch, frames, dim)
        x = zero_padding_frames(self.dropout(clean), sequence.lengths)
        return FrontendOutput(x, sequence.lengths, zero_padding_frames(clean, sequence.lengths))


UPSTREAM_PREFIX = "features.encoder."  # an upstream source's tensors, not saved with the tokenizer


def build_unit_tokenizer(config: UnitTokenizerConfig, upstream: nn.Module | None = None) -> UnitTokenizer:
    """A tokenizer of ``config``'s architecture with placeholder tensors (load a state dict into it).

    Args:
        config: the architecture.
        upstream: the built upstream module, required for ``features.source="upstream"``.
    """
    features_config = config.features
    encoder = upstream
    if features_config.source == "upstream" and upstream is None:
        raise ValueError(
            f"upstream: the tokenizer reads upstream {features_config.upstream!r}; build it and pass it "
            "(speechssl.units.pipeline.load_tokenizer does), or make a tokenizer from MFCC or a "
            "speechssl run, which is self-contained"
        )
    if features_config.source in ("encoder", "cnn"):
        encoder = SpeechEncoder.from_config(features_config.encoder)
    features = UnitFeatures(features_config, encoder)
    if config.assignment == "nearest":
        return UnitTokenizer(config, features, centroids=torch.zeros(config.num_units, config.feature_dim))
    logits = nn.Linear(config.feature_dim, config.groups * config.entries)
    return UnitTokenizer(config, features, logits=logits)


def build_unit_frontend(config: EncoderConfig) -> UnitFrontend:
    """The ``units`` front-end of ``config``: its tokenizer (placeholder tensors) and an embedding table."""
    if config.units is None:
        raise ValueError("units: expected a unit tokenizer config for frontend='units', found null")
    return UnitFrontend(build_unit_tokenizer(config.units), config.dim, config.dropout)


register_frontend("units", build_unit_frontend)


def save_unit_tokenizer(tokenizer: UnitTokenizer, directory: str | Path) -> Path:
    """Write ``tokenizer.yaml`` and ``tokenizer.safetensors`` into ``directory``; returns it.

    An upstream source's weights are left out (they stay in the upstream's own files).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    external = tokenizer.config.features.source == "upstream"
    tensors = {
        name: tensor.detach().cpu().contiguous()
        for name, tensor in tokenizer.state_dict().items()
        if not (external and name.startswith(UPSTREAM_PREFIX))
    }
    save_file(tensors, directory / TOKENIZER_WEIGHTS)
    (directory / TOKENIZER_CONFIG).write_text(yaml.safe_dump(to_dict(tokenizer.config), sort_keys=False))
    return directory


def load_unit_tokenizer(directory: str | Path, upstream: nn.Module | None = None) -> UnitTokenizer:
    """The tokenizer saved in ``directory`` by :func:`save_unit_tokenizer`.

    Args:
        directory: the tokenizer folder.
        upstream: the built upstream, for a tokenizer whose features come from one (its
            fingerprint is checked by :func:`speechssl.units.pipeline.load_tokenizer`).
    """
    directory = Path(directory)
    for name in (TOKENIZER_CONFIG, TOKENIZER_WEIGHTS):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory}: not a unit tokenizer (missing {name})")
    config = unit_tokenizer_config(
        load_yaml(directory / TOKENIZER_CONFIG), where=str(directory / TOKENIZER_CONFIG)
    )
    tokenizer = build_unit_tokenizer(config, upstream)
    stored = load_file(directory / TOKENIZER_WEIGHTS, device="cpu")
    if config.features.source == "upstream":
        stored.update({k: v for k, v in tokenizer.state_dict().items() if k.startswith(UPSTREAM_PREFIX)})
    tokenizer.load_state_dict(stored, strict=True)
    return tokenizer


def unit_tokenizer_config(data: dict[str, Any], where: str = "units") -> UnitTokenizerConfig:
    """A checked :class:`UnitTokenizerConfig` from a mapping (e.g. the ``units`` of an encoder config)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, found {data!r}")
    return from_dict(UnitTokenizerConfig, data, where=where)


__all__ = [
    "UnitFeatures",
    "UnitFrontend",
    "UnitSequence",
    "UnitTargets",
    "UnitTokenizer",
    "build_unit_frontend",
    "build_unit_tokenizer",
    "load_unit_tokenizer",
    "mfcc_deltas",
    "pool_frames",
    "save_unit_tokenizer",
    "unit_tokenizer_config",
]
