"""Audio batches, a tiny encoder and an MFCC unit tokenizer shared by the method tests."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from speechssl.data.batch import AudioBatch
from speechssl.methods import PretextMethod, build_method, method_config, method_spec
from speechssl.models import SpeechEncoder, load_encoder_preset
from speechssl.models.encoder import UnitFeatureConfig, UnitTokenizerConfig
from speechssl.models.units import UnitFeatures, UnitTokenizer, save_unit_tokenizer


def _tone_batch(lengths: list[int], seed: int = 0) -> AudioBatch:
    """Zero-padded audio of 0.1 s tones of random frequencies (200 Hz to 3.2 kHz) plus a little noise."""
    generator = torch.Generator().manual_seed(seed)
    samples, segment = max(lengths), 1600
    segments = -(-samples // segment)
    frequencies = 200 + 3000 * torch.rand(len(lengths), segments, generator=generator)  # (batch, segments)
    frequencies = frequencies.repeat_interleave(segment, dim=1)[:, :samples]  # (batch, samples)
    phase = torch.cumsum(2 * math.pi * frequencies / 16000, dim=1)  # (batch, samples)
    waveforms = 0.1 * torch.sin(phase) + 0.01 * torch.randn(len(lengths), samples, generator=generator)
    lengths_tensor = torch.tensor(lengths)
    waveforms[torch.arange(samples)[None, :] >= lengths_tensor[:, None]] = 0.0
    words = ["zero", "one", "two", "three"]
    text = [words[i % len(words)] for i in range(len(lengths))]  # paired text and images (issue 17)
    images = torch.rand(len(lengths), 1, 8, 8, generator=generator)  # (batch, channels, height, width)
    return AudioBatch(
        waveforms, lengths_tensor, [str(i) for i in range(len(lengths))], text=text, images=images
    )


@pytest.fixture
def tone_batch() -> Callable[..., AudioBatch]:
    """``tone_batch(lengths, seed=0)``: an :class:`AudioBatch` of tone sequences, zero-padded after ``lengths``."""
    return _tone_batch


def _noise_batch(lengths: list[int], seed: int = 0) -> AudioBatch:
    """Zero-padded white noise, ``len(lengths)`` utterances of ``lengths`` samples."""
    generator = torch.Generator().manual_seed(seed)
    waveforms = torch.randn(len(lengths), max(lengths), generator=generator)
    lengths_tensor = torch.tensor(lengths)
    waveforms[torch.arange(max(lengths))[None, :] >= lengths_tensor[:, None]] = 0.0
    return AudioBatch(waveforms, lengths_tensor, [str(i) for i in range(len(lengths))])


@pytest.fixture
def make_batch() -> Callable[..., AudioBatch]:
    """``make_batch(lengths, seed=0)``: an :class:`AudioBatch` of white noise, zero-padded after ``lengths``."""
    return _noise_batch


def _tiny_encoder(frontend: str = "fbank") -> SpeechEncoder:
    """The ``tiny`` preset shrunk to a 1-layer, 32-dim encoder without dropout."""
    config = dataclasses.replace(
        load_encoder_preset("tiny"),
        frontend=frontend,
        dim=32,
        heads=2,
        ffn_dim=64,
        layers=1,
        n_mels=16,
        subsampling_channels=8,
        pos_conv_kernel=8,
        pos_conv_groups=4,
        conv_channels=16,
        dropout=0.0,
        attention_dropout=0.0,
    )
    return SpeechEncoder.from_config(config)


@pytest.fixture
def tiny_encoder() -> Callable[..., SpeechEncoder]:
    """``tiny_encoder(frontend="fbank")``: a freshly initialised tiny :class:`SpeechEncoder`."""
    return _tiny_encoder


def _mfcc_tokenizer(pool: int = 4, num_units: int = 8, seed: int = 0) -> UnitTokenizer:
    """MFCC+Δ+ΔΔ frames averaged over ``pool`` frames, assigned to ``num_units`` centroids.

    The centroids are frames of a tone batch (no k-means): distinct, and every unit is used.
    """
    features = UnitFeatures(UnitFeatureConfig(source="mfcc", pool=pool))
    frames, lengths = features(_tone_batch([16000, 12000], seed=seed).waveforms, torch.tensor([16000, 12000]))
    valid = frames[0, : int(lengths[0])]  # (frames, 39)
    picks = torch.linspace(0, valid.shape[0] - 1, num_units).round().long()  # (num_units,)
    config = UnitTokenizerConfig(features=features.config, num_units=num_units, feature_dim=features.dim)
    return UnitTokenizer(config, features, centroids=valid[picks])


@pytest.fixture
def mfcc_tokenizer() -> Callable[..., UnitTokenizer]:
    """``mfcc_tokenizer(pool=4, num_units=8, seed=0)``: a frozen MFCC :class:`UnitTokenizer` (pool 4: 40 ms)."""
    return _mfcc_tokenizer


def _tiny_method(name: str, options: dict, frontend: str, causal: bool, units_dir: Path) -> PretextMethod:
    """Method ``name`` on a tiny encoder (``frontend``; ``causal`` without feature norm for APC/CPC).

    ``options["units"]``, when given, is a pool (4: 40 ms, 2: 20 ms): an MFCC tokenizer of that
    pool is saved in ``units_dir`` and its directory replaces it; ``frontend="units"`` builds
    the method's own encoder (Discrete BERT).
    """
    if "units" in options:
        tokenizer = _mfcc_tokenizer(pool=options["units"])
        options = {**options, "units": str(save_unit_tokenizer(tokenizer, units_dir))}
    config = method_config(name, options)
    if frontend == "units":
        encoder = method_spec(name).method_class.build_encoder(_tiny_encoder().config, config)
    elif causal:
        encoder_config = dataclasses.replace(
            _tiny_encoder(frontend).config, causal=True, feature_norm=False, floor_db=None
        )
        encoder = SpeechEncoder.from_config(encoder_config)
    else:
        encoder = _tiny_encoder(frontend)
    return build_method(name, config, encoder)


@pytest.fixture
def tiny_method(tmp_path) -> Callable[..., PretextMethod]:
    """``tiny_method(name, options, frontend, causal)``: a method on a tiny encoder (see ``_tiny_method``)."""
    return lambda name, options, frontend, causal: _tiny_method(
        name, options, frontend, causal, tmp_path / "units"
    )


# name, objective options, encoder front-end and whether the method needs a causal encoder:
# one tiny training configuration of every method, for the tests that run them all
EVERY_METHOD = [
    ("apc", {}, "fbank", True),
    ("vq_apc", {}, "fbank", True),
    ("vq_vae", {}, "fbank", False),
    ("mockingjay", {}, "fbank", False),
    ("tera", {}, "fbank", False),
    ("pase", {}, "fbank", False),
    ("cpc", {"prediction_steps": 3, "num_negatives": 8}, "fbank", True),
    ("wav2vec2", {}, "waveform", False),
    ("discrete_bert", {"units": 2}, "units", False),
    ("hubert", {"units": 4}, "fbank", False),
    ("data2vec", {"top_k_layers": 1}, "fbank", False),
    ("barlow_twins", {}, "fbank", False),
    ("barlow_twins", {"loss": "vicreg"}, "fbank", False),
    (
        "speech_text",
        {"embed_dim": 16, "text": {"dim": 16, "heads": 2, "ffn_dim": 32, "max_chars": 8}},
        "fbank",
        False,
    ),
    ("visually_grounded", {"embed_dim": 16, "image": {"channels": [8], "strides": [1]}}, "fbank", False),
    (
        "joint",
        {"term_objective": {"embed_dim": 16, "text": {"dim": 16, "heads": 2, "ffn_dim": 32}}},
        "fbank",
        False,
    ),
]
